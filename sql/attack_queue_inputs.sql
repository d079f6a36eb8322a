-- attack_queue_inputs: what reaches the outbox is checked where it is
-- written, and one bad job never stalls the others.
--   * Provider ids from Fly or Stripe answers (machine, volume, app,
--     customer, account ids) are plain ids before they are stored: an answer
--     such as "../../am-otherapp" is refused and nothing changes.
--   * Machine size and memory are sizes the platform knows.
--   * A job whose request cannot be built (a payload or a row that makes no
--     sense) is handed out as refused, with the reason, and dies alone; every
--     other job of the claim goes ahead.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(21);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('00000000-0000-4000-8000-0000a77ec0c1', 'ada@inputs.test', 'creator'),
  ('00000000-0000-4000-8000-0000a77ec0e1', 'linus@inputs.test', 'user');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category, github_repo_url,
                                docker_image, fly_machine_size, fly_machine_memory_mb, status, published_at)
VALUES ('00000000-0000-4000-8000-0000a77ea0a1', '00000000-0000-4000-8000-0000a77ec0c1', 'inputs-agent',
        'Inputs', 'i', 'i', 'research', 'https://github.com/ada/inputs', 'registry.fly.io/inputs:1',
        'shared-cpu-2x', 1024, 'published', now());
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('00000000-0000-4000-8000-0000a77e1001', '00000000-0000-4000-8000-0000a77ec0e1', '00000000-0000-4000-8000-0000a77ea0a1',
   agentmarket_private.fly_app_name('00000000-0000-4000-8000-0000a77e1001'), '', 'provisioning');

-- Provider ids ---------------------------------------------------------------
SELECT agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-0000a77e1001', 'fly.provision_instance') AS provision_job \gset
SELECT count(*) AS claimed FROM agentmarket_private.claim_jobs('inputs-worker', 10, '5 minutes') \gset
SELECT throws_ok(format($$SELECT agentmarket_private.finish_job(%s, '{"machine_id": "../../am-otherapp"}', 'inputs-worker')$$, :provision_job),
                 '22023', NULL, 'a machine id with a path in it is refused');
SELECT throws_ok(format($$SELECT agentmarket_private.finish_job(%s, '{"machine_id": "e784079b449483", "volume_id": "vol_1/../../x"}', 'inputs-worker')$$, :provision_job),
                 '23514', NULL, 'a volume id with a path in it is refused');
SELECT is((SELECT fly_machine_id || '|' || coalesce(fly_volume_id, '') || '|' || status FROM agentmarket.agent_instances
            WHERE id = '00000000-0000-4000-8000-0000a77e1001'), '||provisioning',
          'the refused answers changed nothing');
SELECT ok(agentmarket_private.finish_job(:provision_job, '{"machine_id": "e784079b449483", "volume_id": "vol_0123456789abcdef"}', 'inputs-worker'),
          'plain ids are applied');
SELECT is((SELECT fly_machine_id || '|' || fly_volume_id || '|' || status FROM agentmarket.agent_instances
            WHERE id = '00000000-0000-4000-8000-0000a77e1001'), 'e784079b449483|vol_0123456789abcdef|running',
          'the instance runs with them');

SET LOCAL ROLE service_role;
SELECT throws_ok($$UPDATE agentmarket.agent_instances SET fly_machine_id = '../am-otherapp'
                   WHERE id = '00000000-0000-4000-8000-0000a77e1001'$$, '23514', NULL,
                 'not even service_role stores a machine id that is a path');
SELECT throws_ok($$UPDATE agentmarket.users SET stripe_customer_id = 'cus_1/../../v1/accounts'
                   WHERE id = '00000000-0000-4000-8000-0000a77ec0e1'$$, '23514', NULL,
                 'nor a Stripe customer id');
SELECT throws_ok($$UPDATE agentmarket.users SET stripe_connect_account_id = 'acct_1?x=y'
                   WHERE id = '00000000-0000-4000-8000-0000a77ec0c1'$$, '23514', NULL,
                 'nor a Connect account id');
RESET ROLE;

SELECT agentmarket_private.enqueue_stripe_job('stripe.create_customer', '{"email": "linus@inputs.test"}',
    'customer:inputs', '{"user_id": "00000000-0000-4000-8000-0000a77ec0e1"}') AS customer_job \gset
SELECT count(*) AS claimed FROM agentmarket_private.claim_jobs('inputs-worker', 10, '5 minutes') \gset
SELECT throws_ok(format($$SELECT agentmarket_private.finish_job(%s, '{"id": "cus_../../evil"}', 'inputs-worker')$$, :customer_job),
                 '23514', NULL, 'a Stripe answer whose customer id is a path is refused');
