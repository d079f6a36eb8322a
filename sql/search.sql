-- search: search_agents and agent_facets.  Planted listings are found by
-- exact words, one typo and a prefix; weights and ratings order them; drafts
-- never appear; filters, sorts and keyset paging are exact; bad arguments
-- raise 22023 and no query text raises a syntax error.  On a generated corpus
-- big enough for the early-stopping top-k, results equal exhaustive scoring.
\ir test/fixture.sql
BEGIN;
SELECT plan(56);
-- The tiered top-k below needs more matches than the exhaustive limit.
SET LOCAL agentmarket.search_exhaustive_limit = 2000;

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('55555555-0000-4000-8000-000000000001', 'maker@s.test', 'creator');

-- Planted listings: s1..s5 published, a draft and a rejected one.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                credits_per_session, github_repo_url, supported_relays, supported_models, tags,
                                total_hires, avg_rating, total_reviews, published_at)
SELECT x.slug, '55555555-0000-4000-8000-000000000001', x.name, x.tagline, x.description, x.category, x.status,
       x.pricing, CASE WHEN x.pricing = 'free' THEN NULL ELSE 20 END, 'https://github.com/maker/' || x.slug,
       x.relays, x.models, x.tags, x.hires, x.rating, x.reviews, x.published::timestamptz
  FROM (VALUES
    ('s1', 'Inbox Whisperer', 'Triage email every morning', 'Reads your inbox and drafts replies.', 'productivity',
     'published', 'per_session', '{telegram,slack}'::text[], '{claude}'::text[], '{email,triage}'::text[], 40, 4.5, 10, '2026-01-01'),
    ('s2', 'Paper Scout', 'Finds research papers', 'Summarises arXiv papers weekly, with email digests.', 'research',
     'published', 'per_session', '{discord}', '{claude,gpt}', '{arxiv,summaries}', 300, 3.9, 40, '2026-02-01'),
    ('s3', 'Ghostwriter', 'Drafts blog posts', 'Learns your style. Sends drafts by email.', 'writing',
     'published', 'per_task', '{whatsapp}', '{gpt}', '{blog}', 5, 4.9, 3, '2026-03-01'),
    ('s4', 'Standup Bot', 'Async standups on Slack', 'Asks three questions every day.', 'productivity',
     'published', 'free', '{slack}', '{claude}', '{team,slack}', 120, 4.0, 25, '2026-04-01'),
    ('s5', 'Ledger Lynx', 'Bookkeeping for freelancers', 'Categorises expenses and invoices.', 'finance',
     'published', 'per_session', '{telegram}', '{gemini}', '{finance,invoices}', 0, 0, 0, '2026-05-01'),
    ('d1', 'Secret Zebra', 'Unreleased zebra email agent', 'Zebra stripes for your email.', 'productivity',
     'draft', 'free', '{slack}', '{claude}', '{zebra}', 0, 0, 0, NULL),
    ('r1', 'Rejected Zebra', 'Zebra email agent', 'Zebra.', 'productivity',
     'rejected', 'free', '{slack}', '{claude}', '{zebra}', 0, 0, 0, NULL)) x(slug, name, tagline, description, category,
     status, pricing, relays, models, tags, hires, rating, reviews, published);

-- Weight ladder: the same word in the name, the tagline, the description.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url)
VALUES ('w-desc', '55555555-0000-4000-8000-000000000001', 'Alpha', 'Plain', 'A quokka inside.', 'personal', 'published', 'https://g/1'),
       ('w-name', '55555555-0000-4000-8000-000000000001', 'Quokka', 'Plain', 'Nothing.', 'personal', 'published', 'https://g/2'),
       ('w-tag', '55555555-0000-4000-8000-000000000001', 'Beta', 'Quokka friend', 'Nothing.', 'personal', 'published', 'https://g/3'),
       ('r-low', '55555555-0000-4000-8000-000000000001', 'Wombat', 'Plain', 'Nothing.', 'personal', 'published', 'https://g/4'),
       ('r-high', '55555555-0000-4000-8000-000000000001', 'Wombat', 'Plain', 'Nothing.', 'personal', 'published', 'https://g/5');
