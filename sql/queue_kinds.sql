-- queue_kinds: a job kind's row describes its whole request.
--   * Every kind names a request function that exists, and one that does not
--     is refused when it is written (22023), like its handlers.
--   * A claim hands the sidecar the kind's flow, method, path (with {field}
--     placeholders) and wait state, merged with what the request function
--     builds; a kind added as one row is claimed that way too.
--   * A claim builds its requests one statement per request function; a job
--     whose request cannot be built is refused alone.
--   * A report applies the successes of held jobs together: each once, even
--     when an id is reported twice.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(12);

SELECT is_empty($$SELECT kind FROM agentmarket_private.job_kinds WHERE to_regprocedure(request_function) IS NULL$$,
                'every kind''s request function resolves');
SELECT throws_ok($$UPDATE agentmarket_private.job_kinds SET request_function = 'agentmarket_private.no_such(agentmarket_private.jobs)'
                   WHERE kind = 'fly.start_machine'$$, '22023', NULL, 'a request function that does not exist is refused');
SELECT throws_ok($$INSERT INTO agentmarket_private.job_kinds (kind, provider, flow, endpoint, request_function, handler, description)
                   VALUES ('fly.nowhere', 'fly', 'call', NULL, 'agentmarket_private.instance_request(agentmarket_private.jobs)',
                           'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', 'x')$$,
                 '23514', NULL, 'a call kind without an endpoint is refused');
SELECT is((SELECT string_agg(kind || '=' || flow || ':' || method || ':' || coalesce(wait_state, '-'), ' ' ORDER BY kind)
             FROM agentmarket_private.job_kinds WHERE provider = 'fly'),
          'fly.destroy_instance=destroy:DELETE:destroyed fly.provision_instance=provision:POST:started '
          'fly.start_machine=call:POST:started fly.stop_machine=call:POST:stopped fly.suspend_machine=call:POST:suspended '
          'fly.update_machine=update_config:POST:- fly.update_runtime=update_config:POST:-',
          'each Fly kind names its flow, method and the state it waits for');

-- An instance with a machine, and a kind added as one row.
INSERT INTO agentmarket.users (id, email, role) VALUES
  ('00000000-0000-4000-8000-00000000c1d1', 'creator@kinds.test', 'creator'),
  ('00000000-0000-4000-8000-00000000c1d2', 'user@kinds.test', 'user');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category, github_repo_url, docker_image, status)
VALUES ('00000000-0000-4000-8000-00000000a1d1', '00000000-0000-4000-8000-00000000c1d1', 'kinds-agent', 'Kinds',
        'k', 'An agent.', 'productivity', 'https://github.com/example/kinds', 'registry.fly.io/kinds:1', 'published');
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, region, status)
VALUES ('00000000-0000-4000-8000-00000000e1d1', '00000000-0000-4000-8000-00000000c1d2', '00000000-0000-4000-8000-00000000a1d1',
        agentmarket_private.fly_app_name('00000000-0000-4000-8000-00000000e1d1'), 'm0001', 'iad', 'running');
INSERT INTO agentmarket_private.job_kinds
    (kind, provider, flow, method, endpoint, wait_state, request_function, instance_status, serialize_on, handler, description)
VALUES ('fly.restart_machine', 'fly', 'call', 'POST', '/v1/apps/{app_name}/machines/{machine_id}/restart', 'started',
        'agentmarket_private.instance_request(agentmarket_private.jobs)', 'running', 'instance_id',
        'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)', 'Restart the machine.');
SELECT agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-00000000e1d1', 'fly.restart_machine') AS job \gset
CREATE TEMP TABLE claimed AS SELECT * FROM agentmarket_private.claim_jobs('kinds-worker', 10, '1 minute');
SELECT is((SELECT request - 'region' - 'volume_id' FROM claimed WHERE job_id = :job),
          '{"flow": "call", "path": "/v1/apps/{app_name}/machines/{machine_id}/restart", "wait": "started", "method": "POST",
            "refuse": null, "app_name": "am-0000000000004000800000000000e1d1", "machine_id": "m0001",
            "instance_id": "00000000-0000-4000-8000-00000000e1d1"}'::jsonb,
          'a kind added as one row is claimed with its flow, method, path, wait state and the instance''s ids');
SELECT is((SELECT provider FROM claimed WHERE job_id = :job), 'fly', 'the claim names the provider');
SELECT ok(agentmarket_private.finish_job(:job, '{"state": "started"}', 'kinds-worker'), 'its handler applies the answer');
SELECT is((SELECT status FROM agentmarket.agent_instances WHERE id = '00000000-0000-4000-8000-00000000e1d1'), 'running',
          'the instance has the status the row names');

-- One request that cannot be built among others of the same function.
INSERT INTO agentmarket.users (id, email) VALUES ('00000000-0000-4000-8000-00000000c1d3', 'buyer@kinds.test');
SELECT agentmarket_private.enqueue_stripe_job('stripe.create_customer', '{"email": "a@kinds.test"}', 'kinds:a',
           '{"user_id": "00000000-0000-4000-8000-00000000c1d3"}') AS good \gset
SELECT agentmarket_private.enqueue_job('fly.start_machine', '{"instance_id": "00000000-0000-4000-8000-00000000e1d9"}') AS gone \gset
UPDATE agentmarket_private.jobs SET payload = '{"instance_id": "not-a-uuid"}' WHERE id = :gone;
SELECT agentmarket_private.enqueue_job('fly.stop_machine', '{"instance_id": "00000000-0000-4000-8000-00000000e1d1"}') AS fine \gset
CREATE TEMP TABLE claimed2 AS SELECT * FROM agentmarket_private.claim_jobs('kinds-worker', 10, '1 minute');
SELECT alike((SELECT request->>'refuse' FROM claimed2 WHERE job_id = :gone), 'the request cannot be built from the job:%',
            'a job whose request cannot be built is refused, with the reason');
SELECT is((SELECT request->>'path' FROM claimed2 WHERE job_id = :fine), '/v1/apps/{app_name}/machines/{machine_id}/stop',
          '... while the other jobs of its request function are built');

-- The same success reported twice in one batch is applied once.
SELECT is((SELECT array_agg(outcome ORDER BY outcome) FROM agentmarket_private.report_jobs('kinds-worker', jsonb_build_array(
            jsonb_build_object('id', :good, 'ok', true, 'result', '{"id": "cus_Kinds1"}'::jsonb),
            jsonb_build_object('id', :good, 'ok', true, 'result', '{"id": "cus_Kinds2"}'::jsonb)))),
          '{lease_lost,succeeded}', 'a success reported twice in one batch counts once');
SELECT is((SELECT stripe_customer_id FROM agentmarket.users WHERE id = '00000000-0000-4000-8000-00000000c1d3'), 'cus_Kinds1',
          '... and its handler ran once, with the first result');
SELECT * FROM finish();
ROLLBACK;
