-- relays: an owner connects a chat relay and gets a one-time code; only the
-- chat gateway (service_role) confirms it, and only when the code arrives
-- from the external account; tokens are stored encrypted; inbound messages
-- are routed into one open session per connection, opened under the agent's
-- pricing and waking the instance; every failure has its own clear error.
-- Calls are made as PostgREST makes them.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(74);

SELECT agentmarket.configure('free_trial_credits', '0');
INSERT INTO users (id, email, role) VALUES
  ('72000000-0000-4000-8000-00000000c001', 'creator@relays.example', 'creator'),
  ('72000000-0000-4000-8000-00000000e001', 'owner@relays.example', 'user'),
  ('72000000-0000-4000-8000-00000000e002', 'other@relays.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, supported_relays, published_at) VALUES
  ('72000000-0000-4000-8000-0000000000a1', '72000000-0000-4000-8000-00000000c001', 'relay-session', 'Per Session',
   't', 'd', 'research', 'published', 'per_session', 10, 'https://x/1', '{telegram,slack}', now()),
  ('72000000-0000-4000-8000-0000000000a2', '72000000-0000-4000-8000-00000000c001', 'relay-task', 'Per Task',
   't', 'd', 'research', 'published', 'per_task', 5, 'https://x/2', '{telegram}', now()),
  ('72000000-0000-4000-8000-0000000000a3', '72000000-0000-4000-8000-00000000c001', 'relay-web', 'Web Only',
   't', 'd', 'research', 'published', 'free', NULL, 'https://x/3', '{}', now());
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('72000000-0000-4000-8000-0000000000d1', '72000000-0000-4000-8000-00000000e001', '72000000-0000-4000-8000-0000000000a1', 'am-r1', 'm1', 'running'),
  ('72000000-0000-4000-8000-0000000000d2', '72000000-0000-4000-8000-00000000e001', '72000000-0000-4000-8000-0000000000a2', 'am-r2', 'm2', 'suspended'),
  ('72000000-0000-4000-8000-0000000000d3', '72000000-0000-4000-8000-00000000e001', '72000000-0000-4000-8000-0000000000a3', 'am-r3', 'm3', 'running'),
  ('72000000-0000-4000-8000-0000000000d4', '72000000-0000-4000-8000-00000000e002', '72000000-0000-4000-8000-0000000000a1', 'am-r4', 'm4', 'running');
SELECT grant_credits('72000000-0000-4000-8000-00000000e001', 100, 'topup', 'topup_purchase') IS NOT NULL AS granted;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;
CREATE TEMP TABLE got (name text PRIMARY KEY, connection_id uuid, code text, expires_at timestamptz);
GRANT ALL ON got TO PUBLIC;
CREATE TEMP TABLE routed (name text PRIMARY KEY, r jsonb);
GRANT ALL ON routed TO PUBLIC;
CREATE FUNCTION pg_temp.code(n text) RETURNS text LANGUAGE sql AS $$ SELECT code FROM got WHERE name = n $$;
CREATE FUNCTION pg_temp.conn(n text) RETURNS uuid LANGUAGE sql AS $$ SELECT connection_id FROM got WHERE name = n $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

-- Connecting: a pending connection and a one-time code.
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e001');
INSERT INTO got SELECT 'tg1', * FROM connect_relay('72000000-0000-4000-8000-0000000000d1', 'telegram');
SELECT ok((SELECT code ~ '^[A-HJ-NP-Z2-9]{10}$' FROM got WHERE name = 'tg1'), 'the code has 10 unambiguous characters');
SELECT ok((SELECT expires_at BETWEEN now() + interval '14 minutes' AND now() + interval '16 minutes' FROM got WHERE name = 'tg1'),
    'the code expires after relay_code_minutes (15)');
SELECT is((SELECT status || ' ' || (external_user_id = 'pending:' || id) FROM relay_connections WHERE id = pg_temp.conn('tg1')),
    'pending true', 'the owner sees a pending connection that holds no external account yet');
SELECT throws_ok($$SELECT config FROM relay_connections$$, '42501', NULL, 'the owner cannot select config');
RESET role;
SELECT is(pg_temp.rows_containing(pg_temp.code('tg1')), 0::bigint, 'the code is stored only as a hash');

-- Another user, anon, bad input.
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e002');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'telegram')$$, 'P0002', NULL,
    'another user cannot connect a relay to the owner''s instance');
