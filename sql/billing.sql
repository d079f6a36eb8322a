-- billing: run_billing_rollup() folds recorded usage into session totals,
-- instance costs and the settlement of ended sessions' unpaid earnings; it
-- is bounded, idempotent, and verify_metering() checks the result.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(31);

SELECT agentmarket.configure('free_trial_credits', '0') \g /dev/null
-- Granted credits worth list price, so gross = credits x 0.01 here (lots.sql).
SELECT agentmarket.configure('promotional_credit_value_usd', '0.01') \g /dev/null
INSERT INTO users (id, email, role) VALUES
  ('70000000-0000-4000-8000-00000000c001', 'creator@bill.example', 'creator'),
  ('70000000-0000-4000-8000-00000000e001', 'user@bill.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, fly_machine_size, fly_machine_memory_mb, published_at) VALUES
  ('70000000-0000-4000-8000-0000000000a1', '70000000-0000-4000-8000-00000000c001', 'bill-agent', 'Bill',
   't', 'd', 'research', 'published', 'per_session', 50, 'https://x/1', 'shared-cpu-2x', 1024, now());
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('70000000-0000-4000-8000-0000000000d1', '70000000-0000-4000-8000-00000000e001', '70000000-0000-4000-8000-0000000000a1', 'am-b1', 'b1', 'running');
SELECT set_machine_price('shared-cpu-2x', 1024, 0.0001) \g /dev/null
SELECT grant_credits('70000000-0000-4000-8000-00000000e001', 500, 'topup', 'topup_purchase') \g /dev/null
CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);
GRANT ALL ON ids TO PUBLIC;

SET LOCAL ROLE service_role;
INSERT INTO ids SELECT 'a', (start_session('70000000-0000-4000-8000-0000000000d1')).id;
SELECT is((SELECT count(*)::int FROM record_usage(format('[
    {"instance_id": "70000000-0000-4000-8000-0000000000d1", "session_id": "%1$s", "compute_seconds": 60, "input_tokens": 100, "output_tokens": 300, "idempotency_key": "b-1"},
    {"instance_id": "70000000-0000-4000-8000-0000000000d1", "session_id": "%1$s", "compute_seconds": 40, "input_tokens": 50, "output_tokens": 50, "idempotency_key": "b-2"},
    {"instance_id": "70000000-0000-4000-8000-0000000000d1", "compute_seconds": 500, "idempotency_key": "b-3"}]',
    (SELECT id FROM ids WHERE name = 'a'))::jsonb) WHERE outcome = 'recorded'), 3, 'three events recorded');
SELECT is((SELECT compute_seconds || '/' || total_input_tokens || '/' || total_output_tokens FROM sessions
            WHERE id = (SELECT id FROM ids WHERE name = 'a')), '0/0/0', 'recorded usage is not in the session''s totals yet');
SELECT is_empty('SELECT * FROM verify_metering()', 'usage waiting for the rollup is consistent');

SELECT is((SELECT row(r.*)::text FROM run_billing_rollup() r), '(2,1,1,0)',
    'the rollup folds both usage rows: one session, one instance');
SELECT is((SELECT compute_seconds || '/' || total_input_tokens || '/' || total_output_tokens || '/' || total_credits_consumed
             FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'a')), '100/150/350/50',
    'the session''s totals count its events (credits: its per_session price)');
RESET ROLE;
SELECT is((SELECT compute_seconds || '/' || input_tokens || '/' || output_tokens || '/' || compute_usd || '/' || usage_rows
             FROM agentmarket_private.instance_costs WHERE instance_id = '70000000-0000-4000-8000-0000000000d1'),
          '600/150/350/0.060000/2', 'the instance''s cost counts all of them: 600 s x 0.0001 USD');
SELECT is((SELECT count(*)::int FROM agentmarket_private.usage_pending), 0, 'nothing is left waiting');
SET LOCAL ROLE service_role;
SELECT is((SELECT row(r.*)::text FROM run_billing_rollup() r), '(0,0,0,0)', 'a second rollup finds nothing: idempotent');
SELECT is((SELECT compute_seconds FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'a')), 100, 'and changes nothing');
SELECT is((SELECT count(*)::int FROM record_usage(format('[{"instance_id": "70000000-0000-4000-8000-0000000000d1", "session_id": "%1$s", "compute_seconds": 60, "idempotency_key": "b-1"}]',
    (SELECT id FROM ids WHERE name = 'a'))::jsonb) WHERE outcome = 'duplicate'), 1, 'a replayed event is a duplicate');
SELECT is((SELECT row(r.*)::text FROM run_billing_rollup() r), '(0,0,0,0)', 'and gives the rollup nothing');
SELECT is_empty('SELECT * FROM verify_metering()', 'totals equal the folded usage');

