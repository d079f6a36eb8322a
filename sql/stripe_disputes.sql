-- stripe_disputes: charge.dispute.* and partial transfer reversals, signed and
-- shaped as API 2024-06-20 sends them, each applied once and in any order.
-- A dispute's first event freezes the unspent credits of the disputed payment
-- (up to the disputed share); closed won (or an inquiry closed) releases
-- them; closed lost releases them and takes the disputed amount back as a
-- refund does (unspent credits, then revenue reversed and clawed back, then
-- the user's other credits, then a debt).  A partial transfer.reversed owes
-- exactly the reversed cents to the creator again, added to the next payout.
-- verify_books() is empty after every step.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(48);

\ir test/fixtures/stripe_events.sql

INSERT INTO users (id, email, role, stripe_connect_account_id) VALUES
  ('d0000000-0000-4000-8000-0000000000c1', 'maker@dispute.example', 'creator', 'acct_dis'),
  ('d0000000-0000-4000-8000-0000000000e1', 'won@dispute.example', 'user', NULL),
  ('d0000000-0000-4000-8000-0000000000e2', 'lost@dispute.example', 'user', NULL);
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, published_at)
VALUES ('d0000000-0000-4000-8000-0000000000a1', 'd0000000-0000-4000-8000-0000000000c1', 'dispute-agent', 'Dispute',
        't', 'd', 'research', 'published', 'per_session', 100, 'https://x/dispute', now());
INSERT INTO agent_instances (user_id, agent_id, fly_app_name, fly_machine_id, status)
SELECT u, 'd0000000-0000-4000-8000-0000000000a1', 'dis-' || right(u::text, 2), 'dis', 'running'
  FROM unnest(ARRAY['d0000000-0000-4000-8000-0000000000e1', 'd0000000-0000-4000-8000-0000000000e2']::uuid[]) u;
INSERT INTO agentmarket_private.connect_accounts (account_id, charges_enabled, payouts_enabled, transfers_active,
                                                  details_submitted, event_created)
VALUES ('acct_dis', true, true, true, true, 1);
CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);
CREATE FUNCTION pg_temp.pay_out(tr text) RETURNS void LANGUAGE sql AS $$
    SELECT count(*) FROM agentmarket.run_payouts();
    SELECT count(agentmarket_private.finish_payout_transfer(j, jsonb_build_object('id', tr)))
      FROM agentmarket_private.jobs j WHERE j.kind = 'stripe.create_transfer' AND j.status = 'queued';
    UPDATE agentmarket_private.jobs SET status = 'succeeded', finished_at = now() WHERE kind = 'stripe.create_transfer';
$$;

------------------------------------------------------------------------------
-- A dispute won: frozen while open, released when closed
------------------------------------------------------------------------------
-- topup_m: 1,100 credits for USD 10.00; 300 spent.
INSERT INTO ids VALUES ('won', pg_temp.purchase('d0000000-0000-4000-8000-0000000000e1', 'topup_m'));
SELECT pg_temp.deliver(pg_temp.completed('evt_w0', (SELECT id FROM ids WHERE name = 'won'), 'won')) \g /dev/null
SELECT count(pg_temp.session('d0000000-0000-4000-8000-0000000000e1')) FROM generate_series(1, 3) \g /dev/null
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_w1', 'charge.dispute.created', 'dp_won', 'pi_won', 1000, 'needs_response'))
            - 'event' - 'type' - 'purchase_id',
    '{"outcome": "applied", "dispute": "dp_won", "status": "needs_response", "frozen_credits": 800, "frozen_value_usd": 7.2728}'::jsonb,
    'charge.dispute.created freezes the payment''s 800 unspent credits with their value (7.2728 of 10.00)');
