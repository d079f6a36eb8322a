-- retention: every table of the extension has a retention rule
-- (agentmarket.table_retention()), and every table that grows with traffic
-- stays bounded under its scheduled job.  Twenty simulated days of traffic
-- (Stripe events, credit holds with idempotency keys, usage reports,
-- notifications, queued jobs) each followed by a day passing and the
-- scheduled jobs' own commands: each table levels off at about a retention
-- period's worth of rows instead of growing with the days, and what must
-- stay (active holds, deferred events, the usage rows themselves) stays.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(31);

------------------------------------------------------------------------------
-- The list
------------------------------------------------------------------------------
SELECT set_eq(
    $$SELECT format('%I.%I', c.relnamespace::regnamespace, c.relname) FROM pg_class c
        JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
        JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'agentmarket'
       WHERE c.relkind IN ('r', 'p')$$,
    'SELECT table_name FROM agentmarket.table_retention()',
    'table_retention() names every table of the extension, and only those (a new table needs its line in retention.sql)');
SELECT is_empty($$SELECT table_name FROM agentmarket.table_retention()
                   WHERE kind NOT IN ('record', 'per_key', 'shipped', 'derived', 'drained', 'pruned')$$,
    'each table has one of the six kinds');
SELECT is_empty($$SELECT r.table_name FROM agentmarket.table_retention() r
                   WHERE r.kind IN ('pruned', 'drained')
                     AND NOT EXISTS (SELECT FROM agentmarket.scheduled_jobs() j WHERE j.job_name = 'agentmarket.' || r.job)$$,
    'every pruned or drained table has a job that schedule_jobs() registers');
SELECT is_empty($$SELECT r.table_name, s.setting FROM agentmarket.table_retention() r,
                         regexp_split_to_table(r.retention_setting, ', ') s(setting)
                   WHERE r.kind = 'pruned'
                     AND NOT EXISTS (SELECT FROM agentmarket_private.setting_definitions d WHERE d.key = s.setting)$$,
    'every retention setting is a known setting');
SELECT is_empty($$SELECT table_name FROM agentmarket.table_retention() WHERE kind = 'pruned' AND retention_setting IS NULL$$,
    'every pruned table has its retention setting');

------------------------------------------------------------------------------
-- Twenty days of traffic
------------------------------------------------------------------------------
SELECT agentmarket.configure('stripe_webhook_secret', 'whsec_retention');
SELECT agentmarket.configure('job_retention_days', '1');
SELECT agentmarket.configure('dead_job_retention_days', '2');
SELECT agentmarket.configure('webhook_event_retention_days', '7');
SELECT agentmarket.configure('credit_idempotency_retention_days', '7');
SELECT agentmarket.configure('credit_hold_retention_days', '3');
SELECT agentmarket.configure('usage_key_retention_days', '2');
SELECT agentmarket.configure('notification_retention_days', '4');

INSERT INTO users (id, email, role) VALUES
  ('7e700000-0000-4000-8000-000000000001', 'creator@retention.example', 'creator'),
  ('7e700000-0000-4000-8000-000000000002', 'user@retention.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, github_repo_url)
VALUES ('7e700000-0000-4000-8000-0000000000a1', '7e700000-0000-4000-8000-000000000001', 'retention-agent',
        'R', 't', 'd', 'research', 'https://github.com/r/r');
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status)
VALUES ('7e700000-0000-4000-8000-0000000000d1', '7e700000-0000-4000-8000-000000000002',
        '7e700000-0000-4000-8000-0000000000a1', 'am-retention', 'm-retention', 'running');
SELECT agentmarket.refresh_subscription_credits('7e700000-0000-4000-8000-000000000002', 100000) IS NOT NULL;
-- An active hold that must outlive every prune, and a deferred event.
SELECT agentmarket.reserve_credits('7e700000-0000-4000-8000-000000000002', 1, NULL, interval '1000 days', 'retention-keep') IS NOT NULL;
INSERT INTO agentmarket_private.processed_webhook_events (event_id, type, outcome, result, payload, waits_for, received_at)
VALUES ('evt_retention_deferred', 'charge.refunded', 'deferred', '{}', '{}', 'ch_retention', now() - interval '400 days');

CREATE TEMP TABLE sizes (day int, tbl text, n bigint);
CREATE TEMP TABLE usage_rows_made (n bigint);
INSERT INTO usage_rows_made VALUES (0);
DO $$
DECLARE
    day int;
    i int;
    h uuid;
    ev jsonb;
    sig text;
    j record;
    t text;
    cnt bigint;
    per_day constant int := 5;
    ts text := extract(epoch FROM now())::bigint::text;