UPDATE agentmarket.agents SET avg_rating = 4.8, total_reviews = 50, total_hires = 1000 WHERE slug = 'r-high';

CREATE FUNCTION pg_temp.slugs(p_query text, p_category text DEFAULT NULL, p_tags text[] DEFAULT NULL,
                              p_relays text[] DEFAULT NULL, p_models text[] DEFAULT NULL,
                              p_pricing text DEFAULT NULL, p_sort text DEFAULT 'relevance')
RETURNS text[] LANGUAGE sql AS $$
    SELECT COALESCE(array_agg(s.slug), '{}')
      FROM agentmarket.search_agents(p_query, p_category, p_tags, p_relays, p_models, p_pricing, p_sort, 100) s
     WHERE s.slug !~ '^g-'
$$;

------------------------------------------------------------------------------
-- Finding listings
------------------------------------------------------------------------------
SELECT is(pg_temp.slugs('email'), ARRAY['s1', 's2', 's3'],
          'an exact word finds every listing with it; the tagline match ranks first');
SELECT is(pg_temp.slugs('emial'), ARRAY['s1', 's2', 's3'], 'one typo (a swap) in a 5-letter word still finds them');
SELECT is(pg_temp.slugs('emaill'), ARRAY['s1', 's2', 's3'], 'one typo (an extra letter) still finds them');
SELECT is(pg_temp.slugs('ghostwrater'), ARRAY['s3'], 'one typo (a wrong letter) in a long word finds it');
SELECT is(pg_temp.slugs('ghostwratr'), '{}'::text[], 'two typos find nothing');
SELECT is(pg_temp.slugs('blig'), '{}'::text[], 'words under five letters get no typo tolerance');
SELECT is(pg_temp.slugs('ledg'), ARRAY['s5'], 'the last word matches as a prefix');
SELECT is(pg_temp.slugs('ledg invoices'), '{}'::text[], 'only the last word is a prefix');
SELECT is(pg_temp.slugs('invoices ledg'), ARRAY['s5'], 'a prefix last word combines with whole words');
SELECT is(pg_temp.slugs('"blog posts"'), ARRAY['s3'], 'a quoted phrase matches in order');
SELECT is(pg_temp.slugs('"posts blog"'), '{}'::text[], 'a quoted phrase does not match out of order');
SELECT is(pg_temp.slugs('email -inbox'), ARRAY['s2', 's3'], 'a -word excludes listings with it');
SELECT is(pg_temp.slugs('ledger or standups'), ARRAY['s4', 's5'], 'or matches either word');
SELECT is(pg_temp.slugs('quokka'), ARRAY['w-name', 'w-tag', 'w-desc'],
          'the name weighs more than the tagline, which weighs more than the description');
SELECT is(pg_temp.slugs('wombat'), ARRAY['r-high', 'r-low'], 'with equal text, rating and hires rank higher');
SELECT is(pg_temp.slugs('zebra'), '{}'::text[], 'drafts and rejected listings are never returned');
SELECT is((SELECT count(*)::int FROM agentmarket.search_agents(page_size => 100)), 10,
          'without a query every published listing is listed, and only those');
SELECT is(pg_temp.slugs('the and of'), (SELECT array_agg(slug) FROM agentmarket.search_agents(page_size => 100)),
          'a query of stop words is no filter');
SELECT ok((SELECT bool_and(score IS NOT NULL AND cursor IS NOT NULL AND score > 0) FROM agentmarket.search_agents('email')),
          'every row has a score and a cursor');
SELECT is((SELECT array_agg(id) FROM agentmarket.search_agents('email')),
          (SELECT array_agg(id) FROM agentmarket.search_agents('EMAIL!!')), 'case and punctuation do not matter');

