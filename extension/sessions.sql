-- sessions.sql: talking to a hired agent and paying for it.
--
-- A session is opened on a running instance (by its owner, or by the platform
-- for a relay), paid in credits as the agent's pricing says (per_session: held
-- at the start, captured at the end; per_task: for each task the platform
-- reports; free: never),
-- metered when it ends (usage_events), and turned into the creator's earnings
-- with the exact split of earnings.c.  A refund returns the credits and claws
-- back earnings not yet paid out.  Every change here goes through the credit
-- ledger's functions, so balance = sum of ledger holds throughout.

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('idle_suspend_minutes', 'integer', '15', 1, 10080, NULL,
   'A running instance with no activity for this long is suspended.'),
  ('message_max_bytes', 'integer', '65536', 1024, 1048576, NULL,
   'Longest message content (and tool_use) add_message accepts, in bytes.');

ALTER TABLE agentmarket.sessions
  ADD COLUMN refunded_at TIMESTAMPTZ,
  ADD CONSTRAINT sessions_relay_check CHECK (relay IN ('web', 'telegram', 'whatsapp', 'slack', 'discord')),
  ADD CONSTRAINT sessions_ended_after_start CHECK (ended_at IS NULL OR ended_at >= started_at),
  ADD CONSTRAINT sessions_totals_not_negative CHECK (total_credits_consumed >= 0 AND total_input_tokens >= 0
                                                     AND total_output_tokens >= 0 AND compute_seconds >= 0),
  ADD CONSTRAINT sessions_refund_after_end CHECK (refunded_at IS NULL OR ended_at IS NOT NULL);
ALTER TABLE agentmarket.messages
  ADD CONSTRAINT messages_role_check CHECK (role IN ('user', 'assistant', 'system', 'tool')),
  ADD CONSTRAINT messages_tokens_not_negative CHECK (tokens_used >= 0);
ALTER TABLE agentmarket.usage_events
  ADD CONSTRAINT usage_events_not_negative CHECK (compute_seconds >= 0 AND input_tokens >= 0 AND output_tokens >= 0
                                                  AND credits_consumed >= 0 AND cost_usd >= 0);
-- Tasks charged in a session, so a retried report charges once.
CREATE TABLE agentmarket_private.session_task_charges (
  session_id UUID NOT NULL REFERENCES agentmarket.sessions(id) ON DELETE CASCADE,
  task_key TEXT NOT NULL CONSTRAINT session_task_charges_key_length CHECK (length(task_key) BETWEEN 1 AND 200),
  credits INTEGER NOT NULL CONSTRAINT session_task_charges_credits_check CHECK (credits >= 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, task_key)
);
COMMENT ON TABLE agentmarket_private.session_task_charges IS
    'One row per task charged in a per_task session, keyed by the platform''s task id.';
REVOKE ALL ON TABLE agentmarket_private.session_task_charges FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.session_task_charges', '');

-- One earnings row per session.
CREATE UNIQUE INDEX creator_earnings_one_per_session ON agentmarket.creator_earnings (session_id);

-- The session, locked, if the caller may act on it (its user, or the
-- platform); P0002 otherwise, so other users' sessions do not exist for them.
CREATE FUNCTION agentmarket_private.session_for_update(p_session_id uuid, p_admin_too boolean DEFAULT false)
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s agentmarket.sessions;
    uid uuid := agentmarket.current_user_id();
BEGIN
    IF p_session_id IS NULL THEN
        RAISE EXCEPTION 'session id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO s FROM agentmarket.sessions x WHERE x.id OPERATOR(pg_catalog.=) p_session_id FOR UPDATE;
    IF NOT FOUND OR NOT (agentmarket_private.caller_is_service()
                         OR (uid IS NOT NULL AND s.user_id OPERATOR(pg_catalog.=) uid)
                         OR (p_admin_too AND agentmarket.current_user_is_admin())) THEN
        RAISE EXCEPTION 'session % not found', p_session_id USING ERRCODE = 'P0002';
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket_private.session_for_update(uuid, boolean) IS
    'Locks and returns a session the caller may act on (its user, service_role, and admins when asked); P0002 otherwise.';

