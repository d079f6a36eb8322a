-- search_filter_arrays: the tag, relay and model filters are checked on
-- each row in C (search_direct.c: am_text_array_meets compares the row's
-- text[] with the filter's values byte for byte) where the statements use
-- @> and &&.  Both paths give the same pages for rows whose arrays hold
-- NULL elements, duplicates, empty strings, several dimensions or the most
-- elements a listing may have, and for filters with duplicates, empty
-- strings, a NULL element (@> fails, && ignores it), long values and 64 or
-- 70 values (duplicates: each must be met once).  Every page is
-- also compared with the operators applied in SQL to every listing, so that
-- both paths being wrong the same way fails too.
\ir test/fixture.sql
BEGIN;
SELECT plan(8);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-2100-4000-8000-000000000001', 'maker@fa.test', 'creator');
-- Every listing holds the rare word; their arrays are the hard cases.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url,
                                supported_relays, supported_models, tags, total_hires, avg_rating, total_reviews,
                                published_at)
SELECT 'fa-' || i, '66666666-2100-4000-8000-000000000001', 'Quorvexa helper ' || i, 'Helps with work',
       'This agent does quorvexa tasks', 'coding', 'published', 'https://g/fa' || i,
       (ARRAY['{slack}', '{telegram,discord}', '{}', NULL, '{slack,slack}', '{discord,whatsapp,telegram,slack}'])[1 + i % 6]::text[],
       (ARRAY['{claude}', '{gpt,gemini}', '{}', '{mistral,llama}', NULL])[1 + i % 5]::text[],
       CASE i % 10 WHEN 0 THEN ARRAY['mail'] WHEN 1 THEN ARRAY['mail', NULL] WHEN 2 THEN ARRAY[NULL, 'ops']
                   WHEN 3 THEN ARRAY['', 'mail'] WHEN 4 THEN ARRAY['ops', 'mail', 'ops'] WHEN 5 THEN NULL
                   WHEN 6 THEN ARRAY['Mail'] WHEN 7 THEN ARRAY['mail', repeat('x', 300)] WHEN 8 THEN ARRAY[]::text[]
                   ELSE (SELECT array_agg('t' || j) FROM generate_series(1, 32) j) END,
       i % 7, 3.5, i % 4, '2026-01-01'::timestamptz + (i % 9) * interval '1 day'
  FROM generate_series(1, 120) i;
-- Two-dimensional arrays: the operators look at every element.
UPDATE agentmarket.agents SET tags = '{{mail,ops},{x,y}}', supported_relays = '{{slack,discord},{telegram,whatsapp}}'
 WHERE slug IN ('fa-3', 'fa-13');
ANALYZE agentmarket.agents;

CREATE TEMP TABLE filters (n serial, tags text[], relays text[], models text[]);
INSERT INTO filters (tags, relays, models) VALUES
  ('{mail}', NULL, NULL), ('{ops}', NULL, NULL), ('{mail,ops}', NULL, NULL), ('{mail,mail}', NULL, NULL),
  ('{""}', NULL, NULL), ('{mail,NULL}', NULL, NULL), ('{NULL}', NULL, NULL), ('{Mail}', NULL, NULL),
  (ARRAY['mail', repeat('x', 300)], NULL, NULL), ('{x,y}', NULL, NULL),
  ((SELECT array_agg('t' || (1 + j % 32)) FROM generate_series(1, 70) j), NULL, NULL),
  ((SELECT array_agg('t' || (1 + j % 32)) FROM generate_series(1, 64) j), NULL, NULL),
  (NULL, '{slack}', NULL), (NULL, '{telegram}', NULL), (NULL, '{slack,slack,slack}', NULL),
  (NULL, '{whatsapp,discord}', NULL), (NULL, NULL, '{gemini}'), (NULL, NULL, '{llama,claude}'),
  ('{mail}', '{slack}', '{claude}'), ('{ops}', '{discord}', '{mistral}'),
  ((SELECT array_agg('t' || (1 + j % 33)) FROM generate_series(1, 66) j), NULL, NULL);

CREATE TEMP TABLE pages (n int, sort text, via text, ids uuid[]);
CREATE TEMP TABLE paths (n int, sort text, path text);
DO $$
DECLARE
    f filters;
    s text;
    via text;
