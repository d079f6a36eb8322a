-- Relays: Linus connects his Telegram account to his Inbox Zero with a
-- one-time code, the platform's chat gateway confirms it when the code
-- arrives from his account, and his next Telegram message is routed into a
-- session of its own.
\set linus '''00000000-0000-4000-8000-0000000e0001'''
\set inbox '''00000000-0000-4000-8000-00000000a9e1'''
SELECT id AS instance FROM agentmarket.agent_instances WHERE user_id = :linus AND agent_id = :inbox \gset

\echo 'Linus (authenticated) connects Telegram, and says he will send the code from account 424242:'
SELECT set_config('request.jwt.claims', json_build_object('sub', :linus)::text, false) \g /dev/null
SET role authenticated;
SELECT connection_id, code FROM agentmarket.connect_relay(:'instance', 'telegram', '{}', '424242') \gset
SELECT set_config('demo.relay_code', :'code', false) \g /dev/null
\echo 'his app shows the code' :code '(valid 15 minutes, once); the connection waits for it:'
SELECT relay, status FROM agentmarket.relay_connections WHERE id = :'connection_id';
RESET role;

\echo
\echo 'The chat gateway (service_role) receives "/start <code>" from account 666: refused.'
SET role service_role;
SET client_min_messages = notice;
DO $$
BEGIN
    PERFORM agentmarket.confirm_relay('telegram', '666', '666', current_setting('demo.relay_code'));
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'refused (%): %', SQLSTATE, SQLERRM;
END $$;
\echo 'A message from 424242 before the code: the gateway learns the connection is pending.'
DO $$
BEGIN
    PERFORM agentmarket.route_relay_message('telegram', '424242', '424242', 'hello?');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'refused (%): %', SQLSTATE, SQLERRM;
END $$;
SET client_min_messages = warning;
\echo 'The code arrives from 424242: the connection is active.'
SELECT relay, external_user_id, external_chat_id, status
  FROM agentmarket.confirm_relay('telegram', '424242', '424242', :'code');

\echo 'His machine will be told (a fly.update_runtime job, run by the sidecar in a later step):'
SELECT env->>'AGENTMARKET_RELAYS' AS relays, env->>'AGENTMARKET_MODEL' AS model, secret_names
  FROM agentmarket.instance_runtime(:'instance');
RESET role;
SELECT kind, status FROM agentmarket_private.jobs WHERE serial_key = :'instance' ORDER BY id DESC LIMIT 1;
\echo 'Every demo step starts its own, empty Fly stand-in, so the machine of step 50 is gone: the demo'
\echo 'drops this update (test/suites/sidecar_runtime shows it reaching the stand-in''s machine).'
DELETE FROM agentmarket_private.jobs WHERE serial_key = :'instance' AND kind = 'fly.update_runtime' AND status = 'queued';
SET role service_role;

\echo
\echo 'Linus writes on Telegram; the gateway routes the message: a new session, paid per session, on his running machine.'
SELECT session_id, new_session, waking, instance_status, fly_app_name, fly_machine_id IS NOT NULL AS has_machine
  FROM agentmarket.route_relay_message('telegram', '424242', '424242', 'What is on my calendar today?') \gset
\echo 'session' :session_id 'new:' :new_session 'on' :fly_app_name '(' :instance_status ')'
SELECT * FROM agentmarket.route_relay_message('telegram', '424242', '424242', 'And tomorrow?') \gset second_
\echo 'a second message joins the same session:' :second_new_session
SELECT relay, total_credits_consumed AS credits,
       (SELECT count(*) FROM agentmarket.messages m WHERE m.session_id = s.id) AS messages
  FROM agentmarket.sessions s WHERE s.id = :'session_id';
\echo 'An unknown Telegram account gets its own error:'
SET client_min_messages = notice;
DO $$
BEGIN
    PERFORM agentmarket.route_relay_message('telegram', '999999', '999999', 'hi');
EXCEPTION WHEN no_data_found THEN RAISE NOTICE 'refused (%): %', SQLSTATE, SQLERRM;
END $$;
SET client_min_messages = warning;
SELECT (agentmarket.end_session(:'session_id', 30, 200, 400, 0.004)).ended_at IS NOT NULL AS ended;
RESET role;
SELECT set_config('request.jwt.claims', '', false) \g /dev/null
