-- search_fixed: what a search costs per call besides its reads (issue 14).
-- search_agents has no SET clause (its rights and path are taken in C):
-- JIT and parallel plans are turned off in C only while its statements run
-- and the caller's settings are back afterwards, whichever path answered
-- (in C or by statements) and after an error; the cursor's score is written
-- shortest-exact whatever the caller's extra_float_digits, so pages and
-- cursors are byte for byte the same under any setting.  The density
-- sample (the first 64 listings in static order within filters, counted)
-- is read in C: every choice made from it, and every page, equal the
-- sample statement's (search_direct off).
\ir test/fixture.sql
BEGIN;
SELECT plan(16);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-3000-4000-8000-000000000001', 'maker@sf.test', 'creator');
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, tags,
                                total_hires, avg_rating, total_reviews, published_at)
SELECT 'sf-' || i, '66666666-3000-4000-8000-000000000001',
       initcap(CASE WHEN i % 5 = 0 THEN 'kazumor ' ELSE '' END || 'helper ' || (ARRAY['mail','notes','video'])[1 + i % 3]),
       'Automate your agent work', 'This agent helps with inbox tasks ' || CASE WHEN i % 3 = 0 THEN 'kazumor' ELSE '' END,
       (ARRAY['finance','writing','coding'])[1 + i % 3], 'published', (ARRAY['per_session','per_task','free'])[1 + i % 3],
       'https://g/sf' || i, '{slack}', '{claude}', '{mail}',
       (i * 7919) % 9, CASE WHEN i % 4 = 0 THEN NULL ELSE ((i * 31) % 5) / 2.0 + 2 END, (i * 13) % 3,
       '2026-01-01'::timestamptz + (i % 7) * interval '1 day'
  FROM generate_series(1, 300) i;

-- No SET clause at all: the definer's rights and the pinned path are taken
-- in C (definer.c; sql/search_definer checks them).
SELECT is((SELECT format('definer=%s config=%s', p.prosecdef, p.proconfig) FROM pg_proc p
            WHERE p.oid = 'agentmarket.search_agents'::regproc),
          'definer=f config=', 'search_agents has no SET clause (its path is pinned in C)');

-- Searches answered in C and by statements (search_direct off, a walk of
-- common words, a filtered sample): every page, its scores and cursors.
CREATE TEMP TABLE fx (n serial, q text, sort text, category text, direct text, after boolean);
INSERT INTO fx (q, sort, category, direct, after)
SELECT q, sort, category, direct, after
  FROM unnest(ARRAY['kazumor', 'kazu', 'agent', 'agent helper', 'kazumor inbox', NULL]) q,
       unnest(ARRAY['relevance', 'rating', 'newest']) sort,
       unnest(ARRAY[NULL, 'finance']) category,
       unnest(ARRAY['on', 'off']) direct,
       unnest(ARRAY[false, true]) after;
CREATE FUNCTION pg_temp.page(r fx) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    cur text;
    out text;
BEGIN
    PERFORM set_config('agentmarket.search_direct', r.direct, true);
    IF r.after THEN
        SELECT s.cursor INTO cur FROM agentmarket.search_agents(r.q, r.category, sort => r.sort, page_size => 7) s
         ORDER BY 1 DESC LIMIT 1 OFFSET 6;
    END IF;
    SELECT string_agg(s.id || ' ' || encode(float8send(s.score), 'hex') || ' ' || s.cursor, ',' ORDER BY s.score, s.id) INTO out
      FROM agentmarket.search_agents(r.q, r.category, sort => r.sort, page_size => 7, page_after => cur) s;
    RETURN out;
END $$;

-- The caller's settings before: JIT on, parallel plans allowed, few float digits.
SET LOCAL jit = on;
SET LOCAL max_parallel_workers_per_gather = 3;
SET LOCAL extra_float_digits = 0;
CREATE TEMP TABLE pages_0 AS SELECT r.*, pg_temp.page(r) AS page FROM fx r;
SELECT is(current_setting('jit') || ' ' || current_setting('max_parallel_workers_per_gather') || ' ' ||
          current_setting('extra_float_digits'), 'on 3 0',
          'after searches in C and by statements, the caller''s settings are its own');
SELECT is((SELECT count(*) FROM pages_0 WHERE page IS NULL), 0::bigint, 'every search returned a page');
SELECT cmp_ok((SELECT count(DISTINCT page) FROM pages_0), '>', 30::bigint, 'the pages differ by query, sort and filter');

