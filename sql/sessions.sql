-- sessions: talking to a hired agent and paying for it.  A session opens on a
-- running instance of the caller, is paid as the agent's pricing says, is
-- metered when the platform ends it, and becomes the creator's earnings with
-- the exact split; a refund returns the credits and claws back unpaid
-- earnings.  Calls are made as PostgREST makes them.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(59);

-- Fixture (as the platform's back office would leave it).
SELECT agentmarket.configure('free_trial_credits', '100');
-- Gifts worth list price here, so the figures are the classic credits x 0.01
-- (sql/books.sql covers what lots of other values do).
SELECT agentmarket.configure('promotional_credit_value_usd', '0.01');
INSERT INTO users (id, email, role) VALUES
  ('50000000-0000-4000-8000-00000000c001', 'creator@sess.example', 'creator'),
  ('50000000-0000-4000-8000-00000000e001', 'user@sess.example', 'user'),
  ('50000000-0000-4000-8000-00000000e002', 'other@sess.example', 'user'),
  ('50000000-0000-4000-8000-00000000a001', 'admin@sess.example', 'admin');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, supported_relays, published_at) VALUES
  ('50000000-0000-4000-8000-0000000000a1', '50000000-0000-4000-8000-00000000c001', 'sess-per-session', 'Per Session',
   't', 'd', 'research', 'published', 'per_session', 25, 'https://x/1', '{telegram}', now()),
  ('50000000-0000-4000-8000-0000000000a2', '50000000-0000-4000-8000-00000000c001', 'sess-per-task', 'Per Task',
   't', 'd', 'research', 'published', 'per_task', 10, 'https://x/2', '{}', now()),
  ('50000000-0000-4000-8000-0000000000a3', '50000000-0000-4000-8000-00000000c001', 'sess-free', 'Free',
   't', 'd', 'research', 'published', 'free', NULL, 'https://x/3', '{}', now());
-- Compute prices (metering.sql) that give round costs.
UPDATE agents SET fly_machine_size = 'performance-1x', fly_machine_memory_mb = 2048 WHERE id = '50000000-0000-4000-8000-0000000000a1';
UPDATE agents SET fly_machine_size = 'performance-2x', fly_machine_memory_mb = 4096 WHERE id = '50000000-0000-4000-8000-0000000000a2';
SELECT set_machine_price('performance-1x', 2048, 0.000102875), set_machine_price('performance-2x', 4096, 0.02) \g /dev/null
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('50000000-0000-4000-8000-0000000000d1', '50000000-0000-4000-8000-00000000e001', '50000000-0000-4000-8000-0000000000a1', 'am-d1', 'm1', 'running'),
  ('50000000-0000-4000-8000-0000000000d2', '50000000-0000-4000-8000-00000000e001', '50000000-0000-4000-8000-0000000000a2', 'am-d2', 'm2', 'running'),
  ('50000000-0000-4000-8000-0000000000d3', '50000000-0000-4000-8000-00000000e001', '50000000-0000-4000-8000-0000000000a3', 'am-d3', 'm3', 'suspended'),
  ('50000000-0000-4000-8000-0000000000d4', '50000000-0000-4000-8000-00000000e002', '50000000-0000-4000-8000-0000000000a1', 'am-d4', 'm4', 'running');
SELECT grant_credits('50000000-0000-4000-8000-00000000e001', 50, 'topup', 'topup_purchase') IS NOT NULL AS granted;
CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);
GRANT ALL ON ids TO PUBLIC;

-- The user opens a session with a per_session agent over the web.
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "50000000-0000-4000-8000-00000000e001", "role": "authenticated"}', true);
INSERT INTO ids SELECT 'web', (start_session('50000000-0000-4000-8000-0000000000d1')).id;
SELECT is((SELECT subscription_credits || '/' || topup_credits || '/' || held_credits FROM my_balance()), '100/50/25',
    'a per_session agent''s price is held at the start (captured when the session ends: sessions_hold)');
SELECT is((SELECT relay FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'web')), 'web', 'the relay defaults to web');
SELECT is((SELECT total_credits_consumed FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'web')), 25,
    'the session records the credits it took');
