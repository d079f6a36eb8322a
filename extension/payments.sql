-- payments.sql: users pay in credits bought through Stripe.
--
--   buy_credits(pack)          a pending purchase + a stripe.create_checkout_session job
--   the job's handler          stores the Checkout session id and url on the purchase
--   the Checkout handlers      checkout.session.completed (paid, credits granted
--                              once) and .expired, dispatched by the webhook
--                              receipt (webhooks.sql; signatures: payments.c)

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('checkout_success_url', 'text', 'https://agentmarket.example/billing/success', NULL, NULL,
   '^https://[^[:space:]]+$',
   'Where Stripe Checkout sends the user after paying (https; may hold {CHECKOUT_SESSION_ID}).'),
  ('checkout_cancel_url', 'text', 'https://agentmarket.example/billing/cancel', NULL, NULL,
   '^https://[^[:space:]]+$',
   'Where Stripe Checkout sends the user who cancels (https).'),
  ('max_pending_purchases', 'integer', '3', 1, 100, NULL,
   'A user may have at most this many purchases waiting for payment (buy_credits reuses a pending one of the same pack).');

------------------------------------------------------------------------------
-- Packs, purchases, processed events
------------------------------------------------------------------------------

-- The packs on sale.  Those below ship with the extension: a restore gets
-- them from CREATE EXTENSION; what the operator creates or changes is dumped
-- (pricing.sql: the pack functions, and the registration).  A purchase copies credits, amount and currency, so a
-- changed pack never changes a purchase already made.
CREATE TABLE agentmarket_private.credit_packs (
  code TEXT PRIMARY KEY CONSTRAINT credit_packs_code_format CHECK (code ~ '^[a-z][a-z0-9_]{0,39}$'),
  name TEXT NOT NULL CONSTRAINT credit_packs_name_length CHECK (length(name) BETWEEN 1 AND 100),
  kind TEXT NOT NULL CONSTRAINT credit_packs_kind_check CHECK (kind IN ('topup', 'subscription')),
  credits INTEGER NOT NULL CONSTRAINT credit_packs_credits_check CHECK (credits > 0),
  amount_cents BIGINT NOT NULL CONSTRAINT credit_packs_amount_check CHECK (amount_cents > 0),
  currency TEXT NOT NULL DEFAULT 'usd' CONSTRAINT credit_packs_currency_check CHECK (currency ~ '^[a-z]{3}$'),
  active BOOLEAN NOT NULL DEFAULT true
);
COMMENT ON TABLE agentmarket_private.credit_packs IS
    'Credit packs on sale: top-ups (Checkout mode payment) and monthly plans (mode subscription).';
REVOKE ALL ON TABLE agentmarket_private.credit_packs FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.credit_packs', 'WHERE false');

INSERT INTO agentmarket_private.credit_packs (code, name, kind, credits, amount_cents, currency) VALUES
  ('topup_s', '500 credits', 'topup', 500, 500, 'usd'),
  ('topup_m', '1,100 credits', 'topup', 1100, 1000, 'usd'),
  ('topup_l', '6,000 credits', 'topup', 6000, 5000, 'usd'),
  ('pro_monthly', 'Pro: 2,500 credits a month', 'subscription', 2500, 1900, 'usd');

ALTER TABLE agentmarket.purchases ADD COLUMN checkout_url TEXT
    CONSTRAINT purchases_checkout_url_check CHECK (checkout_url ~ '^https://');
COMMENT ON COLUMN agentmarket.purchases.checkout_url IS
    'The Stripe Checkout page of a pending purchase, set once the session is created.';