BEGIN
    FOR day IN 1 .. 20 LOOP
        FOR i IN 1 .. per_day LOOP
            -- A Stripe event of a type not handled: recorded once, as ignored.
            ev := jsonb_build_object('id', format('evt_retention_%s_%s', day, i), 'object', 'event',
                                     'type', 'customer.updated', 'data', jsonb_build_object('object', '{}'::jsonb));
            sig := 't=' || ts || ',v1=' || agentmarket_private.hmac_sha256_hex(convert_to('whsec_retention', 'UTF8'),
                                                                            convert_to(ts || '.' || ev::text, 'UTF8'));
            PERFORM agentmarket.handle_stripe_webhook(ev::text, sig);
            -- A hold taken and released, each with an idempotency key.
            h := agentmarket.reserve_credits('7e700000-0000-4000-8000-000000000002', 2, NULL, interval '1 hour',
                                             format('retention-hold-%s-%s', day, i));
            PERFORM agentmarket.release_hold(h, format('retention-release-%s-%s', day, i));
            -- A notification.
            PERFORM agentmarket_private.notify_user('7e700000-0000-4000-8000-000000000002', 'low_balance', NULL,
                                                    jsonb_build_object('available_credits', i, 'threshold', 20));
            -- A job that ran (and, once a day, one that died).
            PERFORM agentmarket_private.enqueue_job('fly.stop_machine',
                jsonb_build_object('instance_id', '7e700000-0000-4000-8000-0000000000d1'), format('retention-job-%s-%s', day, i));
        END LOOP;
        -- One usage report a day of per_day events.
        PERFORM agentmarket.record_usage((SELECT jsonb_agg(jsonb_build_object(
                    'instance_id', '7e700000-0000-4000-8000-0000000000d1', 'compute_seconds', 1,
                    'idempotency_key', format('retention-usage-%s-%s', day, k)))
                  FROM generate_series(1, per_day) k));
        UPDATE usage_rows_made SET n = n + 1;
        UPDATE agentmarket_private.jobs SET status = 'succeeded', finished_at = now(), updated_at = now()
         WHERE idempotency_key LIKE 'retention-job-%' AND status = 'queued' AND idempotency_key NOT LIKE '%-1';
        UPDATE agentmarket_private.jobs SET status = 'dead', finished_at = now(), updated_at = now()
         WHERE idempotency_key LIKE 'retention-job-%' AND status = 'queued';
        -- A day passes.
        UPDATE agentmarket_private.processed_webhook_events SET received_at = received_at - interval '1 day';
        UPDATE agentmarket_private.credit_idempotency SET created_at = created_at - interval '1 day';
        UPDATE agentmarket_private.credit_holds SET created_at = created_at - interval '1 day',
               resolved_at = resolved_at - interval '1 day' WHERE status <> 'active';
        UPDATE agentmarket_private.usage_keys SET recorded_at = recorded_at - interval '1 day';
        UPDATE agentmarket_private.notifications SET created_at = created_at - interval '1 day',
               sent_at = sent_at - interval '1 day';
        UPDATE agentmarket_private.jobs SET created_at = created_at - interval '1 day', run_at = run_at - interval '1 day',
               finished_at = finished_at - interval '1 day', updated_at = updated_at - interval '1 day';
        -- The scheduled jobs run, exactly as pg_cron would run them.
        FOR j IN SELECT s.command FROM agentmarket.scheduled_jobs() s
                  WHERE substr(s.job_name, 13) IN (SELECT r.job FROM agentmarket.table_retention() r WHERE r.job IS NOT NULL)
        LOOP
            EXECUTE j.command;
        END LOOP;
        FOR t IN SELECT r.table_name FROM agentmarket.table_retention() r WHERE r.kind IN ('pruned', 'drained') LOOP
            EXECUTE format('SELECT count(*) FROM %s', t) INTO cnt;
            INSERT INTO sizes VALUES (day, t, cnt);
        END LOOP;
    END LOOP;
END $$;

------------------------------------------------------------------------------
-- Bounded
------------------------------------------------------------------------------
-- What the last ten days' sizes show per table: flat (max = min), and far
-- below twenty days' worth.
CREATE TEMP VIEW late AS
SELECT tbl, min(n) AS lo, max(n) AS hi FROM sizes WHERE day > 10 GROUP BY tbl;
SELECT is((SELECT count(DISTINCT tbl)::int FROM sizes), 7, 'seven pruned or drained tables were measured');
SELECT is((SELECT lo = hi FROM late WHERE tbl = 'agentmarket_private.processed_webhook_events'), true,
    'processed_webhook_events levels off under prune_webhook_events');