SELECT lives_ok($$INSERT INTO ids SELECT 'telegram', (start_session('50000000-0000-4000-8000-0000000000d1', 'telegram')).id$$,
    'a relay the agent supports');
SELECT throws_ok($$SELECT start_session('50000000-0000-4000-8000-0000000000d1', 'whatsapp')$$, '22023',
    'agent "sess-per-session" does not support relay "whatsapp"', 'a relay the agent does not support is refused');
SELECT throws_ok($$SELECT start_session('50000000-0000-4000-8000-0000000000d1', 'fax')$$, '22023',
    'unknown relay "fax"', 'an unknown relay is refused');
SELECT lives_ok($$INSERT INTO ids SELECT 'woken', (start_session('50000000-0000-4000-8000-0000000000d3')).id$$,
    'a session on a suspended instance is opened, not refused');
SELECT is((start_session('50000000-0000-4000-8000-0000000000d1')).id, (SELECT id FROM ids WHERE name = 'web'),
    'a second start on the same instance and relay returns the open session');
SELECT is((SELECT count(*)::int FROM sessions WHERE instance_id = '50000000-0000-4000-8000-0000000000d1' AND relay = 'web'), 1,
    'and opens no other');
SELECT is((SELECT subscription_credits || '/' || topup_credits || '/' || held_credits FROM my_balance()), '100/50/50',
    'nor holds again (25 for web, 25 for telegram)');
SELECT throws_ok($$SELECT start_session('50000000-0000-4000-8000-0000000000d4')$$, 'P0002', NULL,
    'another user''s instance does not exist for the caller');
SELECT throws_ok($$SELECT start_session(NULL)$$, '22023', NULL, 'a NULL instance is a bad argument');

-- Messages.
SELECT lives_ok($$SELECT add_message((SELECT id FROM ids WHERE name = 'web'), 'user', 'Summarise my inbox')$$,
    'the user adds a user message');
SELECT throws_ok($$SELECT add_message((SELECT id FROM ids WHERE name = 'web'), 'user', 'x', NULL, 5)$$, '42501', NULL,
    'tokens_used is the platform''s to report, not the user''s');
SELECT throws_ok($$SELECT add_message((SELECT id FROM ids WHERE name = 'web'), 'assistant', 'forged')$$, '42501', NULL,
    'the user cannot put words in the agent''s mouth');
SELECT throws_ok($$SELECT add_message((SELECT id FROM ids WHERE name = 'web'), 'wizard', 'x')$$, '22023', NULL,
    'an unknown role is refused');
SELECT throws_ok($$SELECT add_message((SELECT id FROM ids WHERE name = 'web'), 'user', 'x', '{"name": "t"}')$$, '22023', NULL,
    'only tool messages carry tool_use');
SELECT throws_ok($$SELECT add_message((SELECT id FROM ids WHERE name = 'web'), 'user', 'x', NULL, -1)$$, '22023', NULL,
    'negative token counts are refused');
SELECT throws_ok($$SELECT end_session((SELECT id FROM ids WHERE name = 'web'), 1, 1, 1, 0)$$, '42501', NULL,
    'a user cannot end (meter) their own session');
SELECT throws_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'web'), 'task-1')$$, '42501', NULL,
    'a user cannot report tasks');

