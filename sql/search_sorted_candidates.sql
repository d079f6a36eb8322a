-- search_sorted_candidates: a page sorted by a column whose matches are few
-- among the listings ('kazu' by rating in the bench: 270 of 100,000) walks
-- the sort's index over the listings that can match, read from the posting
-- lists, and reads only their rows (search_direct_walk.c).  Checked here:
-- every page of every sort, first to last by cursor, with filters, for a
-- word, a prefix, a typo, several words, a phrase and a negated word,
-- equals sorting every match in SQL; which searches take this path (and
-- that a word in most listings does not); an edited listing shows once,
-- where its new keys put it (its old entries in the sort's index lead to a
-- row the snapshot does not see); listings still in GIN's pending list are
-- found; a walk that meets far fewer matches than expected gives up at its
-- budget and GIN answers the same page; search_walk_last counts the index
-- entries stepped over.
\ir test/fixture.sql
-- The sort indexes without the dead entries earlier suites' rolled-back
-- listings left (a walk steps over dead entries too: at the top of the
-- order they would make its length, and so the path, depend on the suites
-- run before this one).
VACUUM agentmarket.agents;
BEGIN;
SELECT plan(14);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-5000-4000-8000-000000000001', 'maker@ssc.test', 'creator');
-- 3,000 listings: 'quelvar' in 150 (with 'inbox', but for the last ten),
-- 'quelmora' in 50, 'inbox' in half.  Ratings fall as i grows (ties of
-- about 60 listings each, one in nine unrated), hires and publication dates
-- repeat (ties: the id decides).
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, tags,
                                total_hires, avg_rating, total_reviews, published_at)
SELECT 'ssc-' || i, '66666666-5000-4000-8000-000000000001',
       'Helper ' || CASE WHEN i % 60 = 7 THEN 'Quelmora ' ELSE '' END || (ARRAY['mail','notes','video'])[1 + i % 3],
       'Automate your work' || CASE WHEN i % 40 = 0 THEN ' with quelvar' ELSE '' END,
       'This agent helps with tasks'
         || CASE WHEN i % 40 = 20 THEN ' and quelvar' ELSE '' END
         || CASE WHEN i % 2 = 0 AND NOT (i % 20 = 0 AND i > 2800) THEN ' inbox triage' ELSE '' END,
       (ARRAY['finance','writing','coding'])[1 + i % 3], 'published', (ARRAY['per_session','per_task','free'])[1 + (i / 3) % 3],
       'https://g/ssc' || i, (ARRAY['{slack}','{telegram,discord}','{}'])[1 + (i / 2) % 3]::text[], '{claude}', '{}',
       (i * 7) % 13, CASE WHEN i % 9 = 0 THEN NULL ELSE round((3000 - i) / 600.0, 1) END, i % 4,
       '2026-01-01'::timestamptz + (i % 11) * interval '1 day'
  FROM generate_series(1, 3000) i;
-- Drafts and an archived listing with the words: never shown.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url,
                                avg_rating, total_hires, published_at)
SELECT 'ssc-draft-' || i, '66666666-5000-4000-8000-000000000001', 'Quelvar Quelmora ' || i, 'quelvar inbox',
       'quelvar', 'coding', CASE WHEN i = 1 THEN 'archived' ELSE 'draft' END, 'https://g/sscd' || i, 5, 99, now()
  FROM generate_series(1, 5) i;
SELECT pg_catalog.gin_clean_pending_list('agentmarket.agents_search_document_idx') IS NOT NULL;
-- Two words common apart that rarely meet: 'vormak' in 300 descriptions,
-- 'dellix' in 300 others, both in three (independence projects 30).
UPDATE agentmarket.agents SET description = description || ' vormak'
 WHERE slug LIKE 'ssc-%' AND substring(slug FROM 5) ~ '^[0-9]+$' AND substring(slug FROM 5)::int % 10 = 3;
UPDATE agentmarket.agents SET description = description || ' dellix'
 WHERE slug LIKE 'ssc-%' AND substring(slug FROM 5) ~ '^[0-9]+$'
   AND (substring(slug FROM 5)::int % 10 = 4 OR slug IN ('ssc-1003', 'ssc-2003', 'ssc-2503'));
