-- search_order: the ordered walk of common words (search_order.c): the words'
-- name sets read once from GIN, the listings of small classes fetched by
-- TID, the static-score btree walked index-only with a row read only when
-- its class's bound can still reach the page.  Every page (filters, page
-- sizes, second pages by cursor, typos, prefixes, phrases, negations, dead
-- row versions) equals exhaustive scoring and the tiers' walk
-- (agentmarket.search_order = off); search_order_last tells that the ordered
-- walk answered and how much it read.
\ir test/fixture.sql
BEGIN;
SELECT plan(15);
SET LOCAL agentmarket.search_exhaustive_limit = 30;

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-3000-4000-8000-000000000001', 'maker@so.test', 'creator');
-- Four domains of five hub words each, "agent" nearly everywhere; words of
-- one domain meet far more often than chance (as in sql/search_walk).
SELECT setseed(0.41);
\set domains_prefix so
\set domains_creator 66666666-3000-4000-8000-000000000001
\set domains_count 5000
\ir test/search_domains.sql
-- The best text at the worst static score: every word in its name, no
-- reviews, no hires (the walk in static order meets it last).
INSERT INTO agentmarket.agents (id, slug, creator_id, name, tagline, description, category, status, github_repo_url)
VALUES ('66666666-3000-4000-8000-0000000000d1', 'so-deep', '66666666-3000-4000-8000-000000000001',
        'Recipe Fitness Travel Garden', 'Plans', 'It plans.', 'research', 'published', 'https://g/so-deep');
-- Listings that change after their first version: new words in the name
-- (a new row version; the old one stays in the indexes, dead), archived.
UPDATE agentmarket.agents SET name = 'Github Deploy Server' WHERE slug IN ('so-5', 'so-6', 'so-7');
UPDATE agentmarket.agents SET status = 'archived' WHERE slug IN ('so-8', 'so-9');
ANALYZE agentmarket.agents;

\ir test/search_exhaustive.sql

-- Each query, with filters, pages of 5 and 20 and the second page: the page
-- with the ordered walk, with the tiers' walk, what the ordered walk read,
-- and the exhaustive page.
CREATE TEMP TABLE runs (q text, category text, relays text[], models text[], pricing text, k int, after text,
                        got uuid[], got_off uuid[], want uuid[], ordered boolean, sets int, classes int,
                        classes_fetched int, entries bigint, rows_read bigint, matches bigint, scored_all boolean);
