-- queue.sql: the outbox.  A job is enqueued in the transaction that decides
-- it (commit makes both visible, rollback neither); NOTIFY on commit wakes the
-- sidecars, which claim, call Fly.io or Stripe outside any transaction, and
-- report back.

CREATE TABLE agentmarket_private.jobs (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind TEXT NOT NULL CONSTRAINT jobs_kind_format CHECK (kind ~ '^[a-z]+\.[a-z_]+$'),
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
  idempotency_key TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at TIMESTAMPTZ,
  CONSTRAINT jobs_idempotency_key_unique UNIQUE (idempotency_key),
  CONSTRAINT jobs_lease_consistent CHECK ((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
COMMENT ON TABLE agentmarket_private.jobs IS
    'Outbox of calls to Fly.io and Stripe, claimed by agentmarket-sidecar.';
-- "Next due": queued jobs by run_at, running jobs by lease expiry.
CREATE INDEX jobs_due_queued ON agentmarket_private.jobs (run_at) WHERE status = 'queued';
CREATE INDEX jobs_due_lease ON agentmarket_private.jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_kind_status ON agentmarket_private.jobs (kind, status);
CREATE TRIGGER jobs_touch_updated_at BEFORE UPDATE ON agentmarket_private.jobs
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.touch_updated_at();
REVOKE ALL ON TABLE agentmarket_private.jobs FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.jobs', '');
-- The id sequence too, or a restored database hands out ids that exist.
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.jobs_id_seq', '');

CREATE FUNCTION agentmarket_private.enqueue_job(
    p_kind text, p_payload jsonb, p_idempotency_key text DEFAULT NULL, p_run_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    job_id bigint;
BEGIN
    IF p_kind IS NULL OR p_payload IS NULL THEN
        RAISE EXCEPTION 'job kind and payload must not be null' USING ERRCODE = '22023';
    END IF;
    -- A key names one effect: enqueuing it again returns the existing job.
    INSERT INTO agentmarket_private.jobs (kind, payload, idempotency_key, run_at)
    VALUES (p_kind, p_payload,
            COALESCE(p_idempotency_key, p_kind || ':' || gen_random_uuid()::text),
            COALESCE(p_run_at, now()))
    ON CONFLICT ON CONSTRAINT jobs_idempotency_key_unique DO NOTHING
    RETURNING id INTO job_id;
    IF job_id IS NULL THEN
        SELECT j.id INTO job_id FROM agentmarket_private.jobs j
         WHERE j.idempotency_key OPERATOR(pg_catalog.=) p_idempotency_key;
        RETURN job_id;
    END IF;
    PERFORM pg_notify('agentmarket_jobs', p_kind);
    RETURN job_id;
END
$$;
COMMENT ON FUNCTION agentmarket_private.enqueue_job(text, jsonb, text, timestamptz) IS
    'Adds a job to the outbox in the caller''s transaction and wakes the sidecars on commit; the same idempotency key returns the existing job.';
REVOKE ALL ON FUNCTION agentmarket_private.enqueue_job(text, jsonb, text, timestamptz) FROM PUBLIC;

-- The Fly app of an instance has a name derived from the instance id alone, so
-- a replayed create finds the app it made before (Fly answers 422 name_taken).
CREATE FUNCTION agentmarket_private.fly_app_name(p_instance_id uuid)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT 'am-' || replace(p_instance_id::text, '-', '')
$$;
COMMENT ON FUNCTION agentmarket_private.fly_app_name(uuid) IS
    'Deterministic Fly app name of an instance: am- followed by the instance id''s 32 hex digits.';
REVOKE ALL ON FUNCTION agentmarket_private.fly_app_name(uuid) FROM PUBLIC;

-- Instance jobs carry only the instance id: what to create (image, size,
-- region) is read when the job is claimed, so it is never stale.
CREATE FUNCTION agentmarket_private.enqueue_instance_job(p_instance_id uuid, p_kind text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    IF p_kind NOT IN ('fly.provision_instance', 'fly.start_machine', 'fly.suspend_machine',
                      'fly.stop_machine', 'fly.destroy_instance') THEN
        RAISE EXCEPTION 'unknown instance job kind "%"', p_kind USING ERRCODE = '22023';
    END IF;
    RETURN agentmarket_private.enqueue_job(p_kind, jsonb_build_object('instance_id', p_instance_id));
END
$$;
COMMENT ON FUNCTION agentmarket_private.enqueue_instance_job(uuid, text) IS
    'Enqueues a Fly job (provision, start, suspend, stop, destroy) for an instance in the caller''s transaction.';
REVOKE ALL ON FUNCTION agentmarket_private.enqueue_instance_job(uuid, text) FROM PUBLIC;
