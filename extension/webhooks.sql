-- webhooks.sql: the two Stripe endpoints, their dispatch, deferred events,
-- Connect readiness and transfer reversals, and pruning.
--
--   handle_stripe_webhook(payload, header)          the account endpoint
--   handle_stripe_connect_webhook(payload, header)  the Connect endpoint
-- Each verifies the signature with its secret or, during a rotation, its
-- previous one; records the event once; applies it; and, when the event made
-- a Stripe object known, applies the deferred events that waited for it.

-- The endpoints' signing secrets (kind secret: stored encrypted, config.sql);
-- lifecycle.sql declares the previous ones kept during a rotation.
INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('stripe_webhook_secret', 'secret', NULL, NULL, NULL, '^whsec_[A-Za-z0-9]+$',
   'Signing secret of the Stripe webhook endpoint (whsec_...).'),
  ('stripe_connect_webhook_secret', 'secret', NULL, NULL, NULL, '^whsec_[A-Za-z0-9]+$',
   'Signing secret of the Stripe Connect webhook endpoint (whsec_...).'),
  ('webhook_tolerance_seconds', 'integer', '300', 1, 3600, NULL,
   'Webhook signatures older or newer than this many seconds are refused.');

------------------------------------------------------------------------------
-- Connect: readiness and reversals
------------------------------------------------------------------------------

-- account.updated: whether the creator can be paid; the newest event wins.
CREATE FUNCTION agentmarket_private.webhook_account_updated(p_event jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a jsonb := p_event #> '{data,object}';
    acct text := a ->> 'id';
    created bigint := COALESCE((p_event ->> 'created')::bigint, 0);
    creator uuid;
    r agentmarket_private.connect_accounts;
BEGIN
    IF acct IS NULL OR acct !~ '^acct_' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'reason', 'no account in the event');
    END IF;
    SELECT u.id INTO creator FROM agentmarket.users u WHERE u.stripe_connect_account_id = acct;
    IF creator IS NULL THEN
        RETURN agentmarket_private.webhook_deferred(acct, 'no creator has this account yet');
    END IF;
    INSERT INTO agentmarket_private.connect_accounts AS c
        (account_id, charges_enabled, payouts_enabled, transfers_active, details_submitted, disabled_reason, event_created)
    VALUES (acct, COALESCE((a ->> 'charges_enabled')::boolean, false), COALESCE((a ->> 'payouts_enabled')::boolean, false),
            COALESCE(a #>> '{capabilities,transfers}' = 'active', false),
            COALESCE((a ->> 'details_submitted')::boolean, false), a #>> '{requirements,disabled_reason}', created)
    ON CONFLICT (account_id) DO UPDATE
       SET charges_enabled = EXCLUDED.charges_enabled, payouts_enabled = EXCLUDED.payouts_enabled,
           transfers_active = EXCLUDED.transfers_active, details_submitted = EXCLUDED.details_submitted,
           disabled_reason = EXCLUDED.disabled_reason, event_created = EXCLUDED.event_created, updated_at = now()
     WHERE c.event_created <= EXCLUDED.event_created
    RETURNING * INTO r;
    IF r.account_id IS NULL THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'reason', 'a newer account.updated was applied');
    END IF;
    RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'creator_id', creator, 'account', acct,
        'payable', r.payable);
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_account_updated(jsonb) IS
    'account.updated (Connect): records whether the account can be paid (charges and payouts enabled, transfers capability active); an older event never overwrites a newer one; deferred until a creator has the account.';

