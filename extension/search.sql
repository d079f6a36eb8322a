-- search.sql: marketplace search.
--
-- Each listing carries a weighted tsvector (name A; tagline and tags B;
-- description C) and a static quality score (Bayesian-average rating and log
-- of hires), both kept by a trigger.  A vocabulary of the lexemes of published
-- listings (with how many listings have each, and in which fields) and a
-- deletion index over it give typo candidates and the bounds that let
-- search_agents stop early: for a query word found in most listings it walks
-- listings in descending static score and stops once no listing left can
-- beat the page it holds.  The scoring functions are in search.c.

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
    'Text score in [0, 1]: per query word the best weight (A 1, B 0.5, C 0.25) times the factor of the matching term (exact 1, typo 0.5, completion 0.8), averaged over words.';

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

REVOKE ALL ON FUNCTION agentmarket_private.search_typo_keys(text),
    agentmarket_private.search_is_one_typo(text, text),
    agentmarket_private.search_text_score(tsvector, text[], integer[], double precision[], boolean[], integer),
    agentmarket_private.search_text_bound(double precision[]),
    agentmarket_private.search_static_score(numeric, integer, integer),
    agentmarket_private.search_blend(double precision, double precision),
    agentmarket_private.search_positive_lexemes(tsquery) FROM PUBLIC;

------------------------------------------------------------------------------
-- Search fields of a listing
------------------------------------------------------------------------------
ALTER TABLE agentmarket.agents
  ADD COLUMN search_fields tsvector,
  ADD COLUMN search_document tsvector,
  ADD COLUMN search_static double precision NOT NULL DEFAULT 0;
COMMENT ON COLUMN agentmarket.agents.search_fields IS
    'Search: the words of the name as a/word and of the tagline and tags as b/word (no positions), so one GIN index finds where a word occurs. Kept by a trigger.';
COMMENT ON COLUMN agentmarket.agents.search_document IS
    'Search: name (weight A), tagline and tags (B), description (C). Kept by a trigger.';
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
REVOKE ALL ON FUNCTION agentmarket_private.search_join(tsvector, tsvector) FROM PUBLIC;

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
         WHERE x IS NOT NULL))
$$;
COMMENT ON FUNCTION agentmarket_private.search_filter_tokens(text, text, text[], text[]) IS
    'The filter lexemes of a listing (category, pricing model, each relay and model), each with a leading space no query word has.';
REVOKE ALL ON FUNCTION agentmarket_private.search_filter_tokens(text, text, text[], text[]) FROM PUBLIC;

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
        NEW.search_fields := pg_catalog.array_to_tsvector(ARRAY(
            SELECT 'a/' OPERATOR(pg_catalog.||) l FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(name_vector)) l
            UNION
            SELECT 'b/' OPERATOR(pg_catalog.||) l FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(head_vector)) l));
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
REVOKE ALL ON FUNCTION agentmarket_private.agents_search_fields() FROM PUBLIC;
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
  published INTEGER NOT NULL DEFAULT 0 CONSTRAINT search_corpus_published_check CHECK (published >= 0)
);
COMMENT ON TABLE agentmarket_private.search_corpus IS 'Number of published listings.';
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
        IF NOT EXISTS (
            SELECT FROM old_rows o JOIN new_rows n ON n.id OPERATOR(pg_catalog.=) o.id
             WHERE (o.status OPERATOR(pg_catalog.=) 'published') OPERATOR(pg_catalog.<>) (n.status OPERATOR(pg_catalog.=) 'published')
                OR (n.status OPERATOR(pg_catalog.=) 'published' AND o.search_document IS DISTINCT FROM n.search_document)) THEN
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
    -- One statement: corpus size, vocabulary counts (in lexeme order, so
    -- concurrent publications lock rows in one order) and typo keys of new words.
    EXECUTE pg_catalog.format($q$
        WITH delta AS MATERIALIZED (%s),
        words AS MATERIALIZED (
            SELECT u.lexeme, pg_catalog.sum(d.sign)::integer AS ndoc,
                   COALESCE(pg_catalog.sum(d.sign) FILTER (WHERE 'A' OPERATOR(pg_catalog.=) ANY (u.weights)), 0)::integer AS n_a,
                   COALESCE(pg_catalog.sum(d.sign) FILTER (WHERE 'B' OPERATOR(pg_catalog.=) ANY (u.weights)), 0)::integer AS n_b,
                   COALESCE(pg_catalog.sum(d.sign) FILTER (WHERE NOT (u.weights OPERATOR(pg_catalog.&&) '{A,B}'::text[])), 0)::integer AS n_c
              FROM delta d, pg_catalog.unnest(d.document) u
             GROUP BY u.lexeme),
        corpus AS (
            UPDATE agentmarket_private.search_corpus c
               SET published = c.published OPERATOR(pg_catalog.+) (SELECT pg_catalog.sum(d.sign) FROM delta d)
             WHERE (SELECT pg_catalog.sum(d.sign) FROM delta d) OPERATOR(pg_catalog.<>) 0),
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
            RETURNING v.lexeme, v.ndoc)
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
                RETURNING v.lexeme)
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
REVOKE ALL ON FUNCTION agentmarket_private.agents_search_vocabulary() FROM PUBLIC;
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
                         WHERE a.status OPERATOR(pg_catalog.=) 'published');
    RETURN words;
END
$$;
COMMENT ON FUNCTION agentmarket.rebuild_search_vocabulary() IS
    'Rebuilds the search vocabulary, typo index and corpus size from the published listings (after a bulk load with triggers off); returns the number of words. service_role only.';
REVOKE ALL ON FUNCTION agentmarket.rebuild_search_vocabulary() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.rebuild_search_vocabulary() TO service_role;

