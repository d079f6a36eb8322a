-- analytics: the analyst's money and operations views agree with the books.
-- A day of business (a plan and a top-up bought through Stripe, a free
-- trial, sessions on two creators' agents, a plan period that ends with
-- credits left, a payout) is read back through daily_revenue,
-- daily_credits, agent_margin, creator_balances and queue_health as
-- agentmarket_analyst, and every figure is checked against the ledger, the
-- lots and the earnings it summarises.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(21);

SELECT agentmarket.configure('free_trial_credits', '100');
SELECT agentmarket.configure('stripe_webhook_secret', 'whsec_analytics');
SELECT agentmarket.configure('payout_holding_days', '0');
SELECT agentmarket.configure('payout_minimum_usd', '0');

CREATE FUNCTION pg_temp.deliver(ev jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT agentmarket.handle_stripe_webhook(ev::text,
        't=' || extract(epoch FROM now())::bigint || ',v1=' ||
        agentmarket_private.hmac_sha256_hex(convert_to('whsec_analytics', 'UTF8'),
            convert_to(extract(epoch FROM now())::bigint || '.' || ev::text, 'UTF8'))) ->> 'outcome'
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
-- pg_temp.session(user, agent n, compute cost): a session paid and ended.
CREATE FUNCTION pg_temp.session(u uuid, agent int, cost numeric) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE s agentmarket.sessions;
BEGIN
    s := agentmarket.start_session((SELECT i.id FROM agentmarket.agent_instances i
                                     WHERE i.user_id = u AND i.fly_machine_id = 'an' || agent));
    PERFORM agentmarket.end_session(s.id, 60, 100, 100, cost);
    RETURN s.id;
END $$;

-- Two creators with one agent each (25 and 40 credits a session), two users
-- who hire both.
INSERT INTO users (id, email, role, stripe_connect_account_id)
SELECT ('a1000000-0000-4000-8000-0000000000c' || n)::uuid, 'creator' || n || '@analytics.example', 'creator', 'acct_analytics' || n
  FROM generate_series(1, 2) n;
INSERT INTO agentmarket_private.connect_accounts (account_id, charges_enabled, payouts_enabled, transfers_active,
                                                  details_submitted, event_created)
SELECT 'acct_analytics' || n, true, true, true, true, 1 FROM generate_series(1, 2) n;
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, published_at)
SELECT ('a1000000-0000-4000-8000-0000000000a' || n)::uuid, ('a1000000-0000-4000-8000-0000000000c' || n)::uuid,
       'analytics-agent-' || n, 'Agent ' || n, 't', 'd', 'research', 'published', 'per_session',
       (ARRAY[25, 40])[n], 'https://x/' || n, now()
  FROM generate_series(1, 2) n;
INSERT INTO users (id, email) SELECT ('a1000000-0000-4000-8000-00000000000' || n)::uuid, 'user' || n || '@analytics.example'
  FROM generate_series(1, 2) n;
INSERT INTO agent_instances (user_id, agent_id, fly_app_name, fly_machine_id, status)
SELECT ('a1000000-0000-4000-8000-00000000000' || u)::uuid, ('a1000000-0000-4000-8000-0000000000a' || a)::uuid,
       'an-' || u || '-' || a, 'an' || a, 'running'
  FROM generate_series(1, 2) u, generate_series(1, 2) a;

-- User 1: the trial (100, promotional), the plan (2,500 for USD 19.00),
-- sessions on both agents; then the period ends with credits left.
-- User 2: the trial and a top-up (1,100 for USD 10.00), sessions.
SELECT pg_temp.buy('a1000000-0000-4000-8000-000000000001', 'pro_monthly') IS NOT NULL;
SELECT pg_temp.buy('a1000000-0000-4000-8000-000000000002', 'topup_m') IS NOT NULL;
SELECT count(pg_temp.session('a1000000-0000-4000-8000-000000000001', 1 + n % 2, 0.0123)) FROM generate_series(1, 6) n;
SELECT count(pg_temp.session('a1000000-0000-4000-8000-000000000002', 1 + n % 2, 0.0007)) FROM generate_series(1, 5) n;
SELECT agentmarket.refresh_subscription_credits('a1000000-0000-4000-8000-000000000001', 0) IS NOT NULL;

