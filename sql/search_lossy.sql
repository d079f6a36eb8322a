-- search_lossy: a search answered in C reads the listings its GIN bitmap
-- names one by one (search_direct.c: as an index scan fetches them) and
-- the pages the bitmap holds whole, lossy when work_mem cannot hold a bit
-- per listing, by a bitmap heap scan that checks each row.  Here the
-- matches of one word spread over more heap pages than a 64 kB bitmap
-- holds exactly (fillfactor 10: a listing or two a page), so its bitmap is
-- part exact, part lossy (EXPLAIN says so of the same bitmap); the pages,
-- cursors and scores read so equal the statements' (agentmarket.search_direct
-- = off) for each sort, with a filter and on a second page, and no draft,
-- archived listing or listing without the word shows from a lossy page.
-- The bitmap is GIN's own scan's (agentmarket.search_gin_merge = off): the
-- posting lists read in C name the listings in TID order, without a bitmap;
-- those pages equal the statements' too.
\ir test/fixture.sql
BEGIN;
SELECT plan(8);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-2000-4000-8000-000000000002', 'maker@sl.test', 'creator');
ALTER TABLE agentmarket.agents SET (fillfactor = 20);
-- 'quillomat' in two listings of three; the third has none; drafts and an
-- archived listing with it on the same pages.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, total_hires, avg_rating, total_reviews, published_at)
SELECT 'sl-' || i, '66666666-2000-4000-8000-000000000002',
       'Helper ' || i, CASE WHEN i % 3 = 0 THEN 'Plain tagline' ELSE 'Quillomat tagline' END,
       'A listing of the lossy test.',
       (ARRAY['finance','writing','coding'])[1 + i % 3],
       CASE WHEN i % 50 = 1 THEN 'draft' WHEN i = 2 THEN 'archived' ELSE 'published' END,
       (ARRAY['per_session','per_task','free'])[1 + i % 3], 'https://g/sl' || i,
       (ARRAY['{slack}','{telegram}','{}'])[1 + (i / 3) % 3]::text[],
       (i * 7919) % 11, CASE WHEN i % 4 = 0 THEN NULL ELSE ((i * 31) % 5) / 2.0 + 2 END, (i * 13) % 3,
       '2026-02-01'::timestamptz + (i % 9) * interval '1 hour'
  FROM generate_series(1, 3000) i;
ANALYZE agentmarket.agents;
SET LOCAL work_mem = '64kB';
SET LOCAL agentmarket.search_exhaustive_limit = 100000;
SET LOCAL agentmarket.search_gin_merge = off;

CREATE FUNCTION pg_temp.page(p_sort text, p_category text, p_k int, p_after text, p_direct text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    out text;
BEGIN
    PERFORM set_config('agentmarket.search_direct', p_direct, true);
    SELECT COALESCE(json_agg(s)::text, '[]') INTO out
      FROM agentmarket.search_agents('quillomat', p_category, NULL, NULL, NULL, NULL, p_sort, p_k, p_after) s;
    PERFORM set_config('agentmarket.search_direct', 'on', true);
    RETURN out;
END $$;
CREATE TEMP TABLE runs AS
SELECT sort, category, k, NULL::text AS after
  FROM unnest(ARRAY['relevance', 'rating', 'newest']) sort, unnest(ARRAY[NULL, 'coding']) category, unnest(ARRAY[7, 100]) k;
INSERT INTO runs
SELECT r.sort, r.category, r.k, (SELECT s.cursor FROM agentmarket.search_agents('quillomat', r.category, NULL, NULL, NULL, NULL,
                                                                                r.sort, r.k) s OFFSET r.k - 1 LIMIT 1)
  FROM runs r;

SELECT is((SELECT count(*) FROM runs
            WHERE pg_temp.page(sort, category, k, after, 'on') IS DISTINCT FROM pg_temp.page(sort, category, k, after, 'off')),
          0::bigint, 'every page, cursor and score read through the lossy bitmap equals the statements''');
SET LOCAL agentmarket.search_gin_merge = on;
SELECT is((SELECT count(*) FROM runs
            WHERE pg_temp.page(sort, category, k, after, 'on') IS DISTINCT FROM pg_temp.page(sort, category, k, after, 'off')),
          0::bigint, 'and every one read from the posting lists in C, without a bitmap');
SELECT is((SELECT count(*) FROM agentmarket.search_agents('quillomat', page_size => 100)), 100::bigint,
          'a page of them from the posting lists');
SELECT is((SELECT path FROM agentmarket_private.search_direct_last()), 'score every match, posting lists',
          'read from the posting lists, every match scored');
SET LOCAL agentmarket.search_gin_merge = off;
SELECT is((SELECT count(*) FROM agentmarket.search_agents('quillomat', page_size => 100)), 100::bigint,
          'a page of them');
SELECT ok((SELECT path LIKE 'score every match%' FROM agentmarket_private.search_direct_last()),
          'read in C, every match scored');
SELECT ok((SELECT checked > matches FROM agentmarket_private.search_direct_last()),
          'the lossy pages'' other listings were read and checked, not counted as matches');
SELECT is((SELECT count(*) FROM agentmarket.search_agents('quillomat', sort => 'newest', page_size => 100) s
            WHERE s.slug IN (SELECT a.slug FROM agentmarket.agents a
                              WHERE a.slug LIKE 'sl-%' AND (a.status <> 'published' OR a.tagline = 'Plain tagline'))),
          0::bigint, 'no draft, archived listing or listing without the word shows');
SELECT * FROM finish();
ROLLBACK;
