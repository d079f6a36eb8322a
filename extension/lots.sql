-- lots.sql: what credits are worth (shared/DESIGN.md, Money).
--
-- Every grant is a lot: so many credits of one pot, worth value_usd in total.
-- Paid credits are worth what the user paid for them; promotional credits
-- (free trial, grants by the operator, plan refreshes not paid through
-- Stripe) are worth promotional_credit_value_usd each (default 0).
-- Spending consumes lots in burn order: the subscription pot first, then
-- top-up; within a pot the lot that expires first, then the oldest.  A lot's
-- remaining value is spent pro rata, rounded down to 1e-4 USD, and the credit
-- that empties it takes what is left, so a lot's value is always exactly
-- recognized + still unspent + expired.
--
-- Every ledger row that moves a lot names it (lot_id) and carries the value it
-- moved (value_usd, signed like amount).  So for every lot: remaining = sum of
-- its ledger amounts and remaining_value_usd = sum of its ledger values; for
-- every pot: balance = ledger = sum of its lots' remainders.  A session's
-- gross revenue is minus the value of its ledger rows.  The writers lock the
-- user's balance row first, as everywhere in the ledger, so lots need no lock
-- order of their own.

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('promotional_credit_value_usd', 'numeric', '0', 0, 0.01, NULL,
   'What one promotional credit (free trial, operator grant) is worth as revenue, USD, at most 4 decimals: creators are paid from it. 0 (default): the platform pays nothing for gifts, and creators earn nothing from them.');

CREATE SEQUENCE agentmarket_private.credit_lots_id_seq;
CREATE TABLE agentmarket_private.credit_lots (
  id BIGINT PRIMARY KEY DEFAULT pg_catalog.nextval('agentmarket_private.credit_lots_id_seq'),
  user_id UUID NOT NULL REFERENCES agentmarket.users(id),
  credit_type TEXT NOT NULL CONSTRAINT credit_lots_credit_type_check CHECK (credit_type IN ('subscription', 'topup')),
  grant_type TEXT NOT NULL, -- the ledger type of the grant: topup_purchase, subscription_refresh, free_trial
  paid BOOLEAN NOT NULL, -- bought through Stripe (else promotional)
  purchase_id UUID REFERENCES agentmarket.purchases(id),
  stripe_invoice_id TEXT, -- the invoice that paid a subscription period
  credits INTEGER NOT NULL CONSTRAINT credit_lots_credits_check CHECK (credits > 0),
  value_usd NUMERIC(14,4) NOT NULL CONSTRAINT credit_lots_value_check CHECK (value_usd >= 0),
  remaining INTEGER NOT NULL,
  remaining_value_usd NUMERIC(14,4) NOT NULL,
  expires_at TIMESTAMPTZ,
  -- remaining = 0, kept as its own column so that the burn-order index can
  -- leave empty lots out and still let most updates of remaining be HOT.
  depleted BOOLEAN NOT NULL DEFAULT false,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT credit_lots_remaining_check CHECK (remaining BETWEEN 0 AND credits),
  CONSTRAINT credit_lots_depleted_check CHECK (depleted = (remaining = 0)),
  CONSTRAINT credit_lots_remaining_value_check
    CHECK (remaining_value_usd BETWEEN 0 AND value_usd AND (remaining > 0 OR remaining_value_usd = 0)),
  CONSTRAINT credit_lots_paid_check CHECK (paid = (purchase_id IS NOT NULL))
);
ALTER SEQUENCE agentmarket_private.credit_lots_id_seq OWNED BY agentmarket_private.credit_lots.id;
COMMENT ON TABLE agentmarket_private.credit_lots IS
    'One row per grant of credits: its pot, what it is worth (paid: what the user paid; promotional: promotional_credit_value_usd each), what is left of it and of its value.';
-- Burn order over the lots with credits left.  Partial on depleted, not on
-- remaining: a column in an index makes every update that changes it non-HOT,
-- and depleted changes only when a lot empties or fills again.
CREATE INDEX credit_lots_burn_order ON agentmarket_private.credit_lots
    (user_id, (credit_type = 'topup'), expires_at, id) WHERE NOT depleted;
