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

-- The registry of job kinds.  Adding a kind means adding one row here and its
-- handler function; nothing in the sidecar or the queue functions changes.
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

-- Stripe kinds without an effect of their own yet: the result stays on the job.
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
    'Handler of kinds whose result is only recorded on the job (until a capability gives them a handler).';

-- stripe.create_customer succeeded: the user's customer id, when not set yet.
CREATE FUNCTION agentmarket_private.finish_stripe_customer(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (p_job).payload ? 'user_id' AND p_result OPERATOR(pg_catalog.->>) 'id' LIKE 'cus\_%' THEN
        UPDATE agentmarket.users u SET stripe_customer_id = p_result OPERATOR(pg_catalog.->>) 'id'
         WHERE u.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'user_id')::uuid
           AND u.stripe_customer_id IS NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_stripe_customer(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_customer: sets users.stripe_customer_id of payload.user_id when it has none.';

-- stripe.create_account succeeded: the creator's Connect account id.
CREATE FUNCTION agentmarket_private.finish_stripe_account(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (p_job).payload ? 'user_id' AND p_result OPERATOR(pg_catalog.->>) 'id' LIKE 'acct\_%' THEN
        UPDATE agentmarket.users u SET stripe_connect_account_id = p_result OPERATOR(pg_catalog.->>) 'id'
         WHERE u.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'user_id')::uuid
           AND u.stripe_connect_account_id IS NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_stripe_account(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_account: sets users.stripe_connect_account_id of payload.user_id when it has none.';

REVOKE ALL ON FUNCTION agentmarket_private.job_instance_id(agentmarket_private.jobs),
    agentmarket_private.finish_provision_instance(agentmarket_private.jobs, jsonb),
    agentmarket_private.finish_instance_transition(agentmarket_private.jobs, jsonb),
    agentmarket_private.instance_job_dead(agentmarket_private.jobs),
    agentmarket_private.finish_store_result(agentmarket_private.jobs, jsonb),
    agentmarket_private.finish_stripe_customer(agentmarket_private.jobs, jsonb),
    agentmarket_private.finish_stripe_account(agentmarket_private.jobs, jsonb) FROM PUBLIC;

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
   'Destroy the instance''s machine (force), its volume and its app.'),
  ('stripe.create_customer', 'stripe', '/v1/customers', NULL, NULL,
   'agentmarket_private.finish_stripe_customer(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create a Stripe customer; sets users.stripe_customer_id of payload.user_id.'),
  ('stripe.create_checkout_session', 'stripe', '/v1/checkout/sessions', NULL, NULL,
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create a Checkout session (mode=payment for top-up packs, mode=subscription for plans).'),
  ('stripe.create_refund', 'stripe', '/v1/refunds', NULL, NULL,
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Refund a payment intent, fully or partly.'),
  ('stripe.create_account', 'stripe', '/v1/accounts', NULL, NULL,
   'agentmarket_private.finish_stripe_account(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create an Express connected account for a creator; sets users.stripe_connect_account_id.'),
  ('stripe.create_account_link', 'stripe', '/v1/account_links', NULL, NULL,
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create an onboarding link for a creator''s connected account.'),
  ('stripe.create_transfer', 'stripe', '/v1/transfers', NULL, NULL,
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Transfer a creator''s payout to their connected account.');

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
REVOKE ALL ON FUNCTION agentmarket_private.enqueue_job(text, jsonb, text, timestamptz) FROM PUBLIC;
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
REVOKE ALL ON FUNCTION agentmarket_private.fly_app_name(uuid) FROM PUBLIC;
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
REVOKE ALL ON FUNCTION agentmarket_private.enqueue_instance_job(uuid, text) FROM PUBLIC;
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
REVOKE ALL ON FUNCTION agentmarket_private.enqueue_stripe_job(text, jsonb, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.enqueue_stripe_job(text, jsonb, text, jsonb) TO service_role;

------------------------------------------------------------------------------
-- Claim, finish, fail
------------------------------------------------------------------------------

-- What the sidecar needs to perform a job, decided here so that the sidecar
-- makes no business decision.  "refuse" set means: do not call, fail the job
-- permanently with that reason.
CREATE FUNCTION agentmarket_private.job_request(p_job agentmarket_private.jobs)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k agentmarket_private.job_kinds;
    inst_id uuid;
    i record;
    image text;
    volume_gb integer;
    guest jsonb;
    machine_config jsonb;
    refuse text;
BEGIN
    SELECT * INTO STRICT k FROM agentmarket_private.job_kinds jk WHERE jk.kind OPERATOR(pg_catalog.=) (p_job).kind;
    IF k.provider OPERATOR(pg_catalog.=) 'stripe' THEN
        RETURN pg_catalog.jsonb_build_object(
            'method', 'POST', 'path', k.endpoint,
            'params', COALESCE((p_job).payload OPERATOR(pg_catalog.->) 'params', '{}'::jsonb),
            'idempotency_key', (p_job).idempotency_key,
            -- Every request pins the API version (reconcile.sql): its shape is ours, not the account's default.
            'stripe_version', agentmarket_private.setting('stripe_api_version'));
    END IF;

    -- The runtime configuration (runtime.sql) has a request of its own.
    IF (p_job).kind OPERATOR(pg_catalog.=) 'fly.update_runtime' THEN
        RETURN agentmarket_private.runtime_request(p_job);
    END IF;
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
            'refuse', CASE WHEN (p_job).kind OPERATOR(pg_catalog.=) 'fly.destroy_instance' THEN NULL
                           ELSE 'instance ' || inst_id || ' no longer exists' END);
    END IF;

    IF (p_job).kind OPERATOR(pg_catalog.=) 'fly.provision_instance' THEN
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

    IF (p_job).kind OPERATOR(pg_catalog.<>) 'fly.destroy_instance' THEN
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
COMMENT ON FUNCTION agentmarket_private.job_request(agentmarket_private.jobs) IS
    'The request a claimed job hands to the sidecar: Fly app/volume/machine bodies for instance jobs, method/path/params/idempotency key for Stripe jobs.';
REVOKE ALL ON FUNCTION agentmarket_private.job_request(agentmarket_private.jobs) FROM PUBLIC;

-- A job has reached its end: run the kind's dead handler.
CREATE FUNCTION agentmarket_private.run_dead_handler(p_job agentmarket_private.jobs)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h regprocedure;
BEGIN
    SELECT k.dead_handler INTO h FROM agentmarket_private.job_kinds k WHERE k.kind OPERATOR(pg_catalog.=) (p_job).kind;
    IF h IS NOT NULL THEN
        EXECUTE pg_catalog.format('SELECT %s($1)', h::oid::regproc) USING p_job;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.run_dead_handler(agentmarket_private.jobs) IS
    'Applies the final failure of a job through its kind''s dead handler, if it has one.';
REVOKE ALL ON FUNCTION agentmarket_private.run_dead_handler(agentmarket_private.jobs) FROM PUBLIC;

CREATE FUNCTION agentmarket_private.claim_jobs(p_worker text, p_max integer, p_lease interval)
RETURNS TABLE (job_id bigint, kind text, provider text, attempt integer, idempotency_key text, request jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    expired agentmarket_private.jobs;
    ids bigint[];
    more bigint[];
BEGIN
    IF p_worker IS NULL OR p_worker !~ '^[A-Za-z0-9._:@/-]{1,200}$' THEN
        RAISE EXCEPTION 'invalid worker name' USING ERRCODE = '22023',
            DETAIL = 'A worker name has 1 to 200 letters, digits and ._:@/- characters.';
    END IF;
    IF p_max IS NULL OR p_max NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'claim size must be between 1 and 10000' USING ERRCODE = '22023';
    END IF;
    IF p_lease IS NULL OR p_lease < interval '1 second' OR p_lease > interval '1 day' THEN
        RAISE EXCEPTION 'lease must be between 1 second and 1 day' USING ERRCODE = '22023';
    END IF;

    -- A job whose last allowed attempt lost its lease (its worker died or hung)
    -- is dead rather than retried forever.
    FOR expired IN
        UPDATE agentmarket_private.jobs j
           SET status = 'dead', finished_at = pg_catalog.now(),
               last_error = pg_catalog.format('lease of worker %s expired on attempt %s of %s%s',
                   j.lease_owner, j.attempts, j.max_attempts,
                   COALESCE('; earlier: ' || j.last_error, '')),
               lease_owner = NULL, lease_expires_at = NULL
         WHERE j.id IN (SELECT e.id FROM agentmarket_private.jobs e
                         WHERE e.status OPERATOR(pg_catalog.=) 'running'
                           AND e.lease_expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
                           AND e.attempts OPERATOR(pg_catalog.>=) e.max_attempts
                         LIMIT 100 FOR UPDATE SKIP LOCKED)
        RETURNING j.*
    LOOP
        PERFORM agentmarket_private.run_dead_handler(expired);
    END LOOP;

    -- Expired leases first (they have waited longest), then queued jobs by due
    -- time.  A job waits while an earlier job with its serial key is pending.
    SELECT pg_catalog.array_agg(c.id) INTO ids FROM (
        SELECT e.id FROM agentmarket_private.jobs e
         WHERE e.status OPERATOR(pg_catalog.=) 'running'
           AND e.lease_expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
           AND e.attempts OPERATOR(pg_catalog.<) e.max_attempts
           AND (e.serial_key IS NULL OR NOT EXISTS (
                SELECT FROM agentmarket_private.jobs p
                 WHERE p.serial_key OPERATOR(pg_catalog.=) e.serial_key AND p.id OPERATOR(pg_catalog.<) e.id
                   AND p.status IN ('queued', 'running')))
         ORDER BY e.lease_expires_at
         LIMIT p_max FOR UPDATE SKIP LOCKED) c;
    IF COALESCE(pg_catalog.cardinality(ids), 0) OPERATOR(pg_catalog.<) p_max THEN
        SELECT pg_catalog.array_agg(c.id) INTO more FROM (
            SELECT q.id FROM agentmarket_private.jobs q
             WHERE q.status OPERATOR(pg_catalog.=) 'queued'
               AND q.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()
               AND (q.serial_key IS NULL OR NOT EXISTS (
                    SELECT FROM agentmarket_private.jobs p
                     WHERE p.serial_key OPERATOR(pg_catalog.=) q.serial_key AND p.id OPERATOR(pg_catalog.<) q.id
                       AND p.status IN ('queued', 'running')))
             ORDER BY q.run_at, q.id
             LIMIT p_max OPERATOR(pg_catalog.-) COALESCE(pg_catalog.cardinality(ids), 0)
             FOR UPDATE SKIP LOCKED) c;
        ids := COALESCE(ids, '{}') OPERATOR(pg_catalog.||) COALESCE(more, '{}');
    END IF;
    IF COALESCE(pg_catalog.cardinality(ids), 0) OPERATOR(pg_catalog.=) 0 THEN
        RETURN;
    END IF;

    RETURN QUERY
    WITH claimed AS (
        UPDATE agentmarket_private.jobs j
           SET status = 'running', attempts = j.attempts OPERATOR(pg_catalog.+) 1,
               lease_owner = p_worker, lease_expires_at = pg_catalog.now() OPERATOR(pg_catalog.+) p_lease
         WHERE j.id OPERATOR(pg_catalog.=) ANY (ids)
        RETURNING j.*
    )
    SELECT c.id, c.kind, k.provider, c.attempts, c.idempotency_key,
           agentmarket_private.job_request_or_refusal(c::agentmarket_private.jobs)
      FROM claimed c
      JOIN agentmarket_private.job_kinds k ON k.kind OPERATOR(pg_catalog.=) c.kind
     ORDER BY pg_catalog.array_position(ids, c.id);
END
$$;
COMMENT ON FUNCTION agentmarket_private.claim_jobs(text, integer, interval) IS
    'Leases up to max due jobs to worker (FOR UPDATE SKIP LOCKED, by due time; expired leases are claimable again) and returns what the sidecar needs to perform each.';
REVOKE ALL ON FUNCTION agentmarket_private.claim_jobs(text, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.claim_jobs(text, integer, interval) TO service_role;

-- The job locked, when worker still holds its lease; NULL otherwise.
CREATE FUNCTION agentmarket_private.lock_leased_job(p_job_id bigint, p_worker text)
RETURNS agentmarket_private.jobs
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j agentmarket_private.jobs;
BEGIN
    IF p_job_id IS NULL OR p_worker IS NULL THEN
        RAISE EXCEPTION 'job id and worker must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO j FROM agentmarket_private.jobs WHERE id OPERATOR(pg_catalog.=) p_job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', p_job_id USING ERRCODE = 'P0002';
    END IF;
    -- Another worker reclaimed it after our lease expired, or it is over:
    -- that worker's outcome counts, not ours.
    IF j.status OPERATOR(pg_catalog.<>) 'running' OR j.lease_owner OPERATOR(pg_catalog.<>) p_worker THEN
        RETURN NULL;
    END IF;
    RETURN j;
END
$$;
COMMENT ON FUNCTION agentmarket_private.lock_leased_job(bigint, text) IS
    'Locks a job and returns it if worker holds its lease; NULL when the lease was lost or the job is over.';
REVOKE ALL ON FUNCTION agentmarket_private.lock_leased_job(bigint, text) FROM PUBLIC;

CREATE FUNCTION agentmarket_private.finish_job(p_job_id bigint, p_result jsonb, p_worker text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j agentmarket_private.jobs;
    h regprocedure;
BEGIN
    IF p_result IS NULL OR pg_catalog.jsonb_typeof(p_result) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'job result must be a JSON object' USING ERRCODE = '22023';
    END IF;
    j := agentmarket_private.lock_leased_job(p_job_id, p_worker);
    IF j.id IS NULL THEN
        RETURN false;
    END IF;
    SELECT k.handler INTO STRICT h FROM agentmarket_private.job_kinds k WHERE k.kind OPERATOR(pg_catalog.=) j.kind;
    EXECUTE pg_catalog.format('SELECT %s($1, $2)', h::oid::regproc) USING j, p_result;
    UPDATE agentmarket_private.jobs
       SET status = 'succeeded', result = p_result, finished_at = pg_catalog.now(),
           lease_owner = NULL, lease_expires_at = NULL
     WHERE id OPERATOR(pg_catalog.=) p_job_id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_job(bigint, jsonb, text) IS
    'Records a job''s success and applies its effect through the kind''s handler, once: false (and nothing applied) when worker no longer holds the lease.';
REVOKE ALL ON FUNCTION agentmarket_private.finish_job(bigint, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.finish_job(bigint, jsonb, text) TO service_role;

-- Retry delay after attempt n: base * 2^(n-1) capped, with "equal jitter"
-- (half fixed, half random) so that failed jobs do not come back in a herd.
CREATE FUNCTION agentmarket_private.job_backoff(p_attempt integer)
RETURNS interval
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    base numeric := agentmarket_private.setting('job_backoff_base_seconds')::numeric;
    cap numeric := agentmarket_private.setting('job_backoff_max_seconds')::numeric;
    d numeric;
BEGIN
    d := LEAST(cap, base * pg_catalog.power(2::numeric, LEAST(GREATEST(p_attempt, 1) - 1, 30)));
    RETURN pg_catalog.make_interval(secs => (d / 2 + pg_catalog.random()::numeric * d / 2)::double precision);
END
$$;
COMMENT ON FUNCTION agentmarket_private.job_backoff(integer) IS
    'Delay before the next attempt after attempt n: exponential from job_backoff_base_seconds, capped at job_backoff_max_seconds, with jitter.';
REVOKE ALL ON FUNCTION agentmarket_private.job_backoff(integer) FROM PUBLIC;

CREATE FUNCTION agentmarket_private.fail_job(
    p_job_id bigint, p_error text, p_retry_after interval, p_permanent boolean, p_worker text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j agentmarket_private.jobs;
    delay interval;
BEGIN
    IF p_error IS NULL OR p_error OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a failed job needs an error message' USING ERRCODE = '22023';
    END IF;
    IF p_retry_after < interval '0' THEN
        RAISE EXCEPTION 'retry_after must not be negative' USING ERRCODE = '22023';
    END IF;
    j := agentmarket_private.lock_leased_job(p_job_id, p_worker);
    IF j.id IS NULL THEN
        RETURN NULL;
    END IF;
    IF COALESCE(p_permanent, false) OR j.attempts OPERATOR(pg_catalog.>=) j.max_attempts THEN
        UPDATE agentmarket_private.jobs
           SET status = 'dead', finished_at = pg_catalog.now(), lease_owner = NULL, lease_expires_at = NULL,
               last_error = pg_catalog.left(p_error, 2000)
         WHERE id OPERATOR(pg_catalog.=) p_job_id
        RETURNING * INTO j;
        PERFORM agentmarket_private.run_dead_handler(j);
        RETURN 'dead';
    END IF;
    -- Retry-After is a floor: never earlier than the provider asked.
    delay := GREATEST(agentmarket_private.job_backoff(j.attempts), COALESCE(p_retry_after, interval '0'));
    UPDATE agentmarket_private.jobs
       SET status = 'queued', run_at = pg_catalog.now() OPERATOR(pg_catalog.+) delay,
           lease_owner = NULL, lease_expires_at = NULL, last_error = pg_catalog.left(p_error, 2000)
     WHERE id OPERATOR(pg_catalog.=) p_job_id;
    RETURN 'queued';
END
$$;
COMMENT ON FUNCTION agentmarket_private.fail_job(bigint, text, interval, boolean, text) IS
    'Records a failed attempt: requeued after exponential backoff with jitter (never before retry_after), or dead when permanent or out of attempts. Returns the new status, NULL when worker lost the lease.';
REVOKE ALL ON FUNCTION agentmarket_private.fail_job(bigint, text, interval, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.fail_job(bigint, text, interval, boolean, text) TO service_role;

-- Many outcomes in one round trip and one commit: each is applied in its own
-- subtransaction, so a result the database refuses (its handler raised)
-- becomes a retryable failure of that job alone.
CREATE FUNCTION agentmarket_private.report_jobs(p_worker text, p_outcomes jsonb)
RETURNS TABLE (job_id bigint, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o jsonb;
    id bigint;
    st text;
BEGIN
    IF p_outcomes IS NULL OR pg_catalog.jsonb_typeof(p_outcomes) OPERATOR(pg_catalog.<>) 'array' THEN
        RAISE EXCEPTION 'outcomes must be a JSON array' USING ERRCODE = '22023';
    END IF;
    -- Job id order: concurrent reports lock rows in the same order.
    FOR o IN SELECT e.value FROM pg_catalog.jsonb_array_elements(p_outcomes) e
              ORDER BY (e.value OPERATOR(pg_catalog.->>) 'id')::bigint
    LOOP
        id := (o OPERATOR(pg_catalog.->>) 'id')::bigint;
        BEGIN
            IF (o OPERATOR(pg_catalog.->) 'ok') OPERATOR(pg_catalog.=) 'true'::jsonb THEN
                st := CASE WHEN agentmarket_private.finish_job(id, o OPERATOR(pg_catalog.->) 'result', p_worker)
                           THEN 'succeeded' ELSE 'lease_lost' END;
            ELSE
                st := COALESCE(agentmarket_private.fail_job(id, o OPERATOR(pg_catalog.->>) 'error',
                          pg_catalog.make_interval(secs => (o OPERATOR(pg_catalog.->>) 'retry_after')::double precision),
                          COALESCE((o OPERATOR(pg_catalog.->>) 'permanent')::boolean, false), p_worker),
                          'lease_lost');
            END IF;
        EXCEPTION WHEN OTHERS THEN
            st := COALESCE(agentmarket_private.fail_job(id, pg_catalog.left('database refused the result: ' || SQLERRM, 2000),
                                                        NULL, false, p_worker), 'lease_lost');
        END;
        job_id := id;
        outcome := st;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION agentmarket_private.report_jobs(text, jsonb) IS
    'Reports many outcomes at once ([{"id", "ok": true, "result"} | {"id", "ok": false, "error", "retry_after", "permanent"}]), each through finish_job/fail_job in its own subtransaction; returns each job''s new status (succeeded, queued, dead) or lease_lost.';
REVOKE ALL ON FUNCTION agentmarket_private.report_jobs(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.report_jobs(text, jsonb) TO service_role;

CREATE FUNCTION agentmarket_private.retry_job(p_job_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j agentmarket_private.jobs;
BEGIN
    SELECT * INTO j FROM agentmarket_private.jobs WHERE id OPERATOR(pg_catalog.=) p_job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', p_job_id USING ERRCODE = 'P0002';
    END IF;
    IF j.status NOT IN ('dead', 'queued') THEN
        RAISE EXCEPTION 'job % is %', p_job_id, j.status
            USING ERRCODE = '22023', DETAIL = 'Only dead or waiting jobs can be retried.';
    END IF;
    UPDATE agentmarket_private.jobs
       SET status = 'queued', attempts = 0, run_at = pg_catalog.now(), finished_at = NULL
     WHERE id OPERATOR(pg_catalog.=) p_job_id;
    PERFORM pg_catalog.pg_notify('agentmarket_jobs', j.kind);
END
$$;
COMMENT ON FUNCTION agentmarket_private.retry_job(bigint) IS
    'Operators: runs a dead (or waiting) job again now with a fresh attempt budget; its last error is kept until it next fails or succeeds.';
REVOKE ALL ON FUNCTION agentmarket_private.retry_job(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.retry_job(bigint) TO service_role;

CREATE FUNCTION agentmarket_private.prune_jobs(p_limit integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keep_ok interval := pg_catalog.make_interval(days => agentmarket_private.setting('job_retention_days')::integer);
    keep_dead interval := pg_catalog.make_interval(days => agentmarket_private.setting('dead_job_retention_days')::integer);
    n integer;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'prune limit must be positive' USING ERRCODE = '22023';
    END IF;
    DELETE FROM agentmarket_private.jobs j
     WHERE j.id IN (SELECT f.id FROM agentmarket_private.jobs f
                     WHERE f.finished_at IS NOT NULL
                       AND ((f.status OPERATOR(pg_catalog.=) 'succeeded'
                             AND f.finished_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) keep_ok))
                         OR (f.status OPERATOR(pg_catalog.=) 'dead'
                             AND f.finished_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) keep_dead)))
                     ORDER BY f.finished_at
                     LIMIT p_limit);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket_private.prune_jobs(integer) IS
    'Deletes up to limit succeeded jobs older than job_retention_days and dead jobs older than dead_job_retention_days; returns how many. For pg_cron.';
REVOKE ALL ON FUNCTION agentmarket_private.prune_jobs(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.prune_jobs(integer) TO service_role;

------------------------------------------------------------------------------
-- Operations views
------------------------------------------------------------------------------

CREATE VIEW agentmarket_private.queue_depth AS
    SELECT j.kind, j.status, pg_catalog.count(*) AS jobs,
           pg_catalog.min(j.run_at) AS oldest_run_at,
           pg_catalog.count(*) FILTER (WHERE j.status OPERATOR(pg_catalog.=) 'queued'
                                       AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()) AS due
      FROM agentmarket_private.jobs j
     GROUP BY j.kind, j.status;
COMMENT ON VIEW agentmarket_private.queue_depth IS
    'Jobs per kind and status, with the earliest run_at and how many queued ones are due now.';

-- A running job whose lease ran out is due again since its lease expired: a
-- dead sidecar's jobs are lag too.
CREATE VIEW agentmarket_private.queue_oldest_due AS
    SELECT d.id, d.kind, d.run_at, pg_catalog.now() OPERATOR(pg_catalog.-) d.run_at AS waiting,
           d.attempts, d.last_error, d.orphaned
      FROM (SELECT j.id, j.kind, j.run_at, j.attempts, j.last_error, false AS orphaned
              FROM agentmarket_private.jobs j
             WHERE j.status OPERATOR(pg_catalog.=) 'queued' AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()
            UNION ALL
            SELECT j.id, j.kind, j.lease_expires_at, j.attempts, j.last_error, true
              FROM agentmarket_private.jobs j
             WHERE j.status OPERATOR(pg_catalog.=) 'running'
               AND j.lease_expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()) d
     ORDER BY d.run_at
     LIMIT 1;
COMMENT ON VIEW agentmarket_private.queue_oldest_due IS
    'The job due longest (empty when nothing is due): queued and due since run_at, or orphaned (running, lease expired) since its lease ran out; the sidecars'' lag.';

CREATE VIEW agentmarket_private.dead_jobs AS
    SELECT j.id, j.kind, j.payload, j.attempts, j.last_error, j.created_at, j.finished_at
      FROM agentmarket_private.jobs j
     WHERE j.status OPERATOR(pg_catalog.=) 'dead';
COMMENT ON VIEW agentmarket_private.dead_jobs IS
    'Jobs that gave up, with their last error; agentmarket_private.retry_job(id) runs one again.';
REVOKE ALL ON agentmarket_private.queue_depth, agentmarket_private.queue_oldest_due,
    agentmarket_private.dead_jobs FROM PUBLIC;
GRANT SELECT ON agentmarket_private.queue_depth, agentmarket_private.queue_oldest_due,
    agentmarket_private.dead_jobs TO service_role;

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
REVOKE ALL ON FUNCTION agentmarket_private.caller_is_service() FROM PUBLIC;

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
REVOKE ALL ON FUNCTION agentmarket_private.request_instance_change(uuid, text, text[], text) FROM PUBLIC;

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

REVOKE ALL ON FUNCTION agentmarket.suspend_instance(uuid), agentmarket.resume_instance(uuid),
    agentmarket.destroy_instance(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.suspend_instance(uuid), agentmarket.resume_instance(uuid),
    agentmarket.destroy_instance(uuid) TO authenticated, service_role;