SELECT throws_ok($$SELECT disconnect_relay(pg_temp.conn('tg1'))$$, 'P0002', NULL, 'another user cannot disconnect it');
SELECT is((SELECT count(*)::int FROM relay_connections), 0, 'another user sees none of the owner''s connections');
SELECT throws_ok($$SELECT confirm_relay('telegram', '666', '666', pg_temp.code('tg1'))$$, '42501', NULL,
    'a user cannot confirm a code (only the gateway)');
SELECT throws_ok($$SELECT route_relay_message('telegram', '666', '666', 'hi')$$, '42501', NULL, 'a user cannot route messages');
SELECT pg_temp.act('anon');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'telegram')$$, '42501', NULL, 'anon cannot connect');
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e001');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'fax')$$, '22023', 'unknown relay "fax"',
    'an unknown relay is refused');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d2', 'slack', '{"team_id": "T1", "bot_token": "xoxb-1"}')$$,
    '22023', 'agent "relay-task" does not support relay "slack"', 'a relay the agent does not support is refused');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d3', 'telegram')$$, '22023', NULL,
    'a web-only agent takes no relay');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'slack', '{"team_id": "T1"}')$$,
    '22023', 'slack config lacks bot_token', 'a missing required key is named');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'slack', '{"team_id": "T1", "bot_token": "xoxb-1", "webhook": "x"}')$$,
    '22023', 'unknown slack config key "webhook"', 'an unknown key is refused');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'slack', '{"team_id": 7, "bot_token": "xoxb-1"}')$$,
    '22023', NULL, 'a value that is not a string is refused');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'slack', '{"team_id": "T 1; drop", "bot_token": "xoxb-1"}')$$,
    '22023', 'invalid slack team_id', 'a malformed id is refused');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'slack', '{"team_id": "T1", "bot_token": "xoxb 1"}')$$,
    '22023', 'invalid slack bot_token', 'a malformed token is refused and not echoed');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'slack', '[1]')$$,
    '22023', 'relay config must be a JSON object', 'config must be an object');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'telegram', '{}', 'bad id!')$$,
    '22023', 'invalid external user id', 'a malformed expected account is refused');
SELECT throws_ok($$SELECT connect_relay(gen_random_uuid(), 'telegram')$$, 'P0002', NULL, 'an unknown instance is not found');

-- Tokens go to secrets, encrypted.
INSERT INTO got SELECT 'slack1', * FROM connect_relay('72000000-0000-4000-8000-0000000000d1', 'slack',
    '{"team_id": "T0RELAYS", "bot_token": "xoxb-RELAYTOKENMARKER-42"}');
RESET role;
SELECT is((SELECT config FROM relay_connections WHERE id = pg_temp.conn('slack1')), '{"team_id": "T0RELAYS"}'::jsonb,
    'config keeps only the non-secret keys');
SELECT is(pg_temp.rows_containing('RELAYTOKENMARKER'), 0::bigint, 'the token is in no row of any table');
SELECT is((SELECT agentmarket_private.get_secret(s.secret_id) FROM agentmarket_private.relay_connection_secrets s
            WHERE s.connection_id = pg_temp.conn('slack1') AND s.key = 'bot_token'),
    'xoxb-RELAYTOKENMARKER-42', 'the token is an encrypted secret of the connection');

-- Confirming: only the code, from the external account, once.
SELECT pg_temp.act('service_role');
SELECT throws_ok($$SELECT confirm_relay('telegram', '1001', '1001', 'WRONGCODE2')$$, '22023', 'invalid relay code',
    'a wrong code is refused');
SELECT throws_ok($$SELECT confirm_relay('slack', '1001', '1001', pg_temp.code('tg1'))$$, '22023', 'invalid relay code',
    'a code is valid for its relay only');
