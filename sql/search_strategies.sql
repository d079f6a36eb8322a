-- search_strategies: every query class and strategy of search_agents
-- returns exactly what exhaustive scoring (or sorting) of all matches
-- returns: common, rare and mid-frequency words, words common apart but rare
-- together, common words together, typos, prefixes, OR and exclusions, each
-- plain, filtered (category, relay, model, pricing, all four), sorted, and
-- on a second page by cursor; random queries too.  The exhaustive limit is
-- lowered so a corpus of 3000 listings drives the walks, tiers, samples and
-- capped sort walks.  The vocabulary and typo index shrink when listings
-- leave, stay equal to a rebuild, follow a creator's own edit, and search
-- works in a read-only transaction (as on a hot standby).
\ir test/fixture.sql
BEGIN;
SELECT plan(26);
SET LOCAL agentmarket.search_exhaustive_limit = 300;

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-0000-4000-8000-000000000001', 'maker@st.test', 'creator'),
  ('66666666-0000-4000-8000-000000000002', 'other@st.test', 'creator');

-- Four domains; five hub words each (in most of the domain's listings),
-- ten domain words; "agent" nearly everywhere; brand names rare.  Hub words
-- of two domains meet only in every 300th listing.
SELECT setseed(0.17);
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                credits_per_session, github_repo_url, supported_relays, supported_models, tags,
                                total_hires, avg_rating, total_reviews, published_at)
SELECT 'st-' || i, '66666666-0000-4000-8000-000000000001',
       initcap(w.brand || ' ' || w.word1) || CASE WHEN i % 3 = 0 THEN ' Agent' ELSE '' END,
       initcap(w.word2 || ' ' || w.word3 || ' ' || w.word4),
       CASE WHEN i % 20 = 0 THEN 'It handles ' ELSE 'This agent handles ' END || w.body
         || CASE WHEN i % 300 = 7 THEN ' Also invoice podcast github recipe.' ELSE '' END,
       (ARRAY['finance','writing','coding','research','productivity','personal','support','marketing'])[1 + (i * 7 + i / 5) % 8],
       'published', (ARRAY['per_session','per_task','free'])[1 + i % 3], 10 + i % 50, 'https://g/st' || i,
       (ARRAY['{slack}','{telegram,discord}','{whatsapp}','{}'])[1 + (i / 3) % 4]::text[],
       (ARRAY['{claude}','{gpt,gemini}','{gemini}'])[1 + (i / 2) % 3]::text[],
       ARRAY[w.word5],
       (i * 7919) % 700, ((i * 31) % 41) / 10.0 + 1, (i * 13) % 60,
       '2026-01-01'::timestamptz + (i % 1000) * interval '1 hour'
  FROM generate_series(1, 3000) i,
       LATERAL (SELECT 1 + i % 4 AS d) d,
       LATERAL (
         SELECT max(x.s) FILTER (WHERE x.j = 1) AS word1, max(x.s) FILTER (WHERE x.j = 2) AS word2,
                max(x.s) FILTER (WHERE x.j = 3) AS word3, max(x.s) FILTER (WHERE x.j = 4) AS word4,
                max(x.s) FILTER (WHERE x.j = 5) AS word5,
                string_agg(x.s, ' ' ORDER BY x.j) FILTER (WHERE x.j > 5) AS body,
                max(x.b) AS brand
           FROM (SELECT j,
                        CASE WHEN r < 0.3 THEN (ARRAY[ARRAY['invoice','budget','expense','payroll','ledger'],
                                                       ARRAY['podcast','video','music','playlist','studio'],
                                                       ARRAY['github','deploy','server','database','debug'],
                                                       ARRAY['recipe','fitness','travel','garden','pet']])[d.d][1 + floor(r2 * 5)::int]
                             WHEN r < 0.7 THEN (ARRAY[ARRAY['tax','bank','loan','credit','mortgage','pension','refund','billing','stock','audit'],
                                                       ARRAY['voice','image','design','photo','camera','caption','stream','youtube','song','radio'],
                                                       ARRAY['code','review','monitor','alert','incident','pipeline','docker','cloud','backup','release'],
                                                       ARRAY['cooking','meal','diet','workout','health','hotel','flight','plant','weather','yoga']])[d.d][1 + floor(r2 * r2 * 10)::int]
                             ELSE (ARRAY['email','inbox','calendar','meeting','notes','summary','report','blog','translate','support'])[1 + floor(r2 * r2 * 10)::int] END AS s,
                        (ARRAY['ka','zu','mor','lin','tek','va','dro','pix'])[1 + floor(r * 8)::int]
                          || (ARRAY['quo','ren','sol','bri','nex','tor','vel','gam'])[1 + floor(r2 * 8)::int]
                          || (ARRAY['fyn','jor','lux','pem','rax','sib','tav','wen'])[1 + floor(r3 * 8)::int] AS b
                   FROM (SELECT j, random() AS r, random() AS r2, random() AS r3 FROM generate_series(1, 16 + 0 * i) j) z) x) w;