-- Not enough credits: nothing is written.
SELECT set_config('request.jwt.claims', '{"sub": "50000000-0000-4000-8000-00000000e002", "role": "authenticated"}', true);
SELECT lives_ok($$INSERT INTO ids SELECT 'x1', (start_session('50000000-0000-4000-8000-0000000000d4')).id$$, 'the other user has 100 free credits');
SELECT lives_ok($$INSERT INTO ids SELECT 'x2', (start_session('50000000-0000-4000-8000-0000000000d4', 'telegram')).id$$, '... 50 left');
-- (one open session per instance and relay: the platform ends these two)
SET LOCAL ROLE service_role;
SELECT end_session(id, 1, 0, 0) FROM ids WHERE name IN ('x1', 'x2') \g /dev/null
RESET ROLE;
SELECT set_config('role', 'authenticated', true) \g /dev/null
SELECT lives_ok($$INSERT INTO ids SELECT 'x3', (start_session('50000000-0000-4000-8000-0000000000d4')).id$$, '... 25 left');
SELECT lives_ok($$INSERT INTO ids SELECT 'x4', (start_session('50000000-0000-4000-8000-0000000000d4', 'telegram')).id$$, '... none left');
SET LOCAL ROLE service_role;
SELECT end_session(id, 1, 0, 0) FROM ids WHERE name = 'x3' \g /dev/null
RESET ROLE;
SELECT set_config('role', 'authenticated', true) \g /dev/null
SELECT throws_ok($$SELECT start_session('50000000-0000-4000-8000-0000000000d4')$$, 'PT402', NULL,
    'without enough credits the session is refused with PT402');
SELECT is((SELECT count(*)::int FROM sessions WHERE instance_id = '50000000-0000-4000-8000-0000000000d4'), 4,
    'and no session row was left behind');
RESET ROLE;
SELECT set_config('request.jwt.claims', '', true);

-- anon has no way in.
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT agentmarket.start_session('50000000-0000-4000-8000-0000000000d1')$$, '42501', NULL,
    'anon cannot start sessions');
RESET ROLE;

-- The platform (service_role) speaks for the agent and meters the session.
SET LOCAL ROLE service_role;
SELECT lives_ok($$SELECT add_message((SELECT id FROM ids WHERE name = 'web'), 'assistant', 'You have 3 new emails.', NULL, 12)$$,
    'the platform adds the agent''s answer');
SELECT lives_ok($$SELECT add_message((SELECT id FROM ids WHERE name = 'web'), 'tool', 'ok', '{"name": "gmail", "input": {}, "output": "3"}', 0)$$,
    'the platform adds a tool call');
SELECT throws_ok($$SELECT end_session((SELECT id FROM ids WHERE name = 'web'), 60, NULL, 200)$$, '22023',
    'metering values must be zero or more', 'missing metering is refused');
SELECT is((SELECT ended_at FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'web')), NULL,
    'and the session stays open');
SELECT throws_ok($$SELECT end_session((SELECT id FROM ids WHERE name = 'web'), -1, 0, 0, 0)$$, '22023', NULL,
    'negative metering is refused');
SELECT lives_ok($$SELECT end_session((SELECT id FROM ids WHERE name = 'web'), 120, 100, 200, 9.99)$$,
    'the platform ends the session with its metering (a cost it passes is ignored)');
SELECT is((SELECT compute_seconds || '/' || total_input_tokens || '/' || total_output_tokens FROM sessions
            WHERE id = (SELECT id FROM ids WHERE name = 'web') AND ended_at IS NOT NULL), '120/100/200',
    'the session keeps its totals');
SELECT is((SELECT credits_consumed || '/' || cost_usd FROM usage_events WHERE session_id = (SELECT id FROM ids WHERE name = 'web')),
    '25/0.012345', 'one usage event with the credits and the infra cost from the price table (120 s x 0.000102875)');
SELECT is((SELECT row(gross_revenue, creator_amount, platform_amount, creator_rate)::text FROM creator_earnings
            WHERE session_id = (SELECT id FROM ids WHERE name = 'web')),
          '(0.2500,0.2020,0.0480,0.85)', 'the creator earns (0.25 - 0.012345) x 0.85 rounded down');
SELECT is((SELECT row(ended_at, compute_seconds, total_input_tokens)::text FROM end_session((SELECT id FROM ids WHERE name = 'web'), 1, 1, 1)),
          (SELECT row(ended_at, compute_seconds, total_input_tokens)::text FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'web')),
    'end_session is idempotent: ending again returns the session unchanged');
SELECT is((SELECT count(*)::int FROM usage_events WHERE session_id = (SELECT id FROM ids WHERE name = 'web')), 1,
    'and records nothing more');
SELECT throws_ok($$SELECT add_message((SELECT id FROM ids WHERE name = 'web'), 'user', 'late')$$, '22023', NULL,
    'no messages after the end');

