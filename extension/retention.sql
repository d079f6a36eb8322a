-- retention.sql: nothing the extension keeps for its own bookkeeping grows
-- without bound.  Every table is one of:
--
--   record    the business's own history (users, listings, sessions,
--             messages, the ledger, earnings, payouts, audits): kept, it
--             grows with the business, and deleting it is the operator's
--             decision, not a job's;
--   per_key   at most one row per row of another table (a user, an
--             instance, a session, a connection), deleted with it;
--   shipped   rows that come with the extension (and the operator's
--             edits of them): a fixed, small set;
--   derived   rebuilt from other tables and shrinking with them;
--   drained   a work list emptied by the job that consumes it;
--   pruned    bookkeeping kept only for a retention period, deleted by a
--             prune job scheduled by schedule_jobs() (schedules.sql).
--
-- agentmarket.table_retention() is that list; the retention suite checks
-- that it names every table of the extension and that each pruned or
-- drained table stays bounded under its job.  A new table gets its line
-- here.  The prunes below join those of jobs (queue_protocol.sql), webhook
-- events (webhooks.sql) and credit idempotency records (credit_upkeep.sql).

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('credit_hold_retention_days', 'integer', '30', 1, 3650, NULL,
   'Credit holds resolved (captured, released, expired) more than this many days ago are removed by agentmarket.prune_credit_holds(); a capture or release of one after that is refused as unknown (P0002).'),
  ('usage_key_retention_days', 'integer', '35', 2, 3650, NULL,
   'Idempotency keys of usage events older than this many days are removed by agentmarket.prune_usage_keys(); the same event reported again after that is recorded anew, so this must outlive the platform''s retries.'),
  ('notification_retention_days', 'integer', '30', 1, 3650, NULL,
   'Spend notifications older than this many days, sent or not, are removed by agentmarket.prune_notifications().');

CREATE INDEX credit_holds_resolved_at ON agentmarket_private.credit_holds (resolved_at) WHERE resolved_at IS NOT NULL;
-- BRIN: keys arrive in time order, and a btree entry per key would cost
-- record_usage() a second index insertion per event.
CREATE INDEX usage_keys_recorded_at ON agentmarket_private.usage_keys USING brin (recorded_at);
CREATE INDEX notifications_created_at ON agentmarket_private.notifications (created_at);

