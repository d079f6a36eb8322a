-- queue_exchange: the sidecar's round trip, exchange_jobs(worker, outcomes, max, lease).
--   * It reports the outcomes (as report_jobs) and then claims up to max due
--     jobs (as claim_jobs) in one statement and one commit; reported rows
--     carry an outcome, claimed rows a kind and a request.
--   * Reporting comes first: a finished job lets the next job of its serial
--     key be claimed by the same call.
--   * max 0 reports only, outcomes [] claims only; bad arguments are refused
--     (22023) with nothing applied; clients cannot call it (42501).
--   * Due jobs are chosen in due order (expired leases first, then by run_at
--     and id) whatever the table's statistics say: the selection is pinned to
--     the due indexes, so a claim never reads and sorts every queued job.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(20);

-- A serialized kind (one job per user at a time), beside the plain customers.
INSERT INTO agentmarket_private.job_kinds (kind, provider, flow, method, endpoint, request_function, serialize_on, handler, description)
VALUES ('stripe.test_serial', 'stripe', 'call', 'POST', '/v1/customers',
        'agentmarket_private.stripe_request(agentmarket_private.jobs)', 'user_id',
        'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', 'Serialized per user (test).');
SELECT agentmarket_private.enqueue_stripe_job('stripe.test_serial', '{"email": "first@exchange.test"}', 'ex:s1',
                                              '{"user_id": "u1"}') AS s1 \gset
SELECT agentmarket_private.enqueue_stripe_job('stripe.test_serial', '{"email": "second@exchange.test"}', 'ex:s2',
                                              '{"user_id": "u1"}') AS s2 \gset
SELECT count(agentmarket_private.enqueue_stripe_job('stripe.create_customer', jsonb_build_object('email', 'c' || g || '@exchange.test'),
                                                    'ex:c' || g)) AS customers FROM generate_series(1, 3) g;

CREATE TEMP TABLE x1 AS SELECT * FROM agentmarket_private.exchange_jobs('ex-worker', '[]', 10, '1 minute');
SELECT is((SELECT count(*)::int FROM x1 WHERE kind IS NOT NULL AND outcome IS NULL), 4,
          'outcomes [] claims only: the three customers and the first serialized job');
SELECT is((SELECT array_agg(job_id ORDER BY job_id) FROM x1 WHERE kind = 'stripe.test_serial'), ARRAY[:s1::bigint],
          'the second job of a serial key waits while the first runs');
SELECT is((SELECT request->>'idempotency_key' FROM x1 WHERE job_id = :s1), 'ex:s1',
          'a claimed row carries the request, as claim_jobs gives it');
SELECT is((SELECT count(*)::int FROM agentmarket_private.jobs WHERE lease_owner = 'ex-worker' AND status = 'running'), 4,
          'the claimed jobs are leased to the worker');

-- One call: the first serialized job succeeds, one customer fails, and the slot is refilled.
CREATE TEMP TABLE x2 AS
SELECT * FROM agentmarket_private.exchange_jobs('ex-worker', jsonb_build_array(
    jsonb_build_object('id', :s1, 'ok', true, 'result', '{"id": "cus_1", "object": "customer"}'::jsonb),
    jsonb_build_object('id', (SELECT min(job_id) FROM x1 WHERE kind = 'stripe.create_customer'), 'ok', false,
                       'error', 'stripe: HTTP 500', 'retry_after', 3600, 'permanent', false)), 10, '1 minute');
SELECT is((SELECT outcome FROM x2 WHERE job_id = :s1), 'succeeded', 'a reported success is applied');
SELECT is((SELECT outcome FROM x2 WHERE job_id = (SELECT min(job_id) FROM x1 WHERE kind = 'stripe.create_customer')), 'queued',
          'a reported failure is queued again after its backoff');
SELECT is((SELECT array_agg(job_id) FROM x2 WHERE kind IS NOT NULL), ARRAY[:s2::bigint],
          'reporting comes first: the same call claims the next job of the serial key');