-- Per task.
INSERT INTO ids SELECT 'task', (start_session('50000000-0000-4000-8000-0000000000d2')).id;
SELECT is((SELECT total_credits_consumed FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'task')), 0,
    'a per_task session costs nothing to open');
SELECT lives_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 'task-1')$$, 'a finished task is charged');
SELECT lives_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 'task-1')$$, 'the same task reported again');
SELECT lives_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 'task-2')$$, 'a second task');
SELECT is((SELECT total_credits_consumed FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'task')), 20,
    'two tasks, charged once each');
SELECT is((SELECT -sum(amount)::int FROM credit_transactions WHERE session_id = (SELECT id FROM ids WHERE name = 'task')), 20,
    'the ledger agrees with the session');
SELECT throws_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'telegram'), 'task-1')$$, '22023', NULL,
    'a per_session agent has no task charges');
SELECT throws_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), NULL)$$, '22023', NULL,
    'a task charge needs its key');
SELECT lives_ok($$SELECT end_session((SELECT id FROM ids WHERE name = 'task'), 30, 0, 0)$$, 'end with cost above gross (30 s x 0.02)');
SELECT is((SELECT creator_amount || '/' || platform_amount FROM creator_earnings WHERE session_id = (SELECT id FROM ids WHERE name = 'task')),
    '0.0000/0.2000', 'compute above gross: the creator gets 0, never less');
RESET ROLE;

-- Refunds: credits back to the pots they came from, unpaid earnings clawed back.
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "50000000-0000-4000-8000-00000000e001", "role": "authenticated"}', true);
SELECT throws_ok($$SELECT refund_session((SELECT id FROM ids WHERE name = 'web'))$$, '42501', NULL,
    'a user cannot refund their own session');
SELECT set_config('request.jwt.claims', '{"sub": "50000000-0000-4000-8000-00000000a001", "role": "authenticated"}', true);
SELECT throws_ok($$SELECT refund_session((SELECT id FROM ids WHERE name = 'telegram'))$$, '22023', NULL,
    'an open session cannot be refunded');
SELECT lives_ok($$SELECT refund_session((SELECT id FROM ids WHERE name = 'web'), 'agent failed')$$, 'an admin refunds a session');
SELECT throws_ok($$SELECT refund_session((SELECT id FROM ids WHERE name = 'web'))$$, '22023', NULL, 'a session is refunded once');
RESET ROLE;
SELECT set_config('request.jwt.claims', '', true);
SELECT is((SELECT subscription_credits || '/' || topup_credits || '/' || held_credits FROM credit_balances WHERE user_id = '50000000-0000-4000-8000-00000000e001'),
    '80/50/25', 'the 25 credits went back to the subscription pot they came from (the telegram session''s 25 are still held)');
SELECT ok(NOT EXISTS (SELECT FROM creator_earnings WHERE session_id = (SELECT id FROM ids WHERE name = 'web')),
    'the unpaid earnings of the refunded session are clawed back');

SELECT is((SELECT count(*)::int FROM agentmarket_private.jobs WHERE kind = 'fly.start_machine'
             AND payload->>'instance_id' = '50000000-0000-4000-8000-0000000000d3'), 1,
    'the suspended instance got a Fly start job when its session opened');

-- Idle instances are suspended by the pg_cron sweep.
UPDATE agent_instances SET last_active_at = now() - interval '1 hour' WHERE id IN ('50000000-0000-4000-8000-0000000000d1', '50000000-0000-4000-8000-0000000000d2');
SET LOCAL ROLE service_role;
SELECT is(suspend_idle_instances(), 1, 'one idle instance without an open session is suspended');
RESET ROLE;
SELECT is((SELECT payload->>'instance_id' FROM agentmarket_private.jobs WHERE kind = 'fly.suspend_machine'),
    '50000000-0000-4000-8000-0000000000d2', 'the instance with an open session is left running');

SELECT is_empty('SELECT * FROM agentmarket.verify_ledger()', 'the ledger is consistent after all of it');
SELECT * FROM finish();
ROLLBACK;
