-- spend: a session cap and a monthly cap per user, checked with every charge
-- (PT402 with a DETAIL naming the cap, nothing charged), and notifications
-- of low balance and cap crossings, once per crossing.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(30);

SELECT agentmarket.configure('free_trial_credits', '0') \g /dev/null
INSERT INTO users (id, email, role) VALUES
  ('80000000-0000-4000-8000-00000000c001', 'creator@spend.example', 'creator'),
  ('80000000-0000-4000-8000-00000000e001', 'user@spend.example', 'user'),
  ('80000000-0000-4000-8000-00000000e002', 'other@spend.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, published_at) VALUES
  ('80000000-0000-4000-8000-0000000000a1', '80000000-0000-4000-8000-00000000c001', 'spend-session', 'S',
   't', 'd', 'research', 'published', 'per_session', 30, 'https://x/1', now()),
  ('80000000-0000-4000-8000-0000000000a2', '80000000-0000-4000-8000-00000000c001', 'spend-task', 'T',
   't', 'd', 'research', 'published', 'per_task', 10, 'https://x/2', now());
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('80000000-0000-4000-8000-0000000000d1', '80000000-0000-4000-8000-00000000e001', '80000000-0000-4000-8000-0000000000a1', 'am-s1', 's1', 'running'),
  ('80000000-0000-4000-8000-0000000000d2', '80000000-0000-4000-8000-00000000e001', '80000000-0000-4000-8000-0000000000a2', 'am-s2', 's2', 'running');
SELECT grant_credits('80000000-0000-4000-8000-00000000e001', 70, 'topup', 'topup_purchase') \g /dev/null
SELECT agentmarket.configure('low_balance_credits', '15') \g /dev/null
CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);
GRANT ALL ON ids TO PUBLIC;
-- SQLSTATE and DETAIL of a statement that fails.
CREATE FUNCTION pg_temp.failure(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ' ' || SQLERRM || ': ' || d;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.failure(text) TO PUBLIC;

-- The user caps the month.
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "80000000-0000-4000-8000-00000000e001", "role": "authenticated"}', true) \g /dev/null
SELECT is((SELECT month_spent || '/' || monthly_cap FROM set_monthly_spend_cap(50)), '0/50', 'the user sets a monthly cap of 50 credits');
INSERT INTO ids SELECT 'sess', (start_session('80000000-0000-4000-8000-0000000000d1')).id;
SELECT is((SELECT month_spent || '/' || monthly_cap FROM my_spend()), '30/50', 'a per_session start counts in the month');
INSERT INTO ids SELECT 'task', (start_session('80000000-0000-4000-8000-0000000000d2')).id;
SELECT throws_ok($$SELECT set_monthly_spend_cap(-1)$$, '22023', NULL, 'a negative cap is refused');
SELECT throws_ok($$SELECT set_monthly_spend_cap(10, '80000000-0000-4000-8000-00000000e002')$$, '42501', NULL,
    'a user cannot cap another user');
SELECT throws_ok($$SELECT set_session_cap((SELECT id FROM ids WHERE name = 'task'), -5)$$, '22023', NULL, 'a negative session cap is refused');
RESET ROLE;
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "80000000-0000-4000-8000-00000000e002", "role": "authenticated"}', true) \g /dev/null
SELECT throws_ok($$SELECT set_session_cap((SELECT id FROM ids WHERE name = 'task'), 1)$$, 'P0002', NULL,
    'another user''s session does not exist for the caller');
SELECT is((SELECT month_spent || '/' || coalesce(monthly_cap::text, 'none') FROM my_spend()), '0/none', 'my_spend is the caller''s own');
RESET ROLE;
SELECT set_config('role', 'anon', true), set_config('request.jwt.claims', '', true) \g /dev/null
SELECT throws_ok($$SELECT set_monthly_spend_cap(10)$$, '42501', NULL, 'anon has no spending cap to set');
RESET ROLE;