-- Under other settings: the same bytes (cursors included).
SET LOCAL extra_float_digits = 3;
SET LOCAL jit = off;
SET LOCAL max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE pages_3 AS SELECT r.*, pg_temp.page(r) AS page FROM fx r;
SET LOCAL extra_float_digits = -15;
CREATE TEMP TABLE pages_m AS SELECT r.*, pg_temp.page(r) AS page FROM fx r;
SELECT is((SELECT count(*) FROM pages_0 a JOIN pages_3 b USING (n) JOIN pages_m c USING (n)
            WHERE a.page IS NOT DISTINCT FROM b.page AND b.page IS NOT DISTINCT FROM c.page),
          (SELECT count(*) FROM fx),
          'pages and cursors are the same under extra_float_digits 0, 3 and -15');
-- and the two paths agree
SELECT is((SELECT count(*) FROM pages_3 a JOIN pages_3 b
              ON (a.q, a.sort, a.after) IS NOT DISTINCT FROM (b.q, b.sort, b.after) AND a.category IS NOT DISTINCT FROM b.category
            WHERE a.direct = 'on' AND b.direct = 'off' AND a.page IS NOT DISTINCT FROM b.page),
          (SELECT count(*) FROM fx WHERE direct = 'on'), 'the C paths and the statements return the same bytes');

-- The cursor's score: shortest exact, as float8out with extra_float_digits 3.
SET LOCAL extra_float_digits = 1;
SELECT is((SELECT count(*) FROM agentmarket.search_agents('kazumor', page_size => 20) s
            WHERE s.cursor <> agentmarket_private.search_cursor('relevance', s.score::text, NULL, s.id)),
          0::bigint, 'a relevance cursor holds the score as float8out writes it (shortest exact)');
-- Errors (the search refuses its arguments; the statement calling it fails
-- on its rows): the caller's settings are back.
SET LOCAL jit = on;
SET LOCAL max_parallel_workers_per_gather = 2;
SELECT is(pg_temp.error_of($$SELECT * FROM agentmarket.search_agents('kazumor', page_size => 0)$$),
          '22023: page_size must be between 1 and 100 / ', 'a bad argument is refused');
SELECT is(pg_temp.error_of($$SELECT * FROM agentmarket.search_agents('kazumor', sort => 'rating', page_after => 'bm9wZQ')$$),
          '22023: invalid page cursor / page_after must be the cursor of a row returned by search_agents with sort rating.',
          'a forged cursor is refused');
SET LOCAL agentmarket.search_direct = off;
SELECT is(pg_temp.error_of($$SELECT s.id, 1 / (s.total_hires - s.total_hires)
                                FROM agentmarket.search_agents('agent helper', category => 'finance') s$$),
          '22012: division by zero / ', 'an error in the statement reading the rows of a search by statements');
SELECT is(current_setting('jit') || ' ' || current_setting('max_parallel_workers_per_gather'), 'on 2',
          'after errors the caller''s settings are its own');

-- The density sample: several words, sorted by a column or by relevance
-- with filters, the exhaustive limit low so that the sample decides (GIN
-- and sort, or the walk and how far; walk or score every match).  Words of
-- one domain meet in most listings at the top of the static order, words of
-- two rarely; the filters (category, relays, models, pricing, tags) change
-- which listings the sample reads.
RESET agentmarket.search_direct;
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, tags,
                                total_hires, avg_rating, total_reviews, published_at)
SELECT 'sfs-' || i, '66666666-3000-4000-8000-000000000001',
       initcap((ARRAY['ledger','studio','garden'])[1 + i % 3] || ' helper'),
       CASE WHEN i % 2 = 0 THEN 'budget invoice tracking' ELSE 'music podcast editing' END,
       CASE WHEN i % 7 < 3 THEN 'budget podcast ' ELSE '' END || 'ledger studio work ' ||
       CASE WHEN i % 11 = 0 THEN 'invoice music' ELSE 'tasks' END,
       (ARRAY['finance','writing','coding','research'])[1 + i % 4], 'published', (ARRAY['per_session','per_task','free'])[1 + i % 3],
       'https://g/sfs' || i, (ARRAY['{slack}','{telegram,discord}','{whatsapp}'])[1 + (i / 3) % 3]::text[],
       (ARRAY['{claude}','{gpt,gemini}'])[1 + (i / 2) % 2]::text[], CASE WHEN i % 5 = 0 THEN '{mail,budget}'::text[] ELSE '{mail}' END,
       (i * 7919) % 13, CASE WHEN i % 4 = 0 THEN NULL ELSE ((i * 31) % 5) / 2.0 + 2 END, (i * 13) % 3,
       '2026-01-01'::timestamptz + (i % 9) * interval '1 day'
  FROM generate_series(1, 900) i;
