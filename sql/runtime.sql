-- runtime: what an instance's machine is told.  model_preference is one of
-- the agent's supported_models; the environment holds the instance id, agent
-- version, model and active relays; the active relays' tokens are app
-- secrets (in no job row); every change enqueues one fly.update_runtime job
-- whose request the sidecar gets at claim time; provisioning carries both.
-- (test/suites/sidecar_runtime shows them reaching the Fly stand-in.)
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(31);

SELECT agentmarket.configure('free_trial_credits', '0');
INSERT INTO users (id, email, role) VALUES
  ('74000000-0000-4000-8000-00000000c001', 'creator@rt.example', 'creator'),
  ('74000000-0000-4000-8000-00000000e001', 'owner@rt.example', 'user'),
  ('74000000-0000-4000-8000-00000000e002', 'other@rt.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, github_repo_url,
                    docker_image, supported_relays, supported_models) VALUES
  ('74000000-0000-4000-8000-0000000000a1', '74000000-0000-4000-8000-00000000c001', 'rt-agent', 'RT', 't', 'd',
   'research', 'published', 'https://x/rt', 'img:1', '{telegram,slack}', '{claude,gpt}'),
  ('74000000-0000-4000-8000-0000000000a2', '74000000-0000-4000-8000-00000000c001', 'rt-plain', 'Plain', 't', 'd',
   'research', 'published', 'https://x/plain', 'img:2', '{}', '{}');
INSERT INTO agent_versions (id, agent_id, version, status, is_current, published_at) VALUES
  ('74000000-0000-4000-8000-0000000000b1', '74000000-0000-4000-8000-0000000000a1', '2.0.0', 'published', true, now());
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status, agent_version_id) VALUES
  ('74000000-0000-4000-8000-0000000000d1', '74000000-0000-4000-8000-00000000e001', '74000000-0000-4000-8000-0000000000a1',
   'am-rt1', 'mrt1', 'running', '74000000-0000-4000-8000-0000000000b1'),
  ('74000000-0000-4000-8000-0000000000d2', '74000000-0000-4000-8000-00000000e001', '74000000-0000-4000-8000-0000000000a2',
   'am-rt2', 'mrt2', 'running', NULL),
  ('74000000-0000-4000-8000-0000000000d3', '74000000-0000-4000-8000-00000000e002', '74000000-0000-4000-8000-0000000000a1',
   'am-rt3', 'mrt3', 'running', NULL);

CREATE FUNCTION pg_temp.updates(i uuid) RETURNS int LANGUAGE sql AS $$
    SELECT count(*)::int FROM agentmarket_private.jobs WHERE serial_key = i::text AND kind = 'fly.update_runtime'
$$;
CREATE TEMP TABLE got (name text PRIMARY KEY, v text);
GRANT ALL ON got TO PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

-- The environment of a fresh instance.
SELECT is(agentmarket_private.runtime_env('74000000-0000-4000-8000-0000000000d1'),
    '{"AGENTMARKET_INSTANCE_ID": "74000000-0000-4000-8000-0000000000d1", "AGENTMARKET_AGENT_VERSION": "2.0.0",
      "AGENTMARKET_MODEL": "claude", "AGENTMARKET_RELAYS": ""}'::jsonb,
    'the environment: instance id, its version, the agent''s first model, no relays');
SELECT is(agentmarket_private.runtime_env('74000000-0000-4000-8000-0000000000d2') ->> 'AGENTMARKET_MODEL', '',
    'an agent without models: an empty model (its default)');
SELECT is(agentmarket_private.runtime_secrets('74000000-0000-4000-8000-0000000000d1'), '{}'::jsonb, 'no secrets without relays');

-- model_preference.
SELECT pg_temp.act('authenticated', '74000000-0000-4000-8000-00000000e001');
SELECT is((set_model_preference('74000000-0000-4000-8000-0000000000d1', 'gpt')).model_preference, 'gpt',
    'the owner picks one of the agent''s models');
SELECT throws_ok($$SELECT set_model_preference('74000000-0000-4000-8000-0000000000d1', 'llama')$$, '22023',
    'agent "rt-agent" does not support model "llama"', 'a model the agent does not list is refused');
