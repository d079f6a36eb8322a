-- data_model_additions: the five tables the seed names without DDL behave as a
-- production marketplace needs: keys, checks, uniqueness, cascades, and the
-- SSH private key kept out of client-visible tables.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(45);

INSERT INTO users (id, email, role) VALUES
  ('10000000-0000-4000-8000-000000000001', 'creator@nt.example', 'creator'),
  ('10000000-0000-4000-8000-000000000002', 'user@nt.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, github_repo_url)
VALUES ('10000000-0000-4000-8000-0000000000a1', '10000000-0000-4000-8000-000000000001',
        'nt-agent', 'NT', 'tag', 'desc', 'research', 'https://github.com/x/y');
INSERT INTO projects (id, user_id, name) VALUES
  ('10000000-0000-4000-8000-0000000000b1', '10000000-0000-4000-8000-000000000002', 'p');
INSERT INTO teams (id, project_id, name) VALUES
  ('10000000-0000-4000-8000-0000000000c1', '10000000-0000-4000-8000-0000000000b1', 't');
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id) VALUES
  ('10000000-0000-4000-8000-0000000000d1', '10000000-0000-4000-8000-000000000002',
   '10000000-0000-4000-8000-0000000000a1', 'am-x', '');

-- agent_versions
SELECT has_table('agentmarket', 'agent_versions', 'agent_versions exists');
SELECT columns_are('agentmarket', 'agent_versions', ARRAY['id', 'agent_id', 'version', 'git_ref', 'git_commit',
    'docker_image', 'openclaw_version', 'changelog', 'status', 'is_current', 'created_at', 'published_at'],
    'agent_versions has semver, git ref/commit, image, OpenClaw pin, changelog, status, current flag');
SELECT lives_ok($$INSERT INTO agent_versions (id, agent_id, version, git_commit, docker_image, openclaw_version, status, is_current)
                  VALUES ('10000000-0000-4000-8000-0000000000e1', '10000000-0000-4000-8000-0000000000a1',
                          '1.0.0', 'abcdef1', 'registry.fly.io/x:1', '2026.11.1', 'published', true)$$,
    'a published version can be current');
SELECT throws_ok($$INSERT INTO agent_versions (agent_id, version) VALUES ('10000000-0000-4000-8000-0000000000a1', '1.0.0')$$,
    '23505', NULL, 'version is unique per agent');
SELECT throws_ok($$INSERT INTO agent_versions (agent_id, version) VALUES ('10000000-0000-4000-8000-0000000000a1', 'v1')$$,
    '23514', NULL, 'version must be semver');
SELECT lives_ok($$INSERT INTO agent_versions (agent_id, version) VALUES ('10000000-0000-4000-8000-0000000000a1', '1.1.0-rc.1+build.5')$$,
    'semver with pre-release and build metadata is accepted');
SELECT throws_ok($$INSERT INTO agent_versions (agent_id, version, git_commit) VALUES ('10000000-0000-4000-8000-0000000000a1', '1.2.0', 'XYZ')$$,
    '23514', NULL, 'git_commit must be a hex hash');
SELECT throws_ok($$INSERT INTO agent_versions (agent_id, version, status) VALUES ('10000000-0000-4000-8000-0000000000a1', '1.3.0', 'live')$$,
    '23514', NULL, 'status is one of draft/published/deprecated/yanked');
SELECT throws_ok($$INSERT INTO agent_versions (agent_id, version, status, is_current) VALUES ('10000000-0000-4000-8000-0000000000a1', '1.4.0', 'draft', true)$$,
    '23514', NULL, 'a draft version cannot be current');
SELECT throws_ok($$INSERT INTO agent_versions (agent_id, version, status, is_current) VALUES ('10000000-0000-4000-8000-0000000000a1', '1.5.0', 'published', true)$$,
    '23505', NULL, 'at most one current version per agent');
SELECT is(status, 'draft', 'a new version is a draft') FROM agent_versions WHERE version = '1.1.0-rc.1+build.5';
SELECT lives_ok($$UPDATE agent_instances SET agent_version_id = '10000000-0000-4000-8000-0000000000e1'
                  WHERE id = '10000000-0000-4000-8000-0000000000d1'$$,
    'an instance records the version it runs');
SELECT throws_ok($$DELETE FROM agent_versions WHERE id = '10000000-0000-4000-8000-0000000000e1'$$,
    '23503', NULL, 'a version an instance runs cannot be deleted');

