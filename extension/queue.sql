-- queue.sql: the outbox.  A job is enqueued in the transaction that decides
-- it (commit makes both visible, rollback neither); NOTIFY on commit wakes the
-- sidecars, which claim, call Fly.io or Stripe outside any transaction, and
-- report back.  A job kind (agentmarket_private.job_kinds) describes the whole
-- request and names the handler that decides what the answer means; each
-- capability registers its own kinds in its own part.

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
   'Dead jobs older than this many days are removed by agentmarket_private.prune_jobs().');

-- The registry of job kinds.  Each capability registers its own kinds in its
-- own part (a row and the handler functions it names); nothing in the sidecar
-- or the queue functions changes.
CREATE TABLE agentmarket_private.job_kinds (
  kind TEXT PRIMARY KEY CONSTRAINT job_kinds_kind_format CHECK (kind ~ '^[a-z]+\.[a-z_]+$'),
  provider TEXT NOT NULL CONSTRAINT job_kinds_provider_check CHECK (provider IN ('fly', 'stripe')),
  -- How the sidecar performs the job.  'call': one request (method, endpoint,
  -- the request's body or params), then, when wait_state is set, a wait until
  -- the machine is in that state.  Other flows are multi-step procedures of
  -- the provider's module in the sidecar (Fly: provision, destroy,
  -- update_config), each safe to repeat.
  flow TEXT NOT NULL DEFAULT 'call' CONSTRAINT job_kinds_flow_format CHECK (flow ~ '^[a-z_]{1,40}$'),
  method TEXT NOT NULL DEFAULT 'POST' CONSTRAINT job_kinds_method_check CHECK (method IN ('GET', 'POST', 'DELETE')),
  -- The API path under the provider's base URL; {field} stands for that
  -- (id-shaped) field of the request, e.g. /v1/apps/{app_name}/machines.
  endpoint TEXT CONSTRAINT job_kinds_endpoint_format CHECK (endpoint ~ '^/v1/[A-Za-z0-9_/{}-]+$'),
  -- Fly: the machine state a call waits for.
  wait_state TEXT CONSTRAINT job_kinds_wait_state_format CHECK (wait_state ~ '^[a-z_]{1,40}$'),
  -- request_function(job agentmarket_private.jobs) returns jsonb: the fields
  -- of the request (ids, body or params, idempotency key; "refuse" to fail it).
  request_function TEXT NOT NULL,
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
  CONSTRAINT job_kinds_call_endpoint CHECK (flow <> 'call' OR endpoint IS NOT NULL)
);
COMMENT ON TABLE agentmarket_private.job_kinds IS
    'Every job kind: the request the sidecar performs (provider, flow, method, endpoint, wait state, the function building its fields) and the handlers that apply its outcome.';
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
-- (run_at, id): claims take due jobs in that order straight from the index.
CREATE INDEX jobs_due_queued ON agentmarket_private.jobs (run_at, id) WHERE status = 'queued';
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
-- Handlers shared by capabilities (each capability has its own, in its part)
------------------------------------------------------------------------------

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
