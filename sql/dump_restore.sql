-- dump_restore: pg_dump | pg_restore brings every row of every extension
-- table back (pg_extension_config_dump), byte for byte, and the restored
-- database keeps working (sequences continue, constraints hold).
\ir test/fixture.sql
DROP DATABASE IF EXISTS am_dump_src;
DROP DATABASE IF EXISTS am_dump_dst;
CREATE DATABASE am_dump_src;
CREATE DATABASE am_dump_dst;
\c am_dump_src
SET client_min_messages = warning;
CREATE EXTENSION agentmarket CASCADE;
SET search_path = agentmarket, public;

-- One or more rows in every table, linked as in real use.
INSERT INTO users (id, email, display_name, role) VALUES
  ('30000000-0000-4000-8000-000000000001', 'c@dump.example', 'Creator', 'creator'),
  ('30000000-0000-4000-8000-000000000002', 'u@dump.example', 'User', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, github_repo_url, tags)
VALUES ('30000000-0000-4000-8000-0000000000a1', '30000000-0000-4000-8000-000000000001',
        'dump-agent', 'Dump', 'tagline', 'a description with ''quotes'' and
a newline', 'research', 'https://github.com/x/y', '{a,b}');
-- Published, so the derived search tables (rebuilt by a restore) have rows too.
UPDATE agents SET status = 'published' WHERE id = '30000000-0000-4000-8000-0000000000a1';
INSERT INTO agent_versions (id, agent_id, version, status, is_current, docker_image, openclaw_version)
VALUES ('30000000-0000-4000-8000-0000000000e1', '30000000-0000-4000-8000-0000000000a1', '1.0.0', 'published', true, 'img:1', '2026.11.1');
INSERT INTO agent_skills (agent_id, agent_version_id, skill_slug, required_env)
VALUES ('30000000-0000-4000-8000-0000000000a1', '30000000-0000-4000-8000-0000000000e1', 'web', '{KEY}');
INSERT INTO projects (id, user_id, name) VALUES ('30000000-0000-4000-8000-0000000000b1', '30000000-0000-4000-8000-000000000002', 'p');
INSERT INTO teams (id, project_id, name) VALUES ('30000000-0000-4000-8000-0000000000c1', '30000000-0000-4000-8000-0000000000b1', 't');
INSERT INTO agent_instances (id, user_id, agent_id, team_id, agent_version_id, fly_app_name, fly_machine_id, status)
VALUES ('30000000-0000-4000-8000-0000000000d1', '30000000-0000-4000-8000-000000000002', '30000000-0000-4000-8000-0000000000a1',
        '30000000-0000-4000-8000-0000000000c1', '30000000-0000-4000-8000-0000000000e1', 'am-d1', 'm-1', 'running');
INSERT INTO team_agents (team_id, instance_id) VALUES ('30000000-0000-4000-8000-0000000000c1', '30000000-0000-4000-8000-0000000000d1');
INSERT INTO sessions (id, instance_id, user_id, total_credits_consumed) VALUES
  ('30000000-0000-4000-8000-0000000000f1', '30000000-0000-4000-8000-0000000000d1', '30000000-0000-4000-8000-000000000002', 25);
INSERT INTO messages (session_id, role, content, tool_use) VALUES
  ('30000000-0000-4000-8000-0000000000f1', 'user', 'hello', NULL),
  ('30000000-0000-4000-8000-0000000000f1', 'tool', 'result', '{"name": "web", "input": {"q": "x"}}');
INSERT INTO credit_balances (user_id, topup_credits) VALUES ('30000000-0000-4000-8000-000000000002', 75)
  ON CONFLICT (user_id) DO NOTHING;
INSERT INTO credit_transactions (user_id, type, amount, credit_type, session_id) VALUES
  ('30000000-0000-4000-8000-000000000002', 'session_deduct', -25, 'topup', '30000000-0000-4000-8000-0000000000f1');
INSERT INTO usage_events (user_id, instance_id, session_id, compute_seconds, credits_consumed, cost_usd) VALUES
  ('30000000-0000-4000-8000-000000000002', '30000000-0000-4000-8000-0000000000d1', '30000000-0000-4000-8000-0000000000f1', 60, 25, 0.012345);
INSERT INTO creator_earnings (creator_id, agent_id, session_id, gross_revenue, compute_cost, creator_amount, platform_amount)
VALUES ('30000000-0000-4000-8000-000000000001', '30000000-0000-4000-8000-0000000000a1', '30000000-0000-4000-8000-0000000000f1',
        0.25, 0.012345, 0.2020, 0.0480);
INSERT INTO payouts (id, creator_id, stripe_connect_account_id, amount_usd, transfer_cents, status, stripe_transfer_id, paid_at)
VALUES ('30000000-0000-4000-8000-0000000000f9', '30000000-0000-4000-8000-000000000001', 'acct_dump', 0.2020, 20, 'paid', 'tr_dump', now());
UPDATE creator_earnings SET payout_id = '30000000-0000-4000-8000-0000000000f9', paid_out = true, paid_out_at = now(), stripe_transfer_id = 'tr_dump';
INSERT INTO agent_reviews (agent_id, user_id, rating, content) VALUES
  ('30000000-0000-4000-8000-0000000000a1', '30000000-0000-4000-8000-000000000002', 5, 'great');
INSERT INTO agent_price_changes (agent_id, pricing_model, credits_per_session, effective_at)
VALUES ('30000000-0000-4000-8000-0000000000a1', 'per_session', 50, now() + interval '14 days');
INSERT INTO relay_connections (instance_id, relay, external_user_id, config) VALUES
  ('30000000-0000-4000-8000-0000000000d1', 'telegram', 'tg-1', '{"bot": "x"}');
INSERT INTO purchases (user_id, kind, credits, amount_cents, status, stripe_checkout_session_id)
VALUES ('30000000-0000-4000-8000-000000000002', 'topup', 100, 100, 'paid', 'cs_dump');
INSERT INTO agentmarket_private.purchase_payments (purchase_id, stripe_ref, amount_cents)
SELECT id, 'cs_dump', 100 FROM purchases WHERE stripe_checkout_session_id = 'cs_dump';
INSERT INTO agentmarket_private.creator_clawbacks (creator_id, session_id, earnings_id, gross_usd, creator_amount, reason)
SELECT creator_id, session_id, id, gross_revenue, creator_amount, 'dump fixture' FROM creator_earnings;
INSERT INTO agentmarket_private.subscriptions (stripe_subscription_id, purchase_id, status)
SELECT 'sub_dump', id, 'active' FROM purchases WHERE stripe_checkout_session_id = 'cs_dump';
INSERT INTO agentmarket_private.connect_accounts (account_id, charges_enabled, payouts_enabled, transfers_active,
                                                  details_submitted, event_created)
VALUES ('acct_dump', true, true, true, true, 1);
INSERT INTO agentmarket_private.credit_debts (user_id, credits) VALUES ('30000000-0000-4000-8000-000000000002', 3);
INSERT INTO agentmarket_private.revenue_reversals (purchase_id, lot_id, session_id, value_usd)
SELECT id, 1, '30000000-0000-4000-8000-0000000000f1', 0.01 FROM purchases WHERE stripe_checkout_session_id = 'cs_dump';
INSERT INTO agentmarket_private.processed_webhook_events (event_id, type, outcome, result)
VALUES ('evt_dump', 'invoice.paid', 'ignored', '{"outcome": "ignored"}');
INSERT INTO agentmarket_private.disputes (stripe_dispute_id, payment_id, purchase_id, amount_cents, status)
SELECT 'dp_dump', pp.id, pp.purchase_id, 100, 'needs_response' FROM agentmarket_private.purchase_payments pp
 WHERE pp.stripe_ref = 'cs_dump';
INSERT INTO agentmarket_private.payout_reversals (payout_id, creator_id, amount_usd)
VALUES ('30000000-0000-4000-8000-0000000000f9', '30000000-0000-4000-8000-000000000001', 0.05);
SELECT agentmarket.set_ssh_config('30000000-0000-4000-8000-0000000000d1', 'h.internal', 22, 'agent',
    E'-----BEGIN OPENSSH PRIVATE KEY-----\nZHVtcC1rZXk=\n-----END OPENSSH PRIVATE KEY-----', 'SHA256:' || repeat('B', 43)) IS NOT NULL AS ssh_set;
-- A pending relay connection with a token: its code and its secret.
UPDATE agents SET supported_relays = '{telegram}' WHERE id = '30000000-0000-4000-8000-0000000000a1';
SELECT count(*) FROM agentmarket.connect_relay('30000000-0000-4000-8000-0000000000d1', 'telegram',
    '{"bot_username": "dumpbot", "bot_token": "123:dump"}');
SELECT agentmarket.reserve_credits('30000000-0000-4000-8000-000000000002', 10, '30000000-0000-4000-8000-0000000000f1',
                                   interval '1 hour', 'dump-hold-1') IS NOT NULL AS held;
INSERT INTO agentmarket_private.session_task_charges (session_id, task_key, credits)
VALUES ('30000000-0000-4000-8000-0000000000f1', 'task-1', 10);
SELECT agentmarket.configure('creator_rate', '0.80');
SELECT agentmarket.set_machine_price('shared-cpu-1x', 512, 0.0000013);
SELECT count(*) AS recorded FROM agentmarket.record_usage('[{"instance_id": "30000000-0000-4000-8000-0000000000d1",
  "session_id": "30000000-0000-4000-8000-0000000000f1", "compute_seconds": 30, "idempotency_key": "dump-usage-1"}]');