ANALYZE agentmarket.agents;

\ir test/search_exhaustive.sql
-- All matches sorted by a column.
CREATE FUNCTION pg_temp.exhaustive_sorted(p_query text, p_sort text, p_category text, p_relays text[],
                                          p_models text[], p_pricing text) RETURNS uuid[]
LANGUAGE sql AS $$
    WITH p AS MATERIALIZED (SELECT agentmarket_private.search_prepare(p_query) AS p)
    SELECT COALESCE(array_agg(a.id ORDER BY
               CASE p_sort WHEN 'rating' THEN COALESCE(a.avg_rating, 0) END DESC,
               CASE p_sort WHEN 'rating' THEN a.total_reviews END DESC,
               CASE p_sort WHEN 'popular' THEN a.total_hires END DESC,
               CASE p_sort WHEN 'newest' THEN a.published_at END DESC, a.id DESC), '{}')
      FROM agentmarket.agents a, p
     WHERE a.status = 'published' AND ((p.p).query IS NULL OR a.search_document @@ (p.p).query)
       AND (p_category IS NULL OR a.category = p_category)
       AND (p_relays IS NULL OR a.supported_relays && p_relays)
       AND (p_models IS NULL OR a.supported_models && p_models)
       AND (p_pricing IS NULL OR a.pricing_model = p_pricing)
$$;
CREATE FUNCTION pg_temp.ids(p_query text, p_category text, p_relays text[], p_models text[], p_pricing text,
                            p_sort text, p_k int, p_after text DEFAULT NULL) RETURNS uuid[]
LANGUAGE sql AS $$
    SELECT COALESCE(array_agg(s.id), '{}')
      FROM agentmarket.search_agents(p_query, p_category, NULL, p_relays, p_models, p_pricing, p_sort, p_k, p_after) s
$$;

CREATE TEMP TABLE classes (class text, q text);
INSERT INTO classes VALUES
  ('common', 'agent'), ('common', 'handles'),
  ('rare', (SELECT lower(split_part(name, ' ', 1)) FROM agentmarket.agents WHERE slug = 'st-11')),
  ('mid', 'mortgage'), ('mid', 'docker'), ('mid', 'email'),
  ('few together', 'invoice podcast'), ('few together', 'github recipe'), ('few together', 'budget studio deploy'),
  ('many together', 'invoice budget'), ('many together', 'agent github'), ('many together', 'recipe fitness travel'),
  ('typo', 'agnet'), ('typo', 'invoise'), ('typo', 'podcsat studio'),
  ('prefix', 'inv'), ('prefix', 'agent pod'), ('prefix', 'invoice bud'),
  ('or / not / phrase', 'invoice or recipe'), ('or / not / phrase', 'agent -invoice'), ('or / not / phrase', '"invoice budget"');
CREATE TEMP TABLE variants (variant text, category text, relays text[], models text[], pricing text);
INSERT INTO variants VALUES ('plain', NULL, NULL, NULL, NULL), ('category', 'finance', NULL, NULL, NULL),
  ('relay', NULL, '{slack}', NULL, NULL), ('model', NULL, NULL, '{gemini}', NULL), ('pricing', NULL, NULL, NULL, 'free'),
  ('all four', 'coding', '{telegram,discord}', '{claude}', 'per_task');

SELECT ok((SELECT count(*) FROM classes c WHERE (agentmarket_private.search_prepare(c.q)).estimate > 300
              AND c.class IN ('common', 'many together', 'few together', 'typo', 'prefix')) >= 12,
          'most queries have more than the exhaustive limit of postings: walks, samples and tiers answer them');
