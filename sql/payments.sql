-- payments: credits bought through Stripe.  The webhook signature (HMAC-SHA256
-- against RFC 4231 vectors, pgcrypto and a vector made with Python's hmac),
-- buying a pack (purchase + Checkout job, its handler), and the webhook
-- endpoint: each event once, paid purchases granted once, amount/currency/
-- mode/user checked, expiry, other events ignored.  Calls are made as
-- PostgREST makes them.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(101);

------------------------------------------------------------------------------
-- HMAC-SHA256 and the signature
------------------------------------------------------------------------------
SELECT is(agentmarket_private.hmac_sha256_hex(decode(repeat('0b', 20), 'hex'), convert_to('Hi There', 'UTF8')),
    'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7', 'RFC 4231 test case 1');
SELECT is(agentmarket_private.hmac_sha256_hex(convert_to('Jefe', 'UTF8'), convert_to('what do ya want for nothing?', 'UTF8')),
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843', 'RFC 4231 test case 2 (key "Jefe")');
SELECT is(agentmarket_private.hmac_sha256_hex(decode(repeat('aa', 20), 'hex'), decode(repeat('dd', 50), 'hex')),
    '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe', 'RFC 4231 test case 3');
SELECT is(agentmarket_private.hmac_sha256_hex(decode(repeat('aa', 131), 'hex'),
                                              convert_to('Test Using Larger Than Block-Size Key - Hash Key First', 'UTF8')),
    '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54', 'RFC 4231 test case 6 (key longer than a block)');
CREATE EXTENSION pgcrypto SCHEMA public;
SELECT is((SELECT count(*)::int FROM (
              SELECT convert_to(md5(i::text), 'UTF8') AS k, convert_to(repeat(md5((i * 7)::text), i % 40), 'UTF8') AS m
                FROM generate_series(1, 300) i) x
            WHERE agentmarket_private.hmac_sha256_hex(k, m) <> encode(public.hmac(m, k, 'sha256'), 'hex')), 0,
    '300 keys and messages of 0 to 1,248 bytes: the same HMAC as pgcrypto');

-- A signature made by Python's hmac module for this payload, secret and time.
SELECT ok(verify_stripe_signature('{"id":"evt_kat","object":"event"}',
          't=1700000000,v1=ef98867c7cf825fc0edafd132a9dd50b59e7c6956529859abae5d0148d922c1d',
          'whsec_kat123', 300, to_timestamp(1700000000)),
    'a header made by Stripe''s scheme elsewhere (Python hmac) verifies');

-- pg_temp.sign(payload, secret, t): the header Stripe would send.
CREATE FUNCTION pg_temp.sign(p text, secret text, t bigint, scheme text DEFAULT 'v1') RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT 't=' || t || ',' || scheme || '=' ||
           agentmarket_private.hmac_sha256_hex(convert_to(secret, 'UTF8'), convert_to(t || '.' || p, 'UTF8'))
$$;
-- pg_temp.fails(sql): sqlstate: message / detail of the error it raises.
CREATE FUNCTION pg_temp.fails(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE s text; m text; d text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
    RETURN s || ': ' || m || ' / ' || d;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.sign(text, text, bigint, text), pg_temp.fails(text) TO PUBLIC;

SELECT ok(verify_stripe_signature('{"a":1}', pg_temp.sign('{"a":1}', 'whsec_abc', 1700000000), 'whsec_abc', 300,
          to_timestamp(1700000000)), 'a valid header verifies');
SELECT is(pg_temp.fails($$SELECT verify_stripe_signature('{"a":2}', pg_temp.sign('{"a":1}', 'whsec_abc', 1700000000),
                          'whsec_abc', 300, to_timestamp(1700000000))$$),
    'PT401: stripe signature does not match / No v1 signature in the header is the payload''s signature with the configured secret.',
    'a tampered payload is refused (PT401)');
SELECT is(pg_temp.fails($$SELECT verify_stripe_signature('{"a":1}', pg_temp.sign('{"a":1}', 'whsec_other', 1700000000),
                          'whsec_abc', 300, to_timestamp(1700000000))$$),
    'PT401: stripe signature does not match / No v1 signature in the header is the payload''s signature with the configured secret.',
    'a signature made with another secret is refused, and the error shows no secret');
SELECT ok(verify_stripe_signature('{"a":1}', 't=1700000000,v1=' || repeat('0', 64) || ',v1=zz,'
              || split_part(pg_temp.sign('{"a":1}', 'whsec_abc', 1700000000), ',', 2) || ',v0=abc',
          'whsec_abc', 300, to_timestamp(1700000000)),
    'any matching v1 among several (secret rolling) verifies; wrong and malformed v1 and v0 entries are skipped');
SELECT ok(verify_stripe_signature('{"a":1}', ' ' || replace(pg_temp.sign('{"a":1}', 'whsec_abc', 1700000000), ',', ', '),
          'whsec_abc', 300, to_timestamp(1700000000)), 'spaces after commas are allowed');
SELECT is(pg_temp.fails($$SELECT verify_stripe_signature('{"a":1}', pg_temp.sign('{"a":1}', 'whsec_abc', 1700000000, 'v0'),
                          'whsec_abc', 300, to_timestamp(1700000000))$$),
    'PT401: no v1 signature in stripe signature header / Only v1 (HMAC-SHA256) signatures are accepted and the header has none.',
    'a header with only a v0 signature is refused, even when its value is right');
SELECT ok(verify_stripe_signature('{"a":1}', pg_temp.sign('{"a":1}', 'whsec_abc', 1700000000), 'whsec_abc', 300,
          to_timestamp(1700000300)), 'exactly tolerance seconds old is accepted');
SELECT is(pg_temp.fails($$SELECT verify_stripe_signature('{"a":1}', pg_temp.sign('{"a":1}', 'whsec_abc', 1700000000),
                          'whsec_abc', 300, to_timestamp(1700000301))$$),
    'PT401: stripe signature timestamp is too old / The signature was made 301 seconds ago; at most 300 are accepted.',
    'a stale timestamp is refused (a replayed old delivery)');
SELECT is(pg_temp.fails($$SELECT verify_stripe_signature('{"a":1}', pg_temp.sign('{"a":1}', 'whsec_abc', 1700000000),
                          'whsec_abc', 300, to_timestamp(1699999000))$$),
    'PT401: stripe signature timestamp is in the future / The signature is dated 1000 seconds from now; at most 300 are accepted.',
    'a timestamp too far in the future is refused');
SELECT is(pg_temp.fails($$SELECT verify_stripe_signature('{"a":1}', pg_temp.sign('{"a":1}', 'whsec_abc', 1700000000),
                          'whsec_abc', 60, to_timestamp(1700000100))$$) LIKE 'PT401: stripe signature timestamp is too old%', true,
    'the tolerance is the argument''s');
SELECT is(array_agg(left(pg_temp.fails(format('SELECT verify_stripe_signature(%L, %L, %L, 300, to_timestamp(1700000000))',
                                             '{}', h, 'whsec_abc')), 5) ORDER BY n),
          array_fill('PT401'::text, ARRAY[9]), 'garbage headers are refused with PT401')
  FROM unnest(ARRAY['', 'garbage', 't=', 't=abc,v1=' || repeat('0', 64), 'v1=' || repeat('0', 64),
                    't=1700000000,t=1700000000,v1=' || repeat('0', 64), 't=-5,v1=' || repeat('0', 64),
                    '=x,t=1700000000', 't=1700000000']) WITH ORDINALITY g(h, n);
SELECT is(pg_temp.fails($$SELECT verify_stripe_signature('{}', NULL, 'whsec_abc')$$),
    'PT401: missing stripe signature header / The request carried no Stripe-Signature header.', 'a missing header is PT401');
SELECT is(left(pg_temp.fails($$SELECT verify_stripe_signature('{}', 't=1,v1=00', NULL)$$), 5), '22023', 'no secret is a bad argument');
SELECT is(left(pg_temp.fails($$SELECT verify_stripe_signature('{}', 't=1,v1=00', 'whsec_abc', 0)$$), 5), '22023',
    'a tolerance below one second is a bad argument');
SELECT is((SELECT provolatile::text FROM pg_proc WHERE oid = 'agentmarket.verify_stripe_signature(text,text,text,integer,timestamptz)'::regprocedure),
    's', 'verify_stripe_signature is STABLE (it reads now), not IMMUTABLE');

------------------------------------------------------------------------------
-- Buying a pack
------------------------------------------------------------------------------
SELECT agentmarket.configure('free_trial_credits', '0');
-- This suite's buyer keeps seven purchases pending (the default allows 3).
SELECT agentmarket.configure('max_pending_purchases', '10');
INSERT INTO users (id, email, role, stripe_customer_id) VALUES
  ('60000000-0000-4000-8000-00000000e001', 'buyer@pay.example', 'user', NULL),
  ('60000000-0000-4000-8000-00000000e002', 'subscriber@pay.example', 'user', 'cus_known2'),
  ('60000000-0000-4000-8000-00000000e003', 'third@pay.example', 'user', NULL);
CREATE TEMP TABLE p (name text PRIMARY KEY, id uuid);
GRANT ALL ON p TO PUBLIC;
CREATE FUNCTION pg_temp.pid(n text) RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT id FROM p WHERE name = n $$;
CREATE FUNCTION pg_temp.job(n text) RETURNS agentmarket_private.jobs LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT j FROM agentmarket_private.jobs j WHERE idempotency_key = 'checkout:' || (SELECT id FROM p WHERE name = n) $$;
GRANT EXECUTE ON FUNCTION pg_temp.pid(text), pg_temp.job(text) TO PUBLIC;

SET LOCAL ROLE anon;
SELECT is((SELECT string_agg(code || ':' || credits || ':' || amount_cents || ':' || kind, ',') FROM credit_packs()),
    'topup_s:500:500:topup,topup_m:1100:1000:topup,topup_l:6000:5000:topup,pro_monthly:2500:1900:subscription',
    'anyone lists the packs on sale, top-ups first');
SELECT throws_ok($$SELECT buy_credits('topup_m')$$, '42501', NULL, 'anon cannot buy credits');
RESET ROLE;

SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"role": "authenticated"}', true);
SELECT throws_ok($$SELECT buy_credits('topup_m')$$, '42501', 'not signed in', 'a JWT without a user cannot buy');
SELECT set_config('request.jwt.claims', '{"sub": "60000000-0000-4000-8000-00000000e001", "role": "authenticated"}', true);
SELECT throws_ok($$SELECT buy_credits('topup_xxl')$$, '22023', 'unknown credit pack ''topup_xxl''', 'an unknown pack is refused');
SELECT throws_ok($$SELECT buy_credits(NULL)$$, '22023', 'unknown credit pack null', 'a NULL pack is refused');
INSERT INTO p SELECT 'm', (buy_credits('topup_m')).id;
SELECT is((SELECT kind || '/' || product || '/' || credits || '/' || amount_cents || '/' || currency || '/' || status
             FROM purchases WHERE id = pg_temp.pid('m')),
    'topup/topup_m/1100/1000/usd/pending', 'buying makes a pending purchase with the pack''s credits and price');
SELECT is((SELECT count(*)::int FROM purchases), 1, 'the buyer sees their purchase');
INSERT INTO p SELECT 's', (buy_credits('topup_s')).id;
INSERT INTO p SELECT 'l', (buy_credits('topup_l')).id;
-- A pending purchase of the same pack is reused while its Checkout session
-- has 5 minutes left: these three are bought once the previous one's is
-- about to expire.
SELECT is((buy_credits('topup_s')).id, pg_temp.pid('s'), 'buying a pack again returns its pending purchase');
RESET ROLE;
UPDATE purchases SET expires_at = now() + interval '1 minute' WHERE id = pg_temp.pid('s');
SET LOCAL ROLE authenticated;
INSERT INTO p SELECT 'x', (buy_credits('topup_s')).id;
RESET ROLE;
UPDATE purchases SET expires_at = now() + interval '1 minute' WHERE id = pg_temp.pid('x');
SET LOCAL ROLE authenticated;
INSERT INTO p SELECT 'y', (buy_credits('topup_s')).id;
RESET ROLE;
UPDATE purchases SET expires_at = now() + interval '1 minute' WHERE id = pg_temp.pid('y');
SET LOCAL ROLE authenticated;
INSERT INTO p SELECT 'z', (buy_credits('topup_s')).id;
RESET ROLE;
SELECT is((pg_temp.job('m')).kind, 'stripe.create_checkout_session', 'a Checkout session job is enqueued with the purchase');
SELECT is((pg_temp.job('m')).payload - 'params',
          jsonb_build_object('purchase_id', pg_temp.pid('m'), 'user_id', '60000000-0000-4000-8000-00000000e001'),
    'the job names the purchase and the user for its handler');
SELECT is((pg_temp.job('m')).payload -> 'params',
          jsonb_build_object('mode', 'payment', 'customer_email', 'buyer@pay.example', 'customer_creation', 'always',
              'client_reference_id', pg_temp.pid('m'),
              'success_url', 'https://agentmarket.example/billing/success',
              'cancel_url', 'https://agentmarket.example/billing/cancel',
              'metadata', jsonb_build_object('purchase_id', pg_temp.pid('m'), 'user_id', '60000000-0000-4000-8000-00000000e001'),
              'payment_intent_data', jsonb_build_object('metadata', jsonb_build_object('purchase_id', pg_temp.pid('m'),
                                                                                        'user_id', '60000000-0000-4000-8000-00000000e001')),
              'line_items', jsonb_build_array(jsonb_build_object('quantity', 1, 'price_data',
                  jsonb_build_object('currency', 'usd', 'unit_amount', 1000, 'product_data', jsonb_build_object('name', '1,100 credits'))))),
    'a top-up is a payment-mode session for the pack''s price, by email when the user has no Stripe customer, asking Checkout to create one');

SELECT throws_ok($$SELECT agentmarket.configure('checkout_success_url', 'http://insecure.example/ok')$$, '22023', NULL,
    'the success URL must be https');
SELECT agentmarket.configure('checkout_success_url', 'https://app.example/paid?s={CHECKOUT_SESSION_ID}');
UPDATE agentmarket_private.credit_packs SET active = false WHERE code = 'topup_l';
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "60000000-0000-4000-8000-00000000e002", "role": "authenticated"}', true);
SELECT throws_ok($$SELECT buy_credits('topup_l')$$, '22023', NULL, 'a pack no longer on sale is refused');
INSERT INTO p SELECT 'pro', (buy_credits('pro_monthly')).id;
SELECT is((SELECT count(*)::int FROM purchases), 1, 'a user sees only their own purchases');
RESET ROLE;
SELECT is((pg_temp.job('pro')).payload #>> '{params,mode}' || ' ' || ((pg_temp.job('pro')).payload #>> '{params,customer}')
          || ' ' || ((pg_temp.job('pro')).payload #>> '{params,line_items,0,price_data,recurring,interval}')
          || ' ' || ((pg_temp.job('pro')).payload #>> '{params,subscription_data,metadata,purchase_id}' = pg_temp.pid('pro')::text)
          || ' ' || ((pg_temp.job('pro')).payload #>> '{params,success_url}'),
    'subscription cus_known2 month true https://app.example/paid?s={CHECKOUT_SESSION_ID}',
    'a plan is a subscription-mode session with a monthly price, for the known customer, to the configured URL');
SELECT is((SELECT kind FROM purchases WHERE id = pg_temp.pid('pro')), 'subscription', 'a plan purchase is a subscription');

-- The sidecar creates the sessions and reports them.
SELECT is((SELECT count(*)::int FROM agentmarket_private.claim_jobs('w1', 100, '1 minute')), 7, 'the sidecar claims the seven jobs');
SELECT ok(agentmarket_private.finish_job((pg_temp.job('m')).id,
          '{"id": "cs_test_m", "url": "https://checkout.stripe.com/pay/cs_test_m", "expires_at": 1700086400}', 'w1'),
    'the Checkout session is reported');
SELECT is((SELECT stripe_checkout_session_id || ' ' || checkout_url || ' ' || extract(epoch FROM expires_at)::bigint
             FROM purchases WHERE id = pg_temp.pid('m')),
    'cs_test_m https://checkout.stripe.com/pay/cs_test_m 1700086400', 'the purchase gets the session id, its url and expiry');
SELECT throws_ok(format('SELECT agentmarket_private.finish_job(%s, %L, %L)', (pg_temp.job('s')).id, '{"object": "checkout.session"}', 'w1'),
    '22023', NULL, 'a result without a session id is refused (the job fails and is retried)');
SELECT is((SELECT outcome FROM agentmarket_private.report_jobs('w1', jsonb_build_array(
              jsonb_build_object('id', (pg_temp.job('s')).id, 'ok', true, 'result', '{"id": "cs_test_s", "url": "https://checkout.stripe.com/pay/cs_test_s"}'::jsonb),
              jsonb_build_object('id', (pg_temp.job('pro')).id, 'ok', true, 'result', '{"id": "cs_test_pro", "url": "https://checkout.stripe.com/pay/cs_test_pro"}'::jsonb),
              jsonb_build_object('id', (pg_temp.job('x')).id, 'ok', true, 'result', '{"id": "cs_test_x"}'::jsonb),
              jsonb_build_object('id', (pg_temp.job('y')).id, 'ok', true, 'result', '{"id": "cs_test_y"}'::jsonb),
              jsonb_build_object('id', (pg_temp.job('z')).id, 'ok', true, 'result', '{"id": "cs_test_z"}'::jsonb))) LIMIT 1),
    'succeeded', 'reports go through the handler');
SELECT is(agentmarket_private.fail_job((pg_temp.job('l')).id, 'Stripe: invalid currency', NULL, true, 'w1'), 'dead',
    'a Checkout session that cannot be made is dead');
SELECT is((SELECT status FROM purchases WHERE id = pg_temp.pid('l')), 'failed', 'and its purchase has failed');
SELECT is((SELECT string_agg(status, ',' ORDER BY name) FROM purchases JOIN p USING (id) WHERE name IN ('m', 's', 'pro')),
    'pending,pending,pending', 'the other purchases wait for payment');

------------------------------------------------------------------------------
-- Webhooks
------------------------------------------------------------------------------
-- pg_temp.session_event(id, type, purchase, session, amount, currency, mode, payment_status): an event's JSON.
CREATE FUNCTION pg_temp.ev(eid text, etype text, purchase text, sess text, amount bigint DEFAULT 1000,
                           cur text DEFAULT 'usd', smode text DEFAULT 'payment', paid text DEFAULT 'paid',
                           usr text DEFAULT '60000000-0000-4000-8000-00000000e001') RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', eid, 'object', 'event', 'type', etype, 'created', 1700000000,
        'data', jsonb_build_object('object', jsonb_build_object(
            'id', sess, 'object', 'checkout.session', 'mode', smode, 'amount_total', amount, 'currency', cur,
            'payment_status', paid, 'client_reference_id', pg_temp.pid(purchase),
            'metadata', jsonb_build_object('purchase_id', pg_temp.pid(purchase), 'user_id', usr),
            'customer', 'cus_from_checkout',
            'payment_intent', CASE smode WHEN 'payment' THEN 'pi_' || sess END,
            'subscription', CASE smode WHEN 'subscription' THEN 'sub_' || sess END)))::text
$$;
-- pg_temp.deliver(payload): handle_stripe_webhook as the HTTP edge calls it (service_role), signed now.
CREATE FUNCTION pg_temp.deliver(payload text, secret text DEFAULT 'whsec_paytest1') RETURNS jsonb LANGUAGE sql AS $$
    SELECT agentmarket.handle_stripe_webhook(payload, pg_temp.sign(payload, secret, floor(extract(epoch FROM now()))::bigint))
$$;
CREATE FUNCTION pg_temp.topup(u uuid) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT subscription_credits || '/' || topup_credits FROM agentmarket_private.credit_state_of(u) $$;
GRANT EXECUTE ON FUNCTION pg_temp.ev(text, text, text, text, bigint, text, text, text, text),
    pg_temp.deliver(text, text), pg_temp.topup(uuid) TO PUBLIC;

SELECT set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role": "service_role"}', true);
SELECT throws_ok($$SELECT pg_temp.deliver(pg_temp.ev('evt_m1', 'checkout.session.completed', 'm', 'cs_test_m'))$$,
    '55000', 'stripe webhook secret is not configured', 'without a configured secret nothing is accepted (55000)');
SELECT lives_ok($$SELECT agentmarket.configure('stripe_webhook_secret', 'whsec_paytest1')$$, 'the platform configures the secret');
SELECT throws_ok($$SELECT pg_temp.deliver(pg_temp.ev('evt_m1', 'checkout.session.completed', 'm', 'cs_test_m'), 'whsec_forged')$$,
    'PT401', 'stripe signature does not match', 'a forged event is refused (PT401)');
SELECT throws_ok($$SELECT handle_stripe_webhook(pg_temp.ev('evt_m1', 'checkout.session.completed', 'm', 'cs_test_m'),
                     pg_temp.sign(pg_temp.ev('evt_m1', 'checkout.session.completed', 'm', 'cs_test_m'), 'whsec_paytest1',
                                  floor(extract(epoch FROM now()))::bigint - 301))$$,
    'PT401', 'stripe signature timestamp is too old', 'a delivery older than webhook_tolerance_seconds is refused');
SELECT throws_ok($$SELECT handle_stripe_webhook('{}', NULL)$$, 'PT401', 'missing stripe signature header', 'no header: PT401');
SELECT throws_ok($$SELECT pg_temp.deliver('not json')$$, '22023', 'webhook payload is not JSON', 'a signed body that is not JSON is refused');
SELECT throws_ok($$SELECT pg_temp.deliver('{"type": "x"}')$$, '22023', 'webhook payload is not a stripe event', 'an event needs an id');
SELECT is(pg_temp.topup('60000000-0000-4000-8000-00000000e001'), '0/0', 'nothing was granted by refused deliveries');
SELECT is((SELECT status FROM purchases WHERE id = pg_temp.pid('m')), 'pending', 'and the purchase is still pending');

SELECT is(pg_temp.deliver(pg_temp.ev('evt_m1', 'checkout.session.completed', 'm', 'cs_test_m')) - 'purchase_id',
    '{"event": "evt_m1", "type": "checkout.session.completed", "outcome": "applied", "credits": 1100,
      "credit_type": "topup", "available_credits": 1100}'::jsonb,
    'checkout.session.completed applies: the credits are granted');
SELECT is((SELECT status || ' ' || stripe_payment_intent_id || ' ' || (paid_at = now()) || ' ' || (checkout_url IS NULL)
             FROM purchases WHERE id = pg_temp.pid('m')),
    'paid pi_cs_test_m true true', 'the purchase is paid, with its payment intent and time');
SELECT is(pg_temp.topup('60000000-0000-4000-8000-00000000e001'), '0/1100', 'a top-up goes to the top-up pot');
SELECT is((SELECT type || ' ' || amount || ' ' || credit_type || ' ' || stripe_payment_id FROM credit_transactions
            WHERE user_id = '60000000-0000-4000-8000-00000000e001'),
    'topup_purchase 1100 topup pi_cs_test_m', 'one topup_purchase ledger row, with the payment intent');
SELECT is((SELECT stripe_customer_id FROM users WHERE id = '60000000-0000-4000-8000-00000000e001'), 'cus_from_checkout',
    'the customer Checkout made becomes the user''s');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_m1', 'checkout.session.completed', 'm', 'cs_test_m')) ->> 'outcome', 'duplicate',
    'the same event again is a duplicate');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_m1', 'checkout.session.completed', 'm', 'cs_test_m')) ->> 'first_outcome', 'applied',
    'a duplicate returns the first outcome');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_m2', 'checkout.session.async_payment_succeeded', 'm', 'cs_test_m'))
          - 'purchase_id' - 'event' - 'type',
    '{"outcome": "ignored", "reason": "the purchase is paid"}', 'another event paying a paid purchase is ignored');
