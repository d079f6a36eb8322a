-- stripe_lifecycle: the Stripe events after Checkout, signed and shaped as API
-- 2024-06-20 sends them, each applied once and in any order: renewals
-- (invoice.paid, never the first period twice), failed payments and
-- subscription changes, refunds full and partial (unspent credits back, the
-- spent part recovered from revenue, then the user's other credits, then a
-- debt), Connect readiness (account.updated on its own endpoint and secret,
-- secret rotation), transfer reversals, early events kept until their
-- referent arrives, pruning; verify_books() empty throughout.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(49);

\ir test/fixtures/stripe_events.sql

INSERT INTO users (id, email, role, stripe_connect_account_id) VALUES
  ('c0000000-0000-4000-8000-0000000000c1', 'maker@life.example', 'creator', 'acct_life'),
  ('c0000000-0000-4000-8000-0000000000e1', 'sub@life.example', 'user', NULL),
  ('c0000000-0000-4000-8000-0000000000e2', 'top@life.example', 'user', NULL),
  ('c0000000-0000-4000-8000-0000000000e3', 'early@life.example', 'user', NULL);
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, published_at)
VALUES ('c0000000-0000-4000-8000-0000000000a1', 'c0000000-0000-4000-8000-0000000000c1', 'life-agent', 'Life',
        't', 'd', 'research', 'published', 'per_session', 100, 'https://x/life', now());
INSERT INTO agent_instances (user_id, agent_id, fly_app_name, fly_machine_id, status)
SELECT u, 'c0000000-0000-4000-8000-0000000000a1', 'life-' || right(u::text, 2), 'life', 'running'
  FROM unnest(ARRAY['c0000000-0000-4000-8000-0000000000e1', 'c0000000-0000-4000-8000-0000000000e2',
                     'c0000000-0000-4000-8000-0000000000e3']::uuid[]) u;
CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);

------------------------------------------------------------------------------
-- Renewals
------------------------------------------------------------------------------
INSERT INTO ids VALUES ('plan', pg_temp.purchase('c0000000-0000-4000-8000-0000000000e1', 'pro_monthly'));
SELECT is(pg_temp.deliver(pg_temp.completed('evt_p1', (SELECT id FROM ids WHERE name = 'plan'), 'plan')) ->> 'outcome',
    'applied', 'Checkout grants the plan''s first period');
SELECT is(pg_temp.deliver(pg_temp.invoice('evt_p2', 'invoice.paid', 'plan', 1, 'subscription_create', 1900)) ->> 'reason',
    'the first period is granted by checkout.session.completed',
    'the first invoice''s invoice.paid grants nothing more: no double first period');
SELECT is(pg_temp.bal('c0000000-0000-4000-8000-0000000000e1'), '2500/0', 'one period of credits');
SELECT pg_temp.session('c0000000-0000-4000-8000-0000000000e1') IS NOT NULL;
SELECT is(pg_temp.deliver(pg_temp.invoice('evt_p3', 'invoice.paid', 'plan', 2, 'subscription_cycle', 1900)) ->> 'outcome',
    'applied', 'a renewal''s invoice.paid is applied');
SELECT is(pg_temp.bal('c0000000-0000-4000-8000-0000000000e1'), '2500/0',
    'the renewal refreshes the subscription pot: what was left of the old period (2,400) expired, 2,500 granted');
SELECT is((SELECT string_agg(type || ' ' || amount || ' ' || value_usd, ', ' ORDER BY amount) FROM credit_transactions
            WHERE user_id = 'c0000000-0000-4000-8000-0000000000e1' AND type IN ('subscription_expiry', 'subscription_refresh')),
    'subscription_expiry -2400 -18.2400, subscription_refresh 2500 19.0000, subscription_refresh 2500 19.0000',
    'the old period''s remaining value (18.24) expires to the platform; the new lot is worth the invoice');
SELECT is(pg_temp.deliver(pg_temp.invoice('evt_p3b', 'invoice.paid', 'plan', 2, 'subscription_cycle', 1900)) ->> 'reason',
    'this invoice was already applied', 'the same invoice in another event grants nothing more (once per invoice)');
SELECT is(pg_temp.deliver(pg_temp.invoice('evt_p4', 'invoice.payment_failed', 'plan', 3, 'subscription_cycle', 1900)) ->> 'status',
    'past_due', 'invoice.payment_failed: the plan is past due');
SELECT is(pg_temp.bal('c0000000-0000-4000-8000-0000000000e1'), '2500/0', '... and nothing is refreshed');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_p5', 'customer.subscription.updated', jsonb_build_object(
              'id', 'sub_plan', 'object', 'subscription', 'status', 'active', 'cancel_at_period_end', true,
              'current_period_end', 1797776000), 1790000500)) ->> 'outcome', 'applied',
    'customer.subscription.updated: cancellation at period end');
