-- spend.sql: spend control.  A user may cap what one session may charge and
-- what all their charges may take in a calendar month (UTC); every charge of
-- a session (start_session's per_session price, charge_task's per_task
-- price) goes through spend_charge(), which checks both caps and deducts (or,
-- for a per_session price, places the session's hold) in one transaction
-- while holding the user's spend row, so concurrent charges never overshoot a
-- cap.  A charge over a cap is refused with PT402 and a DETAIL naming the cap.
-- A hold counts in the month's spend from its start; when the session ends,
-- spend_settle_hold() captures it and gives back to the month what it
-- released.
--
-- Notifications for the platform to tell the user (an outbox: one row each,
-- plus NOTIFY agentmarket_notifications with the row's id):
--   low_balance        available credits fell below low_balance_credits
--   monthly_cap_near   the month's spend crossed spend_cap_warning_percent
--                      of the monthly cap
--   monthly_cap_reached the month's spend reached the cap
--   session_cap_near / session_cap_reached   the same for a session's cap
-- Each is emitted once per crossing: by the charge that crosses, computed
-- from the amounts before and after it (charges of one user are serialized).
-- A refused charge rolls back with everything in its transaction, so it
-- leaves no row: the refusal itself is the PT402 the caller gets.

-- A table of its own rather than a column: the sessions row type is what
-- clients get back from the session functions, and stays as it was.
CREATE TABLE agentmarket_private.session_caps (
  session_id UUID PRIMARY KEY REFERENCES agentmarket.sessions(id) ON DELETE CASCADE,
  credit_cap INTEGER NOT NULL CONSTRAINT session_caps_range CHECK (credit_cap BETWEEN 0 AND 100000000),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.session_caps IS
    'Most credits a session may charge in all, set by its user with agentmarket.set_session_cap().';
REVOKE ALL ON TABLE agentmarket_private.session_caps FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.session_caps', '');

CREATE TABLE agentmarket_private.user_spend (
  user_id UUID PRIMARY KEY REFERENCES agentmarket.users(id) ON DELETE CASCADE,
  monthly_cap INTEGER CONSTRAINT user_spend_cap_range CHECK (monthly_cap BETWEEN 0 AND 100000000),
  month DATE NOT NULL DEFAULT date_trunc('month', now() AT TIME ZONE 'UTC')::date,
  month_spent BIGINT NOT NULL DEFAULT 0 CONSTRAINT user_spend_spent_not_negative CHECK (month_spent >= 0),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.user_spend IS
    'Per user: the monthly spending cap (NULL: none) and the credits charged in the current UTC month.';
REVOKE ALL ON TABLE agentmarket_private.user_spend FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.user_spend', '');

CREATE TABLE agentmarket_private.notifications (
  id BIGSERIAL PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES agentmarket.users(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CONSTRAINT notifications_kind_check
    CHECK (kind IN ('low_balance', 'monthly_cap_near', 'monthly_cap_reached', 'session_cap_near', 'session_cap_reached')),
  session_id UUID,
  detail JSONB NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  sent_at TIMESTAMPTZ
);
CREATE INDEX notifications_unsent ON agentmarket_private.notifications (id) WHERE sent_at IS NULL;
CREATE INDEX notifications_user ON agentmarket_private.notifications (user_id, created_at);
COMMENT ON TABLE agentmarket_private.notifications IS
    'Outbox of spend notifications for the platform to deliver: low balance and cap crossings.';
REVOKE ALL ON TABLE agentmarket_private.notifications FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.notifications', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.notifications_id_seq', '');

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('low_balance_credits', 'integer', '20', 0, 100000000, NULL,
   'A charge that takes a user''s available credits below this emits a low_balance notification.'),
  ('spend_cap_warning_percent', 'integer', '80', 1, 100, NULL,
   'A charge that takes the month''s (or a session''s) spend past this percentage of its cap emits a *_cap_near notification.');

-- Append a notification and wake its reader.
CREATE FUNCTION agentmarket_private.notify_user(p_user uuid, p_kind text, p_session uuid, p_detail jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO agentmarket_private.notifications (user_id, kind, session_id, detail)
    VALUES (p_user, p_kind, p_session, p_detail) RETURNING id INTO new_id;
    PERFORM pg_catalog.pg_notify('agentmarket_notifications',
                                 pg_catalog.jsonb_build_object('id', new_id, 'kind', p_kind)::text);
END
$$;
COMMENT ON FUNCTION agentmarket_private.notify_user(uuid, text, uuid, jsonb) IS
    'Appends a notification row and sends NOTIFY agentmarket_notifications (delivered at commit).';

-- The user's spend row, locked, in the current month.
CREATE FUNCTION agentmarket_private.spend_lock(p_user uuid)
RETURNS agentmarket_private.user_spend
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r agentmarket_private.user_spend;
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
BEGIN
    INSERT INTO agentmarket_private.user_spend (user_id) VALUES (p_user) ON CONFLICT (user_id) DO NOTHING;
    SELECT * INTO r FROM agentmarket_private.user_spend x WHERE x.user_id OPERATOR(pg_catalog.=) p_user FOR UPDATE;
    IF r.month OPERATOR(pg_catalog.<>) this_month THEN
        UPDATE agentmarket_private.user_spend x SET month = this_month, month_spent = 0, updated_at = now()
         WHERE x.user_id OPERATOR(pg_catalog.=) p_user RETURNING * INTO r;
    END IF;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket_private.spend_lock(uuid) IS
    'Locks (creating it) the user''s spend row and starts a new month''s count when the UTC month changed.';

-- True when the amount goes from below the threshold to at or above it.
CREATE FUNCTION agentmarket_private.spend_crosses(p_before bigint, p_after bigint, p_cap integer, p_percent integer)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_cap IS NOT NULL AND p_cap > 0
       AND p_before * 100 < p_cap::bigint * p_percent AND p_after * 100 >= p_cap::bigint * p_percent
$$;
COMMENT ON FUNCTION agentmarket_private.spend_crosses(bigint, bigint, integer, integer) IS
    'Whether a spend from before to after crosses percent of cap.';

-- A session's charge: both caps checked and the credits deducted (or held,
-- p_hold) while the user's spend row is held; then the notifications the
-- charge crossed.  The caller holds the session row (start_session created
-- it, charge_task locked it), so s.total_credits_consumed is current.
CREATE FUNCTION agentmarket_private.spend_charge(
    p_user uuid, p_amount integer, p_session uuid, p_idempotency_key text, p_description text,
    p_hold boolean)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sp agentmarket_private.user_spend := agentmarket_private.spend_lock(p_user);
    s agentmarket.sessions;
    cap integer;
    st agentmarket.credit_state;
    warn integer := agentmarket_private.setting('spend_cap_warning_percent')::integer;
    low integer := agentmarket_private.setting('low_balance_credits')::integer;
BEGIN
    SELECT * INTO s FROM agentmarket.sessions x WHERE x.id OPERATOR(pg_catalog.=) p_session;
    SELECT c.credit_cap INTO cap FROM agentmarket_private.session_caps c WHERE c.session_id OPERATOR(pg_catalog.=) p_session;
    IF cap IS NOT NULL AND s.total_credits_consumed::bigint + p_amount > cap THEN
        RAISE EXCEPTION 'session spending cap reached'
            USING ERRCODE = 'PT402',
                  DETAIL = format('The session''s cap is %s credits; it has charged %s and this charge needs %s.',
                                  cap, s.total_credits_consumed, p_amount),
                  HINT = 'Raise the cap with agentmarket.set_session_cap().';
    END IF;
    IF sp.monthly_cap IS NOT NULL AND sp.month_spent + p_amount > sp.monthly_cap THEN
        RAISE EXCEPTION 'monthly spending cap reached'
            USING ERRCODE = 'PT402',
                  DETAIL = format('The monthly cap is %s credits; %s were charged in %s and this charge needs %s.',
                                  sp.monthly_cap, sp.month_spent, to_char(sp.month, 'YYYY-MM'), p_amount),
                  HINT = 'Raise the cap with agentmarket.set_monthly_spend_cap(), or wait for the next month.';
    END IF;
    IF p_hold THEN
        -- The session's hold lives until the session ends (end_session or
        -- end_idle_sessions, which ends it after session_max_minutes), with a
        -- day's grace in case the sweep is late: then it expires like any hold.
        PERFORM agentmarket_private.credit_execute('agentmarket_private.reserve_credits(uuid, jsonb)',
            p_user, p_idempotency_key,
            jsonb_build_object('amount', p_amount, 'session_id', p_session, 'expires_in', NULL,
                'description', p_description,
                'expires_at', now() + make_interval(mins => agentmarket_private.setting('session_max_minutes')::integer)
                              + interval '1 day'));
        st := agentmarket_private.credit_state_of(p_user);
    ELSE
        st := agentmarket.deduct_credits(p_user, p_amount, p_session, p_idempotency_key, p_description);
    END IF;
    UPDATE agentmarket_private.user_spend x SET month_spent = x.month_spent + p_amount, updated_at = now()
     WHERE x.user_id OPERATOR(pg_catalog.=) p_user;

    IF st.available_credits < low AND st.available_credits + p_amount >= low THEN
        PERFORM agentmarket_private.notify_user(p_user, 'low_balance', p_session,
            jsonb_build_object('available_credits', st.available_credits, 'threshold', low));
    END IF;
    IF agentmarket_private.spend_crosses(sp.month_spent, sp.month_spent + p_amount, sp.monthly_cap, 100) THEN
        PERFORM agentmarket_private.notify_user(p_user, 'monthly_cap_reached', NULL,
            jsonb_build_object('month', sp.month, 'spent', sp.month_spent + p_amount, 'cap', sp.monthly_cap));
    ELSIF agentmarket_private.spend_crosses(sp.month_spent, sp.month_spent + p_amount, sp.monthly_cap, warn) THEN
        PERFORM agentmarket_private.notify_user(p_user, 'monthly_cap_near', NULL,
            jsonb_build_object('month', sp.month, 'spent', sp.month_spent + p_amount, 'cap', sp.monthly_cap));
    END IF;
    IF agentmarket_private.spend_crosses(s.total_credits_consumed, s.total_credits_consumed::bigint + p_amount, cap, 100) THEN
        PERFORM agentmarket_private.notify_user(p_user, 'session_cap_reached', p_session,
            jsonb_build_object('spent', s.total_credits_consumed + p_amount, 'cap', cap));
    ELSIF agentmarket_private.spend_crosses(s.total_credits_consumed, s.total_credits_consumed::bigint + p_amount, cap, warn) THEN
        PERFORM agentmarket_private.notify_user(p_user, 'session_cap_near', p_session,
            jsonb_build_object('spent', s.total_credits_consumed + p_amount, 'cap', cap));
    END IF;
    RETURN st;
END
$$;
COMMENT ON FUNCTION agentmarket_private.spend_charge(uuid, integer, uuid, text, text, boolean) IS
    'A session''s charge: refuses with PT402 (DETAIL naming the cap) when it would pass the session''s or the month''s cap, else deducts (deduct_credits) or, with p_hold, places the session''s hold (reserve_credits'' body, lasting session_max_minutes and a day), counts it in the month and emits the notifications it crossed.';

-- The end of a session's hold: captured whole when the agent served the
-- session, else released; the month's spend gives back what was released
-- (when the month is still the one the hold was counted in).  Locks the
-- user's spend row before the balance row, as spend_charge does.  Returns the
-- credits released (0 without an active hold: a session paid at its start
-- before holds, or a hold released by hand, which waives the price).
CREATE FUNCTION agentmarket_private.spend_settle_hold(s agentmarket.sessions, p_served boolean)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sp agentmarket_private.user_spend;
    hold_id uuid;
    h agentmarket_private.credit_holds;
    released integer;
BEGIN
    SELECT ch.id INTO hold_id FROM agentmarket_private.credit_holds ch
     WHERE ch.session_id OPERATOR(pg_catalog.=) s.id AND ch.status OPERATOR(pg_catalog.=) 'active'
     ORDER BY ch.created_at LIMIT 1;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    sp := agentmarket_private.spend_lock(s.user_id);
    h := agentmarket_private.credit_lock_hold(hold_id);
    IF h.status OPERATOR(pg_catalog.<>) 'active' THEN
        RETURN 0;
    END IF;
    released := CASE WHEN p_served THEN 0 ELSE h.amount END;
    PERFORM agentmarket_private.credit_hold_capture(h, h.amount OPERATOR(pg_catalog.-) released, NULL);
    IF released OPERATOR(pg_catalog.>) 0
       AND sp.month OPERATOR(pg_catalog.=) date_trunc('month', h.created_at AT TIME ZONE 'UTC')::date THEN
        UPDATE agentmarket_private.user_spend x
           SET month_spent = GREATEST(x.month_spent OPERATOR(pg_catalog.-) released, 0), updated_at = now()
         WHERE x.user_id OPERATOR(pg_catalog.=) s.user_id;
    END IF;
    RETURN released;
END
$$;
COMMENT ON FUNCTION agentmarket_private.spend_settle_hold(agentmarket.sessions, boolean) IS
    'Resolves the active hold of an ending session: captures it whole when p_served (the agent served the session), else releases it and gives the month''s spend back what it counted; returns the credits released (0 without an active hold).';

CREATE FUNCTION agentmarket.set_session_cap(session_id uuid, credits integer)
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    s agentmarket.sessions := agentmarket_private.session_for_update(set_session_cap.session_id);
BEGIN
    PERFORM agentmarket_private.session_check_open(s);
    IF set_session_cap.credits IS NOT NULL AND set_session_cap.credits NOT BETWEEN 0 AND 100000000 THEN
        RAISE EXCEPTION 'a session cap must be between 0 and 100000000 credits' USING ERRCODE = '22023';
    END IF;
    IF set_session_cap.credits IS NULL THEN
        DELETE FROM agentmarket_private.session_caps c WHERE c.session_id OPERATOR(pg_catalog.=) s.id;
    ELSE
        INSERT INTO agentmarket_private.session_caps AS c (session_id, credit_cap) VALUES (s.id, set_session_cap.credits)
        ON CONFLICT ON CONSTRAINT session_caps_pkey DO UPDATE SET credit_cap = excluded.credit_cap, updated_at = now();
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket.set_session_cap(uuid, integer) IS
    'The session''s user (or the platform) caps what an open session may charge in all (NULL: no cap). A cap below what it has charged stops further charges. 22023 for a bad cap or an ended session, P0002 for an unknown or foreign session.';

CREATE FUNCTION agentmarket.set_monthly_spend_cap(credits integer, user_id uuid DEFAULT NULL)
RETURNS TABLE (month date, month_spent bigint, monthly_cap integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid uuid := agentmarket.current_user_id();
    target uuid := COALESCE(set_monthly_spend_cap.user_id, uid);
    sp agentmarket_private.user_spend;
BEGIN
    IF target IS NULL OR NOT (agentmarket_private.caller_is_service() OR target OPERATOR(pg_catalog.=) uid) THEN
        RAISE EXCEPTION 'only the user or the platform sets a user''s spending cap' USING ERRCODE = '42501';
    END IF;
    IF set_monthly_spend_cap.credits IS NOT NULL AND set_monthly_spend_cap.credits NOT BETWEEN 0 AND 100000000 THEN
        RAISE EXCEPTION 'a monthly cap must be between 0 and 100000000 credits' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT FROM agentmarket.users u WHERE u.id OPERATOR(pg_catalog.=) target) THEN
        RAISE EXCEPTION 'user % not found', target USING ERRCODE = 'P0002';
    END IF;
    sp := agentmarket_private.spend_lock(target);
    UPDATE agentmarket_private.user_spend x SET monthly_cap = set_monthly_spend_cap.credits, updated_at = now()
     WHERE x.user_id OPERATOR(pg_catalog.=) target RETURNING * INTO sp;
    RETURN QUERY SELECT sp.month, sp.month_spent, sp.monthly_cap;
END
$$;
COMMENT ON FUNCTION agentmarket.set_monthly_spend_cap(integer, uuid) IS
    'Sets the caller''s cap on credits charged per UTC month (NULL: no cap); the platform may set any user''s. Returns the month, what was charged in it and the cap. 22023 for a bad cap, 42501 for another user''s.';

CREATE FUNCTION agentmarket.my_spend()
RETURNS TABLE (month date, month_spent bigint, monthly_cap integer)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date,
           COALESCE((SELECT x.month_spent FROM agentmarket_private.user_spend x
                      WHERE x.user_id OPERATOR(pg_catalog.=) agentmarket.current_user_id()
                        AND x.month OPERATOR(pg_catalog.=) date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0),
           (SELECT x.monthly_cap FROM agentmarket_private.user_spend x
             WHERE x.user_id OPERATOR(pg_catalog.=) agentmarket.current_user_id())
     WHERE agentmarket.current_user_id() IS NOT NULL
$$;
COMMENT ON FUNCTION agentmarket.my_spend() IS
    'The caller''s credits charged this UTC month and monthly cap.';

-- The platform's reader of the outbox.
CREATE FUNCTION agentmarket.claim_notifications(max_rows integer DEFAULT 100)
RETURNS TABLE (id bigint, user_id uuid, kind text, session_id uuid, detail jsonb, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform reads notifications' USING ERRCODE = '42501';
    END IF;
    IF claim_notifications.max_rows IS NULL OR claim_notifications.max_rows NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 10000' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    UPDATE agentmarket_private.notifications n SET sent_at = now()
     WHERE n.id OPERATOR(pg_catalog.=) ANY (
           ARRAY(SELECT q.id FROM agentmarket_private.notifications q WHERE q.sent_at IS NULL
                  ORDER BY q.id LIMIT claim_notifications.max_rows FOR UPDATE SKIP LOCKED))
    RETURNING n.id, n.user_id, n.kind, n.session_id, n.detail, n.created_at;
END
$$;
COMMENT ON FUNCTION agentmarket.claim_notifications(integer) IS
    'Platform only: takes up to max_rows unsent notifications, oldest first, marks them sent and returns them (concurrent readers get different rows; a rolled-back read leaves them unsent).';

GRANT EXECUTE ON FUNCTION agentmarket.set_session_cap(uuid, integer),
    agentmarket.set_monthly_spend_cap(integer, uuid),
    agentmarket.my_spend() TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION agentmarket.claim_notifications(integer) TO service_role;