-- Every Stripe event handled, by event id: at-least-once delivery in any
-- order, so a repeat finds its first outcome here and changes nothing.
CREATE TABLE agentmarket_private.processed_webhook_events (
  event_id TEXT PRIMARY KEY CONSTRAINT processed_webhook_events_id_format CHECK (event_id ~ '^evt_[A-Za-z0-9_]{1,250}$'),
  type TEXT NOT NULL,
  outcome TEXT NOT NULL CONSTRAINT processed_webhook_events_outcome_check CHECK (outcome IN ('applied', 'ignored', 'rejected')),
  reason TEXT,
  purchase_id UUID,
  result JSONB NOT NULL,
  received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.processed_webhook_events IS
    'Stripe webhook events already handled, with their outcome (applied, ignored, rejected and why).';
CREATE INDEX processed_webhook_events_purchase ON agentmarket_private.processed_webhook_events (purchase_id)
    WHERE purchase_id IS NOT NULL;
REVOKE ALL ON TABLE agentmarket_private.processed_webhook_events FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.processed_webhook_events', '');

------------------------------------------------------------------------------
-- Signatures (C)
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.verify_stripe_signature(
    payload text, signature_header text, secret text,
    tolerance_seconds integer DEFAULT 300, now timestamptz DEFAULT pg_catalog.now())
RETURNS boolean
AS 'MODULE_PATHNAME', 'verify_stripe_signature'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket.verify_stripe_signature(text, text, text, integer, timestamptz) IS
    'True when a v1 entry of the Stripe-Signature header (t=<unix>,v1=<hex>...) is HMAC-SHA256(secret, "<t>.<payload>") and t is within tolerance_seconds of now; PT401 otherwise.';
GRANT EXECUTE ON FUNCTION agentmarket.verify_stripe_signature(text, text, text, integer, timestamptz) TO service_role;

CREATE FUNCTION agentmarket_private.hmac_sha256_hex(key bytea, message bytea)
RETURNS text
AS 'MODULE_PATHNAME', 'am_hmac_sha256_hex'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.hmac_sha256_hex(bytea, bytea) IS
    'HMAC-SHA256 of message with key, as lower-case hex (what a v1 Stripe signature is).';

------------------------------------------------------------------------------
-- Buying
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.credit_packs()
RETURNS TABLE (code text, name text, kind text, credits integer, amount_cents bigint, currency text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.code, p.name, p.kind, p.credits, p.amount_cents, p.currency
      FROM agentmarket_private.credit_packs p
     WHERE p.active
     ORDER BY p.kind DESC, p.amount_cents, p.code
$$;
COMMENT ON FUNCTION agentmarket.credit_packs() IS
    'The packs on sale (top-ups first, then plans), for the pricing page.';
GRANT EXECUTE ON FUNCTION agentmarket.credit_packs() TO anon, authenticated, service_role;

-- The signed-in user, locked (FOR NO KEY UPDATE) so that concurrent calls of
-- one user are serialized; 42501 when there is none.
CREATE FUNCTION agentmarket_private.signed_in_user_locked(p_action text)
RETURNS agentmarket.users
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid uuid := agentmarket.current_user_id();
    u agentmarket.users;
BEGIN
    IF uid IS NOT NULL THEN
        SELECT * INTO u FROM agentmarket.users x WHERE x.id OPERATOR(pg_catalog.=) uid FOR NO KEY UPDATE;
    END IF;
    IF u.id IS NULL THEN
        RAISE EXCEPTION 'not signed in' USING ERRCODE = '42501',
            DETAIL = CASE WHEN uid IS NULL THEN p_action || ' needs a signed-in user.'
                          ELSE 'The signed-in user has no account.' END;
    END IF;
    RETURN u;
END
$$;
COMMENT ON FUNCTION agentmarket_private.signed_in_user_locked(text) IS
    'The signed-in user''s row, locked FOR NO KEY UPDATE (one call of a user at a time); 42501 "not signed in" when there is no user id or no such user (p_action names what needed one, for the DETAIL).';

CREATE FUNCTION agentmarket.buy_credits(pack text)
RETURNS agentmarket.purchases
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u agentmarket.users := agentmarket_private.signed_in_user_locked('Buying credits');
    uid uuid := u.id;
    p agentmarket_private.credit_packs;
    pur agentmarket.purchases;
    meta jsonb;
    params jsonb;
    price jsonb;
BEGIN
    -- The user row is locked (above): concurrent calls of one user reuse one purchase.
    SELECT * INTO p FROM agentmarket_private.credit_packs c
     WHERE c.code OPERATOR(pg_catalog.=) pg_catalog.left(buy_credits.pack, 100) AND c.active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown credit pack %', COALESCE(pg_catalog.quote_literal(pg_catalog.left(buy_credits.pack, 100)), 'null')
            USING ERRCODE = '22023',
                  HINT = 'agentmarket.credit_packs() lists the packs on sale.';
    END IF;
    -- Bounded work per caller: a pending purchase of the same pack whose
    -- Checkout session is still usable is returned again, and only a few
    -- purchases may be pending at once (max_pending_purchases).
    SELECT * INTO pur FROM agentmarket.purchases x
     WHERE x.user_id OPERATOR(pg_catalog.=) uid AND x.product OPERATOR(pg_catalog.=) p.code
       AND x.status OPERATOR(pg_catalog.=) 'pending'
       AND (x.expires_at IS NULL OR x.expires_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.+) interval '5 minutes'))
     ORDER BY x.created_at DESC LIMIT 1;
    IF FOUND THEN
        RETURN pur;
    END IF;
    IF (SELECT pg_catalog.count(*) FROM agentmarket.purchases x
         WHERE x.user_id OPERATOR(pg_catalog.=) uid AND x.status OPERATOR(pg_catalog.=) 'pending'
           AND (x.expires_at IS NULL OR x.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()))
       OPERATOR(pg_catalog.>=) agentmarket_private.setting('max_pending_purchases')::integer THEN
        RAISE EXCEPTION 'too many purchases pending' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('At most %s purchases may wait for payment at once.',
                                       agentmarket_private.setting('max_pending_purchases')),
            HINT = 'Pay or cancel a pending Checkout session first; an unpaid one expires within a day.';
    END IF;
    INSERT INTO agentmarket.purchases (user_id, kind, product, credits, amount_cents, currency)
    VALUES (uid, p.kind, p.code, p.credits, p.amount_cents, p.currency)
    RETURNING * INTO pur;

    meta := pg_catalog.jsonb_build_object('purchase_id', pur.id, 'user_id', uid);
    price := pg_catalog.jsonb_build_object('currency', p.currency, 'unit_amount', p.amount_cents,
                 'product_data', pg_catalog.jsonb_build_object('name', p.name));
    IF p.kind OPERATOR(pg_catalog.=) 'subscription' THEN
        price := price OPERATOR(pg_catalog.||)
                 pg_catalog.jsonb_build_object('recurring', pg_catalog.jsonb_build_object('interval', 'month'));
    END IF;
    params := pg_catalog.jsonb_build_object(
        'mode', CASE p.kind WHEN 'topup' THEN 'payment' ELSE 'subscription' END,
        'line_items', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('quantity', 1, 'price_data', price)),
        'success_url', agentmarket_private.setting('checkout_success_url'),
        'cancel_url', agentmarket_private.setting('checkout_cancel_url'),
        'client_reference_id', pur.id,
        'metadata', meta,
        CASE p.kind WHEN 'topup' THEN 'payment_intent_data' ELSE 'subscription_data' END,
        pg_catalog.jsonb_build_object('metadata', meta));
    -- Since API 2022-08-01 Checkout in payment mode makes no Customer unless
    -- asked: refunds, the billing portal and later purchases need one.
    params := params OPERATOR(pg_catalog.||) CASE WHEN u.stripe_customer_id IS NOT NULL
        THEN pg_catalog.jsonb_build_object('customer', u.stripe_customer_id)
        WHEN p.kind OPERATOR(pg_catalog.=) 'topup'
        THEN pg_catalog.jsonb_build_object('customer_email', u.email, 'customer_creation', 'always')
        ELSE pg_catalog.jsonb_build_object('customer_email', u.email) END;
    PERFORM agentmarket_private.enqueue_stripe_job('stripe.create_checkout_session', params,
        'checkout:' || pur.id::text, meta);
    RETURN pur;