SELECT ok((SELECT count(*) FROM agentmarket.agents WHERE search_document @@ 'invoic & podcast') BETWEEN 1 AND 20,
          'hub words of two domains are common apart and rare together');

------------------------------------------------------------------------------
-- Relevance: first pages and pages after a cursor equal exhaustive scoring
------------------------------------------------------------------------------
SELECT is((SELECT array_agg(c.class || ': ' || c.q || ' / ' || v.variant ORDER BY c.class, c.q, v.variant)
             FROM classes c, variants v
            WHERE c.class <> 'rare' AND c.class <> 'mid' AND c.class <> 'common'
              AND pg_temp.ids(c.q, v.category, v.relays, v.models, v.pricing, 'relevance', 20)
                  IS DISTINCT FROM pg_temp.exhaustive(c.q, v.category, v.relays, v.models, v.pricing, 20)),
          NULL, 'multi-word, typo, prefix, or/not/phrase classes, every filter: the first page equals exhaustive scoring');
SELECT is((SELECT array_agg(c.class || ': ' || c.q || ' / ' || v.variant ORDER BY c.class, c.q, v.variant)
             FROM classes c, variants v
            WHERE c.class IN ('rare', 'mid', 'common')
              AND pg_temp.ids(c.q, v.category, v.relays, v.models, v.pricing, 'relevance', 20)
                  IS DISTINCT FROM pg_temp.exhaustive(c.q, v.category, v.relays, v.models, v.pricing, 20)),
          NULL, 'one common, mid or rare word, every filter: the first page equals exhaustive scoring');
SELECT is((SELECT array_agg(c.q || ' / ' || v.variant ORDER BY c.q, v.variant)
             FROM classes c, variants v,
                  LATERAL (SELECT s.cursor FROM agentmarket.search_agents(c.q, v.category, NULL, v.relays, v.models,
                                                   v.pricing, 'relevance', 7) s ORDER BY s.score, s.id LIMIT 1) last
            WHERE v.variant IN ('plain', 'category', 'all four')
              AND pg_temp.ids(c.q, v.category, v.relays, v.models, v.pricing, 'relevance', 9, last.cursor)
                  IS DISTINCT FROM pg_temp.exhaustive(c.q, v.category, v.relays, v.models, v.pricing, 9, last.cursor)),
          NULL, 'the page after a cursor equals exhaustive scoring, plain and filtered');
SELECT is((SELECT count(*)::int FROM agentmarket.search_agents('agent', page_size => 20)), 20,
          'a common word fills the page');

------------------------------------------------------------------------------
-- Sorted by a column: capped index walks and GIN + sort give the same rows
------------------------------------------------------------------------------
SELECT is((SELECT array_agg(c.q || ' / ' || s.sort || ' / ' || v.variant ORDER BY c.q, s.sort, v.variant)
             FROM classes c, (VALUES ('rating'), ('popular'), ('newest')) s(sort), variants v
            WHERE v.variant IN ('plain', 'category', 'all four')
              AND pg_temp.ids(c.q, v.category, v.relays, v.models, v.pricing, s.sort, 20)
                  IS DISTINCT FROM (pg_temp.exhaustive_sorted(c.q, s.sort, v.category, v.relays, v.models, v.pricing))[1:20]),
          NULL, 'every class sorted by rating, hires or date, plain and filtered: the first page equals sorting every match');
SELECT is((SELECT array_agg(c.q || ' / ' || s.sort ORDER BY c.q, s.sort)
             FROM classes c, (VALUES ('rating'), ('popular'), ('newest')) s(sort),
                  LATERAL (SELECT x.cursor FROM agentmarket.search_agents(c.q, sort => s.sort, page_size => 7) x
                            OFFSET 6) last
            WHERE pg_temp.ids(c.q, NULL, NULL, NULL, NULL, s.sort, 9, last.cursor)
                  IS DISTINCT FROM (pg_temp.exhaustive_sorted(c.q, s.sort, NULL, NULL, NULL, NULL))[8:16]),
          NULL, 'sorted second pages by cursor equal rows 8 to 16 of sorting every match');
SELECT is(pg_temp.ids(NULL, 'research', NULL, NULL, NULL, 'newest', 20),
          (pg_temp.exhaustive_sorted(NULL, 'newest', 'research', NULL, NULL, NULL))[1:20],
          'no query: the category''s listings by date');

