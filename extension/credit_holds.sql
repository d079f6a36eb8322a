-- credit_holds.sql: credits reserved for metered work, captured or released later (the
-- ledger itself is in credits.sql).
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

CREATE FUNCTION agentmarket.reserve_credits(
    user_id uuid, amount integer, session_id uuid DEFAULT NULL, expires_in interval DEFAULT NULL,
    idempotency_key text DEFAULT NULL, description text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_user uuid := reserve_credits.user_id;
    p_key text := reserve_credits.idempotency_key;
    p_session uuid := reserve_credits.session_id;
    lifetime interval;
    args jsonb;
    stored jsonb;
    claimed boolean := false;
    b agentmarket.credit_balances;
    available integer;
    new_hold uuid;
BEGIN
    IF p_user IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(reserve_credits.amount);
    lifetime := COALESCE(reserve_credits.expires_in,
                         pg_catalog.make_interval(mins => agentmarket_private.setting('hold_expiry_minutes')::integer));
    IF lifetime <= interval '0' THEN
        RAISE EXCEPTION 'expires_in must be positive' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The interval given was %s.', lifetime);
    END IF;
    args := pg_catalog.jsonb_build_object('amount', reserve_credits.amount, 'session_id', p_session,
        'expires_in', reserve_credits.expires_in, 'description', reserve_credits.description);
    BEGIN
        IF p_key IS NOT NULL THEN
            stored := agentmarket_private.credit_idempotency_claim(p_user, p_key, 'reserve_credits', args);
            IF stored IS NOT NULL THEN
                RETURN (stored OPERATOR(pg_catalog.->>) 'hold_id')::uuid;
            END IF;
            claimed := true;
        END IF;
        PERFORM agentmarket_private.credit_lock_balance(p_user);
        PERFORM agentmarket_private.credit_expire_holds(p_user);
        PERFORM agentmarket_private.credit_check_session(p_user, p_session);
        SELECT * INTO STRICT b FROM agentmarket.credit_balances cb WHERE cb.user_id = p_user;
        available := b.subscription_credits + b.topup_credits - b.held_credits;
        IF available < reserve_credits.amount THEN
            RAISE EXCEPTION 'insufficient credits' USING ERRCODE = 'PT402',
                DETAIL = pg_catalog.format('available %s, required %s', available, reserve_credits.amount);
        END IF;
        INSERT INTO agentmarket_private.credit_holds (user_id, amount, session_id, description, expires_at)
        VALUES (p_user, reserve_credits.amount, p_session, reserve_credits.description, now() + lifetime)
        RETURNING id INTO new_hold;
        PERFORM agentmarket_private.credit_apply(p_user, 0, 0, reserve_credits.amount, 'session_deduct');
        IF claimed THEN
            PERFORM agentmarket_private.credit_idempotency_store(p_user, p_key,
                pg_catalog.jsonb_build_object('hold_id', new_hold));
        END IF;
    END;
    RETURN new_hold;
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

CREATE FUNCTION agentmarket.capture_hold(
    hold_id uuid, amount integer, idempotency_key text DEFAULT NULL, description text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_hold uuid := capture_hold.hold_id;
    p_key text := capture_hold.idempotency_key;
    p_user uuid;
    args jsonb;
    stored jsonb;
    claimed boolean := false;
    h agentmarket_private.credit_holds;
    r agentmarket.credit_state;
BEGIN
    IF p_hold IS NULL THEN
        RAISE EXCEPTION 'hold_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(capture_hold.amount, true);
    SELECT ch.user_id INTO p_user FROM agentmarket_private.credit_holds ch WHERE ch.id = p_hold;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hold not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No hold has id %s.', p_hold);
    END IF;
    args := pg_catalog.jsonb_build_object('hold_id', p_hold, 'amount', capture_hold.amount,
        'description', capture_hold.description);
    BEGIN
        IF p_key IS NOT NULL THEN
            stored := agentmarket_private.credit_idempotency_claim(p_user, p_key, 'capture_hold', args);
            IF stored IS NOT NULL THEN
                RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state, stored);
            END IF;
            claimed := true;
        END IF;
        h := agentmarket_private.credit_lock_hold(p_hold);
        PERFORM agentmarket_private.credit_check_hold_active(h);
        IF capture_hold.amount > h.amount THEN
            RAISE EXCEPTION 'capture exceeds the hold' USING ERRCODE = '22023',
                DETAIL = pg_catalog.format('held %s, requested %s', h.amount, capture_hold.amount);
        END IF;
        UPDATE agentmarket_private.credit_holds ch
           SET status = 'captured', captured_amount = capture_hold.amount, resolved_at = now()
         WHERE ch.id = p_hold;
        r := agentmarket_private.credit_lot_take(p_user, capture_hold.amount, -h.amount,
                 COALESCE(capture_hold.description, h.description), h.session_id);
        IF claimed THEN
            PERFORM agentmarket_private.credit_idempotency_store(p_user, p_key, pg_catalog.to_jsonb(r));
        END IF;
    END;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket.capture_hold(uuid, integer, text, text) IS
    'Charges amount (0 up to the held amount) of an active hold, subscription credits first (session_deduct rows), and releases the rest; a hold resolves once (22023 otherwise).';

CREATE FUNCTION agentmarket.release_hold(hold_id uuid, idempotency_key text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_hold uuid := release_hold.hold_id;
    p_key text := release_hold.idempotency_key;
    p_user uuid;
    args jsonb;
    stored jsonb;
    claimed boolean := false;
    h agentmarket_private.credit_holds;
    r agentmarket.credit_state;
BEGIN
    IF p_hold IS NULL THEN
        RAISE EXCEPTION 'hold_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT ch.user_id INTO p_user FROM agentmarket_private.credit_holds ch WHERE ch.id = p_hold;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hold not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No hold has id %s.', p_hold);
    END IF;
    args := pg_catalog.jsonb_build_object('hold_id', p_hold);
    BEGIN
        IF p_key IS NOT NULL THEN
            stored := agentmarket_private.credit_idempotency_claim(p_user, p_key, 'release_hold', args);
            IF stored IS NOT NULL THEN
                RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state, stored);
            END IF;
            claimed := true;
        END IF;
        h := agentmarket_private.credit_lock_hold(p_hold);
        IF h.status <> 'active' THEN
            PERFORM agentmarket_private.credit_check_hold_active(h);
        END IF;
        -- Releasing a hold past its expiry is allowed: it only frees credits.
        UPDATE agentmarket_private.credit_holds ch SET status = 'released', resolved_at = now()
         WHERE ch.id = p_hold;
        r := agentmarket_private.credit_apply(p_user, 0, 0, -h.amount, 'session_deduct');
        IF claimed THEN
            PERFORM agentmarket_private.credit_idempotency_store(p_user, p_key, pg_catalog.to_jsonb(r));
        END IF;
    END;
    RETURN r;
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

