-- search_direct: searches that read every match through GIN (a rare word,
-- typos of it, prefixes, phrases, few matches sorted by a column, selective
-- filters) are answered in C (search_direct.c) instead of by a statement.
-- Its pages (cards, scores, cursors: every byte) equal the statements'
-- (agentmarket.search_direct = off) for every sort, filter, page size and
-- second page; search_direct_last() shows the C path answered, read every
-- match and nothing more (or walked the sort's index: a common word, or
-- none, sorted by a column); drafts, archived listings and old versions of an
-- edited listing never show; a phrase the bitmap cannot decide is checked
-- on the row; forged cursors (NaN, extreme keys and ids) start both paths at
-- the same place.
\ir test/fixture.sql
BEGIN;
SELECT plan(15);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-2000-4000-8000-000000000001', 'maker@sd.test', 'creator');
SELECT setseed(0.37);
-- Rare invented words (and words one typo from them) in names, taglines,
-- tags and descriptions; common words nearly everywhere; ratings, hires and
-- publication times with many ties (the id decides); some listings without
-- a rating.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, tags,
                                total_hires, avg_rating, total_reviews, published_at)
SELECT 'sd-' || i, '66666666-2000-4000-8000-000000000001',
       initcap(CASE WHEN i % 37 = 0 THEN r.w || ' ' ELSE '' END || 'helper ' || (ARRAY['mail','notes','video','code'])[1 + i % 4]),
       initcap(CASE WHEN i % 41 = 1 THEN r.w || ' ' ELSE '' END || 'automate your agent work'),
       'This agent helps with ' || CASE WHEN i % 29 = 2 THEN r.w || ' inbox ' ELSE '' END ||
       CASE WHEN i % 31 = 3 THEN 'inbox and ' || r.w ELSE 'tasks' END || ' every day',
       (ARRAY['finance','writing','coding','research'])[1 + (i * 7 + i / 5) % 4],
       'published', (ARRAY['per_session','per_task','free'])[1 + i % 3], 'https://g/sd' || i,
       (ARRAY['{slack}','{telegram,discord}','{whatsapp}','{}'])[1 + (i / 3) % 4]::text[],
       (ARRAY['{claude}','{gpt,gemini}','{gemini}'])[1 + (i / 2) % 3]::text[],
       CASE WHEN i % 43 = 4 THEN ARRAY[r.w, 'mail'] ELSE ARRAY['mail'] END,
       (i * 7919) % 9, CASE WHEN i % 5 = 0 THEN NULL ELSE ((i * 31) % 5) / 2.0 + 2 END, (i * 13) % 3,
       '2026-01-01'::timestamptz + (i % 7) * interval '1 day'
  FROM generate_series(1, 1500) i,
       LATERAL (SELECT (ARRAY['kazumor','kazutor','vazumor','pixquoren','pixquowen','solbrinex'])[1 + (i / 7) % 6] AS w) r;
-- Drafts and an archived listing with the rare words: never shown.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url)
SELECT 'sd-draft-' || i, '66666666-2000-4000-8000-000000000001', 'Kazumor Pixquoren ' || i, 'Solbrinex',
       'kazumor pixquoren solbrinex', 'coding', CASE WHEN i = 1 THEN 'archived' ELSE 'draft' END, 'https://g/sdd' || i
  FROM generate_series(1, 30) i;
-- An edited listing (its old version with the rare word stays in the index).
UPDATE agentmarket.agents SET name = 'Plain Helper', tagline = 'Nothing rare'
 WHERE slug = (SELECT min(slug) FROM agentmarket.agents WHERE name ILIKE 'kazumor%' AND status = 'published');
ANALYZE agentmarket.agents;

-- Every query x sort x filter x page size, first and second page, by both paths.
CREATE TEMP TABLE runs (n serial, lim int, q text, sort text, category text, relays text[], models text[], pricing text, tags text[],
                        k int, page int, after text,
                        direct text, direct_path text, direct_checked bigint, direct_matches bigint, statement text);
-- (Common words and none also with the exhaustive limit lowered, so that
-- more of them walk.)
INSERT INTO runs (lim, q, sort, category, relays, models, pricing, tags, k, page)
SELECT lim, q, sort, f.category, f.relays, f.models, f.pricing, f.tags, k, page
  FROM unnest(ARRAY['kazumor', 'pixquoren', 'solbrinex', 'kazumro', 'kazu', 'pixq', 'kazumor inbox',
                    '"kazumor inbox"', 'kazumor -inbox', 'kazumor or solbrinex', '-helper', 'agent', 'inbox', NULL]) q,
       unnest(ARRAY['relevance', 'rating', 'popular', 'newest']) sort,
       (VALUES (NULL::text, NULL::text[], NULL::text[], NULL::text, NULL::text[]), ('coding', NULL, NULL, NULL, NULL),
               (NULL, '{slack}', '{gemini}', NULL, NULL), (NULL, NULL, NULL, 'free', '{mail}'),
               ('finance', '{telegram,discord}', '{claude}', 'per_task', '{mail}'))
         AS f(category, relays, models, pricing, tags),
       unnest(ARRAY[5, 20]) k, unnest(ARRAY[1, 2]) page,
       unnest(ARRAY[2000, 30]) lim
 WHERE lim = 2000 OR q IS NULL OR q IN ('agent', 'inbox');
