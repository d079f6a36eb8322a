-- search_storage: the search documents stay in the listing's row.  Every
-- match search scores or checks reads its document (and the walk's tiers
-- read search_fields): out of line, each read is a TOAST index probe and a
-- heap read more, which more than doubled the cost of a rare word's search
-- in bench/search.  So both columns are STORAGE MAIN (compressed in the row,
-- moved out only when nothing else can be), and a long listing's other
-- columns go to TOAST first.
\ir test/fixture.sql
BEGIN;
SELECT plan(4);

SELECT is((SELECT array_agg(a.attname::text || '=' || a.attstorage::text ORDER BY a.attname)
             FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = 'agentmarket.agents'::regclass AND a.attname IN ('search_document', 'search_fields')),
          ARRAY['search_document=m', 'search_fields=m'],
          'search_document and search_fields are kept in the row (STORAGE MAIN)');

-- A listing too long for one row (8 kB of incompressible description, 30
-- tags) still stores, is found and scored.
INSERT INTO agentmarket.users (id, email, role) VALUES
  ('99999999-5000-4000-8000-000000000001', 'maker@ss.test', 'creator');
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url, tags)
SELECT 'ss-long', '99999999-5000-4000-8000-000000000001', 'Zorvexa Planner', 'Plans zorvexa trips',
       (SELECT string_agg(md5(i::text), ' ') FROM generate_series(1, 240) i) || ' quibblefrond',
       'travel', 'published', 'https://g/ss1',
       (SELECT array_agg('tag' || md5(i::text || 'x')) FROM generate_series(1, 30) i);
SELECT cmp_ok((SELECT pg_column_size(a.*) FROM agentmarket.agents a WHERE a.slug = 'ss-long'), '>', 8000,
              'the listing is longer than a row holds');
SELECT is((SELECT array_agg(s.slug) FROM agentmarket.search_agents('quibblefrond') s), ARRAY['ss-long'],
          'a word at the end of its description finds it');
SELECT is((SELECT array_agg(s.slug || ' ' || round(s.score::numeric, 3)) FROM agentmarket.search_agents('zorvexa') s),
          (SELECT array_agg(a.slug || ' ' || round(agentmarket_private.search_blend(1, a.search_static)::numeric, 3))
             FROM agentmarket.agents a WHERE a.slug = 'ss-long'),
          'a word of its name scores as a name word (weight 1)');

SELECT * FROM finish();
ROLLBACK;