-- Raises 22023 unless the session is still open.
CREATE FUNCTION agentmarket_private.session_check_open(s agentmarket.sessions)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF s.ended_at IS NOT NULL THEN
        RAISE EXCEPTION 'session has ended'
            USING ERRCODE = '22023', DETAIL = format('Session %s ended at %s.', s.id, s.ended_at),
                  HINT = 'Start a new session with agentmarket.start_session().';
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.session_check_open(agentmarket.sessions) IS
    'Raises 22023 when the session has ended.';

-- The agent a session talks to (through its instance).
CREATE FUNCTION agentmarket_private.session_agent(s agentmarket.sessions)
RETURNS agentmarket.agents
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.* FROM agentmarket.agents a
      JOIN agentmarket.agent_instances i ON i.agent_id OPERATOR(pg_catalog.=) a.id
     WHERE i.id OPERATOR(pg_catalog.=) s.instance_id
$$;
COMMENT ON FUNCTION agentmarket_private.session_agent(agentmarket.sessions) IS
    'The agent of a session''s instance.';

CREATE FUNCTION agentmarket.start_session(instance_id uuid, relay text DEFAULT 'web')
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    uid uuid := agentmarket.current_user_id();
    inst agentmarket.agent_instances;
    ag agentmarket.agents;
    s agentmarket.sessions;
    pending text;
BEGIN
    IF start_session.instance_id IS NULL THEN
        RAISE EXCEPTION 'instance id must not be null' USING ERRCODE = '22023';
    END IF;
    IF start_session.relay IS NULL OR start_session.relay NOT IN ('web', 'telegram', 'whatsapp', 'slack', 'discord') THEN
        RAISE EXCEPTION 'unknown relay "%"', start_session.relay
            USING ERRCODE = '22023', HINT = 'Relays are web, telegram, whatsapp, slack and discord.';
    END IF;
    -- Locked for the update of last_active_at below from the start: a share
    -- lock here that each concurrent start later upgrades deadlocks them.
    SELECT * INTO inst FROM agentmarket.agent_instances i
     WHERE i.id OPERATOR(pg_catalog.=) start_session.instance_id FOR NO KEY UPDATE;
    IF NOT FOUND OR NOT (agentmarket_private.caller_is_service()
                         OR (uid IS NOT NULL AND inst.user_id OPERATOR(pg_catalog.=) uid)) THEN
        RAISE EXCEPTION 'instance % not found', start_session.instance_id USING ERRCODE = 'P0002';
    END IF;
    -- A suspended or stopped machine is woken (a Fly start job) rather than
    -- refused; one being destroyed, provisioning or failed is refused.
    SELECT jk.instance_status INTO pending
      FROM agentmarket_private.jobs j JOIN agentmarket_private.job_kinds jk ON jk.kind OPERATOR(pg_catalog.=) j.kind
     WHERE j.serial_key OPERATOR(pg_catalog.=) inst.id::text AND j.status IN ('queued', 'running')
       AND jk.instance_status IS NOT NULL
     ORDER BY j.id DESC LIMIT 1;
    IF inst.status NOT IN ('running', 'suspended', 'stopped') OR pending = 'destroyed' THEN
        RAISE EXCEPTION 'instance % is %, not running', inst.id, COALESCE(NULLIF(pending, 'running'), inst.status)
            USING ERRCODE = '22023',
                  HINT = CASE WHEN inst.status = 'provisioning' THEN 'Wait until its machine is running.' END;
    END IF;
    IF COALESCE(pending, inst.status) IN ('suspended', 'stopped') THEN
        PERFORM agentmarket_private.enqueue_instance_job(inst.id, 'fly.start_machine');
    END IF;
    SELECT * INTO ag FROM agentmarket.agents a WHERE a.id OPERATOR(pg_catalog.=) inst.agent_id;
    IF start_session.relay <> 'web' AND NOT start_session.relay = ANY (COALESCE(ag.supported_relays, '{}')) THEN
        RAISE EXCEPTION 'agent "%" does not support relay "%"', ag.slug, start_session.relay
            USING ERRCODE = '22023',
                  DETAIL = format('Its relays are: %s.', COALESCE(NULLIF(array_to_string(ag.supported_relays, ', '), ''), 'web only'));
    END IF;

    -- One open session per instance and relay: a second start returns it.
    SELECT * INTO s FROM agentmarket.sessions x
     WHERE x.instance_id OPERATOR(pg_catalog.=) inst.id AND x.relay OPERATOR(pg_catalog.=) start_session.relay
       AND x.ended_at IS NULL
     ORDER BY x.started_at LIMIT 1;
    IF FOUND THEN
        RETURN s;
    END IF;
    INSERT INTO agentmarket.sessions (instance_id, user_id, relay)
    VALUES (inst.id, inst.user_id, start_session.relay)
    RETURNING * INTO s;
    IF ag.pricing_model = 'per_session' AND COALESCE(ag.credits_per_session, 0) > 0 THEN
        -- The price is held now and captured when the session ends (spend.sql).
        -- Not enough credits: PT402 from the ledger, and the session is not created.
        PERFORM agentmarket_private.spend_charge(inst.user_id, ag.credits_per_session, s.id,
                                           'session:' || s.id::text, format('Session with %s', ag.name), true);
        UPDATE agentmarket.sessions x SET total_credits_consumed = ag.credits_per_session
         WHERE x.id OPERATOR(pg_catalog.=) s.id RETURNING * INTO s;
    END IF;
    UPDATE agentmarket.agent_instances i SET last_active_at = now() WHERE i.id OPERATOR(pg_catalog.=) inst.id;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket.start_session(uuid, text) IS
    'Opens a session on the caller''s instance over a relay (web by default), waking a suspended or stopped machine (Fly start job); an open session on the same instance and relay is returned instead of a second one. A per_session agent''s price is held now (spend caps apply) and captured when the session ends. PT402 without enough credits or over a cap, 22023 for a bad relay or an instance provisioning, failed or being destroyed, P0002 for an unknown instance.';