------------------------------------------------------------------------------
-- Query planning
------------------------------------------------------------------------------
CREATE TYPE agentmarket_private.search_plan AS (
  query tsquery,                -- what a listing must match (NULL: anything)
  lexemes text[],               -- the terms: each query word, its typo and prefix alternatives
  groups integer[],             -- ... the word (1-based) each term belongs to
  factors double precision[],   -- ... exact 1, typo 0.5
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
REVOKE ALL ON FUNCTION agentmarket_private.search_quote(text) FROM PUBLIC;

CREATE FUNCTION agentmarket_private.search_prepare(p_query text)
RETURNS agentmarket_private.search_plan
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, agentmarket_private, pg_temp
AS $$
DECLARE
    p agentmarket_private.search_plan;
    q0 tsquery;
    positives text[];
    tail text;
    last_lexeme text;
    published bigint;
    r record;
BEGIN
    p.ngroups := 0;
    IF p_query IS NULL OR pg_catalog.btrim(p_query) OPERATOR(pg_catalog.=) '' THEN
        RETURN p;
    END IF;
    -- websearch syntax never raises a syntax error; long input is cut.
    q0 := pg_catalog.websearch_to_tsquery('english'::regconfig, pg_catalog.left(p_query, 512));
    IF pg_catalog.numnode(q0) OPERATOR(pg_catalog.=) 0 THEN
        RETURN p;               -- only stop words
    END IF;
    p.query := q0;
    positives := search_positive_lexemes(q0);
    IF pg_catalog.cardinality(positives) OPERATOR(pg_catalog.=) 0 THEN
        RETURN p;               -- only exclusions: a filter without a text score
    END IF;
    -- The last word is matched as a prefix when the query ends inside it.
    tail := pg_catalog.substring(p_query, '([[:alnum:]]+)$');
    IF tail IS NOT NULL THEN
        SELECT t INTO last_lexeme
          FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(pg_catalog.to_tsvector('english'::regconfig, tail))) t
         LIMIT 1;
        IF NOT (last_lexeme OPERATOR(pg_catalog.=) ANY (positives)) THEN
            last_lexeme := NULL;
        END IF;
    END IF;
    SELECT c.published INTO published FROM search_corpus c;

    WITH words AS (
        SELECT t.w, t.g::integer AS g FROM pg_catalog.unnest(positives) WITH ORDINALITY t(w, g)
    ), terms AS (
        SELECT words.g, words.w AS lexeme, 1.0::float8 AS factor,
               COALESCE(words.w OPERATOR(pg_catalog.=) last_lexeme, false) AS prefix, 0 AS kind
          FROM words
        UNION ALL
        -- One typo in words of five letters or more: candidates share a
        -- deletion key; the C check keeps those exactly one edit away.
        SELECT words.g, c.lexeme, 0.5::float8, false, 1
          FROM words CROSS JOIN LATERAL (
                SELECT t.lexeme FROM search_typo_index t
                  JOIN search_vocabulary v ON v.lexeme OPERATOR(pg_catalog.=) t.lexeme
                 WHERE t.key OPERATOR(pg_catalog.=) ANY (search_typo_keys(words.w))
                   AND t.lexeme OPERATOR(pg_catalog.<>) words.w
                   AND v.ndoc OPERATOR(pg_catalog.>) 0
                   AND search_is_one_typo(words.w, t.lexeme)
                 GROUP BY t.lexeme, v.ndoc
                 ORDER BY v.ndoc DESC, t.lexeme LIMIT 8) c
         WHERE pg_catalog.char_length(words.w) BETWEEN 5 AND 64
    ), stats AS (
        -- Vocabulary counts of each term: the exact word, and for a prefix its
        -- completions (the range (w, w || U+10FFFF)), which score 0.8 of it.
        -- A last word that no word of the vocabulary extends is matched
        -- exactly (a GIN prefix scan costs more than a lookup).
        SELECT terms.g, terms.lexeme, terms.factor, terms.prefix AND COALESCE(x.ndoc, 0) OPERATOR(pg_catalog.>) 0 AS prefix,
               terms.kind, e.ndoc OPERATOR(pg_catalog.+) COALESCE(x.ndoc, 0) AS ndoc,
               e.n_a OPERATOR(pg_catalog.+) COALESCE(x.n_a, 0) AS n_a,
               e.n_b OPERATOR(pg_catalog.+) COALESCE(x.n_b, 0) AS n_b,
               e.n_c OPERATOR(pg_catalog.+) COALESCE(x.n_c, 0) AS n_c,
               GREATEST(CASE WHEN e.n_a OPERATOR(pg_catalog.>) 0 THEN terms.factor ELSE 0 END,
                        CASE WHEN x.n_a OPERATOR(pg_catalog.>) 0 THEN terms.factor * 0.8 ELSE 0 END) AS name_bound,
               GREATEST(CASE WHEN e.n_b OPERATOR(pg_catalog.>) 0 THEN terms.factor * 0.5 ELSE 0 END,
                        CASE WHEN x.n_b OPERATOR(pg_catalog.>) 0 THEN terms.factor * 0.8 * 0.5 ELSE 0 END) AS head_bound,
               GREATEST(CASE WHEN e.ndoc OPERATOR(pg_catalog.>) 0 THEN terms.factor * 0.25 ELSE 0 END,
                        CASE WHEN x.ndoc OPERATOR(pg_catalog.>) 0 THEN terms.factor * 0.8 * 0.25 ELSE 0 END) AS body_bound
          FROM terms
          CROSS JOIN LATERAL (
                SELECT COALESCE(pg_catalog.max(v.ndoc), 0) AS ndoc, COALESCE(pg_catalog.max(v.n_a), 0) AS n_a,
                       COALESCE(pg_catalog.max(v.n_b), 0) AS n_b, COALESCE(pg_catalog.max(v.n_c), 0) AS n_c
                  FROM search_vocabulary v WHERE v.lexeme OPERATOR(pg_catalog.=) (terms.lexeme COLLATE "C")) e
          LEFT JOIN LATERAL (
                SELECT pg_catalog.sum(v.ndoc) AS ndoc, pg_catalog.sum(v.n_a) AS n_a, pg_catalog.sum(v.n_b) AS n_b,
                       pg_catalog.sum(v.n_c) AS n_c
                  FROM search_vocabulary v
                 WHERE terms.prefix
                   AND v.lexeme OPERATOR(pg_catalog.>) (terms.lexeme COLLATE "C")
                   AND v.lexeme OPERATOR(pg_catalog.<) ((terms.lexeme OPERATOR(pg_catalog.||) pg_catalog.chr(1114111)) COLLATE "C")) x ON true
    ), per_group AS (
        SELECT st.g,
               pg_catalog.max(st.name_bound) AS name_bound,
               pg_catalog.max(st.head_bound) AS head_bound,
               pg_catalog.max(st.body_bound) AS body_bound,
               LEAST(pg_catalog.sum(st.ndoc), published) AS ndoc,
               pg_catalog.sum(st.n_a) AS name_docs,
               pg_catalog.sum(st.n_b) AS head_docs,
               pg_catalog.sum(st.n_c) AS body_docs,
               pg_catalog.string_agg(search_quote(st.lexeme) OPERATOR(pg_catalog.||)
                                     CASE WHEN st.prefix THEN ':*' ELSE '' END, ' | ' ORDER BY st.kind, st.lexeme) AS alternatives,
               pg_catalog.string_agg(search_quote('a/' OPERATOR(pg_catalog.||) st.lexeme) OPERATOR(pg_catalog.||)
                                     CASE WHEN st.prefix THEN ':*' ELSE '' END, ' | ' ORDER BY st.kind, st.lexeme) AS name_terms,
               pg_catalog.string_agg(search_quote('b/' OPERATOR(pg_catalog.||) st.lexeme) OPERATOR(pg_catalog.||)
                                     CASE WHEN st.prefix THEN ':*' ELSE '' END, ' | ' ORDER BY st.kind, st.lexeme) AS head_terms,
               pg_catalog.count(*) OPERATOR(pg_catalog.>) 1 OR pg_catalog.bool_or(st.prefix) AS expanded
          FROM stats st GROUP BY st.g
    )
    SELECT (SELECT pg_catalog.array_agg(st.lexeme ORDER BY st.g, st.kind, st.lexeme) FROM stats st) AS lexemes,
           (SELECT pg_catalog.array_agg(st.g ORDER BY st.g, st.kind, st.lexeme) FROM stats st) AS groups,
           (SELECT pg_catalog.array_agg(st.factor ORDER BY st.g, st.kind, st.lexeme) FROM stats st) AS factors,
           (SELECT pg_catalog.array_agg(st.prefix ORDER BY st.g, st.kind, st.lexeme) FROM stats st) AS prefixes,
           pg_catalog.count(*)::integer AS ngroups,
           CASE WHEN q0::text OPERATOR(pg_catalog.~~) '%|%' THEN pg_catalog.sum(pg.ndoc)
                ELSE pg_catalog.min(pg.ndoc) END AS estimate,
           pg_catalog.array_agg(pg.alternatives ORDER BY pg.g) AS group_terms,
           pg_catalog.array_agg(pg.name_terms ORDER BY pg.g) AS group_name_terms,
           pg_catalog.array_agg(pg.head_terms ORDER BY pg.g) AS group_head_terms,
           pg_catalog.array_agg(pg.ndoc::bigint ORDER BY pg.g) AS group_docs,
           pg_catalog.array_agg(pg.name_docs::bigint ORDER BY pg.g) AS group_name_docs,
           pg_catalog.array_agg(pg.head_docs::bigint ORDER BY pg.g) AS group_head_docs,
           pg_catalog.array_agg(pg.body_docs::bigint ORDER BY pg.g) AS group_body_docs,
           pg_catalog.array_agg(pg.name_bound::float8 ORDER BY pg.g) AS group_name_bound,
           pg_catalog.array_agg(pg.head_bound::float8 ORDER BY pg.g) AS group_head_bound,
           pg_catalog.array_agg(pg.body_bound::float8 ORDER BY pg.g) AS group_body_bound,
           pg_catalog.array_agg(pg.alternatives ORDER BY pg.g) FILTER (WHERE pg.expanded) AS rewrites,
           pg_catalog.array_agg(positives[pg.g] ORDER BY pg.g) FILTER (WHERE pg.expanded) AS rewritten
      INTO r FROM per_group pg;

    p.lexemes := r.lexemes; p.groups := r.groups; p.factors := r.factors; p.prefixes := r.prefixes;
    p.ngroups := r.ngroups; p.estimate := r.estimate; p.group_terms := r.group_terms;
    p.group_name_terms := r.group_name_terms; p.group_head_terms := r.group_head_terms;
    p.published := published; p.any_word := q0::text OPERATOR(pg_catalog.~~) '%|%';
    p.group_docs := r.group_docs;
    p.group_name_docs := r.group_name_docs; p.group_head_docs := r.group_head_docs;
    p.group_body_docs := r.group_body_docs;
    p.group_name_bound := r.group_name_bound; p.group_head_bound := r.group_head_bound;
    p.group_body_bound := r.group_body_bound;
    -- Each word becomes (word | typo | ... ) or word:* wherever it occurs.
    FOR i IN 1 .. COALESCE(pg_catalog.cardinality(r.rewrites), 0) LOOP
        p.query := pg_catalog.ts_rewrite(p.query, search_quote(r.rewritten[i])::tsquery, r.rewrites[i]::tsquery);
    END LOOP;
    RETURN p;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_prepare(text) IS
    'Turns a user''s query into a search plan: websearch syntax, one-typo and last-word-prefix alternatives from the vocabulary, estimates and score bounds.';
