-- search_bounds: the scoring constants have one source (search.c, read in SQL
-- through search_scoring()), and the bounds search_prepare and search_tiers
-- compute from them, where search_agents stops walking, are never below a
-- score the scorer gives: for every match of many queries (exact words,
-- typos, prefixes, several words, or, not), its text score is at most the
-- plan's bound and at most the bound of the one tier it falls in.
\ir test/fixture.sql
BEGIN;
SELECT plan(9);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('77777777-0000-4000-8000-000000000001', 'maker@sb.test', 'creator');

-- The constants, as the scorer applies them: one listing per field.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url)
VALUES ('b-name', '77777777-0000-4000-8000-000000000001', 'Quokka', 'Plain', 'Nothing.', 'personal', 'published', 'https://g/b1'),
       ('b-head', '77777777-0000-4000-8000-000000000001', 'Alpha', 'Quokka friend', 'Nothing.', 'personal', 'published', 'https://g/b2'),
       ('b-body', '77777777-0000-4000-8000-000000000001', 'Beta', 'Plain', 'A quokka inside.', 'personal', 'published', 'https://g/b3');
CREATE FUNCTION pg_temp.text_score(p_query text, p_slug text) RETURNS double precision LANGUAGE sql AS $$
    SELECT agentmarket_private.search_text_score(a.search_document, (p.p).lexemes, (p.p).groups, (p.p).factors,
                                                 (p.p).prefixes, (p.p).ngroups)
      FROM agentmarket.agents a, (SELECT agentmarket_private.search_prepare(p_query) AS p OFFSET 0) p
     WHERE a.slug = p_slug
$$;
SELECT is(ARRAY[pg_temp.text_score('quokka', 'b-name'), pg_temp.text_score('quokka', 'b-head'),
                pg_temp.text_score('quokka', 'b-body')],
          (SELECT ARRAY[s.name_weight, s.head_weight, s.body_weight] FROM agentmarket_private.search_scoring() s),
          'an exact word scores the field weights search_scoring() reports (name, tagline or tags, description)');
SELECT is(pg_temp.text_score('quokka', 'b-name'), 1.0::float8, 'an exact word in the name scores 1');
SELECT is(pg_temp.text_score('quokak', 'b-name'),
          (SELECT s.typo_factor * s.name_weight FROM agentmarket_private.search_scoring() s),
          'a typo scores the typo factor');
SELECT is(pg_temp.text_score('quokk', 'b-head'),
          (SELECT s.completion_factor * s.head_weight FROM agentmarket_private.search_scoring() s),
          'a completion of the last word scores the completion factor');
SELECT is((SELECT agentmarket_private.search_blend(0.4, 0.8)),
          (SELECT round((s.text_share * 0.4 + (1 - s.text_share) * 0.8)::numeric, 9)::float8
             FROM agentmarket_private.search_scoring() s),
          'the blend takes the text share search_scoring() reports');

-- A corpus where words occur in every field, with typos and completions.
SELECT setseed(0.23);
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                credits_per_session, github_repo_url, tags, total_hires, avg_rating, total_reviews)
SELECT 'sb-' || i, '77777777-0000-4000-8000-000000000001', w[1] || ' ' || w[2], w[3] || ' ' || w[4],
       'This agent handles ' || w[5] || ' ' || w[6] || ' ' || w[7] || '.', 'coding', 'published', 'per_session', 10,
       'https://g/sb' || i, ARRAY[w[8]], i % 300, 1 + (i % 40) / 10.0, i % 30
  FROM generate_series(1, 600) i,
       LATERAL (SELECT array_agg((ARRAY['invoice','invoicing','budget','budgets','podcast','studio','github','deploy',
                                        'deployer','recipe','garden','gardening','travel','traveller','mortgage'])
                                 [1 + floor(random() * 15 + 0 * j + 0 * i)::int]) AS w
                  FROM generate_series(1, 8) j) x;

CREATE TEMP TABLE bound_queries (q text);
INSERT INTO bound_queries VALUES ('invoice'), ('invoise'), ('inv'), ('budget studio'), ('podcsat studio'),
  ('github dep'), ('garden travel recipe'), ('mortgage or recipe'), ('deploy -garden'), ('"invoice budget"'),
  ('gardening travller'), ('agent budg'), ('recipe invoice deploy podcast'), ('stud'),
  ('garden travel recipe fitness'), ('travel recipe garden or fitness'), ('garden travel recipe fitn');

-- Every match's text score against the plan's bound: the mean over words of
-- the best value a word's terms can have in any field.
SELECT is((SELECT array_agg(DISTINCT b.q ORDER BY b.q)
             FROM bound_queries b,
                  LATERAL (SELECT agentmarket_private.search_prepare(b.q) AS p OFFSET 0) pp,
                  agentmarket.agents a
            WHERE a.status = 'published' AND a.search_document @@ (pp.p).query
              AND agentmarket_private.search_text_score(a.search_document, (pp.p).lexemes, (pp.p).groups,
                      (pp.p).factors, (pp.p).prefixes, (pp.p).ngroups)
                  > agentmarket_private.search_text_bound(ARRAY(
                      SELECT greatest(n, h, d) FROM unnest((pp.p).group_name_bound, (pp.p).group_head_bound,
                                                           (pp.p).group_body_bound) g(n, h, d)))),
          NULL, 'no match scores above the plan''s bound');

-- Each tier's bound against the matches in it (its condition on search_fields).
CREATE FUNCTION pg_temp.tier_check(p_query text, OUT above bigint, OUT in_tiers bigint, OUT matches bigint)
LANGUAGE plpgsql AS $$
DECLARE
    p agentmarket_private.search_plan := agentmarket_private.search_prepare(p_query);
    t record;
    n bigint;
    a bigint;
BEGIN
    above := 0; in_tiers := 0;
    SELECT count(*) INTO matches FROM agentmarket.agents x
     WHERE x.status = 'published' AND x.search_document @@ p.query AND p.ngroups >= 1;
    FOR t IN SELECT * FROM agentmarket_private.search_tiers(p) WHERE p.ngroups >= 1 LOOP
        EXECUTE format($q$SELECT count(*), count(*) FILTER (WHERE agentmarket_private.search_text_score(
                              a.search_document, $2, $3, $4, $5, $6) > $7)
                            FROM agentmarket.agents a
                           WHERE a.status = 'published' AND a.search_document @@ $1 AND %s$q$, t.condition)
        INTO n, a USING p.query, p.lexemes, p.groups, p.factors, p.prefixes, p.ngroups, t.bound;
        in_tiers := in_tiers + n; above := above + a;
    END LOOP;
END
$$;
SELECT is((SELECT array_agg(b.q ORDER BY b.q) FROM bound_queries b, pg_temp.tier_check(b.q) c
            WHERE c.above > 0),
          NULL, 'no match scores above the bound of its tier');
SELECT is((SELECT array_agg(b.q ORDER BY b.q) FROM bound_queries b, pg_temp.tier_check(b.q) c
            WHERE c.in_tiers <> c.matches),
          NULL, 'the tiers hold every match exactly once');
SELECT ok((SELECT count(*) FROM bound_queries b, pg_temp.tier_check(b.q) c WHERE c.matches > 0) >= 10,
          'and most queries have matches to check');

SELECT * FROM finish();
ROLLBACK;
