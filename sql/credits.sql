-- credits: the credit ledger's rules and every error path.  Each bad call
-- is checked for its SQLSTATE and for changing nothing.
\ir test/fixture.sql
BEGIN;
SELECT plan(119);

-- Failed outcomes of keyed calls are committed by a worker and outlive this
-- transaction: keys carry the transaction id so that a rerun starts fresh.
SELECT 'k' || txid_current() || '-' AS k \gset

-- Fixtures: a creator with an agent; Uma with an instance and a session; Vic.
INSERT INTO agentmarket.users (id, email, role) VALUES
  ('00000000-0000-4000-8000-00000000c1c0', 'credits-creator@example.com', 'creator'),
  ('00000000-0000-4000-8000-00000000c101', 'credits-uma@example.com', 'user'),
  ('00000000-0000-4000-8000-00000000c102', 'credits-vic@example.com', 'user');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category, github_repo_url)
VALUES ('00000000-0000-4000-8000-00000000c1a0', '00000000-0000-4000-8000-00000000c1c0', 'credits-test-agent',
        'Credits test agent', 'Tests credits', 'An agent for the credits suite.', 'productivity',
        'https://github.com/example/credits');
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id) VALUES
  ('00000000-0000-4000-8000-00000000c1b1', '00000000-0000-4000-8000-00000000c101',
   '00000000-0000-4000-8000-00000000c1a0', 'credits-test-app', 'm-credits-1'),
  ('00000000-0000-4000-8000-00000000c1b2', '00000000-0000-4000-8000-00000000c102',
   '00000000-0000-4000-8000-00000000c1a0', 'credits-test-app-2', 'm-credits-2');
INSERT INTO agentmarket.sessions (id, instance_id, user_id) VALUES
  ('00000000-0000-4000-8000-00000000c1d1', '00000000-0000-4000-8000-00000000c1b1', '00000000-0000-4000-8000-00000000c101'),
  ('00000000-0000-4000-8000-00000000c1d2', '00000000-0000-4000-8000-00000000c1b2', '00000000-0000-4000-8000-00000000c102');
\set uma '''00000000-0000-4000-8000-00000000c101'''
\set vic '''00000000-0000-4000-8000-00000000c102'''
\set nobody '''00000000-0000-4000-8000-00000000c1ff'''
\set uma_session '''00000000-0000-4000-8000-00000000c1d1'''
\set vic_session '''00000000-0000-4000-8000-00000000c1d2'''

-- Everything a user's credits consist of, to prove that a refused call changed nothing.
CREATE FUNCTION pg_temp.fingerprint(u uuid) RETURNS text LANGUAGE sql AS $$
  SELECT concat_ws('/', (SELECT b.subscription_credits || ',' || b.topup_credits || ',' || b.held_credits
                           FROM agentmarket.credit_balances b WHERE b.user_id = u),
         (SELECT count(*) FROM agentmarket.credit_transactions t WHERE t.user_id = u),
         (SELECT string_agg(h.status || coalesce(h.captured_amount::text, ''), ',' ORDER BY h.status, h.captured_amount)
            FROM agentmarket_private.credit_holds h WHERE h.user_id = u))