SELECT is((SELECT status || ' ' || cancel_at_period_end FROM agentmarket_private.subscriptions WHERE stripe_subscription_id = 'sub_plan'),
    'active true', 'the plan stays active until the period ends, set to cancel');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_p6', 'customer.subscription.updated', jsonb_build_object(
              'id', 'sub_plan', 'object', 'subscription', 'status', 'past_due', 'cancel_at_period_end', false), 1790000100)) ->> 'outcome',
    'ignored', 'an older subscription event arriving late changes nothing');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_p7', 'customer.subscription.deleted', jsonb_build_object(
              'id', 'sub_plan', 'object', 'subscription', 'status', 'canceled'), 1790001000)) ->> 'status', 'canceled',
    'customer.subscription.deleted: the plan is canceled');
SELECT is(pg_temp.bal('c0000000-0000-4000-8000-0000000000e1'), '0/0', '... and what was left of its credits expired');
SELECT is(pg_temp.books(), '', 'the books balance after renewals and cancellation');

-- A renewal that arrives before the plan's Checkout completion waits for it.
INSERT INTO ids VALUES ('plan2', pg_temp.purchase('c0000000-0000-4000-8000-0000000000e3', 'pro_monthly'));
SELECT is(pg_temp.deliver(pg_temp.invoice('evt_q2', 'invoice.paid', 'plan2', 2, 'subscription_cycle', 1900)) ->> 'outcome',
    'deferred', 'a renewal before its purchase is known is kept, deferred');
SELECT is((SELECT waits_for FROM agentmarket_private.processed_webhook_events WHERE event_id = 'evt_q2'), 'sub_plan2',
    '... waiting for its subscription');
SELECT is(pg_temp.deliver(pg_temp.completed('evt_q1', (SELECT id FROM ids WHERE name = 'plan2'), 'plan2')) ->> 'outcome',
    'applied', 'the Checkout completion arrives');
SELECT is((SELECT outcome || ' ' || (result ? 'deferred_until') FROM agentmarket_private.processed_webhook_events WHERE event_id = 'evt_q2'),
    'applied true', 'the waiting renewal is applied then, nothing lost');
SELECT is(pg_temp.bal('c0000000-0000-4000-8000-0000000000e3'), '2500/0', 'first period, then the renewal: one period left');

------------------------------------------------------------------------------
-- Refunds
------------------------------------------------------------------------------
INSERT INTO ids VALUES ('t1', pg_temp.purchase('c0000000-0000-4000-8000-0000000000e2', 'topup_s'));
SELECT pg_temp.deliver(pg_temp.completed('evt_t1', (SELECT id FROM ids WHERE name = 't1'), 't1')) \g /dev/null
SELECT is(pg_temp.deliver(pg_temp.refunded('evt_t1r', 't1', 'pi_t1', NULL, 500, 500)) ->> 'credits_taken_back', '500',
    'a full refund of an unspent top-up takes its 500 credits back');
SELECT is((SELECT status || ' ' || refunded_cents FROM purchases WHERE id = (SELECT id FROM ids WHERE name = 't1')),
    'refunded 500', 'the purchase is refunded');
SELECT is(pg_temp.bal('c0000000-0000-4000-8000-0000000000e2'), '0/0', 'the credits are gone');

-- topup_m: 1,100 credits for USD 10.00; 700 spent on the creator's agent, then half refunded.
INSERT INTO ids VALUES ('t2', pg_temp.purchase('c0000000-0000-4000-8000-0000000000e2', 'topup_m'));
SELECT pg_temp.deliver(pg_temp.completed('evt_t2', (SELECT id FROM ids WHERE name = 't2'), 't2')) \g /dev/null
SELECT count(pg_temp.session('c0000000-0000-4000-8000-0000000000e2')) FROM generate_series(1, 7) \g /dev/null
SELECT is((SELECT sum(gross_revenue)::text FROM creator_earnings e JOIN sessions s ON s.id = e.session_id
            WHERE s.user_id = 'c0000000-0000-4000-8000-0000000000e2'), '6.3636', 'seven sessions consumed 700 credits worth 6.3636');
-- The creator is paid for the sessions before the refund.
INSERT INTO agentmarket_private.connect_accounts (account_id, charges_enabled, payouts_enabled, transfers_active,
                                                  details_submitted, event_created)