SELECT is(pg_temp.topup('60000000-0000-4000-8000-00000000e001'), '0/1100', 'repeats granted nothing');
SELECT is((SELECT count(*)::int FROM credit_transactions WHERE user_id = '60000000-0000-4000-8000-00000000e001'), 1,
    'still one ledger row');
RESET ROLE;
-- Even a purchase put back to pending by hand is never granted twice: the
-- grant's idempotency key is the purchase.
UPDATE purchases SET status = 'pending', paid_at = NULL WHERE id = pg_temp.pid('m');
SELECT set_config('role', 'service_role', true);
SELECT is(pg_temp.deliver(pg_temp.ev('evt_m3', 'checkout.session.completed', 'm', 'cs_test_m')) ->> 'outcome', 'applied',
    'a new event for a purchase reset to pending is applied');
SELECT is(pg_temp.topup('60000000-0000-4000-8000-00000000e001') || ' ' ||
          (SELECT count(*) FROM credit_transactions WHERE user_id = '60000000-0000-4000-8000-00000000e001'),
    '0/1100 1', 'but the grant keyed by the purchase returns its first outcome: no second grant');

-- Checks before anything is applied.
SELECT is(pg_temp.deliver(pg_temp.ev('evt_s1', 'checkout.session.completed', 's', 'cs_test_s', 400)) - 'purchase_id',
    '{"event": "evt_s1", "type": "checkout.session.completed", "outcome": "rejected",
      "reason": "paid 400 usd, the purchase costs 500 usd"}', 'a paid amount that is not the purchase''s is rejected');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_s2', 'checkout.session.completed', 's', 'cs_test_s', 500, 'eur')) ->> 'reason',
    'paid 500 eur, the purchase costs 500 usd', 'another currency is rejected');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_s3', 'checkout.session.completed', 's', 'cs_test_s', 500, 'usd', 'subscription')) ->> 'reason',
    'a topup purchase paid in mode subscription', 'the wrong mode is rejected');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_s4', 'checkout.session.completed', 's', 'cs_test_other', 500)) ->> 'reason',
    'the purchase belongs to another checkout session', 'another session for the purchase is rejected');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_s5', 'checkout.session.completed', 's', 'cs_test_s', 500, usr => '60000000-0000-4000-8000-00000000e002')) ->> 'reason',
    'the session''s user is not the purchase''s', 'a session of another user is rejected');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_s6', 'checkout.session.completed', 'nope', 'cs_test_s', 500)) ->> 'reason',
    'no purchase matches the session', 'a session of no purchase is rejected');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_s7', 'checkout.session.completed', 's', 'cs_test_s', 500, paid => 'unpaid')) ->> 'outcome',
    'ignored', 'a completed session whose payment is still pending is ignored (async_payment_succeeded follows)');
