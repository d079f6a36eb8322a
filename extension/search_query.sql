-- search_query.sql: the search functions clients call, search_agents and
-- agent_facets, with their cursors, the filter predicate, and the steps of
-- search_agents: search_request (arguments, cursor, plan, estimates) and
-- search_sorted (a page sorted by a column).  The relevance walk and
-- exhaustive scoring are in search_relevance.sql; the listing's search
-- columns, the vocabulary and query planning (search_prepare) in search.sql;
-- the scoring functions in search.c.
--
-- search_agents picks a strategy per query from estimates (posting-list
-- sizes in the vocabulary, filter counts), before reading any listing:
-- score every match through GIN; walk the listings in static-score order
-- with tiers fetched through GIN and an early stop; or, sorted by a column,
-- a capped walk of the sort's index or GIN and sort.  Every strategy returns
-- exactly the rows exhaustive scoring (or sorting) returns.

------------------------------------------------------------------------------
-- Cursors
------------------------------------------------------------------------------
-- An opaque page cursor: base64url of "sort|key|key2|id", without padding.
-- (C: it is computed for every row a search returns.)
CREATE FUNCTION agentmarket_private.search_cursor(p_sort text, p_key text, p_key2 text, p_id uuid)
RETURNS text
AS 'MODULE_PATHNAME', 'search_cursor'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_cursor(text, text, text, uuid) IS
    'Encodes a keyset position as an opaque URL-safe cursor.';

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

-- The search filters: the one predicate every search and facet query uses
-- (the published status stays beside it, literal, so the partial indexes
-- match).  A NULL filter keeps everything.  (No SET clause, every name
-- qualified: it inlines, and with the filters' values known the planner
-- drops the NULL ones and uses the category index for a category.)
CREATE FUNCTION agentmarket_private.search_filter_match(
    p_category text, p_tags text[], p_relays text[], p_models text[], p_pricing_model text,
    listing_category text, listing_tags text[], listing_relays text[], listing_models text[], listing_pricing_model text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT (p_category IS NULL OR listing_category OPERATOR(pg_catalog.=) p_category)
       AND (p_tags IS NULL OR listing_tags OPERATOR(pg_catalog.@>) p_tags)
       AND (p_relays IS NULL OR listing_relays OPERATOR(pg_catalog.&&) p_relays)
       AND (p_models IS NULL OR listing_models OPERATOR(pg_catalog.&&) p_models)
       AND (p_pricing_model IS NULL OR listing_pricing_model OPERATOR(pg_catalog.=) p_pricing_model)
$$;
COMMENT ON FUNCTION agentmarket_private.search_filter_match(text, text[], text[], text[], text, text, text[], text[], text[], text) IS
    'The search filters (category, all tags, any relay, any model, pricing model; NULL: no filter) applied to a listing''s values.';

-- The filters of the dynamic walk and tier queries, on the parameters $7 to
-- $11 they bind.
-- (No SET clause: called on every search, it runs under the search_path of
-- the search function calling it; every name is qualified or in pg_catalog.)
CREATE FUNCTION agentmarket_private.search_filter_sql()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 'a.status = ''published'' AND agentmarket_private.search_filter_match($7::text, $8::text[], $9::text[],'
        ' $10::text[], $11::text, a.category, a.tags, a.supported_relays, a.supported_models, a.pricing_model)'
$$;
COMMENT ON FUNCTION agentmarket_private.search_filter_sql() IS
    'The WHERE clause of the search filters, with the parameters search_agents binds.';

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
    INOUT p_tags text[], INOUT p_relays text[], INOUT p_models text[], p_pricing_model text, p_category text)
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    -- The category is a lexeme of the GIN query: it must fit one.
    IF pg_catalog.octet_length(p_category) OPERATOR(pg_catalog.>) 1000 THEN
        RAISE EXCEPTION 'category too long' USING ERRCODE = '22023',
            DETAIL = 'A category filter has at most 1000 bytes.';
    END IF;
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
COMMENT ON FUNCTION agentmarket_private.search_check_filters(text[], text[], text[], text, text) IS
    'Validates search filters (22023 on an unknown relay, model or pricing model, or a category over 1000 bytes); empty arrays mean no filter.';