VALUES ('acct_life', true, true, true, true, 1);
SELECT count(*) FROM run_payouts() \g /dev/null
SELECT agentmarket_private.finish_payout_transfer(j, '{"id": "tr_life0"}') IS NULL
  FROM agentmarket_private.jobs j WHERE j.kind = 'stripe.create_transfer' \g /dev/null
-- The refund comes in two events, the later one (cumulative 800) first.
SELECT is(pg_temp.deliver(pg_temp.refunded('evt_t2r2', 't2', 'pi_t2', NULL, 1000, 800, 1790000200)) - 'event' - 'type' - 'purchase_id',
    '{"debt": 480, "outcome": "applied", "refunded_cents": 800, "value_taken_back": 3.6364, "credits_recovered": 0,
      "revenue_reversed": 4.3636, "credits_taken_back": 400}'::jsonb,
    'a refund of 8.00 of 10.00 is 880 credits: the 400 unspent come back (3.6364), the revenue of the 480 spent is reversed (4.3636), and they are owed');
SELECT is(pg_temp.deliver(pg_temp.refunded('evt_t2r1', 't2', 'pi_t2', NULL, 1000, 300, 1790000100)) ->> 'reason',
    'already taken back', 'the earlier refund event (cumulative 300) arriving late takes nothing more');
SELECT is((SELECT count(*)::int FROM agentmarket_private.creator_clawbacks), 5,
    'the reversal takes the newest sessions'' revenue (five of them), already paid: clawed back from the next payout');
SELECT is((SELECT sum(gross_revenue) - (SELECT sum(gross_usd) FROM agentmarket_private.creator_clawbacks) FROM creator_earnings e
            JOIN sessions s ON s.id = e.session_id WHERE s.user_id = 'c0000000-0000-4000-8000-0000000000e2'), 2.0000,
    'the sessions'' recognized revenue is what was not refunded (6.3636 - 4.3636)');
SELECT is((SELECT credits FROM agentmarket_private.credit_debts WHERE user_id = 'c0000000-0000-4000-8000-0000000000e2'), 480,
    'the user owes the 480 spent credits the refund paid back');
SELECT is(pg_temp.fails($$SELECT start_session((SELECT id FROM agent_instances WHERE user_id = 'c0000000-0000-4000-8000-0000000000e2'))$$),
    'PT402: insufficient credits', 'a debt blocks spending: nothing is available');
INSERT INTO ids VALUES ('t3', pg_temp.purchase('c0000000-0000-4000-8000-0000000000e2', 'topup_s'));
SELECT pg_temp.deliver(pg_temp.completed('evt_t3', (SELECT id FROM ids WHERE name = 't3'), 't3')) \g /dev/null
SELECT is(pg_temp.bal('c0000000-0000-4000-8000-0000000000e2') || ' ' ||
          (SELECT credits FROM agentmarket_private.credit_debts WHERE user_id = 'c0000000-0000-4000-8000-0000000000e2'),
    '0/20 0', 'the next purchase settles the debt first: 500 - 480');
SELECT is(pg_temp.books(), '', 'the books balance after refunds, reversal, clawback and debt');
SELECT count(pg_temp.session('c0000000-0000-4000-8000-0000000000e3')) FROM generate_series(1, 3) \g /dev/null
SELECT is((SELECT count(*)::int FROM run_payouts()), 0,
    'new earnings below what the creator owes back: no payout, the clawback waits');
SELECT count(pg_temp.session('c0000000-0000-4000-8000-0000000000e3')) FROM generate_series(1, 5) \g /dev/null

-- A refund before its purchase's completion waits for it.
INSERT INTO ids VALUES ('t4', pg_temp.purchase('c0000000-0000-4000-8000-0000000000e3', 'topup_s'));
SELECT is(pg_temp.deliver(pg_temp.refunded('evt_t4r', 't4', 'pi_t4', NULL, 500, 500)) ->> 'outcome', 'deferred',
    'a refund before its purchase is known is deferred');
SELECT pg_temp.deliver(pg_temp.completed('evt_t4', (SELECT id FROM ids WHERE name = 't4'), 't4')) \g /dev/null
SELECT is((SELECT outcome FROM agentmarket_private.processed_webhook_events WHERE event_id = 'evt_t4r') || ' ' ||
          pg_temp.bal('c0000000-0000-4000-8000-0000000000e3'), 'applied 1700/0',
    'the completion grants the credits and the waiting refund takes them back');