CREATE FUNCTION pg_temp.run(p_q text, p_category text, p_relays text[], p_models text[], p_pricing text,
                            p_k int, p_after text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    got uuid[];
    got_off uuid[];
    o record;
BEGIN
    got := (SELECT COALESCE(array_agg(s.id), '{}')
              FROM agentmarket.search_agents(p_q, p_category, NULL, p_relays, p_models, p_pricing, 'relevance',
                                             p_k, p_after) s);
    SELECT * INTO o FROM agentmarket_private.search_order_last();
    PERFORM set_config('agentmarket.search_order', 'off', true);
    got_off := (SELECT COALESCE(array_agg(s.id), '{}')
                  FROM agentmarket.search_agents(p_q, p_category, NULL, p_relays, p_models, p_pricing, 'relevance',
                                                 p_k, p_after) s);
    PERFORM set_config('agentmarket.search_order', 'on', true);
    INSERT INTO runs VALUES (p_q, p_category, p_relays, p_models, p_pricing, p_k, p_after, got, got_off,
                             pg_temp.exhaustive(p_q, p_category, p_relays, p_models, p_pricing, p_k, p_after),
                             o.members IS NOT NULL, o.sets, o.classes, o.classes_fetched, o.entries, o.rows_read,
                             o.matches, o.scored_all);
END $$;
SELECT pg_temp.run(q.q, v.category, v.relays, v.models, v.pricing, k.k, NULL)
  FROM (VALUES ('invoice budget'), ('github deploy server'), ('recipe fitness travel garden'), ('email inbox'),
               ('podcast music'), ('agent github'), ('handles email'), ('recipy fitness'), ('github depl'),
               ('"deploy server"'), ('github -deploy'), ('github or podcast')) q(q),
       (VALUES (NULL, NULL::text[], NULL::text[], NULL), ('coding', NULL, NULL, NULL), (NULL, '{slack}', NULL, NULL),
               (NULL, NULL, '{gemini}', NULL),
               ('research', '{telegram,discord}', '{gemini}', 'per_task')) v(category, relays, models, pricing),
       (VALUES (5), (20)) k(k) \g /dev/null
SELECT pg_temp.run(r.q, r.category, r.relays, r.models, r.pricing, r.k,
                   (SELECT s.cursor FROM agentmarket.search_agents(r.q, r.category, NULL, r.relays, r.models, r.pricing,
                                                                   'relevance', r.k) s
                     ORDER BY s.score, s.id LIMIT 1))
  FROM runs r \g /dev/null

SELECT is((SELECT count(*)::int FROM runs), 240, 'every query, filter, page size and page ran');
SELECT is((SELECT array_agg(DISTINCT r.q || ' ' || concat_ws(',', r.category, r.relays::text, r.models::text, r.pricing)
                            || ' k=' || r.k || CASE WHEN r.after IS NULL THEN '' ELSE ' page 2' END)
             FROM runs r WHERE r.got IS DISTINCT FROM r.want),
          NULL, 'every page equals exhaustive scoring (filters, page sizes, second pages, typos, prefixes, phrases)');
SELECT is((SELECT count(*)::int FROM runs r WHERE r.got IS DISTINCT FROM r.got_off), 0,
          'and the tiers'' walk (agentmarket.search_order = off)');
SELECT ok((SELECT count(*) FROM runs r WHERE cardinality(r.got) = r.k) >= 170, 'most pages are full');
SELECT ok((SELECT count(*) FROM runs r WHERE r.ordered) >= 90, 'the ordered walk answers many of them');
SELECT ok((SELECT bool_and(NOT r.ordered) FROM runs r WHERE r.q = 'github or podcast'),
          'not a query under OR (a match need not have every word)');
SELECT ok((SELECT count(*) FROM runs r WHERE r.ordered AND r.classes_fetched > 0) >= 30
          AND (SELECT count(*) FROM runs r WHERE r.ordered AND r.entries > 0 AND r.rows_read < r.entries) >= 20,
          'it fetches classes by their listings, and walks the btree reading fewer rows than entries');
-- Words of two domains that never meet: the first listings in static order
-- hold no match, which cannot tell them from an unlucky draw, so the walk
-- reads the listings that can match first (the words' posting lists: none
-- published; other suites' rolled-back rows may leave dead entries), and
-- reads no visible row.
SELECT count(*) FROM agentmarket.search_agents('invoice podcast');
SELECT ok((SELECT o.candidates IS NOT NULL AND o.rows_read = 0 AND o.matches = 0
             FROM agentmarket_private.search_order_last() o),
          'words that never meet: the listings that can match are read first (none), no row is');
SELECT ok((SELECT count(*) FILTER (WHERE r.rows_read < 500) >= 0.75 * count(*) FROM runs r WHERE r.ordered),
          'most read fewer rows than a tenth of the listings');
SELECT ok((SELECT bool_and(r.sets >= 1 AND r.classes >= 1) FROM runs r
            WHERE r.ordered AND r.category IS NULL AND r.relays IS NULL AND r.models IS NULL AND r.pricing IS NULL
              AND r.q IN ('invoice budget', 'recipe fitness travel garden', 'email inbox')),
          'from the words'' name sets');

-- The listing with every word in its name and the worst static score leads.
SELECT is((SELECT s.id FROM agentmarket.search_agents('recipe fitness travel garden') s LIMIT 1),
          '66666666-3000-4000-8000-0000000000d1'::uuid, 'every word in the name leads, at the worst static score');
SELECT ok((SELECT o.members > 0 FROM agentmarket_private.search_order_last() o), 'found by the ordered walk');
-- Renamed listings are found by their new name, archived ones never.
SELECT ok((SELECT array_agg(a.slug) @> '{so-5,so-6,so-7}' FROM agentmarket.search_agents('github deploy server') s
             JOIN agentmarket.agents a ON a.id = s.id),
          'listings renamed to the words are found (their old row versions are dead in the indexes)');
SELECT is((SELECT count(*)::int FROM runs r, unnest(r.got) g(id) JOIN agentmarket.agents a ON a.id = g.id
            WHERE a.status <> 'published'), 0, 'archived listings are never shown');

SELECT count(*) FROM agentmarket.search_agents('zzzzunknown');
SELECT ok(agentmarket_private.search_order_last() IS NULL, 'a search that does not walk leaves nothing behind');

SELECT * FROM finish();
ROLLBACK;