-- The one prune: deletes the oldest rows of a table whose age column is
-- older than the retention setting (in days), at most p_max_rows, skipping
-- rows another transaction holds (so a pg_cron run never waits on or holds
-- many locks; a backlog goes in several runs), and never a row the keep
-- condition (on alias o) holds for.  Called by the prune functions below with
-- their own constant arguments only.
CREATE FUNCTION agentmarket_private.delete_expired_rows(p_table regclass, p_key text, p_age text, p_setting text,
                                                  p_keep text, p_max_rows integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed integer;
BEGIN
    IF p_max_rows IS NULL OR p_max_rows OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('Got %s.', COALESCE(p_max_rows::text, 'null'));
    END IF;
    EXECUTE pg_catalog.format(
        'DELETE FROM %1$s x WHERE x.%2$I IN ('
        '    SELECT o.%2$I FROM %1$s o'
        '     WHERE o.%3$I OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => $1))'
        '       AND NOT (%4$s)'
        '     ORDER BY o.%3$I LIMIT $2 FOR UPDATE SKIP LOCKED)',
        p_table, p_key, p_age, COALESCE(p_keep, 'false'))
    USING agentmarket_private.setting(p_setting)::integer, p_max_rows;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;
COMMENT ON FUNCTION agentmarket_private.delete_expired_rows(regclass, text, text, text, text, integer) IS
    'Deletes up to max_rows of the oldest rows of a table older than a retention setting (days), skipping locked rows and rows the keep condition holds for; returns how many. 22023 for max_rows below 1.';

CREATE FUNCTION agentmarket.prune_credit_holds(max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- Active holds are never removed, however old: release_expired_holds()
    -- resolves them first (and only a resolved hold has a resolved_at).
    SELECT agentmarket_private.delete_expired_rows('agentmarket_private.credit_holds', 'id', 'resolved_at',
        'credit_hold_retention_days', 'o.status OPERATOR(pg_catalog.=) ''active''', max_rows)
$$;
COMMENT ON FUNCTION agentmarket.prune_credit_holds(integer) IS
    'For pg_cron: removes up to max_rows credit holds resolved more than credit_hold_retention_days ago (oldest first; active holds never); returns how many. 22023 for max_rows below 1.';
GRANT EXECUTE ON FUNCTION agentmarket.prune_credit_holds(integer) TO service_role;
-- Periodic (schedules.sql): job agentmarket.prune_credit_holds, setting schedule_prune_credit_holds.
SELECT agentmarket_private.declare_scheduled_task('prune_credit_holds', 'SELECT agentmarket.prune_credit_holds()', '35 4 * * *');

CREATE FUNCTION agentmarket.prune_usage_keys(max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT agentmarket_private.delete_expired_rows('agentmarket_private.usage_keys', 'idempotency_key', 'recorded_at',
        'usage_key_retention_days', NULL, max_rows)
$$;
COMMENT ON FUNCTION agentmarket.prune_usage_keys(integer) IS
    'For pg_cron: removes up to max_rows usage-event idempotency keys older than usage_key_retention_days (oldest first; the usage_events rows stay); returns how many. 22023 for max_rows below 1.';
GRANT EXECUTE ON FUNCTION agentmarket.prune_usage_keys(integer) TO service_role;
-- Periodic (schedules.sql): job agentmarket.prune_usage_keys, setting schedule_prune_usage_keys.
SELECT agentmarket_private.declare_scheduled_task('prune_usage_keys', 'SELECT agentmarket.prune_usage_keys()', '41 4 * * *');

CREATE FUNCTION agentmarket.prune_notifications(max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT agentmarket_private.delete_expired_rows('agentmarket_private.notifications', 'id', 'created_at',
        'notification_retention_days', NULL, max_rows)
$$;
COMMENT ON FUNCTION agentmarket.prune_notifications(integer) IS
    'For pg_cron: removes up to max_rows spend notifications older than notification_retention_days, sent or not (oldest first); returns how many. 22023 for max_rows below 1.';
GRANT EXECUTE ON FUNCTION agentmarket.prune_notifications(integer) TO service_role;
-- Periodic (schedules.sql): job agentmarket.prune_notifications, setting schedule_prune_notifications.
SELECT agentmarket_private.declare_scheduled_task('prune_notifications', 'SELECT agentmarket.prune_notifications()', '47 4 * * *');

CREATE FUNCTION agentmarket.table_retention()
RETURNS TABLE (table_name text, kind text, retention_setting text, job text, note text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.table_name, t.kind, t.retention_setting, t.job, t.note
      FROM (VALUES
        ('agentmarket.users', 'record', NULL, NULL, 'accounts'),
        ('agentmarket.projects', 'record', NULL, NULL, 'a user''s projects'),
        ('agentmarket.teams', 'record', NULL, NULL, 'a project''s teams'),
        ('agentmarket.team_agents', 'record', NULL, NULL, 'instances in teams'),
        ('agentmarket.agents', 'record', NULL, NULL, 'listings'),
        ('agentmarket.agent_versions', 'record', NULL, NULL, 'releases of listings'),
        ('agentmarket.agent_skills', 'record', NULL, NULL, 'skills of releases'),
        ('agentmarket.agent_reviews', 'record', NULL, NULL, 'one per user and agent'),
        ('agentmarket.agent_instances', 'record', NULL, NULL, 'hires, one per user and agent'),
        ('agentmarket.sessions', 'record', NULL, NULL, 'every session'),
        ('agentmarket.messages', 'record', NULL, NULL, 'conversation history: the largest table; its retention is the operator''s policy'),
        ('agentmarket.usage_events', 'record', NULL, NULL, 'metered usage, one row per instance and session between two rollups'),
        ('agentmarket.credit_transactions', 'record', NULL, NULL, 'the ledger'),
        ('agentmarket.creator_earnings', 'record', NULL, NULL, 'one per settled session'),
        ('agentmarket.payouts', 'record', NULL, NULL, 'transfers to creators'),
        ('agentmarket.purchases', 'record', NULL, NULL, 'credit purchases'),
        ('agentmarket.relay_connections', 'record', NULL, NULL, 'one per relay user'),
        ('agentmarket_private.credit_lots', 'record', NULL, NULL, 'one per grant of credits'),
        ('agentmarket_private.purchase_payments', 'record', NULL, NULL, 'payments of purchases'),
        ('agentmarket_private.creator_clawbacks', 'record', NULL, NULL, 'refunded revenue taken back'),
        ('agentmarket_private.revenue_reversals', 'record', NULL, NULL, 'revenue reversed by refunds'),
        ('agentmarket_private.disputes', 'record', NULL, NULL, 'disputes of payments, with the credits they froze'),
        ('agentmarket_private.payout_reversals', 'record', NULL, NULL, 'partial transfer reversals owed to creators again'),
        ('agentmarket_private.billing_portal_sessions', 'record', NULL, NULL, 'billing portal sessions asked for; each goes with its job when prune_jobs removes it'),
        ('agentmarket_private.session_task_charges', 'record', NULL, NULL, 'tasks charged in per_task sessions'),
        ('agentmarket_private.price_audit', 'record', NULL, NULL, 'the operator''s price changes'),
        ('agentmarket.credit_balances', 'per_key', NULL, NULL, 'one per user'),
        ('agentmarket.ssh_configs', 'per_key', NULL, NULL, 'one per instance'),
        ('agentmarket.agent_price_changes', 'per_key', NULL, NULL, 'one per listing, deleted when applied'),
        ('agentmarket_private.secrets', 'per_key', NULL, NULL, 'one per SSH key or relay token'),
        ('agentmarket_private.relay_connection_secrets', 'per_key', NULL, NULL, 'one per relay connection'),
        ('agentmarket_private.relay_verifications', 'per_key', NULL, NULL, 'one per pending relay connection, deleted when confirmed'),
        ('agentmarket_private.instance_costs', 'per_key', NULL, NULL, 'one per instance'),
        ('agentmarket_private.session_caps', 'per_key', NULL, NULL, 'one per capped session'),
        ('agentmarket_private.user_spend', 'per_key', NULL, NULL, 'one per user'),
        ('agentmarket_private.credit_debts', 'per_key', NULL, NULL, 'one per user in debt'),
        ('agentmarket_private.subscriptions', 'per_key', NULL, NULL, 'one per Stripe subscription'),
        ('agentmarket_private.connect_accounts', 'per_key', NULL, NULL, 'one per creator''s Connect account'),
        ('agentmarket_private.settings', 'shipped', NULL, NULL, 'one per configured key'),
        ('agentmarket_private.setting_definitions', 'shipped', NULL, NULL, 'the known keys'),
        ('agentmarket_private.job_kinds', 'shipped', NULL, NULL, 'the kinds of queued job'),
        ('agentmarket_private.scheduled_tasks', 'shipped', NULL, NULL, 'the periodic tasks'),
        ('agentmarket_private.relay_kinds', 'shipped', NULL, NULL, 'the relays'),
        ('agentmarket_private.credit_packs', 'shipped', NULL, NULL, 'the packs on sale'),
        ('agentmarket_private.machine_price_list', 'shipped', NULL, NULL, 'Fly''s published prices'),
        ('agentmarket_private.machine_prices', 'shipped', NULL, NULL, 'the operator''s machine prices'),
        ('agentmarket_private.search_vocabulary', 'derived', NULL, NULL, 'lexemes of published listings; shrinks as listings go'),
        ('agentmarket_private.search_typo_index', 'derived', NULL, NULL, 'typo keys of the vocabulary'),
        ('agentmarket_private.search_corpus', 'derived', NULL, NULL, 'one row'),
        ('agentmarket_private.usage_pending', 'drained', NULL, 'billing_rollup', 'usage not yet folded into totals'),
        ('agentmarket_private.jobs', 'pruned', 'job_retention_days, dead_job_retention_days', 'prune_jobs', 'finished jobs'),
        ('agentmarket_private.processed_webhook_events', 'pruned', 'webhook_event_retention_days', 'prune_webhook_events', 'handled Stripe events (deferred ones stay)'),
        ('agentmarket_private.credit_idempotency', 'pruned', 'credit_idempotency_retention_days', 'prune_credit_idempotency', 'outcomes of credit calls by idempotency key'),
        ('agentmarket_private.credit_holds', 'pruned', 'credit_hold_retention_days', 'prune_credit_holds', 'resolved holds (active ones stay)'),
        ('agentmarket_private.usage_keys', 'pruned', 'usage_key_retention_days', 'prune_usage_keys', 'idempotency keys of usage events'),
        ('agentmarket_private.notifications', 'pruned', 'notification_retention_days', 'prune_notifications', 'spend notifications')
      ) AS t (table_name, kind, retention_setting, job, note)
     ORDER BY t.kind, t.table_name
$$;
COMMENT ON FUNCTION agentmarket.table_retention() IS
    'Every table of the extension: whether it is a record kept, per key, shipped, derived, drained by a job or pruned after a retention period, with its setting and its scheduled job (agentmarket.scheduled_jobs()). Superuser and service_role only.';
GRANT EXECUTE ON FUNCTION agentmarket.table_retention() TO service_role;