SET LOCAL agentmarket.search_exhaustive_limit = 60;
CREATE TEMP TABLE sx (n serial, q text, sort text, category text, relays text[], models text[], pricing text, tags text[]);
INSERT INTO sx (q, sort, category, relays, models, pricing, tags)
SELECT q, sort, f.category, f.relays, f.models, f.pricing, f.tags
  FROM unnest(ARRAY['budget invoice', 'music podcast', 'budget podcast', 'ledger studio', 'invoice music',
                    'ledger studio work', 'budget podcast or music']) q,
       unnest(ARRAY['relevance', 'rating', 'popular', 'newest']) sort,
       (VALUES (NULL::text, NULL::text[], NULL::text[], NULL::text, NULL::text[]), ('finance', NULL, NULL, NULL, NULL), (NULL, '{slack}', NULL, NULL, NULL),
               (NULL, NULL, '{claude}', NULL, NULL), (NULL, NULL, NULL, 'free', NULL), (NULL, NULL, NULL, NULL, '{budget}'),
               ('coding', '{telegram}', '{gpt}', 'per_task', NULL)) f(category, relays, models, pricing, tags);
CREATE FUNCTION pg_temp.sample_run(r sx, direct text, OUT page text, OUT filters integer, OUT walked integer, OUT matches integer)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('agentmarket.search_direct', direct, true);
    SELECT string_agg(s.id || ' ' || encode(float8send(s.score), 'hex') || ' ' || s.cursor, ',' ORDER BY s.score, s.id) INTO page
      FROM agentmarket.search_agents(r.q, r.category, r.tags, r.relays, r.models, r.pricing, r.sort, 10) s;
    SELECT x.filters, x.walked, x.matches INTO filters, walked, matches FROM agentmarket_private.search_sample_last() x;
END $$;
-- The sample in SQL: the first 64 published listings in static order within
-- the filters the C sample says it applied, and the matches of the plan's query.
CREATE FUNCTION pg_temp.sample_sql(r sx, m integer, OUT walked integer, OUT matches integer) LANGUAGE sql AS $$
    SELECT count(*)::integer, (count(*) FILTER (WHERE a.search_document @@ (agentmarket_private.search_prepare(r.q)).query))::integer
      FROM (SELECT a.search_document FROM agentmarket.agents a
             WHERE a.status = 'published'
               AND (m & 1 = 0 OR a.category = r.category) AND (m & 2 = 0 OR a.tags @> r.tags)
               AND (m & 4 = 0 OR a.supported_relays && r.relays) AND (m & 8 = 0 OR a.supported_models && r.models)
               AND (m & 16 = 0 OR a.pricing_model = r.pricing)
             ORDER BY a.search_static DESC, a.id DESC LIMIT 64) a
$$;
CREATE TEMP TABLE sample_runs AS
SELECT r.n, c.page AS c_page, c.filters, c.walked, c.matches, o.page AS statement_page
  FROM sx r, pg_temp.sample_run(r, 'on') c, pg_temp.sample_run(r, 'off') o;
SELECT is((SELECT count(*) FROM sample_runs WHERE c_page IS DISTINCT FROM statement_page), 0::bigint,
          'with the sample read in C, every page equals the one of the sample statement (' ||
          (SELECT count(*) FROM sample_runs) || ' searches)');
SELECT is((SELECT count(*) FROM sample_runs s JOIN sx r USING (n), pg_temp.sample_sql(r, s.filters) q
            WHERE s.walked IS NOT NULL AND (s.walked, s.matches) IS DISTINCT FROM (q.walked, q.matches)), 0::bigint,
          'every sample read in C counts what the sample statement counts');
SELECT cmp_ok((SELECT count(*) FROM sample_runs WHERE walked IS NOT NULL), '>', 60::bigint,
              'many of them sample');
SELECT is((SELECT array_agg(DISTINCT filters ORDER BY filters) FROM sample_runs WHERE filters IS NOT NULL), ARRAY[0, 1, 2, 4, 8, 16, 29],
          'samples within no filter, each filter and four of them (relevance: the category alone)');
SELECT cmp_ok((SELECT count(DISTINCT (filters, walked, matches)) FROM sample_runs WHERE matches BETWEEN 1 AND walked - 1),
              '>', 15::bigint, 'samples of every density, some of fewer than 64 listings');

SELECT * FROM finish();
ROLLBACK;