SELECT is((SELECT status FROM purchases WHERE id = pg_temp.pid('s')) || ' ' || pg_temp.topup('60000000-0000-4000-8000-00000000e001'),
    'pending 0/1100', 'after rejected and ignored events the purchase is pending and nothing was granted');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_s1', 'checkout.session.completed', 's', 'cs_test_s', 400)) ->> 'first_outcome',
    'rejected', 'a rejected event delivered again stays rejected');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_s8', 'checkout.session.async_payment_succeeded', 's', 'cs_test_s', 500)) ->> 'credits',
    '500', 'the delayed payment succeeding applies the purchase');

-- Plans.
SELECT is(pg_temp.deliver(pg_temp.ev('evt_p1', 'checkout.session.completed', 'pro', 'cs_test_pro', 1900, 'usd', 'subscription',
                                     usr => '60000000-0000-4000-8000-00000000e002')) ->> 'outcome',
    'applied', 'a paid plan applies');
SELECT is((SELECT status || ' ' || stripe_subscription_id FROM purchases WHERE id = pg_temp.pid('pro')), 'paid sub_cs_test_pro',
    'the plan purchase is paid with its subscription id');
SELECT is(pg_temp.topup('60000000-0000-4000-8000-00000000e002'), '2500/0', 'a plan''s credits go to the subscription pot');
SELECT is((SELECT type FROM credit_transactions WHERE user_id = '60000000-0000-4000-8000-00000000e002'), 'subscription_refresh',
    'as a subscription_refresh row');