$$;
-- Run a query as a role with JWT claims; its single value, or its SQLSTATE.
CREATE FUNCTION pg_temp.as_role(r text, claims text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE res text;
BEGIN
  PERFORM set_config('request.jwt.claims', claims, true);
  PERFORM set_config('role', r, true);
  BEGIN
    EXECUTE q INTO res;
  EXCEPTION WHEN OTHERS THEN res := 'ERROR ' || SQLSTATE;
  END;
  PERFORM set_config('role', 'none', true);
  PERFORM set_config('request.jwt.claims', '', true);
  RETURN res;
END $$;
-- The ledger rows of a user, oldest first, as "type credit_type amount".
CREATE FUNCTION pg_temp.ledger(u uuid) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(t.type || ' ' || t.credit_type || ' ' || t.amount, '; ' ORDER BY t.created_at, t.amount)
    FROM agentmarket.credit_transactions t WHERE t.user_id = u
$$;

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------
SELECT ok(has_function_privilege('service_role', 'agentmarket.deduct_credits(uuid,integer,uuid,text,text)', 'EXECUTE')
      AND has_function_privilege('service_role', 'agentmarket.grant_credits(uuid,integer,text,text,text,text,text)', 'EXECUTE')
      AND has_function_privilege('service_role', 'agentmarket.release_expired_holds()', 'EXECUTE'),
  'service_role may call the ledger functions');
SELECT ok(NOT has_function_privilege('authenticated', 'agentmarket.deduct_credits(uuid,integer,uuid,text,text)', 'EXECUTE')
      AND NOT has_function_privilege('anon', 'agentmarket.grant_credits(uuid,integer,text,text,text,text,text)', 'EXECUTE')
      AND NOT has_function_privilege('authenticated', 'agentmarket.reserve_credits(uuid,integer,uuid,interval,text,text)', 'EXECUTE'),
  'clients may not call the ledger functions');
SELECT is(pg_temp.as_role('authenticated', '{"sub":' || to_json(:uma::text) || '}',
          $$SELECT agentmarket.deduct_credits('00000000-0000-4000-8000-00000000c101', 1)$$),
  'ERROR 42501', 'authenticated calling deduct_credits gets 42501');
SELECT is(pg_temp.as_role('service_role', '',
          $$SELECT (agentmarket.grant_credits('00000000-0000-4000-8000-00000000c102', 5, 'topup', 'topup_purchase')).topup_credits$$),
  '5', 'service_role can grant credits');

------------------------------------------------------------------------------
-- Free trial
------------------------------------------------------------------------------
SELECT is(pg_temp.fingerprint(:uma), '100,0,0/1', 'a new user gets the free trial: 100 subscription credits, one ledger row');
SELECT is(pg_temp.ledger(:uma), 'free_trial subscription 100', 'the free trial is a free_trial row in the subscription pot');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.grant_credits(%L, 10, 'subscription', 'free_trial')$$, :uma)),
  '23505: free trial already granted / A user receives the free trial once.', 'a second free trial is refused with 23505');
SELECT is(pg_temp.fingerprint(:uma), '100,0,0/1', 'the refused free trial changed nothing');
SELECT agentmarket.configure('free_trial_credits', '0');
INSERT INTO agentmarket.users (id, email) VALUES ('00000000-0000-4000-8000-00000000c103', 'credits-wes@example.com');
SELECT is(pg_temp.fingerprint('00000000-0000-4000-8000-00000000c103'), '0',
  'with free_trial_credits 0 a new user gets no balance row and no ledger row');
SELECT agentmarket.configure('free_trial_credits', '25');
INSERT INTO agentmarket.users (id, email) VALUES ('00000000-0000-4000-8000-00000000c104', 'credits-xia@example.com');
SELECT is(pg_temp.fingerprint('00000000-0000-4000-8000-00000000c104'), '25,0,0/1', 'the free trial amount comes from free_trial_credits');
SELECT agentmarket.configure('free_trial_credits', NULL);
-- A restore (pg_restore, a plain dump) loads users with COPY, then their ledger.
COPY agentmarket.users (id, email) FROM stdin;
00000000-0000-4000-8000-00000000c105	credits-yan@example.com
\.
SELECT is(pg_temp.fingerprint('00000000-0000-4000-8000-00000000c105'), '0',
  'users loaded with COPY (a restore) get no free trial: their ledger comes with them');

------------------------------------------------------------------------------
-- grant_credits
------------------------------------------------------------------------------
SELECT is((SELECT row(g.*)::text FROM agentmarket.grant_credits(:uma, 50, 'topup', 'topup_purchase', 'pack S', NULL, 'pi_123') g),
  '(100,50,0,150)', 'a top-up grant returns (subscription, topup, held, available)');
