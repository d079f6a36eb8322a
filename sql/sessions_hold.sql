-- sessions_hold: a per_session price is held when the session starts and
-- captured when it ends (end_session, or the sweep), whole when the agent
-- served the session, released when it never did.  The hold counts against
-- the caps from the start and is not available to other spending; a session
-- is charged once however it ends; verify_ledger() and verify_books() stay
-- empty.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(30);

SELECT configure('free_trial_credits', '0') \g /dev/null
SELECT configure('promotional_credit_value_usd', '0.01') \g /dev/null
INSERT INTO users (id, email, role) VALUES
  ('62000000-0000-4000-8000-00000000c001', 'creator@hold.example', 'creator'),
  ('62000000-0000-4000-8000-00000000e001', 'user@hold.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, supported_relays, published_at) VALUES
  ('62000000-0000-4000-8000-0000000000a1', '62000000-0000-4000-8000-00000000c001', 'hold-per-session', 'Held',
   't', 'd', 'research', 'published', 'per_session', 30, 'https://x/1', '{telegram,slack,discord,whatsapp}', now());
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('62000000-0000-4000-8000-0000000000d1', '62000000-0000-4000-8000-00000000e001', '62000000-0000-4000-8000-0000000000a1', 'am-h1', 'h1', 'running');
SELECT grant_credits('62000000-0000-4000-8000-00000000e001', 100, 'topup', 'topup_purchase') \g /dev/null
\set uid '''62000000-0000-4000-8000-00000000e001'''
\set inst '''62000000-0000-4000-8000-0000000000d1'''
CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);
GRANT ALL ON ids TO PUBLIC;
-- The user's pots/held, the session's ledger total, and its holds.
CREATE FUNCTION pg_temp.state(s text) RETURNS text LANGUAGE sql AS $$
  SELECT concat_ws(' | ',
    (SELECT b.subscription_credits + b.topup_credits || '/' || b.held_credits FROM credit_balances b
      WHERE b.user_id = '62000000-0000-4000-8000-00000000e001'),
    (SELECT coalesce(sum(t.amount), 0) FROM credit_transactions t WHERE t.session_id = (SELECT id FROM ids WHERE name = s)),
    (SELECT string_agg(h.status || ' ' || h.amount || coalesce('>' || h.captured_amount, ''), ', ')
       FROM agentmarket_private.credit_holds h WHERE h.session_id = (SELECT id FROM ids WHERE name = s)))
$$;
CREATE FUNCTION pg_temp.month_spent() RETURNS bigint LANGUAGE sql AS $$
  SELECT month_spent FROM agentmarket_private.user_spend WHERE user_id = '62000000-0000-4000-8000-00000000e001'
$$;

-- 1. The start holds the price; nothing is charged yet.
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "62000000-0000-4000-8000-00000000e001", "role": "authenticated"}', true) \g /dev/null
INSERT INTO ids SELECT 'a', (start_session(:inst)).id;
RESET ROLE;
SELECT is(pg_temp.state('a'), '100/30 | 0 | active 30', 'the start places a hold of the price on the session: pots untouched, nothing in the ledger');
SELECT is((SELECT total_credits_consumed FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'a')), 30,
          'the session records the price it is committed to');
SELECT is((SELECT (subscription_credits + topup_credits - held_credits) FROM credit_balances WHERE user_id = :uid), 70,
          'held credits are not available to other spending');
SELECT is(pg_temp.month_spent(), 30::bigint, 'the hold counts in the month''s spend from the start');
SELECT ok((SELECT expires_at BETWEEN now() + interval '240 minutes' + interval '1 day' - interval '1 minute'
                             AND now() + interval '240 minutes' + interval '1 day' + interval '1 minute'
             FROM agentmarket_private.credit_holds WHERE session_id = (SELECT id FROM ids WHERE name = 'a')),
          'the hold lasts session_max_minutes and a day of grace');
SELECT is((SELECT operation FROM agentmarket_private.credit_idempotency
            WHERE idempotency_key = 'session:' || (SELECT id FROM ids WHERE name = 'a')), 'reserve_credits',
          'the hold is placed under the session''s key, through the one executor');
SELECT throws_ok(format($$SELECT deduct_credits(%L, 71)$$, :uid), 'PT402', 'insufficient credits',
                 'a deduction cannot take the held credits');

-- 2. The end captures the hold whole when the agent served the session.
SET LOCAL ROLE service_role;
SELECT is((end_session((SELECT id FROM ids WHERE name = 'a'), 60, 100, 200)).total_credits_consumed, 30,
          'a metered session is charged its price at the end');
RESET ROLE;
SELECT is(pg_temp.state('a'), '70/0 | -30 | captured 30>30', 'the hold is captured whole: 30 leave the pots, none stay held');
SELECT is((SELECT gross_revenue FROM creator_earnings WHERE session_id = (SELECT id FROM ids WHERE name = 'a')), 0.30::numeric(12,4),
          'the earnings are valued on the captured credits');