SELECT is((SELECT stripe_customer_id FROM users WHERE id = '60000000-0000-4000-8000-00000000e002'), 'cus_known2',
    'a known customer id is kept');

-- Expiry and failure.
SELECT is(pg_temp.deliver(pg_temp.ev('evt_x1', 'checkout.session.expired', 'x', 'cs_test_x', 500, paid => 'unpaid')) - 'purchase_id',
    '{"event": "evt_x1", "type": "checkout.session.expired", "outcome": "applied", "status": "expired"}',
    'checkout.session.expired applies');
SELECT is((SELECT status FROM purchases WHERE id = pg_temp.pid('x')), 'expired', 'the purchase has expired');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_x2', 'checkout.session.completed', 'x', 'cs_test_x', 500)) ->> 'reason',
    'the purchase is expired', 'an expired purchase is never paid by a late event');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_x3', 'checkout.session.expired', 'm', 'cs_test_m', 1000)) ->> 'reason',
    'the purchase is paid', 'expiry of a paid purchase is ignored');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_y1', 'checkout.session.async_payment_failed', 'y', 'cs_test_y', 500)) ->> 'status',
    'failed', 'a delayed payment that failed ends the purchase as failed');
SELECT is((SELECT status FROM purchases WHERE id = pg_temp.pid('y')), 'failed', 'the purchase has failed');