-- transfer.reversed: what was reversed is owed to the creator again.
CREATE FUNCTION agentmarket_private.webhook_transfer_reversed(p_event jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tr jsonb := p_event #> '{data,object}';
    p agentmarket.payouts;
    reversed bigint;
BEGIN
    SELECT * INTO p FROM agentmarket.payouts x WHERE x.stripe_transfer_id = tr ->> 'id' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN agentmarket_private.webhook_deferred(tr ->> 'id', 'no paid payout has this transfer yet');
    END IF;
    IF p.status <> 'paid' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'reason', 'the payout is ' || p.status);
    END IF;
    -- amount_reversed is cumulative: events in any order apply each cent once.
    reversed := LEAST(GREATEST(COALESCE((tr ->> 'amount_reversed')::numeric, 0), 0), p.transfer_cents)::bigint;
    IF reversed <= p.reversed_cents THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'payout_id', p.id,
            'reason', 'already reversed');
    END IF;
    IF reversed = p.transfer_cents AND p.reversed_cents = 0 THEN
        -- The whole transfer: the payout is undone, its earnings and the
        -- clawbacks and reversals it netted are owed again as they were.
        UPDATE agentmarket.payouts x SET status = 'reversed', reversed_at = now() WHERE x.id = p.id;
        UPDATE agentmarket.creator_earnings e
           SET paid_out = false, paid_out_at = NULL, stripe_transfer_id = NULL, payout_id = NULL
         WHERE e.payout_id = p.id;
        UPDATE agentmarket_private.creator_clawbacks k SET payout_id = NULL WHERE k.payout_id = p.id;
        UPDATE agentmarket_private.payout_reversals v SET netted_payout_id = NULL WHERE v.netted_payout_id = p.id;
        RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'payout_id', p.id, 'creator_id', p.creator_id,
            'reversed_cents', reversed);
    END IF;
    -- Part of it: exactly that part is owed again, added to the next payout.
    UPDATE agentmarket.payouts x SET reversed_cents = reversed WHERE x.id = p.id;
    INSERT INTO agentmarket_private.payout_reversals (payout_id, creator_id, amount_usd)
    VALUES (p.id, p.creator_id, (reversed - p.reversed_cents) / 100.0);
    RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'payout_id', p.id, 'creator_id', p.creator_id,
        'reversed_cents', reversed - p.reversed_cents, 'owed_again_usd', ((reversed - p.reversed_cents) / 100.0)::numeric(12,4));
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_transfer_reversed(jsonb) IS
    'transfer.reversed (amount_reversed cumulative, so any order applies each cent once): the whole transfer reverses the payout (its earnings unpaid and unclaimed again, the clawbacks and reversals it netted owed again); a part of it (or the rest after a part) is owed to the creator again as a payout_reversals row that the next payout adds; deferred until the transfer is known.';

------------------------------------------------------------------------------
-- Dispatch, deferral, endpoints
------------------------------------------------------------------------------

-- What a handler answers when the event's referent is not known yet: the
-- receipt keeps the event and applies it when p_waits_for becomes known.
CREATE FUNCTION agentmarket_private.webhook_deferred(p_waits_for text, p_reason text)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object('outcome', 'deferred', 'waits_for', p_waits_for, 'reason', p_reason)
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_deferred(text, text) IS
    'A handler''s answer for an event whose referent (p_waits_for: a Stripe id) is not known yet: webhook_receive keeps the event deferred until it is.';

