-- search_prefix: a prefix or a typo beside a word in nearly every listing
-- ('agent pod': 'agent' in 96 % of listings, 'pod' completing to 'podcast';
-- here 'agent quorb', a word no other suite's listings hold, as the lists
-- read count the index entries of their rolled-back listings too), within
-- filters where they rarely meet (research) and where they often do
-- (writing).  Checked here: every page (first and second by cursor, one
-- and all four filters, prefixes, a typo) equals scoring every match and
-- the pages with the posting lists off (agentmarket.search_gin_merge), and
-- when every match is scored from the posting lists (search_gin.c) the
-- word in nearly every listing is left to the rows: its list is not read.
\ir test/fixture.sql
BEGIN;
SELECT plan(8);
-- The bench's proportions on 4,000 listings: scoring every match is chosen
-- up to 400 matches (2,000 of 100,000 there).
SET LOCAL agentmarket.search_exhaustive_limit = 400;

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('66666666-4000-4000-8000-000000000001', 'maker@sp.test', 'creator');
-- 3,000 research listings, one in ten with "quorbcast" (in its name for one
-- in fifty, its tagline for one in thirty), 1,000 writing listings, most
-- with it; "agent" in all but one in 25.  Hires fall as i grows and no
-- listing is rated, so the static order is i's: the density sample (the
-- first 64 research listings) holds 5 matches, too few to trust,
-- projecting 234 (more than the sample can settle).
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, tags,
                                total_hires, published_at)
SELECT 'sp-' || i, '66666666-4000-4000-8000-000000000001',
       CASE WHEN i % 50 = 0 THEN 'Quorbcast Maker' ELSE 'Notes Tool' END || ' ' || i,
       CASE WHEN i % 30 = 0 OR (i > 3000 AND i % 3 = 0) THEN 'for your quorbcast' ELSE 'daily work' END,
       CASE WHEN i % 25 = 0 THEN 'It works ' ELSE 'This agent works ' END
         || CASE WHEN (i <= 3000 AND i % 10 = 0) OR (i > 3000 AND i % 5 <> 0) THEN 'on quorbcast episodes ' ELSE '' END
         || 'every day',
       CASE WHEN i <= 3000 THEN 'research' ELSE 'writing' END,
       'published', (ARRAY['per_session','per_task','free'])[1 + i % 3], 'https://g/sp' || i,
       (ARRAY['{slack}','{telegram,discord}','{whatsapp}','{}'])[1 + (i / 3) % 4]::text[],
       (ARRAY['{claude}','{gpt,gemini}','{gemini}'])[1 + (i / 2) % 3]::text[], '{}',
       5000 - i, '2026-01-01'::timestamptz + (i % 7) * interval '1 day'
  FROM generate_series(1, 4000) i;
-- Drafts and an archived listing with every word: never shown.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url)
SELECT 'sp-draft-' || i, '66666666-4000-4000-8000-000000000001', 'Agent Quorbcast ' || i, 'quorbcast',
       'agent quorbcast', 'research', CASE WHEN i = 1 THEN 'archived' ELSE 'draft' END, 'https://g/spd' || i
  FROM generate_series(1, 10) i;
SELECT pg_catalog.gin_clean_pending_list('agentmarket.agents_search_document_idx') IS NOT NULL;
ANALYZE agentmarket.agents;

\ir test/search_exhaustive.sql

CREATE TEMP TABLE runs (q text, category text, relays text[], models text[], pricing text, page int,
                        got text, walked text, want uuid[], path text, checked bigint, matches bigint,
                        ordered bool, sampled int, sample_hits int);
CREATE FUNCTION pg_temp.page(p_q text, p_category text, p_relays text[], p_models text[], p_pricing text,
                             p_after text) RETURNS text
LANGUAGE sql AS $$
    SELECT COALESCE(string_agg(s.id || ' ' || s.score || ' ' || s.cursor, ', ' ORDER BY o), '')
      FROM agentmarket.search_agents(p_q, p_category, NULL, p_relays, p_models, p_pricing, 'relevance', 20, p_after)
           WITH ORDINALITY s(id, slug, name, tagline, icon_url, category, pricing_model, credits_per_session,
                             avg_rating, total_reviews, total_hires, supported_relays, supported_models, tags,
                             published_at, score, cursor, o)