SELECT usage_rows AS rolled_up FROM agentmarket.run_billing_rollup();
SELECT monthly_cap FROM agentmarket.set_monthly_spend_cap(500, '30000000-0000-4000-8000-000000000002');
SELECT (agentmarket.set_session_cap('30000000-0000-4000-8000-0000000000f1', 100)).id IS NOT NULL AS capped;
SELECT agentmarket_private.notify_user('30000000-0000-4000-8000-000000000002', 'low_balance', NULL,
                                       '{"available_credits": 5, "threshold": 20}');
SELECT count(*) AS recorded FROM agentmarket.record_usage('[{"instance_id": "30000000-0000-4000-8000-0000000000d1",
  "compute_seconds": 5, "idempotency_key": "dump-usage-2"}]');
SELECT agentmarket_private.enqueue_job('fly.provision_instance', '{"instance_id": "30000000-0000-4000-8000-0000000000d1"}', 'dump-job-1') > 0 AS enqueued;
SELECT agentmarket_private.enqueue_job('fly.stop_machine', '{"instance_id": "30000000-0000-4000-8000-0000000000d1"}', 'dump-job-2') > 0 AS enqueued;
INSERT INTO agentmarket_private.billing_portal_sessions (job_id, user_id)
SELECT agentmarket_private.enqueue_stripe_job('stripe.create_billing_portal_session', '{"customer": "cus_dump"}', 'dump-portal-1'),
       '30000000-0000-4000-8000-000000000002';