SELECT is((SELECT t.stripe_payment_id || ' ' || t.description FROM agentmarket.credit_transactions t
            WHERE t.user_id = :uma AND t.type = 'topup_purchase'), 'pi_123 pack S',
  'the grant row keeps the Stripe payment id and description');
SELECT is(pg_temp.fingerprint(:uma), '100,50,0/2', 'one grant, one ledger row');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.grant_credits(%L, 0, 'topup', 'topup_purchase')$$, :uma)),
  '22023: amount must be a positive number of credits / The amount given was 0.', 'grant of 0 credits: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.grant_credits(%L, -5, 'topup', 'topup_purchase')$$, :uma)),
  '22023: amount must be a positive number of credits / The amount given was -5.', 'grant of -5 credits: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.grant_credits(%L, NULL, 'topup', 'topup_purchase')$$, :uma)),
  '22023: amount must be a positive number of credits / The amount given was null.', 'grant of NULL credits: 22023');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.grant_credits(%L, 5, 'gold', 'topup_purchase')$$, :uma)), 26),
  '22023: invalid credit_type', 'grant to an unknown pot: 22023');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.grant_credits(%L, 5, 'topup', 'session_deduct')$$, :uma)), 25),
  '22023: invalid grant type', 'grant with a non-grant type: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.grant_credits(%L, 5, 'subscription', 'topup_purchase')$$, :uma)),
  '22023: grant type does not match the pot / topup_purchase credits go to the topup pot.', 'a top-up purchase into the subscription pot: 22023');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.grant_credits(%L, 5, 'topup', 'topup_purchase')$$, :nobody)), 22),
  'P0002: user not found ', 'grant to an unknown user: P0002');
SELECT is(pg_temp.error_of($$SELECT agentmarket.grant_credits(NULL, 5, 'topup', 'topup_purchase')$$),
  '22023: user_id must not be null / ', 'grant to a NULL user: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.grant_credits(%L, 2147483647, 'topup', 'topup_purchase')$$, :uma)),
  '22023: balance out of range / A pot would exceed 2147483647 credits.', 'a grant past the integer range: 22023');
SELECT is(pg_temp.fingerprint(:uma), '100,50,0/2', 'the refused grants changed nothing');

------------------------------------------------------------------------------
-- deduct_credits
------------------------------------------------------------------------------
SELECT is((SELECT row(d.*)::text FROM agentmarket.deduct_credits(:uma, 30) d), '(70,50,0,120)',
  'a deduction takes subscription credits first and returns the new balances');
SELECT is((SELECT row(d.*)::text FROM agentmarket.deduct_credits(:uma, 90, :uma_session, NULL, 'long chat') d), '(0,30,0,30)',
  'a deduction spanning both pots empties subscription, then takes top-up');
SELECT is((SELECT string_agg(t.credit_type || ' ' || t.amount || ' ' || t.session_id || ' ' || t.description, '; ' ORDER BY t.credit_type)
             FROM agentmarket.credit_transactions t WHERE t.user_id = :uma AND t.type = 'session_deduct' AND t.session_id IS NOT NULL),
  'subscription -70 00000000-0000-4000-8000-00000000c1d1 long chat; topup -20 00000000-0000-4000-8000-00000000c1d1 long chat',
  'the spanning deduction wrote one session_deduct row per pot, with session and description');
SELECT is(pg_temp.fingerprint(:uma), '0,30,0/5', 'balance equals the ledger after deductions');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, 31)$$, :uma)),
  'PT402: insufficient credits / available 30, required 31', 'not enough credits: PT402 with DETAIL "available N, required M"');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, 0)$$, :uma)),
  '22023: amount must be a positive number of credits / The amount given was 0.', 'deduct 0: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, -3)$$, :uma)),
  '22023: amount must be a positive number of credits / The amount given was -3.', 'deduct a negative amount: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, NULL)$$, :uma)),
  '22023: amount must be a positive number of credits / The amount given was null.', 'deduct NULL: 22023');