-- The end: its final metering and the earnings, net of everything recorded.
SELECT is((SELECT compute_seconds FROM end_session((SELECT id FROM ids WHERE name = 'a'), 20, 10, 10)), 120,
    'end_session adds its final seconds');
SELECT is((SELECT cost_usd FROM usage_events WHERE session_id = (SELECT id FROM ids WHERE name = 'a') AND compute_seconds = 20),
          0.002000::numeric, 'its final row costs 20 s x 0.0001');
SELECT is((SELECT compute_cost || '/' || gross_revenue || '/' || creator_amount || '/' || platform_amount FROM creator_earnings
            WHERE session_id = (SELECT id FROM ids WHERE name = 'a')),
          '0.012000/0.5000/0.4148/0.0852', 'earnings are net of the session''s whole recorded cost: (0.50 - 0.012) x 0.85');
SELECT is((SELECT row(r.*)::text FROM run_billing_rollup() r), '(1,0,1,0)',
    'the rollup counts the final row for the instance, not again for the session');
SELECT is((SELECT compute_seconds FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'a')), 120, 'the session counts it once');
SELECT is_empty('SELECT * FROM verify_metering()', 'still consistent');

-- Late usage for the ended session: settled again while unpaid.
SELECT is((SELECT count(*)::int FROM record_usage(format('[{"instance_id": "70000000-0000-4000-8000-0000000000d1", "session_id": "%1$s", "compute_seconds": 300, "idempotency_key": "b-late"}]',
    (SELECT id FROM ids WHERE name = 'a'))::jsonb) WHERE outcome = 'recorded'), 1, 'late usage is recorded');
SELECT is((SELECT row(r.*)::text FROM run_billing_rollup() r), '(1,1,1,1)', 'and the rollup settles the session again');
SELECT is((SELECT compute_cost || '/' || gross_revenue || '/' || creator_amount || '/' || platform_amount FROM creator_earnings
            WHERE session_id = (SELECT id FROM ids WHERE name = 'a')),
          '0.042000/0.5000/0.3893/0.1107', 'the gross stays, the split is over the whole cost: (0.50 - 0.042) x 0.85');
RESET ROLE;
UPDATE creator_earnings SET paid_out = true, paid_out_at = now() WHERE session_id = (SELECT id FROM ids WHERE name = 'a');
SET LOCAL ROLE service_role;
SELECT is((SELECT count(*)::int FROM record_usage(format('[{"instance_id": "70000000-0000-4000-8000-0000000000d1", "session_id": "%1$s", "compute_seconds": 100, "idempotency_key": "b-later"}]',
    (SELECT id FROM ids WHERE name = 'a'))::jsonb) WHERE outcome = 'recorded'), 1, 'usage after the payout is recorded');
SELECT is((SELECT row(r.*)::text FROM run_billing_rollup() r), '(1,1,1,0)', 'and counted, but paid earnings are not touched');
SELECT is((SELECT compute_cost FROM creator_earnings WHERE session_id = (SELECT id FROM ids WHERE name = 'a')), 0.042000::numeric,
    'the paid row keeps its cost');

-- Bounded per call.
SELECT is((SELECT count(*)::int FROM generate_series(1, 3) g,
                 LATERAL record_usage(jsonb_build_array(jsonb_build_object('instance_id', '70000000-0000-4000-8000-0000000000d1',
                                                                          'session_id', CASE WHEN g = 1 THEN (SELECT id FROM ids WHERE name = 'a') END,
                                                                          'compute_seconds', 1, 'idempotency_key', 'bound-' || g)))),
          3, 'three calls: one for the session, two for the instance alone');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM agentmarket_private.usage_pending), 2,
    'two usage rows wait: the third call added to the instance''s open row');
SET LOCAL ROLE service_role;
SELECT is((SELECT usage_rows FROM run_billing_rollup(1)), 1, 'a rollup takes at most max_rows rows');
SELECT is_empty('SELECT * FROM verify_metering()', 'consistent between bounded runs');
SELECT throws_ok('SELECT * FROM run_billing_rollup(0)', '22023', NULL, 'max_rows must be positive');

-- The messages check.
INSERT INTO ids SELECT 'b', (start_session('70000000-0000-4000-8000-0000000000d1')).id;
SELECT add_message((SELECT id FROM ids WHERE name = 'b'), 'assistant', 'a long answer', NULL, 500) \g /dev/null
SELECT end_session((SELECT id FROM ids WHERE name = 'b'), 0, 100, 100) \g /dev/null
SELECT is((SELECT problem FROM verify_metering() WHERE session_id = (SELECT id FROM ids WHERE name = 'b')),
          'its messages count 500 tokens, the session 200', 'verify_metering finds messages that count more tokens than their session');
RESET ROLE;
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "70000000-0000-4000-8000-00000000e001", "role": "authenticated"}', true) \g /dev/null
SELECT throws_ok('SELECT * FROM run_billing_rollup()', '42501', NULL, 'a user cannot run the rollup');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