SELECT is((SELECT stripe_customer_id FROM agentmarket.users WHERE id = '00000000-0000-4000-8000-0000a77ec0e1'), NULL,
          'and the user keeps no customer id');

-- Machine sizes --------------------------------------------------------------
CREATE FUNCTION pg_temp.as_creator(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM set_config('request.jwt.claims',
            '{"sub":"00000000-0000-4000-8000-0000a77ec0c1","role":"authenticated"}', true);
        PERFORM set_config('role', 'authenticated', true);
        EXECUTE stmt;
        RAISE EXCEPTION USING ERRCODE = 'ZZ000', MESSAGE = 'done';
    EXCEPTION
        WHEN SQLSTATE 'ZZ000' THEN RETURN SQLERRM;
        WHEN OTHERS THEN RETURN 'error:' || SQLSTATE;
    END;
END
$$;
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agents SET fly_machine_size = 'shared-cpu-99999999999x'
                                WHERE id = '00000000-0000-4000-8000-0000a77ea0a1'$$),
          'error:22023', 'an unknown machine size is refused (it would overflow the Fly request''s cpus)');
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agents SET fly_machine_memory_mb = 2147483647
                                WHERE id = '00000000-0000-4000-8000-0000a77ea0a1'$$),
          'error:22023', 'memory beyond what the size allows is refused');
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agents SET fly_machine_memory_mb = 1000
                                WHERE id = '00000000-0000-4000-8000-0000a77ea0a1'$$),
          'error:22023', 'memory that is not a multiple of 256 MB is refused');
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agents SET fly_machine_size = 'performance-2x', fly_machine_memory_mb = 4096
                                WHERE id = '00000000-0000-4000-8000-0000a77ea0a1'$$),
          'done', 'a known size with a memory it allows is accepted');
SELECT is(pg_temp.as_creator($$INSERT INTO agentmarket.agents (creator_id, slug, name, tagline, description, category,
                                  github_repo_url, fly_machine_size) VALUES ('00000000-0000-4000-8000-0000a77ec0c1',
                                  'inputs-huge', 'Huge', 'h', 'h', 'research', 'https://github.com/ada/huge', 'gpu-a100-8x')$$),
          'error:22023', 'a new listing with an unknown size is refused');

-- One bad job never stalls the queue ----------------------------------------
-- Rows written before these checks existed (or by hand): an instance job
-- whose instance id is not a uuid, and an agent whose size overflows.
INSERT INTO agentmarket_private.jobs (kind, payload, max_attempts, serial_key, idempotency_key)
VALUES ('fly.start_machine', '{"instance_id": "not-a-uuid"}', 10, 'not-a-uuid', 'inputs-broken');
ALTER TABLE agentmarket.agents DISABLE TRIGGER agents_check_machine;
UPDATE agentmarket.agents SET fly_machine_size = 'shared-cpu-99999999999x' WHERE id = '00000000-0000-4000-8000-0000a77ea0a1';
ALTER TABLE agentmarket.agents ENABLE TRIGGER agents_check_machine;
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('00000000-0000-4000-8000-0000a77e1002', '00000000-0000-4000-8000-0000a77ec0c1', '00000000-0000-4000-8000-0000a77ea0a1',
   agentmarket_private.fly_app_name('00000000-0000-4000-8000-0000a77e1002'), '', 'provisioning');
SELECT agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-0000a77e1002', 'fly.provision_instance') AS huge_job \gset
SELECT agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-0000a77e1001', 'fly.suspend_machine') AS good_job \gset
CREATE TEMP TABLE claim AS SELECT * FROM agentmarket_private.claim_jobs('inputs-worker', 10, '5 minutes');
SELECT is((SELECT count(*) FROM claim), 3::bigint, 'the claim returns the bad jobs and the good one alike');
SELECT ok((SELECT request ->> 'refuse' FROM claim WHERE kind = 'fly.start_machine') LIKE 'the request cannot be built%',
          'the job with a broken payload is refused, with the reason');
SELECT ok((SELECT request ->> 'refuse' FROM claim WHERE job_id = :huge_job) LIKE 'the request cannot be built%',
          'the job whose agent has an absurd machine size is refused, with the reason');
SELECT is((SELECT request ->> 'machine_id' FROM claim WHERE job_id = :good_job), 'e784079b449483',
          'the good job is claimed as usual');
SELECT is(agentmarket_private.fail_job(:huge_job, (SELECT request ->> 'refuse' FROM claim WHERE job_id = :huge_job),
                                       NULL, true, 'inputs-worker'), 'dead',
          'failed as the sidecar fails a refused job: dead at once');
SELECT throws_ok($$SELECT agentmarket_private.enqueue_job('fly.start_machine', '{"instance_id": "../x"}')$$,
                 '22023', NULL, 'such a payload is refused when it is written, too');

SELECT * FROM finish();
ROLLBACK;