SELECT is(pg_temp.error_of($$SELECT agentmarket.deduct_credits(NULL, 1)$$),
  '22023: user_id must not be null / ', 'deduct from a NULL user: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, 1)$$, :nobody)),
  'P0002: user not found / No user has id 00000000-0000-4000-8000-00000000c1ff.', 'deduct from an unknown user: P0002');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, 1, %L)$$, :uma, :vic_session)),
  '22023: session belongs to another user / Session 00000000-0000-4000-8000-00000000c1d2 is not a session of user 00000000-0000-4000-8000-00000000c101.',
  'deduct for another user''s session: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, 1, %L)$$, :uma, :nobody)),
  'P0002: session not found / No session has id 00000000-0000-4000-8000-00000000c1ff.', 'deduct for an unknown session: P0002');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, 1, NULL, '')$$, :uma)),
  '22023: invalid idempotency key / An idempotency key is 1 to 255 characters long.', 'an empty idempotency key: 22023');
SELECT is(pg_temp.fingerprint(:uma), '0,30,0/5', 'the refused deductions changed nothing');
SELECT is(pg_temp.error_of($$SELECT agentmarket.deduct_credits('00000000-0000-4000-8000-00000000c103', 1)$$),
  'PT402: insufficient credits / available 0, required 1', 'a user without a balance row has 0 available: PT402');

------------------------------------------------------------------------------
-- Idempotency
------------------------------------------------------------------------------
SELECT is((SELECT row(d.*)::text FROM agentmarket.deduct_credits(:uma, 5, NULL, :'k' || 'd1') d), '(0,25,0,25)',
  'a keyed deduction applies once');
SELECT is((SELECT row(d.*)::text FROM agentmarket.deduct_credits(:uma, 5, NULL, :'k' || 'd1') d), '(0,25,0,25)',
  'the same key again returns the first outcome');
SELECT is(pg_temp.fingerprint(:uma), '0,25,0/6', '... and changes nothing');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, 6, NULL, %L)$$, :uma, :'k' || 'd1')),
  '22023: idempotency key already used with different arguments / Key "' || :'k' || 'd1" was first used for deduct_credits({"amount": 5, "session_id": null, "description": null}).',
  'the same key with other arguments: 22023');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.grant_credits(%L, 5, 'topup', 'topup_purchase', NULL, %L)$$, :uma, :'k' || 'd1')), 60),
  '22023: idempotency key already used with different arguments', 'the same key for another operation: 22023');
SELECT is((SELECT row(d.*)::text FROM agentmarket.deduct_credits(:vic, 5, NULL, :'k' || 'd1') d), '(95,5,0,100)',
  'keys are per user: another user''s call with the same key is its own');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, 100, NULL, %L)$$, :uma, :'k' || 'd2')),
  'PT402: insufficient credits / available 25, required 100', 'a keyed deduction refused for lack of credits');
SELECT is((SELECT count(*)::int FROM agentmarket_private.credit_idempotency
            WHERE user_id = :uma AND idempotency_key = :'k' || 'd2'), 0,
  'a refusal rolls back with its caller: the key keeps no record');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, 100, NULL, %L)$$, :uma, :'k' || 'd2')),
  'PT402: insufficient credits / available 25, required 100', 'a retry of the key is decided afresh (refused again)');
SELECT agentmarket.grant_credits(:uma, 500, 'topup', 'topup_purchase');
SELECT is(pg_temp.fingerprint(:uma), '0,525,0/7', 'the refusals changed nothing');
SELECT is((SELECT row(g.*)::text FROM agentmarket.grant_credits(:vic, 7, 'topup', 'topup_purchase', NULL, :'k' || 'g1') g), '(95,12,0,107)',
  'a keyed grant applies once');
SELECT is((SELECT row(g.*)::text FROM agentmarket.grant_credits(:vic, 7, 'topup', 'topup_purchase', NULL, :'k' || 'g1') g), '(95,12,0,107)',
  'the same grant key returns the first outcome');