SELECT is((SELECT hi FROM late WHERE tbl = 'agentmarket_private.processed_webhook_events'), (7 * 5 + 1)::bigint,
    'it keeps the 7 days of webhook_event_retention_days (35 events) and the old deferred one');
SELECT ok(EXISTS (SELECT FROM agentmarket_private.processed_webhook_events WHERE event_id = 'evt_retention_deferred'),
    'a deferred event is never pruned, however old');
SELECT is((SELECT lo = hi FROM late WHERE tbl = 'agentmarket_private.credit_idempotency'), true,
    'credit_idempotency levels off under prune_credit_idempotency');
SELECT is((SELECT hi FROM late WHERE tbl = 'agentmarket_private.credit_idempotency'), (7 * 5 * 2)::bigint,
    'it keeps the keys of the last 7 days (two calls a hold), not 20');
SELECT is((SELECT lo = hi FROM late WHERE tbl = 'agentmarket_private.credit_holds'), true,
    'credit_holds levels off under prune_credit_holds');
SELECT is((SELECT hi FROM late WHERE tbl = 'agentmarket_private.credit_holds'), (3 * 5 + 1)::bigint,
    'it keeps the holds resolved in the last 3 days (credit_hold_retention_days) and the active one');
SELECT ok(EXISTS (SELECT FROM agentmarket_private.credit_holds WHERE status = 'active' AND expires_at > now() + interval '900 days'),
    'an active hold is never pruned');
SELECT is((SELECT lo = hi FROM late WHERE tbl = 'agentmarket_private.usage_keys'), true,
    'usage_keys levels off under prune_usage_keys');
SELECT is((SELECT hi FROM late WHERE tbl = 'agentmarket_private.usage_keys'), (2 * 5)::bigint,
    'it keeps the keys of the last 2 days (usage_key_retention_days)');
SELECT is((SELECT count(*) FROM usage_events WHERE instance_id = '7e700000-0000-4000-8000-0000000000d1'),
          (SELECT n FROM usage_rows_made),
    'the usage rows themselves all stay (one per daily report)');
SELECT is((SELECT hi FROM late WHERE tbl = 'agentmarket_private.usage_pending'), 0::bigint,
    'usage_pending is drained by the billing rollup every day');
SELECT is((SELECT lo = hi FROM late WHERE tbl = 'agentmarket_private.notifications'), true,
    'notifications level off under prune_notifications');
SELECT is((SELECT hi FROM late WHERE tbl = 'agentmarket_private.notifications'), (4 * 5)::bigint,
    'they keep the last 4 days (notification_retention_days)');
SELECT is((SELECT lo = hi FROM late WHERE tbl = 'agentmarket_private.jobs'), true,
    'jobs level off under prune_jobs');
SELECT is((SELECT hi FROM late WHERE tbl = 'agentmarket_private.jobs'), (1 * 4 + 2 * 1)::bigint,
    'finished jobs are kept a day when they succeeded and two when they died');
SELECT cmp_ok((SELECT max(hi) FROM late), '<', (20 * 5)::bigint, 'no table kept twenty days of traffic');

------------------------------------------------------------------------------
-- The prunes' own rules
------------------------------------------------------------------------------
SELECT throws_ok('SELECT agentmarket.prune_credit_holds(0)', '22023', NULL, 'prune_credit_holds: max_rows 0 is refused');
SELECT throws_ok('SELECT agentmarket.prune_usage_keys(NULL)', '22023', NULL, 'prune_usage_keys: a null max_rows is refused');
SELECT throws_ok('SELECT agentmarket.prune_notifications(-1)', '22023', NULL, 'prune_notifications: a negative max_rows is refused');
-- A backlog goes in batches: age every notification, prune 3 at a time.
UPDATE agentmarket_private.notifications SET created_at = created_at - interval '30 days';
SELECT is(agentmarket.prune_notifications(3), 3, 'a prune removes at most max_rows');
SELECT is((SELECT count(*)::int FROM agentmarket_private.notifications), 4 * 5 - 3, 'the rest waits for the next run');
SELECT throws_ok($$SELECT agentmarket.configure('usage_key_retention_days', '1')$$, '22023', NULL,
    'usage keys are kept at least two days (a retried report must still find its key)');
-- Client roles cannot prune.
SET LOCAL ROLE authenticated;
SELECT throws_ok('SELECT agentmarket.prune_credit_holds()', '42501', NULL, 'authenticated cannot prune holds');
RESET ROLE;
SET LOCAL ROLE anon;
SELECT throws_ok('SELECT agentmarket.prune_usage_keys()', '42501', NULL, 'anon cannot prune usage keys');
RESET ROLE;
SELECT * FROM finish();
ROLLBACK;