$$;
DO $$
DECLARE
    r record;
    after text;
    w text;
    got text;
BEGIN
    FOR r IN SELECT q.q, f.category, f.relays, f.models, f.pricing, p.page
               FROM unnest(ARRAY['agent quorb', 'agent quorbc', 'agent quorbcsat', 'quorbcast agen', 'agent quo']) q(q),
                    (VALUES ('research'::text, NULL::text[], NULL::text[], NULL::text), ('writing', NULL, NULL, NULL),
                            ('research', '{telegram,discord}', '{claude}', 'per_task'),
                            (NULL, NULL, '{gemini}', NULL)) f(category, relays, models, pricing),
                    unnest(ARRAY[1, 2]) p(page)
    LOOP
        after := NULL;
        IF r.page = 2 THEN
            after := (SELECT s.cursor FROM agentmarket.search_agents(r.q, r.category, NULL, r.relays, r.models,
                                                                     r.pricing, 'relevance', 20) s
                       ORDER BY s.score, s.id LIMIT 1);
            CONTINUE WHEN after IS NULL;
        END IF;
        PERFORM set_config('agentmarket.search_gin_merge', 'off', true);
        w := pg_temp.page(r.q, r.category, r.relays, r.models, r.pricing, after);
        PERFORM set_config('agentmarket.search_gin_merge', 'on', true);
        got := pg_temp.page(r.q, r.category, r.relays, r.models, r.pricing, after);
        INSERT INTO runs
        SELECT r.q, r.category, r.relays, r.models, r.pricing, r.page, got, w,
               pg_temp.exhaustive(r.q, r.category, r.relays, r.models, r.pricing, 20, after),
               d.path, d.checked, d.matches, (SELECT o IS NOT NULL FROM agentmarket_private.search_order_last() o),
               NULL, NULL
          FROM (SELECT 1) one
          LEFT JOIN agentmarket_private.search_direct_last() d ON true;
    END LOOP;
END $$;

SELECT is((SELECT count(*) FROM agentmarket.agents WHERE status = 'published' AND category = 'research'
              AND search_document @@ 'agent & quorbcast'::tsquery), 240::bigint, 'research holds 240 matches');

-- Every page equals scoring every match, and the walk's (cards, scores, cursors).
SELECT is((SELECT count(*) FROM runs r WHERE r.want IS DISTINCT FROM
             (SELECT COALESCE(array_agg(split_part(e, ' ', 1)::uuid ORDER BY o), '{}')
                FROM unnest(string_to_array(NULLIF(r.got, ''), ', ')) WITH ORDINALITY u(e, o))),
          0::bigint, 'every page equals scoring every match');
SELECT is((SELECT count(*) FROM runs WHERE got IS DISTINCT FROM walked), 0::bigint,
          'every page, score and cursor equals those with the posting lists off');
SELECT ok((SELECT count(*) FROM runs WHERE page = 2 AND got <> '') >= 15 AND
          (SELECT count(*) FROM runs WHERE page = 2) = (SELECT count(*) FROM runs WHERE page = 1 AND got ~ '(, .*){19}'),
          'second pages by cursor wherever a first page was full');

-- What it read when every match is scored from the posting lists (a limit
-- that lets research's matches be scored): the word in nearly every
-- listing is left to the rows.
SET LOCAL agentmarket.search_exhaustive_limit = 5000;
SELECT count(*) FROM agentmarket.search_agents('agent quorb', 'research');
SELECT is((SELECT path FROM agentmarket_private.search_direct_last()), 'score every match, posting lists',
          'every match of research scored from the posting lists');
SELECT is((SELECT checked FROM agentmarket_private.search_direct_last()),
          (SELECT count(*) FROM agentmarket.agents WHERE status = 'published' AND category = 'research'
              AND search_document @@ 'quorbcast'::tsquery),
          'read: the listings of research with quorbcast (agent''s list not read)');
SELECT ok((SELECT checked > matches FROM agentmarket_private.search_direct_last()),
          'and those without agent are dropped on the row');
SELECT is((SELECT count(*) FROM runs WHERE got ~ ('(^|, )(' || (SELECT string_agg(id::text, '|') FROM agentmarket.agents
             WHERE slug LIKE 'sp-draft-%') || ') ')),
          0::bigint, 'drafts and archived listings never show');
SELECT * FROM finish();
ROLLBACK;