SELECT throws_ok($$SELECT confirm_relay('telegram', 'pending:' || pg_temp.conn('tg1'), NULL, pg_temp.code('tg1'))$$,
    '22023', 'invalid external user id', 'a placeholder is not an account');
SELECT is((SELECT status || ' ' || external_user_id || ' ' || external_chat_id
             FROM confirm_relay('telegram', '1001', '50001', lower(' ' || pg_temp.code('tg1') || ' '))),
    'active 1001 50001', 'the code from the account makes the connection active for that account (case and spaces ignored)');
SELECT throws_ok($$SELECT confirm_relay('telegram', '1001', '1001', pg_temp.code('tg1'))$$, '22023', 'invalid relay code',
    'a code works once');
RESET role;
SELECT is((SELECT count(*)::int FROM agentmarket_private.relay_verifications v WHERE v.connection_id = pg_temp.conn('tg1')), 0,
    'the verification is gone');

-- Expiry.
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e001');
INSERT INTO got SELECT 'tg2', * FROM connect_relay('72000000-0000-4000-8000-0000000000d2', 'telegram');
RESET role;
UPDATE agentmarket_private.relay_verifications SET expires_at = now() - interval '1 second' WHERE connection_id = pg_temp.conn('tg2');
SELECT pg_temp.act('service_role');
SELECT throws_ok($$SELECT confirm_relay('telegram', '1002', '1002', pg_temp.code('tg2'))$$, '22023', 'relay code has expired',
    'an expired code is refused');
SELECT is((SELECT status FROM relay_connections WHERE id = pg_temp.conn('tg2')), 'pending', '... and the connection stays pending');
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e001');
INSERT INTO got SELECT 'tg3', * FROM connect_relay('72000000-0000-4000-8000-0000000000d2', 'telegram');
SELECT is((SELECT count(*)::int FROM relay_connections WHERE id = pg_temp.conn('tg2')), 0,
    'connecting again drops the expired pending connection');

-- The seed's one connection per account: 23505.
SELECT pg_temp.act('service_role');
SELECT throws_ok($$SELECT confirm_relay('telegram', '1001', '1001', pg_temp.code('tg3'))$$, '23505',
    'telegram account 1001 is already connected', 'an account connected elsewhere answers 23505 "already connected"');
SELECT is((SELECT status FROM relay_connections WHERE id = pg_temp.conn('tg3')), 'pending', '... and nothing changed');

-- An expected account: only it may confirm; its messages learn the connection is pending.
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e002');
INSERT INTO got SELECT 'x1', * FROM connect_relay('72000000-0000-4000-8000-0000000000d4', 'telegram', '{}', '2002');
SELECT pg_temp.act('service_role');
SELECT throws_ok($$SELECT confirm_relay('telegram', '3003', '3003', pg_temp.code('x1'))$$, '22023', 'invalid relay code',
    'someone else who sends the code cannot claim the connection');
SELECT throws_ok($$SELECT route_relay_message('telegram', '2002', '2002', 'hello?')$$, '22023',
    'telegram connection of 2002 is waiting for its code', 'a pending connection has its own error');
SELECT is((SELECT status FROM confirm_relay('telegram', '2002', '2002', pg_temp.code('x1'))), 'active',
    'the expected account confirms');

-- Routing.
SELECT throws_ok($$SELECT route_relay_message('telegram', '9999', '9999', 'hi')$$, 'P0002', 'unknown telegram sender 9999',
    'an unknown sender has its own error');
SELECT throws_ok($$SELECT route_relay_message('telegram', '1001', '50001', '')$$, '22023', NULL, 'empty content is refused');
SELECT throws_ok($$SELECT route_relay_message('fax', '1001', '50001', 'x')$$, '22023', NULL, 'an unknown relay is refused');
INSERT INTO routed SELECT 'm1', to_jsonb(r) FROM route_relay_message('telegram', '1001', '50001', 'Hello agent') r;
SELECT is((SELECT r->>'new_session' || ' ' || (r->>'waking') || ' ' || (r->>'instance_status') || ' ' || (r->>'fly_app_name')
                  || ' ' || (r->>'fly_machine_id') || ' ' || (r->>'instance_id') FROM routed WHERE name = 'm1'),
    'true false running am-r1 m1 72000000-0000-4000-8000-0000000000d1',
    'the first message opens a session and says where the instance runs');
