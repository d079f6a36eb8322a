-- search.sql: marketplace search: the listing's search columns, the
-- vocabulary and query planning.
--
-- Each listing carries a weighted tsvector (name A; tagline and tags B;
-- description C; its filter values as lexemes no query word can match) and
-- a static quality score (Bayesian-average rating and log of hires), both
-- kept by a trigger.  A vocabulary of the lexemes of published listings (how
-- many listings have each, and in which fields; a word in none is removed)
-- and a deletion index over it give typo candidates, the estimates
-- search_agents picks its strategy from, and the bounds that let it stop
-- early.  search_agents is in search_query.sql, the scoring in search.c.

------------------------------------------------------------------------------
-- C functions
------------------------------------------------------------------------------
CREATE FUNCTION agentmarket_private.search_typo_keys(word text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'search_typo_keys'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_typo_keys(text) IS
    'The word and each form of it with one character deleted: words within one edit share a key.';

CREATE FUNCTION agentmarket_private.search_is_one_typo(word text, candidate text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'search_is_one_typo'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_is_one_typo(text, text) IS
    'True when the two words differ by exactly one insertion, deletion, substitution or swap of adjacent characters.';

CREATE FUNCTION agentmarket_private.search_text_score(
    document tsvector, lexemes text[], groups integer[], factors double precision[],
    prefixes boolean[], ngroups integer)
RETURNS double precision
AS 'MODULE_PATHNAME', 'search_text_score'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_text_score(tsvector, text[], integer[], double precision[], boolean[], integer) IS
    'Text score in [0, 1]: per query word the best weight of a matching term (name, tagline/tags, description: see search_scoring) times its factor (exact 1, typo, completion), averaged over words.';

CREATE FUNCTION agentmarket_private.search_text_bound(group_bounds double precision[])
RETURNS double precision
AS 'MODULE_PATHNAME', 'search_text_bound'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_text_bound(double precision[]) IS
    'The text score a listing would get with these per-word values: an upper bound computed exactly as search_text_score computes scores.';

CREATE FUNCTION agentmarket_private.search_static_score(avg_rating numeric, total_reviews integer, total_hires integer)
RETURNS double precision
AS 'MODULE_PATHNAME', 'search_static_score'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_static_score(numeric, integer, integer) IS
    'Quality of a listing in [0, 1]: 0.6 of its Bayesian-average rating (prior: 5 reviews of 3 stars) plus 0.4 of ln(1+hires)/(ln(1+hires)+ln(101)).';

CREATE FUNCTION agentmarket_private.search_blend(text_score double precision, static_score double precision)
RETURNS double precision
AS 'MODULE_PATHNAME', 'search_blend'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_blend(double precision, double precision) IS
    'Relevance: 0.75 of the text score plus 0.25 of the static score.';

CREATE FUNCTION agentmarket_private.search_positive_lexemes(query tsquery)
RETURNS text[]
AS 'MODULE_PATHNAME', 'search_positive_lexemes'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_positive_lexemes(tsquery) IS
    'The distinct lexemes of a query outside any NOT, in typing order.';

CREATE TYPE agentmarket_private.search_scoring AS (
  name_weight double precision,       -- an occurrence in the name (weight A)
  head_weight double precision,       -- ... in the tagline or tags (B)
  body_weight double precision,       -- ... in the description (C)
  typo_factor double precision,       -- a term one typo away from the word typed
  completion_factor double precision, -- a completion of the last word typed
  text_share double precision         -- the text score's share of the blend
);
COMMENT ON TYPE agentmarket_private.search_scoring IS
    'The scoring constants of search.c, as search_scoring() returns them.';

-- The one source of the scoring constants for SQL: search_prepare's bounds
-- read them from the scorer itself.
CREATE FUNCTION agentmarket_private.search_scoring()
RETURNS agentmarket_private.search_scoring
AS 'MODULE_PATHNAME', 'search_scoring'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_scoring() IS
    'The constants search_text_score and search_blend score with: field weights, typo and completion factors, text share.';


------------------------------------------------------------------------------
-- Search fields of a listing
------------------------------------------------------------------------------
ALTER TABLE agentmarket.agents
  ADD COLUMN search_fields tsvector,
  ADD COLUMN search_document tsvector,
  ADD COLUMN search_static double precision NOT NULL DEFAULT 0;
-- The documents stay in the row (compressed if need be, moved out to TOAST
-- only as a last resort): every match search scores or checks reads its
-- document, and a TOAST fetch is an index probe and a heap read more per
-- listing (it more than doubled the cost of scoring a rare word's matches
-- in bench/search).  Long descriptions and other columns go out first.
ALTER TABLE agentmarket.agents
  ALTER COLUMN search_fields SET STORAGE MAIN,
  ALTER COLUMN search_document SET STORAGE MAIN;
-- So are the columns a search checks on every match (status and the
-- filters) or returns on its page (the card): a row too long for a page
-- has its EXTENDED columns moved out biggest first until it fits, and once
-- the description is out the next biggest are these short ones, before any
-- MAIN column is touched.  In bench/search one listing in ten had its
-- relays, models or tags in TOAST, a fetch per filtered match (13% of a
-- rare word filtered by model).  They are short (their lengths are bounded:
-- hardening.sql), so the row holds them; the description goes out first.
ALTER TABLE agentmarket.agents
  ALTER COLUMN slug SET STORAGE MAIN,
  ALTER COLUMN name SET STORAGE MAIN,
  ALTER COLUMN tagline SET STORAGE MAIN,
  ALTER COLUMN icon_url SET STORAGE MAIN,
  ALTER COLUMN category SET STORAGE MAIN,
  ALTER COLUMN status SET STORAGE MAIN,
  ALTER COLUMN pricing_model SET STORAGE MAIN,
  ALTER COLUMN supported_relays SET STORAGE MAIN,
  ALTER COLUMN supported_models SET STORAGE MAIN,
  ALTER COLUMN tags SET STORAGE MAIN;
COMMENT ON COLUMN agentmarket.agents.search_fields IS
    'Search: the words of the name as a/word and of the tagline and tags as b/word (no positions), so one GIN index finds where a word occurs. Kept by a trigger.';
COMMENT ON COLUMN agentmarket.agents.search_document IS
    'Search: name (weight A), tagline and tags (B), description (C), and the filter values as lexemes with a leading space (see search_filter_tokens). Kept by a trigger.';
COMMENT ON COLUMN agentmarket.agents.search_static IS
    'Search: static quality score (rating and hires), see search_static_score. Kept by a trigger.';

-- a || b with b's positions one further apart than || puts them.
-- (No SET clause, every name qualified: it inlines.)
CREATE FUNCTION agentmarket_private.search_join(a tsvector, b tsvector)
RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    -- The lexeme ' ' (which no parser produces) holds the gap's position.
    SELECT pg_catalog.ts_delete(a OPERATOR(pg_catalog.||) ''' '':1'::pg_catalog.tsvector OPERATOR(pg_catalog.||) b, ' '::pg_catalog.text)
$$;
COMMENT ON FUNCTION agentmarket_private.search_join(tsvector, tsvector) IS
    'Concatenates two tsvectors with a one-position gap, so phrases do not match across them.';

-- The filter values of a listing as lexemes of its search document:
-- ' category coding', ' pricing free', ' relay slack', ' model claude'.  No
-- parser produces a lexeme with a space, so no query word matches them (nor
-- completes to them); a GIN scan intersects them with the words' postings,
-- and the vocabulary counts them, which estimates what a filter keeps.
-- (No SET clause, every name qualified: it inlines.)
CREATE FUNCTION agentmarket_private.search_filter_tokens(
    p_category text, p_pricing_model text, p_relays text[], p_models text[])
RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.array_to_tsvector(ARRAY(
        SELECT x FROM pg_catalog.unnest(
                   ARRAY[' category ' OPERATOR(pg_catalog.||) p_category, ' pricing ' OPERATOR(pg_catalog.||) p_pricing_model]
                   OPERATOR(pg_catalog.||) ARRAY(SELECT ' relay ' OPERATOR(pg_catalog.||) r FROM pg_catalog.unnest(p_relays) r)
                   OPERATOR(pg_catalog.||) ARRAY(SELECT ' model ' OPERATOR(pg_catalog.||) m FROM pg_catalog.unnest(p_models) m)) x
         WHERE x IS NOT NULL
           -- A lexeme has at most 2047 bytes: a longer category is no token
           -- (search_agents refuses a category filter over 1000 bytes).
           AND pg_catalog.octet_length(x) OPERATOR(pg_catalog.<) 2048))
$$;
COMMENT ON FUNCTION agentmarket_private.search_filter_tokens(text, text, text[], text[]) IS
    'The filter lexemes of a listing (category, pricing model, each relay and model), each with a leading space no query word has; values too long for a lexeme are left out.';

-- A definer: it runs on a creator's own INSERT or UPDATE of their listing,
-- and callers have no USAGE on agentmarket_private.
CREATE FUNCTION agentmarket_private.agents_search_fields() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name_vector tsvector;
    head_vector tsvector;
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' OR OLD.search_document IS NULL
       OR NEW.name IS DISTINCT FROM OLD.name OR NEW.tagline IS DISTINCT FROM OLD.tagline
       OR NEW.description IS DISTINCT FROM OLD.description OR NEW.tags IS DISTINCT FROM OLD.tags
       OR NEW.category IS DISTINCT FROM OLD.category OR NEW.pricing_model IS DISTINCT FROM OLD.pricing_model
       OR NEW.supported_relays IS DISTINCT FROM OLD.supported_relays
       OR NEW.supported_models IS DISTINCT FROM OLD.supported_models THEN
        name_vector := pg_catalog.setweight(pg_catalog.to_tsvector('english'::regconfig, NEW.name), 'A');
        -- Fields are joined with a gap of one position, so that a quoted
        -- phrase never matches across two of them.
        head_vector := agentmarket_private.search_join(
            pg_catalog.setweight(pg_catalog.to_tsvector('english'::regconfig, NEW.tagline), 'B'),
            pg_catalog.setweight(pg_catalog.to_tsvector('english'::regconfig,
                COALESCE(pg_catalog.array_to_string(NEW.tags, ' '), '')), 'B'));
        NEW.search_document := agentmarket_private.search_join(agentmarket_private.search_join(name_vector, head_vector),
            pg_catalog.setweight(pg_catalog.to_tsvector('english'::regconfig, NEW.description), 'C'))
            OPERATOR(pg_catalog.||) agentmarket_private.search_filter_tokens(NEW.category, NEW.pricing_model,
                                                                             NEW.supported_relays, NEW.supported_models);
        -- With the filter lexemes: a tier's GIN scan intersects them too.
        NEW.search_fields := pg_catalog.array_to_tsvector(ARRAY(
            SELECT 'a/' OPERATOR(pg_catalog.||) l FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(name_vector)) l
            UNION
            SELECT 'b/' OPERATOR(pg_catalog.||) l FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(head_vector)) l))
            OPERATOR(pg_catalog.||) agentmarket_private.search_filter_tokens(NEW.category, NEW.pricing_model,
                                                                             NEW.supported_relays, NEW.supported_models);
    ELSE
        NEW.search_fields := OLD.search_fields;
        NEW.search_document := OLD.search_document;
    END IF;
    NEW.search_static := agentmarket_private.search_static_score(NEW.avg_rating, NEW.total_reviews, NEW.total_hires);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION agentmarket_private.agents_search_fields() IS
    'Trigger: computes an agent''s weighted search vectors and static score; clients cannot set them.';
CREATE TRIGGER agents_search_fields BEFORE INSERT OR UPDATE ON agentmarket.agents
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.agents_search_fields();

-- Only published listings are searched: every search index is partial.
CREATE INDEX agents_search_document_idx ON agentmarket.agents USING gin (search_document)
    WHERE status = 'published';
CREATE INDEX agents_search_fields_idx ON agentmarket.agents USING gin (search_fields)
    WHERE status = 'published';
CREATE INDEX agents_search_static_idx ON agentmarket.agents (search_static DESC, id DESC)
    WHERE status = 'published';
-- The walk of a category, and its listings for a bitmap AND with a GIN scan.
CREATE INDEX agents_search_category_idx ON agentmarket.agents (category, search_static DESC, id DESC)
    WHERE status = 'published';
CREATE INDEX agents_search_rating_idx ON agentmarket.agents
    ((COALESCE(avg_rating, 0)) DESC, total_reviews DESC, id DESC) WHERE status = 'published';
CREATE INDEX agents_search_popular_idx ON agentmarket.agents (total_hires DESC, id DESC)
    WHERE status = 'published';
CREATE INDEX agents_search_newest_idx ON agentmarket.agents (published_at DESC, id DESC)
    WHERE status = 'published';

------------------------------------------------------------------------------
-- Vocabulary of published listings
------------------------------------------------------------------------------
CREATE TABLE agentmarket_private.search_vocabulary (
  -- Counts of published listings.  They never go below zero, but carry no
  -- CHECK: ON CONFLICT checks the proposed row (a negative delta) first.
  lexeme TEXT COLLATE "C" PRIMARY KEY,
  ndoc INTEGER NOT NULL DEFAULT 0, -- listings with the word
  n_a INTEGER NOT NULL DEFAULT 0,  -- ... in the name
  n_b INTEGER NOT NULL DEFAULT 0,  -- ... in the tagline or tags
  n_c INTEGER NOT NULL DEFAULT 0   -- ... only in the description
);
COMMENT ON TABLE agentmarket_private.search_vocabulary IS
    'Lexemes of published listings with document counts overall, in names (A), in taglines/tags (B) and only in descriptions. Derived from agents; rebuilt by agentmarket.rebuild_search_vocabulary().';

CREATE TABLE agentmarket_private.search_typo_index (
  key TEXT COLLATE "C" NOT NULL,
  lexeme TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (key, lexeme)
);
COMMENT ON TABLE agentmarket_private.search_typo_index IS
    'Deletion index of the vocabulary: (word or word minus one character, word).';

CREATE TABLE agentmarket_private.search_corpus (
  singleton BOOLEAN PRIMARY KEY DEFAULT true CONSTRAINT search_corpus_singleton CHECK (singleton),
  published INTEGER NOT NULL DEFAULT 0 CONSTRAINT search_corpus_published_check CHECK (published >= 0),
  -- The transaction that last added a word to the vocabulary or removed one
  -- (0: none since install): search caches typo candidates per backend
  -- under it (search_vocabulary.c).
  words_xact xid8 NOT NULL DEFAULT '0',
  -- The transaction that last changed the vocabulary at all (a count, a
  -- word): search keeps whole vocabulary lookups per backend under it.
  counts_xact xid8 NOT NULL DEFAULT '0'
);
COMMENT ON TABLE agentmarket_private.search_corpus IS 'Number of published listings, and the transactions that last changed the set of words in the vocabulary and the vocabulary at all.';
COMMENT ON COLUMN agentmarket_private.search_corpus.words_xact IS
    'The transaction that last added a word to search_vocabulary or removed one (0: none since install). Every such change sets it under this row''s lock, so a snapshot''s value names its set of words: searches key their per-backend typo candidates on it.';
COMMENT ON COLUMN agentmarket_private.search_corpus.counts_xact IS
    'The transaction that last changed search_vocabulary at all, a count or a word (0: none since install). Every such change sets it under this row''s lock, so a snapshot''s value names its vocabulary: searches key their per-backend vocabulary lookups on it.';
INSERT INTO agentmarket_private.search_corpus DEFAULT VALUES;
REVOKE ALL ON TABLE agentmarket_private.search_vocabulary, agentmarket_private.search_typo_index,
    agentmarket_private.search_corpus FROM PUBLIC;
-- Derived from agents: pg_dump keeps the tables but none of their rows; a
-- restore rebuilds them, since loading agents fires the triggers below.
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.search_vocabulary', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.search_typo_index', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.search_corpus', 'WHERE false');

CREATE FUNCTION agentmarket_private.agents_search_vocabulary() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    delta text;
    changed boolean;
BEGIN
    -- The listings entering (+1) and leaving (-1) the published set; a
    -- published listing whose text changed leaves and enters again.
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        delta := $q$SELECT 1 AS sign, n.search_document AS document FROM new_rows n
                     WHERE n.status OPERATOR(pg_catalog.=) 'published'$q$;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        delta := $q$SELECT -1 AS sign, o.search_document AS document FROM old_rows o
                     WHERE o.status OPERATOR(pg_catalog.=) 'published'$q$;
    ELSE
        -- Most updates (hires, reviews) change neither: leave at once.
        -- (EXECUTE: planned for this statement's row counts; a cached plan
        -- made for one row would join a bulk update's rows pairwise.)
        EXECUTE $q$SELECT EXISTS (
            SELECT FROM old_rows o JOIN new_rows n ON n.id OPERATOR(pg_catalog.=) o.id
             WHERE (o.status OPERATOR(pg_catalog.=) 'published') OPERATOR(pg_catalog.<>) (n.status OPERATOR(pg_catalog.=) 'published')
                OR (n.status OPERATOR(pg_catalog.=) 'published' AND o.search_document IS DISTINCT FROM n.search_document))$q$
        INTO changed;
        IF NOT changed THEN
            RETURN NULL;
        END IF;
        delta := $q$SELECT x.sign, x.document
          FROM old_rows o JOIN new_rows n ON n.id OPERATOR(pg_catalog.=) o.id,
               LATERAL (VALUES (-1, o.search_document, o.status OPERATOR(pg_catalog.=) 'published'),
                               (1, n.search_document, n.status OPERATOR(pg_catalog.=) 'published')) x(sign, document, published)
         WHERE x.published
           AND ((o.status OPERATOR(pg_catalog.=) 'published') OPERATOR(pg_catalog.<>) (n.status OPERATOR(pg_catalog.=) 'published')
                OR o.search_document IS DISTINCT FROM n.search_document)$q$;
    END IF;
    -- The corpus row first: every statement that changes the vocabulary
    -- updates it below (counts_xact), so writers queue on its lock before
    -- they take any word's row, and a transaction holding it from an
    -- earlier statement never waits for a word's row another writer holds
    -- while that writer waits for the corpus row.
    EXECUTE pg_catalog.format($q$SELECT FROM agentmarket_private.search_corpus c WHERE EXISTS (%s) FOR NO KEY UPDATE OF c$q$,
                              delta);
    -- One statement: corpus size (and words_xact, counts_xact), vocabulary
    -- counts (in lexeme order, so concurrent publications lock rows in one
    -- order) and typo keys of new words.
    EXECUTE pg_catalog.format($q$
        WITH delta AS MATERIALIZED (%s),
        words AS MATERIALIZED (
            SELECT u.lexeme, pg_catalog.sum(d.sign)::integer AS ndoc,
                   COALESCE(pg_catalog.sum(d.sign) FILTER (WHERE 'A' OPERATOR(pg_catalog.=) ANY (u.weights)), 0)::integer AS n_a,
                   COALESCE(pg_catalog.sum(d.sign) FILTER (WHERE 'B' OPERATOR(pg_catalog.=) ANY (u.weights)), 0)::integer AS n_b,
                   COALESCE(pg_catalog.sum(d.sign) FILTER (WHERE NOT (u.weights OPERATOR(pg_catalog.&&) '{A,B}'::text[])), 0)::integer AS n_c
              FROM delta d, pg_catalog.unnest(d.document) u
             GROUP BY u.lexeme),
        vocabulary AS (
            INSERT INTO agentmarket_private.search_vocabulary AS v (lexeme, ndoc, n_a, n_b, n_c)
            SELECT w.lexeme, w.ndoc, w.n_a, w.n_b, w.n_c FROM words w
             WHERE w.ndoc OPERATOR(pg_catalog.<>) 0 OR w.n_a OPERATOR(pg_catalog.<>) 0
                OR w.n_b OPERATOR(pg_catalog.<>) 0 OR w.n_c OPERATOR(pg_catalog.<>) 0
             ORDER BY w.lexeme COLLATE "C"
            ON CONFLICT (lexeme) DO UPDATE
               SET ndoc = v.ndoc OPERATOR(pg_catalog.+) EXCLUDED.ndoc,
                   n_a = v.n_a OPERATOR(pg_catalog.+) EXCLUDED.n_a,
                   n_b = v.n_b OPERATOR(pg_catalog.+) EXCLUDED.n_b,
                   n_c = v.n_c OPERATOR(pg_catalog.+) EXCLUDED.n_c
            RETURNING v.lexeme, v.ndoc),
        new_words AS (
            SELECT EXISTS (SELECT FROM vocabulary v JOIN words w ON w.lexeme OPERATOR(pg_catalog.=) v.lexeme
                            WHERE v.ndoc OPERATOR(pg_catalog.>) 0 AND v.ndoc OPERATOR(pg_catalog.=) w.ndoc) AS added),
        -- The corpus size, words_xact when a word entered the vocabulary and
        -- counts_xact when any of its rows changed (its row locked before
        -- the words', above; updated after the upserts).
        corpus AS (
            UPDATE agentmarket_private.search_corpus c
               SET published = c.published OPERATOR(pg_catalog.+) COALESCE((SELECT pg_catalog.sum(d.sign) FROM delta d), 0),
                   words_xact = CASE WHEN (SELECT n.added FROM new_words n) THEN pg_catalog.pg_current_xact_id()
                                     ELSE c.words_xact END,
                   counts_xact = pg_catalog.pg_current_xact_id()
             WHERE (SELECT pg_catalog.sum(d.sign) FROM delta d) OPERATOR(pg_catalog.<>) 0
                OR EXISTS (SELECT FROM vocabulary))
        -- Typo keys of the words that were in no listing before.  Read from
        -- the upsert, so they are written once its row lock is held: after a
        -- concurrent removal of the same word has committed.
        INSERT INTO agentmarket_private.search_typo_index (key, lexeme)
        SELECT DISTINCT k, v.lexeme
          FROM vocabulary v JOIN words w ON w.lexeme OPERATOR(pg_catalog.=) v.lexeme,
               pg_catalog.unnest(CASE WHEN pg_catalog.char_length(v.lexeme) BETWEEN 4 AND 64
                                       AND pg_catalog.left(v.lexeme, 1) OPERATOR(pg_catalog.<>) ' '
                                      THEN agentmarket_private.search_typo_keys(v.lexeme) END) k
         WHERE v.ndoc OPERATOR(pg_catalog.>) 0 AND v.ndoc OPERATOR(pg_catalog.=) w.ndoc
        ON CONFLICT DO NOTHING$q$, delta);
    -- Words now in no published listing leave the vocabulary and typo index
    -- (the row locks taken above are held: a concurrent publication of the
    -- same word waits, then inserts it again with its keys).
    IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN
        EXECUTE pg_catalog.format($q$
            WITH delta AS MATERIALIZED (%s),
            gone AS (
                DELETE FROM agentmarket_private.search_vocabulary v
                 WHERE v.lexeme IN (SELECT u.lexeme COLLATE "C" FROM delta d,
                                           pg_catalog.unnest(pg_catalog.tsvector_to_array(d.document)) u(lexeme)
                                     WHERE d.sign OPERATOR(pg_catalog.<) 0)
                   AND v.ndoc OPERATOR(pg_catalog.<=) 0
                RETURNING v.lexeme),
            -- (counts_xact: set by the statement above, which took these
            -- words to zero)
            corpus AS (
                UPDATE agentmarket_private.search_corpus c SET words_xact = pg_catalog.pg_current_xact_id()
                 WHERE EXISTS (SELECT FROM gone))
            DELETE FROM agentmarket_private.search_typo_index t
             USING gone g, pg_catalog.unnest(CASE WHEN pg_catalog.char_length(g.lexeme) BETWEEN 4 AND 64
                                                       AND pg_catalog.left(g.lexeme, 1) OPERATOR(pg_catalog.<>) ' '
                                                   THEN agentmarket_private.search_typo_keys(g.lexeme) END) k
             WHERE t.key OPERATOR(pg_catalog.=) k AND t.lexeme OPERATOR(pg_catalog.=) g.lexeme$q$, delta);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.agents_search_vocabulary() IS
    'Statement trigger: applies the listings entering or leaving the published set to the search vocabulary and typo index.';
CREATE TRIGGER agents_search_vocabulary_insert AFTER INSERT ON agentmarket.agents
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agentmarket_private.agents_search_vocabulary();
CREATE TRIGGER agents_search_vocabulary_update AFTER UPDATE ON agentmarket.agents
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agentmarket_private.agents_search_vocabulary();
CREATE TRIGGER agents_search_vocabulary_delete AFTER DELETE ON agentmarket.agents
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agentmarket_private.agents_search_vocabulary();

CREATE FUNCTION agentmarket.rebuild_search_vocabulary()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    words bigint;
BEGIN
    LOCK TABLE agentmarket_private.search_vocabulary IN EXCLUSIVE MODE;
    LOCK TABLE agentmarket.agents IN SHARE MODE;
    DELETE FROM agentmarket_private.search_vocabulary;
    DELETE FROM agentmarket_private.search_typo_index;
    INSERT INTO agentmarket_private.search_vocabulary (lexeme, ndoc, n_a, n_b, n_c)
    SELECT u.lexeme, pg_catalog.count(*),
           pg_catalog.count(*) FILTER (WHERE 'A' OPERATOR(pg_catalog.=) ANY (u.weights)),
           pg_catalog.count(*) FILTER (WHERE 'B' OPERATOR(pg_catalog.=) ANY (u.weights)),
           pg_catalog.count(*) FILTER (WHERE NOT (u.weights OPERATOR(pg_catalog.&&) '{A,B}'::text[]))
      FROM agentmarket.agents a, pg_catalog.unnest(a.search_document) u
     WHERE a.status OPERATOR(pg_catalog.=) 'published'
     GROUP BY u.lexeme;
    GET DIAGNOSTICS words = ROW_COUNT;
    INSERT INTO agentmarket_private.search_typo_index (key, lexeme)
    SELECT DISTINCT k, v.lexeme
      FROM agentmarket_private.search_vocabulary v,
           pg_catalog.unnest(agentmarket_private.search_typo_keys(v.lexeme)) k
     WHERE pg_catalog.char_length(v.lexeme) BETWEEN 4 AND 64 AND pg_catalog.left(v.lexeme, 1) OPERATOR(pg_catalog.<>) ' ';
    UPDATE agentmarket_private.search_corpus c
       SET published = (SELECT pg_catalog.count(*) FROM agentmarket.agents a
                         WHERE a.status OPERATOR(pg_catalog.=) 'published'),
           words_xact = pg_catalog.pg_current_xact_id(),
           counts_xact = pg_catalog.pg_current_xact_id();
    RETURN words;
END
$$;
COMMENT ON FUNCTION agentmarket.rebuild_search_vocabulary() IS
    'Rebuilds the search vocabulary, typo index and corpus size from the published listings (after a bulk load with triggers off); returns the number of words. service_role only.';
GRANT EXECUTE ON FUNCTION agentmarket.rebuild_search_vocabulary() TO service_role;

------------------------------------------------------------------------------
-- Query planning
------------------------------------------------------------------------------
CREATE TYPE agentmarket_private.search_plan AS (
  query tsquery,                -- what a listing must match (NULL: anything)
  lexemes text[],               -- the terms: each query word, its typo and prefix alternatives
  groups integer[],             -- ... the word (1-based) each term belongs to
  factors double precision[],   -- ... exact 1, typo: search_scoring().typo_factor
  prefixes boolean[],           -- ... matches as a prefix (the last word typed)
  ngroups integer,              -- number of words; 0: no text score, relevance is the static score
  estimate bigint,              -- upper estimate of listings matching
  published bigint,             -- published listings
  any_word boolean,             -- the query has an OR: a match need not have every word
  group_terms text[],           -- per word: its terms as a tsquery (t1 | t2 | t3:*)
  group_name_terms text[],      -- ... as search_fields terms of the name (a/t1 | a/t2 | a/t3:*)
  group_head_terms text[],      -- ... and of the tagline and tags (b/t1 | ...)
  group_docs bigint[],          -- per word: listings with a term
  group_name_docs bigint[],     -- per word: listings with a term in the name
  group_head_docs bigint[],     -- ... in the tagline or tags
  group_body_docs bigint[],     -- ... only in the description
  group_name_bound double precision[],  -- per word: best value of a term in a name
  group_head_bound double precision[],  -- ... in a tagline or tags
  group_body_bound double precision[]   -- ... in a description
);
COMMENT ON TYPE agentmarket_private.search_plan IS
    'A user''s query turned into an expanded tsquery, scoring terms and the bounds search_agents stops on.';

-- A lexeme quoted for tsquery input. (No SET clause, every name
-- qualified or in pg_catalog: it inlines, and is only called by the search
-- functions, whose search_path it runs under.)
CREATE FUNCTION agentmarket_private.search_quote(p_lexeme text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT '''' OPERATOR(pg_catalog.||)
           pg_catalog.replace(pg_catalog.replace(p_lexeme, '\', '\\'), '''', '''''')
           OPERATOR(pg_catalog.||) ''''
$$;
COMMENT ON FUNCTION agentmarket_private.search_quote(text) IS 'A lexeme quoted as a tsquery operand.';

-- In C (search_prepare.c): every search starts here, and kept SPI plans for
-- the vocabulary lookups cost less than planning them per call.
CREATE FUNCTION agentmarket_private.search_prepare(p_query text)
RETURNS agentmarket_private.search_plan
AS 'MODULE_PATHNAME', 'search_prepare'
LANGUAGE C STABLE;
COMMENT ON FUNCTION agentmarket_private.search_prepare(text) IS
    'Turns a user''s query into a search plan: websearch syntax, one-typo and last-word-prefix alternatives from the vocabulary, estimates and score bounds; 22023 for a query over 4,096 characters or with more than 12 words.';