SELECT throws_ok($$UPDATE agent_instances SET model_preference = 'llama' WHERE id = '74000000-0000-4000-8000-0000000000d1'$$,
    '22023', NULL, '... through PostgREST too');
SELECT throws_ok($$SELECT set_model_preference('74000000-0000-4000-8000-0000000000d2', 'claude')$$, '22023', NULL,
    'an agent without models takes no preference');
SELECT is((set_model_preference('74000000-0000-4000-8000-0000000000d1', NULL)).model_preference, NULL,
    'NULL goes back to the agent''s default');
SELECT throws_ok($$SELECT set_model_preference('74000000-0000-4000-8000-0000000000d3', 'gpt')$$, 'P0002', NULL,
    'another user''s instance is not found');
SELECT throws_ok($$SELECT instance_runtime('74000000-0000-4000-8000-0000000000d3')$$, 'P0002', NULL,
    'another user cannot read another instance''s runtime configuration');
SELECT pg_temp.act('anon');
SELECT throws_ok($$SELECT set_model_preference('74000000-0000-4000-8000-0000000000d1', 'gpt')$$, '42501', NULL,
    'anon cannot set a model');
RESET role;
SELECT is(pg_temp.updates('74000000-0000-4000-8000-0000000000d1'), 1,
    'two changes before the sidecar ran: one queued runtime update');
SELECT is((SELECT payload FROM agentmarket_private.jobs WHERE serial_key = '74000000-0000-4000-8000-0000000000d1'),
    '{"instance_id": "74000000-0000-4000-8000-0000000000d1"}'::jsonb, 'the job carries the instance id only');

-- A connected relay: its settings in the environment, its token a secret.
SELECT pg_temp.act('authenticated', '74000000-0000-4000-8000-00000000e001');
INSERT INTO got SELECT 'code', code FROM connect_relay('74000000-0000-4000-8000-0000000000d1', 'slack',
    '{"team_id": "T42", "bot_token": "xoxb-RUNTIME-SECRET"}');
RESET role;
SELECT is(pg_temp.updates('74000000-0000-4000-8000-0000000000d1'), 1, 'a pending relay changes nothing on the machine');
SELECT pg_temp.act('service_role');
SELECT is((SELECT status FROM confirm_relay('slack', 'U77', 'C77', (SELECT v FROM got WHERE name = 'code'))), 'active', 'confirmed');
RESET role;
SELECT is(agentmarket_private.runtime_env('74000000-0000-4000-8000-0000000000d1') - 'AGENTMARKET_INSTANCE_ID',
    '{"AGENTMARKET_AGENT_VERSION": "2.0.0", "AGENTMARKET_MODEL": "claude", "AGENTMARKET_RELAYS": "slack",
      "AGENTMARKET_RELAY_SLACK_TEAM_ID": "T42"}'::jsonb, 'the environment names the relay and its settings');
SELECT is(agentmarket_private.runtime_secrets('74000000-0000-4000-8000-0000000000d1'),
    '{"AGENTMARKET_RELAY_SLACK_BOT_TOKEN": "xoxb-RUNTIME-SECRET"}'::jsonb, 'the token is an app secret');
SELECT pg_temp.act('authenticated', '74000000-0000-4000-8000-00000000e001');
SELECT is((SELECT secret_names FROM instance_runtime('74000000-0000-4000-8000-0000000000d1')),
    ARRAY['AGENTMARKET_RELAY_SLACK_BOT_TOKEN'], 'the owner sees the names of the secrets, not their values');
RESET role;

-- The claim: the sidecar gets everything; no row keeps the token.
SELECT is((SELECT count(*)::int FROM agentmarket_private.claim_jobs('rt-worker', 10, '1 minute')
            WHERE kind = 'fly.update_runtime'
              AND request->'secrets' = '{"AGENTMARKET_RELAY_SLACK_BOT_TOKEN": "xoxb-RUNTIME-SECRET"}'::jsonb
              AND request->'env'->>'AGENTMARKET_RELAYS' = 'slack'
              AND request->>'machine_id' = 'mrt1' AND request->>'app_name' = 'am-rt1'
              AND request->>'digest' ~ '^[0-9a-f]{64}$' AND request->>'refuse' IS NULL), 1,
    'the claimed update carries app, machine, environment, secrets and their digest');
