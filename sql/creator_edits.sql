-- creator_edits: a creator edits their own listing exactly as PostgREST sends
-- a PATCH (one transaction: set_config('role'), set_config('request.jwt.claims'),
-- UPDATE ... WHERE id = ... RETURNING), and each request runs in a fresh
-- transaction, so nothing a superuser ran earlier in the same transaction
-- (a cached plan, a permission already checked) can hide a refusal.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
SELECT plan(9);

-- The fixture is committed: every request below is its own transaction.
SELECT agentmarket.configure('free_trial_credits', '0') IS NULL AS no_free_trial;
INSERT INTO agentmarket.users (id, email, display_name, role) VALUES
  ('00000000-0000-4000-8000-0000ed170c01', 'ada@edits.test', 'Ada', 'creator'),
  ('00000000-0000-4000-8000-0000ed170c02', 'bob@edits.test', 'Bob', 'creator');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category,
                                credits_per_session, github_repo_url, status, published_at) VALUES
  ('00000000-0000-4000-8000-0000ed17a001', '00000000-0000-4000-8000-0000ed170c01', 'edits-inbox',
   'Inbox quokka', 'Sorts mail', 'Sorts your mail.', 'productivity', 10,
   'https://github.com/ada/inbox', 'published', now());

-- PATCH /agents?id=eq.… {"tagline": …, "tags": …, …} as the creator.
BEGIN;
SELECT set_config('role', 'authenticated', true) IS NOT NULL AS role_set,
       set_config('request.jwt.claims',
                  '{"sub":"00000000-0000-4000-8000-0000ed170c01","role":"authenticated"}', true) IS NOT NULL AS claims_set;
UPDATE agentmarket.agents
   SET name = 'Inbox zeppelin', tagline = 'Sorts and answers mail', description = 'Now drafts replies too.',
       icon_url = 'https://cdn.example/inbox.png', tags = '{email,zeppelin}',
       supported_relays = '{telegram,slack}', supported_models = '{claude}'
 WHERE id = '00000000-0000-4000-8000-0000ed17a001'
RETURNING slug, name, tagline, tags, supported_relays, supported_models;
COMMIT;

SELECT is((SELECT tagline FROM agentmarket.agents WHERE id = '00000000-0000-4000-8000-0000ed17a001'),
          'Sorts and answers mail', 'the creator''s PATCH of their published listing is stored');
SELECT is((SELECT count(*) FROM agentmarket.search_agents('zeppelin')
            WHERE id = '00000000-0000-4000-8000-0000ed17a001'), 1::bigint,
          'the edited words are searchable at once (the search trigger ran for the creator)');

-- POST /agents as a creator: a new draft listing.
BEGIN;
SELECT set_config('role', 'authenticated', true) IS NOT NULL AS role_set,
       set_config('request.jwt.claims',
                  '{"sub":"00000000-0000-4000-8000-0000ed170c01","role":"authenticated"}', true) IS NOT NULL AS claims_set;
INSERT INTO agentmarket.agents (creator_id, slug, name, tagline, description, category, github_repo_url)
VALUES ('00000000-0000-4000-8000-0000ed170c01', 'edits-draft',
        'Draft helper', 'Drafts', 'Drafts things.', 'writing', 'https://github.com/ada/draft')
RETURNING slug, status;
COMMIT;
SELECT is((SELECT status FROM agentmarket.agents WHERE slug = 'edits-draft'),
          'draft', 'a creator''s POST of a new listing is stored as a draft');

-- Another creator's PATCH of Ada's listing: no row.
BEGIN;
SELECT set_config('role', 'authenticated', true) IS NOT NULL AS role_set,
       set_config('request.jwt.claims',
                  '{"sub":"00000000-0000-4000-8000-0000ed170c02","role":"authenticated"}', true) IS NOT NULL AS claims_set;
UPDATE agentmarket.agents SET tagline = 'pwned' WHERE id = '00000000-0000-4000-8000-0000ed17a001' RETURNING id;
COMMIT;
SELECT is((SELECT tagline FROM agentmarket.agents WHERE id = '00000000-0000-4000-8000-0000ed17a001'),
          'Sorts and answers mail', 'another creator''s PATCH changes nothing');

-- anon cannot PATCH at all.
BEGIN;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set;
UPDATE agentmarket.agents SET tagline = 'pwned' WHERE id = '00000000-0000-4000-8000-0000ed17a001' RETURNING id;
ROLLBACK;

-- The creator cannot set what the platform computes, even in a PATCH that
-- also carries allowed columns.
BEGIN;
SELECT set_config('role', 'authenticated', true) IS NOT NULL AS role_set,
       set_config('request.jwt.claims',
                  '{"sub":"00000000-0000-4000-8000-0000ed170c01","role":"authenticated"}', true) IS NOT NULL AS claims_set;
UPDATE agentmarket.agents SET tagline = 'x', search_static = 1e9 WHERE id = '00000000-0000-4000-8000-0000ed17a001' RETURNING id;
ROLLBACK;
SELECT cmp_ok((SELECT search_static FROM agentmarket.agents WHERE id = '00000000-0000-4000-8000-0000ed17a001'),
              '<', 1::double precision, 'the static search score is not the creator''s to set');

-- Deleting one's own draft works as PostgREST sends it.
BEGIN;
SELECT set_config('role', 'authenticated', true) IS NOT NULL AS role_set,
       set_config('request.jwt.claims',
                  '{"sub":"00000000-0000-4000-8000-0000ed170c01","role":"authenticated"}', true) IS NOT NULL AS claims_set;
DELETE FROM agentmarket.agents WHERE slug = 'edits-draft' RETURNING slug;
COMMIT;
SELECT is((SELECT count(*) FROM agentmarket.agents WHERE slug = 'edits-draft'),
          0::bigint, 'a creator deletes their own draft');

-- The search vocabulary followed the edit (the definer statement trigger).
SELECT ok(EXISTS (SELECT FROM agentmarket_private.search_vocabulary WHERE lexeme = 'zeppelin' AND ndoc > 0),
          'the vocabulary counts the edited word');
SELECT ok(NOT EXISTS (SELECT FROM agentmarket_private.search_vocabulary WHERE lexeme = 'quokka' AND ndoc > 0),
          'the old name''s word left the vocabulary');
SELECT is((SELECT count(*) FROM agentmarket.search_agents('quokka')
            WHERE id = '00000000-0000-4000-8000-0000ed17a001'), 0::bigint,
          'the old name no longer finds the listing');

SELECT * FROM finish();

-- Leave nothing behind for the suites that follow.
DELETE FROM agentmarket.agents WHERE creator_id IN ('00000000-0000-4000-8000-0000ed170c01', '00000000-0000-4000-8000-0000ed170c02');
DELETE FROM agentmarket.users WHERE id IN ('00000000-0000-4000-8000-0000ed170c01', '00000000-0000-4000-8000-0000ed170c02');
SELECT agentmarket.configure('free_trial_credits', NULL) IS NULL AS default_again;
