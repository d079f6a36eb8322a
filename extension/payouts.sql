-- payouts.sql: creators are paid through Stripe Connect.
--
--   start_creator_onboarding()  a stripe.create_account job (Express) when the
--                               creator has no account; its handler (or the
--                               call itself, when the account exists) enqueues
--                               a stripe.create_account_link job
--   my_onboarding_link()        the creator's latest onboarding link
--   run_payouts()               claims every creator's payable earnings into
--                               one payout and enqueues its stripe.create_transfer
--   the transfer's handlers     paid (earnings paid out) or failed (released)
--
-- Money stays exact: a payout's amount_usd is the exact sum of the earnings it
-- claimed; Stripe moves whole cents, so the sub-cent remainder of a paid payout
-- is carried into the creator's next payout (carried_in_usd).  For every
-- creator: sum of paid transfers + carry_usd() = sum of paid-out earnings.

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('connect_refresh_url', 'text', 'https://agentmarket.example/creator/payouts/refresh', NULL, NULL,
   '^https://[^[:space:]]+$',
   'Where Stripe sends a creator whose onboarding link expired (https).'),
  ('connect_return_url', 'text', 'https://agentmarket.example/creator/payouts/return', NULL, NULL,
   '^https://[^[:space:]]+$',
   'Where Stripe sends a creator after onboarding (https).'),
  ('payout_minimum_usd', 'numeric', '25.00', 0, 1000000, NULL,
   'Unpaid earnings below this amount (USD) wait for the next payout run.'),
  ('payout_holding_days', 'integer', '14', 0, 365, NULL,
   'Earnings become payable this many days after the session that produced them.');

------------------------------------------------------------------------------
-- Payouts
------------------------------------------------------------------------------

CREATE TABLE agentmarket.payouts (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  creator_id UUID NOT NULL REFERENCES agentmarket.users(id),
  stripe_connect_account_id TEXT NOT NULL CONSTRAINT payouts_account_format CHECK (stripe_connect_account_id ~ '^acct_'),
  -- Exact sum of the creator_amount of the earnings this payout claimed.
  amount_usd NUMERIC(12,4) NOT NULL CONSTRAINT payouts_amount_positive CHECK (amount_usd > 0),
  -- The sub-cent remainders of the creator's earlier paid payouts, added here.
  -- Whole reversals move it either way (webhooks.sql): a reversed payout's
  -- remainder is no longer carried, and what it carried in is owed again, so
  -- it can pass a cent or go below zero; what the payout moves stays whole.
  carried_in_usd NUMERIC(12,4) NOT NULL DEFAULT 0
    CONSTRAINT payouts_carried_in_range CHECK (amount_usd + carried_in_usd >= 0.01),
  -- Whole cents of amount_usd + carried_in_usd: what the transfer moves.
  transfer_cents BIGINT NOT NULL CONSTRAINT payouts_transfer_positive CHECK (transfer_cents > 0),
  -- What is left below a cent, carried to the next payout once this one is paid.
  remainder_usd NUMERIC(12,4) GENERATED ALWAYS AS (amount_usd + carried_in_usd - transfer_cents / 100.0) STORED,
  status TEXT NOT NULL DEFAULT 'pending' CONSTRAINT payouts_status_check CHECK (status IN ('pending', 'paid', 'failed')),
  stripe_transfer_id TEXT CONSTRAINT payouts_transfer_id_format CHECK (stripe_transfer_id ~ '^tr_'),
  failure_reason TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  paid_at TIMESTAMPTZ,
  failed_at TIMESTAMPTZ,
  CONSTRAINT payouts_whole_cents CHECK (transfer_cents = floor((amount_usd + carried_in_usd) * 100)),
  CONSTRAINT payouts_paid_consistent CHECK ((status = 'paid') = (paid_at IS NOT NULL AND stripe_transfer_id IS NOT NULL)),
  CONSTRAINT payouts_failed_consistent CHECK ((status = 'failed') = (failed_at IS NOT NULL))
);
COMMENT ON TABLE agentmarket.payouts IS
    'One Stripe Connect transfer to a creator: the exact sum of the earnings it claimed, the whole cents transferred and the sub-cent remainder carried to the next payout.';