------------------------------------------------------------------------------
-- Connect: readiness, its endpoint and secrets, reversals
------------------------------------------------------------------------------
UPDATE agentmarket_private.connect_accounts SET charges_enabled = false, payouts_enabled = false, event_created = 5;
DELETE FROM agentmarket_private.jobs;
SELECT is((SELECT count(*)::int FROM run_payouts()), 0, 'a creator whose account cannot be paid gets no payout and no job');
CREATE FUNCTION pg_temp.account(evt text, created bigint, ready boolean) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_temp.ev(evt, 'account.updated', jsonb_build_object('id', 'acct_life', 'object', 'account',
        'charges_enabled', ready, 'payouts_enabled', ready, 'details_submitted', true, 'type', 'express',
        'capabilities', jsonb_build_object('transfers', CASE WHEN ready THEN 'active' ELSE 'inactive' END),
        'controller', jsonb_build_object('type', 'application', 'is_controller', true),
        'requirements', jsonb_build_object('disabled_reason', CASE WHEN ready THEN NULL ELSE 'requirements.past_due' END)),
        created) || jsonb_build_object('account', 'acct_life')
$$;
SELECT is(pg_temp.fails($$SELECT pg_temp.deliver_connect(pg_temp.account('evt_a0', 10, true), 'whsec_life')$$),
    'PT401: stripe signature does not match', 'the Connect endpoint refuses the account endpoint''s secret');
SELECT is(pg_temp.deliver_connect(pg_temp.account('evt_a1', 10, true)) ->> 'payable', 'true',
    'account.updated with charges and payouts enabled and transfers active: payable');
SELECT is(pg_temp.deliver_connect(pg_temp.account('evt_a2', 7, false)) ->> 'outcome', 'ignored',
    'an older account.updated arriving late changes nothing');
SELECT agentmarket.configure('stripe_connect_webhook_secret_previous', 'whsec_connect') \g /dev/null
SELECT agentmarket.configure('stripe_connect_webhook_secret', 'whsec_rolled') \g /dev/null
SELECT is(pg_temp.deliver_connect(pg_temp.account('evt_a3', 11, true), 'whsec_connect') ->> 'outcome', 'applied',
    'during a rotation the previous secret still verifies');
SELECT is(pg_temp.deliver_connect(pg_temp.account('evt_a4', 12, true), 'whsec_rolled') ->> 'outcome', 'applied',
    '... and so does the new one');
SELECT is((SELECT amount_usd = (SELECT sum(creator_amount) FROM creator_earnings WHERE NOT paid_out)
                             - (SELECT sum(creator_amount) FROM agentmarket_private.creator_clawbacks)
             FROM run_payouts()), true, 'now the creator is paid: the new earnings less the clawback');
SELECT agentmarket_private.finish_payout_transfer(j, '{"id": "tr_life1"}') IS NULL
  FROM agentmarket_private.jobs j WHERE j.kind = 'stripe.create_transfer' \g /dev/null
SELECT is(pg_temp.deliver(pg_temp.ev('evt_r1', 'transfer.reversed', jsonb_build_object('id', 'tr_life1', 'object', 'transfer',
              'amount', (SELECT transfer_cents FROM payouts WHERE stripe_transfer_id = 'tr_life1'),
              'amount_reversed', (SELECT transfer_cents FROM payouts WHERE stripe_transfer_id = 'tr_life1'), 'reversed', true))) ->> 'outcome',
    'applied', 'transfer.reversed is applied');
SELECT is((SELECT status FROM payouts WHERE stripe_transfer_id = 'tr_life1') || ' ' ||
          (SELECT count(*) FROM creator_earnings WHERE paid_out AND stripe_transfer_id = 'tr_life1') || ' ' ||
          (SELECT count(*) FROM agentmarket_private.creator_clawbacks WHERE payout_id IS NULL), 'reversed 0 5',
    'the payout is reversed, its earnings are unpaid and the clawbacks it netted owed again');
SELECT is((SELECT count(*)::int FROM run_payouts()), 1, 'the next run pays them again');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_r2', 'transfer.reversed', jsonb_build_object('id', 'tr_unknown', 'object', 'transfer',
              'amount', 10, 'amount_reversed', 10))) ->> 'outcome', 'deferred',
    'a reversal of a transfer not known yet waits for it');
SELECT is(pg_temp.books(), '', 'the books balance after readiness, payouts and reversal');

------------------------------------------------------------------------------
-- Retention
------------------------------------------------------------------------------
UPDATE agentmarket_private.processed_webhook_events SET received_at = now() - interval '40 days';
SELECT is(prune_webhook_events(), (SELECT count(*)::int FROM agentmarket_private.processed_webhook_events WHERE outcome <> 'deferred'),
    'prune_webhook_events() removes the handled events past the retention');
SELECT is((SELECT string_agg(event_id, ',') FROM agentmarket_private.processed_webhook_events), 'evt_r2',
    'a deferred event is kept, whatever its age');

SELECT * FROM finish();
ROLLBACK;