END
$$;
COMMENT ON FUNCTION agentmarket.buy_credits(text) IS
    'Starts buying a credit pack: a pending purchase and a stripe.create_checkout_session job in one transaction; the purchase gets its checkout_url when the session exists. 22023 for an unknown pack, 42501 without a signed-in user.';
GRANT EXECUTE ON FUNCTION agentmarket.buy_credits(text) TO authenticated;

-- stripe.create_checkout_session succeeded: the purchase learns its session.
CREATE FUNCTION agentmarket_private.finish_checkout_session(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    session_id text := p_result OPERATOR(pg_catalog.->>) 'id';
    known text;
BEGIN
    -- Jobs enqueued by hand (no purchase) only keep their result on the job.
    IF NOT (p_job).payload ? 'purchase_id' THEN
        RETURN;
    END IF;
    IF session_id IS NULL OR session_id !~ '^cs_[A-Za-z0-9_]+$' THEN
        RAISE EXCEPTION 'checkout result of job % has no session id', (p_job).id
            USING ERRCODE = '22023', DETAIL = 'The result must be the created Checkout session.';
    END IF;
    SELECT pu.stripe_checkout_session_id INTO known FROM agentmarket.purchases pu
     WHERE pu.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'purchase_id')::uuid
     FOR UPDATE;
    IF known IS NOT NULL AND known OPERATOR(pg_catalog.<>) session_id THEN
        RAISE EXCEPTION 'purchase already has checkout session %', known
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('Job %s returned session %s.', (p_job).id, session_id);
    END IF;
    UPDATE agentmarket.purchases pu
       SET stripe_checkout_session_id = session_id,
           checkout_url = CASE WHEN p_result OPERATOR(pg_catalog.->>) 'url' LIKE 'https://%'
                               THEN p_result OPERATOR(pg_catalog.->>) 'url' END,
           expires_at = CASE WHEN pg_catalog.jsonb_typeof(p_result OPERATOR(pg_catalog.->) 'expires_at') OPERATOR(pg_catalog.=) 'number'
                             THEN pg_catalog.to_timestamp((p_result OPERATOR(pg_catalog.->>) 'expires_at')::double precision)
                             ELSE pu.expires_at END
     WHERE pu.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'purchase_id')::uuid;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_checkout_session(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_checkout_session: stores the session id, its url and expiry on payload.purchase_id.';

-- The session could not be created: the purchase failed.
CREATE FUNCTION agentmarket_private.checkout_session_dead(p_job agentmarket_private.jobs)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (p_job).payload ? 'purchase_id' THEN
        UPDATE agentmarket.purchases pu SET status = 'failed'
         WHERE pu.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'purchase_id')::uuid
           AND pu.status OPERATOR(pg_catalog.=) 'pending';
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.checkout_session_dead(agentmarket_private.jobs) IS
    'Dead handler of stripe.create_checkout_session: a pending purchase whose session could not be created fails.';

