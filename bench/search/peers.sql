-- bench/search/peers.sql: what time.sql and cold.sql share: the runs (each
-- query of bench_base under each variant of bench_variant, second pages
-- with the cursor of the first page's last row) and the peers' statements,
-- pg_temp.time_peer(contender, variant, words, prefix), which times one.
CREATE TEMP TABLE runs AS
SELECT b.class, b.ord AS bord, b.q, b.words, b.pre, v.variant, v.ord AS vord, v.category, v.relays, v.models, v.pricing,
       v.sort, v.page, NULL::text AS after
  FROM bench_base b CROSS JOIN bench_variant v;
-- Second pages: the cursor of the first page's last row.
UPDATE runs r SET after = (SELECT s.cursor FROM agentmarket.search_agents(r.q, r.category, NULL, r.relays, r.models,
                                   r.pricing, r.sort, 20) s ORDER BY s.score, s.id LIMIT 1)
 WHERE r.page = 2;

-- The peers' statements, one per contender, variant and query form (words,
-- or words and a prefix), written into one PL/pgSQL function as static SQL:
-- each is prepared once and its plan kept by the plan cache (custom plans,
-- then a generic one where it is no dearer), as ours is (a static statement
-- in time_round) and as a client's prepared statement is (PostgREST prepares
-- its statements).  Planned on every call through EXECUTE, the peers paid
-- ~40 µs a call that ours did not: a rare word took GIN 54 µs so, 11 µs
-- prepared, ours 30 (the same query in a loop).  Each branch times itself:
-- the words parsed (as ours parses its own), then the statement, which
-- returns the card ours returns (its columns but the cursor; the peers page
-- by OFFSET) with its score: count(x) makes it build every row, where
-- count(*) let the planner drop the unused columns.
CREATE FUNCTION pg_temp.contender_sql(contender text, v bench_variant, prefix boolean) RETURNS text LANGUAGE sql AS $$
  SELECT format('SELECT count(x) INTO n FROM (SELECT a.id, a.slug, a.name, a.tagline, a.icon_url, a.category, a.pricing_model,'
                ' a.credits_per_session, a.avg_rating, a.total_reviews, a.total_hires, a.supported_relays, a.supported_models,'
                ' a.tags, a.published_at, %s AS score FROM agentmarket.agents a'
                ' WHERE a.status = ''published'' AND %s @@ tq%s%s%s%s ORDER BY %s LIMIT 20 OFFSET %s) x',
      CASE contender WHEN 'rum' THEN 'a.bench_rum <=> tq' WHEN 'gin' THEN 'ts_rank(a.search_document, tq)'
           ELSE $n$ts_rank(to_tsvector('english', a.name || ' ' || a.tagline || ' ' || a.description), tq)$n$ END,
      CASE contender WHEN 'rum' THEN 'a.bench_rum' WHEN 'gin' THEN 'a.search_document'
           ELSE $n$to_tsvector('english', a.name || ' ' || a.tagline || ' ' || a.description)$n$ END,
      CASE WHEN v.category IS NOT NULL THEN format(' AND a.category = %L', v.category) ELSE '' END,
      CASE WHEN v.relays IS NOT NULL THEN format(' AND a.supported_relays && %L', v.relays) ELSE '' END,
      CASE WHEN v.models IS NOT NULL THEN format(' AND a.supported_models && %L', v.models) ELSE '' END,
      CASE WHEN v.pricing IS NOT NULL THEN format(' AND a.pricing_model = %L', v.pricing) ELSE '' END,
      CASE v.sort
        WHEN 'rating' THEN 'COALESCE(a.avg_rating, 0) DESC, a.total_reviews DESC, a.id DESC'
        WHEN 'popular' THEN 'a.total_hires DESC, a.id DESC'
        WHEN 'newest' THEN 'a.published_at DESC, a.id DESC'
        ELSE CASE contender WHEN 'rum' THEN 'score' ELSE 'score DESC' END END,
      (v.page - 1) * 20)
$$;
DO $$
BEGIN
    EXECUTE (
        SELECT 'CREATE FUNCTION pg_temp.time_peer(c text, variant text, p_words text, p_pre text) RETURNS float8
                LANGUAGE plpgsql AS $f$
                DECLARE t0 timestamptz; tq tsquery; n int;
                BEGIN ' || string_agg(format(
                    '%s c = %L AND variant = %L AND (p_pre IS NOT NULL) = %L THEN
                         t0 := clock_timestamp();
                         tq := %s;
                         %s;
                         RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;',
                    CASE WHEN n = 1 THEN 'IF' ELSE 'ELSIF' END, c, (v).variant, p,
                    CASE WHEN p THEN $q$websearch_to_tsquery('english', p_words) && to_tsquery('simple', p_pre || ':*')$q$
                         ELSE $q$websearch_to_tsquery('english', p_words)$q$ END,
                    pg_temp.contender_sql(c, v, p)), ' ' ORDER BY n)
               || ' END IF; RAISE ''no statement for %, %'', c, variant; END $f$'
          FROM (SELECT c, v, p, row_number() OVER () AS n
                  FROM unnest(ARRAY['rum', 'gin', 'naive']) c, bench_variant v, unnest(ARRAY[false, true]) p) x);
END
$$;

-- One timed call of a contender for a run: ours (and, in cold.sql, ours
-- declared with the former SET clause), or a peer's statement.
CREATE FUNCTION pg_temp.time_call(c text, r runs) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    n int;
BEGIN
    IF c = 'ours' THEN
        t0 := clock_timestamp();
        SELECT count(*) INTO n FROM agentmarket.search_agents(r.q, r.category, NULL, r.relays, r.models,
                                                             r.pricing, r.sort, 20, r.after);
    ELSIF c = 'ours (SET clause)' THEN
        t0 := clock_timestamp();
        SELECT count(*) INTO n FROM pg_temp.search_agents_set_clause(r.q, r.category, NULL, r.relays, r.models,
                                                                     r.pricing, r.sort, 20, r.after);
    ELSE
        RETURN pg_temp.time_peer(c, r.variant, r.words, r.pre);
    END IF;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END
$$;