SELECT is((SELECT count(*)::int FROM agentmarket_private.jobs j WHERE strpos(j::text, 'RUNTIME-SECRET') > 0), 0,
    'no job row holds the token');
SELECT ok(agentmarket_private.finish_job((SELECT id FROM agentmarket_private.jobs WHERE kind = 'fly.update_runtime'),
                                         '{"state": "updated"}', 'rt-worker'), 'the sidecar reports it');
SELECT isnt((SELECT digest FROM instance_runtime('74000000-0000-4000-8000-0000000000d1')),
    agentmarket_private.runtime_digest('74000000-0000-4000-8000-0000000000d1',
        agentmarket_private.runtime_env('74000000-0000-4000-8000-0000000000d1'), '{}'), 'the digest covers the secrets');

-- Disconnecting enqueues again; destroyed instances get nothing.
SELECT pg_temp.act('authenticated', '74000000-0000-4000-8000-00000000e001');
SELECT is((SELECT status FROM disconnect_relay((SELECT id FROM relay_connections WHERE relay = 'slack'))), 'disconnected', 'disconnected');
RESET role;
SELECT is(pg_temp.updates('74000000-0000-4000-8000-0000000000d1'), 2, 'disconnecting enqueues a runtime update');
SELECT is(agentmarket_private.runtime_secrets('74000000-0000-4000-8000-0000000000d1'), '{}'::jsonb, '... without the token');
UPDATE agent_instances SET status = 'destroyed' WHERE id = '74000000-0000-4000-8000-0000000000d2';
SELECT is(agentmarket_private.request_runtime_update('74000000-0000-4000-8000-0000000000d2'), NULL::bigint,
    'a destroyed instance gets no update');

-- Provisioning carries the environment and the secrets.
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status, model_preference) VALUES
  ('74000000-0000-4000-8000-0000000000d4', '74000000-0000-4000-8000-00000000e002', '74000000-0000-4000-8000-0000000000a2',
   'am-rt4', '', 'provisioning', NULL);
SELECT throws_ok($$INSERT INTO agent_instances (user_id, agent_id, fly_app_name, fly_machine_id, model_preference)
                   VALUES ('74000000-0000-4000-8000-00000000c001', '74000000-0000-4000-8000-0000000000a1', 'am-x', '', 'llama')$$,
    '22023', NULL, 'an instance cannot be created with a model its agent lacks');
SELECT is(agentmarket_private.enqueue_instance_job('74000000-0000-4000-8000-0000000000d4', 'fly.provision_instance') > 0, true, 'provision job');
SELECT is((SELECT (request->'machine'->'config'->'env'->>'AGENTMARKET_INSTANCE_ID') || ' ' || (request->'secrets')::text
             FROM agentmarket_private.claim_jobs('rt-worker', 10, '1 minute') WHERE kind = 'fly.provision_instance'),
    '74000000-0000-4000-8000-0000000000d4 {}', 'the provisioning request has the machine''s environment and the app''s secrets');
SELECT is((SELECT count(*)::int FROM agentmarket_private.job_kinds WHERE kind = 'fly.update_runtime' AND instance_status IS NULL), 1,
    'fly.update_runtime changes no instance status');
-- A queued update does not hide a pending suspend from the owner's controls.
SELECT agentmarket_private.enqueue_instance_job('74000000-0000-4000-8000-0000000000d3', 'fly.suspend_machine') > 0 AS suspending;
SELECT agentmarket_private.request_runtime_update('74000000-0000-4000-8000-0000000000d3') > 0 AS updating;
SELECT pg_temp.act('authenticated', '74000000-0000-4000-8000-00000000e002');
SELECT lives_ok($$SELECT resume_instance('74000000-0000-4000-8000-0000000000d3')$$,
    'an instance being suspended can be resumed though a runtime update is queued after the suspend');
RESET role;

SELECT * FROM finish();
ROLLBACK;