-- A search's arguments, checked and decoded, with its plan and the
-- estimates the strategies are chosen from: what each step of search_agents
-- reads.
CREATE TYPE agentmarket_private.search_request AS (
  category text,                  -- filters (NULL: none; empty arrays become NULL)
  tags text[],
  relays text[],
  models text[],
  pricing_model text,
  sort text,                      -- relevance, rating, popular or newest
  page_size integer,
  after_score double precision,   -- the page cursor's key: relevance (or static) score,
  after_rating numeric,           -- ... rating,
  after_count bigint,             -- ... reviews, hires, or microseconds of publication,
  after_time timestamptz,         -- ... that time,
  after_id uuid,                  -- ... and listing (NULL: the first page)
  plan agentmarket_private.search_plan,
  published double precision,     -- published listings (at least 1)
  joint double precision,         -- matches if the words were independent
  filter_share double precision,  -- share of listings the filters keep
  gin_query tsquery,              -- the words and the filter lexemes, for one GIN scan
  expected double precision,      -- matches expected to pass the filters
  exhaustive_limit double precision  -- matches up to which all are scored
);
COMMENT ON TYPE agentmarket_private.search_request IS
    'A search_agents call checked and decoded: filters, sort, page, cursor, the search plan and the estimates its strategy is chosen from.';

-- Step 1 of search_agents: checks the arguments (22023), decodes the
-- cursor, prepares the query and estimates, before any listing is read.
CREATE FUNCTION agentmarket_private.search_request(
    p_query text, p_category text, p_tags text[], p_relays text[], p_models text[], p_pricing_model text,
    p_sort text, p_page_size integer, page_after text)
RETURNS agentmarket_private.search_request
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    f_category text := p_category;
    f_tags text[] := p_tags;
    f_relays text[] := p_relays;
    f_models text[] := p_models;
    f_pricing text := p_pricing_model;
    f_sort text := p_sort;
    k integer := p_page_size;
    p agentmarket_private.search_plan;
    c text[];
    c_f double precision;
    c_n numeric;
    c_i bigint;
    c_id uuid;
    c_t timestamptz;
    -- Matches up to which scoring them all beats any walk (a tuning knob;
    -- every strategy returns the same rows).
    exhaustive_setting text := pg_catalog.current_setting('agentmarket.search_exhaustive_limit', true);
    exhaustive_limit double precision := CASE WHEN exhaustive_setting OPERATOR(pg_catalog.~) '^[0-9]{1,7}$'
                                              THEN exhaustive_setting::integer ELSE 2000 END;
    joint double precision;
    fsel double precision;
    published double precision;
    filter_text text;
    gin_query tsquery;
    expected double precision;