-- Other events and order.
SELECT is(pg_temp.deliver('{"id": "evt_o1", "type": "customer.created", "data": {"object": {}}}'),
    '{"event": "evt_o1", "type": "customer.created", "outcome": "ignored", "reason": "event type not handled"}',
    'other event types are recorded as ignored');
SELECT is(pg_temp.deliver('{"id": "evt_o1", "type": "customer.created", "data": {"object": {}}}') ->> 'outcome', 'duplicate',
    'an ignored event delivered again is a duplicate');
-- Events in any order: expiry is delivered after the completion of z.
SELECT is(pg_temp.deliver(pg_temp.ev('evt_z2', 'checkout.session.completed', 'z', 'cs_test_z', 500)) ->> 'outcome', 'applied',
    'completion of z');
SELECT is(pg_temp.deliver(pg_temp.ev('evt_z1', 'checkout.session.expired', 'z', 'cs_test_z', 500)) ->> 'outcome', 'ignored',
    'an expiry arriving after the completion is ignored');

RESET ROLE;
SELECT is((SELECT string_agg(event_id || ':' || outcome, ',' ORDER BY event_id) FROM agentmarket_private.processed_webhook_events),
    'evt_m1:applied,evt_m2:ignored,evt_m3:applied,evt_o1:ignored,evt_p1:applied,evt_s1:rejected,evt_s2:rejected,evt_s3:rejected,evt_s4:rejected,evt_s5:rejected,evt_s6:rejected,evt_s7:ignored,evt_s8:applied,evt_x1:applied,evt_x2:ignored,evt_x3:ignored,evt_y1:applied,evt_z1:ignored,evt_z2:applied',
    'every handled event is recorded once with its outcome; refused deliveries are not');
