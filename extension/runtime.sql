-- runtime.sql: what an instance's Fly machine is told about itself.
--
-- Environment (in the machine config): AGENTMARKET_INSTANCE_ID,
-- AGENTMARKET_AGENT_VERSION, AGENTMARKET_MODEL, AGENTMARKET_RELAYS and the
-- non-secret settings of its active relays (AGENTMARKET_RELAY_<RELAY>_<KEY>).
-- Credentials (the tokens of its active relays) as Fly app secrets, never in
-- the machine config.  The provisioning job creates the machine with both;
-- afterwards every change (model preference, relays connected or
-- disconnected, tokens) enqueues fly.update_runtime, which sets the app's
-- secrets (unsetting ours that are gone) and updates the machine's config
-- when its digest differs.  Both steps are safe to repeat: setting the same
-- secrets again changes nothing, and a machine whose config already carries
-- the digest is not updated again.  Nothing of it is stored: the request is
-- computed when the sidecar claims the job, so it is never stale.

INSERT INTO agentmarket_private.job_kinds
    (kind, provider, flow, endpoint, request_function, instance_status, serialize_on, handler, dead_handler, max_attempts, description) VALUES
  ('fly.update_runtime', 'fly', 'update_config', NULL, 'agentmarket_private.runtime_request(agentmarket_private.jobs)', NULL, 'instance_id',
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Set the instance''s Fly app secrets and its machine''s environment to its runtime configuration.');

-- model_preference: one of the agent's supported_models (or NULL: its first).
CREATE FUNCTION agentmarket_private.check_model_preference() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ag agentmarket.agents;
BEGIN
    SELECT * INTO ag FROM agentmarket.agents a WHERE a.id OPERATOR(pg_catalog.=) NEW.agent_id;
    IF NOT NEW.model_preference OPERATOR(pg_catalog.=) ANY (COALESCE(ag.supported_models, '{}')) THEN
        RAISE EXCEPTION 'agent "%" does not support model "%"', ag.slug, pg_catalog.left(NEW.model_preference, 100)
            USING ERRCODE = '22023',
                  DETAIL = COALESCE('Its models are: ' || NULLIF(pg_catalog.array_to_string(ag.supported_models, ', '), '') || '.',
                                    'It lists no models, so it runs its default.');
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION agentmarket_private.check_model_preference() IS
    'Trigger: an instance''s model_preference must be one of its agent''s supported_models (22023).';
CREATE TRIGGER agent_instances_check_model BEFORE INSERT OR UPDATE OF model_preference ON agentmarket.agent_instances
    FOR EACH ROW WHEN (NEW.model_preference IS NOT NULL)
    EXECUTE FUNCTION agentmarket_private.check_model_preference();

------------------------------------------------------------------------------
-- The configuration
------------------------------------------------------------------------------

-- The environment of an instance's machine.
CREATE FUNCTION agentmarket_private.runtime_env(p_instance_id uuid)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
               'AGENTMARKET_INSTANCE_ID', i.id::text,
               'AGENTMARKET_AGENT_VERSION', COALESCE(own.version, cur.version, ''),
               'AGENTMARKET_MODEL', COALESCE(i.model_preference, a.supported_models[1], ''),
               'AGENTMARKET_RELAYS', COALESCE((SELECT pg_catalog.string_agg(DISTINCT c.relay, ',' ORDER BY c.relay)
                                                 FROM agentmarket.relay_connections c
                                                WHERE c.instance_id OPERATOR(pg_catalog.=) i.id
                                                  AND c.status OPERATOR(pg_catalog.=) 'active'), ''))
           OPERATOR(pg_catalog.||)
           COALESCE((SELECT pg_catalog.jsonb_object_agg(
                               'AGENTMARKET_RELAY_' OPERATOR(pg_catalog.||) pg_catalog.upper(c.relay)
                               OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) pg_catalog.upper(e.key), e.value
                               ORDER BY c.verified_at, c.id)
                       FROM agentmarket.relay_connections c, pg_catalog.jsonb_each_text(COALESCE(c.config, '{}')) e
                      WHERE c.instance_id OPERATOR(pg_catalog.=) i.id AND c.status OPERATOR(pg_catalog.=) 'active'),
                    '{}'::jsonb)
      FROM agentmarket.agent_instances i
      JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) i.agent_id
      LEFT JOIN agentmarket.agent_versions own ON own.id OPERATOR(pg_catalog.=) i.agent_version_id
      LEFT JOIN agentmarket.agent_versions cur ON cur.agent_id OPERATOR(pg_catalog.=) a.id AND cur.is_current
     WHERE i.id OPERATOR(pg_catalog.=) p_instance_id