SELECT is(pg_temp.bal('d0000000-0000-4000-8000-0000000000e1'), '0/0', 'frozen credits are not in the pot');
SELECT is(pg_temp.fails($$SELECT start_session((SELECT id FROM agent_instances WHERE user_id = 'd0000000-0000-4000-8000-0000000000e1'))$$),
    'PT402: insufficient credits', 'frozen credits cannot be spent');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_w1', 'charge.dispute.created', 'dp_won', 'pi_won', 1000, 'needs_response')) ->> 'outcome',
    'duplicate', 'the same event delivered again changes nothing');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_w1b', 'charge.dispute.created', 'dp_won', 'pi_won', 1000, 'needs_response')) ->> 'frozen_credits',
    '800', 'the same dispute in another event freezes nothing more');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_w2', 'charge.dispute.funds_withdrawn', 'dp_won', 'pi_won', 1000, 'needs_response', 1790000100)) ->> 'outcome',
    'applied', 'charge.dispute.funds_withdrawn is recorded');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_w3', 'charge.dispute.updated', 'dp_won', 'pi_won', 1000, 'under_review', 1790000200)) ->> 'status',
    'under_review', 'charge.dispute.updated: evidence submitted, under review');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_w4', 'charge.dispute.updated', 'dp_won', 'pi_won', 1000, 'needs_response', 1790000150)) ->> 'status',
    'under_review', 'an older update arriving late does not set the status back');
SELECT is((SELECT funds_withdrawn || ' ' || frozen_credits || ' ' || status FROM agentmarket_private.disputes WHERE stripe_dispute_id = 'dp_won'),
    'true 800 under_review', 'the dispute: funds withdrawn, 800 credits frozen, under review');
SELECT is(pg_temp.books(), '', 'the books balance with credits frozen');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_w5', 'charge.dispute.funds_reinstated', 'dp_won', 'pi_won', 1000, 'won', 1790000300)) ->> 'credits_released',
    '800', 'a dispute won (its funds reinstated) releases the frozen credits');
SELECT is(pg_temp.bal('d0000000-0000-4000-8000-0000000000e1'), '0/800', 'the credits are spendable again');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_w6', 'charge.dispute.closed', 'dp_won', 'pi_won', 1000, 'won', 1790000300)) ->> 'reason',
    'the dispute is closed (won)', 'charge.dispute.closed after the release changes nothing');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_w7', 'charge.dispute.updated', 'dp_won', 'pi_won', 1000, 'under_review', 1790000250)) ->> 'outcome',
    'ignored', 'an update arriving after the close changes nothing');
SELECT is((SELECT string_agg(type || ' ' || amount || ' ' || value_usd, ', ' ORDER BY created_at, amount) FROM credit_transactions
            WHERE stripe_payment_id = 'dp_won'),
    'dispute_freeze -800 -7.2728, dispute_release 800 7.2728', 'one freeze and one release, each naming the dispute');
SELECT is(pg_temp.books(), '', 'the books balance after a dispute won');

------------------------------------------------------------------------------
-- A payout, then partial transfer reversals
------------------------------------------------------------------------------
SELECT pg_temp.pay_out('tr_dis1') \g /dev/null
SELECT is((SELECT status FROM payouts WHERE stripe_transfer_id = 'tr_dis1'), 'paid', 'the creator is paid for the three sessions');
SELECT is(pg_temp.deliver(pg_temp.reversed('evt_v1', 'tr_dis1', 100)) - 'event' - 'type' - 'payout_id',
    '{"outcome": "applied", "creator_id": "d0000000-0000-4000-8000-0000000000c1", "reversed_cents": 100, "owed_again_usd": 1.0000}'::jsonb,
    'a partial transfer.reversed (1.00 of the transfer) owes exactly that to the creator again');
SELECT is((SELECT status || ' ' || reversed_cents FROM payouts WHERE stripe_transfer_id = 'tr_dis1'), 'paid 100',
    'the payout stays paid, with 100 cents reversed');
SELECT is(pg_temp.deliver(pg_temp.reversed('evt_v0', 'tr_dis1', 40, 1789999000)) ->> 'reason', 'already reversed',
    'an earlier reversal event (cumulative 0.40) arriving late takes nothing more');
SELECT is(pg_temp.deliver(pg_temp.reversed('evt_v2', 'tr_dis1', 150, 1790000100)) ->> 'reversed_cents', '50',
    'a second partial reversal (cumulative 1.50) owes the 0.50 more');
SELECT is(pg_temp.books(), '', 'the books balance with reversals owed again');
SELECT is((SELECT amount_usd FROM run_payouts()), 1.5000,
    'the next run pays the 1.50 reversed, with no new earnings');
