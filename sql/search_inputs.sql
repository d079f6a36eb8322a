-- search_inputs: hostile and odd input to search_agents and agent_facets gets
-- a clear 22023 or a normal answer, never another error: absurd query
-- lengths, too many words, odd unicode, huge or negative page sizes, forged
-- cursors (garbage, out-of-range keys, huge).  And the page cursor, now made
-- in C, is byte for byte what the former SQL encoding made, and decodes back.
-- The agentmarket.search_* settings refuse a value of the wrong type.
\ir test/fixture.sql
BEGIN;
SELECT plan(30);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('88888888-0000-4000-8000-000000000001', 'maker@si.test', 'creator');
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url,
                                total_hires, avg_rating, total_reviews, published_at)
SELECT 'si-' || i, '88888888-0000-4000-8000-000000000001', 'Inbox Helper ' || i, 'Email triage', 'Reads your email.',
       'productivity', 'published', 'https://g/si' || i, i, 4.5, i, '2026-01-01'::timestamptz + i * interval '1 day'
  FROM generate_series(1, 30) i;

------------------------------------------------------------------------------
-- Cursors
------------------------------------------------------------------------------
-- The former SQL encoding, kept here as the reference.
CREATE FUNCTION pg_temp.sql_cursor(p_sort text, p_key text, p_key2 text, p_id uuid) RETURNS text
LANGUAGE sql AS $$
    SELECT rtrim(translate(encode(convert_to(p_sort || '|' || COALESCE(p_key, '') || '|' || COALESCE(p_key2, '')
                                             || '|' || p_id::text, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
$$;
SELECT is((SELECT count(*)::int FROM (VALUES
             ('relevance', '0.612345678', NULL), ('rating', '4.5', '12'), ('popular', '7', NULL),
             ('newest', '1767225600000000', NULL), ('relevance', '', ''), ('rating', 'ä€😀', 'x|y'),
             ('relevance', repeat('9', 300), repeat('1', 77))) v(s, k, k2),
             LATERAL (SELECT gen_random_uuid() AS id) u
            WHERE agentmarket_private.search_cursor(v.s, v.k, v.k2, u.id) = pg_temp.sql_cursor(v.s, v.k, v.k2, u.id)), 7,
          'the C cursor equals the former SQL encoding, padding and long keys included');
SELECT is(agentmarket_private.search_cursor_parts(
              agentmarket_private.search_cursor('rating', '4.5', '12', '88888888-0000-4000-8000-000000000009'), 'rating'),
          ARRAY['rating', '4.5', '12', '88888888-0000-4000-8000-000000000009'], 'a cursor decodes to its parts');
SELECT ok(agentmarket_private.search_cursor(NULL, 'x', NULL, gen_random_uuid()) IS NULL
          AND agentmarket_private.search_cursor('newest', 'x', NULL, NULL) IS NULL, 'no sort or no id: no cursor');
SELECT is((SELECT array_agg(s.slug) FROM agentmarket.search_agents('email', sort => 'popular', page_size => 5,
               page_after => (SELECT cursor FROM agentmarket.search_agents('email', sort => 'popular', page_size => 5) OFFSET 4)) s),
          ARRAY['si-25', 'si-24', 'si-23', 'si-22', 'si-21'], 'the second page follows the first');
SELECT throws_ok(format('SELECT * FROM agentmarket.search_agents(sort => %L, page_after => %L)', 'popular',
                        agentmarket_private.search_cursor('popular', '99999999999', NULL, gen_random_uuid())),
                 '22023', 'invalid page cursor', 'a forged cursor with hires beyond an integer is refused (22023)');
SELECT throws_ok(format('SELECT * FROM agentmarket.search_agents(sort => %L, page_after => %L)', 'rating',
                        agentmarket_private.search_cursor('rating', '4.5', '-99999999999', gen_random_uuid())),
                 '22023', 'invalid page cursor', 'and one with reviews beyond an integer');
SELECT throws_ok(format('SELECT * FROM agentmarket.search_agents(sort => %L, page_after => %L)', 'newest',
                        agentmarket_private.search_cursor('newest', '99999999999999999999', NULL, gen_random_uuid())),
                 '22023', 'invalid page cursor', 'and one with microseconds beyond a bigint');
SELECT throws_ok(format('SELECT * FROM agentmarket.search_agents(page_after => %L)', repeat('QUJD', 25000)),
                 '22023', 'invalid page cursor', 'a 100,000-character cursor is refused');
SELECT lives_ok(format('SELECT * FROM agentmarket.search_agents(%L, page_after => %L)', 'email',
                       agentmarket_private.search_cursor('relevance', 'NaN', NULL, gen_random_uuid())),
                'a relevance cursor of NaN is only a position (before every score)');

------------------------------------------------------------------------------
-- Page sizes and filters
------------------------------------------------------------------------------
SELECT throws_ok('SELECT * FROM agentmarket.search_agents(page_size => 2147483647)', '22023',
                 'page_size must be between 1 and 100', 'the largest integer page size is refused');
SELECT throws_ok('SELECT * FROM agentmarket.search_agents(page_size => -5)', '22023', NULL, 'a negative page size is refused');
SELECT throws_ok('SELECT * FROM agentmarket.search_agents(page_size => NULL)', '22023', NULL, 'a NULL page size is refused');
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents(relays => ARRAY[NULL]::text[])$$, '22023', NULL,
                 'a NULL relay is refused');
SELECT is((SELECT count(*)::int FROM agentmarket.search_agents('email', category => repeat('x', 1000),
                                                               tags => ARRAY(SELECT 't' || i FROM generate_series(1, 10000) i))),
          0, 'a 1,000-character category and 10,000 tags find nothing, without error');
SELECT throws_ok(format('SELECT * FROM agentmarket.search_agents(%L, category => %L)', 'email', repeat('x', 100000)),
                 '22023', 'category too long', 'a 100,000-character category is refused (22023)');
SELECT throws_ok(format('SELECT * FROM agentmarket.agent_facets(category => %L)', repeat('é', 501)),
                 '22023', 'category too long', 'by agent_facets too (bytes, not characters)');
SELECT throws_ok($$INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status,
                                                  github_repo_url)
                   VALUES ('si-longcat', '88888888-0000-4000-8000-000000000001', 'Quillowby', 'Plain', 'Nothing.',
                           repeat('c', 3000), 'published', 'https://g/si-longcat')$$,
                 '23514', NULL, 'a 3,000-character category is refused by the listing''s check, not by the search trigger');

------------------------------------------------------------------------------
-- Query text
------------------------------------------------------------------------------
SELECT is((SELECT count(*)::int FROM agentmarket.search_agents(repeat('email ', 682) || 'emai')), 20,
          'a query of 4,096 characters is searched (its first 512, the word cut there as a prefix)');
SELECT throws_ok(format('SELECT * FROM agentmarket.search_agents(%L)', repeat('e', 4097)), '22023',
                 'search query too long', 'a query of 4,097 characters is refused');
SELECT throws_ok(format('SELECT * FROM agentmarket.agent_facets(%L)', repeat('e', 1000000)), '22023',
                 'search query too long', 'and a megabyte, by agent_facets too');
SELECT lives_ok(format('SELECT * FROM agentmarket.search_agents(%L)', repeat('z', 4000) || '!'),
                'a long word ending in a symbol (a costly case for the last-word pattern) is answered');
SELECT is((SELECT count(*)::int FROM agentmarket.search_agents(
              'inbox email triage reads your helper helpers reading emails triaged inboxes mail')), 0,
          'twelve distinct words are searched');
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents('inbox email triage reads your helper one two three four five six seven eight')$$,
                 '22023', 'too many words in search query', 'thirteen distinct words are refused');
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents('alpha or bravo or charlie or delta or echo or foxtrot or golf or hotel or india or juliet or kilo or lima or mike')$$,
                 '22023', 'too many words in search query', 'so is an or of thirteen words');