SET LOCAL ROLE agentmarket_analyst;
CREATE TEMP VIEW today_revenue AS SELECT * FROM agentmarket_analytics.daily_revenue WHERE day = (now() AT TIME ZONE 'UTC')::date;
CREATE TEMP VIEW today_credits AS SELECT * FROM agentmarket_analytics.daily_credits WHERE day = (now() AT TIME ZONE 'UTC')::date;
RESET ROLE;

------------------------------------------------------------------------------
-- daily_revenue, daily_credits
------------------------------------------------------------------------------
-- What the ledger says, computed here independently, per lot kind.
CREATE TEMP TABLE books AS
SELECT COALESCE(sum(l.value_usd) FILTER (WHERE l.paid), 0) AS sold_usd,
       COALESCE(sum(l.credits) FILTER (WHERE l.paid), 0) AS sold,
       COALESCE(sum(l.credits) FILTER (WHERE NOT l.paid), 0) AS given,
       (SELECT sum(e.gross_revenue) FROM creator_earnings e) AS earnings_gross,
       (SELECT -sum(t.amount) FROM credit_transactions t WHERE t.type = 'session_deduct') AS consumed,
       (SELECT -sum(t.amount) FROM credit_transactions t WHERE t.type = 'subscription_expiry') AS expired,
       (SELECT -sum(t.value_usd) FROM credit_transactions t WHERE t.type = 'subscription_expiry') AS expired_usd,
       (SELECT sum(n.remaining_value_usd) FROM agentmarket_private.credit_lots_now n) AS unspent_usd
  FROM agentmarket_private.credit_lots l;
GRANT SELECT ON books TO agentmarket_analyst;

SET LOCAL ROLE agentmarket_analyst;
SELECT is((SELECT sold_usd FROM today_revenue), (SELECT sold_usd FROM books),
    'daily_revenue: sold_usd is what the paid lots are worth (19.00 + 10.00)');
SELECT is((SELECT sold_usd FROM today_revenue), 29.0000::numeric, 'the plan and the top-up: USD 29.00 sold today');
SELECT is((SELECT recognized_usd FROM today_revenue), (SELECT earnings_gross FROM books),
    'recognized revenue is the gross revenue of the settled sessions (the value of the credits they consumed)');
SELECT ok((SELECT expired_usd FROM today_revenue) > 0 AND (SELECT expired_usd FROM today_revenue) = (SELECT expired_usd FROM books),
    'the plan''s credits left at the end of the period expire with their value');
SELECT is((SELECT deferred_usd FROM today_revenue), (SELECT unspent_usd FROM books),
    'deferred revenue at the end of the day is the unspent value of every lot');
SELECT is((SELECT sold_usd + promotional_usd - recognized_usd - expired_usd - taken_back_usd FROM today_revenue),
          (SELECT deferred_usd FROM today_revenue),
    'sold + given - recognized - expired - taken back = deferred (one day of history)');
SELECT is((SELECT sold FROM today_credits), (SELECT sold FROM books), 'daily_credits: credits sold are the paid lots'' credits');
SELECT is((SELECT sold || ' ' || given FROM today_credits), '3600 400',
    'sold 2,500 + 1,100; given 4 x 100 trial credits (creators are users too)');
SELECT is((SELECT consumed FROM today_credits), (SELECT consumed FROM books),
    'consumed credits are the session deductions');
SELECT is((SELECT consumed FROM today_credits), (3 * 25 + 3 * 40 + 2 * 25 + 3 * 40)::bigint,
    'six sessions of user 1 and five of user 2 at 25 and 40 credits');
SELECT is((SELECT expired FROM today_credits), (SELECT expired FROM books), 'expired credits are the plan''s leftovers');
SELECT is((SELECT spending_users FROM today_credits), 2::bigint, 'two users spent credits today');

------------------------------------------------------------------------------
-- agent_margin, creator_balances
------------------------------------------------------------------------------
SELECT is((SELECT count(*) FROM agentmarket_analytics.agent_margin m
            WHERE m.margin_usd <> m.revenue_usd - m.compute_usd - m.creator_share_usd), 0::bigint,
    'agent_margin: margin = revenue - compute - creator share, for every agent');
RESET ROLE;
CREATE TEMP TABLE per_agent AS
SELECT e.agent_id, count(*) AS sessions, sum(e.gross_revenue) AS revenue, sum(e.platform_amount - e.compute_cost) AS margin
  FROM creator_earnings e GROUP BY e.agent_id;
