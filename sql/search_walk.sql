-- search_walk: the relevance walk in C (search_walk.c) over words common
-- apart and together: it answers (not scoring every match), reads fewer
-- listings than there are, fetches tiers through GIN, lets the walk take
-- over tiers when walking down to their static floor is cheaper, and every
-- page (filtered, second pages by cursor) equals exhaustive scoring.  The
-- tiers it computes are search_tiers' (also checked in search_bounds).
\ir test/fixture.sql
BEGIN;
SELECT plan(12);
SET LOCAL agentmarket.search_exhaustive_limit = 30;
-- The tiers' walk (search_walk.c); the ordered walk that answers first
-- when it is on (search_order.c) has its own suite, sql/search_order.
SET LOCAL agentmarket.search_order = off;

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-1000-4000-8000-000000000001', 'maker@sw.test', 'creator');
-- Four domains of five hub words each (most of a domain's listings have
-- some), "agent" nearly everywhere; names, taglines, tags and descriptions
-- drawn from them, so words of one domain meet far more often than chance.
SELECT setseed(0.29);
\set domains_prefix sw
\set domains_creator 66666666-1000-4000-8000-000000000001
\set domains_count 2000
\ir test/search_domains.sql
ANALYZE agentmarket.agents;

\ir test/search_exhaustive.sql
-- Without the model and pricing filters.
CREATE FUNCTION pg_temp.exhaustive(p_query text, p_category text, p_relays text[], p_k int, p_after text DEFAULT NULL)
RETURNS uuid[] LANGUAGE sql AS $$
    SELECT pg_temp.exhaustive(p_query, p_category, p_relays, NULL, NULL, p_k, p_after)
$$;

-- Each query, plain, by category, by relay, with pages of 5 and 20, and its
-- second page: the page, what the walk did, and the exhaustive page.
CREATE TEMP TABLE runs (q text, category text, relays text[], k int, after text, got uuid[], want uuid[],
                        walked bigint, tiers_fetched int, walked_over boolean, scored_all boolean);
CREATE FUNCTION pg_temp.run(p_q text, p_category text, p_relays text[], p_k int, p_after text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    got uuid[];
    w record;
BEGIN
    got := (SELECT COALESCE(array_agg(s.id), '{}')
              FROM agentmarket.search_agents(p_q, p_category, NULL, p_relays, NULL, NULL, 'relevance', p_k, p_after) s);
    w := agentmarket_private.search_walk_last();
    INSERT INTO runs VALUES (p_q, p_category, p_relays, p_k, p_after, got,
                             pg_temp.exhaustive(p_q, p_category, p_relays, p_k, p_after),
                             w.walked, w.tiers_fetched, w.walked_over, w.scored_all);
END $$;
SELECT pg_temp.run(q.q, v.category, v.relays, k.k, NULL)
  FROM (VALUES ('invoice budget'), ('github deploy server'), ('recipe fitness travel garden'), ('agent github'),
               ('podcast music'), ('email inbox'), ('agent handles')) q(q),
       (VALUES (NULL, NULL::text[]), ('finance', NULL), (NULL, '{slack}')) v(category, relays),
       (VALUES (5), (20)) k(k) \g /dev/null
SELECT pg_temp.run(r.q, r.category, r.relays, r.k,
                   (SELECT s.cursor FROM agentmarket.search_agents(r.q, r.category, NULL, r.relays, NULL, NULL, 'relevance', r.k) s
                     ORDER BY s.score, s.id LIMIT 1))
  FROM runs r \g /dev/null

SELECT is((SELECT count(*)::int FROM runs), 84, 'every query, filter, page size and page ran');
SELECT is((SELECT array_agg(DISTINCT r.q || ' ' || COALESCE(r.category, '') || COALESCE(r.relays::text, '') || ' k=' || r.k
                            || CASE WHEN r.after IS NULL THEN '' ELSE ' page 2' END)
             FROM runs r WHERE r.got IS DISTINCT FROM r.want),
          NULL, 'every page equals exhaustive scoring (filters, page sizes, second pages by cursor)');
SELECT ok((SELECT count(*) FROM runs r WHERE cardinality(r.got) = r.k) >= 80, 'and nearly every page is full');
SELECT ok((SELECT count(*) FROM runs r WHERE r.walked IS NOT NULL AND NOT r.scored_all) >= 30,
          'the walk answers many of them (common words: not by scoring every match)');
SELECT ok((SELECT bool_and(r.walked < 2000) FROM runs r WHERE r.walked IS NOT NULL AND NOT r.scored_all),
          'reading fewer listings than there are');
SELECT ok((SELECT count(*) FROM runs r WHERE r.tiers_fetched > 0 AND NOT r.scored_all) >= 20,
          'fetching tiers through GIN');
SELECT ok((SELECT count(*) FROM runs r WHERE r.walked_over) >= 1,
          'and walking down over tiers whose static floor is near the top');

-- The tiers of a word in names, taglines and descriptions: one per field,
-- bounds by the field weights; the GIN condition of the name's tier.
SELECT is((SELECT array_agg(t.bound ORDER BY t.bound DESC)
             FROM agentmarket_private.search_tiers(agentmarket_private.search_prepare('invoice')) t),
          ARRAY[1, 0.5, 0.25]::float8[], 'a word''s tiers: name, tagline or tags, description only');
SELECT is((SELECT t.driver FROM agentmarket_private.search_tiers(agentmarket_private.search_prepare('invoice')) t
            WHERE t.bound = 1),
          $$a.search_fields @@ '(''a/invoic'')'::tsquery$$, 'found through the name words of search_fields');
-- Sorted by a column: a burst of new listings of other words at the top of
-- the newest order.  The walk of the sort's index reads past them (many
-- matches expected: sorting them all costs more) instead of giving up for
-- GIN and sort at the first empty chunk.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status,
                                github_repo_url, published_at)
SELECT 'sw-new-' || i, '66666666-1000-4000-8000-000000000001', 'Fresh Thing ' || i, 'Brand new',
       'Nothing of the domains here.', 'research', 'published', 'https://g/swn' || i,
       '2030-01-01'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 250) i;
SELECT is((SELECT array_agg(s.id) FROM agentmarket.search_agents('handles', sort => 'newest') s),
          (SELECT (array_agg(a.id ORDER BY a.published_at DESC, a.id DESC))[1:20] FROM agentmarket.agents a
            WHERE a.status = 'published' AND a.search_document @@ (agentmarket_private.search_prepare('handles')).query),
          'sorted by newest past a burst of new listings: the newest matches');
SELECT ok((SELECT w.walked > 250 AND NOT w.scored_all FROM agentmarket_private.search_walk_last() w),
          'found by walking past the burst, not by sorting every match');

SELECT count(*) FROM agentmarket.search_agents('zzzzunknown');
SELECT ok(agentmarket_private.search_walk_last() IS NULL, 'a search that does not walk leaves nothing behind');

SELECT * FROM finish();
ROLLBACK;
