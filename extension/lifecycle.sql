-- lifecycle.sql: the Stripe lifecycle after Checkout, applied once, in any order.
--
--   invoice.paid                   a renewal: the subscription pot is refreshed
--                                  with a lot worth the invoice (what was left
--                                  expires); the first period is Checkout's
--   invoice.payment_failed         the subscription is past due, no refresh
--   customer.subscription.*        status, cancellation at period end; deleted:
--                                  what is left of the plan's credits expires
--   charge.refunded                the payment's unspent credits are taken back
--                                  up to the refunded share; the rest is
--                                  recovered (revenue reversed, then the user's
--                                  other credits, then a debt)
--   account.updated (Connect)      whether a creator can be paid
--   transfer.reversed              the payout's earnings are owed again
--
-- An event whose referent is not known yet (a refund before the purchase's
-- completion) is kept as deferred and applied when the referent arrives.

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('stripe_webhook_secret_previous', 'secret', NULL, NULL, NULL, '^whsec_[A-Za-z0-9]+$',
   'The account endpoint''s previous signing secret, still accepted while a rotation is under way (unset it after).'),
  ('stripe_connect_webhook_secret_previous', 'secret', NULL, NULL, NULL, '^whsec_[A-Za-z0-9]+$',
   'The Connect endpoint''s previous signing secret, still accepted while a rotation is under way.'),
  ('webhook_event_retention_days', 'integer', '30', 7, 3650, NULL,
   'Handled webhook events older than this are removed by agentmarket.prune_webhook_events() (deferred ones are kept); Stripe retries an event for 3 days.');

ALTER TABLE agentmarket_private.processed_webhook_events
  DROP CONSTRAINT processed_webhook_events_outcome_check,
  ADD CONSTRAINT processed_webhook_events_outcome_check
    CHECK (outcome IN ('applied', 'ignored', 'rejected', 'deferred')),
  ADD COLUMN endpoint TEXT NOT NULL DEFAULT 'account'
    CONSTRAINT processed_webhook_events_endpoint_check CHECK (endpoint IN ('account', 'connect')),
  ADD COLUMN payload JSONB,
  ADD COLUMN waits_for TEXT,
  ADD CONSTRAINT processed_webhook_events_deferred_check
    CHECK ((outcome = 'deferred') = (payload IS NOT NULL AND waits_for IS NOT NULL));
COMMENT ON COLUMN agentmarket_private.processed_webhook_events.waits_for IS
    'A deferred event''s referent (a payment intent, subscription, invoice, charge, account or transfer id): the event is applied when it becomes known.';
CREATE INDEX processed_webhook_events_waiting ON agentmarket_private.processed_webhook_events (waits_for)
    WHERE outcome = 'deferred';
CREATE INDEX processed_webhook_events_received ON agentmarket_private.processed_webhook_events (received_at);