CREATE FUNCTION agentmarket.add_message(
    session_id uuid, role text, content text, tool_use jsonb DEFAULT NULL, tokens_used integer DEFAULT 0)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    s agentmarket.sessions := agentmarket_private.session_for_update(add_message.session_id);
    message_id uuid;
BEGIN
    PERFORM agentmarket_private.session_check_open(s);
    IF add_message.role IS NULL OR add_message.role NOT IN ('user', 'assistant', 'system', 'tool') THEN
        RAISE EXCEPTION 'unknown message role "%"', add_message.role
            USING ERRCODE = '22023', HINT = 'Roles are user, assistant, system and tool.';
    END IF;
    IF add_message.role <> 'user' AND NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform may add % messages', add_message.role USING ERRCODE = '42501';
    END IF;
    IF add_message.content IS NULL THEN
        RAISE EXCEPTION 'message content must not be null' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.octet_length(add_message.content)
       OPERATOR(pg_catalog.>) agentmarket_private.setting('message_max_bytes')::integer
       OR pg_catalog.octet_length(add_message.tool_use::text)
          OPERATOR(pg_catalog.>) agentmarket_private.setting('message_max_bytes')::integer THEN
        RAISE EXCEPTION 'message too long' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('Content and tool_use may have at most %s bytes each.',
                                       agentmarket_private.setting('message_max_bytes'));
    END IF;
    IF COALESCE(add_message.tokens_used, -1) < 0 THEN
        RAISE EXCEPTION 'tokens_used must be zero or more' USING ERRCODE = '22023';
    END IF;
    -- Metering comes from the platform, never from the user's own call.
    IF add_message.tokens_used OPERATOR(pg_catalog.<>) 0 AND NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform reports tokens_used' USING ERRCODE = '42501',
            HINT = 'Leave tokens_used at 0; the platform meters the session.';
    END IF;
    IF add_message.tool_use IS NOT NULL AND add_message.role <> 'tool' THEN
        RAISE EXCEPTION 'only tool messages carry tool_use' USING ERRCODE = '22023';
    END IF;
    INSERT INTO agentmarket.messages (session_id, role, content, tool_use, tokens_used)
    VALUES (s.id, add_message.role, add_message.content, add_message.tool_use, add_message.tokens_used)
    RETURNING id INTO message_id;
    UPDATE agentmarket.agent_instances i SET last_active_at = now() WHERE i.id OPERATOR(pg_catalog.=) s.instance_id;
    RETURN message_id;