------------------------------------------------------------------------------
-- Filters and sorts
------------------------------------------------------------------------------
SELECT is(pg_temp.slugs(NULL, p_category => 'productivity', p_sort => 'newest'), ARRAY['s4', 's1'], 'category filter');
SELECT is(pg_temp.slugs(NULL, p_tags => '{email,triage}'), ARRAY['s1'], 'tags: all listed tags');
SELECT is(pg_temp.slugs(NULL, p_tags => '{email,blog}'), '{}'::text[], 'tags: a listing needs every tag');
SELECT is(pg_temp.slugs(NULL, p_relays => '{slack,discord}', p_sort => 'newest'), ARRAY['s4', 's2', 's1'],
          'relays: any listed relay');
SELECT is(pg_temp.slugs(NULL, p_models => '{gemini,gpt}', p_sort => 'newest'), ARRAY['s5', 's3', 's2'],
          'models: any listed model');
SELECT is(pg_temp.slugs(NULL, p_pricing => 'free'), ARRAY['s4'], 'pricing model filter');
SELECT is(pg_temp.slugs('email', p_category => 'research', p_models => '{claude}'), ARRAY['s2'],
          'filters combine with a query');
SELECT is(pg_temp.slugs(NULL, p_tags => '{}', p_relays => '{}', p_category => 'finance'), ARRAY['s5'],
          'empty arrays are no filter');
SELECT is(pg_temp.slugs('email', p_sort => 'popular'), ARRAY['s2', 's1', 's3'], 'popular: most hires first');
SELECT is(pg_temp.slugs('email', p_sort => 'rating'), ARRAY['s3', 's1', 's2'], 'rating: best average first');
SELECT is(pg_temp.slugs('email', p_sort => 'newest'), ARRAY['s3', 's2', 's1'], 'newest: latest publication first');

------------------------------------------------------------------------------
-- Facets
------------------------------------------------------------------------------
SELECT is((SELECT array_agg(facet || ':' || value || '=' || count ORDER BY facet, value)
             FROM agentmarket.agent_facets('email')),
          ARRAY['category:productivity=1', 'category:research=1', 'category:writing=1',
                'model:claude=2', 'model:gpt=2', 'pricing_model:per_session=2', 'pricing_model:per_task=1',
                'relay:discord=1', 'relay:slack=1', 'relay:telegram=1', 'relay:whatsapp=1'],
          'facets count the matches per category, model, pricing model and relay');
SELECT is((SELECT sum(count)::int FROM agentmarket.agent_facets(NULL, 'productivity') WHERE facet = 'category'), 2,
          'facets apply the filters and skip drafts');
SELECT throws_ok($$SELECT * FROM agentmarket.agent_facets(NULL, relays => '{irc}')$$, '22023', NULL,
                 'facets check filters like search');

------------------------------------------------------------------------------
-- Paging
------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.all_pages(p_query text, p_sort text, p_size int) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    acc text[] := '{}';
    after text;
    r record;
    n int;
    pages int := 0;
BEGIN
    LOOP
        pages := pages + 1;
        IF pages > 100 THEN
            RAISE EXCEPTION 'paging does not advance';
        END IF;
        n := 0;
        FOR r IN SELECT * FROM agentmarket.search_agents(p_query, sort => p_sort, page_size => p_size, page_after => after) LOOP
            acc := acc || r.slug;
            after := r.cursor;
            n := n + 1;
        END LOOP;
        EXIT WHEN n < p_size;
    END LOOP;
    RETURN acc;
END
$$;
SELECT is(pg_temp.all_pages(NULL, 'relevance', 3),
          (SELECT array_agg(slug) FROM agentmarket.search_agents(page_size => 100)),
          'pages of 3 add up to the full list, in order, without repeats (relevance, no query)');
SELECT is(pg_temp.all_pages('email or quokka or wombat', 'relevance', 2),
          (SELECT array_agg(slug) FROM agentmarket.search_agents('email or quokka or wombat', page_size => 100)),
          'pages by relevance with a query add up to the full list');
SELECT is(pg_temp.all_pages(NULL, 'rating', 4),
          (SELECT array_agg(slug) FROM agentmarket.search_agents(sort => 'rating', page_size => 100)), 'pages by rating');
