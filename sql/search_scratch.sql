-- search_scratch: the working memory search_agents keeps per backend
-- (search_scratch.c): the large arrays of a search (TID keys read from the
-- posting lists, the ordered walk's members, their index by heap block)
-- carved from one region whose pages stay mapped between calls.  The first
-- search of a session takes them from palloc and sizes the region for the
-- next; later ones run in it; an error inside a search gives the region
-- back; searches that reuse it one after another (each carving over what
-- the last one held) still equal exhaustive scoring.
\ir test/fixture.sql
BEGIN;
SELECT plan(8);
SET LOCAL agentmarket.search_exhaustive_limit = 30;

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-3400-4000-8000-000000000001', 'maker@scratch.test', 'creator');
SELECT setseed(0.43);
\set domains_prefix sc
\set domains_creator 66666666-3400-4000-8000-000000000001
\set domains_count 4000
\ir test/search_domains.sql
ANALYZE agentmarket.agents;

\ir test/search_exhaustive.sql

SELECT is((SELECT row(kept, wanted, from_palloc, held) FROM agentmarket_private.search_scratch_last())::text,
          '(0,0,0,0)', 'nothing is kept before the session''s first search');

CREATE TEMP TABLE pages (n serial, q text, relays text[], after text, got uuid[], want uuid[],
                         kept bigint, wanted bigint, from_palloc bigint, held int, ordered boolean);
CREATE FUNCTION pg_temp.page(p_q text, p_relays text[] DEFAULT NULL, p_after text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    got uuid[];
    m record;
BEGIN
    got := (SELECT COALESCE(array_agg(s.id), '{}')
              FROM agentmarket.search_agents(p_q, NULL, NULL, p_relays, NULL, NULL, 'relevance', 20, p_after) s);
    SELECT * INTO m FROM agentmarket_private.search_scratch_last();
    INSERT INTO pages (q, relays, after, got, want, kept, wanted, from_palloc, held, ordered)
    VALUES (p_q, p_relays, p_after, got, pg_temp.exhaustive(p_q, NULL, p_relays, NULL, NULL, 20, p_after),
            m.kept, m.wanted, m.from_palloc, m.held,
            (SELECT o.members IS NOT NULL FROM agentmarket_private.search_order_last() o));
END $$;
SELECT pg_temp.page('recipe fitness travel garden') FROM generate_series(1, 3) \g /dev/null

SELECT ok(ordered AND wanted > 0 AND from_palloc = wanted AND kept = 0,
          'the first search (the ordered walk) takes its arrays from palloc')
  FROM pages WHERE n = 1;
SELECT ok(p2.kept >= p1.wanted AND p2.from_palloc = 0 AND p3.from_palloc = 0 AND p3.kept = p2.kept
          AND p2.held = 0 AND p3.held = 0,
          'the next ones run in the region it sized, kept between calls and held by none between them')
  FROM pages p1, pages p2, pages p3 WHERE (p1.n, p2.n, p3.n) = (1, 2, 3);
SELECT ok(bool_and(got = want AND cardinality(got) = 20), 'and their pages equal exhaustive scoring')
  FROM pages;

-- An error inside a search (after it took the region): given back.
SELECT throws_ok($$SELECT * FROM agentmarket.search_agents('a1 b2 c3 d4 e5 f6 g7 h8 i9 j10 k11 l12 m13')$$,
                 '22023', 'too many words in search query', 'a query of 13 words fails inside the search');
SELECT is((SELECT held FROM agentmarket_private.search_scratch_last()), 0, 'and the region is held by none after it');

-- Searches one after another over the same region, each carving over what
-- the one before held: words, filters, second pages.
SELECT pg_temp.page(q.q, r.relays)
  FROM (VALUES ('recipe fitness'), ('github deploy server'), ('invoice budget expense payroll'), ('podcast'),
               ('email inbox'), ('garden pet'), ('summary report blog')) q(q),
       (VALUES (NULL::text[]), ('{slack}'), ('{telegram,discord}')) r(relays) \g /dev/null
SELECT pg_temp.page(p.q, p.relays, (SELECT s.cursor FROM agentmarket.search_agents(p.q, NULL, NULL, p.relays, NULL, NULL,
                                                        'relevance', 20) s OFFSET 19 LIMIT 1))
  FROM (SELECT DISTINCT q, relays FROM pages WHERE n > 3 AND cardinality(got) = 20) p \g /dev/null
SELECT ok(count(*) FILTER (WHERE p.got IS DISTINCT FROM p.want) = 0 AND count(*) > 30
          AND count(*) FILTER (WHERE p.ordered) > 10 AND bool_and(p.held = 0)
          AND bool_and(x.kept >= p.wanted OR x.n IS NULL) AND count(*) FILTER (WHERE p.from_palloc = 0) > 30,
          'searches reusing the region one after another (' || count(*) || ', ' || count(*) FILTER (WHERE p.ordered)
          || ' of them ordered walks) equal exhaustive scoring; each leaves the region sized for what it held')
  FROM pages p LEFT JOIN pages x ON x.n = p.n + 1 WHERE p.n > 3;
SELECT ok(count(*) = 0, 'every page of them equals exhaustive scoring (those that do not: ' ||
          COALESCE(string_agg(q || ' ' || COALESCE(relays::text, ''), '; '), 'none') || ')')
  FROM pages WHERE n > 3 AND got IS DISTINCT FROM want;

SELECT * FROM finish();
ROLLBACK;