SELECT is((SELECT count(*)::int FROM agentmarket.search_agents(repeat('email ', 300))), 20,
          'one word repeated is one word');
SELECT is((SELECT count(*)::int FROM unnest(ARRAY[E'\u200b\u202eemail\u0301', '😀 email', E'e\u0301mail', '﷽', 'ǅ ǆ',
                                                 repeat('ü', 200), 'email' || repeat(E'\u0301', 500)])
                   AS q, LATERAL (SELECT count(*) FROM agentmarket.search_agents(q)) x), 7,
          'zero-width and direction marks, emoji, combining marks, ligatures, 200-letter words: answered');
SELECT is((SELECT count(*)::int FROM agentmarket.search_agents(E'\u200b email')), 20,
          'a zero-width space beside a word does not hide it');

------------------------------------------------------------------------------
-- The search settings: defined by the module, a value of the wrong type refused
------------------------------------------------------------------------------
SELECT throws_ok($$SET LOCAL agentmarket.search_exhaustive_limit = 'many'$$, '22023', NULL,
                 'the exhaustive limit takes a whole number');
SELECT throws_ok($$SET LOCAL agentmarket.search_direct = 'maybe'$$, '22023', NULL, 'a switch takes on or off');
SELECT is((SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_catalog.pg_settings
            WHERE name LIKE 'agentmarket.search%'),
          'agentmarket.search_direct=on agentmarket.search_exhaustive_limit=2000 agentmarket.search_gin_merge=on '
          'agentmarket.search_order=on agentmarket.search_order_heads=on agentmarket.search_order_matches=auto '
          'agentmarket.search_sorted_candidates=on', 'the settings and their defaults');

SELECT * FROM finish();
ROLLBACK;