SELECT is(pg_temp.all_pages(NULL, 'popular', 4),
          (SELECT array_agg(slug) FROM agentmarket.search_agents(sort => 'popular', page_size => 100)), 'pages by hires');
SELECT is(pg_temp.all_pages(NULL, 'newest', 1),
          (SELECT array_agg(slug) FROM agentmarket.search_agents(sort => 'newest', page_size => 100)),
          'pages by publication date');

------------------------------------------------------------------------------
-- Bad input
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents(page_size => 0)$$, '22023',
                 'page_size must be between 1 and 100', 'page_size 0 is refused');
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents(page_size => 101)$$, '22023', NULL, 'page_size 101 is refused');
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents(sort => 'cheapest')$$, '22023', 'unknown sort "cheapest"',
                 'an unknown sort is refused');
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents(pricing_model => 'monthly')$$, '22023', NULL,
                 'an unknown pricing model is refused');
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents(relays => '{irc}')$$, '22023', NULL, 'an unknown relay is refused');
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents(page_after => 'not a cursor!')$$, '22023',
                 'invalid page cursor', 'a malformed cursor is refused');
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents(page_after => 'cmVsZXZhbmNlfHh8fHk')$$, '22023',
                 'invalid page cursor', 'a well-formed cursor with garbage inside is refused');
SELECT throws_ok(format('SELECT * FROM agentmarket.search_agents(sort => %L, page_after => %L)', 'popular',
                        (SELECT cursor FROM agentmarket.search_agents(page_size => 1))), '22023', 'invalid page cursor',
                 'a cursor of another sort is refused');
