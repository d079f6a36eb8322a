-- search_fast: what the sub-millisecond searches rely on (issue 14,
-- search-fast).  The ordered walk's estimate of listings above a static
-- score reads ANALYZE's statistics through the syscache: new statistics
-- are read at once, in the same session.  A single word sorted by a column
-- whose page would take more listings of the sort's walk than its cap is
-- read through GIN and sorted at once (not walked to the cap first), and a
-- word common enough is still walked; a prefix read through its
-- completions is checked on the row as typed.  Every page equals sorting
-- every match in SQL.
\ir test/fixture.sql
BEGIN;
SELECT plan(20);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-4000-4000-8000-000000000001', 'maker@fast.test', 'creator');
-- 600 listings: 'zorblat' in 12, 'zorbix' in 40, 'qwimble' in 300.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, tags,
                                total_hires, avg_rating, total_reviews, published_at)
SELECT 'fast-' || i, '66666666-4000-4000-8000-000000000001',
       'Helper ' || CASE WHEN i % 50 = 0 THEN 'zorblat ' ELSE '' END || (ARRAY['mail','notes','video'])[1 + i % 3],
       'Automate your work' || CASE WHEN i % 15 = 0 THEN ' with zorbix' ELSE '' END,
       'This agent helps with tasks' || CASE WHEN i % 2 = 0 THEN ' qwimble' ELSE '' END,
       (ARRAY['finance','writing','coding'])[1 + i % 3], 'published', (ARRAY['per_session','per_task','free'])[1 + i % 3],
       'https://g/fast' || i, '{slack}', '{claude}', '{mail}',
       (i * 7919) % 50, CASE WHEN i % 4 = 0 THEN NULL ELSE ((i * 31) % 5) / 2.0 + 2 END, (i * 13) % 3,
       '2026-01-01'::timestamptz + (i % 7) * interval '1 day'
  FROM generate_series(1, 600) i;

-- The statistics: the estimate is the share of listings at or above a
-- score, within what a histogram of 100 buckets can tell.
ANALYZE agentmarket.agents;
CREATE TEMP TABLE share_floor AS
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY search_static) AS floor FROM agentmarket.agents;
CREATE TEMP TABLE share_before AS
SELECT agentmarket_private.search_static_share_above(f.floor) AS estimate,
       (SELECT avg((a.search_static >= f.floor)::int) FROM agentmarket.agents a) AS actual
  FROM share_floor f;
SELECT ok(abs(estimate - actual) < 0.05, 'the share above a static score is estimated from the statistics')
  FROM share_before;
SELECT is(agentmarket_private.search_static_share_above(-1), 1::float8, 'every listing is above a score below all');
SELECT is(agentmarket_private.search_static_share_above(1e9), 0::float8, 'none above a score above all');

-- Most listings gain hires (their static scores rise); after ANALYZE the
-- same session's estimate follows at once (no stale copy of the old ones).
UPDATE agentmarket.agents SET total_hires = total_hires + 100000 WHERE slug LIKE 'fast-%' AND (substr(slug, 6))::int % 5 <> 0;
ANALYZE agentmarket.agents;
SELECT ok(abs(agentmarket_private.search_static_share_above(f.floor)
              - (SELECT avg((a.search_static >= f.floor)::int) FROM agentmarket.agents a)) < 0.05
          AND agentmarket_private.search_static_share_above(f.floor) > b.estimate + 0.2,
          'after ANALYZE the new statistics are read at once')
  FROM share_floor f, share_before b;

-- Sorted by a column, each page against every match sorted in SQL.
\ir test/search_exhaustive.sql
CREATE FUNCTION pg_temp.same_page(q text, sort text, size int, category text DEFAULT NULL) RETURNS boolean
LANGUAGE sql AS $$
    SELECT got IS NOT DISTINCT FROM (pg_temp.sorted(q, sort, category, NULL, NULL))[1:size] AND got IS NOT NULL
      FROM (SELECT array_agg(s.id) AS got FROM agentmarket.search_agents(q, category, sort => sort, page_size => size) s) p
$$;
-- Below this limit (a third of it) a word is sorted through GIN anyway;
-- 'zorblat' (12 matches) is above it.
SET LOCAL agentmarket.search_exhaustive_limit = '30';

