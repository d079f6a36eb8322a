-- Metering: a session metered by the platform in batches, costed from the
-- price table, folded by the billing rollup; then a spending cap is hit.
\set linus '''00000000-0000-4000-8000-0000000e0001'''
\set inbox '''00000000-0000-4000-8000-00000000a9e1'''
SELECT i.id AS instance, i.status, a.fly_machine_size AS size, a.fly_machine_memory_mb AS memory
  FROM agentmarket.agent_instances i JOIN agentmarket.agents a ON a.id = i.agent_id
 WHERE i.user_id = :linus AND i.agent_id = :inbox \gset
\echo 'Compute prices (Fly''s published list; the operator may override any):'
SET role service_role;
SELECT machine_size, memory_mb, usd_per_second, usd_per_month, source FROM agentmarket.machine_prices()
 WHERE (machine_size, memory_mb) IN (('shared-cpu-1x', 256), ('shared-cpu-1x', 512), ('performance-1x', 2048));
RESET role;
\echo 'Linus''s Inbox Zero is' :'status' 'on' :'size' 'with' :memory 'MB.'

\echo
\echo 'Linus opens a web session (25 credits).'
SELECT set_config('request.jwt.claims', json_build_object('sub', :linus)::text, false) \g /dev/null
SET role authenticated;
SELECT id AS session FROM agentmarket.start_session(:'instance') \gset
RESET role;

\echo
\echo 'The platform reports usage in a batch: three events for the session (one of them a retry of'
\echo 'another, same key) and one for the machine outside any session.'
SET role service_role;
SELECT event_position, idempotency_key, outcome, usage_event_id IS NOT NULL AS folded
  FROM agentmarket.record_usage(format('[
    {"instance_id": "%1$s", "session_id": "%2$s", "compute_seconds": 120, "input_tokens": 800, "output_tokens": 1500, "idempotency_key": "demo-u1"},
    {"instance_id": "%1$s", "session_id": "%2$s", "compute_seconds": 90, "input_tokens": 400, "output_tokens": 700, "idempotency_key": "demo-u2"},
    {"instance_id": "%1$s", "session_id": "%2$s", "compute_seconds": 120, "input_tokens": 800, "output_tokens": 1500, "idempotency_key": "demo-u1"},
    {"instance_id": "%1$s", "compute_seconds": 600, "idempotency_key": "demo-u3"}]', :'instance', :'session')::jsonb);
\echo 'A malformed batch is refused whole, naming the event:'
SET client_min_messages = notice;
DO $$
BEGIN
    PERFORM agentmarket.record_usage('[{"instance_id": "00000000-0000-4000-8000-0000000e0001", "compute_seconds": 5, "idempotency_key": "demo-bad-1"},
                                       {"compute_seconds": -1, "idempotency_key": "demo-bad-2"}]');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'refused (%): %', SQLSTATE, SQLERRM;
END $$;
SET client_min_messages = warning;
RESET role;
\echo 'One usage row per instance and session of the batch, costed at 0.0000012307 USD/s:'
SELECT session_id IS NOT NULL AS in_session, compute_seconds, input_tokens, output_tokens, cost_usd
  FROM agentmarket.usage_events WHERE instance_id = :'instance'
   AND id IN (SELECT usage_event_id FROM agentmarket_private.usage_keys WHERE idempotency_key LIKE 'demo-u%')
 ORDER BY 1 DESC;
SET role service_role;

\echo
\echo 'The billing rollup (pg_cron runs it every minute) folds them into the session and the instance:'
SELECT * FROM agentmarket.run_billing_rollup();
SELECT compute_seconds, total_input_tokens, total_output_tokens, total_credits_consumed
  FROM agentmarket.sessions WHERE id = :'session';
RESET role;
SELECT compute_seconds, compute_usd, usage_rows FROM agentmarket_private.instance_costs WHERE instance_id = :'instance';
\echo 'Run again, it finds nothing: what it folded is never folded twice.'
SET role service_role;
SELECT usage_rows FROM agentmarket.run_billing_rollup();

\echo
\echo 'The platform ends the session with its last 30 seconds (0.000037 USD); Ada''s earnings are net'
\echo 'of the session''s whole recorded cost: 0.000258 + 0.000037 = 0.000295 USD.'
SELECT ended_at IS NOT NULL AS ended, compute_seconds FROM agentmarket.end_session(:'session', 30, 0, 0);
SELECT gross_revenue, compute_cost, creator_amount, platform_amount FROM agentmarket.creator_earnings WHERE session_id = :'session';
SELECT count(*) AS problems FROM agentmarket.verify_metering() WHERE session_id = :'session';
RESET role;

\echo
\echo 'Spend control: Linus caps his month at what he has spent so far plus 10 credits.'
SET role authenticated;
SELECT month_spent, monthly_cap FROM agentmarket.set_monthly_spend_cap(
    (SELECT month_spent::integer + 10 FROM agentmarket.my_spend()));
\echo 'A new 25-credit session would pass it: refused, and the DETAIL names the cap.'
SET client_min_messages = notice;
DO $$
DECLARE
    d text;
BEGIN
    PERFORM agentmarket.start_session((SELECT id FROM agentmarket.agent_instances
                                        WHERE agent_id = '00000000-0000-4000-8000-00000000a9e1'));
EXCEPTION WHEN SQLSTATE 'PT402' THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'refused (%): % — %', SQLSTATE, SQLERRM, d;
END $$;
SET client_min_messages = warning;
SELECT available_credits FROM agentmarket.my_balance();
SELECT month_spent, monthly_cap FROM agentmarket.set_monthly_spend_cap(NULL);
RESET role;
\echo 'Notifications waiting for the platform (low balance, caps), each once per crossing:'
SET role service_role;
SELECT kind, detail FROM agentmarket.claim_notifications();
RESET role;
SELECT set_config('request.jwt.claims', '', false) \g /dev/null
