-- bench/search/cold.sql: the rare words (five of them, ranked by relevance,
-- plain, by category, by model and on page 2), each call timed in three
-- states of the CPU's caches: cold (a 70 MB table summed just before: every
-- cache line of code and data read back from memory, as after a peer's scan
-- of a common word in time.sql), cool (a 5 MB table summed: the last-level
-- cache partly evicted) and warm (right after the cool call of the same
-- query).  Contenders in random order per query: ours; ours declared as
-- before 2026-12-02 (SECURITY DEFINER with SET search_path, the same C
-- function: what the clause costs); GIN + ts_rank; RUM.  :iters rounds, the
-- first not kept.  A sub-millisecond row's p99 in time.sql is made of the
-- cold and cool calls, so this is what decides those rows.
\ir peers.sql
CREATE FUNCTION pg_temp.search_agents_set_clause(
    query text DEFAULT NULL, category text DEFAULT NULL, tags text[] DEFAULT NULL,
    relays text[] DEFAULT NULL, models text[] DEFAULT NULL, pricing_model text DEFAULT NULL,
    sort text DEFAULT 'relevance', page_size integer DEFAULT 20, page_after text DEFAULT NULL)
RETURNS SETOF agentmarket.agent_search_result
AS '$libdir/agentmarket', 'search_agents'
LANGUAGE C STABLE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
ROWS 20;
-- In shared buffers (not temporary: those are read through 8 MB of local buffers).
CREATE UNLOGGED TABLE public.bench_flush_cold AS SELECT g AS x FROM generate_series(1, 2000000) g;
CREATE UNLOGGED TABLE public.bench_flush_cool AS SELECT g AS x FROM generate_series(1, 150000) g;
SELECT (SELECT sum(x) FROM public.bench_flush_cold) + (SELECT sum(x) FROM public.bench_flush_cool) AS read \gset
CREATE TEMP TABLE cold (mode text, contender text, variant text, q text, ms float8);
SELECT set_config('bench.iters', :'iters', false) AS iters \gset
DO $$
DECLARE
    r runs; c text; ms float8; i int; mode text;
BEGIN
    FOR i IN 0 .. current_setting('bench.iters')::int LOOP
        FOR r IN SELECT * FROM runs WHERE class = '1 rare word' AND variant IN ('plain', 'category', 'model', 'page 2')
                  ORDER BY random() LOOP
            FOREACH c IN ARRAY ARRAY(SELECT x FROM unnest(ARRAY['ours', 'ours (SET clause)', 'gin', 'rum']) x ORDER BY random()) LOOP
                FOREACH mode IN ARRAY ARRAY['cold', 'cool', 'warm'] LOOP
                    IF mode = 'cold' THEN
                        PERFORM sum(x) FROM public.bench_flush_cold;
                    ELSIF mode = 'cool' THEN
                        PERFORM sum(x) FROM public.bench_flush_cool;
                    END IF;
                    ms := pg_temp.time_call(c, r);
                    IF i > 0 THEN
                        INSERT INTO cold VALUES (mode, c, r.variant, r.q, ms);
                    END IF;
                END LOOP;
            END LOOP;
        END LOOP;
    END LOOP;
END
$$;
\pset footer off
\echo 'a rare word by relevance (plain, category, model, page 2) on cold, cool and warm caches: µs per call (ratio: ours / the better of RUM and GIN)'
WITH s AS (
    SELECT mode, contender, count(*) AS n,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) * 1000 AS p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY ms) * 1000 AS p90,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) * 1000 AS p99
      FROM cold GROUP BY 1, 2)
SELECT s.mode, s.contender, s.n, round(s.p50::numeric) AS p50_us, round(s.p90::numeric) AS p90_us,
       round(s.p99::numeric) AS p99_us,
       to_char(s.p50 / least(g.p50, r.p50), 'FM90.00') || ' / ' || to_char(s.p90 / least(g.p90, r.p90), 'FM90.00')
       || ' / ' || to_char(s.p99 / least(g.p99, r.p99), 'FM90.00') AS ratio_p50_p90_p99
  FROM s JOIN s g ON (g.mode, g.contender) = (s.mode, 'gin') JOIN s r ON (r.mode, r.contender) = (s.mode, 'rum')
 ORDER BY array_position(ARRAY['cold', 'cool', 'warm'], s.mode),
          array_position(ARRAY['ours', 'ours (SET clause)', 'gin', 'rum'], s.contender);
DROP TABLE public.bench_flush_cold, public.bench_flush_cool;