SELECT is(pg_temp.fingerprint(:vic), '95,12,0/4', 'the repeated grant added nothing');

------------------------------------------------------------------------------
-- refresh_subscription_credits
------------------------------------------------------------------------------
SELECT agentmarket.grant_credits(:vic, 40, 'subscription', 'subscription_refresh');
SELECT is((SELECT row(r.*)::text FROM agentmarket.refresh_subscription_credits(:vic, 300) r), '(300,12,0,312)',
  'a refresh expires what is left and grants the new month');
SELECT is((SELECT string_agg(t.type || ' ' || t.amount, '; ' ORDER BY t.amount) FROM agentmarket.credit_transactions t
            WHERE t.user_id = :vic AND t.type IN ('subscription_expiry', 'subscription_refresh') AND t.amount <> 40),
  'subscription_expiry -95; subscription_expiry -40; subscription_refresh 300', 'expiry is its own ledger row per lot, never a silent overwrite');
SELECT is((SELECT row(r.*)::text FROM agentmarket.refresh_subscription_credits(:vic, 0) r), '(0,12,0,12)',
  'a refresh of 0 only expires');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.refresh_subscription_credits(%L, -1)$$, :vic)),
  '22023: amount must be a positive number of credits / The amount given was -1.', 'a negative refresh: 22023');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.refresh_subscription_credits(%L, 10)$$, :nobody)), 22),
  'P0002: user not found ', 'a refresh for an unknown user: P0002');
SELECT is((SELECT row(r.*)::text FROM agentmarket.refresh_subscription_credits(:vic, 100, :'k' || 'r1') r), '(100,12,0,112)',
  'a keyed refresh applies once');
SELECT is((SELECT row(r.*)::text FROM agentmarket.refresh_subscription_credits(:vic, 100, :'k' || 'r1') r), '(100,12,0,112)',
  'the same refresh key returns the first outcome');
SELECT is(pg_temp.fingerprint(:vic), '100,12,0/10', 'the repeated refresh neither expired nor granted again');

------------------------------------------------------------------------------
-- refund_credits
------------------------------------------------------------------------------
-- Uma: session deductions took 70 subscription + 20 top-up.
SELECT is((SELECT row(r.*)::text FROM agentmarket.refund_credits(:uma, 25, :uma_session) r), '(5,545,0,550)',
  'a refund returns top-up credits first, then subscription credits');
SELECT is((SELECT string_agg(t.credit_type || ' ' || t.amount, '; ' ORDER BY t.credit_type) FROM agentmarket.credit_transactions t
            WHERE t.user_id = :uma AND t.type = 'refund'), 'subscription 5; topup 20', 'one refund row per pot');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.refund_credits(%L, 66, %L)$$, :uma, :uma_session)),
  '22023: refund exceeds what was taken / refundable 65, requested 66', 'a refund beyond what the session took: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.refund_credits(%L, 1, %L)$$, :vic, :vic_session)),
  '22023: refund exceeds what was taken / refundable 0, requested 1', 'a refund for a session without deductions: 22023');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.refund_credits(%L, 1, %L)$$, :uma, :vic_session)), 39),
  '22023: session belongs to another user ', 'a refund for another user''s session: 22023');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.refund_credits(%L, 1, %L)$$, :uma, :nobody)), 24),
  'P0002: session not found', 'a refund for an unknown session: P0002');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.refund_credits(%L, 0)$$, :uma)),
  '22023: amount must be a positive number of credits / The amount given was 0.', 'a refund of 0: 22023');
SELECT is(pg_temp.fingerprint(:uma), '5,545,0/9', 'the refused refunds changed nothing');
SELECT is((SELECT row(r.*)::text FROM agentmarket.refund_credits(:uma, 65, :uma_session, :'k' || 'f1') r), '(70,545,0,615)',
  'the rest of the session refunds to the subscription pot');
