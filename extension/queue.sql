-- queue.sql: the outbox.  A job is enqueued in the transaction that decides
-- it (commit makes both visible, rollback neither); NOTIFY on commit wakes the
-- sidecars, which claim, call Fly.io or Stripe outside any transaction, and
-- report back.  What an answer means is decided here, by one handler per job
-- kind (agentmarket_private.job_kinds).

-- The sidecar's role reaches the queue through SECURITY DEFINER functions only.
GRANT USAGE ON SCHEMA agentmarket_private TO service_role;

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('job_backoff_base_seconds', 'integer', '2', 1, 3600, NULL,
   'First retry delay of a failed job (seconds); doubled at every further attempt, with jitter.'),
  ('job_backoff_max_seconds', 'integer', '900', 1, 86400, NULL,
   'Longest retry delay of a failed job (seconds), before jitter.'),
  ('job_retention_days', 'integer', '7', 0, 3650, NULL,
   'Succeeded jobs older than this many days are removed by agentmarket_private.prune_jobs().'),
  ('dead_job_retention_days', 'integer', '30', 0, 3650, NULL,
   'Dead jobs older than this many days are removed by agentmarket_private.prune_jobs().'),
  ('fly_volume_size_gb', 'integer', '1', 0, 500, NULL,
   'Size of the Fly volume created for every new instance (GB); 0 means instances get no volume.'),
  ('fly_volume_path', 'text', '/data', NULL, NULL, '^/[A-Za-z0-9._/-]*$',
   'Where an instance''s Fly volume is mounted in its machine.');