CREATE INDEX credit_lots_user ON agentmarket_private.credit_lots (user_id);
CREATE INDEX credit_lots_purchase ON agentmarket_private.credit_lots (purchase_id) WHERE purchase_id IS NOT NULL;
CREATE UNIQUE INDEX credit_lots_one_per_invoice ON agentmarket_private.credit_lots (stripe_invoice_id)
    WHERE stripe_invoice_id IS NOT NULL;
REVOKE ALL ON TABLE agentmarket_private.credit_lots FROM PUBLIC;
REVOKE ALL ON SEQUENCE agentmarket_private.credit_lots_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.credit_lots', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.credit_lots_id_seq', '');

-- No foreign key from the ledger to the lots, nor an index on lot_id: each
-- would cost every deduction (bench/ledger), and verify_books() checks that
-- every lot equals its ledger rows.
ALTER TABLE agentmarket.credit_transactions
  ADD COLUMN lot_id BIGINT,
  ADD COLUMN value_usd NUMERIC(14,4) NOT NULL DEFAULT 0;
COMMENT ON COLUMN agentmarket.credit_transactions.lot_id IS
    'The lot (agentmarket_private.credit_lots) this row adds to or takes from.';
COMMENT ON COLUMN agentmarket.credit_transactions.value_usd IS
    'The value (USD) this row moves, signed like amount: a grant adds its lot''s value, a deduction takes the value of the credits it consumed.';

-- Burn order, as a sort key: subscription pot first; soonest expiry first; oldest first.
-- (Written out in each query below so the planner sees plain columns.)

-- The head lot: the first lot in burn order, carried by the balance row so
-- that a deduction it covers writes one row and appends one, as before lots
-- (credits.c).  While a lot is the head, head_remaining and head_value_units
-- (1e-4 USD) are its remaining credits and value, and its own row's are
-- stale; every PL/pgSQL writer of lots flushes the head into its row first,
-- and the next deduction loads it again.  credit_lots_now shows every lot as
-- it is.  No CHECK on these columns: each CHECK costs every deduction
-- (credits.sql), and verify_books() checks them.
ALTER TABLE agentmarket.credit_balances
  ADD COLUMN head_lot_id BIGINT,
  ADD COLUMN head_remaining INTEGER,
  ADD COLUMN head_value_units BIGINT,
  ADD COLUMN head_subscription BOOLEAN;
COMMENT ON COLUMN agentmarket.credit_balances.head_lot_id IS
    'The first lot in burn order while a deduction has loaded it; its remaining credits and value (1e-4 USD) are head_remaining and head_value_units (lots.sql).';

CREATE VIEW agentmarket_private.credit_lots_now AS
SELECT l.id, l.user_id, l.credit_type, l.grant_type, l.paid, l.purchase_id, l.stripe_invoice_id, l.credits,
       l.value_usd,
       COALESCE(b.head_remaining, l.remaining) AS remaining,
       COALESCE((b.head_value_units OPERATOR(pg_catalog./) 10000::numeric)::numeric(14,4), l.remaining_value_usd) AS remaining_value_usd,
       l.expires_at, l.created_at, b.user_id IS NOT NULL AS is_head
  FROM agentmarket_private.credit_lots l
  LEFT JOIN agentmarket.credit_balances b
    ON b.user_id OPERATOR(pg_catalog.=) l.user_id AND b.head_lot_id OPERATOR(pg_catalog.=) l.id;
COMMENT ON VIEW agentmarket_private.credit_lots_now IS
    'Every lot as it is now: the head lot''s remaining credits and value come from the balance row that carries them.';
REVOKE ALL ON agentmarket_private.credit_lots_now FROM PUBLIC;