SELECT is((SELECT row(r.*)::text FROM agentmarket.refund_credits(:uma, 65, :uma_session, :'k' || 'f1') r), '(70,545,0,615)',
  'the same refund key returns the first outcome');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.refund_credits(%L, 1, %L)$$, :uma, :uma_session)),
  '22023: refund exceeds what was taken / refundable 0, requested 1', 'a session is never refunded more than it took');
SELECT is((SELECT row(r.*)::text FROM agentmarket.refund_credits(:uma, 35) r), '(100,550,0,650)',
  'without a session, deductions without a session are refundable');

------------------------------------------------------------------------------
-- Holds
------------------------------------------------------------------------------
SELECT agentmarket.reserve_credits(:uma, 600, :uma_session, NULL, NULL, 'metered run') AS hold1 \gset
SELECT is(pg_temp.fingerprint(:uma), '100,550,600/12/active', 'a hold raises held credits and writes no ledger row');
SELECT is((SELECT h.expires_at - h.created_at FROM agentmarket_private.credit_holds h WHERE h.id = :'hold1'),
  interval '60 minutes', 'a hold expires after hold_expiry_minutes by default');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.deduct_credits(%L, 51)$$, :uma)),
  'PT402: insufficient credits / available 50, required 51', 'held credits are not available to deductions');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.reserve_credits(%L, 51)$$, :uma)),
  'PT402: insufficient credits / available 50, required 51', 'held credits are not available to other holds');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.reserve_credits(%L, 5, NULL, '0 seconds')$$, :uma)), 36),
  '22023: expires_in must be positive /', 'a hold that never lives: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.reserve_credits(%L, 0)$$, :uma)),
  '22023: amount must be a positive number of credits / The amount given was 0.', 'a hold of 0 credits: 22023');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.reserve_credits(%L, 5, %L)$$, :uma, :vic_session)), 39),
  '22023: session belongs to another user ', 'a hold for another user''s session: 22023');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.reserve_credits(%L, 5, %L)$$, :uma, :nobody)), 24),
  'P0002: session not found', 'a hold for an unknown session: P0002');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.capture_hold(%L, 601)$$, :'hold1')),
  '22023: capture exceeds the hold / held 600, requested 601', 'capturing more than the hold: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.capture_hold(%L, -1)$$, :'hold1')),
  '22023: amount must be a positive number of credits / The amount given was -1.', 'capturing a negative amount: 22023');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.capture_hold(%L, 1)$$, :nobody)), 22),
  'P0002: hold not found ', 'capturing an unknown hold: P0002');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.release_hold(%L)$$, :nobody)), 22),
  'P0002: hold not found ', 'releasing an unknown hold: P0002');
SELECT is(pg_temp.fingerprint(:uma), '100,550,600/12/active', 'the refused hold calls changed nothing');
SELECT is((SELECT row(c.*)::text FROM agentmarket.capture_hold(:'hold1', 150) c), '(0,500,0,500)',
  'capturing less than held charges subscription first and releases the rest');
SELECT is((SELECT string_agg(t.credit_type || ' ' || t.amount || ' ' || t.description, '; ' ORDER BY t.credit_type)
             FROM agentmarket.credit_transactions t WHERE t.user_id = :uma AND t.type = 'session_deduct' AND t.description = 'metered run'),
  'subscription -100 metered run; topup -50 metered run', 'the capture wrote one session_deduct row per pot');
SELECT is(pg_temp.fingerprint(:uma), '0,500,0/14/captured150', 'the hold is captured with the amount charged');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.capture_hold(%L, 1)$$, :'hold1')),
  '22023: hold already resolved / The hold is captured; a hold resolves once.', 'a second capture: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.release_hold(%L)$$, :'hold1')),
  '22023: hold already resolved / The hold is captured; a hold resolves once.', 'releasing a captured hold: 22023');