$$;
COMMENT ON FUNCTION agentmarket_private.runtime_env(uuid) IS
    'Environment of an instance''s machine: instance id, agent version, model, active relays and their non-secret settings.';

-- The Fly app secrets of an instance: its active relays' tokens, decrypted.
CREATE FUNCTION agentmarket_private.runtime_secrets(p_instance_id uuid)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(pg_catalog.jsonb_object_agg(
               'AGENTMARKET_RELAY_' OPERATOR(pg_catalog.||) pg_catalog.upper(c.relay)
               OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) pg_catalog.upper(s.key),
               agentmarket_private.get_secret(s.secret_id) ORDER BY c.verified_at, c.id), '{}'::jsonb)
      FROM agentmarket.relay_connections c
      JOIN agentmarket_private.relay_connection_secrets s ON s.connection_id OPERATOR(pg_catalog.=) c.id
     WHERE c.instance_id OPERATOR(pg_catalog.=) p_instance_id AND c.status OPERATOR(pg_catalog.=) 'active'
$$;
COMMENT ON FUNCTION agentmarket_private.runtime_secrets(uuid) IS
    'Fly app secrets of an instance: AGENTMARKET_RELAY_<RELAY>_<KEY> for the tokens of its active relays (decrypted).';

-- Tells whether a machine has this configuration: a SHA-256 over the
-- instance id, the environment and the secrets (never the secrets themselves).
CREATE FUNCTION agentmarket_private.runtime_digest(p_instance_id uuid, p_env jsonb, p_secrets jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
        p_instance_id::text OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(p_env, p_secrets)::text, 'UTF8')), 'hex')
$$;
COMMENT ON FUNCTION agentmarket_private.runtime_digest(uuid, jsonb, jsonb) IS
    'SHA-256 (hex) of an instance''s runtime configuration, kept in its machine''s metadata to tell whether an update is due.';