SELECT is((SELECT relay || ' ' || (id = (SELECT current_session_id FROM relay_connections WHERE id = pg_temp.conn('tg1')))
                  || ' ' || user_id || ' ' || total_credits_consumed
             FROM sessions WHERE id = (SELECT (r->>'session_id')::uuid FROM routed WHERE name = 'm1')),
    'telegram true 72000000-0000-4000-8000-00000000e001 10', 'a telegram session of the owner, paid per session');
SELECT is((SELECT role || ': ' || content FROM messages WHERE id = (SELECT (r->>'message_id')::uuid FROM routed WHERE name = 'm1')),
    'user: Hello agent', 'the message is the user''s');
INSERT INTO routed SELECT 'm2', to_jsonb(r) FROM route_relay_message('telegram', '1001', '50001', 'And again') r;
SELECT is((SELECT (a.r->>'session_id') = (b.r->>'session_id') AND NOT (b.r->>'new_session')::boolean
             FROM routed a, routed b WHERE a.name = 'm1' AND b.name = 'm2'), true, 'the next message goes to the same session');
SELECT is((SELECT subscription_credits + topup_credits - held_credits FROM credit_balances WHERE user_id = '72000000-0000-4000-8000-00000000e001'), 90,
    'the session was paid once (its price held until it ends)');
SELECT is((SELECT count(*)::int FROM messages WHERE session_id = (SELECT (r->>'session_id')::uuid FROM routed WHERE name = 'm1')), 2,
    'both messages are in it');
INSERT INTO routed SELECT 'm3', to_jsonb(r) FROM route_relay_message('telegram', '1001', '77777', 'from a group') r;
SELECT is((SELECT external_chat_id FROM relay_connections WHERE id = pg_temp.conn('tg1')), '77777',
    'replies go to the chat the user last wrote from');
SELECT lives_ok($$SELECT end_session((SELECT (r->>'session_id')::uuid FROM routed WHERE name = 'm1'), 60, 10, 10, 0.01)$$,
    'the platform ends the session');
INSERT INTO routed SELECT 'm4', to_jsonb(r) FROM route_relay_message('telegram', '1001', '77777', 'new day') r;
SELECT is((SELECT (r->>'new_session')::boolean AND (r->>'session_id') <> (SELECT r->>'session_id' FROM routed WHERE name = 'm1')
             FROM routed WHERE name = 'm4'), true, 'after the session ended, the next message opens a new one');

-- No credits: PT402 and nothing written.
SELECT throws_ok($$SELECT route_relay_message('telegram', '2002', '2002', 'hi')$$, 'PT402', NULL,
    'a user without credits has their own error');
SELECT is((SELECT count(*)::int FROM sessions WHERE instance_id = '72000000-0000-4000-8000-0000000000d4'), 0,
    '... and no session was opened');

-- Disconnecting.
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e001');
SELECT is((SELECT status FROM disconnect_relay(pg_temp.conn('tg1'))), 'disconnected', 'the owner disconnects');
SELECT is((SELECT status FROM disconnect_relay(pg_temp.conn('tg1'))), 'disconnected', 'disconnecting again is harmless');
SELECT is((SELECT status FROM disconnect_relay(pg_temp.conn('slack1'))), 'disconnected', 'a pending connection is dropped');
SELECT is((SELECT count(*)::int FROM relay_connections WHERE id = pg_temp.conn('slack1')), 0, '... without a trace');
RESET role;
SELECT is((SELECT count(*)::int FROM agentmarket_private.secrets), 0, '... and its token was deleted');
SELECT pg_temp.act('service_role');
SELECT throws_ok($$SELECT route_relay_message('telegram', '1001', '1001', 'still there?')$$, '22023',
    'telegram connection of 1001 is disconnected', 'a disconnected connection has its own error');
