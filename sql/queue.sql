-- queue: the outbox.  Enqueue, claim with leases (serialized per instance),
-- finish through the kind's handler exactly once, fail with backoff and
-- Retry-After, dead jobs and retry, views, pruning, and the owner-facing
-- suspend/resume/destroy functions.  Concurrency is in test/specs/queue_*.
\ir test/fixture.sql
BEGIN;
SELECT plan(73);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('00000000-0000-4000-8000-0000000c00a1', 'ada@queue.test', 'creator'),
  ('00000000-0000-4000-8000-0000000e00a1', 'linus@queue.test', 'user'),
  ('00000000-0000-4000-8000-0000000e00a2', 'bob@queue.test', 'user');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category,
                                github_repo_url, docker_image, fly_machine_size, fly_machine_memory_mb)
VALUES ('00000000-0000-4000-8000-00000000a0a1', '00000000-0000-4000-8000-0000000c00a1', 'queue-agent',
        'Queue agent', 'tests the queue', 'tests the queue', 'productivity',
        'https://github.com/example/queue-agent', 'registry.fly.io/queue-agent:1', 'performance-2x', 4096),
       ('00000000-0000-4000-8000-00000000a0a2', '00000000-0000-4000-8000-0000000c00a1', 'queue-agent-2',
        'Queue agent 2', 'tests the queue', 'tests the queue', 'productivity',
        'https://github.com/example/queue-agent-2', NULL, 'shared-cpu-1x', 512);
INSERT INTO agentmarket.agent_versions (agent_id, version, docker_image, status, is_current)
VALUES ('00000000-0000-4000-8000-00000000a0a1', '1.1.0', 'registry.fly.io/queue-agent:1.1.0', 'published', true);

-- As hire_agent does: deterministic app name, no machine yet, provisioning.
CREATE TEMP TABLE t (name text PRIMARY KEY, id bigint);
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, region)
SELECT x.id, x.user_id, x.agent_id, agentmarket_private.fly_app_name(x.id), '', 'ams'
  FROM (VALUES ('00000000-0000-4000-8000-0000000000b1'::uuid, '00000000-0000-4000-8000-0000000e00a1'::uuid,
                '00000000-0000-4000-8000-00000000a0a1'::uuid),
               ('00000000-0000-4000-8000-0000000000b2', '00000000-0000-4000-8000-0000000e00a2',
                '00000000-0000-4000-8000-00000000a0a2')) AS x(id, user_id, agent_id);

-- Enqueue
INSERT INTO t VALUES ('provision', agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-0000000000b1', 'fly.provision_instance'));
SELECT is((SELECT serial_key FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'provision')),
          '00000000-0000-4000-8000-0000000000b1', 'instance jobs are serialized on their instance id');
SELECT is(agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-0000000000b1', 'fly.provision_instance'),
          (SELECT id FROM t WHERE name = 'provision'), 'asking again for the instance''s last queued change returns that job');
SELECT throws_ok($$SELECT agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-0000000000b1', 'fly.reboot')$$,
                 '22023', NULL, 'an unknown instance job kind is refused');
SELECT throws_ok($$SELECT agentmarket_private.enqueue_job('mail.send', '{}')$$,
                 '22023', 'unknown job kind "mail.send"', 'jobs of unregistered kinds are refused');
SELECT throws_ok($$SELECT agentmarket_private.enqueue_job('fly.start_machine', '{}')$$,
                 '22023', NULL, 'an instance job without instance_id is refused');
SELECT throws_ok($$SELECT agentmarket_private.enqueue_stripe_job('stripe.create_customer', '{"email":"a@b.c"}', NULL)$$,
                 '22023', 'Stripe jobs need an idempotency key', 'a Stripe job must name its effect with a key');
SELECT throws_ok($$SELECT agentmarket_private.enqueue_stripe_job('fly.start_machine', '{}', 'k')$$,
                 '22023', NULL, 'enqueue_stripe_job only takes Stripe kinds');
INSERT INTO t VALUES ('customer', agentmarket_private.enqueue_stripe_job('stripe.create_customer',
    '{"email":"linus@queue.test","metadata":{"user_id":"00000000-0000-4000-8000-0000000e00a1"}}',
    'customer:00000000-0000-4000-8000-0000000e00a1', '{"user_id":"00000000-0000-4000-8000-0000000e00a1"}'));