-- What fly.update_runtime hands the sidecar (its kind's request function).
CREATE FUNCTION agentmarket_private.runtime_request(p_job agentmarket_private.jobs)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inst agentmarket.agent_instances;
    env jsonb;
    sec jsonb;
BEGIN
    SELECT * INTO inst FROM agentmarket.agent_instances i
     WHERE i.id OPERATOR(pg_catalog.=) agentmarket_private.job_instance_id(p_job);
    IF NOT FOUND OR inst.status OPERATOR(pg_catalog.=) 'destroyed' OR NULLIF(inst.fly_machine_id, '') IS NULL THEN
        RETURN pg_catalog.jsonb_build_object(
            'instance_id', agentmarket_private.job_instance_id(p_job),
            'app_name', COALESCE(inst.fly_app_name, agentmarket_private.fly_app_name(agentmarket_private.job_instance_id(p_job))),
            'machine_id', NULL,
            'refuse', CASE WHEN inst.id IS NULL THEN 'instance no longer exists'
                           WHEN inst.status OPERATOR(pg_catalog.=) 'destroyed' THEN 'instance is destroyed'
                           ELSE 'instance has no machine (it was never provisioned)' END);
    END IF;
    env := agentmarket_private.runtime_env(inst.id);
    sec := agentmarket_private.runtime_secrets(inst.id);
    RETURN pg_catalog.jsonb_build_object(
        'instance_id', inst.id, 'app_name', inst.fly_app_name, 'region', inst.region,
        'machine_id', inst.fly_machine_id, 'volume_id', inst.fly_volume_id,
        'env', env, 'env_prefix', 'AGENTMARKET_',
        'secrets', sec, 'secret_prefix', 'AGENTMARKET_',
        'digest', agentmarket_private.runtime_digest(inst.id, env, sec),
        'refuse', NULL);
END
$$;
COMMENT ON FUNCTION agentmarket_private.runtime_request(agentmarket_private.jobs) IS
    'The request of a fly.update_runtime job: app, machine, environment, secrets (names prefixed AGENTMARKET_) and their digest.';

-- Enqueue an update of the instance's runtime configuration (in the caller's
-- transaction); nothing for instances that are destroyed or failed.  A
-- queued update already waiting is the one returned.
CREATE FUNCTION agentmarket_private.request_runtime_update(p_instance_id uuid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st text;
BEGIN
    SELECT i.status INTO st FROM agentmarket.agent_instances i WHERE i.id OPERATOR(pg_catalog.=) p_instance_id;
    IF st IS NULL OR st IN ('destroyed', 'error') THEN
        RETURN NULL;
    END IF;
    RETURN agentmarket_private.enqueue_instance_job(p_instance_id, 'fly.update_runtime');
END
$$;
COMMENT ON FUNCTION agentmarket_private.request_runtime_update(uuid) IS
    'Enqueues fly.update_runtime for an instance (not destroyed or failed); returns the job id, NULL when none is needed.';

-- A changed model preference reaches the machine.
CREATE FUNCTION agentmarket_private.model_preference_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentmarket_private.request_runtime_update(NEW.id);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.model_preference_changed() IS
    'Trigger: a changed model_preference enqueues a runtime update of the instance.';
CREATE TRIGGER agent_instances_model_changed AFTER UPDATE OF model_preference ON agentmarket.agent_instances
    FOR EACH ROW WHEN (OLD.model_preference IS DISTINCT FROM NEW.model_preference)
    EXECUTE FUNCTION agentmarket_private.model_preference_changed();

CREATE FUNCTION agentmarket.set_model_preference(instance_id uuid, model text)
RETURNS agentmarket.agent_instances
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    inst agentmarket.agent_instances := agentmarket_private.instance_for_caller(set_model_preference.instance_id);
BEGIN
    IF inst.status OPERATOR(pg_catalog.=) 'destroyed' THEN
        RAISE EXCEPTION 'instance % is destroyed', inst.id USING ERRCODE = '22023';
    END IF;
    -- The trigger checks the model against the agent's and enqueues the update.
    UPDATE agentmarket.agent_instances i SET model_preference = set_model_preference.model
     WHERE i.id OPERATOR(pg_catalog.=) inst.id RETURNING * INTO inst;
    RETURN inst;
END
$$;
COMMENT ON FUNCTION agentmarket.set_model_preference(uuid, text) IS
    'Owner (or service_role): the model the instance runs, one of its agent''s supported_models (NULL: the agent''s default); the machine is updated by a fly.update_runtime job. 22023 for a model the agent does not support, P0002 for an instance not the caller''s.';

-- Operators: the runtime configuration an instance should have, secrets masked.
CREATE FUNCTION agentmarket.instance_runtime(instance_id uuid)
RETURNS TABLE (env jsonb, secret_names text[], digest text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    inst agentmarket.agent_instances := agentmarket_private.instance_for_caller(instance_runtime.instance_id, false);
    sec jsonb := agentmarket_private.runtime_secrets(inst.id);
BEGIN
    env := agentmarket_private.runtime_env(inst.id);
    secret_names := ARRAY(SELECT k FROM pg_catalog.jsonb_object_keys(sec) k ORDER BY k);
    digest := agentmarket_private.runtime_digest(inst.id, env, sec);
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION agentmarket.instance_runtime(uuid) IS
    'Owner or service_role: the environment and the names of the app secrets the instance''s machine gets, and their digest.';

GRANT EXECUTE ON FUNCTION agentmarket.set_model_preference(uuid, text), agentmarket.instance_runtime(uuid)
    TO authenticated, service_role;
