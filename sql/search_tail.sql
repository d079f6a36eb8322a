-- search_tail: the strategy choice when filters keep few listings but the
-- words are dense among them (a common word with all four filters, the
-- words of the category's own domain): search_agents walks the category's
-- static-score index instead of scoring every match, decided from the
-- vocabulary's counts and a count of the words among the category's first
-- listings; words rare within the filters are still scored; every page
-- equals exhaustive scoring (search_walk_last tells which path answered).
\ir test/fixture.sql
BEGIN;
SELECT plan(16);
-- The finance and slack filters together keep 750 of 3,000 listings: under
-- this limit, so the filters alone would choose scoring every match.
SET LOCAL agentmarket.search_exhaustive_limit = 800;

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-2000-4000-8000-000000000001', 'maker@st.test', 'creator');
-- "agent" and "handles" in every description (never in a name, tagline or
-- tag: their only tier is walked); "deploy" and "server" only in coding
-- listings, "ledger" in one in twenty; categories and relays alternate.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, tags,
                                total_hires, avg_rating, total_reviews, published_at)
SELECT 'st-' || i, '66666666-2000-4000-8000-000000000001',
       'Tool ' || (ARRAY['alpha','bravo','charlie','delta','echo'])[1 + i % 5],
       'Works ' || (ARRAY['quickly','nightly','daily'])[1 + i % 3],
       'This agent handles '
         || CASE WHEN i % 2 = 1 THEN 'deploy server ' || CASE WHEN i % 7 = 0 THEN 'ledger ' ELSE '' END
                 ELSE 'budget invoice ' END
         || CASE WHEN i % 20 = 0 THEN 'ledger' ELSE 'notes' END,
       CASE WHEN i % 2 = 1 THEN 'coding' ELSE 'finance' END,
       'published', (ARRAY['per_session','per_task','free'])[1 + i % 3], 'https://g/st' || i,
       CASE WHEN (i / 2) % 2 = 0 THEN '{slack}' ELSE '{telegram}' END::text[],
       (ARRAY['{claude}','{gpt}'])[1 + (i / 4) % 2]::text[], '{}',
       (i * 7919) % 700, ((i * 31) % 41) / 10.0 + 1, (i * 13) % 60,
       '2026-01-01'::timestamptz + i * interval '1 hour'
  FROM generate_series(1, 3000) i;
ANALYZE agentmarket.agents;

\ir test/search_exhaustive.sql

CREATE TEMP TABLE runs (q text, category text, relays text[], models text[], pricing text, k int, after text,
                        got uuid[], want uuid[], walked bigint, scored_all boolean, tiers int);