-- agent_skills
SELECT columns_are('agentmarket', 'agent_skills', ARRAY['id', 'agent_id', 'agent_version_id', 'skill_slug', 'name',
    'description', 'source', 'version', 'revision_hash', 'required_env', 'required_bins', 'created_at'],
    'agent_skills has slug, source, version, revision, required env and binaries');
SELECT lives_ok($$INSERT INTO agent_skills (agent_id, skill_slug, source, version, revision_hash, required_env, required_bins)
                  VALUES ('10000000-0000-4000-8000-0000000000a1', 'web-search', 'clawhub', '1.0.2', 'deadbeef', '{BRAVE_API_KEY}', '{curl}')$$,
    'an agent-wide skill');
SELECT throws_ok($$INSERT INTO agent_skills (agent_id, skill_slug) VALUES ('10000000-0000-4000-8000-0000000000a1', 'web-search')$$,
    '23505', NULL, 'an agent-wide skill is listed once (NULL version is not distinct)');
SELECT lives_ok($$INSERT INTO agent_skills (agent_id, agent_version_id, skill_slug)
                  VALUES ('10000000-0000-4000-8000-0000000000a1', '10000000-0000-4000-8000-0000000000e1', 'web-search')$$,
    'the same skill may be pinned per version');
SELECT throws_ok($$INSERT INTO agent_skills (agent_id, skill_slug, source) VALUES ('10000000-0000-4000-8000-0000000000a1', 'pdf', 'npm')$$,
    '23514', NULL, 'source is clawhub, bundled, workspace or git');
SELECT throws_ok($$INSERT INTO agent_skills (agent_id, skill_slug) VALUES ('10000000-0000-4000-8000-0000000000a1', 'Bad Slug!')$$,
    '23514', NULL, 'skill slugs are lower-case identifiers');
SELECT is(required_env, '{}'::text[], 'required_env defaults to empty') FROM agent_skills
 WHERE skill_slug = 'web-search' AND agent_version_id IS NOT NULL;

-- team_agents
SELECT col_is_pk('agentmarket', 'team_agents', ARRAY['team_id', 'instance_id'], 'team_agents is keyed by (team, instance)');
SELECT lives_ok($$INSERT INTO team_agents (team_id, instance_id) VALUES ('10000000-0000-4000-8000-0000000000c1', '10000000-0000-4000-8000-0000000000d1')$$,
    'an instance joins a team');
SELECT throws_ok($$INSERT INTO team_agents (team_id, instance_id) VALUES ('10000000-0000-4000-8000-0000000000c1', '10000000-0000-4000-8000-0000000000d1')$$,
    '23505', NULL, 'an instance is in a team once');
SELECT throws_ok($$INSERT INTO team_agents (team_id, instance_id) VALUES (gen_random_uuid(), '10000000-0000-4000-8000-0000000000d1')$$,
    '23503', NULL, 'the team must exist');

-- purchases
SELECT lives_ok($$INSERT INTO purchases (user_id, kind, credits, amount_cents, stripe_checkout_session_id, stripe_payment_intent_id)
                  VALUES ('10000000-0000-4000-8000-000000000002', 'topup', 1000, 999, 'cs_test_1', 'pi_1')$$,
    'a top-up purchase');
SELECT is(status || '/' || currency, 'pending/usd', 'a purchase starts pending, in usd') FROM purchases WHERE stripe_checkout_session_id = 'cs_test_1';
SELECT throws_ok($$INSERT INTO purchases (user_id, kind, credits, amount_cents, stripe_checkout_session_id)
                   VALUES ('10000000-0000-4000-8000-000000000002', 'topup', 10, 10, 'cs_test_1')$$,
    '23505', NULL, 'a Checkout session id is unique');
SELECT throws_ok($$INSERT INTO purchases (user_id, kind, credits, amount_cents, stripe_payment_intent_id)
                   VALUES ('10000000-0000-4000-8000-000000000002', 'topup', 10, 10, 'pi_1')$$,
    '23505', NULL, 'a payment intent id is unique');
SELECT lives_ok($$INSERT INTO purchases (user_id, kind, credits, amount_cents, stripe_subscription_id, stripe_invoice_id, status)
                  VALUES ('10000000-0000-4000-8000-000000000002', 'subscription', 500, 1900, 'sub_1', 'in_1', 'paid'),
                         ('10000000-0000-4000-8000-000000000002', 'subscription', 500, 1900, 'sub_1', 'in_2', 'paid')$$,
    'one subscription is paid by many invoices');
