-- books: credit lots and the books that prove themselves.  First the rules
-- one by one (what a lot is worth, burn order, gross = value consumed, a
-- creator never paid more than users paid), then random journeys (packs at
-- several prices including a discounted plan, trial credits, spending on
-- several creators' agents, refunds, refreshes, holds, payouts that succeed
-- or die, and Stripe's lifecycle: renewals at full and discounted prices,
-- cancellations, partial and full refunds, disputes opened, won and lost,
-- partial and full transfer reversals, late events) with verify_books()
-- checked empty after every step.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(26);

SELECT agentmarket.configure('free_trial_credits', '100');
SELECT agentmarket.configure('stripe_webhook_secret', 'whsec_books');
SELECT agentmarket.configure('payout_holding_days', '0');
SELECT agentmarket.configure('payout_minimum_usd', '0');

-- pg_temp.sign(payload, secret): the Stripe-Signature header for now.
CREATE FUNCTION pg_temp.sign(p text, secret text DEFAULT 'whsec_books') RETURNS text
LANGUAGE sql AS $$
    SELECT 't=' || extract(epoch FROM now())::bigint || ',v1=' ||
           agentmarket_private.hmac_sha256_hex(convert_to(secret, 'UTF8'),
               convert_to(extract(epoch FROM now())::bigint || '.' || p, 'UTF8'))
$$;
-- pg_temp.deliver(event): signs and delivers an event; returns its outcome.
CREATE FUNCTION pg_temp.deliver(ev jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT agentmarket.handle_stripe_webhook(ev::text, pg_temp.sign(ev::text)) ->> 'outcome'
$$;
-- pg_temp.buy(user, pack): a purchase paid through Checkout, as Stripe reports it.
CREATE FUNCTION pg_temp.buy(u uuid, pack text) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    p agentmarket_private.credit_packs;
    pur uuid;
    n text := replace(gen_random_uuid()::text, '-', '');
BEGIN
    SELECT * INTO STRICT p FROM agentmarket_private.credit_packs WHERE code = pack;
    INSERT INTO agentmarket.purchases (user_id, kind, product, credits, amount_cents, currency)
    VALUES (u, p.kind, p.code, p.credits, p.amount_cents, p.currency) RETURNING id INTO pur;
    IF pg_temp.deliver(jsonb_build_object('id', 'evt_' || n, 'object', 'event', 'type', 'checkout.session.completed',
           'data', jsonb_build_object('object', jsonb_build_object(
               'id', 'cs_' || n, 'object', 'checkout.session',
               'mode', CASE p.kind WHEN 'topup' THEN 'payment' ELSE 'subscription' END,
               'amount_total', p.amount_cents, 'currency', p.currency, 'payment_status', 'paid',
               'client_reference_id', pur, 'metadata', jsonb_build_object('purchase_id', pur, 'user_id', u),
               'payment_intent', CASE p.kind WHEN 'topup' THEN 'pi_' || n END,
               'subscription', CASE p.kind WHEN 'subscription' THEN 'sub_' || n END,
               'invoice', CASE p.kind WHEN 'subscription' THEN 'in_' || n END,
               'customer', 'cus_' || n)))) <> 'applied' THEN
        RAISE EXCEPTION 'purchase % was not applied', pur;
    END IF;
    RETURN pur;
END $$;
-- pg_temp.session(user, agent n, cost): a session paid, ended with its metering.
CREATE FUNCTION pg_temp.session(u uuid, agent int, cost numeric) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE s agentmarket.sessions;
BEGIN
    s := agentmarket.start_session((SELECT i.id FROM agentmarket.agent_instances i
                                     WHERE i.user_id = u AND i.fly_machine_id = 'bk' || agent));
    PERFORM agentmarket.end_session(s.id, 60, 100, 100, cost);
    RETURN s.id;
END $$;
-- pg_temp.earned(user, agent n, cost): such a session's earnings row.
CREATE FUNCTION pg_temp.earned(u uuid, agent int, cost numeric) RETURNS agentmarket.creator_earnings LANGUAGE plpgsql AS $$
DECLARE s uuid := pg_temp.session(u, agent, cost); e agentmarket.creator_earnings;
BEGIN
    SELECT * INTO e FROM agentmarket.creator_earnings x WHERE x.session_id = s;
    RETURN e;
END $$;
CREATE FUNCTION pg_temp.books() RETURNS text LANGUAGE sql AS $$
    SELECT COALESCE(string_agg(subject || ' ' || id || ': ' || problem || ' (' || recorded || ' vs ' || expected || ')', '; '), '')
      FROM agentmarket.verify_books()
$$;

-- Three creators, each with one per_session agent at its own price, all with
-- Connect accounts; users hire every agent.
INSERT INTO users (id, email, role, stripe_connect_account_id)
SELECT ('b0000000-0000-4000-8000-0000000000c' || n)::uuid, 'creator' || n || '@books.example', 'creator', 'acct_books' || n
  FROM generate_series(1, 3) n;
INSERT INTO agentmarket_private.connect_accounts (account_id, charges_enabled, payouts_enabled, transfers_active,
                                                  details_submitted, event_created)
SELECT 'acct_books' || n, true, true, true, true, 1 FROM generate_series(1, 3) n;
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, published_at)
SELECT ('b0000000-0000-4000-8000-0000000000a' || n)::uuid, ('b0000000-0000-4000-8000-0000000000c' || n)::uuid,
       'books-agent-' || n, 'Agent ' || n, 't', 'd', 'research', 'published', 'per_session',
       (ARRAY[25, 40, 7])[n], 'https://x/' || n, now()
  FROM generate_series(1, 3) n;
