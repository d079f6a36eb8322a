-- credits.sql: the credit ledger (shared/DESIGN.md, Money).
--
-- Two pots per user in agentmarket.credit_balances (subscription, top-up) plus
-- held_credits, the sum of the user's active holds.  Every change to a pot is
-- one agentmarket.credit_transactions row; ledger rows are never updated or
-- deleted.  Every writer locks the user's balance row first (then, for holds,
-- the hold row), so all changes of one user are serialized on that row.
-- deduct_credits is in C (credits.c); the rest is here.

------------------------------------------------------------------------------
-- Constraints on the seed tables (added, none changed)
------------------------------------------------------------------------------
-- The row checks are C functions: PostgreSQL 15 rebuilds every CHECK
-- expression from its stored text in each statement that writes the table,
-- and for the ledger's list of type names that cost more than the insert
-- itself (bench/ledger).  A function call is a small expression to rebuild.
CREATE FUNCTION agentmarket_private.credit_transaction_shape_ok(type text, credit_type text, amount integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'credit_transaction_shape_ok'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.credit_transaction_shape_ok(text, text, integer) IS
    'CHECK of a ledger row: credit_type is subscription or topup; type is subscription_refresh (> 0, subscription), subscription_expiry (< 0, subscription), topup_purchase (> 0, topup), free_trial (> 0), session_deduct (< 0) or refund (> 0).';

CREATE FUNCTION agentmarket_private.credit_pots_ok(subscription_credits integer, topup_credits integer, held_credits integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'credit_pots_ok'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.credit_pots_ok(integer, integer, integer) IS
    'CHECK of a balance row: both pots >= 0, held_credits >= 0 and held_credits <= subscription + topup.';

ALTER TABLE agentmarket.credit_balances
  ADD COLUMN held_credits INTEGER NOT NULL DEFAULT 0,
  ADD CONSTRAINT credit_balances_pots_check
    CHECK (agentmarket_private.credit_pots_ok(subscription_credits, topup_credits, held_credits));
COMMENT ON COLUMN agentmarket.credit_balances.held_credits IS
    'Sum of the user''s active holds (agentmarket_private.credit_holds); available = subscription + topup - held.';
COMMENT ON CONSTRAINT credit_balances_pots_check ON agentmarket.credit_balances IS
    'No pot below zero; held credits between 0 and subscription + topup.';

ALTER TABLE agentmarket.credit_transactions
  ADD CONSTRAINT credit_transactions_type_check
    CHECK (agentmarket_private.credit_transaction_shape_ok(type, credit_type, amount));
COMMENT ON CONSTRAINT credit_transactions_type_check ON agentmarket.credit_transactions IS
    'type IN (subscription_refresh, subscription_expiry, topup_purchase, free_trial, session_deduct, refund), credit_type IN (subscription, topup), with the sign and pot each type allows (see credit_transaction_shape_ok).';
-- At most one free-trial grant per user, whoever asks for it.
CREATE UNIQUE INDEX credit_transactions_one_free_trial
    ON agentmarket.credit_transactions (user_id) WHERE type = 'free_trial';

-- The ledger is append-only: corrections are new rows.
CREATE FUNCTION agentmarket_private.credit_transactions_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'the credit ledger is append-only'
        USING ERRCODE = '42501',
              DETAIL = pg_catalog.format('%s on agentmarket.credit_transactions is refused: rows are never updated or deleted.', TG_OP),
              HINT = 'Correct a balance with a new row (a grant or a refund).';
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_transactions_append_only() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on the credit ledger (42501).';
CREATE TRIGGER credit_transactions_append_only
    BEFORE UPDATE OR DELETE ON agentmarket.credit_transactions
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.credit_transactions_append_only();
CREATE TRIGGER credit_transactions_no_truncate
    BEFORE TRUNCATE ON agentmarket.credit_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION agentmarket_private.credit_transactions_append_only();
-- ALWAYS: the triggers fire under session_replication_role = replica too.
ALTER TABLE agentmarket.credit_transactions ENABLE ALWAYS TRIGGER credit_transactions_append_only;
ALTER TABLE agentmarket.credit_transactions ENABLE ALWAYS TRIGGER credit_transactions_no_truncate;

------------------------------------------------------------------------------
-- Private tables: holds and idempotency records
------------------------------------------------------------------------------
CREATE TABLE agentmarket_private.credit_holds (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES agentmarket.users(id) ON DELETE CASCADE,
  amount INTEGER NOT NULL CONSTRAINT credit_holds_amount_check CHECK (amount > 0),
  session_id UUID REFERENCES agentmarket.sessions(id) ON DELETE SET NULL,
  description TEXT,
  status TEXT NOT NULL DEFAULT 'active'
    CONSTRAINT credit_holds_status_check CHECK (status IN ('active', 'captured', 'released', 'expired')),
  captured_amount INTEGER,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at TIMESTAMPTZ NOT NULL,
  resolved_at TIMESTAMPTZ,
  CONSTRAINT credit_holds_captured_check
    CHECK ((status = 'captured') = (captured_amount IS NOT NULL)
           AND (captured_amount IS NULL OR captured_amount BETWEEN 0 AND amount)),
  CONSTRAINT credit_holds_resolved_check CHECK ((status = 'active') = (resolved_at IS NULL))
);
COMMENT ON TABLE agentmarket_private.credit_holds IS
    'Credit holds (authorizations) for metered work: active until captured, released or expired; resolved at most once.';
CREATE INDEX credit_holds_user_active ON agentmarket_private.credit_holds (user_id) WHERE status = 'active';
CREATE INDEX credit_holds_expiry_active ON agentmarket_private.credit_holds (expires_at) WHERE status = 'active';
CREATE INDEX credit_holds_session ON agentmarket_private.credit_holds (session_id);
REVOKE ALL ON TABLE agentmarket_private.credit_holds FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.credit_holds', '');

-- One row per (user, key): the operation, its arguments and its outcome,
-- written by the one executor (credits_idempotency.c).  No foreign key to
-- users: version 0.1.0 recorded failed outcomes from a separate transaction
-- that might not see the user, and its rows are kept as they are.
CREATE TABLE agentmarket_private.credit_idempotency (
  user_id UUID NOT NULL,
  idempotency_key TEXT NOT NULL
    CONSTRAINT credit_idempotency_key_check CHECK (idempotency_key <> '' AND length(idempotency_key) <= 255),
  operation TEXT NOT NULL,
  arguments JSONB NOT NULL,
  outcome JSONB, -- the result, or {sqlstate, message, detail} when failed
  failed BOOLEAN NOT NULL DEFAULT false,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT credit_idempotency_pkey PRIMARY KEY (user_id, idempotency_key)
);
COMMENT ON TABLE agentmarket_private.credit_idempotency IS
    'Outcomes of credit operations called with an idempotency key (unique per user); a repeat returns or raises the first outcome.';
REVOKE ALL ON TABLE agentmarket_private.credit_idempotency FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.credit_idempotency', '');

------------------------------------------------------------------------------
-- The result type of every balance-changing function
------------------------------------------------------------------------------
CREATE TYPE agentmarket.credit_state AS (
  subscription_credits integer,
  topup_credits integer,
  held_credits integer,
  available_credits integer
);
COMMENT ON TYPE agentmarket.credit_state IS
    'A user''s balances after a credit operation: the two pots, the credits held, and available = pots - held.';

------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------

-- Lock the user's balance row, creating it when missing; P0002 for an unknown user.
CREATE FUNCTION agentmarket_private.credit_lock_balance(p_user uuid)
RETURNS agentmarket.credit_balances
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b agentmarket.credit_balances;
BEGIN
    IF p_user IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO b FROM agentmarket.credit_balances cb
     WHERE cb.user_id OPERATOR(pg_catalog.=) p_user FOR UPDATE;
    IF FOUND THEN
        RETURN b;
    END IF;
    IF NOT EXISTS (SELECT FROM agentmarket.users u WHERE u.id OPERATOR(pg_catalog.=) p_user) THEN
        RAISE EXCEPTION 'user not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No user has id %s.', p_user);
    END IF;
    INSERT INTO agentmarket.credit_balances (user_id) VALUES (p_user)
        ON CONFLICT ON CONSTRAINT credit_balances_user_id_key DO NOTHING;
    SELECT * INTO STRICT b FROM agentmarket.credit_balances cb
     WHERE cb.user_id OPERATOR(pg_catalog.=) p_user FOR UPDATE;
    RETURN b;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lock_balance(uuid) IS
    'Locks (creating when missing) the balance row of a user; P0002 for an unknown user.';

-- Apply pot and hold deltas to a locked balance row, one ledger row per pot touched.
CREATE FUNCTION agentmarket_private.credit_apply(
    p_user uuid, p_subscription_delta integer, p_topup_delta integer, p_held_delta integer,
    p_type text, p_description text DEFAULT NULL, p_session uuid DEFAULT NULL,
    p_stripe_payment_id text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r agentmarket.credit_state;
BEGIN
    -- Checked before writing rather than caught: catching costs a subtransaction.
    IF EXISTS (SELECT FROM agentmarket.credit_balances cb
                WHERE cb.user_id OPERATOR(pg_catalog.=) p_user
                  AND (cb.subscription_credits::bigint OPERATOR(pg_catalog.+) p_subscription_delta
                           OPERATOR(pg_catalog.>) 2147483647
                       OR cb.topup_credits::bigint OPERATOR(pg_catalog.+) p_topup_delta
                           OPERATOR(pg_catalog.>) 2147483647
                       OR cb.held_credits::bigint OPERATOR(pg_catalog.+) p_held_delta
                           OPERATOR(pg_catalog.>) 2147483647)) THEN
        RAISE EXCEPTION 'balance out of range' USING ERRCODE = '22023',
            DETAIL = 'A pot would exceed 2147483647 credits.';
    END IF;
    INSERT INTO agentmarket.credit_transactions
        (user_id, type, amount, credit_type, description, session_id, stripe_payment_id)
    SELECT p_user, p_type, v.delta, v.pot, p_description, p_session, p_stripe_payment_id
      FROM (VALUES (1, 'subscription', p_subscription_delta), (2, 'topup', p_topup_delta)) v(n, pot, delta)
     WHERE v.delta OPERATOR(pg_catalog.<>) 0
     ORDER BY v.n;
    UPDATE agentmarket.credit_balances cb
       SET subscription_credits = cb.subscription_credits OPERATOR(pg_catalog.+) p_subscription_delta,
           topup_credits = cb.topup_credits OPERATOR(pg_catalog.+) p_topup_delta,
           held_credits = cb.held_credits OPERATOR(pg_catalog.+) p_held_delta
     WHERE cb.user_id OPERATOR(pg_catalog.=) p_user
    RETURNING cb.subscription_credits, cb.topup_credits, cb.held_credits,
              cb.subscription_credits OPERATOR(pg_catalog.+) cb.topup_credits
                  OPERATOR(pg_catalog.-) cb.held_credits
    INTO STRICT r;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_apply(uuid, integer, integer, integer, text, text, uuid, text) IS
    'Applies deltas to a locked balance row and appends one ledger row per pot touched; returns the new state.';

-- The current state of a user (zeros without a balance row).
CREATE FUNCTION agentmarket_private.credit_state_of(p_user uuid)
RETURNS agentmarket.credit_state
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(cb.subscription_credits, 0), COALESCE(cb.topup_credits, 0),
           COALESCE(cb.held_credits, 0),
           COALESCE(cb.subscription_credits OPERATOR(pg_catalog.+) cb.topup_credits
                    OPERATOR(pg_catalog.-) cb.held_credits, 0)
      FROM (SELECT p_user AS id) u
      LEFT JOIN agentmarket.credit_balances cb ON cb.user_id OPERATOR(pg_catalog.=) u.id
$$;
COMMENT ON FUNCTION agentmarket_private.credit_state_of(uuid) IS
    'A user''s balances as a credit_state (zeros when the user has no balance row).';

-- Argument checks shared by the functions below.
CREATE FUNCTION agentmarket_private.credit_check_amount(p_amount integer, p_allow_zero boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_amount IS NULL OR p_amount OPERATOR(pg_catalog.<) 0
       OR (p_amount OPERATOR(pg_catalog.=) 0 AND NOT p_allow_zero) THEN
        RAISE EXCEPTION 'amount must be a positive number of credits' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The amount given was %s.', COALESCE(p_amount::text, 'null'));
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_check_amount(integer, boolean) IS
    'Raises 22023 unless amount is a positive integer (or zero when allowed).';

-- A session given with a ledger call must exist (P0002) and be the user's (22023).
CREATE FUNCTION agentmarket_private.credit_check_session(p_user uuid, p_session uuid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner uuid;
BEGIN
    IF p_session IS NULL THEN
        RETURN;
    END IF;
    SELECT s.user_id INTO owner FROM agentmarket.sessions s WHERE s.id OPERATOR(pg_catalog.=) p_session;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'session not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No session has id %s.', p_session);
    END IF;
    IF owner OPERATOR(pg_catalog.<>) p_user THEN
        RAISE EXCEPTION 'session belongs to another user' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('Session %s is not a session of user %s.', p_session, p_user);
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_check_session(uuid, uuid) IS
    'Raises P0002 for an unknown session and 22023 for a session of another user (as deduct_credits does).';

------------------------------------------------------------------------------
-- Idempotency: one executor (credits_idempotency.c)
------------------------------------------------------------------------------
-- Every operation below is a pair: the function clients call checks its
-- arguments (22023, nothing recorded) and hands them, as the jsonb a key is
-- bound to, to credit_execute with its body, agentmarket_private.<operation>
-- (user_id, arguments) returning the outcome as jsonb.  credit_execute claims
-- the key when one is given (a repeat returns the first outcome and runs
-- nothing), runs the body, stores the outcome.  deduct_credits (C) uses the
-- same executor directly.  A refusal (PT402, 22023) raises and rolls back
-- with the caller's transaction, claim included: it leaves no record and a
-- retry with the key is decided afresh (a refused call changed nothing, so
-- it cannot happen twice).  Without a key no claim and no subtransaction.
CREATE FUNCTION agentmarket_private.credit_execute(
    operation regprocedure, user_id uuid, idempotency_key text, arguments jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'credit_execute'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmarket_private.credit_execute(regprocedure, uuid, text, jsonb) IS
    'Runs a credit operation''s body (user_id uuid, arguments jsonb) -> jsonb, named as the operation, under the idempotency key when one is given: the first call with a key runs and stores its outcome, a repeat with the same arguments returns it, other uses of the key raise 22023.';

------------------------------------------------------------------------------
-- Grants, refresh, refunds
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket_private.grant_credits(p_user uuid, p_arguments jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_amount integer := (p_arguments OPERATOR(pg_catalog.->>) 'amount')::integer;
    grant_type text := p_arguments OPERATOR(pg_catalog.->>) 'type';
BEGIN
    PERFORM agentmarket_private.credit_lock_balance(p_user);
    IF grant_type OPERATOR(pg_catalog.=) 'free_trial' AND EXISTS (
           SELECT FROM agentmarket.credit_transactions t
            WHERE t.user_id OPERATOR(pg_catalog.=) p_user AND t.type OPERATOR(pg_catalog.=) 'free_trial') THEN
        RAISE EXCEPTION 'free trial already granted' USING ERRCODE = '23505',
            DETAIL = 'A user receives the free trial once.';
    END IF;
    -- Credits granted here are promotional: paid ones come from purchases.
    RETURN pg_catalog.to_jsonb(agentmarket_private.credit_lot_grant(p_user,
               p_arguments OPERATOR(pg_catalog.->>) 'credit_type', p_amount, grant_type,
               agentmarket_private.credit_promotional_value(p_amount), NULL, NULL,
               p_arguments OPERATOR(pg_catalog.->>) 'description',
               p_arguments OPERATOR(pg_catalog.->>) 'stripe_payment_id'));
END
$$;
COMMENT ON FUNCTION agentmarket_private.grant_credits(uuid, jsonb) IS
    'Body of agentmarket.grant_credits run by credit_execute: locks the balance row, refuses a second free trial (23505), adds a promotional lot; returns the credit_state as jsonb.';

CREATE FUNCTION agentmarket.grant_credits(
    user_id uuid, amount integer, credit_type text, type text, description text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, stripe_payment_id text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF grant_credits.user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(grant_credits.amount);
    IF grant_credits.credit_type IS NULL OR grant_credits.credit_type NOT IN ('subscription', 'topup') THEN
        RAISE EXCEPTION 'invalid credit_type' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('credit_type is "subscription" or "topup", not %s.',
                                       COALESCE(pg_catalog.quote_literal(grant_credits.credit_type), 'null'));
    END IF;
    IF grant_credits.type IS NULL OR grant_credits.type NOT IN ('topup_purchase', 'subscription_refresh', 'free_trial') THEN
        RAISE EXCEPTION 'invalid grant type' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('A grant''s type is topup_purchase, subscription_refresh or free_trial, not %s.',
                                       COALESCE(pg_catalog.quote_literal(grant_credits.type), 'null')),
            HINT = 'Deductions, refunds and expiry have their own functions.';
    END IF;
    IF (grant_credits.type = 'topup_purchase' AND grant_credits.credit_type <> 'topup')
       OR (grant_credits.type = 'subscription_refresh' AND grant_credits.credit_type <> 'subscription') THEN
        RAISE EXCEPTION 'grant type does not match the pot' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('%s credits go to the %s pot.', grant_credits.type,
                     CASE grant_credits.type WHEN 'topup_purchase' THEN 'topup' ELSE 'subscription' END);
    END IF;
    RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state,
        agentmarket_private.credit_execute('agentmarket_private.grant_credits(uuid, jsonb)',
            grant_credits.user_id, grant_credits.idempotency_key,
            pg_catalog.jsonb_build_object('amount', grant_credits.amount, 'credit_type', grant_credits.credit_type,
                'type', grant_credits.type, 'description', grant_credits.description,
                'stripe_payment_id', grant_credits.stripe_payment_id)));
END
$$;
COMMENT ON FUNCTION agentmarket.grant_credits(uuid, integer, text, text, text, text, text) IS
    'Adds credits to a pot (type topup_purchase -> topup, subscription_refresh -> subscription, free_trial -> either, once per user); creates the balance row when missing; returns the new credit_state.';

CREATE FUNCTION agentmarket_private.refresh_subscription_credits(p_user uuid, p_arguments jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_amount integer := (p_arguments OPERATOR(pg_catalog.->>) 'amount')::integer;
    b agentmarket.credit_balances := agentmarket_private.credit_lock_balance(p_user);
    keep integer;
BEGIN
    -- What is left expires, except the subscription credits that back
    -- active holds the top-up pot cannot cover.
    keep := LEAST(b.subscription_credits, GREATEST(b.held_credits - b.topup_credits, 0));
    IF b.subscription_credits - keep > 0 THEN
        PERFORM agentmarket_private.credit_lot_expire(p_user, keep,
                 'Unused subscription credits expired at refresh');
    END IF;
    IF p_amount > 0 THEN
        PERFORM agentmarket_private.credit_lot_grant(p_user, 'subscription', p_amount, 'subscription_refresh',
                 agentmarket_private.credit_promotional_value(p_amount), NULL, NULL,
                 p_arguments OPERATOR(pg_catalog.->>) 'description',
                 p_arguments OPERATOR(pg_catalog.->>) 'stripe_payment_id');
    END IF;
    RETURN pg_catalog.to_jsonb(agentmarket_private.credit_state_of(p_user));
END
$$;
COMMENT ON FUNCTION agentmarket_private.refresh_subscription_credits(uuid, jsonb) IS
    'Body of agentmarket.refresh_subscription_credits run by credit_execute: expiry of the subscription pot (keeping what active holds need), then the new grant; returns the credit_state as jsonb.';

CREATE FUNCTION agentmarket.refresh_subscription_credits(
    user_id uuid, amount integer, idempotency_key text DEFAULT NULL,
    stripe_payment_id text DEFAULT NULL, description text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF refresh_subscription_credits.user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(refresh_subscription_credits.amount, true);
    RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state,
        agentmarket_private.credit_execute('agentmarket_private.refresh_subscription_credits(uuid, jsonb)',
            refresh_subscription_credits.user_id, refresh_subscription_credits.idempotency_key,
            pg_catalog.jsonb_build_object('amount', refresh_subscription_credits.amount,
                'stripe_payment_id', refresh_subscription_credits.stripe_payment_id,
                'description', refresh_subscription_credits.description)));
END
$$;
COMMENT ON FUNCTION agentmarket.refresh_subscription_credits(uuid, integer, text, text, text) IS
    'Monthly refresh in one transaction: what is left of the subscription pot expires (a subscription_expiry row; credits backing active holds are kept), then amount is granted (a subscription_refresh row). amount 0 only expires.';

CREATE FUNCTION agentmarket_private.refund_credits(p_user uuid, p_arguments jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_amount integer := (p_arguments OPERATOR(pg_catalog.->>) 'amount')::integer;
    p_session uuid := (p_arguments OPERATOR(pg_catalog.->>) 'session_id')::uuid;
    open_subscription bigint;
    open_topup bigint;
BEGIN
    PERFORM agentmarket_private.credit_check_session(p_user, p_session);
    PERFORM agentmarket_private.credit_lock_balance(p_user);
    -- Refundable per pot: what deductions of this scope (the session, or
    -- deductions without a session) took, less what was refunded to it.
    SELECT COALESCE(-sum(t.amount) FILTER (WHERE t.credit_type = 'subscription'), 0),
           COALESCE(-sum(t.amount) FILTER (WHERE t.credit_type = 'topup'), 0)
      INTO open_subscription, open_topup
      FROM agentmarket.credit_transactions t
     WHERE t.user_id = p_user AND t.session_id IS NOT DISTINCT FROM p_session
       AND t.type IN ('session_deduct', 'refund');
    IF p_amount > open_subscription + open_topup THEN
        RAISE EXCEPTION 'refund exceeds what was taken' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('refundable %s, requested %s', open_subscription + open_topup, p_amount);
    END IF;
    -- Reverse order of spending: top-up credits (taken last) come back
    -- first, each to its lot with the value it took.
    RETURN pg_catalog.to_jsonb(agentmarket_private.credit_lot_restore(p_user, p_amount, p_session,
               p_arguments OPERATOR(pg_catalog.->>) 'description'));
END
$$;
COMMENT ON FUNCTION agentmarket_private.refund_credits(uuid, jsonb) IS
    'Body of agentmarket.refund_credits run by credit_execute: checks the session, refuses more than its deductions took (22023), gives the credits back to their lots; returns the credit_state as jsonb.';

CREATE FUNCTION agentmarket.refund_credits(
    user_id uuid, amount integer, session_id uuid DEFAULT NULL,
    idempotency_key text DEFAULT NULL, description text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF refund_credits.user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(refund_credits.amount);
    RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state,
        agentmarket_private.credit_execute('agentmarket_private.refund_credits(uuid, jsonb)',
            refund_credits.user_id, refund_credits.idempotency_key,
            pg_catalog.jsonb_build_object('amount', refund_credits.amount, 'session_id', refund_credits.session_id,
                'description', refund_credits.description)));
END
$$;
COMMENT ON FUNCTION agentmarket.refund_credits(uuid, integer, uuid, text, text) IS
    'Returns credits taken by deductions of one session (or of deductions without a session when session_id is NULL) to the pots they came from, top-up first; never more than was taken (22023).';