SELECT count(agentmarket_private.finish_payout_transfer(j, '{"id": "tr_dis2"}'))
  FROM agentmarket_private.jobs j WHERE j.kind = 'stripe.create_transfer' AND j.status = 'queued' \g /dev/null
UPDATE agentmarket_private.jobs SET status = 'succeeded', finished_at = now() WHERE kind = 'stripe.create_transfer';
SELECT is((SELECT count(*)::int FROM agentmarket_private.payout_reversals WHERE netted_payout_id IS NOT NULL), 2,
    'both reversals are netted by that payout');
SELECT is(pg_temp.books(), '', 'the books balance once the reversals are paid again');
SELECT is(pg_temp.deliver(pg_temp.reversed('evt_v3', 'tr_dis2', (SELECT transfer_cents FROM payouts WHERE stripe_transfer_id = 'tr_dis2'))) ->> 'reversed_cents',
    (SELECT transfer_cents FROM payouts WHERE stripe_transfer_id = 'tr_dis2')::text,
    'the whole of that transfer reversed: the payout is undone');
SELECT is((SELECT status FROM payouts WHERE stripe_transfer_id = 'tr_dis2') || ' ' ||
          (SELECT count(*) FROM agentmarket_private.payout_reversals WHERE netted_payout_id IS NULL),
    'reversed 2', '... and the reversals it paid are owed again');
SELECT is(pg_temp.books(), '', 'the books balance after a whole reversal of a payout of reversals');
SELECT is(pg_temp.deliver(pg_temp.reversed('evt_v4', 'tr_dis1',
              (SELECT transfer_cents FROM payouts WHERE stripe_transfer_id = 'tr_dis1'), 1790000200)) ->> 'reversed_cents',
    ((SELECT transfer_cents FROM payouts WHERE stripe_transfer_id = 'tr_dis1') - 150)::text,
    'the rest of a partly reversed transfer: what was not reversed yet is owed again');
SELECT is(pg_temp.books(), '', 'the books balance after the rest is reversed');
SELECT is((SELECT amount_usd FROM run_payouts()),
          (SELECT transfer_cents / 100.0 FROM payouts WHERE stripe_transfer_id = 'tr_dis1'),
    'the next run pays everything reversed again');
SELECT count(agentmarket_private.finish_payout_transfer(j, '{"id": "tr_dis3"}'))
  FROM agentmarket_private.jobs j WHERE j.kind = 'stripe.create_transfer' AND j.status = 'queued' \g /dev/null
UPDATE agentmarket_private.jobs SET status = 'succeeded', finished_at = now() WHERE kind = 'stripe.create_transfer';
SELECT is(pg_temp.books(), '', 'the books balance once all of it is paid again');

------------------------------------------------------------------------------
-- A dispute lost: acts as a refund
------------------------------------------------------------------------------
INSERT INTO ids VALUES ('lost', pg_temp.purchase('d0000000-0000-4000-8000-0000000000e2', 'topup_m'));
SELECT pg_temp.deliver(pg_temp.completed('evt_l0', (SELECT id FROM ids WHERE name = 'lost'), 'lost')) \g /dev/null
SELECT count(pg_temp.session('d0000000-0000-4000-8000-0000000000e2')) FROM generate_series(1, 7) \g /dev/null
SELECT pg_temp.pay_out('tr_dis4') \g /dev/null
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_l1', 'charge.dispute.created', 'dp_lost', 'pi_lost', 1000, 'needs_response')) ->> 'frozen_credits',
    '400', 'a dispute of a payment whose credits are mostly spent freezes the 400 left');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_l2', 'charge.dispute.closed', 'dp_lost', 'pi_lost', 1000, 'lost', 1790000500))
            - 'event' - 'type' - 'purchase_id',
    '{"outcome": "applied", "dispute": "dp_lost", "status": "lost", "credits_released": 400, "refunded_cents": 1000,
      "credits_taken_back": 400, "value_taken_back": 3.6364, "revenue_reversed": 6.3636, "credits_recovered": 0, "debt": 700}'::jsonb,
    'closed lost: the 400 come back and are taken with the refund of 10.00; the revenue of the 700 spent is reversed and they are owed');
