-- upgrades.sql: an instance runs the version it was hired (or last upgraded)
-- with; a new current version changes nothing for it.  Its owner moves it to
-- the agent's current version explicitly, with upgrade_instance(): a
-- fly.update_machine job, performed like fly.update_runtime (runtime.sql:
-- app secrets, then the machine's config read and updated with
-- POST /v1/apps/{app}/machines/{id}) with the version's image and its
-- AGENTMARKET_AGENT_VERSION; then the instance records the version.  Releases
-- are immutable (hardening.sql), so the version named in the job is exactly
-- what runs.

-- fly.update_machine succeeded: the instance runs the job's version (an
-- update changes no status).
CREATE FUNCTION agentmarket_private.finish_update_machine(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    machine_id text := p_result OPERATOR(pg_catalog.->>) 'machine_id';
BEGIN
    IF machine_id IS NULL OR machine_id !~ '^[A-Za-z0-9_-]{1,255}$' THEN
        RAISE EXCEPTION 'update result of job % has no valid machine_id', (p_job).id USING ERRCODE = '22023';
    END IF;
    UPDATE agentmarket.agent_instances i
       SET agent_version_id = ((p_job).payload OPERATOR(pg_catalog.->>) 'agent_version_id')::uuid,
           error_message = NULL
     WHERE i.id OPERATOR(pg_catalog.=) agentmarket_private.job_instance_id(p_job)
       AND i.fly_machine_id OPERATOR(pg_catalog.=) machine_id
       AND i.status OPERATOR(pg_catalog.<>) 'destroyed';
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_update_machine(agentmarket_private.jobs, jsonb) IS
    'Handler of fly.update_machine: the instance runs payload.agent_version_id.';

INSERT INTO agentmarket_private.job_kinds
    (kind, provider, flow, endpoint, request_function, instance_status, serialize_on, handler, dead_handler, max_attempts, description) VALUES
  ('fly.update_machine', 'fly', 'update_config', NULL, 'agentmarket_private.update_machine_request(agentmarket_private.jobs)', NULL, 'instance_id',
   'agentmarket_private.finish_update_machine(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Update the instance''s machine to the image (and runtime environment) of payload.agent_version_id.');

-- What the sidecar gets for fly.update_machine: fly.update_runtime's request
-- (app secrets, environment) for the job's version, plus its image.
CREATE FUNCTION agentmarket_private.update_machine_request(p_job agentmarket_private.jobs)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb := agentmarket_private.runtime_request(p_job);
    target agentmarket.agent_versions;
    env jsonb;
BEGIN
    IF req OPERATOR(pg_catalog.->>) 'refuse' IS NOT NULL THEN
        RETURN req;
    END IF;
    SELECT v.* INTO target
      FROM agentmarket.agent_versions v
      JOIN agentmarket.agent_instances i ON i.agent_id OPERATOR(pg_catalog.=) v.agent_id
     WHERE i.id OPERATOR(pg_catalog.=) agentmarket_private.job_instance_id(p_job)
       AND v.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'agent_version_id')::uuid;
    IF NOT FOUND OR target.status OPERATOR(pg_catalog.<>) 'published' OR target.docker_image IS NULL THEN
        RETURN req OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
            'refuse', 'the version to run is not a published version of the agent');
    END IF;
    env := (req OPERATOR(pg_catalog.->) 'env')
           OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('AGENTMARKET_AGENT_VERSION', target.version);
    RETURN req OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
        'env', env, 'image', target.docker_image,
        -- The digest covers the image too, so a machine is updated once.
        'digest', agentmarket_private.runtime_digest((req OPERATOR(pg_catalog.->>) 'instance_id')::uuid,
                      env OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('image', target.docker_image),
                      req OPERATOR(pg_catalog.->) 'secrets'));
END
$$;
COMMENT ON FUNCTION agentmarket_private.update_machine_request(agentmarket_private.jobs) IS
    'The request of a fly.update_machine job: fly.update_runtime''s (secrets, environment) for payload.agent_version_id, with its image.';

CREATE FUNCTION agentmarket.upgrade_instance(instance_id uuid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid uuid := agentmarket.current_user_id();
    inst agentmarket.agent_instances;
    target agentmarket.agent_versions;
    pending agentmarket_private.jobs;
BEGIN
    IF upgrade_instance.instance_id IS NULL THEN
        RAISE EXCEPTION 'instance id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO inst FROM agentmarket.agent_instances i
     WHERE i.id OPERATOR(pg_catalog.=) upgrade_instance.instance_id FOR UPDATE;
    IF NOT FOUND OR NOT (agentmarket_private.caller_is_service()
                         OR (uid IS NOT NULL AND inst.user_id OPERATOR(pg_catalog.=) uid)) THEN
        RAISE EXCEPTION 'instance % not found', upgrade_instance.instance_id USING ERRCODE = 'P0002';
    END IF;
    IF inst.status OPERATOR(pg_catalog.=) 'destroyed' OR inst.fly_machine_id OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'instance % has no machine to upgrade', inst.id USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('It is %s.', inst.status);
    END IF;
    SELECT * INTO target FROM agentmarket.agent_versions v
     WHERE v.agent_id OPERATOR(pg_catalog.=) inst.agent_id AND v.is_current;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the agent has no current version' USING ERRCODE = '22023';
    END IF;
    -- An upgrade already queued to the same version is that request.
    SELECT * INTO pending FROM agentmarket_private.jobs j
     WHERE j.serial_key OPERATOR(pg_catalog.=) inst.id::text AND j.kind OPERATOR(pg_catalog.=) 'fly.update_machine'
       AND j.status IN ('queued', 'running')
     ORDER BY j.id DESC LIMIT 1;
    IF FOUND AND pending.payload OPERATOR(pg_catalog.->>) 'agent_version_id' OPERATOR(pg_catalog.=) target.id::text THEN
        RETURN pending.id;
    END IF;
    IF inst.agent_version_id IS NOT DISTINCT FROM target.id AND pending.id IS NULL THEN
        RAISE EXCEPTION 'instance % already runs version %', inst.id, target.version USING ERRCODE = '22023';
    END IF;
    RETURN agentmarket_private.enqueue_job('fly.update_machine',
        pg_catalog.jsonb_build_object('instance_id', inst.id, 'agent_version_id', target.id));
END
$$;
COMMENT ON FUNCTION agentmarket.upgrade_instance(uuid) IS
    'Moves the caller''s instance to its agent''s current version: enqueues a fly.update_machine job (the machine is updated to that version''s image) and returns its id; the instance records the version once the machine runs it. 22023 when it already runs it, has no machine or the agent has no current version; P0002 when unknown or not the caller''s.';
GRANT EXECUTE ON FUNCTION agentmarket.upgrade_instance(uuid) TO authenticated, service_role;