-- A plan's state at Stripe.
CREATE TABLE agentmarket_private.subscriptions (
  stripe_subscription_id TEXT PRIMARY KEY CONSTRAINT subscriptions_id_format CHECK (stripe_subscription_id ~ '^sub_'),
  purchase_id UUID NOT NULL REFERENCES agentmarket.purchases(id),
  status TEXT NOT NULL,
  cancel_at_period_end BOOLEAN NOT NULL DEFAULT false,
  current_period_end TIMESTAMPTZ,
  event_created BIGINT NOT NULL DEFAULT 0, -- the newest event applied: older ones change nothing
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.subscriptions IS
    'The state of each plan bought through Checkout, as the newest Stripe event says: status (active, past_due, canceled, ...), cancellation at period end.';
REVOKE ALL ON TABLE agentmarket_private.subscriptions FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.subscriptions', '');

-- Whether a creator's connected account can be paid.
CREATE TABLE agentmarket_private.connect_accounts (
  account_id TEXT PRIMARY KEY CONSTRAINT connect_accounts_id_format CHECK (account_id ~ '^acct_'),
  charges_enabled BOOLEAN NOT NULL,
  payouts_enabled BOOLEAN NOT NULL,
  transfers_active BOOLEAN NOT NULL,
  details_submitted BOOLEAN NOT NULL,
  disabled_reason TEXT,
  payable BOOLEAN GENERATED ALWAYS AS (charges_enabled AND payouts_enabled AND transfers_active) STORED,
  event_created BIGINT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.connect_accounts IS
    'Readiness of each connected account as its newest account.updated says; payable = charges and payouts enabled and the transfers capability active.';
REVOKE ALL ON TABLE agentmarket_private.connect_accounts FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.connect_accounts', '');

-- What a user owes after a refund took back credits they had spent.
CREATE TABLE agentmarket_private.credit_debts (
  user_id UUID PRIMARY KEY REFERENCES agentmarket.users(id),
  credits INTEGER NOT NULL CONSTRAINT credit_debts_credits_check CHECK (credits >= 0),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.credit_debts IS
    'Credits a user owes because a refund or a lost dispute took back credits already spent; settled first from every later grant.';
REVOKE ALL ON TABLE agentmarket_private.credit_debts FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.credit_debts', '');

-- Revenue taken back because the credits that produced it were refunded.
CREATE TABLE agentmarket_private.revenue_reversals (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  purchase_id UUID NOT NULL REFERENCES agentmarket.purchases(id),
  lot_id BIGINT NOT NULL,
  session_id UUID REFERENCES agentmarket.sessions(id), -- NULL: revenue of the platform alone
  value_usd NUMERIC(14,4) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.revenue_reversals IS
    'Value of spent credits that a refund took back from the revenue they produced: a session''s (its earnings are reduced or clawed back) or the platform''s.';
CREATE INDEX revenue_reversals_session ON agentmarket_private.revenue_reversals (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX revenue_reversals_purchase ON agentmarket_private.revenue_reversals (purchase_id);
REVOKE ALL ON TABLE agentmarket_private.revenue_reversals FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.revenue_reversals', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.revenue_reversals_id_seq', '');

-- A dispute (chargeback or inquiry) of a payment: the credits it froze.
CREATE TABLE agentmarket_private.disputes (
  stripe_dispute_id TEXT PRIMARY KEY CONSTRAINT disputes_id_format CHECK (stripe_dispute_id ~ '^(dp|du)_[A-Za-z0-9_]+$'),
  payment_id BIGINT NOT NULL REFERENCES agentmarket_private.purchase_payments(id),
  purchase_id UUID NOT NULL REFERENCES agentmarket.purchases(id),
  amount_cents BIGINT NOT NULL CONSTRAINT disputes_amount_check CHECK (amount_cents >= 0),
  status TEXT NOT NULL, -- as Stripe says: warning_needs_response, needs_response, under_review, won, lost, ...
  -- The unspent credits of the payment's lot frozen while the dispute is open, and their value.
  frozen_credits INTEGER NOT NULL DEFAULT 0 CONSTRAINT disputes_frozen_check CHECK (frozen_credits >= 0),
  frozen_value_usd NUMERIC(14,4) NOT NULL DEFAULT 0 CONSTRAINT disputes_frozen_value_check CHECK (frozen_value_usd >= 0),
  funds_withdrawn BOOLEAN NOT NULL DEFAULT false,
  funds_reinstated BOOLEAN NOT NULL DEFAULT false,
  outcome TEXT CONSTRAINT disputes_outcome_check CHECK (outcome IN ('won', 'lost', 'warning_closed')),
  closed_at TIMESTAMPTZ,
  event_created BIGINT NOT NULL DEFAULT 0, -- the newest event applied to status
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT disputes_closed_consistent CHECK ((outcome IS NULL) = (closed_at IS NULL)),
  CONSTRAINT disputes_closed_unfrozen CHECK (outcome IS NULL OR (frozen_credits = 0 AND frozen_value_usd = 0))
);
COMMENT ON TABLE agentmarket_private.disputes IS
    'Every Stripe dispute of a payment: status, the credits it froze while open (dispute_freeze rows) and, once closed, its outcome (won and warning_closed release them; lost releases them and takes back the disputed amount as a refund does).';
CREATE INDEX disputes_payment ON agentmarket_private.disputes (payment_id);
REVOKE ALL ON TABLE agentmarket_private.disputes FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.disputes', '');

-- Part of a paid transfer reversed: owed to the creator again, netted (added)
-- by their next payout.
CREATE TABLE agentmarket_private.payout_reversals (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  payout_id UUID NOT NULL REFERENCES agentmarket.payouts(id),
  creator_id UUID NOT NULL REFERENCES agentmarket.users(id),
  amount_usd NUMERIC(12,4) NOT NULL CONSTRAINT payout_reversals_amount_check CHECK (amount_usd > 0),
  -- The payout that pays it again (set by run_payouts); settled once that payout is paid.
  netted_payout_id UUID REFERENCES agentmarket.payouts(id),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.payout_reversals IS
    'Partial reversals of paid transfers (transfer.reversed for less than the transfer): each amount is owed to the creator again and added to their next payout.';
CREATE INDEX payout_reversals_creator ON agentmarket_private.payout_reversals (creator_id) WHERE netted_payout_id IS NULL;
CREATE INDEX payout_reversals_payout ON agentmarket_private.payout_reversals (payout_id);
CREATE INDEX payout_reversals_netted ON agentmarket_private.payout_reversals (netted_payout_id) WHERE netted_payout_id IS NOT NULL;
REVOKE ALL ON TABLE agentmarket_private.payout_reversals FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.payout_reversals', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.payout_reversals_id_seq', '');

-- A payment knows its lot, its Stripe payment ids and what was refunded.
ALTER TABLE agentmarket_private.purchase_payments
  ADD COLUMN lot_id BIGINT,
  ADD COLUMN payment_intent TEXT,
  ADD COLUMN charge TEXT,
  ADD COLUMN refunded_cents BIGINT NOT NULL DEFAULT 0,
  ADD CONSTRAINT purchase_payments_refunded_check CHECK (refunded_cents BETWEEN 0 AND amount_cents),
  -- What lost disputes took (a chargeback is a refund the bank decided).
  ADD COLUMN dispute_lost_cents BIGINT NOT NULL DEFAULT 0,
  ADD CONSTRAINT purchase_payments_taken_check
    CHECK (dispute_lost_cents >= 0 AND refunded_cents + dispute_lost_cents <= amount_cents);
CREATE INDEX purchase_payments_payment_intent ON agentmarket_private.purchase_payments (payment_intent)
    WHERE payment_intent IS NOT NULL;
CREATE INDEX purchase_payments_charge ON agentmarket_private.purchase_payments (charge) WHERE charge IS NOT NULL;

-- A reversed transfer: the payout's earnings are owed again.
ALTER TABLE agentmarket.payouts
  DROP CONSTRAINT payouts_status_check,
  ADD CONSTRAINT payouts_status_check CHECK (status IN ('pending', 'paid', 'failed', 'reversed')),
  DROP CONSTRAINT payouts_paid_consistent,
  ADD CONSTRAINT payouts_paid_consistent
    CHECK ((status IN ('paid', 'reversed')) = (paid_at IS NOT NULL AND stripe_transfer_id IS NOT NULL)),
  ADD COLUMN reversed_at TIMESTAMPTZ,
  ADD CONSTRAINT payouts_reversed_consistent CHECK ((status = 'reversed') = (reversed_at IS NOT NULL)),
  -- What partial reversals of a paid transfer took back (payout_reversals).
  ADD COLUMN reversed_cents BIGINT NOT NULL DEFAULT 0,
  ADD CONSTRAINT payouts_reversed_cents_check CHECK (reversed_cents BETWEEN 0 AND transfer_cents);

COMMENT ON CONSTRAINT credit_transactions_type_check ON agentmarket.credit_transactions IS
    'type IN (subscription_refresh, subscription_expiry, topup_purchase, free_trial, session_deduct, refund, purchase_refund, refund_recovery, dispute_freeze, dispute_release, dispute_lost), credit_type IN (subscription, topup), with the sign and pot each type allows (see credit_transaction_shape_ok).';

------------------------------------------------------------------------------
-- Taking credits back
------------------------------------------------------------------------------

-- Settle a user's debt from their available credits; the caller has locked the balance row.
CREATE FUNCTION agentmarket_private.credit_settle_debt(p_user uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owed integer;
    k integer;
BEGIN
    SELECT d.credits INTO owed FROM agentmarket_private.credit_debts d
     WHERE d.user_id OPERATOR(pg_catalog.=) p_user AND d.credits OPERATOR(pg_catalog.>) 0 FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT LEAST(owed, b.subscription_credits + b.topup_credits - b.held_credits) INTO k
      FROM agentmarket.credit_balances b WHERE b.user_id = p_user;
    IF k > 0 THEN
        PERFORM agentmarket_private.credit_lot_take(p_user, k, 0, 'Debt settled', NULL, 'refund_recovery');
        UPDATE agentmarket_private.credit_debts d SET credits = d.credits - k, updated_at = now()
         WHERE d.user_id = p_user;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_settle_debt(uuid) IS
    'Takes what a user owes (credit_debts) from their available credits in burn order (refund_recovery rows); the caller has locked the balance row.';

-- Reverse p_value of the revenue that a lot's spent credits produced: sessions
-- that consumed the lot, newest first (unpaid earnings reduced, paid ones
-- clawed back), then the platform.
CREATE FUNCTION agentmarket_private.revenue_reverse(p_purchase uuid, p_lot bigint, p_value numeric)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    left_value numeric := p_value;
    x numeric;
    e agentmarket.creator_earnings;
    net numeric;
    clawed_gross numeric;
    clawed_creator numeric;
    split record;
BEGIN
    FOR s IN SELECT t.session_id, -sum(t.value_usd) AS value
               FROM agentmarket.credit_transactions t
              WHERE t.lot_id = p_lot AND t.session_id IS NOT NULL AND t.type IN ('session_deduct', 'refund')
              GROUP BY t.session_id
              ORDER BY max(t.created_at) DESC, t.session_id
    LOOP
        EXIT WHEN left_value <= 0;
        x := LEAST(left_value, s.value - COALESCE((SELECT sum(r.value_usd) FROM agentmarket_private.revenue_reversals r
                                                   WHERE r.lot_id = p_lot AND r.session_id = s.session_id), 0));
        CONTINUE WHEN x <= 0;
        INSERT INTO agentmarket_private.revenue_reversals (purchase_id, lot_id, session_id, value_usd)
        VALUES (p_purchase, p_lot, s.session_id, x);
        left_value := left_value - x;
        SELECT * INTO e FROM agentmarket.creator_earnings ce WHERE ce.session_id = s.session_id FOR UPDATE;
        CONTINUE WHEN NOT FOUND;    -- not ended yet: end_session splits the net revenue
        -- The session's revenue now, and the split it would have.
        net := agentmarket_private.session_revenue(s.session_id);
        SELECT COALESCE(sum(k.gross_usd), 0), COALESCE(sum(k.creator_amount), 0) INTO clawed_gross, clawed_creator
          FROM agentmarket_private.creator_clawbacks k WHERE k.session_id = s.session_id;
        SELECT * INTO split FROM agentmarket.split_revenue(GREATEST(net, 0), e.compute_cost, e.creator_rate);
        IF NOT e.paid_out AND e.payout_id IS NULL THEN
            UPDATE agentmarket.creator_earnings ce
               SET gross_revenue = split.gross_revenue, creator_amount = split.creator_amount,
                   platform_amount = split.platform_amount
             WHERE ce.id = e.id;
        ELSE
            INSERT INTO agentmarket_private.creator_clawbacks
                (creator_id, session_id, earnings_id, gross_usd, creator_amount, reason)
            VALUES (e.creator_id, e.session_id, e.id, e.gross_revenue - clawed_gross - split.gross_revenue,
                    GREATEST(e.creator_amount - clawed_creator - split.creator_amount, 0), 'purchase refunded');
        END IF;
    END LOOP;
    IF left_value <> 0 THEN
        INSERT INTO agentmarket_private.revenue_reversals (purchase_id, lot_id, session_id, value_usd)
        VALUES (p_purchase, p_lot, NULL, left_value);
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.revenue_reverse(uuid, bigint, numeric) IS
    'Takes p_value of revenue back from what a lot''s spent credits produced: the sessions that consumed it, newest first (unpaid earnings re-split, paid ones clawed back from the next payout), the rest from the platform.';

-- A session refunded in credits after a refund of its purchase reversed part
-- of its revenue: the credits it gives back to a lot carry the value they
-- took, so what was reversed beyond what the session still consumed from the
-- lot moves to the platform (a session's revenue never goes below zero).
CREATE FUNCTION agentmarket_private.revenue_reversal_cap(p_session uuid, p_lot bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    consumed numeric;
    reversed numeric;
    pur uuid;
BEGIN
    SELECT COALESCE(sum(r.value_usd), 0), max(r.purchase_id::text)::uuid INTO reversed, pur
      FROM agentmarket_private.revenue_reversals r WHERE r.session_id = p_session AND r.lot_id = p_lot;
    IF reversed = 0 THEN
        RETURN;
    END IF;
    SELECT COALESCE(-sum(t.value_usd), 0) INTO consumed FROM agentmarket.credit_transactions t
     WHERE t.session_id = p_session AND t.lot_id = p_lot AND t.type IN ('session_deduct', 'refund');
    IF reversed > GREATEST(consumed, 0) THEN
        INSERT INTO agentmarket_private.revenue_reversals (purchase_id, lot_id, session_id, value_usd)
        VALUES (pur, p_lot, p_session, GREATEST(consumed, 0) - reversed),
               (pur, p_lot, NULL, reversed - GREATEST(consumed, 0));
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.revenue_reversal_cap(uuid, bigint) IS
    'After credits of a session go back to a lot (refund_session): revenue that purchase refunds reversed from the session beyond what it still consumed from the lot moves to the platform (a negative row for the session, a positive one without), so no session''s revenue goes below zero.';

-- A payment refunded (or a dispute lost) up to p_cents in all of p_type:
-- unspent credits of its lot back up to the share refunded and lost together,
-- the rest recovered.
CREATE FUNCTION agentmarket_private.payment_take_back(
    p_payment agentmarket_private.purchase_payments, p_cents bigint, p_type text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pur agentmarket.purchases;
    l agentmarket_private.credit_lots;
    -- Refunds and lost disputes share the payment: what both took before.
    before_cents bigint := p_payment.refunded_cents + p_payment.dispute_lost_cents;
    delta bigint := LEAST(p_cents - CASE p_type WHEN 'dispute_lost' THEN p_payment.dispute_lost_cents
                                                ELSE p_payment.refunded_cents END,
                          p_payment.amount_cents - before_cents);
    credits_back integer;
    value_back numeric;
    k integer;
    v numeric;
    available integer;
    spent integer;
    other integer;
BEGIN
    IF delta <= 0 THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'purchase_id', p_payment.purchase_id,
            'reason', 'already taken back');
    END IF;
    SELECT * INTO STRICT pur FROM agentmarket.purchases x WHERE x.id = p_payment.purchase_id FOR UPDATE;
    PERFORM agentmarket_private.credit_lock_balance(pur.user_id);
    PERFORM agentmarket_private.credit_lot_flush(pur.user_id);
    SELECT * INTO STRICT l FROM agentmarket_private.credit_lots x WHERE x.id = p_payment.lot_id;
    -- The share of the lot's credits taken back (cumulative, rounded down) and its value.
    credits_back := (l.credits::bigint * (before_cents + delta) / p_payment.amount_cents)
                    - (l.credits::bigint * before_cents / p_payment.amount_cents);
    value_back := (delta / 100.0)::numeric(14,4);
    SELECT b.subscription_credits + b.topup_credits - b.held_credits INTO available
      FROM agentmarket.credit_balances b WHERE b.user_id = pur.user_id;
    k := LEAST(l.remaining, credits_back, GREATEST(available, 0));
    v := CASE WHEN k = l.remaining THEN l.remaining_value_usd
              ELSE LEAST(agentmarket_private.credit_share(l.remaining_value_usd, k, l.remaining), value_back) END;
    IF k > 0 THEN
        PERFORM agentmarket_private.credit_lot_move(pur.user_id, l.id, l.credit_type, -k, -v, p_type,
            CASE p_type WHEN 'dispute_lost' THEN 'Dispute lost' ELSE 'Refunded' END, NULL,
            COALESCE(p_payment.charge, p_payment.payment_intent));
        PERFORM agentmarket_private.credit_pots_change(pur.user_id,
            CASE l.credit_type WHEN 'subscription' THEN -k ELSE 0 END, CASE l.credit_type WHEN 'topup' THEN -k ELSE 0 END);
    END IF;
    -- What the unspent credits do not cover was spent: its revenue is reversed.
    IF value_back - v <> 0 THEN
        PERFORM agentmarket_private.revenue_reverse(pur.id, l.id, value_back - v);
    END IF;
    -- The user pays the spent credits back from their other credits, or owes them.
    spent := credits_back - k;
    IF spent > 0 THEN
        other := LEAST(spent, GREATEST(available - k, 0));
        IF other > 0 THEN
            PERFORM agentmarket_private.credit_lot_take(pur.user_id, other, 0, 'Refunded credits already spent',
                                                        NULL, 'refund_recovery');
        END IF;
        IF spent - other > 0 THEN
            INSERT INTO agentmarket_private.credit_debts AS d (user_id, credits) VALUES (pur.user_id, spent - other)
            ON CONFLICT (user_id) DO UPDATE SET credits = d.credits + EXCLUDED.credits, updated_at = now();
        END IF;
    END IF;
    UPDATE agentmarket_private.purchase_payments x
       SET refunded_cents = x.refunded_cents + CASE p_type WHEN 'dispute_lost' THEN 0 ELSE delta END,
           dispute_lost_cents = x.dispute_lost_cents + CASE p_type WHEN 'dispute_lost' THEN delta ELSE 0 END
     WHERE x.id = p_payment.id;
    IF pur.kind = 'topup' THEN
        UPDATE agentmarket.purchases x
           SET refunded_cents = LEAST(x.amount_cents, x.refunded_cents + delta),
               status = CASE WHEN x.refunded_cents + delta >= x.amount_cents THEN 'refunded' ELSE x.status END,
               refunded_at = CASE WHEN x.refunded_cents + delta >= x.amount_cents THEN now() ELSE x.refunded_at END
         WHERE x.id = pur.id;
    END IF;
    RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'purchase_id', pur.id, 'refunded_cents', delta,
        'credits_taken_back', k, 'value_taken_back', v, 'revenue_reversed', value_back - v,
        'credits_recovered', COALESCE(other, 0), 'debt', GREATEST(COALESCE(spent - other, 0), 0));
END
$$;
COMMENT ON FUNCTION agentmarket_private.payment_take_back(agentmarket_private.purchase_payments, bigint, text) IS
    'Applies a refund (p_type purchase_refund, p_cents the cumulative refunded) or a lost dispute (dispute_lost, p_cents the cumulative lost) of a payment, never more than was paid: the lot''s unspent credits back up to the refunded share, the value not covered reversed from the revenue the spent credits produced, the spent credits recovered from the user''s other credits or left as a debt.';

------------------------------------------------------------------------------
-- Event handlers
------------------------------------------------------------------------------

-- The payment a charge (or dispute) is about; NULL when not known yet.
CREATE FUNCTION agentmarket_private.webhook_payment(p_charge text, p_payment_intent text, p_invoice text)
RETURNS agentmarket_private.purchase_payments
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.* FROM agentmarket_private.purchase_payments p
     WHERE p.charge = p_charge OR p.payment_intent = p_payment_intent OR p.stripe_ref = p_invoice
     ORDER BY p.id LIMIT 1
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_payment(text, text, text) IS
    'The payment received for a purchase that a charge, payment intent or invoice names.';

-- invoice.paid: a renewal refreshes the plan's credits, once per invoice.
CREATE FUNCTION agentmarket_private.webhook_invoice_paid(p_event jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inv jsonb := p_event #> '{data,object}';
    sub text := inv ->> 'subscription';
    pur agentmarket.purchases;
    b agentmarket.credit_balances;
    pay_id bigint;
    lot bigint;
    period_end timestamptz;
    paid bigint := COALESCE((inv ->> 'amount_paid')::bigint, 0);
BEGIN
    IF sub IS NULL THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'reason', 'not a subscription invoice');
    END IF;
    IF inv ->> 'billing_reason' = 'subscription_create' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored',
            'reason', 'the first period is granted by checkout.session.completed');
    END IF;
    SELECT * INTO pur FROM agentmarket.purchases x
     WHERE x.stripe_subscription_id = sub AND x.status = 'paid' ORDER BY x.created_at LIMIT 1 FOR UPDATE;
    IF NOT FOUND THEN
        RETURN agentmarket_private.webhook_deferred(sub, 'the subscription''s purchase is not paid yet');
    END IF;
    IF inv ->> 'currency' IS DISTINCT FROM pur.currency THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pur.id,
            'reason', pg_catalog.format('paid in %s, the plan is in %s', inv ->> 'currency', pur.currency));
    END IF;
    INSERT INTO agentmarket_private.purchase_payments (purchase_id, stripe_ref, amount_cents, payment_intent, charge)
    VALUES (pur.id, inv ->> 'id', paid, inv ->> 'payment_intent', inv ->> 'charge')
    ON CONFLICT ON CONSTRAINT purchase_payments_ref_unique DO NOTHING
    RETURNING id INTO pay_id;
    IF pay_id IS NULL THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'purchase_id', pur.id,
            'reason', 'this invoice was already applied');
    END IF;
    period_end := pg_catalog.to_timestamp(COALESCE((inv #>> '{lines,data,0,period,end}')::double precision,
                                                   pg_catalog.date_part('epoch', now() + interval '1 month')));
    -- What is left of the old period expires (except what backs active holds).
    b := agentmarket_private.credit_lock_balance(pur.user_id);
    PERFORM agentmarket_private.credit_lot_expire(pur.user_id,
        LEAST(b.subscription_credits, GREATEST(b.held_credits - b.topup_credits, 0)),
        'Unused plan credits expired at renewal');
    PERFORM agentmarket_private.credit_lot_grant(pur.user_id, 'subscription', pur.credits, 'subscription_refresh',
        (paid / 100.0)::numeric(14,4), pur.id, period_end, 'Plan ' || COALESCE(pur.product, '') || ', renewal',
        COALESCE(inv ->> 'charge', inv ->> 'id'), inv ->> 'id');
    SELECT x.id INTO lot FROM agentmarket_private.credit_lots x WHERE x.stripe_invoice_id = inv ->> 'id';
    UPDATE agentmarket_private.purchase_payments x SET lot_id = lot WHERE x.id = pay_id;
    INSERT INTO agentmarket_private.subscriptions AS s (stripe_subscription_id, purchase_id, status, current_period_end)
    VALUES (sub, pur.id, 'active', period_end)
    ON CONFLICT (stripe_subscription_id) DO UPDATE SET status = 'active', current_period_end = EXCLUDED.current_period_end,
        updated_at = now();
    RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'purchase_id', pur.id, 'credits', pur.credits,
        'value_usd', (paid / 100.0)::numeric(14,4), 'unlocks', pg_catalog.jsonb_build_array(inv ->> 'id', inv ->> 'charge', inv ->> 'payment_intent'));
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_invoice_paid(jsonb) IS
    'invoice.paid: a renewal (not the first period, which Checkout grants) expires what is left of the plan''s credits and grants a lot worth the invoice, once per invoice; deferred until the plan''s purchase is paid.';

-- invoice.payment_failed and customer.subscription.*: the plan's state.
CREATE FUNCTION agentmarket_private.webhook_subscription_state(p_event jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o jsonb := p_event #> '{data,object}';
    ev_type text := p_event ->> 'type';
    created bigint := COALESCE((p_event ->> 'created')::bigint, 0);
    sub text := CASE WHEN o ->> 'object' = 'invoice' THEN o ->> 'subscription' ELSE o ->> 'id' END;
    pur agentmarket.purchases;
    s agentmarket_private.subscriptions;
    new_status text;
    b agentmarket.credit_balances;
BEGIN
    IF sub IS NULL THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'reason', 'not about a subscription');
    END IF;
    SELECT * INTO pur FROM agentmarket.purchases x
     WHERE x.stripe_subscription_id = sub ORDER BY x.created_at LIMIT 1 FOR UPDATE;
    IF NOT FOUND THEN
        RETURN agentmarket_private.webhook_deferred(sub, 'the subscription''s purchase is not known yet');
    END IF;
    new_status := CASE ev_type WHEN 'invoice.payment_failed' THEN 'past_due'
                               WHEN 'customer.subscription.deleted' THEN 'canceled'
                               ELSE COALESCE(o ->> 'status', 'active') END;
    SELECT * INTO s FROM agentmarket_private.subscriptions x WHERE x.stripe_subscription_id = sub FOR UPDATE;
    IF FOUND AND s.event_created > created AND ev_type <> 'customer.subscription.deleted' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'purchase_id', pur.id,
            'reason', 'a newer event already set the subscription''s state');
    END IF;
    INSERT INTO agentmarket_private.subscriptions AS x
        (stripe_subscription_id, purchase_id, status, cancel_at_period_end, current_period_end, event_created)
    VALUES (sub, pur.id, new_status, COALESCE((o ->> 'cancel_at_period_end')::boolean, false),
            pg_catalog.to_timestamp((o ->> 'current_period_end')::double precision), created)
    ON CONFLICT (stripe_subscription_id) DO UPDATE
       SET status = CASE WHEN x.status = 'canceled' THEN 'canceled' ELSE EXCLUDED.status END,
           cancel_at_period_end = CASE WHEN o ->> 'object' = 'subscription' THEN EXCLUDED.cancel_at_period_end
                                       ELSE x.cancel_at_period_end END,
           current_period_end = COALESCE(EXCLUDED.current_period_end, x.current_period_end),
           event_created = GREATEST(x.event_created, EXCLUDED.event_created), updated_at = now();
    IF ev_type = 'customer.subscription.deleted' THEN
        -- The plan ended: what is left of its credits expires (except what backs holds).
        b := agentmarket_private.credit_lock_balance(pur.user_id);
        PERFORM agentmarket_private.credit_lot_expire(pur.user_id,
            LEAST(b.subscription_credits, GREATEST(b.held_credits - b.topup_credits, 0)),
            'Plan canceled: unused credits expired');
    END IF;
    RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'purchase_id', pur.id, 'status', new_status);
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_subscription_state(jsonb) IS
    'invoice.payment_failed (past due, no refresh), customer.subscription.updated (status, cancel at period end) and .deleted (canceled; what is left of the plan''s credits expires); an older event never overwrites a newer state.';

-- charge.refunded: take back what the refund covers.
CREATE FUNCTION agentmarket_private.webhook_charge_refunded(p_event jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ch jsonb := p_event #> '{data,object}';
    pay agentmarket_private.purchase_payments;
BEGIN
    pay := agentmarket_private.webhook_payment(ch ->> 'id', ch ->> 'payment_intent', ch ->> 'invoice');
    IF pay.id IS NULL OR pay.lot_id IS NULL THEN
        RETURN agentmarket_private.webhook_deferred(COALESCE(ch ->> 'payment_intent', ch ->> 'invoice', ch ->> 'id'),
                                                    'the charge''s payment is not known yet');
    END IF;
    SELECT * INTO STRICT pay FROM agentmarket_private.purchase_payments x WHERE x.id = pay.id FOR UPDATE;
    IF ch ->> 'currency' IS DISTINCT FROM (SELECT p.currency FROM agentmarket.purchases p WHERE p.id = pay.purchase_id) THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pay.purchase_id,
            'reason', 'the refund''s currency is not the purchase''s');
    END IF;
    UPDATE agentmarket_private.purchase_payments x SET charge = COALESCE(x.charge, ch ->> 'id') WHERE x.id = pay.id;
    RETURN agentmarket_private.payment_take_back(pay,
        LEAST(COALESCE((ch ->> 'amount_refunded')::bigint, 0), pay.amount_cents), 'purchase_refund');
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_charge_refunded(jsonb) IS
    'charge.refunded (full or partial; amount_refunded is cumulative, so any order applies each cent once): takes back the payment''s credits up to the refunded share (payment_take_back); deferred until the payment is known.';

------------------------------------------------------------------------------
-- Disputes
------------------------------------------------------------------------------

-- Freeze (p_sign -1) or release (+1) a dispute's credits in the payment's lot.
-- A release into a plan period that has ended expires them at once.
CREATE FUNCTION agentmarket_private.dispute_move(
    p_dispute agentmarket_private.disputes, p_user uuid, p_lot agentmarket_private.credit_lots,
    p_credits integer, p_value numeric, p_sign integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sub integer := CASE p_lot.credit_type WHEN 'subscription' THEN p_sign * p_credits ELSE 0 END;
    top integer := CASE p_lot.credit_type WHEN 'topup' THEN p_sign * p_credits ELSE 0 END;
BEGIN
    IF p_credits = 0 THEN
        RETURN;
    END IF;
    PERFORM agentmarket_private.credit_lot_move(p_user, p_lot.id, p_lot.credit_type, p_sign * p_credits, p_sign * p_value,
        CASE p_sign WHEN 1 THEN 'dispute_release' ELSE 'dispute_freeze' END,
        CASE p_sign WHEN 1 THEN 'Dispute closed: credits released' ELSE 'Disputed: credits frozen' END,
        NULL, p_dispute.stripe_dispute_id);
    PERFORM agentmarket_private.credit_pots_change(p_user, sub, top);
    IF p_sign = 1 AND p_lot.credit_type = 'subscription' AND p_lot.expires_at < now() THEN
        PERFORM agentmarket_private.credit_lot_move(p_user, p_lot.id, 'subscription', -p_credits, -p_value,
            'subscription_expiry', 'Released after the plan period ended');
        PERFORM agentmarket_private.credit_pots_change(p_user, -p_credits, 0);
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.dispute_move(agentmarket_private.disputes, uuid, agentmarket_private.credit_lots, integer, numeric, integer) IS
    'Freezes (p_sign -1: dispute_freeze row) or releases (+1: dispute_release row) a dispute''s credits in its payment''s lot, naming the dispute in stripe_payment_id; released plan credits whose period has ended expire at once. The caller has locked the balance row and flushed the head lot.';

-- charge.dispute.*: open freezes, closed won releases, closed lost refunds.
CREATE FUNCTION agentmarket_private.webhook_charge_dispute(p_event jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dp jsonb := p_event #> '{data,object}';
    dp_id text := dp ->> 'id';
    ev_type text := p_event ->> 'type';
    created bigint := COALESCE((p_event ->> 'created')::bigint, 0);
    st text := dp ->> 'status';
    amount numeric;
    pay agentmarket_private.purchase_payments;
    pur agentmarket.purchases;
    d agentmarket_private.disputes;
    l agentmarket_private.credit_lots;
    open_cents bigint;
    share integer;
    available integer;
    k integer;
    v numeric;
    r jsonb;
BEGIN
    IF dp_id IS NULL OR dp_id !~ '^(dp|du)_[A-Za-z0-9_]+$' OR pg_catalog.jsonb_typeof(dp -> 'amount') IS DISTINCT FROM 'number' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'reason', 'no dispute in the event');
    END IF;
    amount := GREATEST((dp ->> 'amount')::numeric, 0);
    pay := agentmarket_private.webhook_payment(dp ->> 'charge', dp ->> 'payment_intent', NULL);
    IF pay.id IS NULL OR pay.lot_id IS NULL THEN
        RETURN agentmarket_private.webhook_deferred(COALESCE(dp ->> 'payment_intent', dp ->> 'charge'),
                                                    'the disputed charge''s payment is not known yet');
    END IF;
    -- The payment row serializes a dispute with the refunds of the same payment.
    SELECT * INTO STRICT pay FROM agentmarket_private.purchase_payments x WHERE x.id = pay.id FOR UPDATE;
    SELECT * INTO STRICT pur FROM agentmarket.purchases x WHERE x.id = pay.purchase_id FOR UPDATE;
    IF dp ->> 'currency' IS DISTINCT FROM pur.currency THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pur.id,
            'reason', 'the dispute''s currency is not the purchase''s');
    END IF;
    SELECT * INTO d FROM agentmarket_private.disputes x WHERE x.stripe_dispute_id = dp_id FOR UPDATE;
    IF FOUND AND d.payment_id <> pay.id THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pur.id,
            'reason', 'the dispute is known for another payment');
    END IF;
    IF FOUND AND d.outcome IS NOT NULL THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'purchase_id', pur.id,
            'reason', 'the dispute is closed (' || d.outcome || ')');
    END IF;
    PERFORM agentmarket_private.credit_lock_balance(pur.user_id);
    PERFORM agentmarket_private.credit_lot_flush(pur.user_id);
    SELECT * INTO STRICT l FROM agentmarket_private.credit_lots x WHERE x.id = pay.lot_id;
    IF d.stripe_dispute_id IS NULL THEN
        -- Whatever event comes first opens the dispute: the unspent credits of
        -- the payment's lot, up to the disputed share, are frozen.
        open_cents := LEAST(amount, pay.amount_cents - pay.refunded_cents - pay.dispute_lost_cents)::bigint;
        share := CASE WHEN pay.amount_cents = 0 THEN 0 ELSE (l.credits::bigint * open_cents / pay.amount_cents)::integer END;
        SELECT b.subscription_credits + b.topup_credits - b.held_credits INTO available
          FROM agentmarket.credit_balances b WHERE b.user_id = pur.user_id;
        k := GREATEST(LEAST(l.remaining, share, available), 0);
        v := agentmarket_private.credit_share(l.remaining_value_usd, k, l.remaining);
        INSERT INTO agentmarket_private.disputes
            (stripe_dispute_id, payment_id, purchase_id, amount_cents, status, frozen_credits, frozen_value_usd, event_created)
        VALUES (dp_id, pay.id, pur.id, open_cents, COALESCE(st, 'needs_response'), k, v, created)
        RETURNING * INTO d;
        PERFORM agentmarket_private.dispute_move(d, pur.user_id, l, k, v, -1);
    END IF;
    UPDATE agentmarket_private.disputes x
       SET status = CASE WHEN created >= x.event_created THEN COALESCE(st, x.status) ELSE x.status END,
           event_created = GREATEST(x.event_created, created),
           funds_withdrawn = x.funds_withdrawn OR ev_type = 'charge.dispute.funds_withdrawn',
           funds_reinstated = x.funds_reinstated OR ev_type = 'charge.dispute.funds_reinstated',
           updated_at = now()
     WHERE x.stripe_dispute_id = dp_id
    RETURNING * INTO d;
    IF ev_type <> 'charge.dispute.closed' AND COALESCE(st, '') NOT IN ('won', 'lost', 'warning_closed') THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'purchase_id', pur.id, 'dispute', dp_id,
            'status', d.status, 'frozen_credits', d.frozen_credits, 'frozen_value_usd', d.frozen_value_usd);
    END IF;
    IF COALESCE(st, '') NOT IN ('won', 'lost', 'warning_closed') THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pur.id,
            'reason', pg_catalog.format('a closed dispute with status %s', COALESCE(st, 'none')));
    END IF;
    -- Closed: the frozen credits come back; a lost dispute then acts as a refund of its amount.
    SELECT * INTO STRICT l FROM agentmarket_private.credit_lots x WHERE x.id = pay.lot_id;
    PERFORM agentmarket_private.dispute_move(d, pur.user_id, l, d.frozen_credits, d.frozen_value_usd, 1);
    UPDATE agentmarket_private.disputes x
       SET outcome = st, status = st, closed_at = now(), frozen_credits = 0, frozen_value_usd = 0, updated_at = now()
     WHERE x.stripe_dispute_id = dp_id;
    r := pg_catalog.jsonb_build_object('outcome', 'applied', 'purchase_id', pur.id, 'dispute', dp_id, 'status', st,
        'credits_released', d.frozen_credits);
    IF st = 'lost' THEN
        r := r || (agentmarket_private.payment_take_back(pay, pay.dispute_lost_cents + d.amount_cents, 'dispute_lost')
                   - 'outcome' - 'reason');
    END IF;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_charge_dispute(jsonb) IS
    'charge.dispute.created/updated/funds_withdrawn/funds_reinstated/closed: the first event of a dispute freezes the unspent credits of the payment''s lot up to the disputed share (dispute_freeze); later ones record its status (the newest wins); closed won or warning_closed releases them (dispute_release), closed lost releases them and takes the disputed amount back as a refund does (payment_take_back, dispute_lost). A closed dispute changes no more; deferred until the payment is known.';