SELECT is((SELECT count(*)::int FROM x2 WHERE outcome IS NOT NULL AND kind IS NOT NULL), 0,
          'a row is either a reported job or a claimed one');
SELECT is((SELECT result FROM agentmarket_private.jobs WHERE id = :s1), '{"id": "cus_1", "object": "customer"}'::jsonb,
          'the success is stored with its result');

-- max 0: report only.
SELECT is((SELECT array_agg(outcome || ':' || coalesce(kind, '-'))
             FROM agentmarket_private.exchange_jobs('ex-worker', jsonb_build_array(
                  jsonb_build_object('id', :s2, 'ok', true, 'result', '{"id": "cus_2", "object": "customer"}'::jsonb)),
                  0, '1 minute')),
          ARRAY['succeeded:-'], 'max 0 reports and claims nothing');
SELECT is((SELECT outcome FROM agentmarket_private.exchange_jobs('other-worker', jsonb_build_array(
               jsonb_build_object('id', (SELECT max(job_id) FROM x1), 'ok', true, 'result', '{}'::jsonb)), 0, '1 minute')),
          'lease_lost', 'an outcome of a job another worker holds is not applied');

-- Bad arguments: refused, nothing applied.
SELECT throws_ok($$SELECT * FROM agentmarket_private.exchange_jobs('ex-worker', NULL, 1, '1 minute')$$, '22023', NULL,
                 'outcomes must be given');
SELECT throws_ok($$SELECT * FROM agentmarket_private.exchange_jobs('ex-worker', '{"id": 1}', 1, '1 minute')$$, '22023', NULL,
                 'outcomes must be an array');
SELECT throws_ok($$SELECT * FROM agentmarket_private.exchange_jobs('ex-worker', '[]', -1, '1 minute')$$, '22023', NULL,
                 'a negative claim size is refused');
SELECT throws_ok($$SELECT * FROM agentmarket_private.exchange_jobs('ex-worker', '[]', 10001, '1 minute')$$, '22023', NULL,
                 'an absurd claim size is refused');
SELECT throws_ok($$SELECT * FROM agentmarket_private.exchange_jobs('ex worker', '[]', 1, '1 minute')$$, '22023', NULL,
                 'worker names are checked');
SELECT throws_ok($$SELECT * FROM agentmarket_private.exchange_jobs('ex-worker', '[]', 1, '0 seconds')$$, '22023', NULL,
                 'the lease is checked');

-- Due order whatever the statistics say (the table is as fresh as a burst).
TRUNCATE agentmarket_private.jobs CASCADE;
SELECT count(agentmarket_private.enqueue_stripe_job('stripe.create_customer', jsonb_build_object('email', 'b' || g || '@exchange.test'),
                                                    'ex:b' || g)) AS burst FROM generate_series(1, 2000) g;
UPDATE agentmarket_private.jobs SET run_at = now() - make_interval(secs => id % 7) WHERE id % 100 = 0;
SELECT is((SELECT array_agg(job_id) FROM agentmarket_private.exchange_jobs('ex-worker', '[]', 5, '1 minute')),
          (SELECT array_agg(id) FROM (SELECT id FROM agentmarket_private.jobs ORDER BY run_at, id LIMIT 5) s),
          'a claim takes the jobs due longest, in due order');
SELECT is((SELECT array_agg(c ORDER BY c) FROM pg_proc p, unnest(p.proconfig) c
            WHERE p.oid = 'agentmarket_private.lock_due_jobs(integer)'::regprocedure AND c LIKE 'enable%'),
          ARRAY['enable_bitmapscan=off', 'enable_seqscan=off', 'enable_sort=off'],
          'the due-job selection is pinned to the due indexes (no sort of every queued job)');

SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT * FROM agentmarket_private.exchange_jobs('w', '[]', 1, '1 minute')$$, '42501', NULL,
                 'clients cannot reach the queue');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
