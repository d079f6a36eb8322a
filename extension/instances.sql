-- instances.sql: the Fly instance lifecycle, one room for it: the settings of
-- an instance's machine, its app name and regions, the job kinds that
-- provision, start, suspend, stop and destroy it (with their handlers), the
-- request each job hands the sidecar (sidecar/fly.c performs it), and what
-- the owner may ask of it (suspend, resume, destroy).  The jobs travel
-- through the outbox (queue.sql, queue_protocol.sql).

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('fly_volume_size_gb', 'integer', '1', 0, 500, NULL,
   'Size of the Fly volume created for every new instance (GB); 0 means instances get no volume.'),
  ('fly_volume_path', 'text', '/data', NULL, NULL, '^/[A-Za-z0-9._/-]*$',
   'Where an instance''s Fly volume is mounted in its machine.');

-- The Fly app of an instance has a name derived from the instance id alone, so
-- a replayed create finds the app it made before (Fly answers 422 name_taken).
CREATE FUNCTION agentmarket_private.fly_app_name(p_instance_id uuid)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'am-' || replace(p_instance_id::text, '-', '')
$$;
COMMENT ON FUNCTION agentmarket_private.fly_app_name(uuid) IS
    'Deterministic Fly app name of an instance: am- followed by the instance id''s 32 hex digits.';
GRANT EXECUTE ON FUNCTION agentmarket_private.fly_app_name(uuid) TO service_role;

-- Instance jobs carry only the instance id: what to create (image, size,
-- region) is read when the job is claimed, so it is never stale.  Asking for
-- the change that is already the instance's last pending job returns that job.
CREATE FUNCTION agentmarket_private.enqueue_instance_job(p_instance_id uuid, p_kind text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last_pending agentmarket_private.jobs;
BEGIN
    IF p_instance_id IS NULL THEN
        RAISE EXCEPTION 'instance id must not be null' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT FROM agentmarket_private.job_kinds k
                    WHERE k.kind OPERATOR(pg_catalog.=) p_kind AND k.provider OPERATOR(pg_catalog.=) 'fly') THEN
        RAISE EXCEPTION 'unknown instance job kind "%"', p_kind USING ERRCODE = '22023';
    END IF;
    SELECT * INTO last_pending FROM agentmarket_private.jobs j
     WHERE j.serial_key OPERATOR(pg_catalog.=) p_instance_id::text
       AND j.status IN ('queued', 'running')
     ORDER BY j.id DESC LIMIT 1;
    IF FOUND AND last_pending.kind OPERATOR(pg_catalog.=) p_kind AND last_pending.status OPERATOR(pg_catalog.=) 'queued' THEN
        RETURN last_pending.id;
    END IF;
    RETURN agentmarket_private.enqueue_job(p_kind, pg_catalog.jsonb_build_object('instance_id', p_instance_id));
END
$$;
COMMENT ON FUNCTION agentmarket_private.enqueue_instance_job(uuid, text) IS
    'Enqueues a Fly job (provision, start, suspend, stop, destroy) for an instance in the caller''s transaction; a duplicate of its last queued job returns that job.';
GRANT EXECUTE ON FUNCTION agentmarket_private.enqueue_instance_job(uuid, text) TO service_role;

-- Fly.io regions an instance may be placed in.
CREATE FUNCTION agentmarket_private.fly_regions()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['ams', 'arn', 'atl', 'bog', 'bom', 'bos', 'cdg', 'den', 'dfw', 'ewr', 'eze',
                 'fra', 'gdl', 'gig', 'gru', 'hkg', 'iad', 'jnb', 'lax', 'lhr', 'mad', 'mia',
                 'nrt', 'ord', 'otp', 'phx', 'qro', 'scl', 'sea', 'sin', 'sjc', 'syd', 'waw',
                 'yul', 'yyz']::text[]
$$;
COMMENT ON FUNCTION agentmarket_private.fly_regions() IS
    'The Fly.io region codes hire_agent accepts.';

------------------------------------------------------------------------------
-- Handlers: what a success (or a final failure) means for the instance
------------------------------------------------------------------------------

-- The instance id of an instance job, checked.
CREATE FUNCTION agentmarket_private.job_instance_id(p_job agentmarket_private.jobs)
RETURNS uuid
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (p_job).payload OPERATOR(pg_catalog.->>) 'instance_id' IS NULL THEN
        RAISE EXCEPTION 'job % has no instance_id', (p_job).id USING ERRCODE = '22023';
    END IF;
    RETURN ((p_job).payload OPERATOR(pg_catalog.->>) 'instance_id')::uuid;
END
$$;
COMMENT ON FUNCTION agentmarket_private.job_instance_id(agentmarket_private.jobs) IS
    'The instance_id of an instance job''s payload; 22023 when missing.';