-- An edited listing: a low-rated 'quelvar' listing rated 5 (its row moves in
-- the rating index; the old entry stays behind).
UPDATE agentmarket.agents SET avg_rating = 5.0, total_reviews = 9, total_hires = 12 WHERE slug = 'ssc-2720';
-- New listings, left in GIN's pending list.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, avg_rating, total_reviews,
                                total_hires, published_at)
SELECT 'ssc-new-' || i, '66666666-5000-4000-8000-000000000001', 'Quelvar Fresh ' || i, 'new', 'inbox quelvar',
       'coding', 'published', 'per_task', 'https://g/sscn' || i, '{slack}', '{claude}', 4.5 - i / 10.0, 3, 12 - i,
       '2026-01-06'::timestamptz
  FROM generate_series(1, 4) i;
ANALYZE agentmarket.agents;

\ir test/search_exhaustive.sql

-- Every search read page by page to its end: the ids, the pages' sizes, the paths taken.
CREATE TEMP TABLE runs (q text, sort text, category text, relays text[], pricing text, k int,
                        got uuid[], sizes int[], paths text[], want uuid[]);
DO $$
DECLARE
    r record;
    got uuid[];
    sizes int[];
    paths text[];
    page uuid[];
    cur text;
BEGIN
    FOR r IN SELECT q, sort, f.category, f.relays, f.pricing, k
               FROM unnest(ARRAY['quelvar', 'quel', 'quelvra', 'quelmora', 'quelvar inbox', '"quelvar inbox"',
                                 'quelvar -inbox', 'inbox', 'agent', 'vormak dellix']) q,
                    unnest(ARRAY['rating', 'popular', 'newest']) sort,
                    (VALUES (NULL::text, NULL::text[], NULL::text), ('coding', NULL, NULL), (NULL, '{slack}', NULL),
                            ('finance', NULL, 'per_task')) f(category, relays, pricing),
                    unnest(ARRAY[5, 20]) k
    LOOP
        got := '{}';
        sizes := '{}';
        paths := '{}';
        cur := NULL;
        LOOP
            SELECT COALESCE(array_agg(s.id ORDER BY o), '{}'), (array_agg(s.cursor ORDER BY o DESC))[1]
              INTO page, cur
              FROM agentmarket.search_agents(r.q, r.category, NULL, r.relays, NULL, r.pricing, r.sort, r.k, cur)
                   WITH ORDINALITY s(id, slug, name, tagline, icon_url, category, pricing_model, credits_per_session,
                                     avg_rating, total_reviews, total_hires, supported_relays, supported_models, tags,
                                     published_at, score, cursor, o);
            got := got || page;
            sizes := sizes || cardinality(page);
            paths := paths || COALESCE((SELECT d.path FROM agentmarket_private.search_direct_last() d), 'statement');
            EXIT WHEN cardinality(page) < r.k OR cardinality(sizes) > 700;
        END LOOP;
        INSERT INTO runs VALUES (r.q, r.sort, r.category, r.relays, r.pricing, r.k, got, sizes, paths,
                                 pg_temp.sorted(r.q, r.sort, r.category, r.relays, r.pricing));
    END LOOP;
END $$;

SELECT is((SELECT count(*) FROM runs WHERE got IS DISTINCT FROM want), 0::bigint,
          'every search, read page by page to its end, equals every match sorted in SQL');
SELECT is((SELECT count(*) FROM runs WHERE EXISTS (SELECT FROM unnest(sizes[1:cardinality(sizes) - 1]) n WHERE n <> k)),
          0::bigint, 'every page but the last is full');
SELECT is((SELECT count(*) FROM runs WHERE q NOT IN ('inbox', 'agent') AND category IS NULL AND relays IS NULL
             AND paths[1] = 'walk the sort''s index over the candidates'), 42::bigint,
          'a first page of few matches walks the sort''s index over their candidates, every sort and page size');
SELECT ok((SELECT bool_and(paths[1] IN ('sort the candidates', 'sort every match, posting lists'))
                  AND bool_or(paths[1] = 'sort the candidates')
             FROM runs WHERE q = 'vormak dellix' AND category IS NULL AND relays IS NULL),
          'three candidates where thirty were projected: sorted (their rows read), never walked for, every sort and page size');