BEGIN
    IF k IS NULL OR k OPERATOR(pg_catalog.<) 1 OR k OPERATOR(pg_catalog.>) 100 THEN
        RAISE EXCEPTION 'page_size must be between 1 and 100' USING ERRCODE = '22023';
    END IF;
    IF f_sort IS NULL OR f_sort NOT IN ('relevance', 'rating', 'popular', 'newest') THEN
        RAISE EXCEPTION 'unknown sort "%"', f_sort USING ERRCODE = '22023',
            HINT = 'Sort by relevance, rating, popular or newest.';
    END IF;
    SELECT x.p_tags, x.p_relays, x.p_models INTO f_tags, f_relays, f_models
      FROM search_check_filters(f_tags, f_relays, f_models, f_pricing, f_category) x;
    IF page_after IS NOT NULL THEN
        c := search_cursor_parts(page_after, f_sort);
        BEGIN
            c_id := c[4]::uuid;
            CASE f_sort
                WHEN 'relevance' THEN c_f := c[2]::double precision;
                WHEN 'rating' THEN c_n := c[2]::numeric; c_i := c[3]::bigint;
                ELSE c_i := c[2]::bigint;
            END CASE;
            -- Reviews and hires are integers: a key beyond them is no cursor
            -- of ours (and must not fail later with another SQLSTATE).
            IF f_sort IN ('rating', 'popular') THEN
                c_i := c_i::integer;
            END IF;
            c_t := 'epoch'::timestamptz OPERATOR(pg_catalog.+) (c_i::double precision OPERATOR(pg_catalog.*) '1 microsecond'::interval);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'invalid page cursor' USING ERRCODE = '22023',
                DETAIL = 'page_after must be the cursor of a row returned by search_agents.';
        END;
    END IF;
    p := search_prepare(p_query);

    -- Estimates from the vocabulary, before any listing is read.  joint: the
    -- matches if the words were independent (at most p.estimate, the rarest
    -- word's postings).  The filters are lexemes of the document too (see
    -- search_filter_tokens): gin_query intersects them with the words in one
    -- GIN scan, and their counts give fsel, the share of listings they keep
    -- (tags: a guess of 10%).  expected: the matches that pass the filters.
    published := p.published;
    IF published IS NULL THEN
        SELECT c.published INTO published FROM search_corpus c;
    END IF;
    published := GREATEST(published, 1);
    joint := p.estimate;
    IF p.ngroups OPERATOR(pg_catalog.>) 1 AND NOT p.any_word THEN
        SELECT LEAST(p.estimate, published OPERATOR(pg_catalog.*) pg_catalog.exp(pg_catalog.sum(pg_catalog.ln(
                   GREATEST(d, 1)::double precision OPERATOR(pg_catalog./) published))))
          INTO joint FROM pg_catalog.unnest(p.group_docs) d;
    END IF;
    fsel := 1;
    IF f_category IS NOT NULL OR f_pricing IS NOT NULL OR f_relays IS NOT NULL OR f_models IS NOT NULL THEN
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
    END IF;
    IF f_tags IS NOT NULL THEN
        fsel := fsel OPERATOR(pg_catalog.*) 0.1;
    END IF;
    gin_query := CASE WHEN filter_text IS NULL THEN p.query
                      WHEN p.query IS NULL THEN filter_text::tsquery
                      ELSE p.query OPERATOR(pg_catalog.&&) filter_text::tsquery END;
    expected := CASE WHEN p.query IS NULL THEN published ELSE joint END OPERATOR(pg_catalog.*) fsel;
    RETURN ROW(f_category, f_tags, f_relays, f_models, f_pricing, f_sort, k, c_f, c_n, c_i, c_t, c_id,
               p, published, joint, fsel, gin_query, expected, exhaustive_limit)::agentmarket_private.search_request;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_request(text, text, text[], text[], text[], text, text, integer, text) IS
    'Checks and decodes search_agents arguments (22023 on bad ones), prepares the query and the estimates its strategy is chosen from.';