BEGIN
    FOR f IN SELECT * FROM filters LOOP
        FOREACH s IN ARRAY ARRAY['relevance', 'rating', 'newest'] LOOP
            FOREACH via IN ARRAY ARRAY['direct', 'statement'] LOOP
                PERFORM set_config('agentmarket.search_direct', CASE via WHEN 'direct' THEN 'on' ELSE 'off' END, true);
                INSERT INTO pages SELECT f.n, s, via, array_agg(x.id ORDER BY x.o)
                  FROM agentmarket.search_agents('quorvexa', NULL, f.tags, f.relays, f.models, NULL, s, 100)
                       WITH ORDINALITY x(id, slug, name, tagline, icon_url, category, pricing_model, credits_per_session,
                                         avg_rating, total_reviews, total_hires, supported_relays, supported_models,
                                         tags, published_at, score, cursor, o);
                IF via = 'direct' THEN
                    INSERT INTO paths SELECT f.n, s, x.path FROM agentmarket_private.search_direct_last() x;
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;
    PERFORM set_config('agentmarket.search_direct', 'on', true);
END $$;

SELECT is((SELECT count(*) FROM pages d JOIN pages t USING (n, sort)
            WHERE d.via = 'direct' AND t.via = 'statement' AND d.ids IS DISTINCT FROM t.ids), 0::bigint,
          'every filter''s page read in C equals the statements''');
SELECT is((SELECT count(*) FROM pages p JOIN filters f USING (n)
            WHERE p.via = 'direct'
              AND (SELECT array_agg(x ORDER BY x) FROM unnest(p.ids) x) IS DISTINCT FROM
                  (SELECT array_agg(a.id ORDER BY a.id) FROM agentmarket.agents a
                    WHERE a.slug LIKE 'fa-%' AND (f.tags IS NULL OR a.tags @> f.tags)
                      AND (f.relays IS NULL OR a.supported_relays && f.relays)
                      AND (f.models IS NULL OR a.supported_models && f.models))), 0::bigint,
          'and holds exactly the listings the operators pass (every match fits the page)');
SELECT is((SELECT array_agg(cardinality(p.ids) ORDER BY f.n) FILTER (WHERE f.n IN (6, 7))
             FROM pages p JOIN filters f USING (n) WHERE p.via = 'direct' AND p.sort = 'relevance'),
          ARRAY[NULL, NULL]::int[], 'a tag filter with a NULL value matches nothing, as @> does');
SELECT ok((SELECT bool_and(cardinality(p.ids) > 0) FROM pages p JOIN filters f USING (n)
            WHERE p.via = 'direct' AND f.n IN (1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)),
          'the other filters find listings (the comparisons are not of empty pages)');
SELECT is((SELECT cardinality(p.ids) FROM pages p WHERE p.via = 'direct' AND p.n = 11 AND p.sort = 'rating'),
          12, '70 tag values with duplicates: the listings holding all 32 distinct ones');
SELECT is((SELECT count(*) FROM paths WHERE path IS NULL), 0::bigint,
          'C read every one of those pages');

-- The same within a walk of a sort's index (a word in every listing, no
-- text: the rows are checked by the same function as the walk reaches them).
SET LOCAL agentmarket.search_exhaustive_limit = 10;
CREATE TEMP TABLE walked (n int, ids uuid[], path text);
DO $$
DECLARE
    f filters;
BEGIN
    FOR f IN SELECT * FROM filters LOOP
        INSERT INTO walked SELECT f.n, array_agg(s.id ORDER BY s.total_hires DESC, s.id DESC), NULL
          FROM agentmarket.search_agents(NULL, 'coding', f.tags, f.relays, f.models, NULL, 'popular', 100) s;
        UPDATE walked SET path = (SELECT x.path FROM agentmarket_private.search_direct_last() x) WHERE n = f.n;
    END LOOP;
END $$;
SELECT is((SELECT count(*) FROM walked w JOIN filters f USING (n)
            WHERE w.ids IS DISTINCT FROM
                  (SELECT array_agg(x.id) FROM (SELECT a.id FROM agentmarket.agents a
                    WHERE a.status = 'published' AND a.category = 'coding' AND (f.tags IS NULL OR a.tags @> f.tags)
                      AND (f.relays IS NULL OR a.supported_relays && f.relays)
                      AND (f.models IS NULL OR a.supported_models && f.models)
                    ORDER BY a.total_hires DESC, a.id DESC LIMIT 100) x)), 0::bigint,
          'walking a sort''s index, each filter passes the listings the operators pass');
SELECT ok((SELECT count(*) FROM walked WHERE path LIKE 'walk%') >= 10, 'most of those pages were walked in C');

SELECT * FROM finish();
ROLLBACK;
