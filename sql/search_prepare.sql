-- search_prepare: the plan of a query reads the vocabulary directly through
-- its indexes (search_prepare.c); what it reads equals the same lookups in
-- SQL: each word's counts, the summed counts of the completions of a last
-- word typed as a prefix, and each word's typo candidates (one edit away
-- through the deletion index, in more published listings than the word
-- itself, at least ten times as many when it is in any, the eight in most
-- listings, ties by lexeme), for words of every length, unknown words,
-- prefixes with no or many completions, a word with more than eight
-- candidates, words as common as their neighbours, and a neighbour at nine
-- and at ten times a word's listings.
\ir test/fixture.sql
BEGIN;
SELECT plan(14);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-2000-4000-8000-000000000001', 'maker@sp.test', 'creator');
-- Names of one edit from "planer" and "boxes", and words sharing a prefix;
-- "planer" in one published listing (its others, and those of "planers",
-- the same lexeme, are drafts), its nine neighbours in twenty or more each,
-- "plane" (with "planed" and "planes") in more than any of its own.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url)
SELECT 'sp-' || i, '66666666-2000-4000-8000-000000000001', w.name, 'Tagline ' || w.name,
       'Description of ' || w.name || ' with words ' || repeat('invoic ', i % 3), 'personal',
       CASE WHEN i % 7 = 0 OR w.name = 'planers' OR (w.name = 'planer' AND i > 24) THEN 'draft' ELSE 'published' END,
       'https://g/sp' || i
  FROM generate_series(1, 600) i,
       LATERAL (SELECT (ARRAY['planer','planet','planed','planes','plane','planker','plaier','plnaer','plaxer','plawer',
                              'plamer','planers','boxes','boxed','boxer','foxes','bowes','inventory','invest','invoice',
                              'invite','involve','zylofant','plader'])[1 + i % 24] AS name) w;

-- The plan's terms per word: lexeme and factor, in plan order.
CREATE FUNCTION pg_temp.plan_terms(p_query text) RETURNS text[] LANGUAGE sql AS $$
    SELECT array_agg(t.g || ':' || t.lexeme || ':' || t.factor ORDER BY t.o)
      FROM (SELECT agentmarket_private.search_prepare(p_query) AS p) x,
           unnest((x.p).lexemes, (x.p).groups, (x.p).factors) WITH ORDINALITY t(lexeme, g, factor, o)
$$;
-- What the terms must be: per distinct word (in plan order), the word, then
-- its typo candidates by lexeme: words in published listings, in ten times
-- as many as it or more when it is in any.
CREATE FUNCTION pg_temp.expected_terms(p_words text[]) RETURNS text[] LANGUAGE sql AS $$
    SELECT array_agg(g || ':' || lexeme || ':' || factor ORDER BY g, kind, lexeme COLLATE "C")
      FROM (SELECT w.g, 0 AS kind, w.word AS lexeme, 1::float8 AS factor
              FROM unnest(p_words) WITH ORDINALITY w(word, g)
            UNION ALL
            SELECT w.g, 1, c.lexeme, 0.5
              FROM unnest(p_words) WITH ORDINALITY w(word, g),
                   LATERAL (SELECT t.lexeme::text AS lexeme
                              FROM agentmarket_private.search_typo_index t
                              JOIN agentmarket_private.search_vocabulary v ON v.lexeme = t.lexeme
                             WHERE char_length(w.word) BETWEEN 5 AND 64
                               AND t.key = ANY (agentmarket_private.search_typo_keys(w.word))
                               AND t.lexeme <> (w.word COLLATE "C")
                               AND v.ndoc > 0
                               AND v.ndoc >= 10 * COALESCE((SELECT o.ndoc FROM agentmarket_private.search_vocabulary o
                                                            WHERE o.lexeme = (w.word COLLATE "C")), 0)
                               AND agentmarket_private.search_is_one_typo(w.word, t.lexeme)
                             GROUP BY t.lexeme, v.ndoc ORDER BY v.ndoc DESC, t.lexeme LIMIT 8) c) x
$$;

SELECT ok((SELECT count(DISTINCT t.lexeme) FROM agentmarket_private.search_typo_index t
             JOIN agentmarket_private.search_vocabulary v ON v.lexeme = t.lexeme
            WHERE t.key = ANY (agentmarket_private.search_typo_keys('planer'))
              AND v.ndoc >= 10 * (SELECT ndoc FROM agentmarket_private.search_vocabulary WHERE lexeme = 'planer')
              AND agentmarket_private.search_is_one_typo('planer', t.lexeme) AND t.lexeme <> 'planer') > 8,
          'a word with more than eight typo candidates, each in ten times its listings or more');
SELECT ok(cardinality(pg_temp.plan_terms('planer')) = 9,
          'it gets eight of them');
SELECT is((SELECT array_agg(q) FROM (VALUES ('planer'), ('boxes'), ('plane'), ('zylofant'), ('zylofanx'), ('qqqqqqq'),
                                            ('planer boxes'), ('box planer'), ('invent'), ('inventory tool'))
                                    v(q)
            WHERE pg_temp.plan_terms(q) IS DISTINCT FROM pg_temp.expected_terms(
                      agentmarket_private.search_positive_lexemes(websearch_to_tsquery('english', q)))),
          NULL, 'each word''s terms: the word and its typo candidates, as the SQL lookup finds them');