-- stripe.create_customer succeeded: the user's customer id, when not set yet.
CREATE FUNCTION agentmarket_private.finish_stripe_customer(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (p_job).payload ? 'user_id' AND p_result OPERATOR(pg_catalog.->>) 'id' LIKE 'cus\_%' THEN
        UPDATE agentmarket.users u SET stripe_customer_id = p_result OPERATOR(pg_catalog.->>) 'id'
         WHERE u.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'user_id')::uuid
           AND u.stripe_customer_id IS NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_stripe_customer(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_customer: sets users.stripe_customer_id of payload.user_id when it has none.';


-- The Stripe job kinds of payments, each with its handlers (queue.sql).
INSERT INTO agentmarket_private.job_kinds
    (kind, provider, endpoint, request_function, instance_status, serialize_on, handler, dead_handler, max_attempts, description) VALUES
  ('stripe.create_customer', 'stripe', '/v1/customers', 'agentmarket_private.stripe_request(agentmarket_private.jobs)', NULL, NULL,
   'agentmarket_private.finish_stripe_customer(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create a Stripe customer; sets users.stripe_customer_id of payload.user_id.'),
  ('stripe.create_checkout_session', 'stripe', '/v1/checkout/sessions', 'agentmarket_private.stripe_request(agentmarket_private.jobs)', NULL, NULL,
   'agentmarket_private.finish_checkout_session(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.checkout_session_dead(agentmarket_private.jobs)', 8,
   'Create a Checkout session (mode=payment for top-up packs, mode=subscription for plans); stores its id and url on payload.purchase_id.'),
  ('stripe.create_refund', 'stripe', '/v1/refunds', 'agentmarket_private.stripe_request(agentmarket_private.jobs)', NULL, NULL,
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Refund a payment intent, fully or partly.');

------------------------------------------------------------------------------
-- Webhooks
------------------------------------------------------------------------------

-- The purchase a Checkout session event is about, locked; NULL when none.
CREATE FUNCTION agentmarket_private.webhook_purchase(
    p_session jsonb, OUT purchase agentmarket.purchases, OUT rejection jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ref text := COALESCE(p_session OPERATOR(pg_catalog.#>>) '{metadata,purchase_id}',
                         p_session OPERATOR(pg_catalog.->>) 'client_reference_id');
BEGIN
    IF ref IS NOT NULL AND ref ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        SELECT * INTO purchase FROM agentmarket.purchases pu WHERE pu.id OPERATOR(pg_catalog.=) ref::uuid FOR UPDATE;
    END IF;
    IF purchase.id IS NULL THEN
        rejection := pg_catalog.jsonb_build_object('outcome', 'rejected', 'reason', 'no purchase matches the session');
    ELSIF purchase.stripe_checkout_session_id IS NOT NULL
          AND purchase.stripe_checkout_session_id OPERATOR(pg_catalog.<>) (p_session OPERATOR(pg_catalog.->>) 'id') THEN
        rejection := pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', purchase.id,
            'reason', 'the purchase belongs to another checkout session');
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_purchase(jsonb) IS
    'The purchase named by a Checkout session''s metadata.purchase_id (or client_reference_id), locked; rejection is set when there is none or it belongs to another session.';

-- checkout.session.completed / async_payment_succeeded: paid, credits granted once.
CREATE FUNCTION agentmarket_private.webhook_checkout_paid(p_event jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s jsonb := p_event OPERATOR(pg_catalog.#>) '{data,object}';
    pur agentmarket.purchases;
    matched record;
    total text := s OPERATOR(pg_catalog.->>) 'amount_total';
    cur text := s OPERATOR(pg_catalog.->>) 'currency';
    s_mode text := s OPERATOR(pg_catalog.->>) 'mode';
    pi text := s OPERATOR(pg_catalog.->>) 'payment_intent';
    sub text := s OPERATOR(pg_catalog.->>) 'subscription';
    customer text := s OPERATOR(pg_catalog.->>) 'customer';
    state agentmarket.credit_state;
BEGIN
    SELECT w.purchase, w.rejection INTO matched FROM agentmarket_private.webhook_purchase(s) w;
    IF matched.rejection IS NOT NULL THEN
        RETURN matched.rejection;
    END IF;
    pur := matched.purchase;
    IF (s OPERATOR(pg_catalog.#>>) '{metadata,user_id}') IS DISTINCT FROM pur.user_id::text THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pur.id,
            'reason', 'the session''s user is not the purchase''s');
    END IF;
    IF total IS DISTINCT FROM pur.amount_cents::text OR cur IS DISTINCT FROM pur.currency THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pur.id,
            'reason', pg_catalog.format('paid %s %s, the purchase costs %s %s',
                COALESCE(total, 'nothing'), COALESCE(cur, ''), pur.amount_cents, pur.currency));
    END IF;
    IF s_mode IS DISTINCT FROM (CASE pur.kind WHEN 'topup' THEN 'payment' ELSE 'subscription' END) THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pur.id,
            'reason', pg_catalog.format('a %s purchase paid in mode %s', pur.kind, COALESCE(s_mode, 'none')));
    END IF;
    IF pur.status OPERATOR(pg_catalog.<>) 'pending' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'purchase_id', pur.id,
            'reason', 'the purchase is ' || pur.status);
    END IF;
    IF (s OPERATOR(pg_catalog.->>) 'payment_status') IS DISTINCT FROM 'paid' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'purchase_id', pur.id,
            'reason', 'payment not received yet (' || COALESCE(s OPERATOR(pg_catalog.->>) 'payment_status', 'unknown') || ')');
    END IF;

    UPDATE agentmarket.purchases pu
       SET status = 'paid', paid_at = pg_catalog.now(),
           stripe_checkout_session_id = s OPERATOR(pg_catalog.->>) 'id',
           stripe_payment_intent_id = COALESCE(pi, pu.stripe_payment_intent_id),
           stripe_subscription_id = COALESCE(sub, pu.stripe_subscription_id),
           stripe_invoice_id = COALESCE(s OPERATOR(pg_catalog.->>) 'invoice', pu.stripe_invoice_id),
           checkout_url = NULL
     WHERE pu.id OPERATOR(pg_catalog.=) pur.id;
    -- Once: the purchase is no longer pending, and its payment row is unique
    -- per Checkout session.  The credits are a lot worth what was paid.
    -- (A purchase put back to pending by hand is never granted twice.)
    PERFORM agentmarket_private.credit_lock_balance(pur.user_id);
    -- A plan's first payment is its first invoice (what its refunds name).
    INSERT INTO agentmarket_private.purchase_payments (purchase_id, stripe_ref, amount_cents, payment_intent)
    VALUES (pur.id, CASE pur.kind WHEN 'subscription' THEN COALESCE(s OPERATOR(pg_catalog.->>) 'invoice', s OPERATOR(pg_catalog.->>) 'id')
                                  ELSE s OPERATOR(pg_catalog.->>) 'id' END,
            pur.amount_cents, pi)
    ON CONFLICT ON CONSTRAINT purchase_payments_ref_unique DO NOTHING;
    IF NOT FOUND THEN
        state := agentmarket_private.credit_state_of(pur.user_id);
    ELSIF pur.kind OPERATOR(pg_catalog.=) 'topup' THEN
        state := agentmarket_private.credit_lot_grant(pur.user_id, 'topup', pur.credits, 'topup_purchase',
                     pur.amount_cents OPERATOR(pg_catalog./) 100::numeric, pur.id, NULL,
                     'Top-up ' || COALESCE(pur.product, ''), pi);
    ELSE
        state := agentmarket_private.credit_lot_grant(pur.user_id, 'subscription', pur.credits, 'subscription_refresh',
                     pur.amount_cents OPERATOR(pg_catalog./) 100::numeric, pur.id,
                     pg_catalog.now() OPERATOR(pg_catalog.+) interval '1 month',
                     'Plan ' || COALESCE(pur.product, '') || ', first month',
                     COALESCE(s OPERATOR(pg_catalog.->>) 'invoice', sub), s OPERATOR(pg_catalog.->>) 'invoice');
    END IF;
    UPDATE agentmarket_private.purchase_payments x
       SET lot_id = (SELECT max(l.id) FROM agentmarket_private.credit_lots l WHERE l.purchase_id OPERATOR(pg_catalog.=) pur.id)
     WHERE x.purchase_id OPERATOR(pg_catalog.=) pur.id AND x.lot_id IS NULL;
    IF sub IS NOT NULL THEN
        INSERT INTO agentmarket_private.subscriptions (stripe_subscription_id, purchase_id, status, current_period_end)
        VALUES (sub, pur.id, 'active', pg_catalog.now() OPERATOR(pg_catalog.+) interval '1 month')
        ON CONFLICT (stripe_subscription_id) DO NOTHING;
    END IF;
    -- A customer made by Checkout becomes the user's, when they have none.
    IF customer LIKE 'cus\_%' THEN
        UPDATE agentmarket.users u SET stripe_customer_id = customer
         WHERE u.id OPERATOR(pg_catalog.=) pur.user_id AND u.stripe_customer_id IS NULL
           AND NOT EXISTS (SELECT FROM agentmarket.users o WHERE o.stripe_customer_id OPERATOR(pg_catalog.=) customer);
    END IF;
    -- Events that came before this one (a refund, a renewal) wait for these ids.
    RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'purchase_id', pur.id, 'credits', pur.credits,
        'credit_type', pur.kind, 'available_credits', state.available_credits,
        'unlocks', pg_catalog.jsonb_build_array(pi, sub, s OPERATOR(pg_catalog.->>) 'invoice'));
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_checkout_paid(jsonb) IS
    'Applies a paid Checkout session: checks purchase, user, amount, currency and mode, marks the purchase paid and grants its credits once (idempotency key purchase:<id>).';

-- checkout.session.expired / async_payment_failed: the pending purchase ends.
CREATE FUNCTION agentmarket_private.webhook_checkout_ended(p_event jsonb, p_status text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s jsonb := p_event OPERATOR(pg_catalog.#>) '{data,object}';
    pur agentmarket.purchases;
    matched record;
BEGIN
    SELECT w.purchase, w.rejection INTO matched FROM agentmarket_private.webhook_purchase(s) w;
    IF matched.rejection IS NOT NULL THEN
        RETURN matched.rejection;
    END IF;
    pur := matched.purchase;
    IF pur.status OPERATOR(pg_catalog.<>) 'pending' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'purchase_id', pur.id,
            'reason', 'the purchase is ' || pur.status);
    END IF;
    UPDATE agentmarket.purchases pu
       SET status = p_status, checkout_url = NULL,
           stripe_checkout_session_id = s OPERATOR(pg_catalog.->>) 'id'
     WHERE pu.id OPERATOR(pg_catalog.=) pur.id;
    RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'purchase_id', pur.id, 'status', p_status);
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_checkout_ended(jsonb, text) IS
    'Ends a pending purchase whose Checkout session expired (expired) or whose delayed payment failed (failed).';

------------------------------------------------------------------------------
-- Billing portal: the user manages their plan and payment method at Stripe
------------------------------------------------------------------------------

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('billing_portal_return_url', 'text', 'https://agentmarket.example/billing', NULL, NULL,
   '^https://[^[:space:]]+$',
   'Where the Stripe billing portal sends the user back (https).');

-- One row per portal session asked for; the sidecar's answer fills it in.
CREATE TABLE agentmarket_private.billing_portal_sessions (
  job_id BIGINT PRIMARY KEY REFERENCES agentmarket_private.jobs(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES agentmarket.users(id) ON DELETE CASCADE,
  status TEXT NOT NULL DEFAULT 'pending'
    CONSTRAINT billing_portal_sessions_status_check CHECK (status IN ('pending', 'ready', 'failed')),
  stripe_session_id TEXT CONSTRAINT billing_portal_sessions_id_format CHECK (stripe_session_id ~ '^bps_[A-Za-z0-9_]+$'),
  url TEXT CONSTRAINT billing_portal_sessions_url_check CHECK (url ~ '^https://[^[:space:]]+$'),
  error TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  ready_at TIMESTAMPTZ,
  CONSTRAINT billing_portal_sessions_ready_consistent
    CHECK ((status = 'ready') = (url IS NOT NULL AND stripe_session_id IS NOT NULL AND ready_at IS NOT NULL))
);
COMMENT ON TABLE agentmarket_private.billing_portal_sessions IS
    'Stripe billing portal sessions asked for by users (open_billing_portal): pending until the sidecar''s answer stores the url, failed when the job died.';
CREATE INDEX billing_portal_sessions_user ON agentmarket_private.billing_portal_sessions (user_id, created_at);
REVOKE ALL ON TABLE agentmarket_private.billing_portal_sessions FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.billing_portal_sessions', '');

CREATE FUNCTION agentmarket.open_billing_portal()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- The user row is locked: concurrent calls of one user make one session.
    u agentmarket.users := agentmarket_private.signed_in_user_locked('The billing portal');
    uid uuid := u.id;
    recent bigint;
    new_job bigint;
BEGIN
    IF u.stripe_customer_id IS NULL THEN
        RAISE EXCEPTION 'no billing account' USING ERRCODE = 'P0002',
            DETAIL = 'The billing portal manages a Stripe customer, and this user has none yet.',
            HINT = 'A first purchase (agentmarket.buy_credits) makes the customer.';
    END IF;
    -- Bounded work per caller: a session being made, or made within the last
    -- minute, is returned again rather than asking Stripe for another.
    SELECT s.job_id INTO recent FROM agentmarket_private.billing_portal_sessions s
     WHERE s.user_id OPERATOR(pg_catalog.=) uid
       AND (s.status OPERATOR(pg_catalog.=) 'pending'
            OR (s.status OPERATOR(pg_catalog.=) 'ready'
                AND s.ready_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 minute')))
     ORDER BY s.job_id DESC LIMIT 1;
    IF recent IS NOT NULL THEN
        RETURN recent;
    END IF;
    new_job := agentmarket_private.enqueue_stripe_job('stripe.create_billing_portal_session',
        pg_catalog.jsonb_build_object('customer', u.stripe_customer_id,
                                      'return_url', agentmarket_private.setting('billing_portal_return_url')),
        'billing_portal:' || uid::text || ':' || pg_catalog.gen_random_uuid()::text,
        pg_catalog.jsonb_build_object('user_id', uid));
    INSERT INTO agentmarket_private.billing_portal_sessions (job_id, user_id) VALUES (new_job, uid);
    RETURN new_job;
END
$$;
COMMENT ON FUNCTION agentmarket.open_billing_portal() IS
    'Signed-in users: asks Stripe for a billing portal session of the caller''s customer (cancel the plan, change the payment method) through a stripe.create_billing_portal_session job; returns the job id (a session pending or made within the last minute is returned again). my_billing_portal() gives its url. 42501 without a signed-in user, P0002 when the user has no Stripe customer yet.';
GRANT EXECUTE ON FUNCTION agentmarket.open_billing_portal() TO authenticated;

CREATE FUNCTION agentmarket.my_billing_portal(OUT status text, OUT url text, OUT expires_at timestamptz, OUT error text)
RETURNS record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid uuid := agentmarket_private.require_caller();
    s agentmarket_private.billing_portal_sessions;
BEGIN
    SELECT * INTO s FROM agentmarket_private.billing_portal_sessions x
     WHERE x.user_id OPERATOR(pg_catalog.=) uid ORDER BY x.job_id DESC LIMIT 1;
    IF NOT FOUND THEN
        status := 'none';
    ELSIF s.status OPERATOR(pg_catalog.<>) 'ready' THEN
        status := s.status;
        error := s.error;
    ELSE
        -- Stripe's portal sessions are short-lived: open the url at once.
        url := s.url;
        expires_at := s.ready_at OPERATOR(pg_catalog.+) interval '5 minutes';
        status := CASE WHEN expires_at OPERATOR(pg_catalog.<) pg_catalog.now() THEN 'expired' ELSE 'ready' END;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket.my_billing_portal() IS
    'The caller''s latest billing portal session: status none, pending, ready (url to open, until expires_at), expired (call open_billing_portal again) or failed (error). 42501 without a signed-in user.';
GRANT EXECUTE ON FUNCTION agentmarket.my_billing_portal() TO authenticated;

-- stripe.create_billing_portal_session succeeded: the session's url is stored.
CREATE FUNCTION agentmarket_private.finish_billing_portal_session(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s agentmarket_private.billing_portal_sessions;
BEGIN
    SELECT * INTO s FROM agentmarket_private.billing_portal_sessions x
     WHERE x.job_id OPERATOR(pg_catalog.=) (p_job).id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;     -- enqueued by hand: the result stays on the job
    END IF;
    IF NOT (p_result OPERATOR(pg_catalog.->>) 'id') ~ '^bps_[A-Za-z0-9_]+$'
       OR NOT (p_result OPERATOR(pg_catalog.->>) 'url') ~ '^https://[^[:space:]]+$' THEN
        RAISE EXCEPTION 'billing portal result of job % has no session', (p_job).id
            USING ERRCODE = '22023', DETAIL = 'The result must be the created portal session with its https url.';
    END IF;
    IF (p_result OPERATOR(pg_catalog.->>) 'customer') IS DISTINCT FROM ((p_job).payload OPERATOR(pg_catalog.#>>) '{params,customer}') THEN
        RAISE EXCEPTION 'billing portal result of job % is for another customer', (p_job).id
            USING ERRCODE = '22023';
    END IF;
    UPDATE agentmarket_private.billing_portal_sessions x
       SET status = 'ready', stripe_session_id = p_result OPERATOR(pg_catalog.->>) 'id',
           url = p_result OPERATOR(pg_catalog.->>) 'url', ready_at = pg_catalog.now(), error = NULL
     WHERE x.job_id OPERATOR(pg_catalog.=) (p_job).id;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_billing_portal_session(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_billing_portal_session: stores the session id and url for the user who asked (22023 when the answer is not a portal session of the job''s customer).';

-- The session could not be made: the user is told.
CREATE FUNCTION agentmarket_private.billing_portal_session_dead(p_job agentmarket_private.jobs)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE agentmarket_private.billing_portal_sessions x
       SET status = 'failed', error = pg_catalog.left(COALESCE((p_job).last_error, 'the portal session could not be made'), 500)
     WHERE x.job_id OPERATOR(pg_catalog.=) (p_job).id AND x.status OPERATOR(pg_catalog.=) 'pending';
$$;
COMMENT ON FUNCTION agentmarket_private.billing_portal_session_dead(agentmarket_private.jobs) IS
    'Dead handler of stripe.create_billing_portal_session: the pending session failed, with the job''s last error.';

INSERT INTO agentmarket_private.job_kinds
    (kind, provider, endpoint, request_function, handler, dead_handler, max_attempts, description)
VALUES ('stripe.create_billing_portal_session', 'stripe', '/v1/billing_portal/sessions',
        'agentmarket_private.stripe_request(agentmarket_private.jobs)',
        'agentmarket_private.finish_billing_portal_session(agentmarket_private.jobs,jsonb)',
        'agentmarket_private.billing_portal_session_dead(agentmarket_private.jobs)', 8,
        'Create a Stripe billing portal session for a user''s customer; stores its url (billing_portal_sessions).');