REVOKE ALL ON FUNCTION agentmarket_private.search_prepare(text) FROM PUBLIC;

------------------------------------------------------------------------------
-- Cursors
------------------------------------------------------------------------------
-- An opaque page cursor: base64url of "sort|key|key2|id". (No SET clause, every name
-- qualified or in pg_catalog: it inlines, and is only called by the search
-- functions, whose search_path it runs under.)
CREATE FUNCTION agentmarket_private.search_cursor(p_sort text, p_key text, p_key2 text, p_id uuid)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.rtrim(pg_catalog.translate(pg_catalog.encode(pg_catalog.convert_to(
               pg_catalog.concat_ws('|', p_sort, COALESCE(p_key, ''), COALESCE(p_key2, ''), p_id::text), 'UTF8'),
               'base64'), E'+/\n', '-_'), '=')
$$;
COMMENT ON FUNCTION agentmarket_private.search_cursor(text, text, text, uuid) IS
    'Encodes a keyset position as an opaque URL-safe cursor.';
REVOKE ALL ON FUNCTION agentmarket_private.search_cursor(text, text, text, uuid) FROM PUBLIC;

-- The four parts of a cursor made for this sort; 22023 when it is not one.
-- (No SET clause: called on every search, it runs under the search_path of
-- the search function calling it; every name is qualified or in pg_catalog.)
CREATE FUNCTION agentmarket_private.search_cursor_parts(p_cursor text, p_sort text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    parts text[];
    padded text;
BEGIN
    BEGIN
        IF p_cursor OPERATOR(pg_catalog.!~) '^[A-Za-z0-9_-]+$' OR pg_catalog.length(p_cursor) OPERATOR(pg_catalog.>) 400 THEN
            RAISE EXCEPTION USING ERRCODE = '22P02';
        END IF;
        padded := pg_catalog.translate(p_cursor, '-_', '+/');
        padded := padded OPERATOR(pg_catalog.||)
                  pg_catalog.repeat('=', (4 OPERATOR(pg_catalog.-) (pg_catalog.length(padded) OPERATOR(pg_catalog.%) 4)) OPERATOR(pg_catalog.%) 4);
        parts := pg_catalog.string_to_array(
                     pg_catalog.convert_from(pg_catalog.decode(padded, 'base64'), 'UTF8'), '|');
        IF pg_catalog.cardinality(parts) OPERATOR(pg_catalog.<>) 4 OR parts[1] IS DISTINCT FROM p_sort THEN
            RAISE EXCEPTION USING ERRCODE = '22P02';
        END IF;
        PERFORM parts[4]::uuid;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'invalid page cursor' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('page_after must be the cursor of a row returned by search_agents with sort %s.', p_sort);
    END;
    RETURN parts;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_cursor_parts(text, text) IS
    'Decodes a page cursor made for the given sort; raises 22023 for anything else.';
REVOKE ALL ON FUNCTION agentmarket_private.search_cursor_parts(text, text) FROM PUBLIC;

------------------------------------------------------------------------------
-- Top-k by relevance
------------------------------------------------------------------------------
-- The tiers of a query with up to three words: every combination of where
-- each word matches (name; tagline or tags but not the name; neither), with
-- the best text score a listing in the tier can have, its size estimated as
-- if words were independent and, when some word must be in a name, tagline
-- or tags, the search_fields condition that selects the tier through its GIN
-- index.  Tiers nothing can be in are left out.
CREATE FUNCTION agentmarket_private.search_tiers(p agentmarket_private.search_plan)
RETURNS TABLE (bound double precision, estimate double precision, driver text, condition text)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, agentmarket_private, pg_temp
AS $$
DECLARE
    code integer;
    level integer;
    bounds double precision[];
    parts text[];
    required text[];
    positive boolean;
    n double precision := GREATEST(p.published, 1);
    possible boolean;
BEGIN
    IF p.ngroups NOT BETWEEN 1 AND 3 THEN
        RAISE EXCEPTION 'search tiers need one to three words' USING ERRCODE = '22023';
    END IF;
    FOR t IN 0 .. (3 OPERATOR(pg_catalog.^) p.ngroups)::integer OPERATOR(pg_catalog.-) 1 LOOP
        code := t; bounds := '{}'; parts := '{}'; required := '{}'; positive := false;
        estimate := n; possible := true;
        FOR g IN 1 .. p.ngroups LOOP
            level := code OPERATOR(pg_catalog.%) 3;
            code := code OPERATOR(pg_catalog./) 3;
            IF level OPERATOR(pg_catalog.=) 0 THEN          -- in the name
                possible := possible AND p.group_name_bound[g] OPERATOR(pg_catalog.>) 0;
                bounds := bounds OPERATOR(pg_catalog.||)
                          GREATEST(p.group_name_bound[g], p.group_head_bound[g], p.group_body_bound[g]);
                estimate := estimate OPERATOR(pg_catalog.*) p.group_name_docs[g] OPERATOR(pg_catalog./) n;
                parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('(%s)', p.group_name_terms[g]);
                required := required OPERATOR(pg_catalog.||) pg_catalog.format('(%s)', p.group_name_terms[g]);
                positive := true;
            ELSIF level OPERATOR(pg_catalog.=) 1 THEN       -- in the tagline or tags, not the name
                possible := possible AND p.group_head_bound[g] OPERATOR(pg_catalog.>) 0;
                bounds := bounds OPERATOR(pg_catalog.||) GREATEST(p.group_head_bound[g], p.group_body_bound[g]);
                estimate := estimate OPERATOR(pg_catalog.*) p.group_head_docs[g] OPERATOR(pg_catalog./) n;
                parts := parts OPERATOR(pg_catalog.||)
                         pg_catalog.format('(%s) & !(%s)', p.group_head_terms[g], p.group_name_terms[g]);
                required := required OPERATOR(pg_catalog.||) pg_catalog.format('(%s)', p.group_head_terms[g]);
                positive := true;
            ELSE                                            -- only in the description, or nowhere
                bounds := bounds OPERATOR(pg_catalog.||) p.group_body_bound[g];
                -- Without an OR every word must match: here, only in a description.
                IF NOT p.any_word THEN
                    possible := possible AND p.group_body_docs[g] OPERATOR(pg_catalog.>) 0;
                    estimate := estimate OPERATOR(pg_catalog.*) p.group_body_docs[g] OPERATOR(pg_catalog./) n;
                END IF;
                parts := parts OPERATOR(pg_catalog.||)
                         pg_catalog.format('!(%s) & !(%s)', p.group_name_terms[g], p.group_head_terms[g]);
            END IF;
        END LOOP;
        CONTINUE WHEN NOT possible;
        bound := search_text_bound(bounds);
        -- The GIN scan intersects the words that must be present (the
        -- all-description tier has none); the exclusions are checked on the rows.
        driver := CASE WHEN positive THEN pg_catalog.format('a.search_fields @@ %L::tsquery',
                                                            pg_catalog.array_to_string(required, ' & ')) END;
        condition := pg_catalog.format('a.search_fields @@ %L::tsquery', pg_catalog.array_to_string(parts, ' & '));
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_tiers(agentmarket_private.search_plan) IS
    'The possible tiers of a one- to three-word query (where each word matches), with their best text score, estimated size, GIN condition and full condition on search_fields.';
REVOKE ALL ON FUNCTION agentmarket_private.search_tiers(agentmarket_private.search_plan) FROM PUBLIC;

-- The k best of two score-ordered lists (a listing in both counts once).
-- (No SET clause: called on every search, it runs under the search_path of
-- the search function calling it; every name is qualified or in pg_catalog.)
CREATE FUNCTION agentmarket_private.search_merge(
    ids1 uuid[], scores1 double precision[], ids2 uuid[], scores2 double precision[], k integer,
    OUT ids uuid[], OUT scores double precision[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT COALESCE(pg_catalog.array_agg(u.id ORDER BY u.score DESC, u.id DESC), '{}'),
           COALESCE(pg_catalog.array_agg(u.score ORDER BY u.score DESC, u.id DESC), '{}')
      FROM (SELECT v.id, v.score FROM (
                SELECT * FROM ROWS FROM (pg_catalog.unnest(ids1), pg_catalog.unnest(scores1)) a(id, score)
                UNION
                SELECT * FROM ROWS FROM (pg_catalog.unnest(ids2), pg_catalog.unnest(scores2)) b(id, score)) v
             ORDER BY v.score DESC, v.id DESC LIMIT k) u
$$;
COMMENT ON FUNCTION agentmarket_private.search_merge(uuid[], double precision[], uuid[], double precision[], integer) IS
    'The k best (score, id) pairs of two lists, best first; duplicates count once.';
REVOKE ALL ON FUNCTION agentmarket_private.search_merge(uuid[], double precision[], uuid[], double precision[], integer) FROM PUBLIC;

-- Filters shared by the dynamic tier queries ($7 to $11).
-- (No SET clause: called on every search, it runs under the search_path of
-- the search function calling it; every name is qualified or in pg_catalog.)
CREATE FUNCTION agentmarket_private.search_filter_sql()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 'a.status = ''published'''
        ' AND ($7::text IS NULL OR a.category = $7::text)'
        ' AND ($8::text[] IS NULL OR a.tags @> $8::text[])'
        ' AND ($9::text[] IS NULL OR a.supported_relays && $9::text[])'
        ' AND ($10::text[] IS NULL OR a.supported_models && $10::text[])'
        ' AND ($11::text IS NULL OR a.pricing_model = $11::text)'
$$;
COMMENT ON FUNCTION agentmarket_private.search_filter_sql() IS
    'The WHERE clause of the search filters, with the parameters search_agents binds.';
REVOKE ALL ON FUNCTION agentmarket_private.search_filter_sql() FROM PUBLIC;

------------------------------------------------------------------------------
-- search_agents and agent_facets
------------------------------------------------------------------------------
CREATE TYPE agentmarket.agent_search_result AS (
  id uuid,
  slug text,
  name text,
  tagline text,
  icon_url text,
  category text,
  pricing_model text,
  credits_per_session integer,
  avg_rating numeric(2,1),
  total_reviews integer,
  total_hires integer,
  supported_relays text[],
  supported_models text[],
  tags text[],
  published_at timestamptz,
  score double precision,
  cursor text
);
COMMENT ON TYPE agentmarket.agent_search_result IS
    'A row of search_agents: the listing card, its score and the cursor of the next page after it.';

-- Raises 22023 for bad search arguments; normalises empty arrays to NULL.
-- (No SET clause: called on every search, it runs under the search_path of
-- the search function calling it; every name is qualified or in pg_catalog.)
CREATE FUNCTION agentmarket_private.search_check_filters(
    INOUT p_tags text[], INOUT p_relays text[], INOUT p_models text[], p_pricing_model text)
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_pricing_model IS NOT NULL AND p_pricing_model NOT IN ('per_session', 'per_task', 'free') THEN
        RAISE EXCEPTION 'unknown pricing model "%"', p_pricing_model USING ERRCODE = '22023',
            HINT = 'Use per_session, per_task or free.';
    END IF;
    IF p_relays IS NOT NULL AND NOT (p_relays OPERATOR(pg_catalog.<@) ARRAY['telegram', 'whatsapp', 'slack', 'discord']) THEN
        RAISE EXCEPTION 'unknown relay in %', p_relays USING ERRCODE = '22023',
            HINT = 'Relays are telegram, whatsapp, slack and discord.';
    END IF;
    IF p_models IS NOT NULL AND NOT (p_models OPERATOR(pg_catalog.<@) ARRAY['claude', 'gpt', 'gemini', 'llama', 'mistral']) THEN
        RAISE EXCEPTION 'unknown model in %', p_models USING ERRCODE = '22023',
            HINT = 'Models are claude, gpt, gemini, llama and mistral.';
    END IF;
    IF pg_catalog.cardinality(p_tags) OPERATOR(pg_catalog.=) 0 THEN p_tags := NULL; END IF;
    IF pg_catalog.cardinality(p_relays) OPERATOR(pg_catalog.=) 0 THEN p_relays := NULL; END IF;
    IF pg_catalog.cardinality(p_models) OPERATOR(pg_catalog.=) 0 THEN p_models := NULL; END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_check_filters(text[], text[], text[], text) IS
    'Validates search filters (22023 on an unknown relay, model or pricing model); empty arrays mean no filter.';
REVOKE ALL ON FUNCTION agentmarket_private.search_check_filters(text[], text[], text[], text) FROM PUBLIC;

CREATE FUNCTION agentmarket.search_agents(
    query text DEFAULT NULL, category text DEFAULT NULL, tags text[] DEFAULT NULL,
    relays text[] DEFAULT NULL, models text[] DEFAULT NULL, pricing_model text DEFAULT NULL,
    sort text DEFAULT 'relevance', page_size integer DEFAULT 20, page_after text DEFAULT NULL)
RETURNS SETOF agentmarket.agent_search_result
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
SET plan_cache_mode = force_custom_plan
SET jit = off
SET max_parallel_workers_per_gather = 0
SET extra_float_digits = 3
AS $$
DECLARE
    f_category text := search_agents.category;
    f_tags text[] := search_agents.tags;
    f_relays text[] := search_agents.relays;
    f_models text[] := search_agents.models;
    f_pricing text := search_agents.pricing_model;
    f_sort text := search_agents.sort;
    k integer := search_agents.page_size;
    p agentmarket_private.search_plan;
    c text[];
    c_f double precision;
    c_n numeric;
    c_i bigint;
    c_id uuid;
    exact boolean;
    tier record;
    max_static double precision;
    filters text := search_filter_sql();
    dense_bound double precision;
    last_static double precision;
    last_id uuid;
    walked integer := 0;
    hits integer := 0;
    hits_seen integer;
    projected double precision;
    tiers_done boolean := false;
    -- Matches up to which scoring them all beats any walk (a tuning knob;
    -- every strategy returns the same rows).
    exhaustive_setting text := pg_catalog.current_setting('agentmarket.search_exhaustive_limit', true);
    exhaustive_limit double precision := CASE WHEN exhaustive_setting OPERATOR(pg_catalog.~) '^[0-9]{1,7}$'
                                              THEN exhaustive_setting::integer ELSE 6000 END;
    joint double precision;
    fsel double precision;
    published double precision;
    filter_text text;
    gin_query tsquery;
    expected double precision;
    by_gin boolean;
    cap integer;
    c_t timestamptz;
    walk_ids uuid[];
    walk_scores double precision[];
    top_ids uuid[] := '{}';
    top_scores double precision[] := '{}';
    m integer;
    n integer;
    b double precision;
BEGIN
    IF k IS NULL OR k OPERATOR(pg_catalog.<) 1 OR k OPERATOR(pg_catalog.>) 100 THEN
        RAISE EXCEPTION 'page_size must be between 1 and 100' USING ERRCODE = '22023';
    END IF;
    IF f_sort IS NULL OR f_sort NOT IN ('relevance', 'rating', 'popular', 'newest') THEN
        RAISE EXCEPTION 'unknown sort "%"', f_sort USING ERRCODE = '22023',
            HINT = 'Sort by relevance, rating, popular or newest.';
    END IF;
    SELECT x.p_tags, x.p_relays, x.p_models INTO f_tags, f_relays, f_models
      FROM search_check_filters(f_tags, f_relays, f_models, f_pricing) x;
    IF page_after IS NOT NULL THEN
        c := search_cursor_parts(page_after, f_sort);
        BEGIN
            c_id := c[4]::uuid;
            CASE f_sort
                WHEN 'relevance' THEN c_f := c[2]::double precision;
                WHEN 'rating' THEN c_n := c[2]::numeric; c_i := c[3]::bigint;
                ELSE c_i := c[2]::bigint;
            END CASE;
            c_t := 'epoch'::timestamptz OPERATOR(pg_catalog.+) (c_i::double precision OPERATOR(pg_catalog.*) '1 microsecond'::interval);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'invalid page cursor' USING ERRCODE = '22023',
                DETAIL = 'page_after must be the cursor of a row returned by search_agents.';
        END;
    END IF;
    p := search_prepare(search_agents.query);

    -- Estimates from the vocabulary, before any listing is read.  joint: the
    -- matches if the words were independent (at most p.estimate, the rarest
    -- word's postings).  The filters are lexemes of the document too (see
    -- search_filter_tokens): gin_query intersects them with the words in one
    -- GIN scan, and their counts give fsel, the share of listings they keep
    -- (tags: a guess of 10%).  expected: the matches that pass the filters.
    SELECT c.published INTO published FROM search_corpus c;
    published := GREATEST(published, 1);
    joint := p.estimate;
    IF p.ngroups OPERATOR(pg_catalog.>) 1 AND NOT p.any_word THEN
        SELECT LEAST(p.estimate, published OPERATOR(pg_catalog.*) pg_catalog.exp(pg_catalog.sum(pg_catalog.ln(
                   GREATEST(d, 1)::double precision OPERATOR(pg_catalog./) published))))
          INTO joint FROM pg_catalog.unnest(p.group_docs) d;
    END IF;
    SELECT pg_catalog.string_agg('(' OPERATOR(pg_catalog.||) g.alternatives OPERATOR(pg_catalog.||) ')', ' & '),
           COALESCE(pg_catalog.exp(pg_catalog.sum(pg_catalog.ln(GREATEST(LEAST(g.n OPERATOR(pg_catalog./) published, 1), 1e-9)))), 1)
      INTO filter_text, fsel
      FROM (SELECT x.grp, pg_catalog.string_agg(search_quote(x.token), ' | ') AS alternatives,
                   pg_catalog.sum(COALESCE(v.ndoc, 0))::double precision AS n
              FROM (SELECT 1 AS grp, ' category ' OPERATOR(pg_catalog.||) f_category AS token WHERE f_category IS NOT NULL
                    UNION ALL SELECT 2, ' pricing ' OPERATOR(pg_catalog.||) f_pricing WHERE f_pricing IS NOT NULL
                    UNION ALL SELECT 3, ' relay ' OPERATOR(pg_catalog.||) fr.v FROM pg_catalog.unnest(f_relays) fr(v)
                    UNION ALL SELECT 4, ' model ' OPERATOR(pg_catalog.||) fm.v FROM pg_catalog.unnest(f_models) fm(v)) x
              LEFT JOIN search_vocabulary v ON v.lexeme OPERATOR(pg_catalog.=) (x.token COLLATE "C")
             GROUP BY x.grp) g;
    IF f_tags IS NOT NULL THEN
        fsel := fsel OPERATOR(pg_catalog.*) 0.1;
    END IF;
    gin_query := CASE WHEN filter_text IS NULL THEN p.query
                      WHEN p.query IS NULL THEN filter_text::tsquery
                      ELSE p.query OPERATOR(pg_catalog.&&) filter_text::tsquery END;
    expected := CASE WHEN p.query IS NULL THEN published ELSE joint END OPERATOR(pg_catalog.*) fsel;

    IF f_sort OPERATOR(pg_catalog.<>) 'relevance' OR p.ngroups OPERATOR(pg_catalog.=) 0 THEN
        -- Sorted by a column, keyset after the cursor.  Few expected matches
        -- (under L/3): they are found through GIN and sorted.  Otherwise the
        -- sort's index is walked for a bounded number of listings, three
        -- times as many as should hold a page of matches; when that does not
        -- fill the page, GIN and sort after all.
        by_gin := gin_query IS NOT NULL AND expected IS NOT NULL
                  AND expected OPERATOR(pg_catalog.<) (exhaustive_limit OPERATOR(pg_catalog./) 3);
        IF NOT by_gin THEN
            cap := CASE WHEN p.query IS NULL THEN k WHEN joint IS NULL THEN 4096
                        ELSE LEAST(4096, pg_catalog.ceil(3 OPERATOR(pg_catalog.*) k OPERATOR(pg_catalog.*) published
                                                         OPERATOR(pg_catalog./) GREATEST(joint, 1)))::integer END;
            SELECT pg_catalog.count(*)::integer,
                   COALESCE((pg_catalog.array_agg(w.id ORDER BY
                        CASE WHEN f_sort OPERATOR(pg_catalog.=) 'relevance' THEN w.search_static END DESC,
                        CASE WHEN f_sort OPERATOR(pg_catalog.=) 'rating' THEN w.rating END DESC,
                        CASE WHEN f_sort OPERATOR(pg_catalog.=) 'rating' THEN w.total_reviews END DESC,
                        CASE WHEN f_sort OPERATOR(pg_catalog.=) 'popular' THEN w.total_hires END DESC,
                        CASE WHEN f_sort OPERATOR(pg_catalog.=) 'newest' THEN w.published_at END DESC,
                        w.id DESC) FILTER (WHERE w.hit))[1:k], '{}')
              INTO n, top_ids
              FROM (SELECT a.id, a.search_static, COALESCE(a.avg_rating, 0) AS rating, a.total_reviews,
                           a.total_hires, a.published_at,
                           (p.query IS NULL OR a.search_document OPERATOR(pg_catalog.@@) p.query) AS hit
                      FROM agentmarket.agents a
                     WHERE a.status OPERATOR(pg_catalog.=) 'published'
                       AND (f_category IS NULL OR a.category OPERATOR(pg_catalog.=) f_category)
                       AND (f_tags IS NULL OR a.tags OPERATOR(pg_catalog.@>) f_tags)
                       AND (f_relays IS NULL OR a.supported_relays OPERATOR(pg_catalog.&&) f_relays)
                       AND (f_models IS NULL OR a.supported_models OPERATOR(pg_catalog.&&) f_models)
                       AND (f_pricing IS NULL OR a.pricing_model OPERATOR(pg_catalog.=) f_pricing)
                       AND (c_id IS NULL OR CASE f_sort
                             WHEN 'relevance' THEN (a.search_static, a.id) OPERATOR(pg_catalog.<) (c_f, c_id)
                             WHEN 'rating' THEN (COALESCE(a.avg_rating, 0), a.total_reviews, a.id) OPERATOR(pg_catalog.<) (c_n, c_i::integer, c_id)
                             WHEN 'popular' THEN (a.total_hires, a.id) OPERATOR(pg_catalog.<) (c_i::integer, c_id)
                             ELSE (a.published_at, a.id) OPERATOR(pg_catalog.<) (c_t, c_id) END)
                     ORDER BY CASE WHEN f_sort OPERATOR(pg_catalog.=) 'relevance' THEN a.search_static END DESC,
                              CASE WHEN f_sort OPERATOR(pg_catalog.=) 'rating' THEN COALESCE(a.avg_rating, 0) END DESC,
                              CASE WHEN f_sort OPERATOR(pg_catalog.=) 'rating' THEN a.total_reviews END DESC,
                              CASE WHEN f_sort OPERATOR(pg_catalog.=) 'popular' THEN a.total_hires END DESC,
                              CASE WHEN f_sort OPERATOR(pg_catalog.=) 'newest' THEN a.published_at END DESC,
                              a.id DESC
                     LIMIT cap) w;
            by_gin := pg_catalog.cardinality(top_ids) OPERATOR(pg_catalog.<) k AND n OPERATOR(pg_catalog.=) cap
                      AND p.query IS NOT NULL;
        END IF;
        IF by_gin THEN
            -- Materialized: the planner cannot turn it back into an index walk.
            WITH hits AS MATERIALIZED (
                SELECT a.id, a.search_static, COALESCE(a.avg_rating, 0) AS rating, a.total_reviews,
                       a.total_hires, a.published_at
                  FROM agentmarket.agents a
                 WHERE a.status OPERATOR(pg_catalog.=) 'published'
                   AND a.search_document OPERATOR(pg_catalog.@@) gin_query
                   AND (f_category IS NULL OR a.category OPERATOR(pg_catalog.=) f_category)
                   AND (f_tags IS NULL OR a.tags OPERATOR(pg_catalog.@>) f_tags)
                   AND (f_relays IS NULL OR a.supported_relays OPERATOR(pg_catalog.&&) f_relays)
                   AND (f_models IS NULL OR a.supported_models OPERATOR(pg_catalog.&&) f_models)
                   AND (f_pricing IS NULL OR a.pricing_model OPERATOR(pg_catalog.=) f_pricing))
            SELECT COALESCE(pg_catalog.array_agg(w.id ORDER BY w.o), '{}') INTO top_ids
              FROM (SELECT w.id, pg_catalog.row_number() OVER (ORDER BY
                        CASE WHEN f_sort OPERATOR(pg_catalog.=) 'relevance' THEN w.search_static END DESC,
                        CASE WHEN f_sort OPERATOR(pg_catalog.=) 'rating' THEN w.rating END DESC,
                        CASE WHEN f_sort OPERATOR(pg_catalog.=) 'rating' THEN w.total_reviews END DESC,
                        CASE WHEN f_sort OPERATOR(pg_catalog.=) 'popular' THEN w.total_hires END DESC,
                        CASE WHEN f_sort OPERATOR(pg_catalog.=) 'newest' THEN w.published_at END DESC,
                        w.id DESC) AS o
                      FROM hits w
                     WHERE c_id IS NULL OR CASE f_sort
                             WHEN 'relevance' THEN (w.search_static, w.id) OPERATOR(pg_catalog.<) (c_f, c_id)
                             WHEN 'rating' THEN (w.rating, w.total_reviews, w.id) OPERATOR(pg_catalog.<) (c_n, c_i::integer, c_id)
                             WHEN 'popular' THEN (w.total_hires, w.id) OPERATOR(pg_catalog.<) (c_i::integer, c_id)
                             ELSE (w.published_at, w.id) OPERATOR(pg_catalog.<) (c_t, c_id) END
                     ORDER BY 2 LIMIT k) w;
        END IF;
        RETURN QUERY
        SELECT a.id, a.slug, a.name, a.tagline, a.icon_url, a.category, a.pricing_model,
               a.credits_per_session, a.avg_rating, a.total_reviews, a.total_hires,
               a.supported_relays, a.supported_models, a.tags, a.published_at, x.score,
               search_cursor(f_sort,
                   CASE f_sort WHEN 'relevance' THEN a.search_static::text
                               WHEN 'rating' THEN COALESCE(a.avg_rating, 0)::text
                               WHEN 'popular' THEN a.total_hires::text
                               ELSE ((EXTRACT(epoch FROM a.published_at) OPERATOR(pg_catalog.*) 1000000)::bigint)::text END,
                   CASE f_sort WHEN 'rating' THEN a.total_reviews::text END, a.id)
          FROM ROWS FROM (pg_catalog.unnest(top_ids)) WITH ORDINALITY t(id, o)
          JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) t.id
          CROSS JOIN LATERAL (SELECT CASE WHEN p.ngroups OPERATOR(pg_catalog.>) 0 THEN
                    search_blend(search_text_score(a.search_document, p.lexemes, p.groups, p.factors, p.prefixes, p.ngroups), a.search_static)
                    ELSE a.search_static END AS score) x
         ORDER BY t.o;
        RETURN;
    END IF;

    -- Relevance.  The strategy is chosen from estimates before any listing
    -- is scored.  The vocabulary gives each word's posting-list size: when
    -- the rarest word (or, under OR, all words together) is in at most L
    -- listings (the exhaustive limit, 6000 by default), or the filters keep
    -- at most L listings (their lexemes are intersected in the GIN scan), every
    -- match is scored (GIN).  Otherwise listings are walked
    -- in descending static score; the first 256 that pass the filters are a
    -- sample of how dense the matches are.  When that projects at most L
    -- matches (words common apart but rare together), every match is scored.  Otherwise
    -- the matches are split into tiers by where each word occurs (name,
    -- tagline/tags, description): small tiers that a GIN index finds are
    -- scored whole, best bound first, and the walk goes on until nothing
    -- further down can enter the page (a listing there scores at most
    -- blend(best bound of the rest, static)), or until it has cost as much as
    -- scoring the projected matches would (then those are scored).
    exact := LEAST(p.estimate, published OPERATOR(pg_catalog.*) fsel) OPERATOR(pg_catalog.<=) exhaustive_limit
             OR p.ngroups OPERATOR(pg_catalog.>) 3;
    IF NOT exact THEN
        SELECT a.search_static INTO max_static FROM agentmarket.agents a
         WHERE a.status OPERATOR(pg_catalog.=) 'published'
         ORDER BY a.search_static DESC, a.id DESC LIMIT 1;
        -- Tiers no index finds cheaply are walked; the walk also sees every
        -- tier whose bound is no higher, so only better ones are fetched.
        SELECT pg_catalog.max(x.bound) INTO dense_bound FROM search_tiers(p) x
         WHERE x.driver IS NULL OR x.estimate OPERATOR(pg_catalog.>) 1500;
        m := 256;
        LOOP
            -- The next m listings in static order (the static-score index, or
            -- the category's; continuing after the last one seen), scored
            -- when they match.
            EXECUTE pg_catalog.format($q$
                SELECT pg_catalog.count(*)::integer, pg_catalog.count(x.score)::integer,
                       (pg_catalog.array_agg(x.s ORDER BY x.s, x.id))[1],
                       (pg_catalog.array_agg(x.id ORDER BY x.s, x.id))[1],
                       COALESCE(pg_catalog.array_agg(x.id) FILTER (WHERE x.score IS NOT NULL
                           AND ($13::uuid IS NULL OR (x.score, x.id) < ($12::float8, $13::uuid))), '{}'),
                       COALESCE(pg_catalog.array_agg(x.score) FILTER (WHERE x.score IS NOT NULL
                           AND ($13::uuid IS NULL OR (x.score, x.id) < ($12::float8, $13::uuid))), '{}')
                  FROM (SELECT a.id, a.search_static AS s,
                               CASE WHEN a.search_document @@ $1 THEN agentmarket_private.search_blend(
                                   agentmarket_private.search_text_score(a.search_document, $2, $3, $4, $5, $6),
                                   a.search_static) END AS score
                          FROM agentmarket.agents a
                         WHERE %s AND ($16::uuid IS NULL OR (a.search_static, a.id) < ($15::float8, $16::uuid))
                         ORDER BY a.search_static DESC, a.id DESC LIMIT $14) x$q$,
                filters)
            INTO n, hits_seen, last_static, last_id, walk_ids, walk_scores
            USING p.query, p.lexemes, p.groups, p.factors, p.prefixes, p.ngroups,
                  f_category, f_tags, f_relays, f_models, f_pricing, c_f, c_id, m, last_static, last_id;
            walked := walked OPERATOR(pg_catalog.+) n;
            hits := hits OPERATOR(pg_catalog.+) hits_seen;
            SELECT x.ids, x.scores INTO top_ids, top_scores
              FROM search_merge(top_ids, top_scores, walk_ids, walk_scores, k) x;
            EXIT WHEN n OPERATOR(pg_catalog.<) m;       -- every listing seen: the page is exact
            -- Matches projected from the density so far; scoring them costs
            -- about a third of walking as many listings.
            projected := hits::double precision OPERATOR(pg_catalog.*) published OPERATOR(pg_catalog.*) fsel
                         OPERATOR(pg_catalog./) walked;
            IF projected OPERATOR(pg_catalog.<=) exhaustive_limit OR walked OPERATOR(pg_catalog.*) 3 OPERATOR(pg_catalog.>=) projected THEN
                exact := true;
                EXIT;
            END IF;
            IF NOT tiers_done THEN
                tiers_done := true;
                FOR tier IN SELECT * FROM search_tiers(p) x ORDER BY x.bound DESC, x.estimate LOOP
                    IF tier.driver IS NULL OR tier.estimate OPERATOR(pg_catalog.>) 1500
                       OR tier.bound OPERATOR(pg_catalog.<=) dense_bound THEN
                        dense_bound := GREATEST(dense_bound, tier.bound);
                        CONTINUE;
                    END IF;
                    CONTINUE WHEN pg_catalog.cardinality(top_ids) OPERATOR(pg_catalog.=) k
                              AND top_scores[k] OPERATOR(pg_catalog.>) search_blend(tier.bound, max_static);
                    EXECUTE pg_catalog.format($q$
                        SELECT COALESCE(pg_catalog.array_agg(y.id ORDER BY y.score DESC, y.id DESC), '{}'),
                               COALESCE(pg_catalog.array_agg(y.score ORDER BY y.score DESC, y.id DESC), '{}')
                          FROM (SELECT x.id, x.score FROM (
                                  SELECT a.id, agentmarket_private.search_blend(agentmarket_private.search_text_score(
                                             a.search_document, $2, $3, $4, $5, $6), a.search_static) AS score
                                    FROM agentmarket.agents a
                                   WHERE %s AND %s AND (%s AND a.search_document @@ $1) IS TRUE) x
                                 WHERE $13::uuid IS NULL OR (x.score, x.id) < ($12::float8, $13::uuid)
                                 ORDER BY x.score DESC, x.id DESC LIMIT $14) y$q$,
                        filters, tier.driver, tier.condition)
                    INTO walk_ids, walk_scores
                    USING p.query, p.lexemes, p.groups, p.factors, p.prefixes, p.ngroups,
                          f_category, f_tags, f_relays, f_models, f_pricing, c_f, c_id, k;
                    SELECT x.ids, x.scores INTO top_ids, top_scores
                      FROM search_merge(top_ids, top_scores, walk_ids, walk_scores, k) x;
                END LOOP;
            END IF;
            EXIT WHEN dense_bound IS NULL;              -- every tier was fetched whole
            b := search_blend(dense_bound, last_static);
            -- Static scores lie on a 1e-6 grid: a tie with b means the same
            -- static score and, further down the walk, a smaller id.
            EXIT WHEN pg_catalog.cardinality(top_ids) OPERATOR(pg_catalog.=) k
                  AND (top_scores[k] OPERATOR(pg_catalog.>) b
                       OR (top_scores[k] OPERATOR(pg_catalog.=) b AND top_ids[k] OPERATOR(pg_catalog.>=) last_id));
            m := m OPERATOR(pg_catalog.*) 2;
        END LOOP;
    END IF;
    RAISE DEBUG 'search_agents: estimate %, exhaustive %, listings walked %, matches seen %', p.estimate, exact, walked, hits;
    IF exact THEN
        SELECT pg_catalog.array_agg(y.id ORDER BY y.score DESC, y.id DESC),
               pg_catalog.array_agg(y.score ORDER BY y.score DESC, y.id DESC)
          INTO top_ids, top_scores
          FROM (SELECT x.id, x.score FROM (
                  SELECT a.id, search_blend(search_text_score(a.search_document, p.lexemes, p.groups,
                                            p.factors, p.prefixes, p.ngroups), a.search_static) AS score
                    FROM agentmarket.agents a
                   WHERE a.status OPERATOR(pg_catalog.=) 'published'
                     AND a.search_document OPERATOR(pg_catalog.@@) gin_query
                     AND (f_category IS NULL OR a.category OPERATOR(pg_catalog.=) f_category)
                     AND (f_tags IS NULL OR a.tags OPERATOR(pg_catalog.@>) f_tags)
                     AND (f_relays IS NULL OR a.supported_relays OPERATOR(pg_catalog.&&) f_relays)
                     AND (f_models IS NULL OR a.supported_models OPERATOR(pg_catalog.&&) f_models)
                     AND (f_pricing IS NULL OR a.pricing_model OPERATOR(pg_catalog.=) f_pricing)) x
                 WHERE c_id IS NULL OR (x.score, x.id) OPERATOR(pg_catalog.<) (c_f, c_id)
                 ORDER BY x.score DESC, x.id DESC LIMIT k) y;
    END IF;
    RETURN QUERY
    SELECT a.id, a.slug, a.name, a.tagline, a.icon_url, a.category, a.pricing_model,
           a.credits_per_session, a.avg_rating, a.total_reviews, a.total_hires,
           a.supported_relays, a.supported_models, a.tags, a.published_at, t.score,
           search_cursor('relevance', t.score::text, NULL, a.id)
      FROM ROWS FROM (pg_catalog.unnest(top_ids), pg_catalog.unnest(top_scores)) WITH ORDINALITY t(id, score, o)
      JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) t.id
     ORDER BY t.o;
END
$$;
COMMENT ON FUNCTION agentmarket.search_agents(text, text, text[], text[], text[], text, text, integer, text) IS
    'Searches published agents: websearch syntax with one-typo tolerance and a prefix last word; filters by category, all tags, any relay, any model, pricing model; sorts relevance, rating, popular, newest; keyset pages of 1 to 100 rows via each row''s cursor.';
REVOKE ALL ON FUNCTION agentmarket.search_agents(text, text, text[], text[], text[], text, text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.search_agents(text, text, text[], text[], text[], text, text, integer, text)
    TO anon, authenticated, service_role;

CREATE FUNCTION agentmarket.agent_facets(
    query text DEFAULT NULL, category text DEFAULT NULL, tags text[] DEFAULT NULL,
    relays text[] DEFAULT NULL, models text[] DEFAULT NULL, pricing_model text DEFAULT NULL)
RETURNS TABLE (facet text, value text, count bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
SET plan_cache_mode = force_custom_plan
SET jit = off
AS $$
DECLARE
    f_category text := agent_facets.category;
    f_tags text[] := agent_facets.tags;
    f_relays text[] := agent_facets.relays;
    f_models text[] := agent_facets.models;
    f_pricing text := agent_facets.pricing_model;
    p agentmarket_private.search_plan;
BEGIN
    SELECT x.p_tags, x.p_relays, x.p_models INTO f_tags, f_relays, f_models
      FROM search_check_filters(f_tags, f_relays, f_models, f_pricing) x;
    p := search_prepare(agent_facets.query);
    RETURN QUERY
    WITH hits AS MATERIALIZED (
        SELECT a.category AS c, a.supported_relays AS r, a.supported_models AS m, a.pricing_model AS pm
          FROM agentmarket.agents a
         WHERE a.status OPERATOR(pg_catalog.=) 'published'
           AND (p.query IS NULL OR a.search_document OPERATOR(pg_catalog.@@) p.query)
           AND (f_category IS NULL OR a.category OPERATOR(pg_catalog.=) f_category)
           AND (f_tags IS NULL OR a.tags OPERATOR(pg_catalog.@>) f_tags)
           AND (f_relays IS NULL OR a.supported_relays OPERATOR(pg_catalog.&&) f_relays)
           AND (f_models IS NULL OR a.supported_models OPERATOR(pg_catalog.&&) f_models)
           AND (f_pricing IS NULL OR a.pricing_model OPERATOR(pg_catalog.=) f_pricing))
    SELECT f.facet, f.value, f.n FROM (
        SELECT 'category'::text AS facet, h.c AS value, pg_catalog.count(*) AS n FROM hits h GROUP BY h.c
        UNION ALL
        SELECT 'relay', x, pg_catalog.count(*) FROM hits h, pg_catalog.unnest(h.r) x GROUP BY x
        UNION ALL
        SELECT 'model', x, pg_catalog.count(*) FROM hits h, pg_catalog.unnest(h.m) x GROUP BY x
        UNION ALL
        SELECT 'pricing_model', h.pm, pg_catalog.count(*) FROM hits h GROUP BY h.pm) f
     ORDER BY f.facet, f.n DESC, f.value;
END
$$;
COMMENT ON FUNCTION agentmarket.agent_facets(text, text, text[], text[], text[], text) IS
    'Counts of the published agents search_agents would match with the same query and filters, per category, relay, model and pricing model.';
REVOKE ALL ON FUNCTION agentmarket.agent_facets(text, text, text[], text[], text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.agent_facets(text, text, text[], text[], text[], text)
    TO anon, authenticated, service_role;