-- A word in listings is read as a typo of a neighbour only when the
-- neighbour is in ten times as many or more (the noisy-channel rule of
-- spelling correctors): 'plane' has neighbours one edit away (planer,
-- planet), none as common; 'quorvex' in two listings and 'quorvax' in 19
-- are two words, in 20 'quorvax' is what 'quorvex' meant.
SELECT is(pg_temp.plan_terms('plane'), ARRAY['1:plane:1'],
          'a word more common than its neighbours gets no typo candidates');
SELECT is((SELECT array_agg(DISTINCT s.name ORDER BY s.name) FROM agentmarket.search_agents('plane ', page_size => 100) s),
          ARRAY['plane', 'planed', 'planes'], 'and finds only its own listings (typed whole: no prefix)');
SELECT ok((SELECT array_agg(DISTINCT s.name) FROM agentmarket.search_agents('planer', page_size => 100) s) @> ARRAY['planer', 'plane'],
          'its rarer neighbour finds its own listings and the common one''s');
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url)
SELECT 'sp-q-' || i, '66666666-2000-4000-8000-000000000001', CASE WHEN i <= 2 THEN 'Quorvex' ELSE 'Quorvax' END,
       'Tagline', 'Description', 'personal', CASE WHEN i = 22 THEN 'draft' ELSE 'published' END, 'https://g/sp-q' || i
  FROM generate_series(1, 22) i;
SELECT is(pg_temp.plan_terms('quorvex'), ARRAY['1:quorvex:1'],
          'a neighbour in under ten times a word''s listings is not a typo candidate');
UPDATE agentmarket.agents SET status = 'published' WHERE slug = 'sp-q-22';
SELECT is(pg_temp.plan_terms('quorvex'), ARRAY['1:quorvex:1', '1:quorvax:0.5'],
          'one in ten times as many is (20 against 2)');
SELECT is((SELECT array_agg(DISTINCT s.name ORDER BY s.name) FROM agentmarket.search_agents('quorvex', page_size => 100) s),
          ARRAY['Quorvax', 'Quorvex'], 'and its listings are found');

-- Counts: a word's own and its typo candidates', and with a prefix its
-- completions' summed in.
SELECT is((SELECT (p.p).group_docs[1]::bigint FROM (SELECT agentmarket_private.search_prepare('planer tool') AS p) p),
          (SELECT LEAST(sum(v.ndoc)::bigint, (SELECT published::bigint FROM agentmarket_private.search_corpus))
             FROM (SELECT agentmarket_private.search_prepare('planer tool') AS p) p,
                  unnest((p.p).lexemes, (p.p).groups) u(lexeme, g)
                  JOIN agentmarket_private.search_vocabulary v ON v.lexeme = u.lexeme
            WHERE u.g = 1),
          'a word''s listings: its own and its typo candidates''');
SELECT is((SELECT (agentmarket_private.search_prepare('tool inv')).group_docs[2]::bigint),
          LEAST((SELECT COALESCE(sum(v.ndoc), 0)::bigint FROM agentmarket_private.search_vocabulary v
                  WHERE v.lexeme COLLATE "C" >= 'inv' AND v.lexeme COLLATE "C" < 'inv' || chr(1114111)),
                (SELECT published::bigint FROM agentmarket_private.search_corpus)),
          'a prefix''s listings: the word''s own and its completions''');
SELECT is((SELECT (agentmarket_private.search_prepare('planer')).published::bigint),
          (SELECT count(*) FROM agentmarket.agents WHERE status = 'published'),
          'the corpus size');

-- Lookups are kept per backend under the corpus row's counts_xact: the same
-- query again plans the same, and this transaction's own edit (uncommitted:
-- never kept) is seen by the next search, not the lookup kept before it.
SELECT is((SELECT ARRAY[(p).lexemes::text, (p).group_docs::text]
             FROM (SELECT agentmarket_private.search_prepare('boxes ') AS p) x),
          (SELECT ARRAY[(p).lexemes::text, (p).group_docs::text]
             FROM (SELECT agentmarket_private.search_prepare('boxes ') AS p) x),
          'a query planned again from the kept lookup plans the same');
UPDATE agentmarket.agents SET description = 'Boxes and more boxes.'
 WHERE slug = (SELECT slug FROM agentmarket.agents
                WHERE slug LIKE 'sp-%' AND status = 'published'
                  AND NOT search_document @@ to_tsquery('english', 'boxes') ORDER BY slug LIMIT 1);
SELECT is((SELECT (agentmarket_private.search_prepare('boxes ')).group_docs[1]::bigint),
          (SELECT ndoc::bigint FROM agentmarket_private.search_vocabulary WHERE lexeme = 'box'),
          'an edit of the searcher''s own transaction is seen by its next search (one listing more)');
SELECT * FROM finish();
ROLLBACK;
