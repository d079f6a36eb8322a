-- Sessions: Linus talks to his Inbox Zero (provisioned by the sidecar in the
-- step before) over Telegram, pays per session, the platform meters the
-- session when it ends, and Ada earns her share with the exact split.
\set linus '''00000000-0000-4000-8000-0000000e0001'''
\set inbox '''00000000-0000-4000-8000-00000000a9e1'''
SELECT id AS instance, status FROM agentmarket.agent_instances
 WHERE user_id = :linus AND agent_id = :inbox \gset
\echo 'Linus''s Inbox Zero instance is' :'status'

\echo 'Linus''s credit lots in burn order, each knowing what its credits are worth (the free trial is a gift: 0 USD):'
SELECT credit_type AS pot, grant_type, remaining, credits, value_usd,
       CASE WHEN credits > 0 THEN round(value_usd / credits, 6) END AS usd_per_credit
  FROM agentmarket_private.credit_lots_now
 WHERE user_id = :linus AND remaining > 0
 ORDER BY credit_type = 'topup', expires_at NULLS LAST, created_at, id;
\echo 'Linus (authenticated) opens a Telegram session: Inbox Zero costs 25 credits per session.'
SELECT set_config('request.jwt.claims', json_build_object('sub', :linus)::text, false) \g /dev/null
SET role authenticated;
SELECT available_credits AS available_before FROM agentmarket.my_balance();
SELECT id AS session, relay, total_credits_consumed AS credits FROM agentmarket.start_session(:'instance', 'telegram') \gset
SELECT set_config('demo.session', :'session', false) \g /dev/null
\echo 'session' :'session' 'over' :'relay' 'took' :credits 'credits'
SELECT agentmarket.add_message(:'session', 'user', 'Triage this morning''s inbox, please.') IS NOT NULL AS said;
SELECT available_credits AS available_after FROM agentmarket.my_balance();
\echo 'He cannot speak for the agent, nor meter his own session:'
SET client_min_messages = notice;
DO $$
BEGIN
    PERFORM agentmarket.add_message(current_setting('demo.session')::uuid, 'assistant', 'You owe me nothing.');
EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'refused (%): %', SQLSTATE, SQLERRM;
END $$;
SET client_min_messages = warning;
RESET role;

\echo
\echo 'The platform (service_role) relays the agent''s answers, then ends the session with its metering:'
\echo '180 compute seconds, 1,200 input and 2,400 output tokens; the infrastructure cost comes from the price'
\echo 'table: Inbox Zero runs on shared-cpu-1x with 512 MB, 180 s x 0.0000012307 USD/s = 0.000222 USD.'
SET role service_role;
SELECT agentmarket.add_message(:'session', 'tool', 'gmail.list(unread)', '{"name": "gmail", "input": {"q": "is:unread"}, "output": "14 messages"}', 0) IS NOT NULL AS tool_call;
SELECT agentmarket.add_message(:'session', 'assistant', '14 unread: 3 need you today, 11 archived.', tokens_used => 31) IS NOT NULL AS answered;
SELECT ended_at IS NOT NULL AS ended, compute_seconds, total_input_tokens, total_output_tokens
  FROM agentmarket.end_session(:'session', 180, 1200, 2400);
RESET role;

\echo
\echo 'The session''s gross revenue is the value of the credits it consumed: the last 5 goodwill credits (worth 0)'
\echo 'and 20 bought ones (10.00 USD / 1,100 each, pro rata 0.1818). Ada earns (gross - compute cost) x 0.85,'
\echo 'rounded down to 4 decimals; the platform keeps the rest, and a creator is never paid more than users paid:'
SELECT gross_revenue, compute_cost, creator_amount, platform_amount, creator_rate,
       creator_amount + platform_amount = gross_revenue AS adds_up
  FROM agentmarket.creator_earnings WHERE session_id = :'session';
\echo 'The usage event (what the billing aggregation reads):'
SELECT compute_seconds, input_tokens, output_tokens, credits_consumed, cost_usd
  FROM agentmarket.usage_events WHERE session_id = :'session';
\echo 'The conversation, as Linus sees it (RLS: his own sessions only):'
SET role authenticated;
SELECT role, content FROM agentmarket.messages WHERE session_id = :'session' ORDER BY created_at, role DESC;
RESET role;
SELECT set_config('request.jwt.claims', '', false) \g /dev/null
