-- queue_leases: short leases renewed by heartbeat, jobs given back at a
-- drain deadline, and the operator's view and release of jobs whose worker
-- is gone.  Races are in test/specs/queue_lease_renewal.spec.
\ir test/fixture.sql
BEGIN;
SELECT plan(42);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('00000000-0000-4000-8000-0000000c01a1', 'ada@leases.test', 'creator'),
  ('00000000-0000-4000-8000-0000000e01a1', 'linus@leases.test', 'user');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category,
                                github_repo_url, docker_image, fly_machine_size, fly_machine_memory_mb)
VALUES ('00000000-0000-4000-8000-00000000a1a1', '00000000-0000-4000-8000-0000000c01a1', 'lease-agent',
        'Lease agent', 'tests leases', 'tests leases', 'productivity',
        'https://github.com/example/lease-agent', 'registry.fly.io/lease-agent:1', 'shared-cpu-1x', 512);
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, region)
VALUES ('00000000-0000-4000-8000-0000000001b1', '00000000-0000-4000-8000-0000000e01a1',
        '00000000-0000-4000-8000-00000000a1a1',
        agentmarket_private.fly_app_name('00000000-0000-4000-8000-0000000001b1'), '', 'ams');

CREATE TEMP TABLE t (name text PRIMARY KEY, id bigint);
INSERT INTO t SELECT 'c' || g, agentmarket_private.enqueue_stripe_job('stripe.create_customer',
    jsonb_build_object('email', 'c' || g || '@leases.test'), 'leases:c' || g) FROM generate_series(1, 4) g;
INSERT INTO t VALUES ('provision', agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-0000000001b1',
                                                                           'fly.provision_instance'));
-- w1 holds c1..c3, w2 holds c4, w1 holds the provision.
SELECT is((SELECT count(*)::int FROM agentmarket_private.claim_jobs('w1', 3, '1 minute')), 3, 'w1 claims three jobs');
SELECT is((SELECT count(*)::int FROM agentmarket_private.claim_jobs('w2', 1, '1 minute')), 1, 'w2 claims one');
SELECT is((SELECT count(*)::int FROM agentmarket_private.claim_jobs('w1', 1, '1 minute')), 1, 'w1 claims the provision');
CREATE TEMP TABLE held AS SELECT id, lease_owner FROM agentmarket_private.jobs WHERE status = 'running';

-- Heartbeat
UPDATE agentmarket_private.jobs SET lease_expires_at = now() + interval '5 seconds' WHERE lease_owner = 'w1';
SELECT set_eq($$SELECT agentmarket_private.renew_leases('w1', (SELECT array_agg(id) FROM held), '30 seconds')$$,
              $$SELECT id FROM held WHERE lease_owner = 'w1'$$,
              'a heartbeat renews exactly the leases the worker holds among the ids');
SELECT ok((SELECT bool_and(lease_expires_at = now() + interval '30 seconds') FROM agentmarket_private.jobs
            WHERE lease_owner = 'w1'), '... to now() + the lease');
SELECT is((SELECT lease_expires_at FROM agentmarket_private.jobs WHERE lease_owner = 'w2'), now() + interval '1 minute',
          '... and leaves another worker''s lease alone');
SELECT is_empty($$SELECT agentmarket_private.renew_leases('w3', (SELECT array_agg(id) FROM held), '30 seconds')$$,
                'a worker renews nothing it does not hold');
UPDATE agentmarket_private.jobs SET lease_expires_at = now() - interval '1 second'
 WHERE id = (SELECT id FROM t WHERE name = 'c1');
SELECT set_eq($$SELECT agentmarket_private.renew_leases('w1', ARRAY[(SELECT id FROM t WHERE name = 'c1')], '30 seconds')$$,
              $$SELECT id FROM t WHERE name = 'c1'$$,
              'a lease that ran out but that nobody took is still renewed (nobody else ran the job)');
SELECT ok(agentmarket_private.finish_job((SELECT id FROM t WHERE name = 'c2'), '{"id":"cus_1"}', 'w1'), 'w1 finishes c2');
SELECT is_empty($$SELECT agentmarket_private.renew_leases('w1', ARRAY[(SELECT id FROM t WHERE name = 'c2')], '30 seconds')$$,
                'a finished job is not renewed: the heartbeat reports it lost');
SELECT is_empty($$SELECT agentmarket_private.renew_leases('w1', '{}', '30 seconds')$$, 'an empty heartbeat renews nothing');
SELECT is_empty($$SELECT agentmarket_private.renew_leases('w1', ARRAY[-1, 987654321], '30 seconds')$$,
                'unknown ids are not renewed');

SELECT throws_ok($$SELECT agentmarket_private.renew_leases(NULL, '{1}', '30 seconds')$$, '22023', 'invalid worker name',
                 'a heartbeat needs a worker name');
SELECT throws_ok($$SELECT agentmarket_private.renew_leases('w 1; drop', '{1}', '30 seconds')$$, '22023', 'invalid worker name',
                 'worker names are checked');
SELECT throws_ok($$SELECT agentmarket_private.renew_leases('w1', NULL, '30 seconds')$$, '22023', 'job ids must not be null',
                 'the id list must not be null');
SELECT throws_ok($$SELECT agentmarket_private.renew_leases('w1', (SELECT array_agg(g::bigint) FROM generate_series(1, 10001) g), '30 seconds')$$,
                 '22023', 'too many job ids', 'at most 10000 ids at once');
SELECT throws_ok($$SELECT agentmarket_private.renew_leases('w1', '{1}', '0 seconds')$$, '22023', NULL,
                 'a lease of less than a second is refused');
