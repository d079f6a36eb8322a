-- search_marks: the posting lists walked against a set of listings
-- (search_gin.c's am_gin_keep_group) rather than read whole, merged and
-- intersected: the filters' lists against the ordered walk's members
-- (search_order_sets.c's am_order_filter), the other words' lists against
-- the rarest word's listings (the ordered walk's candidates, and scoring
-- every match from the posting lists).  Each list is decoded a leaf at a
-- time, a leaf with none of the set's listings in its range not decoded, the
-- pending list's entries (fastupdate) walked after.  So the corpus has
-- lists of several leaves (16,000 listings: a relay in all, another in
-- half, a word in all) and sets that are few and clustered at both ends of
-- the heap, the last ones still in the pending lists; every page must
-- equal exhaustive scoring.
\ir test/fixture.sql
BEGIN;
SELECT plan(9);
SET LOCAL agentmarket.search_exhaustive_limit = 30;

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-3300-4000-8000-000000000001', 'maker@marks.test', 'creator');
-- Small pending lists while the bulk goes in: flushed into the trees often,
-- so the long lists become posting trees of several leaves.
SET LOCAL gin_pending_list_limit = 64;
CREATE FUNCTION pg_temp.listings(lo int, hi int) RETURNS void
LANGUAGE sql AS $$
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, total_hires, avg_rating,
                                total_reviews)
SELECT 'marks-' || i, '66666666-3300-4000-8000-000000000001',
       -- zorblax: few listings, at both ends of the heap
       CASE WHEN i <= 300 OR i > 15700 THEN 'Zorblax Helper ' || i % 7 ELSE 'Plain Helper ' || i % 7 END,
       'Handles chores',
       -- quaffle in the even listings, bludger in the odd ones and in the
       -- even ones at both ends: common apart, rare together; agent in all
       'This agent handles ' || CASE WHEN i % 2 = 0 THEN 'quaffle' ELSE 'bludger' END
           || CASE WHEN i % 2 = 0 AND (i <= 80 OR i > 15920) THEN ' bludger' ELSE '' END || ' tasks.',
       (ARRAY['finance','writing','coding','research'])[1 + i % 4], 'published',
       (ARRAY['per_session','per_task','free'])[1 + i % 3], 'https://g/marks-' || i,
       CASE WHEN i % 2 = 0 THEN '{telegram,discord}' ELSE '{telegram}' END::text[],
       CASE WHEN i % 3 = 0 THEN '{claude}' ELSE '{gemini}' END::text[],
       (i * 7919) % 700, ((i * 31) % 41) / 10.0 + 1, (i * 13) % 60
  FROM generate_series(lo, hi) i
$$;
SELECT pg_temp.listings(1, 15900);
-- The last ones stay in the pending lists.
SET LOCAL gin_pending_list_limit = 4096;
SELECT pg_temp.listings(15901, 16000);
ANALYZE agentmarket.agents;

\ir test/search_exhaustive.sql

CREATE TEMP TABLE runs (arm text, q text, category text, relays text[], models text[], k int, after text,
                        got uuid[], want uuid[], members bigint, candidates bigint, path text);