END
$$;
COMMENT ON FUNCTION agentmarket.add_message(uuid, text, text, jsonb, integer) IS
    'Appends a message to an open session: its user may add user messages, the platform (service_role) any role. 22023 for an ended session or bad role, P0002 for an unknown session.';

CREATE FUNCTION agentmarket.charge_task(session_id uuid, idempotency_key text)
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    s agentmarket.sessions := agentmarket_private.session_for_update(charge_task.session_id);
    ag agentmarket.agents;
BEGIN
    PERFORM agentmarket_private.session_check_open(s);
    IF charge_task.idempotency_key IS NULL OR length(charge_task.idempotency_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'a task charge needs an idempotency key'
            USING ERRCODE = '22023', HINT = 'Use the task''s own id, so a retried report charges once.';
    END IF;
    ag := agentmarket_private.session_agent(s);
    IF ag.pricing_model <> 'per_task' THEN
        RAISE EXCEPTION 'agent "%" is not priced per task', ag.slug USING ERRCODE = '22023';
    END IF;
    INSERT INTO agentmarket_private.session_task_charges (session_id, task_key, credits)
    VALUES (s.id, charge_task.idempotency_key, COALESCE(ag.credits_per_session, 0))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN s;    -- this task was charged before
    END IF;
    PERFORM agentmarket_private.spend_charge(s.user_id, ag.credits_per_session, s.id,
                                       'task:' || s.id::text || ':' || charge_task.idempotency_key,
                                       'Task ' || charge_task.idempotency_key, false);
    UPDATE agentmarket.sessions x SET total_credits_consumed = x.total_credits_consumed + ag.credits_per_session
     WHERE x.id OPERATOR(pg_catalog.=) s.id RETURNING * INTO s;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket.charge_task(uuid, text) IS
    'Platform only: charges a per_task agent''s price for one finished task of an open session; the same idempotency key charges once. PT402 without enough credits.';

CREATE FUNCTION agentmarket.end_session(
    session_id uuid, compute_seconds integer, input_tokens integer, output_tokens integer, cost_usd numeric DEFAULT NULL)
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    s agentmarket.sessions := agentmarket_private.session_for_update(end_session.session_id);
    ag agentmarket.agents;
    rate numeric := agentmarket_private.setting('creator_rate')::numeric;
    split record;
    final_cost numeric;
    session_cost numeric;
    final_usage_id uuid;
    released integer;
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform ends sessions' USING ERRCODE = '42501',
            DETAIL = 'Metering comes from the platform, never from a client.';
    END IF;
    IF s.ended_at IS NOT NULL THEN
        RETURN s;    -- ended before: a retried end changes nothing
    END IF;
    IF COALESCE(end_session.compute_seconds, -1) < 0 OR COALESCE(end_session.input_tokens, -1) < 0
       OR COALESCE(end_session.output_tokens, -1) < 0 THEN
        RAISE EXCEPTION 'metering values must be zero or more' USING ERRCODE = '22023';
    END IF;
    ag := agentmarket_private.session_agent(s);
    -- A per_session price was held at the start: captured now, before the
    -- revenue is valued, when the agent served the session (it answered, or
    -- compute or tokens were metered); released when it never did.
    released := agentmarket_private.spend_settle_hold(s,
        end_session.compute_seconds > 0 OR end_session.input_tokens > 0 OR end_session.output_tokens > 0
        OR EXISTS (SELECT FROM agentmarket.messages m
                    WHERE m.session_id OPERATOR(pg_catalog.=) s.id AND m.role IN ('assistant', 'tool'))
        OR EXISTS (SELECT FROM agentmarket.usage_events u
                    WHERE u.session_id OPERATOR(pg_catalog.=) s.id
                      AND (u.compute_seconds > 0 OR u.input_tokens > 0 OR u.output_tokens > 0)));
    -- Cost comes from the price table (metering.sql), never from the caller:
    -- cost_usd is ignored.  The session costs its final seconds plus every
    -- usage recorded for it before.
    final_cost := round(agentmarket_private.instance_usd_per_second(s.instance_id) * end_session.compute_seconds, 6);
    SELECT final_cost + COALESCE(sum(u.cost_usd), 0) INTO session_cost
      FROM agentmarket.usage_events u WHERE u.session_id OPERATOR(pg_catalog.=) s.id;
    -- Gross is what the consumed credits are worth (lots.sql): a creator is
    -- never paid more than users paid.
    SELECT * INTO split FROM agentmarket.split_revenue(agentmarket_private.session_revenue(s.id),
                                                       session_cost, rate);

    UPDATE agentmarket.sessions x
       SET ended_at = now(),
           total_credits_consumed = x.total_credits_consumed - released,
           compute_seconds = x.compute_seconds + end_session.compute_seconds,
           total_input_tokens = x.total_input_tokens + end_session.input_tokens,
           total_output_tokens = x.total_output_tokens + end_session.output_tokens
     WHERE x.id OPERATOR(pg_catalog.=) s.id RETURNING * INTO s;
    INSERT INTO agentmarket.usage_events (user_id, instance_id, session_id, compute_seconds, input_tokens,
                                          output_tokens, credits_consumed, cost_usd)
    VALUES (s.user_id, s.instance_id, s.id, end_session.compute_seconds, end_session.input_tokens,
            end_session.output_tokens, s.total_credits_consumed, final_cost)
    RETURNING id INTO final_usage_id;
    -- For the rollup's instance costs (billing.sql); the totals above count it.
    INSERT INTO agentmarket_private.usage_pending (usage_event_id, session_id, fold_session)
    VALUES (final_usage_id, s.id, false);
    IF s.total_credits_consumed > 0 THEN
        INSERT INTO agentmarket.creator_earnings (creator_id, agent_id, session_id, gross_revenue, compute_cost,
                                                  creator_amount, platform_amount, creator_rate)
        VALUES (ag.creator_id, ag.id, s.id, split.gross_revenue, session_cost,
                split.creator_amount, split.platform_amount, rate);
    END IF;
    UPDATE agentmarket.agent_instances i SET last_active_at = now() WHERE i.id OPERATOR(pg_catalog.=) s.instance_id;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket.end_session(uuid, integer, integer, integer, numeric) IS
    'Platform only: closes a session with its final metering (compute seconds, tokens), captures a per_session hold (the whole price when the agent served the session: it answered or was metered; released when it never did), records the usage event with its cost from the price table (cost_usd is ignored: cost never comes from the caller) and the creator''s earnings (exact split at the configured creator_rate, net of all the session''s recorded compute cost). Idempotent: a session that has ended is returned unchanged. 22023 for bad metering.';

CREATE FUNCTION agentmarket.refund_session(session_id uuid, reason text DEFAULT NULL)
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    s agentmarket.sessions := agentmarket_private.session_for_update(refund_session.session_id, true);
    taken integer;
BEGIN
    IF NOT (agentmarket_private.caller_is_service() OR agentmarket.current_user_is_admin()) THEN
        RAISE EXCEPTION 'only the platform or an admin refunds sessions' USING ERRCODE = '42501';
    END IF;
    IF s.ended_at IS NULL THEN
        RAISE EXCEPTION 'session is still open'
            USING ERRCODE = '22023', DETAIL = format('Session %s has not ended.', s.id),
                  HINT = 'End it with agentmarket.end_session() first.';
    END IF;
    IF s.refunded_at IS NOT NULL THEN
        RAISE EXCEPTION 'session was already refunded'
            USING ERRCODE = '22023', DETAIL = format('Session %s was refunded at %s.', s.id, s.refunded_at);
    END IF;
    SELECT COALESCE(-sum(t.amount), 0) INTO taken FROM agentmarket.credit_transactions t
     WHERE t.session_id OPERATOR(pg_catalog.=) s.id;
    IF taken > 0 THEN
        PERFORM agentmarket.refund_credits(s.user_id, taken, s.id, 'refund:' || s.id::text,
                                           COALESCE('Refund: ' || refund_session.reason, 'Session refund'));
    END IF;
    -- Earnings not yet paid out are clawed back; paid ones stay as paid, and a
    -- trigger of payouts.sql keeps the ones a payout in flight has claimed.
    DELETE FROM agentmarket.creator_earnings e
     WHERE e.session_id OPERATOR(pg_catalog.=) s.id AND NOT e.paid_out;
    -- Earnings paid (or on their way in a payout) are taken back from the
    -- creator's next payout instead (reconcile.sql).
    -- (What a refund of the session's purchase already clawed back is not
    -- clawed back twice.)
    INSERT INTO agentmarket_private.creator_clawbacks (creator_id, session_id, earnings_id, gross_usd, creator_amount, reason)
    SELECT e.creator_id, e.session_id, e.id, e.gross_revenue - k.gross,
           LEAST(GREATEST(e.creator_amount - k.creator, 0), e.gross_revenue - k.gross),
           'session refunded'
      FROM agentmarket.creator_earnings e,
           LATERAL (SELECT COALESCE(sum(c.gross_usd), 0) AS gross, COALESCE(sum(c.creator_amount), 0) AS creator
                      FROM agentmarket_private.creator_clawbacks c WHERE c.earnings_id OPERATOR(pg_catalog.=) e.id) k
     WHERE e.session_id OPERATOR(pg_catalog.=) s.id;
    UPDATE agentmarket.sessions x SET refunded_at = now() WHERE x.id OPERATOR(pg_catalog.=) s.id RETURNING * INTO s;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket.refund_session(uuid, text) IS
    'Platform or admin: returns every credit the ended session took to the pots it came from and claws back its unpaid earnings (earnings a payout has claimed stay with it). 22023 when open or already refunded.';

-- pg_cron: suspend running instances idle for idle_suspend_minutes.
CREATE FUNCTION agentmarket.suspend_idle_instances()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    idle interval := make_interval(mins => agentmarket_private.setting('idle_suspend_minutes')::integer);
    n integer := 0;
    inst uuid;
BEGIN
    FOR inst IN
        SELECT i.id FROM agentmarket.agent_instances i
         WHERE i.status = 'running'
           AND COALESCE(i.last_active_at, i.updated_at) < now() - idle
           AND NOT EXISTS (SELECT FROM agentmarket.sessions s
                            WHERE s.instance_id OPERATOR(pg_catalog.=) i.id AND s.ended_at IS NULL)
           AND NOT EXISTS (SELECT FROM agentmarket_private.jobs j
                            WHERE j.serial_key OPERATOR(pg_catalog.=) i.id::text AND j.status IN ('queued', 'running'))
         ORDER BY i.id
         FOR UPDATE OF i SKIP LOCKED
    LOOP
        PERFORM agentmarket_private.enqueue_instance_job(inst, 'fly.suspend_machine');
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket.suspend_idle_instances() IS
    'For pg_cron: enqueues a suspend for every running instance with no open session and no activity for idle_suspend_minutes; returns how many.';

GRANT EXECUTE ON FUNCTION agentmarket.start_session(uuid, text),
    agentmarket.add_message(uuid, text, text, jsonb, integer) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION agentmarket.refund_session(uuid, text) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION agentmarket.charge_task(uuid, text),
    agentmarket.end_session(uuid, integer, integer, integer, numeric),
    agentmarket.suspend_idle_instances() TO service_role;
-- Periodic (schedules.sql): job agentmarket.suspend_idle_instances, setting schedule_suspend_idle_instances.
SELECT agentmarket_private.declare_scheduled_task('suspend_idle_instances', 'SELECT agentmarket.suspend_idle_instances()', '* * * * *');