COMMENT ON COLUMN agentmarket.payouts.remainder_usd IS
    'amount_usd + carried_in_usd - transfer_cents/100, in [0, 0.01): carried into the creator''s next payout once this one is paid.';
CREATE INDEX payouts_creator ON agentmarket.payouts (creator_id, created_at);
-- At most one payout in flight per creator.
CREATE UNIQUE INDEX payouts_one_pending ON agentmarket.payouts (creator_id) WHERE status = 'pending';
CREATE TRIGGER payouts_touch_updated_at BEFORE UPDATE ON agentmarket.payouts
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.touch_updated_at();
ALTER TABLE agentmarket.payouts ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE agentmarket.payouts FROM PUBLIC, anon, authenticated, service_role, agentmarket_analyst;
GRANT ALL ON TABLE agentmarket.payouts TO service_role;
GRANT SELECT ON TABLE agentmarket.payouts TO authenticated;
CREATE POLICY service_role_all ON agentmarket.payouts TO service_role USING (true) WITH CHECK (true);
CREATE POLICY payouts_select_own ON agentmarket.payouts FOR SELECT TO authenticated
    USING (creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
           OR (SELECT agentmarket.current_user_is_admin()));
SELECT pg_catalog.pg_extension_config_dump('agentmarket.payouts', '');

ALTER TABLE agentmarket.creator_earnings ADD COLUMN payout_id UUID
    CONSTRAINT creator_earnings_payout_fkey REFERENCES agentmarket.payouts(id);
COMMENT ON COLUMN agentmarket.creator_earnings.payout_id IS
    'The payout that claimed this row (set by run_payouts, cleared when that payout fails); a row is in one payout at a time.';
CREATE INDEX creator_earnings_payout ON agentmarket.creator_earnings (payout_id) WHERE payout_id IS NOT NULL;
CREATE INDEX creator_earnings_unclaimed ON agentmarket.creator_earnings (creator_id, created_at)
    WHERE payout_id IS NULL AND NOT paid_out;

-- A claimed row is money on its way to the creator: deleting it (e.g. the
-- clawback of refund_session) leaves it in place.  The dead handler of the
-- transfer deletes the claimed rows of refunded sessions once it releases them.
CREATE FUNCTION agentmarket_private.keep_claimed_earnings()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.keep_claimed_earnings() IS
    'BEFORE DELETE trigger on creator_earnings: a row claimed by a payout (payout_id set) is not deleted.';
CREATE TRIGGER creator_earnings_keep_claimed BEFORE DELETE ON agentmarket.creator_earnings
    FOR EACH ROW WHEN (OLD.payout_id IS NOT NULL) EXECUTE FUNCTION agentmarket_private.keep_claimed_earnings();

------------------------------------------------------------------------------
-- Onboarding
------------------------------------------------------------------------------