SELECT is((SELECT reason FROM agentmarket_private.processed_webhook_events WHERE event_id = 'evt_s1'),
    'paid 400 usd, the purchase costs 500 usd', 'a rejection keeps its reason');

-- Who may call.
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT handle_stripe_webhook('{}', 't=1,v1=00')$$, '42501', NULL, 'authenticated cannot deliver webhooks');
SELECT throws_ok($$SELECT verify_stripe_signature('{}', 't=1,v1=00', 'whsec_x')$$, '42501', NULL,
    'authenticated cannot use the signature check');
RESET ROLE;
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT handle_stripe_webhook('{}', 't=1,v1=00')$$, '42501', NULL, 'anon cannot deliver webhooks');
RESET ROLE;
SET LOCAL ROLE service_role;
SELECT throws_ok($$SELECT * FROM agentmarket_private.processed_webhook_events$$, '42501', NULL,
    'service_role reads no private table');
SELECT throws_ok($$SELECT * FROM agentmarket_private.credit_packs$$, '42501', NULL, 'nor the packs table');
SELECT throws_ok($$SELECT agentmarket_private.hmac_sha256_hex('a', 'b')$$, '42501', NULL, 'nor the HMAC helper');
RESET ROLE;
SELECT is((SELECT handler::text || ' ' || dead_handler::text FROM agentmarket_private.job_kinds WHERE kind = 'stripe.create_checkout_session'),
    'agentmarket_private.finish_checkout_session(agentmarket_private.jobs,jsonb) agentmarket_private.checkout_session_dead(agentmarket_private.jobs)',
    'the Checkout kind has its handlers in the registry');
SELECT is_empty('SELECT * FROM agentmarket.verify_ledger()', 'balance = sum of ledger for everyone: verify_ledger() is empty');

SELECT * FROM finish();
ROLLBACK;