-- A fingerprint of every data table of the extension, in a plain table that
-- pg_dump carries over as it is.
CREATE FUNCTION public.am_fingerprint() RETURNS TABLE (tbl text, nrows bigint, digest text)
LANGUAGE plpgsql AS $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'agentmarket' ORDER BY 1::text LOOP
        tbl := t::text;
        IF (SELECT relkind FROM pg_class WHERE oid = t) = 'S' THEN
            EXECUTE format('SELECT 1::bigint, last_value::text FROM %s', t) INTO nrows, digest;
        ELSE
            -- every column but transaction ids (xid8: search_corpus.words_xact
            -- names the transaction that last changed the words; a restore's own)
            EXECUTE format('SELECT count(*), md5(coalesce(string_agg(r::text, E''\n'' ORDER BY r::text), '''')) FROM (SELECT %s FROM %s) r',
                           (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                             WHERE a.attrelid = t AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid <> 'xid8'::regtype), t)
                INTO nrows, digest;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
CREATE TABLE public.source_fingerprint AS SELECT * FROM public.am_fingerprint();

\! pg_dump -Fc -d am_dump_src | pg_restore --exit-on-error -d am_dump_dst && echo 'dump and restore ran'
\c am_dump_dst
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
SET search_path = agentmarket, public;
SELECT plan(6);
SELECT is((SELECT count(*)::int FROM public.source_fingerprint WHERE nrows = 0 AND tbl NOT LIKE '%\_seq'), 0,
    'the source had rows in every extension table');
SELECT set_eq('SELECT tbl FROM public.source_fingerprint', 'SELECT tbl FROM public.am_fingerprint()',
    'the restored database has the same extension tables');
SELECT results_eq('SELECT tbl, nrows, digest FROM public.am_fingerprint() ORDER BY tbl',
                  'SELECT tbl, nrows, digest FROM public.source_fingerprint ORDER BY tbl',
    'every row of every extension table came back unchanged');
SELECT is(agentmarket_private.setting('creator_rate'), '0.80', 'configured settings survive');
SELECT cmp_ok(agentmarket_private.enqueue_job('fly.start_machine', '{"instance_id": "30000000-0000-4000-8000-0000000000d1"}'), '>',
    (SELECT max(id) FROM agentmarket_private.jobs WHERE idempotency_key LIKE 'dump-job-%'),
    'the job id sequence continues after a restore');
SELECT throws_ok($$INSERT INTO agentmarket.agent_reviews (agent_id, user_id, rating)
                   VALUES ('30000000-0000-4000-8000-0000000000a1', '30000000-0000-4000-8000-000000000002', 4)$$,
    '23505', NULL, 'constraints hold in the restored database');
SELECT * FROM finish();
\c contrib_regression
DROP DATABASE am_dump_src;
DROP DATABASE am_dump_dst;