-- The registry of job kinds.  Each capability registers its own kinds in its
-- own part (a row and the handler functions it names); nothing in the sidecar
-- or the queue functions changes.
CREATE TABLE agentmarket_private.job_kinds (
  kind TEXT PRIMARY KEY CONSTRAINT job_kinds_kind_format CHECK (kind ~ '^[a-z]+\.[a-z_]+$'),
  provider TEXT NOT NULL CONSTRAINT job_kinds_provider_check CHECK (provider IN ('fly', 'stripe')),
  -- Stripe: the endpoint the job POSTs to.
  endpoint TEXT CONSTRAINT job_kinds_endpoint_format CHECK (endpoint ~ '^/v1/[a-z_/]+$'),
  -- Fly: the instance status the job leads to.
  instance_status TEXT
    CONSTRAINT job_kinds_instance_status_check CHECK (instance_status IN ('running', 'suspended', 'stopped', 'destroyed')),
  -- Jobs with the same value of this payload field run one after another, in
  -- enqueue order (instance jobs: one instance's jobs never overlap).
  serialize_on TEXT,
  -- handler(job agentmarket_private.jobs, result jsonb): applies a success.
  handler REGPROCEDURE NOT NULL,
  -- dead_handler(job agentmarket_private.jobs): applies a final failure.
  dead_handler REGPROCEDURE,
  max_attempts INTEGER NOT NULL DEFAULT 10 CONSTRAINT job_kinds_max_attempts_check CHECK (max_attempts BETWEEN 1 AND 100),
  description TEXT NOT NULL,
  CONSTRAINT job_kinds_stripe_endpoint CHECK ((provider = 'stripe') = (endpoint IS NOT NULL))
);
COMMENT ON TABLE agentmarket_private.job_kinds IS
    'Every job kind: provider, Stripe endpoint or Fly target status, and the handlers that apply its outcome.';
REVOKE ALL ON TABLE agentmarket_private.job_kinds FROM PUBLIC;
-- Kinds are part of the extension's code (each names its handler functions),
-- so a restore gets them from CREATE EXTENSION: registered, with a filter that
-- dumps no row (dumped rows would collide with the script's on restore).
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.job_kinds', 'WHERE false');

CREATE TABLE agentmarket_private.jobs (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind TEXT NOT NULL CONSTRAINT jobs_kind_format CHECK (kind ~ '^[a-z]+\.[a-z_]+$')
    CONSTRAINT jobs_kind_fkey REFERENCES agentmarket_private.job_kinds(kind),
  payload JSONB NOT NULL DEFAULT '{}' CONSTRAINT jobs_payload_object CHECK (jsonb_typeof(payload) = 'object'),
  status TEXT NOT NULL DEFAULT 'queued'
    CONSTRAINT jobs_status_check CHECK (status IN ('queued', 'running', 'succeeded', 'dead')),
  attempts INTEGER NOT NULL DEFAULT 0 CONSTRAINT jobs_attempts_check CHECK (attempts >= 0),
  max_attempts INTEGER NOT NULL DEFAULT 10 CONSTRAINT jobs_max_attempts_check CHECK (max_attempts > 0),
  run_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  lease_owner TEXT,
  lease_expires_at TIMESTAMPTZ,
  last_error TEXT,
  result JSONB,
  idempotency_key TEXT NOT NULL
    CONSTRAINT jobs_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255),
  serial_key TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at TIMESTAMPTZ,
  CONSTRAINT jobs_idempotency_key_unique UNIQUE (idempotency_key),
  CONSTRAINT jobs_lease_consistent CHECK ((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
  CONSTRAINT jobs_finished_consistent CHECK ((status IN ('succeeded', 'dead')) = (finished_at IS NOT NULL))
);
COMMENT ON TABLE agentmarket_private.jobs IS
    'Outbox of calls to Fly.io and Stripe, claimed by agentmarket-sidecar.';
COMMENT ON COLUMN agentmarket_private.jobs.idempotency_key IS
    'Names the effect: enqueuing the same key again returns this job; Stripe calls carry it as Idempotency-Key.';
COMMENT ON COLUMN agentmarket_private.jobs.serial_key IS
    'Jobs sharing it run one at a time in id order (the instance id for Fly jobs).';
-- "Next due": queued jobs by run_at, running jobs by lease expiry.
CREATE INDEX jobs_due_queued ON agentmarket_private.jobs (run_at) WHERE status = 'queued';
CREATE INDEX jobs_due_lease ON agentmarket_private.jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_kind_status ON agentmarket_private.jobs (kind, status);
CREATE INDEX jobs_serial_pending ON agentmarket_private.jobs (serial_key, id)
    WHERE status IN ('queued', 'running');
CREATE INDEX jobs_finished ON agentmarket_private.jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TRIGGER jobs_touch_updated_at BEFORE UPDATE ON agentmarket_private.jobs
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.touch_updated_at();
REVOKE ALL ON TABLE agentmarket_private.jobs FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.jobs', '');
-- The id sequence too, or a restored database hands out ids that exist.
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.jobs_id_seq', '');

------------------------------------------------------------------------------
-- Handlers: what a success (or a final failure) means in the database
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

-- Kinds whose answer has no effect beyond the job: the result stays on it.
CREATE FUNCTION agentmarket_private.finish_store_result(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- finish_job stores the result on the job; nothing else to apply.
    RETURN;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_store_result(agentmarket_private.jobs, jsonb) IS
    'Handler of kinds whose result is only recorded on the job (finish_job stores it).';


INSERT INTO agentmarket_private.job_kinds
    (kind, provider, endpoint, instance_status, serialize_on, handler, dead_handler, max_attempts, description) VALUES
  ('fly.provision_instance', 'fly', NULL, 'running', 'instance_id',
   'agentmarket_private.finish_provision_instance(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Create the instance''s Fly app, volume and machine, and wait until it has started.'),
  ('fly.start_machine', 'fly', NULL, 'running', 'instance_id',
   'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Start (resume) the instance''s machine and wait until it has started.'),
  ('fly.suspend_machine', 'fly', NULL, 'suspended', 'instance_id',
   'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Suspend the instance''s machine and wait until it is suspended.'),
  ('fly.stop_machine', 'fly', NULL, 'stopped', 'instance_id',
   'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Stop the instance''s machine and wait until it is stopped.'),
  ('fly.destroy_instance', 'fly', NULL, 'destroyed', 'instance_id',
   'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Destroy the instance''s machine (force), its volume and its app.');

------------------------------------------------------------------------------
-- Enqueue
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket_private.enqueue_job(
    p_kind text, p_payload jsonb, p_idempotency_key text DEFAULT NULL, p_run_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k agentmarket_private.job_kinds;
    job_id bigint;
BEGIN
    IF p_kind IS NULL OR p_payload IS NULL THEN
        RAISE EXCEPTION 'job kind and payload must not be null' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.jsonb_typeof(p_payload) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'job payload must be a JSON object' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO k FROM agentmarket_private.job_kinds jk WHERE jk.kind OPERATOR(pg_catalog.=) p_kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown job kind "%"', p_kind
            USING ERRCODE = '22023', HINT = 'The kinds are listed in agentmarket_private.job_kinds.';
    END IF;
    IF k.serialize_on IS NOT NULL AND NOT p_payload ? k.serialize_on THEN
        RAISE EXCEPTION 'job payload of kind "%" needs "%"', p_kind, k.serialize_on USING ERRCODE = '22023';
    END IF;
    IF k.serialize_on OPERATOR(pg_catalog.=) 'instance_id'
       AND (p_payload OPERATOR(pg_catalog.->>) 'instance_id') !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        RAISE EXCEPTION 'job payload of kind "%" needs a uuid instance_id', p_kind USING ERRCODE = '22023';
    END IF;
    IF p_idempotency_key IS NOT NULL AND pg_catalog.length(p_idempotency_key) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'idempotency key must have 1 to 255 characters' USING ERRCODE = '22023';
    END IF;
    -- A key names one effect: enqueuing it again returns the existing job.
    INSERT INTO agentmarket_private.jobs (kind, payload, idempotency_key, run_at, max_attempts, serial_key)
    VALUES (p_kind, p_payload,
            COALESCE(p_idempotency_key, p_kind || ':' || pg_catalog.gen_random_uuid()::text),
            COALESCE(p_run_at, pg_catalog.now()), k.max_attempts,
            p_payload OPERATOR(pg_catalog.->>) k.serialize_on)
    ON CONFLICT ON CONSTRAINT jobs_idempotency_key_unique DO NOTHING
    RETURNING id INTO job_id;
    IF job_id IS NULL THEN
        SELECT j.id INTO job_id FROM agentmarket_private.jobs j
         WHERE j.idempotency_key OPERATOR(pg_catalog.=) p_idempotency_key;
        RETURN job_id;
    END IF;
    PERFORM pg_catalog.pg_notify('agentmarket_jobs', p_kind);
    RETURN job_id;
END
$$;
COMMENT ON FUNCTION agentmarket_private.enqueue_job(text, jsonb, text, timestamptz) IS
    'Adds a job to the outbox in the caller''s transaction and wakes the sidecars on commit; the same idempotency key returns the existing job.';
GRANT EXECUTE ON FUNCTION agentmarket_private.enqueue_job(text, jsonb, text, timestamptz) TO service_role;

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

-- Stripe jobs: params is the API request's parameters as nested JSON (the
-- sidecar form-encodes it with bracket nesting); context is kept for handlers.
CREATE FUNCTION agentmarket_private.enqueue_stripe_job(
    p_kind text, p_params jsonb, p_idempotency_key text, p_context jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM agentmarket_private.job_kinds k
                    WHERE k.kind OPERATOR(pg_catalog.=) p_kind AND k.provider OPERATOR(pg_catalog.=) 'stripe') THEN
        RAISE EXCEPTION 'unknown Stripe job kind "%"', p_kind USING ERRCODE = '22023';
    END IF;
    IF p_params IS NULL OR pg_catalog.jsonb_typeof(p_params) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'Stripe parameters must be a JSON object' USING ERRCODE = '22023';
    END IF;
    IF p_idempotency_key IS NULL THEN
        RAISE EXCEPTION 'Stripe jobs need an idempotency key'
            USING ERRCODE = '22023', HINT = 'Derive it from the row the call is about, e.g. refund:<purchase id>.';
    END IF;
    IF p_context IS NULL OR pg_catalog.jsonb_typeof(p_context) OPERATOR(pg_catalog.<>) 'object' OR p_context ? 'params' THEN
        RAISE EXCEPTION 'Stripe job context must be a JSON object without "params"' USING ERRCODE = '22023';
    END IF;
    RETURN agentmarket_private.enqueue_job(p_kind,
        p_context OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('params', p_params), p_idempotency_key);
END
$$;
COMMENT ON FUNCTION agentmarket_private.enqueue_stripe_job(text, jsonb, text, jsonb) IS
    'Enqueues a Stripe call: kind names the endpoint, params its form parameters (nested JSON), the key its Idempotency-Key; context (e.g. user_id) is for the handler.';
GRANT EXECUTE ON FUNCTION agentmarket_private.enqueue_stripe_job(text, jsonb, text, jsonb) TO service_role;