SELECT is((SELECT refunded_cents || ' ' || dispute_lost_cents FROM agentmarket_private.purchase_payments
            WHERE purchase_id = (SELECT id FROM ids WHERE name = 'lost')), '0 1000', 'the payment: nothing refunded, 10.00 lost in a dispute');
SELECT is((SELECT count(*)::int FROM agentmarket_private.creator_clawbacks), 7,
    'the seven paid sessions'' revenue is clawed back from the next payout');
SELECT is((SELECT credits FROM agentmarket_private.credit_debts WHERE user_id = 'd0000000-0000-4000-8000-0000000000e2'), 700,
    'the user owes the 700 spent credits');
SELECT is(pg_temp.deliver(pg_temp.refunded('evt_l3', 'lost', 'pi_lost', NULL, 1000, 1000)) ->> 'reason', 'already taken back',
    'a refund of the same payment after the lost dispute takes nothing more: never more than was paid');
SELECT is(pg_temp.books(), '', 'the books balance after a dispute lost');

------------------------------------------------------------------------------
-- Order, bad input
------------------------------------------------------------------------------
INSERT INTO ids VALUES ('early', pg_temp.purchase('d0000000-0000-4000-8000-0000000000e1', 'topup_s'));
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_e1', 'charge.dispute.created', 'dp_early', 'pi_early', 99999999999999999999999, 'warning_needs_response')) ->> 'outcome',
    'deferred', 'a dispute before its payment is known is kept, deferred');
SELECT pg_temp.deliver(pg_temp.completed('evt_e0', (SELECT id FROM ids WHERE name = 'early'), 'early')) \g /dev/null
SELECT is((SELECT frozen_credits || ' ' || amount_cents FROM agentmarket_private.disputes WHERE stripe_dispute_id = 'dp_early'),
    '500 500', 'the completion applies it: an absurd disputed amount freezes no more than the payment''s credits');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_e2', 'charge.dispute.closed', 'dp_early', 'pi_early', 500, 'warning_closed')) ->> 'credits_released',
    '500', 'an inquiry closed without a chargeback releases the credits');
INSERT INTO ids VALUES ('first', pg_temp.purchase('d0000000-0000-4000-8000-0000000000e1', 'topup_s'));
SELECT pg_temp.deliver(pg_temp.completed('evt_f0', (SELECT id FROM ids WHERE name = 'first'), 'first')) \g /dev/null
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_f2', 'charge.dispute.closed', 'dp_first', 'pi_first', 500, 'lost', 1790000900))
            ->> 'credits_taken_back', '500',
    'a dispute whose first event is its close (lost) is opened and lost at once: the payment''s 500 credits are taken back');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_f1', 'charge.dispute.created', 'dp_first', 'pi_first', 500, 'needs_response', 1790000800)) ->> 'reason',
    'the dispute is closed (lost)', 'its creation arriving after the close changes nothing');
SELECT is(pg_temp.deliver(pg_temp.dispute('evt_x1', 'charge.dispute.created', 'dp_eur', 'pi_won', 1000, 'needs_response')
            #- '{data,object,currency}' || '{}'::jsonb) ->> 'outcome', 'rejected',
    'a dispute in another currency than the purchase is rejected');
SELECT is(pg_temp.deliver(jsonb_set(pg_temp.dispute('evt_x2', 'charge.dispute.created', 'dp_x', 'pi_won', 1000, 'needs_response'),
                                    '{data,object,id}', '"not-a-dispute"')) ->> 'reason', 'no dispute in the event',
    'an event without a dispute id is rejected');
SELECT is(pg_temp.fails($$SELECT agentmarket.handle_stripe_webhook(pg_temp.dispute('evt_x3', 'charge.dispute.closed', 'dp_won', 'pi_won', 1000, 'lost')::text,
                                                                   pg_temp.sign('{}', 'whsec_life'))$$),
    'PT401: stripe signature does not match', 'a forged close (signature of another payload) is refused');
SELECT is(pg_temp.books(), '', 'the books balance at the end');

SELECT * FROM finish();
ROLLBACK;
