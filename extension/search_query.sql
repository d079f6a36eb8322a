-- search_query.sql: the search functions clients call, search_agents (its
-- driver in C: search_agents.c) and agent_facets, with their cursors, the
-- filter predicate.  The relevance walk is C (search_walk.c; its tiers are
-- search_tiers, search_relevance.sql); the listing's search columns, the vocabulary and
-- query planning (search_prepare) in search.sql; the scoring functions in
-- search.c.
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

-- search_agents is C (search_agents.c): it checks the arguments (22023 on
-- bad ones, as search_check_filters and search_cursor_parts do), plans the
-- query (search_prepare), estimates and picks the strategy from the
-- estimates, and runs each strategy's statement as a kept SPI plan made for
-- its shape (sort, filters given, cursor or not).  Sorted by a column (or no
-- words): a capped walk of the sort's index, or GIN and sort.  Relevance:
-- every match scored through one GIN scan of the words and filter lexemes,
-- or the walk in static-score order (search_walk.c).  It has no SET clause
-- and is not declared SECURITY DEFINER, yet runs as agentmarket_definer
-- under a pinned path: both are taken in C for the call (definer.c), where
-- the clause cost ~40 µs a call on cold caches, as much as a rare word's
-- whole search.  The path pinned there (pg_catalog, agentmarket,
-- agentmarket_private) does not search pg_temp at all; sql/search_definer
-- and sql/attack_definer check it as they check the definers.  JIT and
-- parallel plans are turned off in C, and only when a statement runs
-- (am_statement_settings), and the cursor writes its score shortest-exact
-- whatever extra_float_digits says.
CREATE FUNCTION agentmarket.search_agents(
    query text DEFAULT NULL, category text DEFAULT NULL, tags text[] DEFAULT NULL,
    relays text[] DEFAULT NULL, models text[] DEFAULT NULL, pricing_model text DEFAULT NULL,
    sort text DEFAULT 'relevance', page_size integer DEFAULT 20, page_after text DEFAULT NULL)
RETURNS SETOF agentmarket.agent_search_result
AS 'MODULE_PATHNAME', 'search_agents'
LANGUAGE C STABLE
ROWS 20;
COMMENT ON FUNCTION agentmarket.search_agents(text, text, text[], text[], text[], text, text, integer, text) IS
    'Searches published agents: websearch syntax with one-typo tolerance and a prefix last word; filters by category, all tags, any relay, any model, pricing model; sorts relevance, rating, popular, newest; keyset pages of 1 to 100 rows via each row''s cursor.';
GRANT EXECUTE ON FUNCTION agentmarket.search_agents(text, text, text[], text[], text[], text, text, integer, text)
    TO anon, authenticated, service_role;

-- The density sample the backend's last search_agents call read in C (the
-- first 64 listings in static order within filters, and the matches among
-- them), NULL when it read none: sql/search_fixed compares it with the same
-- count in SQL (the sample only steers the strategy; the rows cannot tell).
CREATE FUNCTION agentmarket_private.search_sample_last(OUT filters integer, OUT walked integer, OUT matches integer)
RETURNS record
AS 'MODULE_PATHNAME', 'search_sample_last'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmarket_private.search_sample_last() IS
    'The density sample the last search_agents call of this session read in C: the filters its listings passed (bits: 1 category, 2 tags, 4 relays, 8 models, 16 pricing), the listings read (at most 64) and the matches among them; NULL when it read none.';

-- The share of listings at or above a static score, estimated from
-- ANALYZE's statistics as the ordered walk estimates it (search_tail.c);
-- sql/search_fast checks that new statistics are read at once.
CREATE FUNCTION agentmarket_private.search_static_share_above(floor double precision)
RETURNS double precision
AS 'MODULE_PATHNAME', 'search_static_share_above'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION agentmarket_private.search_static_share_above(double precision) IS
    'The estimated share of listings with a static score of at least floor, from ANALYZE''s histogram and most common values of agents.search_static (pg_statistic, read again after ANALYZE); -1 without statistics.';

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