CREATE FUNCTION pg_temp.page(r runs) RETURNS text LANGUAGE sql AS $$
    SELECT COALESCE(json_agg(s)::text, '[]')
      FROM agentmarket.search_agents(r.q, r.category, r.tags, r.relays, r.models, r.pricing, r.sort, r.k, r.after) s
$$;
DO $$
DECLARE
    r runs;
    d_path text;
    d_checked bigint;
    d_matches bigint;
BEGIN
    -- second pages: after the last row of the first (statements' cursor)
    PERFORM set_config('agentmarket.search_direct', 'off', true);
    PERFORM set_config('agentmarket.search_exhaustive_limit', '2000', true);
    UPDATE runs u SET after = (SELECT s.cursor FROM agentmarket.search_agents(u.q, u.category, u.tags, u.relays, u.models,
                                       u.pricing, u.sort, u.k) s OFFSET u.k - 1 LIMIT 1)
     WHERE u.page = 2;
    DELETE FROM runs u WHERE u.page = 2 AND u.after IS NULL;
    FOR r IN SELECT * FROM runs LOOP
        PERFORM set_config('agentmarket.search_exhaustive_limit', r.lim::text, true);
        PERFORM set_config('agentmarket.search_direct', 'off', true);
        r.statement := pg_temp.page(r);
        PERFORM set_config('agentmarket.search_direct', 'on', true);
        r.direct := pg_temp.page(r);
        SELECT x.path, x.checked, x.matches INTO d_path, d_checked, d_matches
          FROM agentmarket_private.search_direct_last() x;
        UPDATE runs u SET statement = r.statement, direct = r.direct,
                          direct_path = d_path, direct_checked = d_checked, direct_matches = d_matches
         WHERE u.n = r.n;
    END LOOP;
    PERFORM set_config('agentmarket.search_exhaustive_limit', '2000', true);
END $$;

SELECT is((SELECT count(*) FROM runs WHERE direct IS DISTINCT FROM statement), 0::bigint,
          'every page, cursor and score read directly equals the statements''');
SELECT ok((SELECT count(*) FILTER (WHERE direct_path LIKE 'score every match%') >= 150
              AND count(*) FILTER (WHERE direct_path LIKE 'sort every match%') >= 300
              AND count(*) FILTER (WHERE direct_path = 'walk the sort''s index') >= 100 FROM runs),
          'the direct paths answer most of these searches: by relevance, sorted, walking a sort''s index');
SELECT is((SELECT count(DISTINCT (q, category, relays, tags)) FROM runs
            WHERE (q IS NULL OR q = 'agent') AND direct_path LIKE 'walk the sort''s index%'),
          8::bigint, 'a common word (or none) is walked in C, plain and with each filter (all four at once keep few: GIN; within one, over the candidates)');
SELECT is((SELECT count(*) FROM runs WHERE q IN ('kazumor', 'pixquoren', 'solbrinex', 'kazumro') AND direct_path IS NULL),
          0::bigint, 'every search of a rare word (or its typo) is answered directly');
SELECT ok((SELECT count(*) FROM runs WHERE page = 2 AND direct_path IS NOT NULL AND direct <> '[]') >= 100,
          'second pages by cursor are answered directly too');
SELECT ok((SELECT count(*) FROM runs WHERE direct <> '[]' AND direct_path IS NOT NULL) >= 300,
          'and they are not empty');

-- The matches it reads: every published match of the words, nothing more
-- (GIN and sort: a page of 'kazumor' by rating walks the sort's index over
-- its candidates otherwise, sql/search_sorted_candidates).
SET LOCAL agentmarket.search_sorted_candidates = off;
SELECT count(*) FROM agentmarket.search_agents('kazumor', sort => 'rating');
SELECT is((SELECT matches FROM agentmarket_private.search_direct_last()),
          (SELECT count(*) FROM agentmarket.agents a WHERE a.status = 'published'
              AND a.search_document @@ (agentmarket_private.search_prepare('kazumor')).query),
          'every published match (typos included) is read and counted once');
RESET agentmarket.search_sorted_candidates;
SELECT is((SELECT array_agg(s.id ORDER BY s.score DESC, s.id DESC) FROM agentmarket.search_agents('kazumro', page_size => 100) s),
          (SELECT array_agg(x.id ORDER BY x.score DESC, x.id DESC) FROM (
             SELECT a.id, agentmarket_private.search_blend(agentmarket_private.search_text_score(a.search_document,
                        (p.p).lexemes, (p.p).groups, (p.p).factors, (p.p).prefixes, (p.p).ngroups), a.search_static) AS score
               FROM agentmarket.agents a, (SELECT agentmarket_private.search_prepare('kazumro') AS p) p
              WHERE a.status = 'published' AND a.search_document @@ (p.p).query
              ORDER BY 2 DESC, 1 DESC LIMIT 100) x),
          'a typo''s page equals scoring every match in SQL');
SELECT is((SELECT count(*) FROM agentmarket.search_agents('kazumor pixquoren solbrinex', page_size => 100) s
            WHERE s.slug LIKE 'sd-draft-%'), 0::bigint, 'drafts and archived listings never show');
SELECT is((SELECT count(*) FROM agentmarket.search_agents('kazumor', page_size => 100) s WHERE s.name = 'Plain Helper'),
          (SELECT count(*) FROM agentmarket.agents a WHERE a.name = 'Plain Helper'
              AND a.search_document @@ (agentmarket_private.search_prepare('kazumor')).query),
          'an edited listing shows as it is now, not as the index first saw it');
-- A phrase: the bitmap holds listings with both words anywhere, the row decides.
SELECT ok((SELECT min(direct_checked) > max(direct_matches) FROM runs
            WHERE q = '"kazumor inbox"' AND direct_path IS NOT NULL AND page = 1 AND category IS NULL AND relays IS NULL
              AND models IS NULL AND pricing IS NULL AND tags IS NULL),
          'a phrase is checked on the rows the bitmap gives');
SELECT is((SELECT count(*) FROM runs WHERE q = '"kazumor inbox"' AND direct <> '[]' AND direct_path IS NOT NULL)
          > 0, true, 'and its matches are found');

-- Forged cursors (keys no row has: NaN, infinities, extreme numbers and
-- times, the smallest and largest ids) start both paths at the same place.
CREATE TEMP TABLE forged (q text, sort text, category text, cur text, direct text, statement text);
INSERT INTO forged (q, sort, category, cur)
SELECT q, v.sort, cat, translate(rtrim(replace(encode(convert_to(v.c, 'UTF8'), 'base64'), E'\n', ''), '='), '+/', '-_')
  FROM unnest(ARRAY['kazumor', 'agent', NULL, '-helper']) q, unnest(ARRAY[NULL, 'coding']) cat,
       (VALUES ('relevance', 'relevance|NaN||ffffffff-ffff-ffff-ffff-ffffffffffff'),
               ('relevance', 'relevance|0.5||80000000-0000-0000-0000-000000000000'),
               ('rating', 'rating|99999999999999999999.5|5|ffffffff-ffff-ffff-ffff-ffffffffffff'),
               ('rating', 'rating|3.5|-2147483648|80000000-0000-0000-0000-000000000000'),
               ('popular', 'popular|4||80000000-0000-0000-0000-000000000000'),
               ('popular', 'popular|-5||ffffffff-ffff-ffff-ffff-ffffffffffff'),
               ('newest', 'newest|-210866803200000000||ffffffff-ffff-ffff-ffff-ffffffffffff'),
               ('newest', 'newest|1767484800000000||80000000-0000-0000-0000-000000000000')) v(sort, c);
DO $$
DECLARE
    r forged;
BEGIN
    FOR r IN SELECT * FROM forged LOOP
        PERFORM set_config('agentmarket.search_direct', 'off', true);
        UPDATE forged f SET statement = (SELECT COALESCE(json_agg(s)::text, '[]') FROM agentmarket.search_agents(r.q,
                                             r.category, sort => r.sort, page_after => r.cur) s)
         WHERE f.cur = r.cur AND f.q IS NOT DISTINCT FROM r.q AND f.category IS NOT DISTINCT FROM r.category;
        PERFORM set_config('agentmarket.search_direct', 'on', true);
        UPDATE forged f SET direct = (SELECT COALESCE(json_agg(s)::text, '[]') FROM agentmarket.search_agents(r.q,
                                          r.category, sort => r.sort, page_after => r.cur) s)
         WHERE f.cur = r.cur AND f.q IS NOT DISTINCT FROM r.q AND f.category IS NOT DISTINCT FROM r.category;
    END LOOP;
END $$;
SELECT is((SELECT count(*) FILTER (WHERE direct IS NOT DISTINCT FROM statement) || ' of ' || count(*)
                  || ', ' || count(*) FILTER (WHERE direct <> '[]') || ' not empty' FROM forged),
          '64 of 64, 36 not empty', 'forged cursors: both paths give the same page');

-- Searches that walk, or have nothing to read, leave no direct read behind.
SET LOCAL agentmarket.search_exhaustive_limit = 100;
SELECT count(*) FROM agentmarket.search_agents('agent');
SELECT ok(agentmarket_private.search_direct_last() IS NULL, 'a common word is not read directly');
SET LOCAL agentmarket.search_direct = off;
SELECT count(*) FROM agentmarket.search_agents('kazumor', sort => 'newest');
SELECT ok(agentmarket_private.search_direct_last() IS NULL, 'with agentmarket.search_direct off, statements answer');

SELECT * FROM finish();
ROLLBACK;