CREATE FUNCTION pg_temp.run(p_q text, p_category text, p_relays text[], p_models text[], p_pricing text,
                            p_k int, p_after text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    got uuid[];
    w_walked bigint;
    w_scored boolean;
    w_tiers int;
BEGIN
    got := (SELECT COALESCE(array_agg(s.id), '{}')
              FROM agentmarket.search_agents(p_q, p_category, NULL, p_relays, p_models, p_pricing, 'relevance',
                                             p_k, p_after) s);
    SELECT w.walked, w.scored_all, w.tiers_fetched INTO w_walked, w_scored, w_tiers FROM agentmarket_private.search_walk_last() w;
    INSERT INTO runs VALUES (p_q, p_category, p_relays, p_models, p_pricing, p_k, p_after, got,
                             pg_temp.exhaustive(p_q, p_category, p_relays, p_models, p_pricing, p_k, p_after),
                             w_walked, w_scored, w_tiers);
END $$;
SELECT pg_temp.run(q.q, v.category, v.relays, v.models, v.pricing, k.k, NULL)
  FROM (VALUES ('agent'), ('handles'), ('agnet'), ('hand'), ('deploy'), ('deploy server'), ('ledger'),
               ('agent ledger'), ('budget'), ('serv')) q(q),
       (VALUES ('finance', '{slack}'::text[], NULL::text[], NULL), ('coding', '{slack}', NULL, NULL),
               ('finance', '{slack}', '{claude}', 'free'), ('coding', '{slack,telegram}', '{gpt}', 'per_task')) v(category, relays, models, pricing),
       (VALUES (5), (20)) k(k) \g /dev/null
-- Each first page run so far, again from its last row's cursor.
CREATE FUNCTION pg_temp.run_second_pages() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_temp.run(r.q, r.category, r.relays, r.models, r.pricing, r.k,
                       (SELECT s.cursor FROM agentmarket.search_agents(r.q, r.category, NULL, r.relays, r.models, r.pricing,
                                                                       'relevance', r.k) s
                         ORDER BY s.score, s.id LIMIT 1))
      FROM runs r;
END $$;
SELECT pg_temp.run_second_pages() \g /dev/null

SELECT is((SELECT count(*)::int FROM runs), 160, 'every query, filter set, page size and page ran');
SELECT is((SELECT array_agg(DISTINCT r.q || ' ' || r.category || r.relays::text || COALESCE(r.models::text, '')
                            || COALESCE(r.pricing, '') || ' k=' || r.k || CASE WHEN r.after IS NULL THEN '' ELSE ' page 2' END)
             FROM runs r WHERE r.got IS DISTINCT FROM r.want),
          NULL, 'every page equals exhaustive scoring (filters, page sizes, second pages by cursor)');
SELECT ok((SELECT count(*) FROM runs r WHERE cardinality(r.got) = r.k) >= 100, 'and most pages are full');
-- A word in every listing, by finance and slack (750 listings): walked, not
-- every match scored; the walk reads a few dozen listings.
SELECT is((SELECT array_agg(DISTINCT r.q ORDER BY r.q) FROM runs r
            WHERE r.category = 'finance' AND r.relays = '{slack}' AND r.models IS NULL AND r.after IS NULL
              AND r.walked IS NOT NULL AND NOT r.scored_all AND r.walked < 200),
          '{agent,agnet,budget,hand,handles}', 'words in every filtered listing (exact, typo, prefix) are walked');
-- A word of the coding listings only, in half of all listings (more than
-- the limit): dense by coding, absent by finance.  The vocabulary cannot
-- tell; the count on the category's first listings does.
SELECT ok((SELECT bool_and(r.walked IS NOT NULL AND NOT r.scored_all) FROM runs r
            WHERE r.q = 'deploy' AND r.category = 'coding' AND r.models IS NULL AND r.after IS NULL),
          'a word of the category''s domain is walked in its category');
SELECT ok((SELECT bool_and(r.walked IS NULL) FROM runs r
            WHERE r.q IN ('deploy', 'serv') AND r.category = 'finance'),
          'and scored (no walk) in another category, where it matches nothing');
SELECT ok((SELECT bool_and(r.walked IS NULL) FROM runs r WHERE r.q IN ('ledger', 'agent ledger')),
          'a word rare overall is scored');
-- With all four filters (about 125 listings), the same word: scored, not
-- walked (the walk would read more listings than there are matches).
SELECT ok((SELECT bool_and(r.walked IS NULL OR r.scored_all) FROM runs r
            WHERE r.category = 'finance' AND r.pricing = 'free' AND r.after IS NULL),
          'with all four filters in a small corpus, every match is scored');
SELECT ok((SELECT count(*) FROM runs r WHERE r.walked IS NOT NULL AND NOT r.scored_all AND r.after IS NOT NULL) >= 8,
          'second pages are walked too');

-- A tier's listings are found by GIN within the filters: search_fields
-- holds the filter lexemes too (kept by the trigger), and a filtered walk
-- that fetches tiers returns what exhaustive scoring does.
-- Sixty listings named Zephyr, low in static order: their tier is fetched.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models)
SELECT 'st-z-' || i, '66666666-2000-4000-8000-000000000001', 'Zephyr ' || i, 'Works nightly',
       'This agent handles notes', CASE WHEN i % 2 = 1 THEN 'coding' ELSE 'finance' END, 'published',
       (ARRAY['per_session','per_task','free'])[1 + i % 3], 'https://g/stz' || i,
       CASE WHEN (i / 2) % 2 = 0 THEN '{slack}' ELSE '{telegram}' END::text[], (ARRAY['{claude}','{gpt}'])[1 + (i / 4) % 2]::text[]
  FROM generate_series(1, 60) i;
SET LOCAL agentmarket.search_exhaustive_limit = 30;
TRUNCATE runs;
SELECT pg_temp.run(q.q, v.category, v.relays, v.models, v.pricing, 5, NULL)
  FROM (VALUES ('alpha agent'), ('bravo handles'), ('zephyr or agent'), ('zephyr or handles'), ('alpha quick')) q(q),
       (VALUES ('finance', NULL::text[], NULL::text[], NULL), ('coding', '{slack}', NULL, NULL),
               ('finance', '{slack}', '{claude}', 'free')) v(category, relays, models, pricing) \g /dev/null