-- fly.provision_instance succeeded: the machine exists and runs.
CREATE FUNCTION agentmarket_private.finish_provision_instance(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    machine_id text := p_result OPERATOR(pg_catalog.->>) 'machine_id';
BEGIN
    IF machine_id IS NULL OR machine_id !~ '^[A-Za-z0-9]{1,64}$' THEN
        RAISE EXCEPTION 'provision result of job % has no valid machine_id', (p_job).id
            USING ERRCODE = '22023', DETAIL = 'The result must hold the id of the created Fly machine.';
    END IF;
    UPDATE agentmarket.agent_instances i
       SET status = 'running',
           fly_machine_id = machine_id,
           fly_volume_id = COALESCE(p_result OPERATOR(pg_catalog.->>) 'volume_id', i.fly_volume_id),
           error_message = NULL
     WHERE i.id OPERATOR(pg_catalog.=) agentmarket_private.job_instance_id(p_job)
       AND i.status OPERATOR(pg_catalog.<>) 'destroyed';
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_provision_instance(agentmarket_private.jobs, jsonb) IS
    'Handler of fly.provision_instance: the instance becomes running with its machine id (and volume id).';

-- start/suspend/stop/destroy succeeded: the instance has the kind's status.
CREATE FUNCTION agentmarket_private.finish_instance_transition(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target text;
BEGIN
    SELECT k.instance_status INTO STRICT target
      FROM agentmarket_private.job_kinds k WHERE k.kind OPERATOR(pg_catalog.=) (p_job).kind;
    UPDATE agentmarket.agent_instances i
       SET status = target, error_message = NULL
     WHERE i.id OPERATOR(pg_catalog.=) agentmarket_private.job_instance_id(p_job)
       AND i.status OPERATOR(pg_catalog.<>) 'destroyed';
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_instance_transition(agentmarket_private.jobs, jsonb) IS
    'Handler of fly.start_machine, fly.suspend_machine, fly.stop_machine, fly.destroy_instance: the instance takes the kind''s status.';

-- An instance job is dead: the owner sees why; a failed provision is an error.
CREATE FUNCTION agentmarket_private.instance_job_dead(p_job agentmarket_private.jobs)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE agentmarket.agent_instances i
       SET status = CASE WHEN (p_job).kind OPERATOR(pg_catalog.=) 'fly.provision_instance' THEN 'error' ELSE i.status END,
           error_message = pg_catalog.left((p_job).kind || ' failed: ' || COALESCE((p_job).last_error, 'unknown error'), 1000)
     WHERE i.id OPERATOR(pg_catalog.=) agentmarket_private.job_instance_id(p_job)
       AND i.status OPERATOR(pg_catalog.<>) 'destroyed';
END
$$;
COMMENT ON FUNCTION agentmarket_private.instance_job_dead(agentmarket_private.jobs) IS
    'Dead handler of instance jobs: error_message gets the last error; a dead provision makes the instance error.';


-- The lifecycle kinds.  start, suspend and stop are one call each and a wait
-- (a kind like them is one more row); provision and destroy are flows of
-- several steps that sidecar/fly.c performs, each step safe to repeat.
INSERT INTO agentmarket_private.job_kinds
    (kind, provider, flow, method, endpoint, wait_state, request_function,
     instance_status, serialize_on, handler, dead_handler, max_attempts, description) VALUES
  ('fly.provision_instance', 'fly', 'provision', 'POST', NULL, 'started', 'agentmarket_private.instance_request(agentmarket_private.jobs)',
   'running', 'instance_id', 'agentmarket_private.finish_provision_instance(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Create the instance''s Fly app, volume and machine, and wait until it has started.'),
  ('fly.start_machine', 'fly', 'call', 'POST', '/v1/apps/{app_name}/machines/{machine_id}/start', 'started', 'agentmarket_private.instance_request(agentmarket_private.jobs)',
   'running', 'instance_id', 'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Start (resume) the instance''s machine and wait until it has started.'),
  ('fly.suspend_machine', 'fly', 'call', 'POST', '/v1/apps/{app_name}/machines/{machine_id}/suspend', 'suspended', 'agentmarket_private.instance_request(agentmarket_private.jobs)',
   'suspended', 'instance_id', 'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Suspend the instance''s machine and wait until it is suspended.'),
  ('fly.stop_machine', 'fly', 'call', 'POST', '/v1/apps/{app_name}/machines/{machine_id}/stop', 'stopped', 'agentmarket_private.instance_request(agentmarket_private.jobs)',
   'stopped', 'instance_id', 'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Stop the instance''s machine and wait until it is stopped.'),
  ('fly.destroy_instance', 'fly', 'destroy', 'DELETE', NULL, 'destroyed', 'agentmarket_private.instance_request(agentmarket_private.jobs)',
   'destroyed', 'instance_id', 'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Destroy the instance''s machine (force), its volume and its app.');

-- What the sidecar needs to perform an instance job (the machine bodies of a
-- provision; app, machine and volume ids), read when the job is claimed so it
-- is never stale.  "refuse" set means: do not call, fail the job for good.
CREATE FUNCTION agentmarket_private.instance_request(p_job agentmarket_private.jobs)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    flow text;
    inst_id uuid;
    i record;
    volume_gb integer;
    guest jsonb;
    machine_config jsonb;
    refuse text;
BEGIN
    SELECT k.flow INTO STRICT flow FROM agentmarket_private.job_kinds k WHERE k.kind OPERATOR(pg_catalog.=) (p_job).kind;
    inst_id := agentmarket_private.job_instance_id(p_job);
    SELECT ai.region, ai.status, ai.fly_app_name, NULLIF(ai.fly_machine_id, '') AS machine_id,
           ai.fly_volume_id, a.fly_machine_size, a.fly_machine_memory_mb,
           COALESCE(own.docker_image, cur.docker_image, a.docker_image) AS image
      INTO i
      FROM agentmarket.agent_instances ai
      JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) ai.agent_id
      LEFT JOIN agentmarket.agent_versions own ON own.id OPERATOR(pg_catalog.=) ai.agent_version_id
      LEFT JOIN agentmarket.agent_versions cur ON cur.agent_id OPERATOR(pg_catalog.=) a.id AND cur.is_current
     WHERE ai.id OPERATOR(pg_catalog.=) inst_id;
    IF NOT FOUND THEN
        -- The row is gone (its user was deleted): only a destroy still makes sense.
        RETURN pg_catalog.jsonb_build_object(
            'instance_id', inst_id, 'app_name', agentmarket_private.fly_app_name(inst_id),
            'machine_id', NULL, 'volume_id', NULL,
            'refuse', CASE WHEN flow OPERATOR(pg_catalog.=) 'destroy' THEN NULL
                           ELSE 'instance ' || inst_id || ' no longer exists' END);
    END IF;

    IF flow OPERATOR(pg_catalog.=) 'provision' THEN
        IF i.status OPERATOR(pg_catalog.=) 'destroyed' THEN
            refuse := 'instance was destroyed before it was provisioned';
        ELSIF i.image IS NULL THEN
            refuse := 'agent has no docker image to run';
        END IF;
        volume_gb := agentmarket_private.setting('fly_volume_size_gb')::integer;
        guest := pg_catalog.jsonb_build_object(
            'cpu_kind', CASE WHEN i.fly_machine_size LIKE 'performance-%' THEN 'performance' ELSE 'shared' END,
            'cpus', COALESCE(pg_catalog.substring(i.fly_machine_size, '([0-9]+)x$')::integer, 1),
            'memory_mb', i.fly_machine_memory_mb);
        machine_config := pg_catalog.jsonb_build_object(
            'image', i.image, 'guest', guest,
            'metadata', pg_catalog.jsonb_build_object('agentmarket_instance', inst_id::text,
                'agentmarket_runtime', agentmarket_private.runtime_digest(inst_id,
                    agentmarket_private.runtime_env(inst_id), agentmarket_private.runtime_secrets(inst_id))),
            'env', agentmarket_private.runtime_env(inst_id),
            'restart', pg_catalog.jsonb_build_object('policy', 'on-failure'));
        IF volume_gb > 0 THEN
            -- The sidecar puts the created volume's id into mounts[0].volume.
            machine_config := machine_config OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('mounts',
                pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                    'volume', i.fly_volume_id, 'path', agentmarket_private.setting('fly_volume_path'))));
        END IF;
        RETURN pg_catalog.jsonb_build_object(
            'instance_id', inst_id, 'app_name', i.fly_app_name, 'region', i.region,
            'machine_id', i.machine_id, 'volume_id', i.fly_volume_id,
            'volume', CASE WHEN volume_gb > 0 THEN pg_catalog.jsonb_build_object(
                          'name', 'data', 'region', i.region, 'size_gb', volume_gb, 'encrypted', true) END,
            'machine', pg_catalog.jsonb_build_object('region', i.region, 'config', machine_config),
            -- Set on the app before the machine is created (runtime.sql).
            'secrets', agentmarket_private.runtime_secrets(inst_id),
            'refuse', refuse);
    END IF;

    IF flow OPERATOR(pg_catalog.<>) 'destroy' THEN
        IF i.status OPERATOR(pg_catalog.=) 'destroyed' THEN
            refuse := 'instance is destroyed';
        ELSIF i.machine_id IS NULL THEN
            refuse := 'instance has no machine (it was never provisioned)';
        END IF;
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'instance_id', inst_id, 'app_name', i.fly_app_name, 'region', i.region,
        'machine_id', i.machine_id, 'volume_id', i.fly_volume_id, 'refuse', refuse);
END
$$;
COMMENT ON FUNCTION agentmarket_private.instance_request(agentmarket_private.jobs) IS
    'Request function of instance kinds: app name, region, machine and volume ids, and for the provision flow the volume and machine bodies and the app secrets; refuse when the job must not run (instance gone or destroyed, no machine yet; destroy runs regardless).';

------------------------------------------------------------------------------
-- Owner-facing instance controls
------------------------------------------------------------------------------

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