SELECT is(agentmarket_private.enqueue_stripe_job('stripe.create_customer', '{"email":"x@y.z"}',
          'customer:00000000-0000-4000-8000-0000000e00a1'),
          (SELECT id FROM t WHERE name = 'customer'), 'the same idempotency key returns the existing job');
SELECT is((SELECT max_attempts FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'customer')),
          8, 'a job takes its attempt budget from its kind');
INSERT INTO t VALUES ('suspend_b1', agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-0000000000b1', 'fly.suspend_machine'));

-- Claim
CREATE TEMP TABLE c1 AS SELECT * FROM agentmarket_private.claim_jobs('worker-a', 10, '5 minutes');
SELECT is((SELECT count(*) FROM c1)::int, 2, 'a claim gets the due jobs, but not a second job of a busy instance');
SELECT ok(NOT EXISTS (SELECT FROM c1 WHERE job_id = (SELECT id FROM t WHERE name = 'suspend_b1')),
          'the instance''s suspend waits for its provision');
SELECT is((SELECT request->>'app_name' FROM c1 WHERE kind = 'fly.provision_instance'),
          'am-000000000000400080000000000000b1', 'provision carries the deterministic app name');
SELECT is((SELECT request#>>'{machine,config,image}' FROM c1 WHERE kind = 'fly.provision_instance'),
          'registry.fly.io/queue-agent:1.1.0', 'the image is the current version''s docker_image');
SELECT is((SELECT request#>'{machine,config,guest}' FROM c1 WHERE kind = 'fly.provision_instance'),
          '{"cpus": 2, "cpu_kind": "performance", "memory_mb": 4096}'::jsonb, 'machine size and memory come from the agent row');
SELECT is((SELECT request#>>'{machine,config,metadata,agentmarket_instance}' FROM c1 WHERE kind = 'fly.provision_instance'),
          '00000000-0000-4000-8000-0000000000b1', 'the machine is tagged with its instance id for look-ups');
SELECT is((SELECT request->'volume' FROM c1 WHERE kind = 'fly.provision_instance'),
          '{"name": "data", "region": "ams", "size_gb": 1, "encrypted": true}'::jsonb, 'a volume of the configured size is wanted, in the instance''s region');
SELECT is((SELECT request#>>'{machine,region}' FROM c1 WHERE kind = 'fly.provision_instance'), 'ams', 'the machine goes to the instance''s region');
SELECT is((SELECT request->'refuse' FROM c1 WHERE kind = 'fly.provision_instance'), 'null'::jsonb, 'a provisionable instance is not refused');
SELECT is((SELECT request - 'params' FROM c1 WHERE kind = 'stripe.create_customer'),
          '{"flow": "call", "path": "/v1/customers", "method": "POST", "stripe_version": "2024-06-20", "idempotency_key": "customer:00000000-0000-4000-8000-0000000e00a1"}'::jsonb,
          'a Stripe job names its endpoint, idempotency key and the pinned API version');
SELECT is((SELECT request#>>'{params,metadata,user_id}' FROM c1 WHERE kind = 'stripe.create_customer'),
          '00000000-0000-4000-8000-0000000e00a1', 'a Stripe job carries its parameters');
SELECT is((SELECT array_agg(DISTINCT status || '/' || lease_owner || '/' || attempts) FROM agentmarket_private.jobs
            WHERE id IN (SELECT job_id FROM c1)), '{running/worker-a/1}', 'claimed jobs are running, leased to the worker, attempt 1');
SELECT is((SELECT count(*) FROM agentmarket_private.claim_jobs('worker-b', 10, '5 minutes'))::int, 0,
          'a leased job is not claimed again');
SELECT throws_ok($$SELECT * FROM agentmarket_private.claim_jobs('worker a', 1, '1 minute')$$, '22023', NULL, 'worker names are checked');
SELECT throws_ok($$SELECT * FROM agentmarket_private.claim_jobs('w', 0, '1 minute')$$, '22023', NULL, 'claim size must be positive');

-- Finish
SELECT is(agentmarket_private.finish_job((SELECT id FROM t WHERE name = 'provision'),
          '{"machine_id":"3d8d9e1a2b7f08","volume_id":"vol_abc123"}', 'worker-b'), false,
          'a worker that does not hold the lease cannot finish the job');
SELECT is((SELECT status FROM agentmarket.agent_instances WHERE id = '00000000-0000-4000-8000-0000000000b1'), 'provisioning',
          '... and nothing was applied');
SELECT throws_ok($$SELECT agentmarket_private.finish_job((SELECT id FROM t WHERE name = 'provision'), '{"volume_id":"v"}', 'worker-a')$$,
                 '22023', NULL, 'a provision result without a machine id is refused');
SELECT is(agentmarket_private.finish_job((SELECT id FROM t WHERE name = 'provision'),
          '{"machine_id":"3d8d9e1a2b7f08","volume_id":"vol_abc123"}', 'worker-a'), true, 'the lease holder finishes the job');
SELECT is((SELECT status || ' ' || fly_machine_id || ' ' || fly_volume_id FROM agentmarket.agent_instances
            WHERE id = '00000000-0000-4000-8000-0000000000b1'), 'running 3d8d9e1a2b7f08 vol_abc123',
          'a provisioned instance is running with its machine and volume ids');
SELECT is(agentmarket_private.finish_job((SELECT id FROM t WHERE name = 'provision'), '{"machine_id":"other"}', 'worker-a'), false,
          'finishing a job twice applies nothing the second time');
SELECT is((SELECT fly_machine_id FROM agentmarket.agent_instances WHERE id = '00000000-0000-4000-8000-0000000000b1'), '3d8d9e1a2b7f08',
          '... the machine id is unchanged');
SELECT is(agentmarket_private.finish_job((SELECT id FROM t WHERE name = 'customer'), '{"id":"cus_Q1","object":"customer"}', 'worker-a'),
          true, 'a Stripe job finishes');
SELECT is((SELECT stripe_customer_id FROM agentmarket.users WHERE id = '00000000-0000-4000-8000-0000000e00a1'), 'cus_Q1',
          'stripe.create_customer''s handler records the customer id');
SELECT is((SELECT result->>'id' FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'customer')), 'cus_Q1',
          'the result is stored on the job');

-- The instance's suspend is claimable once its provision is done.
CREATE TEMP TABLE c2 AS SELECT * FROM agentmarket_private.claim_jobs('worker-a', 10, '5 minutes');
SELECT is((SELECT kind || ' ' || (request->>'machine_id') FROM c2), 'fly.suspend_machine 3d8d9e1a2b7f08',
           'the next job of the instance runs after the previous one, with its machine id');

-- Fail, backoff, Retry-After, dead
SELECT is(agentmarket_private.fail_job((SELECT id FROM t WHERE name = 'suspend_b1'), 'fly: 503 Service Unavailable', '30 seconds', false, 'worker-a'),
          'queued', 'a retryable failure requeues the job');
SELECT ok((SELECT run_at >= now() + interval '30 seconds' AND last_error = 'fly: 503 Service Unavailable' AND lease_owner IS NULL
             FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'suspend_b1')),
          'Retry-After is honoured: the job is not due before it, and keeps its error');
SELECT is((SELECT count(*) FROM agentmarket_private.claim_jobs('worker-a', 10, '5 minutes'))::int, 0, 'a job waiting for its retry is not claimed');
SELECT ok(agentmarket_private.job_backoff(1) BETWEEN interval '1 second' AND interval '2 seconds', 'the first retry waits 1 to 2 s (base 2 s, jitter)');
SELECT ok(agentmarket_private.job_backoff(4) BETWEEN interval '8 seconds' AND interval '16 seconds', 'the fourth retry waits 8 to 16 s (doubling)');
SELECT ok(agentmarket_private.job_backoff(40) BETWEEN interval '450 seconds' AND interval '900 seconds', 'retries are capped at job_backoff_max_seconds');
SELECT is(agentmarket_private.fail_job((SELECT id FROM t WHERE name = 'suspend_b1'), 'late', NULL, false, 'worker-a'), NULL,
          'a worker without the lease cannot fail the job');

-- Lease expiry: the job becomes claimable by another worker.
UPDATE agentmarket_private.jobs SET run_at = now() WHERE id = (SELECT id FROM t WHERE name = 'suspend_b1');
CREATE TEMP TABLE c3 AS SELECT * FROM agentmarket_private.claim_jobs('worker-a', 10, '5 minutes');
UPDATE agentmarket_private.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = (SELECT id FROM t WHERE name = 'suspend_b1');
SELECT is((SELECT attempt FROM agentmarket_private.claim_jobs('worker-b', 10, '5 minutes')), 3,
          'an expired lease makes the job claimable again, as a new attempt');
SELECT is(agentmarket_private.finish_job((SELECT id FROM t WHERE name = 'suspend_b1'), '{}', 'worker-a'), false,
          'the worker that lost its lease cannot finish the job');
SELECT is((SELECT status FROM agentmarket.agent_instances WHERE id = '00000000-0000-4000-8000-0000000000b1'), 'running',
          '... nor apply its effect');
SELECT is(agentmarket_private.finish_job((SELECT id FROM t WHERE name = 'suspend_b1'), '{}', 'worker-b'), true,
          'the new lease holder finishes it');
SELECT is((SELECT status FROM agentmarket.agent_instances WHERE id = '00000000-0000-4000-8000-0000000000b1'), 'suspended',
          'fly.suspend_machine leaves the instance suspended');

-- An instance whose agent has no image: provision is refused, and dead.
INSERT INTO t VALUES ('provision_b2', agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-0000000000b2', 'fly.provision_instance'));
SELECT is((SELECT request->>'refuse' FROM agentmarket_private.claim_jobs('worker-a', 10, '5 minutes')),
          'agent has no docker image to run', 'the claim says why a job must not be performed');
SELECT is(agentmarket_private.fail_job((SELECT id FROM t WHERE name = 'provision_b2'), 'agent has no docker image to run', NULL, true, 'worker-a'),
          'dead', 'a permanent failure makes the job dead at once');
SELECT is((SELECT status || ': ' || error_message FROM agentmarket.agent_instances WHERE id = '00000000-0000-4000-8000-0000000000b2'),
          'error: fly.provision_instance failed: agent has no docker image to run', 'a dead provision puts the instance in error with the reason');
SELECT is((SELECT last_error FROM agentmarket_private.dead_jobs WHERE id = (SELECT id FROM t WHERE name = 'provision_b2')),
          'agent has no docker image to run', 'dead jobs are listed with their last error');
SELECT is((SELECT jobs FROM agentmarket_private.queue_depth WHERE kind = 'fly.provision_instance' AND status = 'dead'), 1::bigint,
          'queue_depth counts jobs per kind and status');

-- Out of attempts.
INSERT INTO t VALUES ('refund', agentmarket_private.enqueue_stripe_job('stripe.create_refund', '{"payment_intent":"pi_1"}', 'refund:pi_1'));
UPDATE agentmarket_private.jobs SET attempts = max_attempts - 1 WHERE id = (SELECT id FROM t WHERE name = 'refund');
SELECT is((SELECT id FROM agentmarket_private.queue_oldest_due), (SELECT id FROM t WHERE name = 'refund'), 'queue_oldest_due shows the job waiting longest');
CREATE TEMP TABLE c4 AS SELECT * FROM agentmarket_private.claim_jobs('worker-a', 10, '5 minutes');
SELECT is(agentmarket_private.fail_job((SELECT id FROM t WHERE name = 'refund'), 'stripe: 500 api_error', NULL, false, 'worker-a'),
          'dead', 'a job is dead after its last allowed attempt');

-- Operators retry dead jobs.
SELECT lives_ok($$SELECT agentmarket_private.retry_job((SELECT id FROM t WHERE name = 'refund'))$$, 'retry_job requeues a dead job');
SELECT is((SELECT status || ' ' || attempts FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'refund')), 'queued 0',
          '... now, with a fresh attempt budget');
SELECT throws_ok($$SELECT agentmarket_private.retry_job((SELECT id FROM t WHERE name = 'provision'))$$, '22023', NULL,
                 'a succeeded job cannot be retried');
SELECT throws_ok($$SELECT agentmarket_private.retry_job(-1)$$, 'P0002', NULL, 'retrying an unknown job is P0002');

-- Many outcomes in one round trip, each on its own.
INSERT INTO t VALUES ('batch1', agentmarket_private.enqueue_stripe_job('stripe.create_account_link',
    '{"account":"acct_1","type":"account_onboarding"}', 'link:1'));
INSERT INTO t VALUES ('batch2', agentmarket_private.enqueue_stripe_job('stripe.create_transfer',
    '{"amount":100,"currency":"usd","destination":"acct_1"}', 'transfer:9'));
INSERT INTO t VALUES ('batch3', agentmarket_private.enqueue_stripe_job('stripe.create_customer', '{}', 'customer:bad',
    '{"user_id":"not-a-uuid"}'));
CREATE TEMP TABLE c5 AS SELECT * FROM agentmarket_private.claim_jobs('worker-c', 10, '5 minutes');
SELECT is((SELECT array_agg(outcome ORDER BY job_id) FROM agentmarket_private.report_jobs('worker-c', jsonb_build_array(
            jsonb_build_object('id', (SELECT id FROM t WHERE name = 'batch3'), 'ok', true, 'result', '{"id":"cus_X"}'::jsonb),
            jsonb_build_object('id', (SELECT id FROM t WHERE name = 'batch1'), 'ok', true, 'result', '{"object":"account_link"}'::jsonb),
            jsonb_build_object('id', (SELECT id FROM t WHERE name = 'batch2'), 'ok', false, 'error', 'stripe: HTTP 500',
                               'retry_after', 5, 'permanent', false)))),
          '{succeeded,queued,queued}', 'report_jobs applies each outcome of a batch on its own');
SELECT alike((SELECT last_error FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'batch3')),
            'database refused the result: %', 'a result the database refuses becomes a retryable failure of that job alone');
SELECT ok((SELECT run_at >= now() + interval '5 seconds' FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'batch2')),
          'a batched failure honours its Retry-After');
SELECT is((SELECT outcome FROM agentmarket_private.report_jobs('worker-x', jsonb_build_array(
            jsonb_build_object('id', (SELECT id FROM t WHERE name = 'batch1'), 'ok', true, 'result', '{}'::jsonb)))),
          'lease_lost', 'report_jobs says when the worker no longer holds a job');

-- Pruning keeps the table small: old finished jobs go, recent ones stay.
UPDATE agentmarket_private.jobs SET finished_at = now() - interval '8 days' WHERE id = (SELECT id FROM t WHERE name = 'customer');
SELECT is(agentmarket_private.prune_jobs(), 1, 'prune_jobs deletes succeeded jobs past the retention');
SELECT ok(EXISTS (SELECT FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'provision')),
          'recent finished jobs are kept');

-- Owner controls (PostgREST: SET ROLE authenticated with the JWT claims).
GRANT SELECT ON t TO authenticated;
SET LOCAL request.jwt.claims = '{"sub":"00000000-0000-4000-8000-0000000e00a1","role":"authenticated"}';
SET LOCAL ROLE authenticated;
SELECT agentmarket.resume_instance('00000000-0000-4000-8000-0000000000b1') AS resume_job \gset
SELECT ok(:resume_job > 0, 'an owner resumes their suspended instance');
-- A change still queued coalesces with the next one (attack_bounds has more).
SELECT is(agentmarket.resume_instance('00000000-0000-4000-8000-0000000000b1'), :resume_job::bigint,
          'resuming again returns the queued resume');
SELECT is(agentmarket.suspend_instance('00000000-0000-4000-8000-0000000000b1'), NULL,
          'suspending before the queued resume ran cancels it: nothing to do');
SELECT throws_ok($$SELECT agentmarket.suspend_instance('00000000-0000-4000-8000-0000000000b1')$$, '22023',
                 'cannot suspend an instance that is suspended', 'changes are checked against the status the pending jobs lead to');
SELECT throws_ok($$SELECT agentmarket.suspend_instance('00000000-0000-4000-8000-0000000000b2')$$, 'P0002', NULL,
                 'another user''s instance is not found');
SELECT throws_ok($$SELECT agentmarket.destroy_instance('00000000-0000-4000-8000-0000000000ff')$$, 'P0002', NULL,
                 'an unknown instance is not found');
SELECT throws_ok($$SELECT * FROM agentmarket_private.claim_jobs('w', 1, '1 minute')$$, '42501', NULL,
                 'clients cannot reach the queue');
RESET ROLE;
SET LOCAL ROLE service_role;
SELECT ok(agentmarket.destroy_instance('00000000-0000-4000-8000-0000000000b2') > 0, 'service_role destroys any instance');
SELECT throws_ok($$SELECT agentmarket.destroy_instance('00000000-0000-4000-8000-0000000000b2')$$, '22023',
                 'cannot destroy an instance that is destroyed', 'an instance is destroyed once');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
