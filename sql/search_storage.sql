-- search_storage: the search documents stay in the listing's row.  Every
-- match search scores or checks reads its document (and the walk's tiers
-- read search_fields): out of line, each read is a TOAST index probe and a
-- heap read more, which more than doubled the cost of a rare word's search
-- in bench/search.  So both columns are STORAGE MAIN (compressed in the row,
-- moved out only when nothing else can be), and a long listing's other
-- columns go to TOAST first.  Of those, the ones a search checks on every
-- match (status, the filters) or returns (the card) are MAIN too: they are
-- short, and were the next to go out once the description was (a TOAST
-- fetch per filtered match); the page itself shows where each column is.
\ir test/fixture.sql
BEGIN;
SELECT plan(6);

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
UPDATE agentmarket.agents SET supported_relays = '{slack,telegram,discord,whatsapp}',
                              supported_models = '{claude,gpt,gemini,llama,mistral}',
                              icon_url = 'https://icons.test/' || repeat('z', 200)
 WHERE slug = 'ss-long';
SELECT cmp_ok((SELECT pg_column_size(a.*) FROM agentmarket.agents a WHERE a.slug = 'ss-long'), '>', 8000,
              'the listing is longer than a row holds');
SELECT is((SELECT array_agg(s.slug) FROM agentmarket.search_agents('quibblefrond') s), ARRAY['ss-long'],
          'a word at the end of its description finds it');
SELECT is((SELECT array_agg(s.slug || ' ' || round(s.score::numeric, 3)) FROM agentmarket.search_agents('zorvexa') s),
          (SELECT array_agg(a.slug || ' ' || round(agentmarket_private.search_blend(1, a.search_static)::numeric, 3))
             FROM agentmarket.agents a WHERE a.slug = 'ss-long'),
          'a word of its name scores as a name word (weight 1)');

SELECT is((SELECT array_agg(a.attname::text ORDER BY a.attname)
             FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = 'agentmarket.agents'::regclass AND a.attstorage = 'm'
              AND a.attname NOT IN ('search_document', 'search_fields', 'avg_rating')),
          ARRAY['category', 'icon_url', 'name', 'pricing_model', 'slug', 'status', 'supported_models',
                'supported_relays', 'tagline', 'tags'],
          'the columns every match is checked on or shown with are kept in the row too');

-- Where the long listing's columns are: on its heap page (pageinspect), a
-- value moved to TOAST is an external pointer (first byte 0x01).
CREATE EXTENSION pageinspect;
SELECT is((SELECT array_agg(a.attname::text ORDER BY a.attnum)
             FROM agentmarket.agents g,
                  LATERAL public.heap_page_item_attrs(public.get_raw_page('agentmarket.agents',
                                                                          (g.ctid::text::point)[0]::int),
                                                      'agentmarket.agents'::regclass) i,
                  pg_catalog.pg_attribute a
            WHERE g.slug = 'ss-long' AND i.lp = (g.ctid::text::point)[1]::int
              AND a.attrelid = 'agentmarket.agents'::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND i.t_attrs[a.attnum] IS NOT NULL AND substr(i.t_attrs[a.attnum], 1, 1) = '\x01'::bytea
              AND a.attlen = -1),
          ARRAY['description', 'search_document'],
          'in the long listing only the description and, last, its 10 kB document went out to TOAST: its tags, relays, models and card stay in the row');

SELECT * FROM finish();
ROLLBACK;