-- 'zorblat' with pages of 100: a page would take 100 * 600 / 12 = 5,000
-- listings of the walk, more than its 4,096: through GIN at once.
SELECT ok(pg_temp.same_page('zorblat', 'rating', 100), 'a rare word by rating: the page is every match sorted');
SELECT ok((SELECT path FROM agentmarket_private.search_direct_last()) LIKE 'sort every match%'
          AND (SELECT walked FROM agentmarket_private.search_walk_last()) IS NULL,
          'a rare word whose page the walk could not fill is sorted through GIN at once, not walked first');
SELECT ok(pg_temp.same_page('zorblat', 'popular', 100) AND pg_temp.same_page('zorblat', 'newest', 100),
          'by hires and by publication too');
-- 'zorbix' (40 matches) with pages of 20: a page in 300 listings of the
-- walk, walked.  (The plain walk: with agentmarket.search_sorted_candidates
-- on, both words below walk the sort's index over their candidates,
-- sql/search_sorted_candidates.)
SET LOCAL agentmarket.search_sorted_candidates = off;
SELECT ok(pg_temp.same_page('zorbix', 'rating', 20), 'a less rare word by rating: the page');
SELECT is((SELECT path FROM agentmarket_private.search_direct_last()), 'walk the sort''s index',
          'a word whose page the walk can fill is walked');
-- 'qwimble' (300 of 600): walked.
SELECT ok(pg_temp.same_page('qwimble', 'rating', 100), 'a common word by rating: the page');
SELECT is((SELECT path FROM agentmarket_private.search_direct_last()), 'walk the sort''s index',
          'a common word is walked');
RESET agentmarket.search_sorted_candidates;

-- A prefix ('zorb': zorblat and zorbix, 52 listings) read through its
-- completions and checked as typed, within a category too.
SELECT ok(pg_temp.same_page('zorb', 'rating', 100) AND pg_temp.same_page('zorb', 'popular', 100, 'finance')
          AND pg_temp.same_page('helper zorb', 'newest', 100, 'coding'),
          'a prefix sorted: every match, checked as typed');

-- The last word is a prefix when the query ends inside it (the tail of
-- letters and digits, found without a regular expression in ASCII).
SELECT is(ARRAY(SELECT (agentmarket_private.search_prepare(q)).prefixes[1]
                  FROM unnest(ARRAY['zorb', 'zorb ', 'zorb!', 'zorb.', 'helper zorb', 'zorb é', 'ézorb',
                                    '"zorb"', 'zorb-', 'zorb2']) q),
          ARRAY[true, false, false, false, false, false, false, false, false, false],
          'a prefix only when the query ends inside the word');
SELECT is((agentmarket_private.search_prepare('helper zorb')).prefixes, ARRAY[false, true],
          'the last of several words is the prefix');

-- The vocabulary's relations are opened by OIDs kept per backend, looked
-- up by name again when one of them changes (here: renamed, then back).
SELECT is(pg_temp.error_of($$SELECT agentmarket_private.search_prepare('zorblatx')$$), 'ok',
          'the vocabulary read by its kept relations');
ALTER TABLE agentmarket_private.search_corpus RENAME TO search_corpus_moved;
SELECT is(pg_temp.error_of($$SELECT agentmarket_private.search_prepare('zorblatx')$$),
          '42P01: relation agentmarket_private.search_corpus does not exist / ',
          'a renamed vocabulary table is looked up by name again');
ALTER TABLE agentmarket_private.search_corpus_moved RENAME TO search_corpus;
SELECT is((agentmarket_private.search_prepare('zorblatx')).lexemes, ARRAY['zorblatx', 'zorblat'],
          'and found again by its name');

-- A query's parse is kept per backend until the text search configuration
-- changes: without its mapping for plain words, 'zorblat helper' has none.
SELECT is((agentmarket_private.search_prepare('zorblat helper')).query::text, '''zorblat'' & ''helper''',
          'a query parsed (and kept)');
ALTER TEXT SEARCH CONFIGURATION pg_catalog.english DROP MAPPING FOR asciiword;
SELECT ok((agentmarket_private.search_prepare('zorblat helper')).query IS NULL,
          'after the configuration changed, parsed again');
ALTER TEXT SEARCH CONFIGURATION pg_catalog.english ADD MAPPING FOR asciiword WITH english_stem;
SELECT is((agentmarket_private.search_prepare('zorblat helper')).query::text, '''zorblat'' & ''helper''',
          'and again after it changed back');

SELECT * FROM finish();
ROLLBACK;