SELECT is((SELECT array_agg(r.q || ' ' || r.category) FROM runs r WHERE r.got IS DISTINCT FROM r.want), NULL,
          'filtered walks that fetch tiers equal exhaustive scoring');
SELECT ok((SELECT count(*) FROM runs r WHERE r.tiers > 0 AND NOT r.scored_all) >= 3,
          'and some of them walk, fetching tiers within the filters');
SELECT is((SELECT array_agg(l ORDER BY l) FROM agentmarket.agents a, unnest(tsvector_to_array(a.search_fields)) l
            WHERE a.slug = 'st-4' AND l LIKE ' %'),
          ARRAY[' category finance', ' model gpt', ' pricing per_task', ' relay slack'],
          'search_fields holds the listing''s filter lexemes');
UPDATE agentmarket.agents SET category = 'coding', supported_relays = '{discord,slack}' WHERE slug = 'st-4';
SELECT is((SELECT array_agg(l ORDER BY l) FROM agentmarket.agents a, unnest(tsvector_to_array(a.search_fields)) l
            WHERE a.slug = 'st-4' AND l LIKE ' %'),
          ARRAY[' category coding', ' model gpt', ' pricing per_task', ' relay discord', ' relay slack'],
          'and follows an edit of the filters');

-- Prefixes: GIN reads a prefix's completions from the vocabulary as exact
-- terms ('zor':* as 'zor' | 'zorba' | ...), up to 32 of them; more stay a
-- prefix.  Every completion is found: names, taglines and descriptions
-- with a few completions of "zor", and fifty of "quil".
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, total_hires)
SELECT 'st-p-' || i, '66666666-2000-4000-8000-000000000001',
       CASE WHEN i % 3 = 0 THEN 'Zor' || (ARRAY['ba','bit','ro','zy'])[1 + i % 4] ELSE 'Plain' END || ' quil' || chr(97 + i % 26) || chr(97 + i / 26 % 2),
       CASE WHEN i % 3 = 1 THEN 'Zor' || (ARRAY['ba','bit','ro','zy'])[1 + i % 4] || ' helper' ELSE 'Helper' END,
       'This agent handles ' || CASE WHEN i % 3 = 2 THEN 'zor' || (ARRAY['ba','bit','ro','zy'])[1 + i % 4] ELSE 'notes' END,
       CASE WHEN i % 2 = 1 THEN 'coding' ELSE 'finance' END, 'published',
       (ARRAY['per_session','per_task','free'])[1 + i % 3], 'https://g/stp' || i,
       CASE WHEN (i / 2) % 2 = 0 THEN '{slack}' ELSE '{telegram}' END::text[], (ARRAY['{claude}','{gpt}'])[1 + (i / 4) % 2]::text[],
       i * 37 % 500
  FROM generate_series(1, 80) i;
SELECT ok((SELECT count(*) FROM agentmarket_private.search_vocabulary WHERE lexeme LIKE 'quil%') > 32,
          'more completions of "quil" than are expanded');
TRUNCATE runs;
SELECT pg_temp.run(q.q, v.category, v.relays, v.models, v.pricing, k.k, NULL)
  FROM (VALUES ('zor'), ('zorb'), ('agent zor'), ('handles zorb'), ('quil'), ('agent qui'), ('hand'), ('serv'),
               ('zor or quil')) q(q),
       (VALUES (NULL, NULL::text[], NULL::text[], NULL), ('finance', NULL, NULL, NULL), ('coding', '{slack}', NULL, NULL),
               ('finance', '{slack}', '{claude}', 'free')) v(category, relays, models, pricing),
       (VALUES (5), (20)) k(k) \g /dev/null
SELECT pg_temp.run_second_pages() \g /dev/null
SELECT is((SELECT array_agg(DISTINCT r.q || ' ' || COALESCE(r.category, '') || ' k=' || r.k
                            || CASE WHEN r.after IS NULL THEN '' ELSE ' page 2' END)
             FROM runs r WHERE r.got IS DISTINCT FROM r.want),
          NULL, 'prefix searches equal exhaustive scoring (scored, walked, tiers, filters, second pages)');
SELECT ok((SELECT count(*) FROM runs r WHERE r.q IN ('zor', 'zorb') AND cardinality(r.got) > 0) >= 20,
          'and find the completions''s listings');

SELECT * FROM finish();
ROLLBACK;