SET LOCAL ROLE service_role;
SELECT is((end_session((SELECT id FROM ids WHERE name = 'a'), 60, 100, 200)).total_credits_consumed, 30,
          'a second end changes nothing');
RESET ROLE;
SELECT is(pg_temp.state('a'), '70/0 | -30 | captured 30>30', 'and captures nothing twice');
SELECT is(pg_temp.month_spent(), 30::bigint, 'the month keeps the captured 30');

-- 3. A session the agent never answered costs nothing: the hold is released.
SET LOCAL ROLE service_role;
INSERT INTO ids SELECT 'b', (start_session(:inst)).id;
SELECT add_message((SELECT id FROM ids WHERE name = 'b'), 'user', 'hello?') \g /dev/null
RESET ROLE;
SELECT is(pg_temp.state('b'), '70/30 | 0 | active 30', 'a second session holds its price');
SELECT is(pg_temp.month_spent(), 60::bigint, 'counted in the month');
SET LOCAL ROLE service_role;
SELECT is((end_session((SELECT id FROM ids WHERE name = 'b'), 0, 0, 0)).total_credits_consumed, 0,
          'ended without an answer or metering: nothing consumed');
RESET ROLE;
SELECT is(pg_temp.state('b'), '70/0 | 0 | captured 30>0', 'the hold resolves with nothing captured: every credit back');
SELECT is(pg_temp.month_spent(), 30::bigint, 'the month gives back what the hold released');
SELECT is((SELECT count(*)::int FROM creator_earnings WHERE session_id = (SELECT id FROM ids WHERE name = 'b')), 0,
          'no earnings for a session that charged nothing');

-- 4. The sweep captures as end_session does: a session past
-- session_max_minutes in which the agent answered.
SET LOCAL ROLE service_role;
INSERT INTO ids SELECT 'c', (start_session(:inst, 'telegram')).id;
SELECT add_message((SELECT id FROM ids WHERE name = 'c'), 'assistant', 'Hi!') \g /dev/null
RESET ROLE;
UPDATE sessions SET started_at = now() - interval '5 hours' WHERE id = (SELECT id FROM ids WHERE name = 'c');
SET LOCAL ROLE service_role;
SELECT is(end_idle_sessions(), 1, 'the sweep ends the session past its maximum length');
RESET ROLE;
SELECT is(pg_temp.state('c'), '40/0 | -30 | captured 30>30', 'and captures its hold: the agent answered');

-- 5. A hold released by hand waives the price; the end charges nothing more.
SET LOCAL ROLE service_role;
INSERT INTO ids SELECT 'd', (start_session(:inst, 'slack')).id;
RESET ROLE;
SELECT id AS hold_d FROM agentmarket_private.credit_holds WHERE session_id = (SELECT id FROM ids WHERE name = 'd') \gset
SET LOCAL ROLE service_role;
SELECT release_hold(:'hold_d') \g /dev/null
SELECT is((end_session((SELECT id FROM ids WHERE name = 'd'), 10, 1, 1)).total_credits_consumed, 30,
          'ending a session whose hold was released by hand');
RESET ROLE;
SELECT is(pg_temp.state('d'), '40/0 | 0 | released 30', 'charges nothing: the release waived the price');

-- 6. Refusals change nothing: not enough credits, or a cap below the price.
SET LOCAL ROLE service_role;
SELECT set_monthly_spend_cap(80, :uid) \g /dev/null
SELECT throws_ok(format($$SELECT start_session(%L, 'discord')$$, :inst), 'PT402', 'monthly spending cap reached',
                 'a hold that would pass the monthly cap is refused at the start');
SELECT set_monthly_spend_cap(NULL, :uid) \g /dev/null
SELECT deduct_credits(:uid, 20) \g /dev/null
SELECT throws_ok(format($$SELECT start_session(%L, 'discord')$$, :inst), 'PT402', 'insufficient credits',
                 'a price the available credits do not cover is refused');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM sessions WHERE relay = 'discord' AND instance_id = :inst), 0, 'no session is created');
SELECT is((SELECT count(*)::int FROM agentmarket_private.credit_holds WHERE user_id = :uid AND status = 'active'), 0,
          'and no hold');

-- 7. A refund after the capture returns the captured credits.
SET LOCAL ROLE service_role;
SELECT refund_session((SELECT id FROM ids WHERE name = 'a'), 'test') \g /dev/null
RESET ROLE;
SELECT is(pg_temp.state('a'), '50/0 | 0 | captured 30>30', 'a refunded session gives back what its hold captured');

SELECT is_empty($$SELECT * FROM agentmarket.verify_ledger()$$, 'verify_ledger() is empty');
SELECT is_empty($$SELECT * FROM agentmarket.verify_books()$$, 'verify_books() is empty');

SELECT * FROM finish();
ROLLBACK;