-- The account link job for a creator's account.  Links expire within minutes,
-- so every request makes a new one.
CREATE FUNCTION agentmarket_private.enqueue_account_link(p_user_id uuid, p_account text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN agentmarket_private.enqueue_stripe_job('stripe.create_account_link',
        pg_catalog.jsonb_build_object(
            'account', p_account, 'type', 'account_onboarding',
            'refresh_url', agentmarket_private.setting('connect_refresh_url'),
            'return_url', agentmarket_private.setting('connect_return_url')),
        'account_link:' || p_user_id::text || ':' || pg_catalog.gen_random_uuid()::text,
        pg_catalog.jsonb_build_object('user_id', p_user_id));
END
$$;
COMMENT ON FUNCTION agentmarket_private.enqueue_account_link(uuid, text) IS
    'Enqueues a stripe.create_account_link (account_onboarding, refresh/return URLs from the connect_* settings) for the user''s account.';

CREATE FUNCTION agentmarket.start_creator_onboarding()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid uuid := agentmarket.current_user_id();
    u agentmarket.users;
    pending bigint;
BEGIN
    -- The user row is locked: two calls at once make one account.
    SELECT * INTO u FROM agentmarket.users x WHERE x.id OPERATOR(pg_catalog.=) uid FOR UPDATE;
    IF uid IS NULL OR NOT FOUND OR u.role OPERATOR(pg_catalog.<>) 'creator' THEN
        RAISE EXCEPTION 'only creators are paid out' USING ERRCODE = '42501',
            DETAIL = 'Onboarding to payouts needs a signed-in user whose role is creator.';
    END IF;
    IF u.stripe_connect_account_id IS NOT NULL THEN
        -- A link still being made is returned again (one call to Stripe at a time).
        SELECT j.id INTO pending FROM agentmarket_private.jobs j
         WHERE j.kind OPERATOR(pg_catalog.=) 'stripe.create_account_link'
           AND j.payload OPERATOR(pg_catalog.->>) 'user_id' OPERATOR(pg_catalog.=) uid::text
           AND j.status IN ('queued', 'running')
         ORDER BY j.id DESC LIMIT 1;
        IF pending IS NOT NULL THEN
            RETURN pending;
        END IF;
        RETURN agentmarket_private.enqueue_account_link(uid, u.stripe_connect_account_id);
    END IF;
    -- The account is being made: its handler enqueues the link.
    SELECT j.id INTO pending FROM agentmarket_private.jobs j
     WHERE j.kind OPERATOR(pg_catalog.=) 'stripe.create_account'
       AND j.payload OPERATOR(pg_catalog.->>) 'user_id' OPERATOR(pg_catalog.=) uid::text
       AND j.status IN ('queued', 'running')
     ORDER BY j.id DESC LIMIT 1;
    IF pending IS NOT NULL THEN
        RETURN pending;
    END IF;
    RETURN agentmarket_private.enqueue_stripe_job('stripe.create_account',
        pg_catalog.jsonb_build_object(
            -- Controller properties, not the deprecated type=express: the
            -- platform pays Stripe's fees and bears losses, Stripe collects
            -- the requirements, the creator gets the Express dashboard.
            'controller', pg_catalog.jsonb_build_object(
                'fees', pg_catalog.jsonb_build_object('payer', 'application'),
                'losses', pg_catalog.jsonb_build_object('payments', 'application'),
                'requirement_collection', 'stripe',
                'stripe_dashboard', pg_catalog.jsonb_build_object('type', 'express')),
            'email', u.email,
            'capabilities', pg_catalog.jsonb_build_object('transfers', pg_catalog.jsonb_build_object('requested', true)),
            'metadata', pg_catalog.jsonb_build_object('user_id', uid)),
        'connect_account:' || uid::text || ':' || pg_catalog.gen_random_uuid()::text,
        pg_catalog.jsonb_build_object('user_id', uid, 'onboarding', true));
END
$$;
COMMENT ON FUNCTION agentmarket.start_creator_onboarding() IS
    'Creators: starts Stripe Connect onboarding; enqueues stripe.create_account (Express) when the creator has no account (its handler then enqueues the onboarding link), else a stripe.create_account_link; returns the job id. 42501 for anyone but a creator.';
GRANT EXECUTE ON FUNCTION agentmarket.start_creator_onboarding() TO authenticated;

-- stripe.create_account succeeded: the creator's Connect account id.
CREATE FUNCTION agentmarket_private.finish_stripe_account(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (p_job).payload ? 'user_id' AND p_result OPERATOR(pg_catalog.->>) 'id' LIKE 'acct\_%' THEN
        UPDATE agentmarket.users u SET stripe_connect_account_id = p_result OPERATOR(pg_catalog.->>) 'id'
         WHERE u.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'user_id')::uuid
           AND u.stripe_connect_account_id IS NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_stripe_account(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_account: sets users.stripe_connect_account_id of payload.user_id when it has none.';

-- stripe.create_account succeeded: the account id, then the onboarding link.
CREATE FUNCTION agentmarket_private.finish_connect_account(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    acct text;
BEGIN
    PERFORM agentmarket_private.finish_stripe_account(p_job, p_result);
    IF COALESCE(((p_job).payload OPERATOR(pg_catalog.->>) 'onboarding')::boolean, false) THEN
        SELECT u.stripe_connect_account_id INTO acct FROM agentmarket.users u
         WHERE u.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'user_id')::uuid;
        IF acct IS NULL THEN
            RAISE EXCEPTION 'account result of job % has no account id', (p_job).id
                USING ERRCODE = '22023', DETAIL = 'The result must be the created connected account.';
        END IF;
        PERFORM agentmarket_private.enqueue_account_link(((p_job).payload OPERATOR(pg_catalog.->>) 'user_id')::uuid, acct);
    END IF;
    -- An account.updated that came before this answer waited for the account.
    PERFORM agentmarket_private.webhook_apply_deferred(ARRAY[p_result OPERATOR(pg_catalog.->>) 'id']);
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_connect_account(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_account: sets users.stripe_connect_account_id (when unset); for onboarding jobs, enqueues the account link job.';

-- The onboarding job kinds, each with its handler (queue.sql).
INSERT INTO agentmarket_private.job_kinds
    (kind, provider, endpoint, request_function, instance_status, serialize_on, handler, dead_handler, max_attempts, description) VALUES
  ('stripe.create_account', 'stripe', '/v1/accounts', 'agentmarket_private.stripe_request(agentmarket_private.jobs)', NULL, NULL,
   'agentmarket_private.finish_connect_account(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create an Express connected account for a creator; sets users.stripe_connect_account_id and, for onboarding, enqueues the account link.'),
  ('stripe.create_account_link', 'stripe', '/v1/account_links', 'agentmarket_private.stripe_request(agentmarket_private.jobs)', NULL, NULL,
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create an onboarding link for a creator''s connected account.');

CREATE FUNCTION agentmarket.my_onboarding_link(
    OUT status text, OUT stripe_connect_account_id text, OUT url text, OUT expires_at timestamptz, OUT error text)
RETURNS record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid uuid := agentmarket_private.require_caller();
    j agentmarket_private.jobs;
BEGIN
    SELECT u.stripe_connect_account_id INTO stripe_connect_account_id
      FROM agentmarket.users u WHERE u.id OPERATOR(pg_catalog.=) uid;
    -- The latest onboarding job of either kind says where onboarding is.
    SELECT * INTO j FROM agentmarket_private.jobs x
     WHERE x.kind IN ('stripe.create_account', 'stripe.create_account_link')
       AND x.payload OPERATOR(pg_catalog.->>) 'user_id' OPERATOR(pg_catalog.=) uid::text
     ORDER BY x.id DESC LIMIT 1;
    IF NOT FOUND THEN
        status := 'none';
    ELSIF j.status OPERATOR(pg_catalog.=) 'dead' THEN
        status := 'failed';
        error := j.last_error;
    ELSIF j.kind OPERATOR(pg_catalog.=) 'stripe.create_account' OR j.status OPERATOR(pg_catalog.<>) 'succeeded' THEN
        status := 'pending';
    ELSE
        url := j.result OPERATOR(pg_catalog.->>) 'url';
        IF pg_catalog.jsonb_typeof(j.result OPERATOR(pg_catalog.->) 'expires_at') OPERATOR(pg_catalog.=) 'number' THEN
            expires_at := pg_catalog.to_timestamp((j.result OPERATOR(pg_catalog.->>) 'expires_at')::double precision);
        END IF;
        status := CASE WHEN expires_at OPERATOR(pg_catalog.<) pg_catalog.now() THEN 'expired' ELSE 'ready' END;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket.my_onboarding_link() IS
    'The caller''s Stripe Connect onboarding: status none, pending, ready (url to open), expired (call start_creator_onboarding again) or failed (error), with the account id once it exists.';
GRANT EXECUTE ON FUNCTION agentmarket.my_onboarding_link() TO authenticated;

------------------------------------------------------------------------------
-- Payout runs
------------------------------------------------------------------------------

-- The sub-cent remainder a creator's next payout adds: remainders of paid
-- payouts not yet carried into a pending or paid one.
CREATE FUNCTION agentmarket.payout_carry_usd(creator_id uuid)
RETURNS numeric
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(pg_catalog.sum(p.remainder_usd) FILTER (WHERE p.status OPERATOR(pg_catalog.=) 'paid'), 0)
         OPERATOR(pg_catalog.-) COALESCE(pg_catalog.sum(p.carried_in_usd) FILTER (WHERE p.status IN ('paid', 'pending')), 0)
      FROM agentmarket.payouts p
     WHERE p.creator_id OPERATOR(pg_catalog.=) payout_carry_usd.creator_id
$$;
COMMENT ON FUNCTION agentmarket.payout_carry_usd(uuid) IS
    'The creator''s sub-cent remainders (USD) not transferred yet: the next payout adds them. Below 0.01 but for whole transfer reversals, which release what the reversed payout carried in (more) or take back its remainder that a later payout carried (less, even below zero). Paid transfers + this = paid-out earnings.';
GRANT EXECUTE ON FUNCTION agentmarket.payout_carry_usd(uuid) TO service_role;

CREATE FUNCTION agentmarket.run_payouts()
RETURNS SETOF agentmarket.payouts
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cutoff timestamptz := pg_catalog.now() OPERATOR(pg_catalog.-)
        pg_catalog.make_interval(days => agentmarket_private.setting('payout_holding_days')::integer);
    minimum numeric := agentmarket_private.setting('payout_minimum_usd')::numeric;
    c record;
    ids uuid[];
    clawback_ids uuid[];
    reversal_ids bigint[];
    total numeric;
    carry numeric;
    p agentmarket.payouts;
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform runs payouts' USING ERRCODE = '42501';
    END IF;
    FOR c IN SELECT u.id, u.stripe_connect_account_id AS acct FROM agentmarket.users u
              WHERE u.stripe_connect_account_id IS NOT NULL
                -- Payable accounts only (account.updated, webhooks.sql): the
                -- others stay owed, with no transfer that would die.
                AND EXISTS (SELECT FROM agentmarket_private.connect_accounts ca
                             WHERE ca.account_id OPERATOR(pg_catalog.=) u.stripe_connect_account_id AND ca.payable)
                AND (EXISTS (SELECT FROM agentmarket.creator_earnings e
                              WHERE e.creator_id OPERATOR(pg_catalog.=) u.id AND e.payout_id IS NULL AND NOT e.paid_out
                                AND e.created_at OPERATOR(pg_catalog.<=) cutoff)
                     -- Partial transfer reversals are owed again (lifecycle.sql).
                     OR EXISTS (SELECT FROM agentmarket_private.payout_reversals v
                                 WHERE v.creator_id OPERATOR(pg_catalog.=) u.id AND v.netted_payout_id IS NULL))
              ORDER BY u.id
    LOOP
        -- One run per creator at a time; later statements see what an
        -- earlier run committed (payouts, claims, carries).
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('agentmarket.payouts'), pg_catalog.hashtext(c.id::text));
        IF EXISTS (SELECT FROM agentmarket.payouts x
                    WHERE x.creator_id OPERATOR(pg_catalog.=) c.id AND x.status OPERATOR(pg_catalog.=) 'pending') THEN
            CONTINUE;   -- the carry of a payout in flight is not known yet
        END IF;
        SELECT pg_catalog.array_agg(s.id ORDER BY s.id) INTO ids
          FROM (SELECT e.id FROM agentmarket.creator_earnings e
                 WHERE e.creator_id OPERATOR(pg_catalog.=) c.id AND e.payout_id IS NULL AND NOT e.paid_out
                   AND e.created_at OPERATOR(pg_catalog.<=) cutoff
                 ORDER BY e.id
                 FOR UPDATE) s;
        -- Clawbacks of earnings already paid are netted here (reconcile.sql),
        -- and partial reversals of paid transfers added (lifecycle.sql): the
        -- rows are locked and named, so what is summed is what is claimed.
        SELECT pg_catalog.array_agg(s.id) INTO clawback_ids
          FROM (SELECT k.id FROM agentmarket_private.creator_clawbacks k
                 WHERE k.creator_id OPERATOR(pg_catalog.=) c.id AND k.payout_id IS NULL FOR UPDATE) s;
        SELECT pg_catalog.array_agg(s.id) INTO reversal_ids
          FROM (SELECT v.id FROM agentmarket_private.payout_reversals v
                 WHERE v.creator_id OPERATOR(pg_catalog.=) c.id AND v.netted_payout_id IS NULL FOR UPDATE) s;
        SELECT COALESCE(pg_catalog.sum(e.creator_amount), 0) OPERATOR(pg_catalog.-) COALESCE((
                   SELECT pg_catalog.sum(k.creator_amount) FROM agentmarket_private.creator_clawbacks k
                    WHERE k.id OPERATOR(pg_catalog.=) ANY (clawback_ids)), 0)
               OPERATOR(pg_catalog.+) COALESCE((
                   SELECT pg_catalog.sum(v.amount_usd) FROM agentmarket_private.payout_reversals v
                    WHERE v.id OPERATOR(pg_catalog.=) ANY (reversal_ids)), 0)
          INTO total FROM agentmarket.creator_earnings e
         WHERE e.id OPERATOR(pg_catalog.=) ANY (ids);
        carry := agentmarket.payout_carry_usd(c.id);
        IF total OPERATOR(pg_catalog.<) minimum OR total OPERATOR(pg_catalog.<=) 0
           OR pg_catalog.floor((total OPERATOR(pg_catalog.+) carry) OPERATOR(pg_catalog.*) 100) OPERATOR(pg_catalog.<) 1 THEN
            CONTINUE;
        END IF;
        INSERT INTO agentmarket.payouts (creator_id, stripe_connect_account_id, amount_usd, carried_in_usd, transfer_cents)
        VALUES (c.id, c.acct, total, carry,
                pg_catalog.floor((total OPERATOR(pg_catalog.+) carry) OPERATOR(pg_catalog.*) 100)::bigint)
        RETURNING * INTO p;
        UPDATE agentmarket.creator_earnings e SET payout_id = p.id WHERE e.id OPERATOR(pg_catalog.=) ANY (ids);
        UPDATE agentmarket_private.creator_clawbacks k SET payout_id = p.id
         WHERE k.id OPERATOR(pg_catalog.=) ANY (clawback_ids);
        UPDATE agentmarket_private.payout_reversals v SET netted_payout_id = p.id
         WHERE v.id OPERATOR(pg_catalog.=) ANY (reversal_ids);
        PERFORM agentmarket_private.enqueue_stripe_job('stripe.create_transfer',
            pg_catalog.jsonb_build_object(
                'amount', p.transfer_cents, 'currency', 'usd', 'destination', p.stripe_connect_account_id,
                'transfer_group', 'payout:' || p.id::text,
                'metadata', pg_catalog.jsonb_build_object('payout_id', p.id, 'creator_id', c.id)),
            'transfer:' || p.id::text,
            pg_catalog.jsonb_build_object('payout_id', p.id));
        RETURN NEXT p;
    END LOOP;
END
$$;
COMMENT ON FUNCTION agentmarket.run_payouts() IS
    'service_role / pg_cron: for every creator with a payable Connect account and no payout in flight, claims the unpaid earnings older than payout_holding_days (less unsettled clawbacks, plus partial transfer reversals owed again) when they add up to payout_minimum_usd, makes one pending payout (their exact sum plus the carried remainder, whole cents transferred) and enqueues its stripe.create_transfer (Idempotency-Key transfer:<payout id>); returns the payouts made. 42501 for anyone else.';
GRANT EXECUTE ON FUNCTION agentmarket.run_payouts() TO service_role;
-- Periodic (schedules.sql): job agentmarket.run_payouts, setting schedule_run_payouts.
SELECT agentmarket_private.declare_scheduled_task('run_payouts', 'SELECT agentmarket.run_payouts()', '0 6 * * 1');

-- stripe.create_transfer succeeded: the payout and its earnings are paid.
CREATE FUNCTION agentmarket_private.finish_payout_transfer(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tr text := p_result OPERATOR(pg_catalog.->>) 'id';
    p agentmarket.payouts;
BEGIN
    -- Transfers enqueued by hand (no payout) only keep their result on the job.
    IF NOT (p_job).payload ? 'payout_id' THEN
        RETURN;
    END IF;
    IF tr IS NULL OR tr !~ '^tr_[A-Za-z0-9_]+$' THEN
        RAISE EXCEPTION 'transfer result of job % has no transfer id', (p_job).id
            USING ERRCODE = '22023', DETAIL = 'The result must be the created transfer.';
    END IF;
    SELECT * INTO p FROM agentmarket.payouts x
     WHERE x.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'payout_id')::uuid
     FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payout % does not exist', (p_job).payload OPERATOR(pg_catalog.->>) 'payout_id' USING ERRCODE = 'P0002';
    END IF;
    IF p.status OPERATOR(pg_catalog.=) 'paid' AND p.stripe_transfer_id OPERATOR(pg_catalog.=) tr THEN
        RETURN;
    END IF;
    IF p.status OPERATOR(pg_catalog.<>) 'pending' THEN
        RAISE EXCEPTION 'transfer % arrived for a payout that is %', tr, p.status
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('Payout %s was already settled; its earnings may be in another payout.', p.id),
                  HINT = 'Reverse the transfer in Stripe or reconcile by hand; do not retry dead transfer jobs.';
    END IF;
    UPDATE agentmarket.payouts x SET status = 'paid', stripe_transfer_id = tr, paid_at = pg_catalog.now()
     WHERE x.id OPERATOR(pg_catalog.=) p.id;
    UPDATE agentmarket.creator_earnings e
       SET paid_out = true, paid_out_at = pg_catalog.now(), stripe_transfer_id = tr
     WHERE e.payout_id OPERATOR(pg_catalog.=) p.id;
    -- A transfer.reversed that came before this answer waited for the transfer.
    PERFORM agentmarket_private.webhook_apply_deferred(ARRAY[tr]);
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_payout_transfer(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_transfer: the payout of payload.payout_id is paid with the transfer id, and its earnings are paid out.';

-- The transfer gave up: the payout failed and its earnings wait for the next
-- run, except those of sessions refunded meanwhile, which are clawed back now.
CREATE FUNCTION agentmarket_private.payout_transfer_dead(p_job agentmarket_private.jobs)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pid uuid;
BEGIN
    IF NOT (p_job).payload ? 'payout_id' THEN
        RETURN;
    END IF;
    pid := ((p_job).payload OPERATOR(pg_catalog.->>) 'payout_id')::uuid;
    UPDATE agentmarket.payouts x
       SET status = 'failed', failed_at = pg_catalog.now(),
           failure_reason = pg_catalog.left(COALESCE((p_job).last_error, 'transfer failed'), 1000)
     WHERE x.id OPERATOR(pg_catalog.=) pid AND x.status OPERATOR(pg_catalog.=) 'pending';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE agentmarket.creator_earnings e SET payout_id = NULL
     WHERE e.payout_id OPERATOR(pg_catalog.=) pid AND NOT e.paid_out;
    UPDATE agentmarket_private.creator_clawbacks k SET payout_id = NULL WHERE k.payout_id OPERATOR(pg_catalog.=) pid;
    UPDATE agentmarket_private.payout_reversals v SET netted_payout_id = NULL WHERE v.netted_payout_id OPERATOR(pg_catalog.=) pid;
    DELETE FROM agentmarket.creator_earnings e
     USING agentmarket.sessions s
     WHERE s.id OPERATOR(pg_catalog.=) e.session_id AND s.refunded_at IS NOT NULL
       AND e.payout_id IS NULL AND NOT e.paid_out
       AND e.creator_id OPERATOR(pg_catalog.=) (SELECT x.creator_id FROM agentmarket.payouts x WHERE x.id OPERATOR(pg_catalog.=) pid);
END
$$;
COMMENT ON FUNCTION agentmarket_private.payout_transfer_dead(agentmarket_private.jobs) IS
    'Dead handler of stripe.create_transfer: a pending payout fails; its earnings are released for the next run, and those of refunded sessions are deleted (the refund''s clawback).';

INSERT INTO agentmarket_private.job_kinds
    (kind, provider, endpoint, request_function, instance_status, serialize_on, handler, dead_handler, max_attempts, description) VALUES
  ('stripe.create_transfer', 'stripe', '/v1/transfers', 'agentmarket_private.stripe_request(agentmarket_private.jobs)', NULL, NULL,
   'agentmarket_private.finish_payout_transfer(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.payout_transfer_dead(agentmarket_private.jobs)', 8,
   'Transfer a creator''s payout to their connected account; marks payload.payout_id paid (or failed when dead).');