GRANT SELECT ON per_agent TO agentmarket_analyst;
SET LOCAL ROLE agentmarket_analyst;
SELECT set_eq('SELECT agent_id, sessions, revenue_usd, margin_usd FROM agentmarket_analytics.agent_margin',
              'SELECT agent_id, sessions, revenue, margin FROM per_agent',
    'each agent''s sessions, revenue and margin are its earnings rows'' (margin = platform share - compute)');
SELECT is((SELECT sessions FROM agentmarket_analytics.agent_margin WHERE agent_id = 'a1000000-0000-4000-8000-0000000000a2'), 6::bigint,
    'agent 2 had six of the eleven sessions');
SELECT is((SELECT sum(owed_usd) FROM agentmarket_analytics.creator_balances), (SELECT sum(creator_amount) FROM agentmarket_analytics.creator_earnings),
    'creator_balances: before any payout everything earned is owed');
RESET ROLE;
-- A payout for each creator; creator 1's transfer succeeds, creator 2's dies.
DO $$
DECLARE p agentmarket.payouts; j agentmarket_private.jobs;
BEGIN
    FOR p IN SELECT * FROM agentmarket.run_payouts() LOOP
        SELECT * INTO STRICT j FROM agentmarket_private.jobs x
         WHERE x.kind = 'stripe.create_transfer' AND x.payload ->> 'payout_id' = p.id::text;
        IF p.creator_id = 'a1000000-0000-4000-8000-0000000000c1' THEN
            PERFORM agentmarket_private.finish_payout_transfer(j, jsonb_build_object('id', 'tr_' || replace(p.id::text, '-', '')));
        ELSE
            PERFORM agentmarket_private.payout_transfer_dead(j);
        END IF;
    END LOOP;
END $$;
SET LOCAL ROLE agentmarket_analyst;
SELECT is((SELECT format('%s %s %s', owed_usd, paid_usd = earned_usd, transferred_usd = trunc(earned_usd, 2))
             FROM agentmarket_analytics.creator_balances WHERE creator_id = 'a1000000-0000-4000-8000-0000000000c1'),
          '0.0000 t t', 'a creator whose transfer succeeded is owed nothing; the transfer moved the whole cents of it');
SELECT is((SELECT format('%s %s', owed_usd = earned_usd, transferred_usd)
             FROM agentmarket_analytics.creator_balances WHERE creator_id = 'a1000000-0000-4000-8000-0000000000c2'),
          't 0', 'a creator whose transfer died is still owed everything');

------------------------------------------------------------------------------
-- queue_health
------------------------------------------------------------------------------
RESET ROLE;
CREATE TEMP TABLE jobs_now AS
SELECT kind, status, count(*) AS jobs FROM agentmarket_private.jobs GROUP BY 1, 2;
GRANT SELECT ON jobs_now TO agentmarket_analyst;
-- A job waiting an hour past its time, and a running job whose lease ran out.
UPDATE agentmarket_private.jobs SET run_at = now() - interval '1 hour'
 WHERE id = (SELECT min(id) FROM agentmarket_private.jobs WHERE status = 'queued');
SELECT agentmarket_private.enqueue_job('stripe.create_customer', jsonb_build_object('user_id', 'a1000000-0000-4000-8000-000000000002'),
                                       'analytics-lease') > 0;
UPDATE agentmarket_private.jobs SET status = 'running', lease_owner = 'gone', lease_expires_at = now() - interval '1 minute', attempts = 3
 WHERE idempotency_key = 'analytics-lease';
SET LOCAL ROLE agentmarket_analyst;
SELECT set_eq('SELECT kind, status, jobs FROM agentmarket_analytics.queue_health WHERE NOT (kind = ''stripe.create_customer'' AND status = ''running'')',
              'SELECT kind, status, jobs FROM jobs_now WHERE NOT (kind = ''stripe.create_customer'' AND status = ''running'')',
    'queue_health counts the jobs of every kind and state (the dead transfer among them)');
SELECT ok((SELECT max(max_overdue) FROM agentmarket_analytics.queue_health WHERE status = 'queued') >= interval '1 hour',
    'the longest wait of a due queued job shows');
SELECT is((SELECT format('%s %s', expired_leases, max_attempts) FROM agentmarket_analytics.queue_health
            WHERE kind = 'stripe.create_customer' AND status = 'running'), '1 3',
    'a running job whose lease expired shows, with its attempts');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