CREATE FUNCTION agentmarket_private.webhook_dispatch(p_event jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN CASE p_event ->> 'type'
        WHEN 'checkout.session.completed' THEN agentmarket_private.webhook_checkout_paid(p_event)
        WHEN 'checkout.session.async_payment_succeeded' THEN agentmarket_private.webhook_checkout_paid(p_event)
        WHEN 'checkout.session.expired' THEN agentmarket_private.webhook_checkout_ended(p_event, 'expired')
        WHEN 'checkout.session.async_payment_failed' THEN agentmarket_private.webhook_checkout_ended(p_event, 'failed')
        WHEN 'invoice.paid' THEN agentmarket_private.webhook_invoice_paid(p_event)
        WHEN 'invoice.payment_failed' THEN agentmarket_private.webhook_subscription_state(p_event)
        WHEN 'customer.subscription.updated' THEN agentmarket_private.webhook_subscription_state(p_event)
        WHEN 'customer.subscription.deleted' THEN agentmarket_private.webhook_subscription_state(p_event)
        WHEN 'charge.refunded' THEN agentmarket_private.webhook_charge_refunded(p_event)
        WHEN 'charge.dispute.created' THEN agentmarket_private.webhook_charge_dispute(p_event)
        WHEN 'charge.dispute.updated' THEN agentmarket_private.webhook_charge_dispute(p_event)
        WHEN 'charge.dispute.funds_withdrawn' THEN agentmarket_private.webhook_charge_dispute(p_event)
        WHEN 'charge.dispute.funds_reinstated' THEN agentmarket_private.webhook_charge_dispute(p_event)
        WHEN 'charge.dispute.closed' THEN agentmarket_private.webhook_charge_dispute(p_event)
        WHEN 'account.updated' THEN agentmarket_private.webhook_account_updated(p_event)
        WHEN 'transfer.reversed' THEN agentmarket_private.webhook_transfer_reversed(p_event)
        ELSE pg_catalog.jsonb_build_object('outcome', 'ignored', 'reason', 'event type not handled')
    END;
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_dispatch(jsonb) IS
    'Applies one Stripe event by its type; unknown types are ignored. Returns {"outcome": applied|ignored|rejected|deferred, ...}.';

-- Apply the deferred events that waited for any of p_ids, oldest event first.
CREATE FUNCTION agentmarket_private.webhook_apply_deferred(p_ids text[])
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d agentmarket_private.processed_webhook_events;
    r jsonb;
    n integer := 0;
BEGIN
    FOR d IN SELECT * FROM agentmarket_private.processed_webhook_events e
              WHERE e.outcome = 'deferred' AND e.waits_for = ANY (p_ids)
              ORDER BY (e.payload ->> 'created')::bigint NULLS LAST, e.event_id
              FOR UPDATE
    LOOP
        r := agentmarket_private.webhook_dispatch(d.payload);
        IF r ->> 'outcome' = 'deferred' THEN
            UPDATE agentmarket_private.processed_webhook_events e SET waits_for = r ->> 'waits_for'
             WHERE e.event_id = d.event_id;
            CONTINUE;
        END IF;
        r := pg_catalog.jsonb_build_object('event', d.event_id, 'type', d.type, 'deferred_until', now()) || (r - 'unlocks');
        UPDATE agentmarket_private.processed_webhook_events e
           SET outcome = r ->> 'outcome', reason = r ->> 'reason', result = r, payload = NULL, waits_for = NULL,
               purchase_id = COALESCE((r ->> 'purchase_id')::uuid, e.purchase_id)
         WHERE e.event_id = d.event_id;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_apply_deferred(text[]) IS
    'Applies the deferred events waiting for any of the given Stripe ids, oldest first; returns how many were settled.';

-- Verify, record once, apply, and release what waited for this event.
CREATE FUNCTION agentmarket_private.webhook_receive(p_payload text, p_header text, p_endpoint text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key text := CASE p_endpoint WHEN 'connect' THEN 'stripe_connect_webhook_secret' ELSE 'stripe_webhook_secret' END;
    secret text := agentmarket_private.setting(key);
    previous text := agentmarket_private.setting(key || '_previous');
    tolerance integer := agentmarket_private.setting('webhook_tolerance_seconds')::integer;
    ev jsonb;
    ev_id text;
    ev_type text;
    seen agentmarket_private.processed_webhook_events;
    r jsonb;
    unstorable boolean := false;
BEGIN
    IF secret IS NULL THEN
        RAISE EXCEPTION '% is not configured', CASE p_endpoint WHEN 'connect' THEN 'stripe connect webhook secret'
                                                                ELSE 'stripe webhook secret' END
            USING ERRCODE = '55000',
            DETAIL = 'Without the endpoint''s signing secret no event can be verified.',
            HINT = pg_catalog.format('Set it with agentmarket.configure(%L, ''whsec_...'').', key);
    END IF;
    -- During a rotation either secret verifies; the error never says which was tried.
    BEGIN
        PERFORM agentmarket.verify_stripe_signature(p_payload, p_header, secret, tolerance, pg_catalog.now());
    EXCEPTION WHEN SQLSTATE 'PT401' THEN
        IF previous IS NULL THEN
            RAISE;
        END IF;
        PERFORM agentmarket.verify_stripe_signature(p_payload, p_header, previous, tolerance, pg_catalog.now());
    END;
    BEGIN
        ev := p_payload::jsonb;
    EXCEPTION
        WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'webhook payload is not JSON' USING ERRCODE = '22023',
                DETAIL = 'A Stripe event is a JSON object.';
        WHEN untranslatable_character THEN
            -- Signed JSON that jsonb cannot hold (\u0000): read with the escape
            -- neutralised only to learn the event, which is recorded as
            -- rejected below and answered normally, so Stripe does not retry.
            unstorable := true;
            BEGIN
                ev := pg_catalog.replace(p_payload, '\u0000', '\ufffd')::jsonb;
            EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
                RAISE EXCEPTION 'webhook payload cannot be stored' USING ERRCODE = '22023',
                    DETAIL = 'The event holds text PostgreSQL cannot store (\u0000).';
            END;
    END;
    ev_id := ev ->> 'id';
    ev_type := ev ->> 'type';
    IF pg_catalog.jsonb_typeof(ev) <> 'object' OR ev_id IS NULL
       OR ev_id !~ '^evt_[A-Za-z0-9_]{1,250}$' OR ev_type IS NULL THEN
        RAISE EXCEPTION 'webhook payload is not a stripe event' USING ERRCODE = '22023',
            DETAIL = 'A Stripe event has an id evt_... and a type.';
    END IF;

    -- Claim the event id; a concurrent delivery of it waits here.
    INSERT INTO agentmarket_private.processed_webhook_events (event_id, type, outcome, result, endpoint)
    VALUES (ev_id, ev_type, 'ignored', '{}', p_endpoint)
    ON CONFLICT (event_id) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO STRICT seen FROM agentmarket_private.processed_webhook_events e WHERE e.event_id = ev_id;
        RETURN seen.result || pg_catalog.jsonb_build_object('outcome', 'duplicate', 'first_outcome', seen.outcome);
    END IF;

    r := CASE WHEN unstorable THEN
             pg_catalog.jsonb_build_object('outcome', 'rejected',
                 'reason', 'the event holds \u0000, which PostgreSQL cannot store')
         ELSE agentmarket_private.webhook_dispatch(ev) END;
    r := pg_catalog.jsonb_build_object('event', ev_id, 'type', ev_type) || r;
    UPDATE agentmarket_private.processed_webhook_events e
       SET outcome = r ->> 'outcome', reason = r ->> 'reason',
           purchase_id = (r ->> 'purchase_id')::uuid, result = r - 'unlocks',
           payload = CASE WHEN r ->> 'outcome' = 'deferred' THEN ev END,
           waits_for = CASE WHEN r ->> 'outcome' = 'deferred' THEN r ->> 'waits_for' END
     WHERE e.event_id = ev_id;
    IF r ? 'unlocks' THEN
        PERFORM agentmarket_private.webhook_apply_deferred(
            ARRAY(SELECT x FROM pg_catalog.jsonb_array_elements_text(r -> 'unlocks') x WHERE x IS NOT NULL));
    END IF;
    RETURN r - 'unlocks';
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_receive(text, text, text) IS
    'One webhook delivery to an endpoint (account or connect): verifies the signature with the endpoint''s secret or its previous one (PT401), records the event once, applies it (or keeps it deferred), then applies the deferred events it unlocked.';

-- The two endpoints: one receipt (webhook_receive), each with its own secret.
CREATE FUNCTION agentmarket.handle_stripe_webhook(payload text, signature_header text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN agentmarket_private.webhook_receive(payload, signature_header, 'account');
END
$$;
COMMENT ON FUNCTION agentmarket.handle_stripe_webhook(text, text) IS
    'The Stripe webhook endpoint of the account: verifies the Stripe-Signature header with stripe_webhook_secret or, during a rotation, stripe_webhook_secret_previous (PT401), handles each event id once (a repeat returns {"outcome": "duplicate", "first_outcome": ...}), applies Checkout, invoice, subscription and refund events (webhooks.sql); returns {"event", "type", "outcome": applied|ignored|rejected|deferred|duplicate, ...}. 55000 while stripe_webhook_secret is unset.';

CREATE FUNCTION agentmarket.handle_stripe_connect_webhook(payload text, signature_header text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN agentmarket_private.webhook_receive(payload, signature_header, 'connect');
END
$$;
COMMENT ON FUNCTION agentmarket.handle_stripe_connect_webhook(text, text) IS
    'The Stripe Connect webhook endpoint (events of connected accounts: account.updated, ...): verifies the signature with stripe_connect_webhook_secret or, during a rotation, stripe_connect_webhook_secret_previous (PT401); otherwise as handle_stripe_webhook. 55000 while the secret is unset.';

CREATE FUNCTION agentmarket.prune_webhook_events(max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed integer;
BEGIN
    IF max_rows IS NULL OR max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = '22023';
    END IF;
    -- Deferred events are kept however old: they still wait for their referent.
    DELETE FROM agentmarket_private.processed_webhook_events e
     WHERE e.event_id IN (
            SELECT o.event_id FROM agentmarket_private.processed_webhook_events o
             WHERE o.outcome <> 'deferred'
               AND o.received_at < now() - make_interval(
                       days => agentmarket_private.setting('webhook_event_retention_days')::integer)
             ORDER BY o.received_at
             LIMIT max_rows
             FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;
COMMENT ON FUNCTION agentmarket.prune_webhook_events(integer) IS
    'For pg_cron: removes up to max_rows handled webhook events older than webhook_event_retention_days (oldest first; deferred ones are kept); returns how many. A pruned event delivered again is applied anew, so the retention must outlive Stripe''s retries (3 days).';
-- Periodic (schedules.sql): job agentmarket.prune_webhook_events, setting schedule_prune_webhook_events.
SELECT agentmarket_private.declare_scheduled_task('prune_webhook_events', 'SELECT agentmarket.prune_webhook_events()', '29 4 * * *');

GRANT EXECUTE ON FUNCTION agentmarket.handle_stripe_webhook(text, text),
    agentmarket.handle_stripe_connect_webhook(text, text),
    agentmarket.prune_webhook_events(integer) TO service_role;