-- The account may be connected again, here to the suspended per_task instance.
SELECT is((SELECT status FROM confirm_relay('telegram', '1001', '1001', pg_temp.code('tg3'))), 'active',
    'a disconnected account can be connected again with a new code');
SELECT is((SELECT count(*)::int FROM relay_connections WHERE id = pg_temp.conn('tg1')), 0, '... which replaces the old row');
INSERT INTO routed SELECT 'w1', to_jsonb(r) FROM route_relay_message('telegram', '1001', '1001', 'wake up') r;
SELECT is((SELECT r->>'new_session' || ' ' || (r->>'waking') || ' ' || (r->>'instance_status') FROM routed WHERE name = 'w1'),
    'true true suspended', 'a message to a suspended instance opens a session and wakes it');
INSERT INTO routed SELECT 'w2', to_jsonb(r) FROM route_relay_message('telegram', '1001', '1001', 'hello?') r;
RESET role;
SELECT is((SELECT count(*)::int FROM agentmarket_private.jobs
            WHERE serial_key = '72000000-0000-4000-8000-0000000000d2' AND kind = 'fly.start_machine' AND status = 'queued'), 1,
    '... with one start job');
SELECT pg_temp.act('service_role');
SELECT is((SELECT (r->>'waking')::boolean FROM routed WHERE name = 'w2'), false, 'a second message does not wake it twice');
SELECT is((SELECT total_credits_consumed FROM sessions WHERE id = (SELECT (r->>'session_id')::uuid FROM routed WHERE name = 'w1')), 0,
    'a per_task session is charged per task, not at the start');
RESET role;
SELECT agentmarket.deduct_credits('72000000-0000-4000-8000-00000000e001', 78) IS NOT NULL AS spent;  -- 2 left, a task costs 5
SELECT pg_temp.act('service_role');
SELECT lives_ok($$SELECT end_session((SELECT (r->>'session_id')::uuid FROM routed WHERE name = 'w1'), 1, 1, 1, 0)$$, 'ended');
SELECT throws_ok($$SELECT route_relay_message('telegram', '1001', '1001', 'one more task')$$, 'PT402', NULL,
    'a per_task agent needs the price of a task available to open a session');

-- A destroyed instance.
RESET role;
SELECT grant_credits('72000000-0000-4000-8000-00000000e002', 50, 'topup', 'topup_purchase') IS NOT NULL AS granted;
UPDATE agent_instances SET status = 'destroyed' WHERE id = '72000000-0000-4000-8000-0000000000d4';
SELECT is((SELECT status FROM relay_connections WHERE id = pg_temp.conn('x1')), 'disconnected',
    'destroying an instance disconnects its relays');
SELECT pg_temp.act('service_role');
SELECT throws_ok($$SELECT route_relay_message('telegram', '2002', '2002', 'hi')$$, '22023',
    'instance 72000000-0000-4000-8000-0000000000d4 is destroyed', 'a destroyed instance has its own error');
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e002');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d4', 'telegram')$$, '22023', NULL,
    'a destroyed instance takes no new relay');

-- Too many pending codes.
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e001');
SELECT lives_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'telegram') FROM generate_series(1, 5)$$,
    'five pending connections');
SELECT throws_ok($$SELECT connect_relay('72000000-0000-4000-8000-0000000000d1', 'telegram')$$, '22023',
    'too many relay connections waiting for their code', 'a sixth is refused');
RESET role;

-- The owner deleting a connection row (a privilege PostgREST exposes) takes its tokens too.
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e001');
INSERT INTO got SELECT 'tg4', * FROM connect_relay('72000000-0000-4000-8000-0000000000d2', 'telegram', '{"bot_username": "mybot", "bot_token": "123:ABC"}');
RESET role;
SELECT is((SELECT count(*)::int FROM agentmarket_private.secrets), 1, 'one relay token is stored');
SELECT pg_temp.act('authenticated', '72000000-0000-4000-8000-00000000e001');
DELETE FROM relay_connections WHERE id = pg_temp.conn('tg4');
RESET role;
SELECT is((SELECT count(*)::int FROM agentmarket_private.secrets), 0, 'deleting the connection deletes its token');

SELECT * FROM finish();
ROLLBACK;