SELECT throws_ok($$SELECT agentmarket_private.renew_leases('w1', '{1}', '2 days')$$, '22023', NULL,
                 'a lease of more than a day is refused');
SELECT throws_ok($$SELECT agentmarket_private.renew_leases('w1', '{1}', NULL)$$, '22023', NULL, 'a lease is required');

-- Release at the drain deadline
SELECT is(agentmarket_private.release_jobs('w1', ARRAY[(SELECT id FROM t WHERE name = 'c3'), (SELECT id FROM t WHERE name = 'c4')],
                                           'released: drain deadline'), 1,
          'a stopping worker releases only the jobs it holds');
SELECT results_eq($$SELECT status, lease_owner, attempts, run_at <= now(), last_error FROM agentmarket_private.jobs
                     WHERE id = (SELECT id FROM t WHERE name = 'c3')$$,
                  $$VALUES ('queued'::text, NULL::text, 1, true, 'released: drain deadline'::text)$$,
                  'a released job is queued, due now, its attempt counted (the next one looks first) and the reason kept');
SELECT is((SELECT lease_owner FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'c4')), 'w2',
          '... another worker''s job stays with it');
SELECT throws_ok($$SELECT agentmarket_private.release_jobs('w1', '{1}', '')$$, '22023', 'a released job needs a reason',
                 'a release needs a reason');
SELECT throws_ok($$SELECT agentmarket_private.release_jobs('w1', NULL, 'x')$$, '22023', NULL, 'a release needs ids');

-- Jobs whose worker is gone
UPDATE agentmarket_private.jobs SET lease_expires_at = now() - interval '40 seconds'
 WHERE id = (SELECT id FROM t WHERE name = 'c4');
SELECT results_eq($$SELECT id, worker, waiting FROM agentmarket_private.queue_orphaned$$,
                  $$SELECT (SELECT id FROM t WHERE name = 'c4'), 'w2'::text, interval '40 seconds'$$,
                  'queue_orphaned shows a running job whose lease ran out, its worker and how long it has waited');
SELECT results_eq($$SELECT id, orphaned, waiting FROM agentmarket_private.queue_oldest_due$$,
                  $$SELECT (SELECT id FROM t WHERE name = 'c4'), true, interval '40 seconds'$$,
                  'queue_oldest_due counts an orphaned job as due since its lease ran out');
UPDATE agentmarket_private.jobs SET run_at = now() - interval '1 minute' WHERE id = (SELECT id FROM t WHERE name = 'c3');
SELECT results_eq($$SELECT id, orphaned FROM agentmarket_private.queue_oldest_due$$,
                  $$SELECT (SELECT id FROM t WHERE name = 'c3'), false$$,
                  '... and a queued job due longer comes first');
SELECT is(agentmarket_private.release_orphaned_jobs(), 1, 'release_orphaned_jobs() releases the orphaned job');
SELECT results_eq($$SELECT status, lease_owner, run_at <= now(), last_error LIKE 'released by an operator: worker w2 is gone%'
                     FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'c4')$$,
                  $$VALUES ('queued'::text, NULL::text, true, true)$$,
                  '... at once: queued, due now, saying why');
SELECT is_empty($$SELECT * FROM agentmarket_private.queue_orphaned$$, 'nothing is orphaned any more');
SELECT is(agentmarket_private.release_orphaned_jobs(), 0, 'jobs with live leases are not released without a worker name');
-- The operator knows w1 was killed: its jobs go now, before their leases run out.
UPDATE agentmarket_private.jobs SET attempts = max_attempts WHERE id = (SELECT id FROM t WHERE name = 'provision');
SELECT is(agentmarket_private.release_orphaned_jobs('w1'), 2, 'release_orphaned_jobs(worker) releases all the worker''s running jobs');
SELECT is((SELECT status FROM agentmarket_private.jobs WHERE id = (SELECT id FROM t WHERE name = 'c1')), 'queued',
          '... which are queued again');
SELECT results_eq($$SELECT j.status, i.status, i.error_message LIKE '%worker w1 is gone%'
                     FROM agentmarket_private.jobs j JOIN agentmarket.agent_instances i ON i.id::text = j.serial_key
                    WHERE j.id = (SELECT id FROM t WHERE name = 'provision')$$,
                  $$VALUES ('dead'::text, 'error'::text, true)$$,
                  '... or dead through the dead handler when out of attempts');
SELECT throws_ok($$SELECT agentmarket_private.release_orphaned_jobs('')$$, '22023', 'invalid worker name',
                 'an empty worker name is refused');

-- Who may call
SET LOCAL request.jwt.claims = '{"sub":"00000000-0000-4000-8000-0000000e01a1","role":"authenticated"}';
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT agentmarket_private.renew_leases('w1', '{1}', '30 seconds')$$, '42501', NULL,
                 'clients cannot renew leases');
SELECT throws_ok($$SELECT agentmarket_private.release_orphaned_jobs()$$, '42501', NULL, 'clients cannot release jobs');
RESET ROLE;
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT * FROM agentmarket_private.queue_orphaned$$, '42501', NULL, 'anon cannot see the queue');
RESET ROLE;
SET LOCAL ROLE service_role;
SELECT lives_ok($$SELECT agentmarket_private.renew_leases('w1', '{1}', '30 seconds')$$, 'service_role (the sidecar) renews leases');
SELECT lives_ok($$SELECT agentmarket_private.release_jobs('w1', '{1}', 'x')$$, '... and releases its jobs');
SELECT lives_ok($$SELECT * FROM agentmarket_private.queue_orphaned$$, 'service_role (operators) reads queue_orphaned');
SELECT lives_ok($$SELECT agentmarket_private.release_orphaned_jobs()$$, '... and releases orphaned jobs');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