SELECT is((SELECT count(*) FROM runs WHERE category IS NOT NULL AND q NOT IN ('inbox', 'agent')
             AND 'walk the sort''s index over the candidates' = ANY (paths)), 0::bigint,
          'not within filters that were not counted (the words alone are few: the walk''s length is unknown)');
SELECT is((SELECT count(*) FROM runs WHERE q = 'agent' AND category IS NULL AND relays IS NULL
             AND NOT 'walk the sort''s index' = ALL (paths)), 0::bigint,
          'a word in every listing walks the sort''s index reading its rows');
SELECT is((SELECT cardinality(want) FROM runs WHERE q = 'quelvar' AND sort = 'rating' AND category IS NULL AND relays IS NULL
             AND pricing IS NULL AND k = 5), 154, 'quelvar: its 150 listings and the 4 new ones');
SELECT is((SELECT count(*) FROM runs r, unnest(r.got) g(id) JOIN agentmarket.agents a ON a.id = g.id
            WHERE a.slug LIKE 'ssc-draft-%'), 0::bigint, 'drafts and archived listings never show');

-- The edited listing: once, first by rating (5.0, nine reviews) where it was near the end.
SELECT is((SELECT (SELECT array_agg(a.slug ORDER BY o) FROM unnest(got) WITH ORDINALITY g(id, o)
                     JOIN agentmarket.agents a ON a.id = g.id WHERE a.slug = 'ssc-2720')
             FROM runs WHERE q = 'quelvar' AND sort = 'rating' AND category IS NULL AND relays IS NULL AND pricing IS NULL AND k = 5),
          '{ssc-2720}', 'an edited listing shows once');
SELECT is((SELECT a.slug FROM runs r JOIN agentmarket.agents a ON a.id = r.got[1]
            WHERE r.q = 'quelvar' AND r.sort = 'rating' AND r.category IS NULL AND r.relays IS NULL AND r.pricing IS NULL
              AND r.k = 5),
          'ssc-2720', 'where its new rating puts it');
-- The listings in the pending list: found, and they were still there.
SELECT is((SELECT count(*) FROM runs r, unnest(r.got) g(id) JOIN agentmarket.agents a ON a.id = g.id
            WHERE r.q = 'quelvar' AND r.sort = 'popular' AND r.category IS NULL AND r.relays IS NULL AND r.pricing IS NULL
              AND r.k = 5 AND a.slug LIKE 'ssc-new-%'), 4::bigint, 'listings in GIN''s pending list are found');

-- 'quelvar -inbox' holds only the ten lowest rated of its 150 candidates:
-- a page of one, expected within 20 listings of the rating order, is not
-- met within the walk's budget (the entries GIN and sort or the plain walk
-- would cost), so GIN and sort answer it, the same page.
SET LOCAL agentmarket.search_exhaustive_limit = 30;
CREATE TEMP TABLE gave_up AS
SELECT (SELECT array_agg(s.id) FROM agentmarket.search_agents('quelvar -inbox', sort => 'rating', page_size => 1) s) AS got;
SELECT ok(w.scored_all AND w.walked BETWEEN 100 AND 2999 AND d.path LIKE 'sort every match%'
          AND g.got = (pg_temp.sorted('quelvar -inbox', 'rating', NULL, NULL, NULL))[1:1],
          'a walk that meets too few matches gives up at its budget: GIN and sort answer, the same page')
  FROM gave_up g, agentmarket_private.search_walk_last() w, agentmarket_private.search_direct_last() d;
SELECT is((SELECT checked FROM agentmarket_private.search_direct_last()),
          (SELECT count(*) FROM agentmarket.agents WHERE status = 'published' AND search_document @@ 'quelvar'::tsquery),
          'and reports its own rows read (its candidates), not the walk''s entries besides');
SELECT ok(pg_catalog.gin_clean_pending_list('agentmarket.agents_search_document_idx') > 0,
          '(the new listings were in the pending list)');
SELECT * FROM finish();
ROLLBACK;