SELECT is((SELECT count(*)::int FROM unnest(ARRAY['"', '""', '-', '--x', '!', '!!x', '(', ')', 'a & b', 'a | | b', ':*',
                                                 'x:*', '<->', 'a <-> b', '\', '''', 'or', 'or or', '"unclosed',
                                                 'email:A', '&', repeat('email ', 200), repeat('z', 3000), E'\t\n'])
                   AS q, LATERAL (SELECT count(*) FROM agentmarket.search_agents(q)) x), 24,
          'odd query text never raises a syntax error');

------------------------------------------------------------------------------
-- Access, and the vocabulary following the catalogue
------------------------------------------------------------------------------
SET LOCAL role anon;
SELECT is(pg_temp.slugs('ledger'), ARRAY['s5'], 'anon can search');
RESET role;
UPDATE agentmarket.agents SET status = 'archived' WHERE slug = 's5';
SELECT is(pg_temp.slugs('ledger'), '{}'::text[], 'an archived listing leaves the results');
SELECT is((SELECT count(*)::int FROM agentmarket_private.search_vocabulary WHERE lexeme = 'ledger'), 0,
          'and the vocabulary');
UPDATE agentmarket.agents SET tagline = 'Triage mail every morning' WHERE slug = 's1';
SELECT is(pg_temp.slugs('email'), ARRAY['s1', 's2', 's3'], 'an edited listing is found by its tags still');
SELECT is(pg_temp.slugs('mail morning'), ARRAY['s1'], 'and by its new words');

------------------------------------------------------------------------------
-- The early-stopping top-k equals exhaustive scoring
------------------------------------------------------------------------------
-- 4000 listings with a skewed vocabulary: "agent" everywhere, "helper" in
-- most, a few names with them; enough for search_agents to use its tiers.
-- "widget" is in every description and nowhere else: the static-score walk.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url,
                                supported_relays, total_hires, avg_rating, total_reviews)
SELECT 'g-' || i, '55555555-0000-4000-8000-000000000001',
       (ARRAY['Helper', 'Agent', 'Mail', 'Note', 'Calendar', 'Planner', 'Scout', 'Writer'])[1 + i % 8] || ' ' || i,
       (ARRAY['helper for mail', 'agent of notes', 'calendar helper', 'plain tool'])[1 + (i / 8) % 4],
       'This agent ' || (ARRAY['helps with mail', 'keeps notes', 'plans the calendar', 'is a helper'])[1 + (i / 3) % 4]
         || ' and more widgets.',
       (ARRAY['productivity', 'research'])[1 + i % 2], 'published', 'https://g/g' || i,
       (ARRAY['{slack}', '{telegram}', '{}'])[1 + i % 3]::text[],
       (i * 7919) % 500, ((i * 31) % 41) / 10.0 + 1, (i * 13) % 60
  FROM generate_series(1, 4000) i;
ANALYZE agentmarket.agents;
CREATE FUNCTION pg_temp.exhaustive(p_query text, p_category text, p_k int, p_after text DEFAULT NULL) RETURNS uuid[]
LANGUAGE sql AS $$
    WITH p AS MATERIALIZED (SELECT agentmarket_private.search_prepare(p_query) AS p),
    c AS MATERIALIZED (SELECT split_part(convert_from(decode(rpad(translate(p_after, '-_', '+/'),
                                   (length(p_after) + 3) / 4 * 4, '='), 'base64'), 'UTF8'), '|', 2)::float8 AS f,
                              split_part(convert_from(decode(rpad(translate(p_after, '-_', '+/'),
                                   (length(p_after) + 3) / 4 * 4, '='), 'base64'), 'UTF8'), '|', 4)::uuid AS id
                        WHERE p_after IS NOT NULL)
    SELECT array_agg(x.id ORDER BY x.score DESC, x.id DESC) FROM (
        SELECT a.id, agentmarket_private.search_blend(agentmarket_private.search_text_score(a.search_document,
                   (p.p).lexemes, (p.p).groups, (p.p).factors, (p.p).prefixes, (p.p).ngroups), a.search_static) AS score
          FROM agentmarket.agents a, p
         WHERE a.status = 'published' AND a.search_document @@ (p.p).query
           AND (p_category IS NULL OR a.category = p_category)
         ORDER BY 2 DESC, 1 DESC) x
     WHERE NOT EXISTS (SELECT FROM c) OR EXISTS (SELECT FROM c WHERE (x.score, x.id) < (c.f, c.id))
     LIMIT 1
$$;
CREATE TEMP TABLE topk_queries (q text, category text);
INSERT INTO topk_queries VALUES ('agent', NULL), ('helper', NULL), ('agent helper', NULL), ('helper mail', NULL),
    ('agen', NULL), ('agnet', NULL), ('helper agent calendar', NULL), ('helper or notes', NULL), ('agent', 'research'),
    ('mail -helper', NULL), ('"helper for"', NULL), ('widget', NULL), ('widget', 'research'),
    ('widget helper', NULL), ('widgte', NULL), ('widg', NULL), ('widget mail', 'productivity');
SELECT ok((SELECT bool_and((agentmarket_private.search_prepare(q)).estimate > 2000) FROM topk_queries
            WHERE q IN ('agent', 'helper', 'agent helper', 'agen', 'agnet', 'widget')),
          'these queries match more than 2000 listings: the tiered top-k answers them');
SELECT is((SELECT array_agg(q || coalesce('/' || category, '') ORDER BY q, category) FROM topk_queries
            WHERE (SELECT array_agg(s.id) FROM agentmarket.search_agents(q, category, page_size => 20) s)
                  IS DISTINCT FROM (SELECT (pg_temp.exhaustive(q, category, 20))[1:20])),
          NULL, 'the first page equals exhaustive scoring for every query');
SELECT is((SELECT array_agg(q ORDER BY q) FROM topk_queries t,
                LATERAL (SELECT s.cursor FROM agentmarket.search_agents(t.q, t.category, page_size => 7) s
                          ORDER BY s.score, s.id LIMIT 1) last
            WHERE (SELECT array_agg(s.id) FROM agentmarket.search_agents(t.q, t.category, page_size => 9,
                                                                         page_after => last.cursor) s)
                  IS DISTINCT FROM (SELECT (pg_temp.exhaustive(t.q, t.category, 9, last.cursor))[1:9])),
          NULL, 'the page after a cursor equals exhaustive scoring too');

SELECT * FROM finish();
ROLLBACK;
