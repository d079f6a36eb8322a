-- search_fast: what the sub-millisecond searches rely on (issue 14,
-- search-fast).  The ordered walk's estimate of listings above a static
-- score reads ANALYZE's statistics through the syscache: new statistics
-- are read at once, in the same session.
\ir test/fixture.sql
BEGIN;
SELECT plan(4);

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

SELECT * FROM finish();
ROLLBACK;