-- Step 2, sorted by a column (or no words): the ids of the page.
CREATE FUNCTION agentmarket_private.search_sorted(r agentmarket_private.search_request)
RETURNS uuid[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
-- Planned for this request's sort and filters: the ORDER BY and the filters
-- fold to the sort's index walk (a generic plan would sort every listing).
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    p agentmarket_private.search_plan := r.plan;
    k integer := r.page_size;
    published double precision := r.published;
    by_gin boolean;
    cap integer;
    n integer;
    top_ids uuid[] := '{}';
BEGIN
    -- Sorted by a column, keyset after the cursor.  Few expected matches
    -- (under L/3): they are found through GIN and sorted.  Otherwise the
    -- sort's index is walked for a bounded number of listings, three
    -- times as many as should hold a page of matches; when that does not
    -- fill the page, GIN and sort after all.
    by_gin := r.gin_query IS NOT NULL AND r.expected IS NOT NULL
              AND r.expected OPERATOR(pg_catalog.<) (r.exhaustive_limit OPERATOR(pg_catalog./) 3);
    IF NOT by_gin THEN
        cap := CASE WHEN p.query IS NULL THEN k WHEN r.joint IS NULL THEN 4096
                    ELSE LEAST(4096, pg_catalog.ceil(3 OPERATOR(pg_catalog.*) k OPERATOR(pg_catalog.*) published
                                                     OPERATOR(pg_catalog./) GREATEST(r.joint, 1)))::integer END;
        SELECT pg_catalog.count(*)::integer,
               COALESCE((pg_catalog.array_agg(w.id ORDER BY
                    CASE WHEN r.sort OPERATOR(pg_catalog.=) 'relevance' THEN w.search_static END DESC,
                    CASE WHEN r.sort OPERATOR(pg_catalog.=) 'rating' THEN w.rating END DESC,
                    CASE WHEN r.sort OPERATOR(pg_catalog.=) 'rating' THEN w.total_reviews END DESC,
                    CASE WHEN r.sort OPERATOR(pg_catalog.=) 'popular' THEN w.total_hires END DESC,
                    CASE WHEN r.sort OPERATOR(pg_catalog.=) 'newest' THEN w.published_at END DESC,
                    w.id DESC) FILTER (WHERE w.hit))[1:k], '{}')
          INTO n, top_ids
          FROM (SELECT a.id, a.search_static, COALESCE(a.avg_rating, 0) AS rating, a.total_reviews,
                       a.total_hires, a.published_at,
                       (p.query IS NULL OR a.search_document OPERATOR(pg_catalog.@@) p.query) AS hit
                  FROM agentmarket.agents a
                 WHERE a.status OPERATOR(pg_catalog.=) 'published'
                   AND search_filter_match(r.category, r.tags, r.relays, r.models, r.pricing_model,
                                           a.category, a.tags, a.supported_relays, a.supported_models, a.pricing_model)
                   AND (r.after_id IS NULL OR CASE r.sort
                         WHEN 'relevance' THEN (a.search_static, a.id) OPERATOR(pg_catalog.<) (r.after_score, r.after_id)
                         WHEN 'rating' THEN (COALESCE(a.avg_rating, 0), a.total_reviews, a.id) OPERATOR(pg_catalog.<) (r.after_rating, r.after_count::integer, r.after_id)
                         WHEN 'popular' THEN (a.total_hires, a.id) OPERATOR(pg_catalog.<) (r.after_count::integer, r.after_id)
                         ELSE (a.published_at, a.id) OPERATOR(pg_catalog.<) (r.after_time, r.after_id) END)
                 ORDER BY CASE WHEN r.sort OPERATOR(pg_catalog.=) 'relevance' THEN a.search_static END DESC,
                          CASE WHEN r.sort OPERATOR(pg_catalog.=) 'rating' THEN COALESCE(a.avg_rating, 0) END DESC,
                          CASE WHEN r.sort OPERATOR(pg_catalog.=) 'rating' THEN a.total_reviews END DESC,
                          CASE WHEN r.sort OPERATOR(pg_catalog.=) 'popular' THEN a.total_hires END DESC,
                          CASE WHEN r.sort OPERATOR(pg_catalog.=) 'newest' THEN a.published_at END DESC,
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
               AND a.search_document OPERATOR(pg_catalog.@@) r.gin_query
               AND search_filter_match(r.category, r.tags, r.relays, r.models, r.pricing_model,
                                       a.category, a.tags, a.supported_relays, a.supported_models, a.pricing_model))
        SELECT COALESCE(pg_catalog.array_agg(w.id ORDER BY w.o), '{}') INTO top_ids
          FROM (SELECT w.id, pg_catalog.row_number() OVER (ORDER BY
                    CASE WHEN r.sort OPERATOR(pg_catalog.=) 'relevance' THEN w.search_static END DESC,
                    CASE WHEN r.sort OPERATOR(pg_catalog.=) 'rating' THEN w.rating END DESC,
                    CASE WHEN r.sort OPERATOR(pg_catalog.=) 'rating' THEN w.total_reviews END DESC,
                    CASE WHEN r.sort OPERATOR(pg_catalog.=) 'popular' THEN w.total_hires END DESC,
                    CASE WHEN r.sort OPERATOR(pg_catalog.=) 'newest' THEN w.published_at END DESC,
                    w.id DESC) AS o
                  FROM hits w
                 WHERE r.after_id IS NULL OR CASE r.sort
                         WHEN 'relevance' THEN (w.search_static, w.id) OPERATOR(pg_catalog.<) (r.after_score, r.after_id)
                         WHEN 'rating' THEN (w.rating, w.total_reviews, w.id) OPERATOR(pg_catalog.<) (r.after_rating, r.after_count::integer, r.after_id)
                         WHEN 'popular' THEN (w.total_hires, w.id) OPERATOR(pg_catalog.<) (r.after_count::integer, r.after_id)
                         ELSE (w.published_at, w.id) OPERATOR(pg_catalog.<) (r.after_time, r.after_id) END
                 ORDER BY 2 LIMIT k) w;
    END IF;
    RETURN top_ids;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_sorted(agentmarket_private.search_request) IS
    'The page of a search sorted by a column (or without words): a capped walk of the sort''s index, or GIN and sort.';

CREATE FUNCTION agentmarket.search_agents(
    query text DEFAULT NULL, category text DEFAULT NULL, tags text[] DEFAULT NULL,
    relays text[] DEFAULT NULL, models text[] DEFAULT NULL, pricing_model text DEFAULT NULL,
    sort text DEFAULT 'relevance', page_size integer DEFAULT 20, page_after text DEFAULT NULL)
RETURNS SETOF agentmarket.agent_search_result
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
SET jit = off
SET max_parallel_workers_per_gather = 0
SET extra_float_digits = 3
AS $$
DECLARE
    r agentmarket_private.search_request;
    p agentmarket_private.search_plan;
    exact boolean;
    top_ids uuid[] := '{}';
    top_scores double precision[] := '{}';
BEGIN
    r := search_request(search_agents.query, search_agents.category, search_agents.tags, search_agents.relays,
                        search_agents.models, search_agents.pricing_model, search_agents.sort,
                        search_agents.page_size, search_agents.page_after);
    p := r.plan;
    IF r.sort OPERATOR(pg_catalog.<>) 'relevance' OR p.ngroups OPERATOR(pg_catalog.=) 0 THEN
        top_ids := search_sorted(r);
        RETURN QUERY
        SELECT a.id, a.slug, a.name, a.tagline, a.icon_url, a.category, a.pricing_model,
               a.credits_per_session, a.avg_rating, a.total_reviews, a.total_hires,
               a.supported_relays, a.supported_models, a.tags, a.published_at, x.score,
               search_cursor(r.sort,
                   CASE r.sort WHEN 'relevance' THEN a.search_static::text
                               WHEN 'rating' THEN COALESCE(a.avg_rating, 0)::text
                               WHEN 'popular' THEN a.total_hires::text
                               ELSE ((EXTRACT(epoch FROM a.published_at) OPERATOR(pg_catalog.*) 1000000)::bigint)::text END,
                   CASE r.sort WHEN 'rating' THEN a.total_reviews::text END, a.id)
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
    -- listings (the exhaustive limit, 2000 by default), or the filters keep
    -- at most L listings (their lexemes are intersected in the GIN scan), every
    -- match is scored (GIN).  Otherwise listings are walked
    -- in descending static score; the first 64 that pass the filters are a
    -- sample of how dense the matches are.  When that projects at most L
    -- matches (words common apart but rare together), every match is scored.  Otherwise
    -- the matches are split into tiers by where each word occurs (name,
    -- tagline/tags, description): small tiers that a GIN index finds are
    -- scored whole, best bound first, and the walk goes on until nothing
    -- further down can enter the page (a listing there scores at most
    -- blend(best bound of the rest, static)), or until it has cost as much as
    -- scoring the projected matches would (then those are scored).
    exact := LEAST(p.estimate, r.published OPERATOR(pg_catalog.*) r.filter_share) OPERATOR(pg_catalog.<=) r.exhaustive_limit
             OR p.ngroups OPERATOR(pg_catalog.>) 3;
    IF NOT exact THEN
        SELECT w.top_ids, w.top_scores, w.exact INTO top_ids, top_scores, exact FROM search_walk(r) w;
    END IF;
    IF exact THEN
        SELECT x.top_ids, x.top_scores INTO top_ids, top_scores FROM search_score_all(r) x;
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
      FROM search_check_filters(f_tags, f_relays, f_models, f_pricing, f_category) x;
    p := search_prepare(agent_facets.query);
    RETURN QUERY
    WITH hits AS MATERIALIZED (
        SELECT a.category AS c, a.supported_relays AS r, a.supported_models AS m, a.pricing_model AS pm
          FROM agentmarket.agents a
         WHERE a.status OPERATOR(pg_catalog.=) 'published'
           AND (p.query IS NULL OR a.search_document OPERATOR(pg_catalog.@@) p.query)
           AND search_filter_match(f_category, f_tags, f_relays, f_models, f_pricing,
                                   a.category, a.tags, a.supported_relays, a.supported_models, a.pricing_model))
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
GRANT EXECUTE ON FUNCTION agentmarket.agent_facets(text, text, text[], text[], text[], text)
    TO anon, authenticated, service_role;