CREATE FUNCTION pg_temp.uid(n int) RETURNS uuid LANGUAGE sql AS $$
    SELECT ('b0000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid
$$;
CREATE FUNCTION pg_temp.new_user(n int) RETURNS uuid LANGUAGE sql AS $$
    INSERT INTO agentmarket.users (id, email) VALUES
      (('b0000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'user' || n || '@books.example');
    INSERT INTO agentmarket.agent_instances (user_id, agent_id, fly_app_name, fly_machine_id, status)
    SELECT ('b0000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
           ('b0000000-0000-4000-8000-0000000000a' || a)::uuid, 'bk-' || n || '-' || a, 'bk' || a, 'running'
      FROM generate_series(1, 3) a;
    SELECT ('b0000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid
$$;

------------------------------------------------------------------------------
-- What lots are worth
------------------------------------------------------------------------------
SELECT pg_temp.new_user(1) IS NOT NULL;
SELECT is((SELECT credits || ' ' || value_usd || ' ' || paid || ' ' || grant_type FROM agentmarket_private.credit_lots_now
            WHERE user_id = pg_temp.uid(1)), '100 0.0000 false free_trial',
    'the free trial is a promotional lot worth promotional_credit_value_usd each: 0 by default');
SELECT is((SELECT creator_amount || '/' || gross_revenue FROM pg_temp.earned(pg_temp.uid(1), 1, 0)), '0.0000/0.0000',
    'a session paid with free-trial credits earns its creator nothing: sign-up farming is not cash');
SELECT pg_temp.buy(pg_temp.uid(1), 'pro_monthly') IS NOT NULL;
SELECT is((SELECT credits || ' ' || value_usd || ' ' || paid || ' ' || (expires_at > now()) FROM agentmarket_private.credit_lots_now
            WHERE user_id = pg_temp.uid(1) AND paid), '2500 19.0000 true true',
    'a plan''s credits are a paid lot worth what the user paid (USD 19.00 for 2,500), expiring with the period');
-- 75 trial credits are left, without expiry: the plan's lot, which expires, goes first.
SELECT is((SELECT gross_revenue::text FROM pg_temp.earned(pg_temp.uid(1), 2, 0)),
    '0.3040', 'burn order: the plan''s lot (expires first) is spent before the trial''s; 40 x 19.00 / 2500 = 0.3040');
SELECT is((SELECT (creator_amount = trunc((0.3040 - compute_cost) * 0.85, 4) AND gross_revenue = 0.3040 AND compute_cost > 0)::text
             FROM pg_temp.earned(pg_temp.uid(1), 2, 0.01)), 'true',
    'the creator earns (0.3040 - compute cost) x 0.85 of what the credits were worth, not of 40 x 0.01');
SELECT is((SELECT remaining || ' ' || remaining_value_usd FROM agentmarket_private.credit_lots_now
            WHERE user_id = pg_temp.uid(1) AND paid), '2420 18.3920', 'the lot keeps what is left of its credits and value');
SELECT is((SELECT is_head || ' ' || l.remaining || ' ' || l.remaining_value_usd FROM agentmarket_private.credit_lots_now n
             JOIN agentmarket_private.credit_lots l USING (id) WHERE n.user_id = pg_temp.uid(1) AND n.paid), 'true 2500 19.0000',
    'those deductions took from the head lot the balance row carries; the lot row itself is written back only when a PL/pgSQL writer needs it');
-- A top-up at USD 10.00 for 1,100 credits: a credit is worth 0.00909..., values round down per take.
SELECT pg_temp.new_user(2) IS NOT NULL;
SELECT agentmarket.refresh_subscription_credits(pg_temp.uid(2), 0) IS NOT NULL;
SELECT pg_temp.buy(pg_temp.uid(2), 'topup_m') IS NOT NULL;
SELECT is((SELECT gross_revenue::text FROM pg_temp.earned(pg_temp.uid(2), 1, 0)),
    '0.2272', '25 of 1,100 credits worth 10.00: 0.2272 (rounded down to 1e-4 USD)');
CREATE TEMP TABLE later AS SELECT n, (pg_temp.earned(pg_temp.uid(2), 1, 0)).gross_revenue FROM generate_series(2, 44) n;
SELECT is((SELECT string_agg(DISTINCT gross_revenue::text, ',') FROM later WHERE n >= 42), '0.2273',
    'later takes recover the rounding: the last 25-credit sessions are worth 0.2273');
SELECT is((SELECT pg_catalog.sum(-t.value_usd)::text FROM credit_transactions t
            WHERE t.user_id = pg_temp.uid(2) AND t.type = 'session_deduct'), '10.0000',
    'the credit that empties a lot takes what is left of its value: the 1,100 credits were worth exactly 10.00');
SELECT throws_ok(format('SELECT start_session(%L)', (SELECT id FROM agent_instances WHERE user_id = pg_temp.uid(2) AND fly_machine_id = 'bk3')),
    'PT402', NULL, 'an empty balance still refuses a session');
-- Both pots and several lots in one deduction: the slow path, lot by lot.
SELECT pg_temp.new_user(3) IS NOT NULL;
SELECT agentmarket.configure('promotional_credit_value_usd', '0.005');
SELECT grant_credits(pg_temp.uid(3), 10, 'topup', 'topup_purchase', 'goodwill') IS NOT NULL;
SELECT pg_temp.buy(pg_temp.uid(3), 'topup_s') IS NOT NULL;
SELECT is((SELECT value_usd::text FROM agentmarket_private.credit_lots_now WHERE user_id = pg_temp.uid(3) AND grant_type = 'topup_purchase' AND NOT paid),
    '0.0500', 'an operator''s grant is promotional: 10 credits x the configured 0.005');
SELECT is((SELECT row(x.*)::text FROM deduct_credits(pg_temp.uid(3), 115) x), '(0,495,0,495)',
    'a deduction across the trial lot, the goodwill lot and a paid lot');
SELECT is((SELECT string_agg(credit_type || ':' || amount || ':' || value_usd, ' ' ORDER BY lot_id) FROM credit_transactions
            WHERE user_id = pg_temp.uid(3) AND type = 'session_deduct'),
    'subscription:-100:0.0000 topup:-10:-0.0500 topup:-5:-0.0500',
    'one ledger row per lot: the whole subscription pot, then the oldest top-up lot, then the paid one, each with the value it took');
SELECT is((SELECT row(x.*)::text FROM refund_credits(pg_temp.uid(3), 112) x), '(97,510,0,607)',
    'a refund gives credits back to their lots, top-up first');
SELECT is((SELECT string_agg(l.grant_type || ':' || l.remaining || ':' || l.remaining_value_usd, ' ' ORDER BY l.id)
             FROM agentmarket_private.credit_lots_now l WHERE l.user_id = pg_temp.uid(3)),
    'free_trial:97:0.0000 topup_purchase:10:0.0500 topup_purchase:500:5.0000', 'with the value each took');
SELECT agentmarket.configure('promotional_credit_value_usd', NULL);
SELECT is(pg_temp.books(), '', 'the books balance after the rules above');
-- A pot that disagrees with its lots is found.
SET session_replication_role = replica;
UPDATE agentmarket_private.credit_lots SET remaining = remaining - 1, remaining_value_usd = remaining_value_usd
 WHERE user_id = pg_temp.uid(3) AND paid;
RESET session_replication_role;
SELECT is((SELECT string_agg(subject || ':' || problem || ':' || recorded || ':' || expected, ' | ' ORDER BY problem)
             FROM verify_books()),
    'pot:balance differs from the sum of its lots:510:509 | lot:lot remaining differs from its ledger rows:499:500',
    'verify_books() names a lot that differs from its ledger and the pot that differs from its lots');
UPDATE agentmarket_private.credit_lots SET remaining = remaining + 1 WHERE user_id = pg_temp.uid(3) AND paid;
SELECT is(pg_temp.books(), '', 'and is empty again once they agree');

------------------------------------------------------------------------------
-- Random journeys
------------------------------------------------------------------------------
SELECT setseed(0.1111);
SELECT agentmarket.configure('promotional_credit_value_usd', '0.002');
CREATE TEMP TABLE journal (step int, op text, books text);
CREATE TEMP TABLE op_count (op text PRIMARY KEY, n int NOT NULL DEFAULT 0);
-- An event as Stripe 2024-06-20 wraps an object.
CREATE FUNCTION pg_temp.ev(type text, obj jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('id', 'evt_' || replace(gen_random_uuid()::text, '-', ''), 'object', 'event',
                              'api_version', '2024-06-20', 'created', extract(epoch FROM clock_timestamp())::bigint,
                              'type', type, 'data', jsonb_build_object('object', obj || jsonb_build_object('currency', 'usd')))
$$;
-- One of Stripe's lifecycle events for user u, at random; its outcome.
CREATE FUNCTION pg_temp.lifecycle(u uuid, OUT kind text, OUT outcome text) LANGUAGE plpgsql AS $$
DECLARE
    r float8 := random();
    n text := replace(gen_random_uuid()::text, '-', '');
    pur agentmarket.purchases;
    pp agentmarket_private.purchase_payments;
    d agentmarket_private.disputes;
    p agentmarket.payouts;
    rest bigint;
BEGIN
    -- A payment of the user's that Stripe can still refund or dispute.
    SELECT x.* INTO pp FROM agentmarket_private.purchase_payments x JOIN agentmarket.purchases y ON y.id = x.purchase_id
     WHERE y.user_id = u AND x.lot_id IS NOT NULL AND x.refunded_cents + x.dispute_lost_cents < x.amount_cents
       AND NOT EXISTS (SELECT FROM agentmarket_private.disputes z WHERE z.payment_id = x.id AND z.outcome IS NULL)
     ORDER BY random() LIMIT 1;
    rest := pp.amount_cents - pp.refunded_cents - pp.dispute_lost_cents;
    -- A plan of the user's that Stripe still renews.
    SELECT y.* INTO pur FROM agentmarket.purchases y JOIN agentmarket_private.subscriptions z ON z.purchase_id = y.id
     WHERE y.user_id = u AND z.status <> 'canceled' ORDER BY random() LIMIT 1;
    outcome := 'none';
    IF r < 0.32 AND pur.id IS NULL THEN
        RETURN;
    ELSIF r < 0.25 THEN
        kind := 'renewal';
        outcome := pg_temp.deliver(pg_temp.ev('invoice.paid', jsonb_build_object(
            'id', 'in_' || n, 'object', 'invoice', 'subscription', pur.stripe_subscription_id,
            'billing_reason', 'subscription_cycle', 'status', 'paid', 'charge', 'ch_' || n, 'payment_intent', 'pi_' || n,
            -- Full price, or with a coupon.
            'amount_paid', CASE WHEN random() < 0.5 THEN pur.amount_cents ELSE pur.amount_cents * 4 / 5 END,
            'lines', jsonb_build_object('data', jsonb_build_array(jsonb_build_object('period', jsonb_build_object(
                'end', extract(epoch FROM now() + interval '1 month')::bigint)))))));
    ELSIF r < 0.32 THEN
        kind := 'cancel';
        outcome := pg_temp.deliver(pg_temp.ev('customer.subscription.deleted', jsonb_build_object(
            'id', pur.stripe_subscription_id, 'object', 'subscription', 'status', 'canceled')));
    ELSIF r < 0.55 THEN
        kind := 'stripe refund';
        IF pp.id IS NULL THEN
            RETURN;
        END IF;
        -- Cumulative: part of the rest, all of it, or (a late event) less than already refunded.
        outcome := pg_temp.deliver(pg_temp.ev('charge.refunded', jsonb_build_object(
            'id', COALESCE(pp.charge, 'ch_' || n), 'object', 'charge', 'amount', pp.amount_cents,
            'amount_refunded', CASE WHEN random() < 0.15 THEN floor(random() * (pp.refunded_cents + 1))::bigint
                                    WHEN random() < 0.3 THEN pp.amount_cents - pp.dispute_lost_cents
                                    ELSE pp.refunded_cents + 1 + floor(random() * rest)::bigint END,
            'payment_intent', pp.payment_intent, 'invoice', CASE WHEN pp.stripe_ref LIKE 'in\_%' THEN pp.stripe_ref END)));
    ELSIF r < 0.72 THEN
        kind := 'dispute opened';
        IF pp.id IS NULL OR (pp.charge IS NULL AND pp.payment_intent IS NULL) THEN
            RETURN;
        END IF;
        outcome := pg_temp.deliver(pg_temp.ev('charge.dispute.created', jsonb_build_object(
            'id', 'dp_' || n, 'object', 'dispute', 'charge', pp.charge, 'payment_intent', pp.payment_intent,
            'amount', CASE WHEN random() < 0.6 THEN rest ELSE 1 + floor(random() * rest)::bigint END,
            'status', 'needs_response')));
    ELSIF r < 0.85 THEN
        kind := 'dispute closed';
        SELECT z.* INTO d FROM agentmarket_private.disputes z JOIN agentmarket.purchases y ON y.id = z.purchase_id
         WHERE y.user_id = u AND z.outcome IS NULL ORDER BY random() LIMIT 1;
        IF d.stripe_dispute_id IS NULL THEN
            RETURN;
        END IF;
        SELECT x.* INTO pp FROM agentmarket_private.purchase_payments x WHERE x.id = d.payment_id;
        outcome := pg_temp.deliver(pg_temp.ev('charge.dispute.closed', jsonb_build_object(
            'id', d.stripe_dispute_id, 'object', 'dispute', 'charge', pp.charge, 'payment_intent', pp.payment_intent,
            'amount', d.amount_cents, 'status', (ARRAY['won', 'lost', 'lost', 'warning_closed'])[1 + floor(random() * 4)::int])));
    ELSE
        kind := 'transfer reversed';
        SELECT x.* INTO p FROM agentmarket.payouts x WHERE x.status = 'paid' AND x.reversed_cents < x.transfer_cents
         ORDER BY random() LIMIT 1;
        IF p.id IS NULL THEN
            RETURN;
        END IF;
        outcome := pg_temp.deliver(pg_temp.ev('transfer.reversed', jsonb_build_object(
            'id', p.stripe_transfer_id, 'object', 'transfer', 'amount', p.transfer_cents,
            'amount_reversed', CASE WHEN random() < 0.3 THEN p.transfer_cents
                                    ELSE p.reversed_cents + 1 + floor(random() * (p.transfer_cents - p.reversed_cents))::bigint END)));
    END IF;
END $$;
CREATE FUNCTION pg_temp.journeys(steps int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    i int; r float8; u uuid; kind text; s uuid; p agentmarket.payouts; j agentmarket_private.jobs; h uuid; b text; o text;
BEGIN
    FOR i IN 1 .. steps LOOP
        r := random();
        u := pg_temp.uid(10 + floor(random() * 8)::int);
        BEGIN
            IF random() < 0.25 THEN
                SELECT x.kind, x.outcome INTO kind, o FROM pg_temp.lifecycle(u) x;
                CONTINUE WHEN o = 'none';
                IF o <> 'applied' THEN
                    kind := kind || ' ' || o;
                END IF;
            ELSIF r < 0.12 THEN
                kind := 'buy';
                PERFORM pg_temp.buy(u, (ARRAY['topup_s', 'topup_m', 'topup_l', 'pro_monthly'])[1 + floor(random() * 4)::int]);
            ELSIF r < 0.50 THEN
                kind := 'session';
                PERFORM pg_temp.session(u, 1 + floor(random() * 3)::int, round((random() * 0.08)::numeric, 6));
            ELSIF r < 0.58 THEN
                kind := 'refund session';
                SELECT x.id INTO s FROM agentmarket.sessions x
                 WHERE x.user_id = u AND x.refunded_at IS NULL ORDER BY random() LIMIT 1;
                CONTINUE WHEN s IS NULL;
                PERFORM agentmarket.refund_session(s, 'journey');
            ELSIF r < 0.64 THEN
                kind := 'refresh';
                PERFORM agentmarket.refresh_subscription_credits(u, floor(random() * 300)::int);
            ELSIF r < 0.68 THEN
                kind := 'grant';
                PERFORM agentmarket.grant_credits(u, 1 + floor(random() * 50)::int, 'topup', 'topup_purchase', 'goodwill');
            ELSIF r < 0.76 THEN
                kind := 'hold';
                h := agentmarket.reserve_credits(u, 1 + floor(random() * 60)::int);
                IF random() < 0.7 THEN
                    PERFORM agentmarket.capture_hold(h, floor(random() * ((SELECT amount FROM agentmarket_private.credit_holds WHERE id = h) + 1))::int);
                ELSE
                    PERFORM agentmarket.release_hold(h);
                END IF;
            ELSIF r < 0.84 THEN
                kind := 'refund credits';
                PERFORM agentmarket.refund_credits(u, 1 + floor(random() * 40)::int);
            ELSE
                kind := 'payout';
                FOR p IN SELECT * FROM agentmarket.run_payouts() LOOP
                    SELECT * INTO STRICT j FROM agentmarket_private.jobs x
                     WHERE x.kind = 'stripe.create_transfer' AND x.payload ->> 'payout_id' = p.id::text;
                    IF random() < 0.75 THEN
                        PERFORM agentmarket_private.finish_payout_transfer(j, jsonb_build_object('id', 'tr_' || replace(p.id::text, '-', '')));
                    ELSE
                        PERFORM agentmarket_private.payout_transfer_dead(j);
                    END IF;
                END LOOP;
            END IF;
            INSERT INTO op_count VALUES (kind, 1) ON CONFLICT (op) DO UPDATE SET n = op_count.n + 1;
        EXCEPTION WHEN SQLSTATE 'PT402' OR SQLSTATE '22023' THEN
            INSERT INTO op_count VALUES (kind || ' refused', 1) ON CONFLICT (op) DO UPDATE SET n = op_count.n + 1;
        END;
        b := pg_temp.books();
        IF b <> '' THEN
            INSERT INTO journal VALUES (i, kind, b);
        END IF;
    END LOOP;
END $$;
SELECT count(pg_temp.new_user(n)) FROM generate_series(10, 17) n;
SELECT pg_temp.journeys(600);
SELECT is((SELECT COALESCE(min(step || ' ' || op || ': ' || books), '') FROM journal), '',
    'verify_books() is empty after every one of 600 random steps');
SELECT ok((SELECT bool_and(n >= 5) AND count(*) >= 14 FROM op_count
            WHERE op NOT LIKE '% refused' AND op NOT LIKE '% ignored' AND op NOT LIKE '% deferred'),
    'every kind of step ran several times (each lifecycle event applied at least 5 times)');
SELECT ok((SELECT count(*) FILTER (WHERE outcome = 'won') > 0 AND count(*) FILTER (WHERE outcome = 'lost') > 0
             FROM agentmarket_private.disputes)
          AND (SELECT count(*) FROM agentmarket_private.payout_reversals) > 0
          AND (SELECT count(*) FROM payouts WHERE status = 'reversed') > 0
          AND (SELECT count(*) FROM agentmarket_private.purchase_payments WHERE refunded_cents BETWEEN 1 AND amount_cents - 1) > 0,
    'disputes were won and lost, transfers reversed in part and in whole, payments refunded in part');
SELECT ok((SELECT count(*) FROM payouts WHERE status = 'paid') > 0 AND (SELECT count(*) FROM agentmarket_private.creator_clawbacks) > 0,
    'payouts were paid and refunds of paid sessions were clawed back');
SELECT ok((SELECT sum(creator_amount) FROM creator_earnings)
          <= (SELECT sum(-t.value_usd) FROM credit_transactions t WHERE t.type IN ('session_deduct', 'refund') AND t.session_id IS NOT NULL),
    'creators earned no more than the value of the credits spent on their agents');
SELECT is((SELECT count(*)::int FROM users c
            WHERE c.role = 'creator'
              AND (SELECT COALESCE(sum(e.creator_amount), 0) FROM creator_earnings e WHERE e.creator_id = c.id)
                  - (SELECT COALESCE(sum(k.creator_amount), 0) FROM agentmarket_private.creator_clawbacks k WHERE k.creator_id = c.id)
                  > (SELECT COALESCE(sum(agentmarket_private.session_revenue(s.id)), 0) FROM sessions s
                       JOIN agent_instances i ON i.id = s.instance_id JOIN agents a ON a.id = i.agent_id
                      WHERE a.creator_id = c.id)), 0,
    'no creator earned more than users paid for the credits spent on their agents');
SELECT is_empty('SELECT * FROM agentmarket.verify_ledger()', 'verify_ledger() agrees');

SELECT * FROM finish();
ROLLBACK;