SELECT agentmarket.reserve_credits(:uma, 100, NULL, NULL, :'k' || 'h2') AS hold2 \gset
SELECT is(agentmarket.reserve_credits(:uma, 100, NULL, NULL, :'k' || 'h2'), :'hold2'::uuid, 'the same reserve key returns the same hold');
SELECT is((SELECT row(r.*)::text FROM agentmarket.release_hold(:'hold2') r), '(0,500,0,500)', 'a release frees the held credits');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.release_hold(%L)$$, :'hold2')),
  '22023: hold already resolved / The hold is released; a hold resolves once.', 'a second release: 22023');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket.capture_hold(%L, 0)$$, :'hold2')),
  '22023: hold already resolved / The hold is released; a hold resolves once.', 'capturing a released hold: 22023');
SELECT agentmarket.reserve_credits(:uma, 70) AS hold3 \gset
SELECT agentmarket.reserve_credits(:uma, 30) AS hold4 \gset
UPDATE agentmarket_private.credit_holds SET expires_at = now() - interval '1 second', created_at = now() - interval '1 hour'
 WHERE id IN (:'hold3', :'hold4');
SELECT is(left(pg_temp.error_of(format($$SELECT agentmarket.capture_hold(%L, 10)$$, :'hold3')), 20),
  '22023: hold expired ', 'capturing an expired hold: 22023');
SELECT is(agentmarket.release_expired_holds(), 2, 'the sweep expires every overdue hold');
SELECT is(pg_temp.fingerprint(:uma), '0,500,0/14/captured150,expired,expired,released', 'expired holds free their credits');
SELECT is(agentmarket.release_expired_holds(), 0, 'a second sweep finds nothing');
SELECT is((SELECT row(c.*)::text FROM agentmarket.capture_hold(agentmarket.reserve_credits(:uma, 10), 0) c), '(0,500,0,500)',
  'capturing 0 charges nothing and resolves the hold');
-- Refresh keeps the subscription credits that back holds top-up cannot cover.
SELECT agentmarket.grant_credits(:vic, 93, 'topup', 'topup_purchase');
SELECT agentmarket.reserve_credits(:vic, 150) AS hold5 \gset
SELECT is((SELECT row(r.*)::text FROM agentmarket.refresh_subscription_credits(:vic, 20) r), '(65,105,150,20)',
  'a refresh keeps the subscription credits backing active holds (45 of 100) and expires the rest');
SELECT is((SELECT row(c.*)::text FROM agentmarket.capture_hold(:'hold5', 150) c), '(0,20,0,20)',
  'so the hold can still be captured in full after the refresh');

------------------------------------------------------------------------------
-- The ledger is append-only and checked
------------------------------------------------------------------------------
SELECT is(left(pg_temp.error_of(format($$UPDATE agentmarket.credit_transactions SET amount = 1 WHERE user_id = %L$$, :uma)), 41),
  '42501: the credit ledger is append-only /', 'UPDATE of a ledger row is refused (42501), even for a superuser');
SELECT is(left(pg_temp.error_of(format($$DELETE FROM agentmarket.credit_transactions WHERE user_id = %L$$, :uma)), 41),
  '42501: the credit ledger is append-only /', 'DELETE of a ledger row is refused (42501)');
SELECT is(left(pg_temp.error_of($$TRUNCATE agentmarket.credit_transactions$$), 41),
  '42501: the credit ledger is append-only /', 'TRUNCATE of the ledger is refused (42501)');
SET LOCAL session_replication_role = replica;
SELECT is(left(pg_temp.error_of(format($$DELETE FROM agentmarket.credit_transactions WHERE user_id = %L$$, :uma)), 41),
  '42501: the credit ledger is append-only /', 'the guard fires under session_replication_role = replica too');
RESET session_replication_role;
SELECT is(left(pg_temp.error_of(format($$INSERT INTO agentmarket.credit_transactions (user_id, type, amount, credit_type) VALUES (%L, 'bonus', 5, 'topup')$$, :uma)), 5),
  '23514', 'a ledger row of an unknown type violates the CHECK');
