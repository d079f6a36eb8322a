-- billing.sql: the billing rollup, replacing the seed's aggregation job.
--
-- run_billing_rollup() takes a bounded number of the usage rows that
-- record_usage() and end_session() left in usage_pending (claimed with SKIP LOCKED, so two
-- rollups at once never take the same row), and folds them into
--   * the sessions' totals (compute seconds, tokens, credits; end_session's
--     own row is queued with fold_session = false: it added its totals),
--   * the instances' costs (instance_costs), and
--   * at settlement: a session that has ended and whose earnings row is
--     neither paid nor claimed by a payout is settled again with its whole
--     recorded compute cost (late usage), keeping the gross its credits were
--     valued at.
-- A claimed row leaves usage_pending in the same transaction, so a rollup is
-- idempotent: what it folded is never folded again.  Locks are taken in id
-- order (sessions, then instances), so concurrent rollups cannot deadlock.

-- What each instance has cost so far (all usage the rollup has folded).
CREATE TABLE agentmarket_private.instance_costs (
  instance_id UUID PRIMARY KEY REFERENCES agentmarket.agent_instances(id) ON DELETE CASCADE,
  compute_seconds BIGINT NOT NULL DEFAULT 0,
  input_tokens BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0,
  compute_usd NUMERIC(16,6) NOT NULL DEFAULT 0,
  usage_rows BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT instance_costs_not_negative CHECK (compute_seconds >= 0 AND input_tokens >= 0 AND output_tokens >= 0
                                                AND compute_usd >= 0 AND usage_rows >= 0)
);
COMMENT ON TABLE agentmarket_private.instance_costs IS
    'Compute seconds, tokens and USD cost of each instance, as folded by run_billing_rollup().';
REVOKE ALL ON TABLE agentmarket_private.instance_costs FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.instance_costs', '');