------------------------------------------------------------------------------
-- Random queries
------------------------------------------------------------------------------
-- 60 queries of one to four words of the vocabulary; some words get a typo
-- (two letters swapped), some end as a prefix; random filters.
SELECT setseed(0.5);
CREATE TEMP TABLE random_queries AS
SELECT n, string_agg(CASE WHEN w.typo AND length(w.word) >= 6
                          THEN left(w.word, 2) || substr(w.word, 4, 1) || substr(w.word, 3, 1) || substr(w.word, 5)
                          WHEN w.last AND w.prefix THEN left(w.word, 3) ELSE w.word END, ' ' ORDER BY w.j) AS q,
       (array_agg(v.variant))[1] AS variant
  FROM generate_series(1, 60) n
  CROSS JOIN LATERAL (SELECT variant FROM variants ORDER BY random() + 0 * n LIMIT 1) v
  CROSS JOIN LATERAL (
    SELECT j, (SELECT (ARRAY['agent','invoice','budget','podcast','studio','github','deploy','recipe','travel','mortgage',
                             'docker','email','inbox','calendar','review','cooking','video','payroll','garden','notes'])
                      [1 + floor(random() * 20 + 0 * j)::int]) AS word,
           random() < 0.2 AS typo, random() < 0.3 AS prefix, j = m.m AS last
      FROM (SELECT 1 + floor(random() * 4)::int + 0 * n AS m) m, generate_series(1, m.m) j) w
 GROUP BY n;
SELECT is((SELECT array_agg(r.q || ' / ' || r.variant ORDER BY r.n) FROM random_queries r JOIN variants v USING (variant)
            WHERE pg_temp.ids(r.q, v.category, v.relays, v.models, v.pricing, 'relevance', 20)
                  IS DISTINCT FROM pg_temp.exhaustive(r.q, v.category, v.relays, v.models, v.pricing, 20)),
          NULL, '60 random queries with random filters: the first page equals exhaustive scoring');
SELECT ok((SELECT count(*) FROM random_queries r WHERE EXISTS (SELECT FROM agentmarket.search_agents(r.q))) >= 25,
          'and most of them find something');

------------------------------------------------------------------------------
-- Upkeep: the vocabulary and typo index follow the published listings
------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.vocabulary_drift() RETURNS bigint LANGUAGE sql AS $$
    WITH fresh AS (
        SELECT u.lexeme COLLATE "C" AS lexeme, count(*)::int AS ndoc,
               (count(*) FILTER (WHERE 'A' = ANY (u.weights)))::int AS n_a,
               (count(*) FILTER (WHERE 'B' = ANY (u.weights)))::int AS n_b,
               (count(*) FILTER (WHERE NOT (u.weights && '{A,B}'::text[])))::int AS n_c
          FROM agentmarket.agents a, unnest(a.search_document) u
         WHERE a.status = 'published' GROUP BY u.lexeme),
    stored AS (SELECT lexeme, ndoc, n_a, n_b, n_c FROM agentmarket_private.search_vocabulary),
    keys AS (SELECT DISTINCT k COLLATE "C" AS key, f.lexeme FROM fresh f,
                    unnest(agentmarket_private.search_typo_keys(f.lexeme)) k
              WHERE char_length(f.lexeme) BETWEEN 4 AND 64 AND left(f.lexeme, 1) <> ' ')
    SELECT (SELECT count(*) FROM ((SELECT * FROM fresh EXCEPT SELECT * FROM stored)
                                  UNION ALL (SELECT * FROM stored EXCEPT SELECT * FROM fresh)) d)
         + (SELECT count(*) FROM ((SELECT * FROM keys EXCEPT SELECT key, lexeme FROM agentmarket_private.search_typo_index)
                                  UNION ALL (SELECT key, lexeme FROM agentmarket_private.search_typo_index EXCEPT SELECT * FROM keys)) d)
$$;
SELECT is(pg_temp.vocabulary_drift(), 0::bigint, 'after loading, the vocabulary and typo index equal a rebuild');

INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url)
VALUES ('st-unique', '66666666-0000-4000-8000-000000000001', 'Zorblaxian Helper', 'Plain', 'Quixotrophic words.',
        'personal', 'published', 'https://g/su'),
       ('st-unique2', '66666666-0000-4000-8000-000000000001', 'Vexmorrow Helper', 'Plain', 'Nothing.',
        'personal', 'published', 'https://g/su2');
SELECT is((SELECT count(*)::int FROM agentmarket_private.search_typo_index WHERE lexeme IN ('zorblaxian', 'quixotroph')),
          (SELECT (cardinality(agentmarket_private.search_typo_keys('zorblaxian'))
                   + cardinality(agentmarket_private.search_typo_keys('quixotroph')))::int),
          'a new word gets its typo keys');
SELECT is(pg_temp.ids('zorblaxain', NULL, NULL, NULL, NULL, 'relevance', 5),
          ARRAY[(SELECT id FROM agentmarket.agents WHERE slug = 'st-unique')], 'and is found with a typo');
UPDATE agentmarket.agents SET status = 'archived' WHERE slug = 'st-unique';
SELECT is((SELECT count(*)::int FROM agentmarket_private.search_vocabulary WHERE lexeme IN ('zorblaxian', 'quixotroph')), 0,
          'unpublishing removes words in no other listing from the vocabulary');
SELECT is((SELECT count(*)::int FROM agentmarket_private.search_typo_index WHERE lexeme IN ('zorblaxian', 'quixotroph')), 0,
          'and their typo keys');
SELECT ok((SELECT ndoc FROM agentmarket_private.search_vocabulary WHERE lexeme = 'helper') = 1,
          'a word another listing still has stays, counted once');
DELETE FROM agentmarket.agents WHERE slug = 'st-unique2';
SELECT is((SELECT count(*)::int FROM agentmarket_private.search_vocabulary WHERE lexeme IN ('vexmorrow', 'helper')), 0,
          'deleting removes the words too');
UPDATE agentmarket.agents SET description = description || ' Flumberwick.' WHERE slug IN ('st-5', 'st-6');
UPDATE agentmarket.agents SET description = replace(description, ' Flumberwick.', '') WHERE slug = 'st-5';
SELECT is((SELECT ndoc FROM agentmarket_private.search_vocabulary WHERE lexeme = 'flumberwick'), 1,
          'an edit adds and removes words');
UPDATE agentmarket.agents SET status = 'archived' WHERE slug BETWEEN 'st-2' AND 'st-299';
SELECT is(pg_temp.vocabulary_drift(), 0::bigint, 'after bulk unpublishing and edits, the vocabulary and typo index still equal a rebuild');
SELECT is((SELECT published FROM agentmarket_private.search_corpus),
          (SELECT count(*)::int FROM agentmarket.agents WHERE status = 'published'), 'the corpus size follows');

-- A creator edits their own published listing (as PostgREST would).
SET LOCAL request.jwt.claims = '{"sub": "66666666-0000-4000-8000-000000000001"}';
SET LOCAL role authenticated;
UPDATE agentmarket.agents SET tagline = 'Snorkelwise ' || tagline WHERE slug = 'st-1';
RESET role;
SELECT is(pg_temp.ids('snorkelwise', NULL, NULL, NULL, NULL, 'relevance', 5),
          ARRAY[(SELECT id FROM agentmarket.agents WHERE slug = 'st-1')], 'a creator''s own edit is searchable at once');
SELECT is(pg_temp.vocabulary_drift(), 0::bigint, 'and kept in the vocabulary');

------------------------------------------------------------------------------
-- Read-only: search writes nothing (it works on a hot standby)
------------------------------------------------------------------------------
SET LOCAL transaction_read_only = on;
SELECT is((SELECT count(*)::int FROM agentmarket.search_agents('agent invoice', 'finance')), 20,
          'search_agents runs in a read-only transaction');
SELECT ok((SELECT count(*) FROM agentmarket.search_agents('invoise', sort => 'rating')) > 0
          AND (SELECT count(*) FROM agentmarket.search_agents('agent', page_after =>
                (SELECT cursor FROM agentmarket.search_agents('agent') OFFSET 19))) = 20,
          'typos, sorts and cursors too');
SELECT ok((SELECT count(*) FROM agentmarket.agent_facets('invoice')) > 0, 'and agent_facets');

SELECT * FROM finish();
ROLLBACK;