-- Write the head back into its lot row; the caller has locked the balance row.
CREATE FUNCTION agentmarket_private.credit_lot_flush(p_user uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE agentmarket_private.credit_lots l
       SET remaining = b.head_remaining,
           remaining_value_usd = b.head_value_units OPERATOR(pg_catalog./) 10000::numeric,
           depleted = b.head_remaining OPERATOR(pg_catalog.=) 0
      FROM agentmarket.credit_balances b
     WHERE b.user_id OPERATOR(pg_catalog.=) p_user AND l.id OPERATOR(pg_catalog.=) b.head_lot_id;
    IF FOUND THEN
        UPDATE agentmarket.credit_balances b
           SET head_lot_id = NULL, head_remaining = NULL, head_value_units = NULL, head_subscription = NULL
         WHERE b.user_id OPERATOR(pg_catalog.=) p_user;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lot_flush(uuid) IS
    'Writes the head lot carried by the balance row back into its lot row and clears it; every PL/pgSQL writer of lots calls it first (the caller has locked the balance row).';

-- Make the first lot in burn order the head; the caller has locked the balance row.
CREATE FUNCTION agentmarket_private.credit_lot_load_head(p_user uuid)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE agentmarket.credit_balances b
       SET head_lot_id = l.id, head_remaining = l.remaining,
           head_value_units = (l.remaining_value_usd OPERATOR(pg_catalog.*) 10000)::bigint,
           head_subscription = l.credit_type OPERATOR(pg_catalog.=) 'subscription'
      FROM (SELECT x.id, x.remaining, x.remaining_value_usd, x.credit_type
              FROM agentmarket_private.credit_lots x
             WHERE x.user_id OPERATOR(pg_catalog.=) p_user AND NOT x.depleted
             ORDER BY x.credit_type OPERATOR(pg_catalog.=) 'topup', x.expires_at ASC NULLS LAST, x.id
             LIMIT 1) l
     WHERE b.user_id OPERATOR(pg_catalog.=) p_user AND b.head_lot_id IS NULL
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lot_load_head(uuid) IS
    'Makes the user''s first lot in burn order the head lot the balance row carries (nothing when there is a head, or no lot with credits); the caller has locked the balance row.';

------------------------------------------------------------------------------
-- Writers (the caller has locked the user's balance row)
------------------------------------------------------------------------------

-- The value of k of a lot's (or a scope's) n remaining credits worth v: pro rata
-- rounded down to 1e-4 USD; all n take all of v.
CREATE FUNCTION agentmarket_private.credit_share(p_value numeric, p_credits integer, p_of integer)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_credits OPERATOR(pg_catalog.>=) p_of THEN p_value
                ELSE pg_catalog.div(p_value OPERATOR(pg_catalog.*) 10000 OPERATOR(pg_catalog.*) p_credits, p_of)
                     OPERATOR(pg_catalog./) 10000 END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_share(numeric, integer, integer) IS
    'Value of p_credits of p_of credits worth p_value: p_value x p_credits / p_of rounded down to 1e-4 USD, exactly p_value when all are taken.';

-- Move p_credits (signed) worth p_value (signed) into or out of one lot, with
-- its ledger row: the one place a lot's remainder changes after its grant.
CREATE FUNCTION agentmarket_private.credit_lot_move(
    p_user uuid, p_lot bigint, p_credit_type text, p_credits integer, p_value numeric, p_type text,
    p_description text, p_session uuid DEFAULT NULL, p_stripe_payment_id text DEFAULT NULL)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE agentmarket_private.credit_lots x
       SET remaining = x.remaining OPERATOR(pg_catalog.+) p_credits,
           remaining_value_usd = x.remaining_value_usd OPERATOR(pg_catalog.+) p_value,
           depleted = x.remaining OPERATOR(pg_catalog.+) p_credits OPERATOR(pg_catalog.=) 0
     WHERE x.id OPERATOR(pg_catalog.=) p_lot;
    INSERT INTO agentmarket.credit_transactions
        (user_id, type, amount, credit_type, description, session_id, stripe_payment_id, lot_id, value_usd)
    VALUES (p_user, p_type, p_credits, p_credit_type, p_description, p_session, p_stripe_payment_id, p_lot, p_value);
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lot_move(uuid, bigint, text, integer, numeric, text, text, uuid, text) IS
    'Adds p_credits worth p_value to a lot (negative: takes them) with its ledger row of p_type; the pots are the caller''s to change (credit_pots_change), the balance row locked and the head flushed.';

-- Change the pots (and held credits) of a user by deltas; the new state.
CREATE FUNCTION agentmarket_private.credit_pots_change(
    p_user uuid, p_subscription integer, p_topup integer, p_held integer DEFAULT 0)
RETURNS agentmarket.credit_state
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE agentmarket.credit_balances cb
       SET subscription_credits = cb.subscription_credits OPERATOR(pg_catalog.+) p_subscription,
           topup_credits = cb.topup_credits OPERATOR(pg_catalog.+) p_topup,
           held_credits = cb.held_credits OPERATOR(pg_catalog.+) p_held
     WHERE cb.user_id OPERATOR(pg_catalog.=) p_user
    RETURNING cb.subscription_credits, cb.topup_credits, cb.held_credits,
              cb.subscription_credits OPERATOR(pg_catalog.+) cb.topup_credits OPERATOR(pg_catalog.-) cb.held_credits;
$$;
COMMENT ON FUNCTION agentmarket_private.credit_pots_change(uuid, integer, integer, integer) IS
    'Adds the deltas to the user''s subscription and top-up pots and held credits and returns the new state; the caller has locked the balance row and moved the lots to match.';

-- Add a lot and its grant row to a pot.
CREATE FUNCTION agentmarket_private.credit_lot_grant(
    p_user uuid, p_credit_type text, p_amount integer, p_type text, p_value numeric,
    p_purchase uuid DEFAULT NULL, p_expires timestamptz DEFAULT NULL, p_description text DEFAULT NULL,
    p_stripe_payment_id text DEFAULT NULL, p_invoice text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lot bigint;
    r agentmarket.credit_state;
BEGIN
    PERFORM agentmarket_private.credit_lot_flush(p_user);
    INSERT INTO agentmarket_private.credit_lots
        (user_id, credit_type, grant_type, paid, purchase_id, stripe_invoice_id, credits, value_usd,
         remaining, remaining_value_usd, expires_at)
    VALUES (p_user, p_credit_type, p_type, p_purchase IS NOT NULL, p_purchase, p_invoice, p_amount, p_value,
            p_amount, p_value, p_expires)
    RETURNING id INTO lot;
    INSERT INTO agentmarket.credit_transactions
        (user_id, type, amount, credit_type, description, stripe_payment_id, lot_id, value_usd)
    VALUES (p_user, p_type, p_amount, p_credit_type, p_description, p_stripe_payment_id, lot, p_value);
    BEGIN
        UPDATE agentmarket.credit_balances cb
           SET subscription_credits = cb.subscription_credits OPERATOR(pg_catalog.+)
                   CASE p_credit_type WHEN 'subscription' THEN p_amount ELSE 0 END,
               topup_credits = cb.topup_credits OPERATOR(pg_catalog.+)
                   CASE p_credit_type WHEN 'topup' THEN p_amount ELSE 0 END
         WHERE cb.user_id OPERATOR(pg_catalog.=) p_user
        RETURNING cb.subscription_credits, cb.topup_credits, cb.held_credits,
                  cb.subscription_credits OPERATOR(pg_catalog.+) cb.topup_credits OPERATOR(pg_catalog.-) cb.held_credits
        INTO STRICT r;
    EXCEPTION WHEN numeric_value_out_of_range THEN
        RAISE EXCEPTION 'balance out of range' USING ERRCODE = '22023',
            DETAIL = 'A pot would exceed 2147483647 credits.';
    END;
    -- A debt left by a refund is settled first (lifecycle.sql).
    IF EXISTS (SELECT FROM agentmarket_private.credit_debts d WHERE d.user_id = p_user AND d.credits > 0) THEN
        PERFORM agentmarket_private.credit_settle_debt(p_user);
        r := agentmarket_private.credit_state_of(p_user);
    END IF;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lot_grant(uuid, text, integer, text, numeric, uuid, timestamptz, text, text, text) IS
    'Adds a lot of p_amount credits worth p_value to a pot, with its grant row (lot_id, value_usd); the caller has locked the balance row.';

-- The value of promotional credits.
CREATE FUNCTION agentmarket_private.credit_promotional_value(p_amount integer)
RETURNS numeric
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.trunc(p_amount OPERATOR(pg_catalog.*)
                            agentmarket_private.setting('promotional_credit_value_usd')::numeric, 4)
$$;
COMMENT ON FUNCTION agentmarket_private.credit_promotional_value(integer) IS
    'What p_amount promotional credits are worth: p_amount x promotional_credit_value_usd, rounded down to 1e-4 USD.';

-- Take p_amount credits from the lots in burn order, one ledger row per lot,
-- and change held credits by p_held_delta.  The caller has checked that the
-- credits are available.
CREATE FUNCTION agentmarket_private.credit_lot_take(
    p_user uuid, p_amount integer, p_held_delta integer, p_description text, p_session uuid,
    p_type text DEFAULT 'session_deduct')
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l record;
    left_to_take integer := p_amount;
    k integer;
    v numeric;
    from_subscription integer := 0;
BEGIN
    PERFORM agentmarket_private.credit_lot_flush(p_user);
    FOR l IN SELECT x.id, x.credit_type, x.remaining, x.remaining_value_usd
               FROM agentmarket_private.credit_lots x
              WHERE x.user_id OPERATOR(pg_catalog.=) p_user AND NOT x.depleted
              ORDER BY x.credit_type OPERATOR(pg_catalog.=) 'topup', x.expires_at ASC NULLS LAST, x.id
    LOOP
        EXIT WHEN left_to_take OPERATOR(pg_catalog.=) 0;
        k := LEAST(l.remaining, left_to_take);
        v := agentmarket_private.credit_share(l.remaining_value_usd, k, l.remaining);
        PERFORM agentmarket_private.credit_lot_move(p_user, l.id, l.credit_type, OPERATOR(pg_catalog.-) k,
                                                    OPERATOR(pg_catalog.-) v, p_type, p_description, p_session);
        IF l.credit_type OPERATOR(pg_catalog.=) 'subscription' THEN
            from_subscription := from_subscription OPERATOR(pg_catalog.+) k;
        END IF;
        left_to_take := left_to_take OPERATOR(pg_catalog.-) k;
    END LOOP;
    IF left_to_take OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'credit lots do not cover the balance' USING ERRCODE = 'XX000',
            DETAIL = pg_catalog.format('User %s: %s of %s credits have no lot.', p_user, left_to_take, p_amount),
            HINT = 'agentmarket.verify_books() lists the discrepancy.';
    END IF;
    RETURN agentmarket_private.credit_pots_change(p_user, OPERATOR(pg_catalog.-) from_subscription,
        OPERATOR(pg_catalog.-) (p_amount OPERATOR(pg_catalog.-) from_subscription), p_held_delta);
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lot_take(uuid, integer, integer, text, uuid, text) IS
    'Takes p_amount credits from the user''s lots in burn order (subscription first; soonest expiry, then oldest), one row of p_type per lot with the value consumed (session_deduct for spending, refund_recovery for recoveries), and changes held credits by p_held_delta; the caller has locked the balance row and checked availability.';

-- Expire the subscription pot's lots, keeping p_keep credits (the last ones in
-- burn order).  Their remaining value is the platform's.
CREATE FUNCTION agentmarket_private.credit_lot_expire(p_user uuid, p_keep integer, p_description text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l record;
    total integer;
    to_expire integer;
    k integer;
    v numeric;
    expired integer := 0;
BEGIN
    PERFORM agentmarket_private.credit_lot_flush(p_user);
    SELECT COALESCE(pg_catalog.sum(x.remaining), 0) INTO total FROM agentmarket_private.credit_lots x
     WHERE x.user_id OPERATOR(pg_catalog.=) p_user AND x.credit_type OPERATOR(pg_catalog.=) 'subscription';
    to_expire := total OPERATOR(pg_catalog.-) LEAST(p_keep, total);
    FOR l IN SELECT x.id, x.remaining, x.remaining_value_usd
               FROM agentmarket_private.credit_lots x
              WHERE x.user_id OPERATOR(pg_catalog.=) p_user AND x.credit_type OPERATOR(pg_catalog.=) 'subscription'
                AND NOT x.depleted
              ORDER BY x.expires_at ASC NULLS LAST, x.id
    LOOP
        EXIT WHEN to_expire OPERATOR(pg_catalog.=) 0;
        k := LEAST(l.remaining, to_expire);
        v := agentmarket_private.credit_share(l.remaining_value_usd, k, l.remaining);
        PERFORM agentmarket_private.credit_lot_move(p_user, l.id, 'subscription', OPERATOR(pg_catalog.-) k,
                                                    OPERATOR(pg_catalog.-) v, 'subscription_expiry', p_description);
        to_expire := to_expire OPERATOR(pg_catalog.-) k;
        expired := expired OPERATOR(pg_catalog.+) k;
    END LOOP;
    PERFORM agentmarket_private.credit_pots_change(p_user, OPERATOR(pg_catalog.-) expired, 0);
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lot_expire(uuid, integer, text) IS
    'Expires the user''s subscription lots in burn order except p_keep credits (subscription_expiry rows with the value expired); the caller has locked the balance row.';

-- Give back p_amount credits that deductions of a scope (a session, or none)
-- took, to the lots they came from: top-up first, then the reverse of burn
-- order, each with the value it took.
CREATE FUNCTION agentmarket_private.credit_lot_restore(
    p_user uuid, p_amount integer, p_session uuid, p_description text)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l record;
    left_to_give integer := p_amount;
    k integer;
    v numeric;
    to_subscription integer := 0;
BEGIN
    PERFORM agentmarket_private.credit_lot_flush(p_user);
    FOR l IN SELECT x.id, x.credit_type, t.taken, t.value
               FROM (SELECT y.lot_id, OPERATOR(pg_catalog.-) pg_catalog.sum(y.amount) AS taken,
                            OPERATOR(pg_catalog.-) pg_catalog.sum(y.value_usd) AS value
                       FROM agentmarket.credit_transactions y
                      WHERE y.user_id OPERATOR(pg_catalog.=) p_user
                        AND y.session_id IS NOT DISTINCT FROM p_session
                        AND y.type IN ('session_deduct', 'refund') AND y.lot_id IS NOT NULL
                      GROUP BY y.lot_id) t
               JOIN agentmarket_private.credit_lots x ON x.id OPERATOR(pg_catalog.=) t.lot_id
              WHERE t.taken OPERATOR(pg_catalog.>) 0
              ORDER BY x.credit_type OPERATOR(pg_catalog.=) 'topup' DESC, x.expires_at DESC NULLS FIRST, x.id DESC
    LOOP
        EXIT WHEN left_to_give OPERATOR(pg_catalog.=) 0;
        k := LEAST(l.taken, left_to_give);
        v := agentmarket_private.credit_share(l.value, k, l.taken::integer);
        PERFORM agentmarket_private.credit_lot_move(p_user, l.id, l.credit_type, k, v, 'refund', p_description, p_session);
        IF p_session IS NOT NULL THEN
            -- Revenue a purchase refund reversed from the session (lifecycle.sql).
            PERFORM agentmarket_private.revenue_reversal_cap(p_session, l.id);
        END IF;
        IF l.credit_type OPERATOR(pg_catalog.=) 'subscription' THEN
            to_subscription := to_subscription OPERATOR(pg_catalog.+) k;
        END IF;
        left_to_give := left_to_give OPERATOR(pg_catalog.-) k;
    END LOOP;
    IF left_to_give OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'refund exceeds what was taken' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('refundable %s, requested %s', p_amount OPERATOR(pg_catalog.-) left_to_give, p_amount);
    END IF;
    RETURN agentmarket_private.credit_pots_change(p_user, to_subscription,
                                                  p_amount OPERATOR(pg_catalog.-) to_subscription);
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lot_restore(uuid, integer, uuid, text) IS
    'Returns p_amount credits taken by deductions of one scope (a session, or those without one) to the lots they came from, top-up first then the reverse of burn order, with the value they took (refund rows); the caller has locked the balance row.';

-- The recognized revenue of a session: the value of the credits it consumed,
-- net of what refunds gave back.
CREATE FUNCTION agentmarket_private.session_revenue(p_session uuid)
RETURNS numeric
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- PL/pgSQL: the reversals table is created by a later part (lifecycle.sql).
    RETURN (SELECT COALESCE(-sum(t.value_usd), 0)
              FROM agentmarket.credit_transactions t
             WHERE t.session_id = p_session AND t.type IN ('session_deduct', 'refund'))
         - (SELECT COALESCE(sum(r.value_usd), 0)
              FROM agentmarket_private.revenue_reversals r WHERE r.session_id = p_session);
END
$$;
COMMENT ON FUNCTION agentmarket_private.session_revenue(uuid) IS
    'The value (USD) of the credits a session consumed, less what refunds of credits gave back and what refunds of their purchase reversed (lifecycle.sql): its gross revenue.';