CREATE FUNCTION agentmarket.run_billing_rollup(max_rows integer DEFAULT 10000)
RETURNS TABLE (usage_rows integer, sessions integer, instances integer, resettled integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids uuid[];          -- every claimed row: instance costs
    session_ids uuid[];  -- the rows whose session totals are still to add
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform runs the billing rollup' USING ERRCODE = '42501';
    END IF;
    IF run_billing_rollup.max_rows IS NULL OR run_billing_rollup.max_rows NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 1000000' USING ERRCODE = '22023';
    END IF;
    usage_rows := 0; sessions := 0; instances := 0; resettled := 0;

    -- Claim: rows another rollup holds are skipped, and leave with this one.
    WITH claimed AS (
        DELETE FROM agentmarket_private.usage_pending p
         WHERE p.usage_event_id OPERATOR(pg_catalog.=) ANY (
               ARRAY(SELECT q.usage_event_id FROM agentmarket_private.usage_pending q
                      ORDER BY q.usage_event_id LIMIT run_billing_rollup.max_rows
                      FOR UPDATE SKIP LOCKED))
        RETURNING p.usage_event_id, p.fold_session)
    SELECT pg_catalog.array_agg(c.usage_event_id), pg_catalog.array_agg(c.usage_event_id) FILTER (WHERE c.fold_session)
      INTO ids, session_ids FROM claimed c;
    IF ids IS NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;
    usage_rows := pg_catalog.cardinality(ids);

    -- Sessions, locked in id order.
    PERFORM FROM agentmarket.sessions s
     WHERE s.id OPERATOR(pg_catalog.=) ANY (
           ARRAY(SELECT DISTINCT u.session_id FROM agentmarket.usage_events u
                  WHERE u.id OPERATOR(pg_catalog.=) ANY (ids) AND u.session_id IS NOT NULL))
     ORDER BY s.id FOR UPDATE;
    UPDATE agentmarket.sessions s
       SET compute_seconds = s.compute_seconds OPERATOR(pg_catalog.+) t.seconds::integer,
           total_input_tokens = s.total_input_tokens OPERATOR(pg_catalog.+) t.inputs::integer,
           total_output_tokens = s.total_output_tokens OPERATOR(pg_catalog.+) t.outputs::integer,
           total_credits_consumed = s.total_credits_consumed OPERATOR(pg_catalog.+) t.credits::integer
      FROM (SELECT u.session_id, pg_catalog.sum(u.compute_seconds) AS seconds,
                   pg_catalog.sum(u.input_tokens) AS inputs, pg_catalog.sum(u.output_tokens) AS outputs,
                   pg_catalog.sum(u.credits_consumed) AS credits
              FROM agentmarket.usage_events u
             WHERE u.id OPERATOR(pg_catalog.=) ANY (session_ids) AND u.session_id IS NOT NULL
             GROUP BY u.session_id) t
     WHERE s.id OPERATOR(pg_catalog.=) t.session_id;
    GET DIAGNOSTICS sessions = ROW_COUNT;

    -- Instances, in id order.
    INSERT INTO agentmarket_private.instance_costs AS c
           (instance_id, compute_seconds, input_tokens, output_tokens, compute_usd, usage_rows)
    SELECT u.instance_id, pg_catalog.sum(u.compute_seconds), pg_catalog.sum(u.input_tokens),
           pg_catalog.sum(u.output_tokens), pg_catalog.sum(u.cost_usd), pg_catalog.count(*)
      FROM agentmarket.usage_events u
     WHERE u.id OPERATOR(pg_catalog.=) ANY (ids)
     GROUP BY u.instance_id
     ORDER BY u.instance_id
    ON CONFLICT ON CONSTRAINT instance_costs_pkey DO UPDATE
       SET compute_seconds = c.compute_seconds OPERATOR(pg_catalog.+) excluded.compute_seconds,
           input_tokens = c.input_tokens OPERATOR(pg_catalog.+) excluded.input_tokens,
           output_tokens = c.output_tokens OPERATOR(pg_catalog.+) excluded.output_tokens,
           compute_usd = c.compute_usd OPERATOR(pg_catalog.+) excluded.compute_usd,
           usage_rows = c.usage_rows OPERATOR(pg_catalog.+) excluded.usage_rows,
           updated_at = pg_catalog.now();
    GET DIAGNOSTICS instances = ROW_COUNT;

    -- Settlement of late usage: an ended session's unpaid, unclaimed earnings
    -- are split again over all its recorded cost; the gross stays as valued.
    UPDATE agentmarket.creator_earnings e
       SET compute_cost = t.cost,
           creator_amount = t.creator,
           platform_amount = e.gross_revenue OPERATOR(pg_catalog.-) t.creator
      FROM (SELECT e2.id, c.cost,
                   GREATEST(pg_catalog.trunc((e2.gross_revenue OPERATOR(pg_catalog.-) c.cost)
                                             OPERATOR(pg_catalog.*) e2.creator_rate, 4), 0) AS creator
              FROM agentmarket.creator_earnings e2
              JOIN agentmarket.sessions s ON s.id OPERATOR(pg_catalog.=) e2.session_id
              CROSS JOIN LATERAL (SELECT pg_catalog.sum(u.cost_usd) AS cost FROM agentmarket.usage_events u
                                   WHERE u.session_id OPERATOR(pg_catalog.=) s.id) c
             WHERE s.ended_at IS NOT NULL AND NOT e2.paid_out AND e2.payout_id IS NULL
               AND s.id OPERATOR(pg_catalog.=) ANY (
                   ARRAY(SELECT u.session_id FROM agentmarket.usage_events u
                          WHERE u.id OPERATOR(pg_catalog.=) ANY (ids) AND u.session_id IS NOT NULL))) t
     WHERE e.id OPERATOR(pg_catalog.=) t.id AND NOT e.paid_out AND e.payout_id IS NULL
       AND e.compute_cost OPERATOR(pg_catalog.<>) t.cost;
    GET DIAGNOSTICS resettled = ROW_COUNT;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION agentmarket.run_billing_rollup(integer) IS
    'For pg_cron, every minute: folds at most max_rows recorded usage rows into session totals, instance costs and the settlement of ended sessions'' unpaid earnings; returns how many rows, sessions, instances and earnings rows it changed. Safe to run twice at once; what it folded is never folded again.';

-- Problems between usage and totals; empty when consistent.
CREATE FUNCTION agentmarket.verify_metering()
RETURNS TABLE (session_id uuid, problem text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.id, pg_catalog.format('totals %s/%s/%s differ from the folded usage %s/%s/%s (seconds/input/output)',
                                   s.compute_seconds, s.total_input_tokens, s.total_output_tokens,
                                   COALESCE(u.seconds, 0), COALESCE(u.inputs, 0), COALESCE(u.outputs, 0))
      FROM agentmarket.sessions s
      LEFT JOIN LATERAL (SELECT pg_catalog.sum(e.compute_seconds) AS seconds, pg_catalog.sum(e.input_tokens) AS inputs,
                                pg_catalog.sum(e.output_tokens) AS outputs
                           FROM agentmarket.usage_events e
                          WHERE e.session_id OPERATOR(pg_catalog.=) s.id
                            AND NOT EXISTS (SELECT FROM agentmarket_private.usage_pending p
                                             WHERE p.usage_event_id OPERATOR(pg_catalog.=) e.id
                                               AND p.fold_session)) u ON true
     WHERE (s.compute_seconds, s.total_input_tokens, s.total_output_tokens)
           IS DISTINCT FROM (COALESCE(u.seconds, 0)::integer, COALESCE(u.inputs, 0)::integer, COALESCE(u.outputs, 0)::integer)
    UNION ALL
    SELECT s.id, pg_catalog.format('its messages count %s tokens, the session %s', m.tokens,
                                   s.total_input_tokens OPERATOR(pg_catalog.+) s.total_output_tokens)
      FROM agentmarket.sessions s
      JOIN LATERAL (SELECT pg_catalog.sum(x.tokens_used) AS tokens FROM agentmarket.messages x
                     WHERE x.session_id OPERATOR(pg_catalog.=) s.id) m ON true
     WHERE s.ended_at IS NOT NULL
       AND NOT EXISTS (SELECT FROM agentmarket_private.usage_pending p
                        WHERE p.session_id OPERATOR(pg_catalog.=) s.id AND p.fold_session)
       AND m.tokens OPERATOR(pg_catalog.>) (s.total_input_tokens::bigint OPERATOR(pg_catalog.+) s.total_output_tokens)
$$;
COMMENT ON FUNCTION agentmarket.verify_metering() IS
    'Consistency of metering, empty when all holds: every session''s totals equal its folded usage rows (record_usage rows the rollup has folded, and end_session''s own), and an ended, fully folded session counts at least the tokens of its messages.';

GRANT EXECUTE ON FUNCTION agentmarket.run_billing_rollup(integer), agentmarket.verify_metering() TO service_role;
-- Periodic (schedules.sql): job agentmarket.billing_rollup, setting schedule_billing_rollup.
SELECT agentmarket_private.declare_scheduled_task('billing_rollup', 'SELECT agentmarket.run_billing_rollup()', '* * * * *');

------------------------------------------------------------------------------
-- Session lifecycle: the sweep
------------------------------------------------------------------------------
INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('session_idle_minutes', 'integer', '30', 1, 10080, NULL,
   'An open session with no message for this long is ended by agentmarket.end_idle_sessions().'),
  ('session_max_minutes', 'integer', '240', 1, 43200, NULL,
   'A per_session session (its price held at the start, captured at its end) is ended by agentmarket.end_idle_sessions() after this long; the next start pays again. Its hold expires a day after this, should the sweep not run.');

CREATE INDEX sessions_open_started ON agentmarket.sessions (started_at) WHERE ended_at IS NULL;

CREATE FUNCTION agentmarket.end_idle_sessions(max_sessions integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idle interval := pg_catalog.make_interval(mins => agentmarket_private.setting('session_idle_minutes')::integer);
    longest interval := pg_catalog.make_interval(mins => agentmarket_private.setting('session_max_minutes')::integer);
    sid uuid;
    n integer := 0;
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform ends sessions' USING ERRCODE = '42501';
    END IF;
    IF end_idle_sessions.max_sessions IS NULL OR end_idle_sessions.max_sessions NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'max_sessions must be between 1 and 100000' USING ERRCODE = '22023';
    END IF;
    FOR sid IN
        SELECT s.id FROM agentmarket.sessions s
          JOIN agentmarket.agent_instances i ON i.id OPERATOR(pg_catalog.=) s.instance_id
          JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) i.agent_id
         WHERE s.ended_at IS NULL
           AND (GREATEST(s.started_at, (SELECT pg_catalog.max(m.created_at) FROM agentmarket.messages m
                                          WHERE m.session_id OPERATOR(pg_catalog.=) s.id))
                  OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) idle)
                OR (a.pricing_model OPERATOR(pg_catalog.=) 'per_session'
                    AND s.started_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) longest)))
         ORDER BY s.started_at
         LIMIT end_idle_sessions.max_sessions
         FOR UPDATE OF s SKIP LOCKED
    LOOP
        -- No final metering of its own: what ran was reported by record_usage.
        PERFORM agentmarket.end_session(sid, 0, 0, 0);
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket.end_idle_sessions(integer) IS
    'For pg_cron (scheduled by schedule_jobs()): ends (with settlement, as end_session) at most max_sessions open sessions with no message for session_idle_minutes, and per_session sessions older than session_max_minutes; returns how many. Sessions another transaction holds are skipped.';
GRANT EXECUTE ON FUNCTION agentmarket.end_idle_sessions(integer) TO service_role;
-- Periodic (schedules.sql): job agentmarket.end_idle_sessions, setting schedule_end_idle_sessions.
SELECT agentmarket_private.declare_scheduled_task('end_idle_sessions', 'SELECT agentmarket.end_idle_sessions()', '* * * * *');
