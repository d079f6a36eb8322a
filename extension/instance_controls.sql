-- instance_controls.sql: what an instance's owner may ask of its Fly machine (suspend,
-- resume, destroy), queued as jobs of the outbox (queue.sql).
------------------------------------------------------------------------------
-- Owner-facing instance controls
------------------------------------------------------------------------------

-- True when the calling role (the one PostgREST switched to, or the login
-- role) acts as service_role; SECURITY DEFINER does not change the role GUC.
CREATE FUNCTION agentmarket_private.caller_is_service()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.pg_has_role(
        CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' THEN session_user
             ELSE pg_catalog.current_setting('role')::name END,
        'service_role', 'MEMBER')
$$;
COMMENT ON FUNCTION agentmarket_private.caller_is_service() IS
    'True when the caller''s role is (a member of) service_role or a superuser.';

-- Checks that the caller may change the instance and that the change is valid
-- from the status the instance will have once its pending jobs are done; then
-- enqueues the job.
CREATE FUNCTION agentmarket_private.request_instance_change(p_instance_id uuid, p_kind text, p_from text[], p_verb text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inst agentmarket.agent_instances;
    uid uuid := agentmarket.current_user_id();
    pending text;
    effective text;
    queued agentmarket_private.jobs;
    target text;
BEGIN
    IF p_instance_id IS NULL THEN
        RAISE EXCEPTION 'instance id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO inst FROM agentmarket.agent_instances i WHERE i.id OPERATOR(pg_catalog.=) p_instance_id FOR UPDATE;
    IF NOT FOUND OR NOT (agentmarket_private.caller_is_service()
                         OR (uid IS NOT NULL AND inst.user_id OPERATOR(pg_catalog.=) uid)) THEN
        RAISE EXCEPTION 'instance % not found', p_instance_id USING ERRCODE = 'P0002';
    END IF;
    -- A change still queued (not claimed: nothing happened at Fly yet) is
    -- coalesced with this one: it is replaced, or dropped when this one undoes
    -- it, so an instance never has more than one unclaimed change queued.
    -- Locking it keeps a claim from taking it meanwhile.  Jobs that change no
    -- status (fly.update_runtime) do not count.
    SELECT * INTO queued FROM agentmarket_private.jobs j
     WHERE j.serial_key OPERATOR(pg_catalog.=) p_instance_id::text AND j.status OPERATOR(pg_catalog.=) 'queued'
       AND j.kind IN ('fly.start_machine', 'fly.suspend_machine', 'fly.stop_machine', 'fly.destroy_instance')
       AND NOT EXISTS (SELECT FROM agentmarket_private.jobs later
                         JOIN agentmarket_private.job_kinds lk ON lk.kind OPERATOR(pg_catalog.=) later.kind
                        WHERE later.serial_key OPERATOR(pg_catalog.=) j.serial_key
                          AND later.id OPERATOR(pg_catalog.>) j.id AND later.status IN ('queued', 'running')
                          AND lk.instance_status IS NOT NULL)
     ORDER BY j.id DESC LIMIT 1 FOR UPDATE;
    SELECT k.instance_status INTO pending
      FROM agentmarket_private.jobs j JOIN agentmarket_private.job_kinds k ON k.kind OPERATOR(pg_catalog.=) j.kind
     WHERE j.serial_key OPERATOR(pg_catalog.=) p_instance_id::text AND j.status IN ('queued', 'running')
       AND k.instance_status IS NOT NULL
       AND j.id IS DISTINCT FROM queued.id
     ORDER BY j.id DESC LIMIT 1;
    effective := COALESCE(pending, inst.status);
    SELECT k.instance_status INTO target FROM agentmarket_private.job_kinds k WHERE k.kind OPERATOR(pg_catalog.=) p_kind;
    IF queued.kind OPERATOR(pg_catalog.=) 'fly.destroy_instance' THEN
        effective := 'destroyed';       -- a destroy is never undone
    ELSIF queued.id IS NOT NULL THEN
        IF queued.kind OPERATOR(pg_catalog.=) p_kind THEN
            RETURN queued.id;
        END IF;
        IF effective OPERATOR(pg_catalog.=) target THEN
            -- This change undoes the queued one: neither needs to happen.
            DELETE FROM agentmarket_private.jobs j WHERE j.id OPERATOR(pg_catalog.=) queued.id;
            RETURN NULL;
        END IF;
        IF effective OPERATOR(pg_catalog.=) ANY (p_from) THEN
            DELETE FROM agentmarket_private.jobs j WHERE j.id OPERATOR(pg_catalog.=) queued.id;
            RETURN agentmarket_private.enqueue_instance_job(p_instance_id, p_kind);
        END IF;
        effective := COALESCE((SELECT k.instance_status FROM agentmarket_private.job_kinds k
                                WHERE k.kind OPERATOR(pg_catalog.=) queued.kind), effective);
    END IF;
    IF NOT effective OPERATOR(pg_catalog.=) ANY (p_from) THEN
        RAISE EXCEPTION 'cannot % an instance that is %', p_verb, effective
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('Only an instance that is %s can be %s.',
                      pg_catalog.array_to_string(p_from, ' or '),
                      CASE p_verb WHEN 'suspend' THEN 'suspended' WHEN 'resume' THEN 'resumed' ELSE 'destroyed' END);
    END IF;
    RETURN agentmarket_private.enqueue_instance_job(p_instance_id, p_kind);
END
$$;
COMMENT ON FUNCTION agentmarket_private.request_instance_change(uuid, text, text[], text) IS
    'Shared body of suspend/resume/destroy_instance: access check (own instance or service_role), state check, then the change replaces a queued (unclaimed) change of the instance, cancels it (NULL) when it undoes it, or is enqueued.';

CREATE FUNCTION agentmarket.suspend_instance(instance_id uuid)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
    SELECT agentmarket_private.request_instance_change(instance_id, 'fly.suspend_machine', ARRAY['running'], 'suspend')
$$;
COMMENT ON FUNCTION agentmarket.suspend_instance(uuid) IS
    'Suspends the caller''s running instance (its machine keeps its memory, no compute billed); returns the job id. 22023 unless running, P0002 when unknown or not the caller''s.';

CREATE FUNCTION agentmarket.resume_instance(instance_id uuid)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
    SELECT agentmarket_private.request_instance_change(instance_id, 'fly.start_machine', ARRAY['suspended', 'stopped'], 'resume')
$$;
COMMENT ON FUNCTION agentmarket.resume_instance(uuid) IS
    'Starts the caller''s suspended or stopped instance again; returns the job id. 22023 from any other status, P0002 when unknown or not the caller''s.';

CREATE FUNCTION agentmarket.destroy_instance(instance_id uuid)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
    SELECT agentmarket_private.request_instance_change(instance_id, 'fly.destroy_instance',
        ARRAY['provisioning', 'running', 'suspended', 'stopped', 'error'], 'destroy')
$$;
COMMENT ON FUNCTION agentmarket.destroy_instance(uuid) IS
    'Destroys the caller''s instance (machine, volume and Fly app); returns the job id. 22023 when already destroyed, P0002 when unknown or not the caller''s.';

GRANT EXECUTE ON FUNCTION agentmarket.suspend_instance(uuid), agentmarket.resume_instance(uuid),
    agentmarket.destroy_instance(uuid) TO authenticated, service_role;
