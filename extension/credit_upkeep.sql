-- credit_upkeep.sql: the ledger's proofs, the caller's own balance, the free trial, the
-- ledger's privileges and the retention of idempotency records (credits.sql).
------------------------------------------------------------------------------
-- Proofs and the caller's own balance
------------------------------------------------------------------------------
CREATE FUNCTION agentmarket.verify_ledger()
RETURNS TABLE (user_id uuid, credit_type text, problem text, recorded bigint, expected bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH ledger AS (
        SELECT t.user_id,
               sum(t.amount) FILTER (WHERE t.credit_type = 'subscription') AS subscription,
               sum(t.amount) FILTER (WHERE t.credit_type = 'topup') AS topup
          FROM agentmarket.credit_transactions t GROUP BY t.user_id),
    holds AS (
        SELECT h.user_id, sum(h.amount) AS held
          FROM agentmarket_private.credit_holds h WHERE h.status = 'active' GROUP BY h.user_id),
    pots AS (
        SELECT COALESCE(b.user_id, l.user_id) AS user_id,
               b.subscription_credits::bigint AS subscription, b.topup_credits::bigint AS topup,
               b.held_credits::bigint AS held,
               COALESCE(l.subscription, 0) AS ledger_subscription, COALESCE(l.topup, 0) AS ledger_topup
          FROM agentmarket.credit_balances b FULL JOIN ledger l ON l.user_id = b.user_id)
    SELECT p.user_id, 'subscription', 'balance differs from ledger', COALESCE(p.subscription, 0), p.ledger_subscription
      FROM pots p WHERE COALESCE(p.subscription, 0) <> p.ledger_subscription
    UNION ALL
    SELECT p.user_id, 'topup', 'balance differs from ledger', COALESCE(p.topup, 0), p.ledger_topup
      FROM pots p WHERE COALESCE(p.topup, 0) <> p.ledger_topup
    UNION ALL
    SELECT p.user_id, 'subscription', 'negative pot', p.subscription, 0 FROM pots p WHERE p.subscription < 0
    UNION ALL
    SELECT p.user_id, 'topup', 'negative pot', p.topup, 0 FROM pots p WHERE p.topup < 0
    UNION ALL
    SELECT COALESCE(p.user_id, h.user_id), NULL, 'held credits differ from active holds',
           COALESCE(p.held, 0), COALESCE(h.held, 0)
      FROM pots p FULL JOIN holds h ON h.user_id = p.user_id
     WHERE COALESCE(p.held, 0) <> COALESCE(h.held, 0)
    UNION ALL
    SELECT p.user_id, NULL, 'held credits exceed the pots', p.held, p.subscription + p.topup
      FROM pots p WHERE p.held > p.subscription + p.topup
    UNION ALL
    SELECT h.user_id, NULL, 'captured hold without its ledger rows', h.captured_amount,
           COALESCE((SELECT -sum(t.amount) FROM agentmarket.credit_transactions t
                      WHERE t.user_id = h.user_id AND t.type = 'session_deduct'
                        AND t.session_id IS NOT DISTINCT FROM h.session_id), 0)
      FROM agentmarket_private.credit_holds h
     WHERE h.status = 'captured' AND h.captured_amount > COALESCE((
               SELECT -sum(t.amount) FROM agentmarket.credit_transactions t
                WHERE t.user_id = h.user_id AND t.type = 'session_deduct'
                  AND t.session_id IS NOT DISTINCT FROM h.session_id), 0)
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION agentmarket.verify_ledger() IS
    'Every inconsistency of the ledger: a pot that differs from the sum of its transactions, a negative pot, held credits that differ from the active holds or exceed the pots, a captured hold whose charge is missing. Empty means healthy.';

CREATE FUNCTION agentmarket.my_balance()
RETURNS agentmarket.credit_state
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me uuid := agentmarket.current_user_id();
BEGIN
    IF me IS NULL THEN
        RAISE EXCEPTION 'not signed in' USING ERRCODE = '42501',
            DETAIL = 'my_balance() needs the caller''s user id (the sub claim of the JWT).';
    END IF;
    RETURN agentmarket_private.credit_state_of(me);
END
$$;
COMMENT ON FUNCTION agentmarket.my_balance() IS
    'The caller''s pots, held and available credits (zeros without a balance row); 42501 without a signed-in user. For authenticated.';

------------------------------------------------------------------------------
-- Free trial for new users
------------------------------------------------------------------------------
CREATE FUNCTION agentmarket_private.grant_free_trial() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    credits integer := COALESCE(agentmarket_private.setting('free_trial_credits')::integer, 0);
BEGIN
    -- Rows loaded with COPY (pg_restore, a plain dump, a bulk import) are
    -- existing accounts: their ledger, free trial included, comes with them.
    IF credits <= 0
       OR pg_catalog.current_query() OPERATOR(pg_catalog.~*) '^(\s|--[^\n]*\n)*copy\s' THEN
        RETURN NULL;
    END IF;
    -- Once per user (the unique index on free_trial rows is the backstop);
    -- a promotional lot, worth what the operator says gifts are worth.
    PERFORM agentmarket_private.credit_lock_balance(NEW.id);
    IF NOT EXISTS (SELECT FROM agentmarket.credit_transactions t
                    WHERE t.user_id = NEW.id AND t.type = 'free_trial') THEN
        PERFORM agentmarket_private.credit_lot_grant(NEW.id, 'subscription', credits, 'free_trial',
                    agentmarket_private.credit_promotional_value(credits), NULL, NULL, 'Free trial');
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.grant_free_trial() IS
    'Trigger: grants a new user free_trial_credits subscription credits once (nothing when the setting is 0, nor for rows loaded by COPY, such as a pg_restore).';
CREATE TRIGGER users_grant_free_trial AFTER INSERT ON agentmarket.users
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.grant_free_trial();

------------------------------------------------------------------------------
-- deduct_credits (C, credits.c)
------------------------------------------------------------------------------
CREATE FUNCTION agentmarket.deduct_credits(
    user_id uuid, amount integer, session_id uuid DEFAULT NULL,
    idempotency_key text DEFAULT NULL, description text DEFAULT NULL)
RETURNS agentmarket.credit_state
AS 'MODULE_PATHNAME', 'deduct_credits'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION agentmarket.deduct_credits(uuid, integer, uuid, text, text) IS
    'Takes amount credits, subscription pot first, in one round trip locking only the user''s balance row; one session_deduct row per pot touched; returns the new credit_state. PT402 (DETAIL "available N, required M") when fewer are available (held credits excluded); 22023 bad amount; P0002 unknown user or session.';

------------------------------------------------------------------------------
-- Privileges: service_role calls the ledger; authenticated reads its balance
------------------------------------------------------------------------------
GRANT EXECUTE ON FUNCTION agentmarket.grant_credits(uuid, integer, text, text, text, text, text),
    agentmarket.deduct_credits(uuid, integer, uuid, text, text),
    agentmarket.refresh_subscription_credits(uuid, integer, text, text, text),
    agentmarket.refund_credits(uuid, integer, uuid, text, text),
    agentmarket.reserve_credits(uuid, integer, uuid, interval, text, text),
    agentmarket.capture_hold(uuid, integer, text, text),
    agentmarket.release_hold(uuid, text),
    agentmarket.release_expired_holds(),
    agentmarket.verify_ledger() TO service_role;
GRANT EXECUTE ON FUNCTION agentmarket.my_balance() TO authenticated;
-- The row checks run with the privileges of whoever writes the tables: the
-- owner (through the functions above) or service_role, which may write them.
GRANT EXECUTE ON FUNCTION agentmarket_private.credit_transaction_shape_ok(text, text, integer),
    agentmarket_private.credit_pots_ok(integer, integer, integer) TO service_role;

------------------------------------------------------------------------------
-- Retention of idempotency records
------------------------------------------------------------------------------
-- Keys must outlive every retry that can carry them: Stripe retries a webhook
-- for up to 3 days, so the floor is a week.
INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('credit_idempotency_retention_days', 'integer', '90', 7, 3650, NULL,
   'Idempotency records of credit operations older than this many days are removed by agentmarket.prune_credit_idempotency(); a key reused after that acts anew.'),
  ('free_trial_credits', 'integer', '100', 0, 1000000, NULL,
   'Credits granted once to every new user.');
CREATE INDEX credit_idempotency_created ON agentmarket_private.credit_idempotency (created_at);

CREATE FUNCTION agentmarket.prune_credit_idempotency(max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket_private, pg_temp
AS $$
DECLARE
    removed integer;
BEGIN
    IF max_rows IS NULL OR max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = '22023';
    END IF;
    -- Oldest first, in batches, so a pg_cron run never holds many locks.
    DELETE FROM agentmarket_private.credit_idempotency c
     WHERE (c.user_id, c.idempotency_key) IN (
            SELECT o.user_id, o.idempotency_key FROM agentmarket_private.credit_idempotency o
             WHERE o.created_at < now() - make_interval(
                       days => agentmarket_private.setting('credit_idempotency_retention_days')::integer)
             ORDER BY o.created_at
             LIMIT max_rows
             FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;
COMMENT ON FUNCTION agentmarket.prune_credit_idempotency(integer) IS
    'For pg_cron: removes up to max_rows idempotency records older than credit_idempotency_retention_days (oldest first); returns how many.';
GRANT EXECUTE ON FUNCTION agentmarket.prune_credit_idempotency(integer) TO service_role;
-- Periodic (schedules.sql): job agentmarket.prune_credit_idempotency, setting schedule_prune_credit_idempotency.
SELECT agentmarket_private.declare_scheduled_task('prune_credit_idempotency', 'SELECT agentmarket.prune_credit_idempotency()', '23 4 * * *');