-- The platform charges tasks.
SET LOCAL ROLE service_role;
SELECT lives_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 't1')$$, 'a task at 40 of 50');
SELECT lives_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 't1')$$, 'the same task again');
SELECT lives_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 't2')$$, 'a task at 50 of 50: the cap is reached, not passed');
SELECT is(pg_temp.failure($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 't3')$$),
    format('PT402 monthly spending cap reached: The monthly cap is 50 credits; 50 were charged in %s and this charge needs 10.',
           to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')),
    'a task over the monthly cap: PT402 naming the monthly cap');
SELECT is((SELECT total_credits_consumed FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'task')), 20,
    'the refused task charged nothing');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM agentmarket_private.session_task_charges WHERE task_key = 't3'), 0, 'and was not recorded');
SET LOCAL ROLE service_role;
SELECT lives_ok($$SELECT set_monthly_spend_cap(1000, '80000000-0000-4000-8000-00000000e001')$$, 'the platform raises the user''s cap');
SELECT lives_ok($$SELECT set_session_cap((SELECT id FROM ids WHERE name = 'task'), 25)$$, 'the session is capped at 25 credits');
SELECT is(pg_temp.failure($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 't3')$$),
    'PT402 session spending cap reached: The session''s cap is 25 credits; it has charged 20 and this charge needs 10.',
    'a task over the session cap: PT402 naming the session cap');
SELECT lives_ok($$SELECT set_session_cap((SELECT id FROM ids WHERE name = 'task'), 40)$$, 'the cap is raised to 40');
SELECT lives_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 't3')$$, 'a task at 30 of 40, leaving 10 credits');
SELECT lives_ok($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 't4')$$, 'a task at 40 of 40, leaving none');
SELECT is(pg_temp.failure($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 't5')$$),
    'PT402 session spending cap reached: The session''s cap is 40 credits; it has charged 40 and this charge needs 10.',
    'the session is full');
SELECT lives_ok($$SELECT set_session_cap((SELECT id FROM ids WHERE name = 'task'), NULL)$$, 'the cap is lifted');
SELECT is(pg_temp.failure($$SELECT charge_task((SELECT id FROM ids WHERE name = 'task'), 't5')$$),
    'PT402 insufficient credits: available 0, required 10', 'without credits the ledger still refuses');

-- The notifications: one per crossing, in order.
SELECT results_eq($$SELECT kind, session_id IS NOT NULL, detail FROM claim_notifications() ORDER BY id$$,
    $$VALUES ('monthly_cap_near', false, '{"cap": 50, "month": "$$ || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM') || $$-01", "spent": 40}'::jsonb),
             ('monthly_cap_reached', false, '{"cap": 50, "month": "$$ || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM') || $$-01", "spent": 50}'::jsonb),
             ('low_balance', true, '{"threshold": 15, "available_credits": 10}'::jsonb),
             ('session_cap_reached', true, '{"cap": 40, "spent": 40}'::jsonb)$$,
    'cap near and reached: each once, by the charge that crossed');
SELECT is((SELECT count(*)::int FROM claim_notifications()), 0, 'claimed notifications are not handed out again');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM agentmarket_private.notifications WHERE sent_at IS NOT NULL), 4, 'and are marked sent');
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "80000000-0000-4000-8000-00000000e001", "role": "authenticated"}', true) \g /dev/null
SELECT throws_ok($$SELECT * FROM claim_notifications()$$, '42501', NULL, 'a user cannot read the outbox');
SELECT is((SELECT month_spent FROM my_spend()), 70::bigint, 'the month counts every charge: 30 + 4 tasks of 10');
RESET ROLE;
SELECT is_empty('SELECT * FROM agentmarket.verify_ledger()', 'the ledger is consistent');
SELECT is((SELECT -sum(amount)::int FROM credit_transactions WHERE user_id = '80000000-0000-4000-8000-00000000e001' AND amount < 0)
          + (SELECT held_credits FROM credit_balances WHERE user_id = '80000000-0000-4000-8000-00000000e001'), 70,
    'the ledger took (or holds, for the open per_session session) what the month counts');

SELECT * FROM finish();
ROLLBACK;