CREATE FUNCTION pg_temp.run(p_arm text, p_q text, p_category text, p_relays text[], p_models text[], p_k int,
                            p_after text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    got uuid[];
    o record;
    d record;
BEGIN
    PERFORM set_config('agentmarket.search_order_matches', CASE p_arm WHEN 'candidates' THEN 'on' ELSE 'off' END, true);
    got := (SELECT COALESCE(array_agg(s.id), '{}')
              FROM agentmarket.search_agents(p_q, p_category, NULL, p_relays, p_models, NULL, 'relevance',
                                             p_k, p_after) s);
    SELECT * INTO o FROM agentmarket_private.search_order_last();
    SELECT * INTO d FROM agentmarket_private.search_direct_last();
    PERFORM set_config('agentmarket.search_order_matches', 'auto', true);
    INSERT INTO runs VALUES (p_arm, p_q, p_category, p_relays, p_models, p_k, p_after, got,
                             pg_temp.exhaustive(p_q, p_category, p_relays, p_models, NULL, p_k, p_after),
                             o.members, o.candidates, d.path);
END $$;
SELECT pg_temp.run(a.arm, q.q, v.category, v.relays, v.models, k.k, NULL)
  FROM (VALUES ('walk'), ('candidates')) a(arm),
       (VALUES ('zorblax'), ('zorblax agent'), ('zorblax helper'), ('quaffle bludger'),
               ('quaffle bludger agent')) q(q),
       (VALUES (NULL, NULL::text[], NULL::text[]), (NULL, '{discord}', NULL), (NULL, '{telegram,discord}', NULL),
               (NULL, NULL, '{claude}'), ('coding', '{discord}', '{claude}')) v(category, relays, models),
       (VALUES (5), (20)) k(k) \g /dev/null
SELECT pg_temp.run(r.arm, r.q, r.category, r.relays, r.models, r.k,
                   (SELECT s.cursor FROM agentmarket.search_agents(r.q, r.category, NULL, r.relays, r.models, NULL,
                                                                   'relevance', r.k) s
                     ORDER BY s.score, s.id LIMIT 1))
  FROM runs r WHERE r.k = 5 \g /dev/null

SELECT is((SELECT count(*)::int FROM runs), 150, 'every arm, query, filter, page size and page ran');
SELECT is((SELECT array_agg(DISTINCT r.arm || ': ' || r.q || ' ' || concat_ws(',', r.category, r.relays::text, r.models::text)
                            || ' k=' || r.k || CASE WHEN r.after IS NULL THEN '' ELSE ' page 2' END)
             FROM runs r WHERE r.got IS DISTINCT FROM r.want),
          NULL, 'every page equals exhaustive scoring (filters walked against the members, words against the rarest)');
SELECT ok((SELECT count(*) FROM runs r WHERE cardinality(r.got) = r.k) >= 90, 'most pages are full');
-- The pending lists hold the last listings: pages reach them.
SELECT ok(EXISTS (SELECT FROM runs r, agentmarket.agents a
                   WHERE a.id = ANY (r.got) AND a.slug IN (SELECT 'marks-' || i FROM generate_series(15901, 16000) i)
                     AND r.q = 'zorblax' AND r.relays = '{discord}')
          AND EXISTS (SELECT FROM runs r, agentmarket.agents a
                       WHERE a.id = ANY (r.got) AND a.slug IN (SELECT 'marks-' || i FROM generate_series(1, 60) i)
                         AND r.q = 'zorblax' AND r.relays = '{discord}'),
          'listings from both ends of the heap, the pending lists'' too, are found');
-- The ordered walk narrowed its members to a filter's listings.
SELECT ok((SELECT bool_and(f.members < n.members) FROM runs f JOIN runs n
              ON (n.arm, n.q, n.k, n.after) IS NOT DISTINCT FROM (f.arm, f.q, f.k, f.after)
            WHERE f.arm = 'walk' AND f.q = 'zorblax' AND f.relays = '{discord}' AND f.category IS NULL AND f.k = 20
              AND n.relays IS NULL AND n.models IS NULL AND n.category IS NULL)
          AND (SELECT count(*) FROM runs f WHERE f.arm = 'walk' AND f.q = 'zorblax' AND f.members IS NOT NULL) > 0,
          'the walk''s members: within a filter''s listings');
SELECT ok((SELECT bool_and(f.members < n.members) FROM runs f JOIN runs n
              ON (n.arm, n.q, n.k, n.after) IS NOT DISTINCT FROM (f.arm, f.q, f.k, f.after)
            WHERE f.arm = 'walk' AND f.q = 'zorblax' AND f.models = '{claude}' AND f.category IS NULL
              AND n.relays IS NULL AND n.models IS NULL AND n.category IS NULL),
          'and within a model''s');
-- The candidates: the rarest word read whole, the others walked against it.
SELECT ok((SELECT bool_and(r.candidates IS NOT NULL) FROM runs r
            WHERE r.arm = 'candidates' AND r.members IS NOT NULL AND r.q LIKE 'zorblax%'),
          'the ordered walk read the candidates');
SELECT ok((SELECT bool_and(r.candidates = (SELECT count(*) FROM agentmarket.agents a
                                             WHERE a.status = 'published' AND a.name LIKE 'Zorblax%'
                                               AND a.description LIKE '% agent %'))
             FROM runs r WHERE r.arm = 'candidates' AND r.q = 'zorblax agent' AND r.relays IS NULL AND r.models IS NULL
               AND r.category IS NULL),
          'the candidates of two words: exactly the listings with both');
-- Scoring every match from the posting lists: two words common apart and
-- rare together, a third in every listing walked against what is left.
SELECT ok((SELECT count(*) FROM runs r
            WHERE r.q LIKE 'quaffle bludger%' AND r.path = 'score every match, posting lists') > 0,
          'words common apart, rare together: every match scored from the posting lists');

ROLLBACK;