SELECT throws_ok($$INSERT INTO purchases (user_id, kind, credits, amount_cents) VALUES ('10000000-0000-4000-8000-000000000002', 'gift', 1, 1)$$,
    '23514', NULL, 'kind is topup or subscription');
SELECT throws_ok($$INSERT INTO purchases (user_id, kind, credits, amount_cents) VALUES ('10000000-0000-4000-8000-000000000002', 'topup', 0, 1)$$,
    '23514', NULL, 'a purchase buys at least one credit');
SELECT throws_ok($$INSERT INTO purchases (user_id, kind, credits, amount_cents) VALUES ('10000000-0000-4000-8000-000000000002', 'topup', 1, -1)$$,
    '23514', NULL, 'amounts are not negative');
SELECT throws_ok($$INSERT INTO purchases (user_id, kind, credits, amount_cents, currency) VALUES ('10000000-0000-4000-8000-000000000002', 'topup', 1, 1, 'USD')$$,
    '23514', NULL, 'currency is a lower-case ISO code as Stripe writes it');
SELECT throws_ok($$UPDATE purchases SET status = 'lost' WHERE stripe_checkout_session_id = 'cs_test_1'$$,
    '23514', NULL, 'status is pending, paid, refunded, failed or expired');
SELECT throws_ok($$UPDATE purchases SET refunded_cents = 1000 WHERE stripe_checkout_session_id = 'cs_test_1'$$,
    '23514', NULL, 'never more refunded than paid');
SELECT throws_ok($$DELETE FROM users WHERE id = '10000000-0000-4000-8000-000000000002'$$,
    '23503', NULL, 'a user with purchases cannot be deleted (financial record)');

-- ssh_configs and secrets
SELECT hasnt_column('agentmarket', 'ssh_configs', 'private_key', 'ssh_configs has no private key column');
SELECT is((SELECT count(*)::int FROM information_schema.columns
            WHERE table_schema = 'agentmarket' AND column_name ~ 'private_key' AND column_name !~ '_secret_id$'),
          0, 'no client-visible table has a private key column');
INSERT INTO agentmarket_private.secrets (id, name, secret, key_id)
SELECT '10000000-0000-4000-8000-0000000000f1', 'ssh/nt',
       agentmarket_private.pgp_armor(agentmarket_private.pgp_sym_encrypt('-----BEGIN OPENSSH PRIVATE KEY-----', k, '')),
       agentmarket_private.secret_key_id(k)
  FROM agentmarket_private.secret_key() k;
SELECT lives_ok($$INSERT INTO ssh_configs (instance_id, host, username, host_key_fingerprint, private_key_secret_id)
                  VALUES ('10000000-0000-4000-8000-0000000000d1', 'am-x.internal', 'agent',
                          'SHA256:' || repeat('A', 43), '10000000-0000-4000-8000-0000000000f1')$$,
    'an SSH config references its key');
SELECT is(port, 22, 'port defaults to 22') FROM ssh_configs WHERE instance_id = '10000000-0000-4000-8000-0000000000d1';
SELECT throws_ok($$UPDATE ssh_configs SET port = 70000$$, '23514', NULL, 'port is 1..65535');
SELECT throws_ok($$UPDATE ssh_configs SET host_key_fingerprint = 'md5:aa:bb'$$, '23514', NULL, 'fingerprints are SHA256:base64');
SELECT throws_ok($$UPDATE ssh_configs SET private_key_secret_id = gen_random_uuid()$$,
    '23503', NULL, 'the key must be a stored secret');
SELECT throws_ok($$INSERT INTO ssh_configs (instance_id, host, username, host_key_fingerprint, private_key_secret_id)
                   VALUES ('10000000-0000-4000-8000-0000000000d1', 'h', 'agent', 'SHA256:' || repeat('A', 43),
                           '10000000-0000-4000-8000-0000000000f1')$$,
    '23505', NULL, 'an instance has one SSH config');
DELETE FROM agent_instances WHERE id = '10000000-0000-4000-8000-0000000000d1';
SELECT ok(NOT EXISTS (SELECT FROM agentmarket_private.secrets WHERE id = '10000000-0000-4000-8000-0000000000f1'),
    'deleting an instance deletes its SSH config and the private key with it');

SELECT * FROM finish();
ROLLBACK;