SELECT is(left(pg_temp.error_of(format($$INSERT INTO agentmarket.credit_transactions (user_id, type, amount, credit_type) VALUES (%L, 'refund', 5, 'gold')$$, :uma)), 5),
  '23514', 'a ledger row for an unknown pot violates the CHECK');
SELECT is(left(pg_temp.error_of(format($$INSERT INTO agentmarket.credit_transactions (user_id, type, amount, credit_type) VALUES (%L, 'session_deduct', 5, 'topup')$$, :uma)), 5),
  '23514', 'a deduction row with a positive amount violates the CHECK');
SELECT is(left(pg_temp.error_of(format($$INSERT INTO agentmarket.credit_transactions (user_id, type, amount, credit_type) VALUES (%L, 'subscription_expiry', -5, 'topup')$$, :uma)), 5),
  '23514', 'an expiry row outside the subscription pot violates the CHECK');
SELECT is(left(pg_temp.error_of(format($$UPDATE agentmarket.credit_balances SET topup_credits = -1 WHERE user_id = %L$$, :uma)), 5),
  '23514', 'a negative pot violates the balance CHECK');
SELECT is(left(pg_temp.error_of(format($$UPDATE agentmarket.credit_balances SET held_credits = 501 WHERE user_id = %L$$, :uma)), 5),
  '23514', 'held credits beyond the pots violate the balance CHECK');
SELECT is(left(pg_temp.error_of(format($$INSERT INTO agentmarket.credit_transactions (user_id, type, amount, credit_type) VALUES (%L, 'free_trial', 5, 'topup')$$, :uma)), 5),
  '23505', 'a second free_trial row violates the unique index');

------------------------------------------------------------------------------
-- verify_ledger
------------------------------------------------------------------------------
SELECT is_empty($$SELECT * FROM agentmarket.verify_ledger()$$, 'verify_ledger() is empty after all of the above');
UPDATE agentmarket.credit_balances SET topup_credits = topup_credits + 1, held_credits = 1 WHERE user_id = :vic;
SELECT results_eq(
  format($$SELECT credit_type, problem, recorded, expected FROM agentmarket.verify_ledger() WHERE user_id = %L$$, :vic),
  $$VALUES ('topup', 'balance differs from ledger', 21::bigint, 20::bigint),
           (NULL, 'held credits differ from active holds', 1, 0)$$,
  'verify_ledger() reports a pot that differs from its ledger and held credits without holds');
UPDATE agentmarket.credit_balances SET topup_credits = topup_credits - 1, held_credits = 0 WHERE user_id = :vic;
SELECT is_empty($$SELECT * FROM agentmarket.verify_ledger()$$, 'verify_ledger() is empty again once repaired');

------------------------------------------------------------------------------
-- my_balance
------------------------------------------------------------------------------
SELECT is(pg_temp.as_role('authenticated', '{"sub":"00000000-0000-4000-8000-00000000c101","role":"authenticated"}',
          $$SELECT row(b.*)::text FROM agentmarket.my_balance() b$$),
  '(0,500,0,500)', 'my_balance() shows the caller''s pots, held and available credits');
SELECT is(pg_temp.as_role('authenticated', '{"sub":"00000000-0000-4000-8000-00000000c1ff","role":"authenticated"}',
          $$SELECT row(b.*)::text FROM agentmarket.my_balance() b$$),
  '(0,0,0,0)', 'my_balance() of a user without credits is zeros');
SELECT is(pg_temp.as_role('authenticated', '', $$SELECT row(b.*)::text FROM agentmarket.my_balance() b$$),
  'ERROR 42501', 'my_balance() without a signed-in user: 42501');
SELECT is(pg_temp.as_role('anon', '', $$SELECT row(b.*)::text FROM agentmarket.my_balance() b$$),
  'ERROR 42501', 'anon may not call my_balance(): 42501');

SELECT * FROM finish();
ROLLBACK;
