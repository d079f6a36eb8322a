-- credit_holds.sql: credits reserved for metered work, captured or released later (the
-- ledger itself is in credits.sql).

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('hold_expiry_minutes', 'integer', '60', 1, 10080, NULL,
   'A credit hold that is neither captured nor released expires after this many minutes.');
------------------------------------------------------------------------------
-- Holds
------------------------------------------------------------------------------

-- Expire a user's overdue active holds; the caller holds the balance row lock.
CREATE FUNCTION agentmarket_private.credit_expire_holds(p_user uuid)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
    total integer;
BEGIN
    WITH expired AS (
        UPDATE agentmarket_private.credit_holds h SET status = 'expired', resolved_at = now()
         WHERE h.user_id = p_user AND h.status = 'active' AND h.expires_at <= now()
        RETURNING h.amount)
    SELECT count(*), COALESCE(sum(e.amount), 0) INTO n, total FROM expired e;
    IF total > 0 THEN
        PERFORM agentmarket_private.credit_apply(p_user, 0, 0, -total, 'session_deduct');
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_expire_holds(uuid) IS
    'Marks a user''s overdue active holds expired and releases their credits; the caller has locked the balance row.';

CREATE FUNCTION agentmarket_private.reserve_credits(p_user uuid, p_arguments jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_amount integer := (p_arguments OPERATOR(pg_catalog.->>) 'amount')::integer;
    p_session uuid := (p_arguments OPERATOR(pg_catalog.->>) 'session_id')::uuid;
    b agentmarket.credit_balances;
    available integer;
    new_hold uuid;
BEGIN
    PERFORM agentmarket_private.credit_lock_balance(p_user);
    PERFORM agentmarket_private.credit_expire_holds(p_user);
    PERFORM agentmarket_private.credit_check_session(p_user, p_session);
    SELECT * INTO STRICT b FROM agentmarket.credit_balances cb WHERE cb.user_id = p_user;
    available := b.subscription_credits + b.topup_credits - b.held_credits;
    IF available < p_amount THEN
        RAISE EXCEPTION 'insufficient credits' USING ERRCODE = 'PT402',
            DETAIL = pg_catalog.format('available %s, required %s', available, p_amount);
    END IF;
    -- expires_at: a session's hold (spend.sql) names its end; otherwise expires_in from now.
    INSERT INTO agentmarket_private.credit_holds (user_id, amount, session_id, description, expires_at)
    VALUES (p_user, p_amount, p_session, p_arguments OPERATOR(pg_catalog.->>) 'description',
            COALESCE((p_arguments OPERATOR(pg_catalog.->>) 'expires_at')::timestamptz,
                now() OPERATOR(pg_catalog.+) COALESCE((p_arguments OPERATOR(pg_catalog.->>) 'expires_in')::interval,
                    pg_catalog.make_interval(mins => agentmarket_private.setting('hold_expiry_minutes')::integer))))
    RETURNING id INTO new_hold;
    PERFORM agentmarket_private.credit_apply(p_user, 0, 0, p_amount, 'session_deduct');
    RETURN pg_catalog.jsonb_build_object('hold_id', new_hold);
END
$$;
COMMENT ON FUNCTION agentmarket_private.reserve_credits(uuid, jsonb) IS
    'Body of agentmarket.reserve_credits run by credit_execute: expires overdue holds, refuses more than is available (PT402), places the hold; returns {"hold_id": ...}.';

CREATE FUNCTION agentmarket.reserve_credits(
    user_id uuid, amount integer, session_id uuid DEFAULT NULL, expires_in interval DEFAULT NULL,
    idempotency_key text DEFAULT NULL, description text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lifetime interval;
BEGIN
    IF reserve_credits.user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(reserve_credits.amount);
    lifetime := COALESCE(reserve_credits.expires_in,
                         pg_catalog.make_interval(mins => agentmarket_private.setting('hold_expiry_minutes')::integer));
    IF lifetime <= interval '0' THEN
        RAISE EXCEPTION 'expires_in must be positive' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The interval given was %s.', lifetime);
    END IF;
    RETURN (agentmarket_private.credit_execute('agentmarket_private.reserve_credits(uuid, jsonb)',
                reserve_credits.user_id, reserve_credits.idempotency_key,
                pg_catalog.jsonb_build_object('amount', reserve_credits.amount, 'session_id', reserve_credits.session_id,
                    'expires_in', reserve_credits.expires_in, 'description', reserve_credits.description))
            OPERATOR(pg_catalog.->>) 'hold_id')::uuid;
END
$$;
COMMENT ON FUNCTION agentmarket.reserve_credits(uuid, integer, uuid, interval, text, text) IS
    'Places a hold of amount credits (PT402 when fewer are available) that expires after expires_in (default: setting hold_expiry_minutes); returns the hold id. Held credits are not available to deductions or other holds.';

-- Lock the balance row of a hold's user, then the hold; P0002 for an unknown hold.
CREATE FUNCTION agentmarket_private.credit_lock_hold(p_hold uuid)
RETURNS agentmarket_private.credit_holds
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h agentmarket_private.credit_holds;
BEGIN
    SELECT * INTO h FROM agentmarket_private.credit_holds ch WHERE ch.id = p_hold;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hold not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No hold has id %s.', p_hold);
    END IF;
    PERFORM agentmarket_private.credit_lock_balance(h.user_id);
    SELECT * INTO STRICT h FROM agentmarket_private.credit_holds ch WHERE ch.id = p_hold FOR UPDATE;
    RETURN h;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lock_hold(uuid) IS
    'Locks a hold''s balance row and then the hold (the lock order of every writer); P0002 for an unknown hold.';

-- Refuse to resolve a hold that is no longer active (22023).
CREATE FUNCTION agentmarket_private.credit_check_hold_active(h agentmarket_private.credit_holds)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF h.status <> 'active' THEN
        RAISE EXCEPTION 'hold already resolved' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The hold is %s; a hold resolves once.', h.status);
    END IF;
    IF h.expires_at <= now() THEN
        RAISE EXCEPTION 'hold expired' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The hold expired at %s.', h.expires_at);
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_check_hold_active(agentmarket_private.credit_holds) IS
    'Raises 22023 unless the hold is active and not past its expiry.';

-- The user of a hold, for its key; P0002 for an unknown hold.
CREATE FUNCTION agentmarket_private.credit_hold_user(p_hold uuid)
RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_user uuid;
BEGIN
    IF p_hold IS NULL THEN
        RAISE EXCEPTION 'hold_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT ch.user_id INTO p_user FROM agentmarket_private.credit_holds ch WHERE ch.id = p_hold;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hold not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No hold has id %s.', p_hold);
    END IF;
    RETURN p_user;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_hold_user(uuid) IS
    'The user of a hold (whose keys its capture and release use); 22023 for NULL, P0002 for an unknown hold.';

-- Capture p_amount of a locked active hold (the rest is released): the hold
-- resolves and frees its credits, and deduct_credits takes p_amount of them
-- (the head lot when it covers them, else the lots in burn order) as
-- session_deduct rows of the hold's session, under the balance row lock the
-- caller holds.  The caller has checked the amount.
CREATE FUNCTION agentmarket_private.credit_hold_capture(
    h agentmarket_private.credit_holds, p_amount integer, p_description text)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r agentmarket.credit_state;
BEGIN
    UPDATE agentmarket_private.credit_holds ch
       SET status = 'captured', captured_amount = p_amount, resolved_at = now()
     WHERE ch.id OPERATOR(pg_catalog.=) h.id;
    r := agentmarket_private.credit_apply(h.user_id, 0, 0, OPERATOR(pg_catalog.-) h.amount, 'session_deduct');
    IF p_amount OPERATOR(pg_catalog.>) 0 THEN
        r := agentmarket.deduct_credits(h.user_id, p_amount, h.session_id, NULL,
                                        COALESCE(p_description, h.description));
    END IF;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_hold_capture(agentmarket_private.credit_holds, integer, text) IS
    'Captures p_amount (0 up to its amount) of a hold the caller has locked and found active: the hold''s credits are freed and p_amount of them deducted (deduct_credits: session_deduct rows of the hold''s session, from the lots in burn order), the rest released; returns the credit_state.';

CREATE FUNCTION agentmarket_private.capture_hold(p_user uuid, p_arguments jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_hold uuid := (p_arguments OPERATOR(pg_catalog.->>) 'hold_id')::uuid;
    p_amount integer := (p_arguments OPERATOR(pg_catalog.->>) 'amount')::integer;
    h agentmarket_private.credit_holds := agentmarket_private.credit_lock_hold(p_hold);
BEGIN
    PERFORM agentmarket_private.credit_check_hold_active(h);
    IF p_amount > h.amount THEN
        RAISE EXCEPTION 'capture exceeds the hold' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('held %s, requested %s', h.amount, p_amount);
    END IF;
    RETURN pg_catalog.to_jsonb(agentmarket_private.credit_hold_capture(h, p_amount,
               p_arguments OPERATOR(pg_catalog.->>) 'description'));
END
$$;
COMMENT ON FUNCTION agentmarket_private.capture_hold(uuid, jsonb) IS
    'Body of agentmarket.capture_hold run by credit_execute: charges the amount of an active hold from the lots and releases the rest; returns the credit_state as jsonb.';

CREATE FUNCTION agentmarket.capture_hold(
    hold_id uuid, amount integer, idempotency_key text DEFAULT NULL, description text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_user uuid;
BEGIN
    IF capture_hold.hold_id IS NULL THEN
        RAISE EXCEPTION 'hold_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(capture_hold.amount, true);
    p_user := agentmarket_private.credit_hold_user(capture_hold.hold_id);
    RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state,
        agentmarket_private.credit_execute('agentmarket_private.capture_hold(uuid, jsonb)', p_user,
            capture_hold.idempotency_key,
            pg_catalog.jsonb_build_object('hold_id', capture_hold.hold_id, 'amount', capture_hold.amount,
                'description', capture_hold.description)));
END
$$;
COMMENT ON FUNCTION agentmarket.capture_hold(uuid, integer, text, text) IS
    'Charges amount (0 up to the held amount) of an active hold, subscription credits first (session_deduct rows), and releases the rest; a hold resolves once (22023 otherwise).';

CREATE FUNCTION agentmarket_private.release_hold(p_user uuid, p_arguments jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_hold uuid := (p_arguments OPERATOR(pg_catalog.->>) 'hold_id')::uuid;
    h agentmarket_private.credit_holds := agentmarket_private.credit_lock_hold(p_hold);
BEGIN
    IF h.status <> 'active' THEN
        PERFORM agentmarket_private.credit_check_hold_active(h);
    END IF;
    -- Releasing a hold past its expiry is allowed: it only frees credits.
    UPDATE agentmarket_private.credit_holds ch SET status = 'released', resolved_at = now()
     WHERE ch.id = p_hold;
    RETURN pg_catalog.to_jsonb(agentmarket_private.credit_apply(p_user, 0, 0, -h.amount, 'session_deduct'));
END
$$;
COMMENT ON FUNCTION agentmarket_private.release_hold(uuid, jsonb) IS
    'Body of agentmarket.release_hold run by credit_execute: frees an active (or overdue) hold''s credits; returns the credit_state as jsonb.';

CREATE FUNCTION agentmarket.release_hold(hold_id uuid, idempotency_key text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state,
        agentmarket_private.credit_execute('agentmarket_private.release_hold(uuid, jsonb)',
            agentmarket_private.credit_hold_user(release_hold.hold_id), release_hold.idempotency_key,
            pg_catalog.jsonb_build_object('hold_id', release_hold.hold_id)));
END
$$;
COMMENT ON FUNCTION agentmarket.release_hold(uuid, text) IS
    'Releases an active hold without charging anything; a hold resolves once (22023 otherwise).';

CREATE FUNCTION agentmarket.release_expired_holds()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u uuid;
    n integer := 0;
BEGIN
    FOR u IN SELECT DISTINCT h.user_id FROM agentmarket_private.credit_holds h
              WHERE h.status = 'active' AND h.expires_at <= now() ORDER BY h.user_id
    LOOP
        PERFORM agentmarket_private.credit_lock_balance(u);
        n := n + agentmarket_private.credit_expire_holds(u);
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket.release_expired_holds() IS
    'Sweep for pg_cron: marks every active hold past its expiry expired and frees its credits; returns how many.';
-- Periodic (schedules.sql): job agentmarket.release_expired_holds, setting schedule_release_expired_holds.
SELECT agentmarket_private.declare_scheduled_task('release_expired_holds', 'SELECT agentmarket.release_expired_holds()', '* * * * *');

