-- queue_leases.sql: leases that live as long as their worker does.  A sidecar
-- claims with a short lease and renews it by heartbeat while its calls run,
-- so the jobs of a sidecar that died are claimable again within one lease.
-- Every call here is one statement with parameters and no session state, so
-- it works through a transaction-pooling PgBouncer.  Operators see jobs
-- whose worker is gone (queue_orphaned) and can release them at once.

-- Shared argument checks of the lease functions.
CREATE FUNCTION agentmarket_private.check_lease_args(p_worker text, p_job_ids bigint[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentmarket_private.check_worker_name(p_worker);
    IF p_job_ids IS NULL THEN
        RAISE EXCEPTION 'job ids must not be null' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.cardinality(p_job_ids) OPERATOR(pg_catalog.>) 10000 THEN
        RAISE EXCEPTION 'too many job ids' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('%s ids were given; at most 10000 are accepted at once.',
                                       pg_catalog.cardinality(p_job_ids));
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.check_lease_args(text, bigint[]) IS
    'Validates a worker name and a job id list (not null, at most 10000 ids); 22023 otherwise.';

-- The heartbeat.  Rows are locked in id order, as report_jobs does, so a
-- renewal and another worker's report never wait on each other in a cycle.
-- A lease that ran out but was not taken by anyone is still the worker's:
-- nobody else performed the job, so renewing it duplicates nothing.
CREATE FUNCTION agentmarket_private.renew_leases(p_worker text, p_job_ids bigint[], p_lease interval)
RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentmarket_private.check_lease_args(p_worker, p_job_ids);
    IF p_lease IS NULL OR p_lease OPERATOR(pg_catalog.<) interval '1 second'
       OR p_lease OPERATOR(pg_catalog.>) interval '1 day' THEN
        RAISE EXCEPTION 'lease must be between 1 second and 1 day' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH held AS (
        SELECT h.id FROM agentmarket_private.jobs h
         WHERE h.id OPERATOR(pg_catalog.=) ANY (p_job_ids)
           AND h.status OPERATOR(pg_catalog.=) 'running' AND h.lease_owner OPERATOR(pg_catalog.=) p_worker
         ORDER BY h.id
           FOR UPDATE
    )
    UPDATE agentmarket_private.jobs j
       SET lease_expires_at = pg_catalog.now() OPERATOR(pg_catalog.+) p_lease
      FROM held
     WHERE j.id OPERATOR(pg_catalog.=) held.id
    RETURNING j.id;
END
$$;
COMMENT ON FUNCTION agentmarket_private.renew_leases(text, bigint[], interval) IS
    'Heartbeat of a sidecar: extends to now() + lease the leases worker still holds among the ids and returns those ids; an id not returned was lost (reclaimed, released or over).';
GRANT EXECUTE ON FUNCTION agentmarket_private.renew_leases(text, bigint[], interval) TO service_role;

-- Requeue (or, out of attempts, end) one running job whose worker gave it up
-- or is gone.  The attempt stays counted: the next one looks before it
-- creates, because this one may have half-happened.
CREATE FUNCTION agentmarket_private.requeue_running_job(p_job agentmarket_private.jobs, p_reason text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j agentmarket_private.jobs;
BEGIN
    IF (p_job).attempts OPERATOR(pg_catalog.>=) (p_job).max_attempts THEN
        UPDATE agentmarket_private.jobs
           SET status = 'dead', finished_at = pg_catalog.now(), lease_owner = NULL, lease_expires_at = NULL,
               last_error = pg_catalog.left(p_reason || COALESCE('; earlier: ' || (p_job).last_error, ''), 2000)
         WHERE id OPERATOR(pg_catalog.=) (p_job).id
        RETURNING * INTO j;
        PERFORM agentmarket_private.run_dead_handler(j);
        RETURN;
    END IF;
    UPDATE agentmarket_private.jobs
       SET status = 'queued', run_at = pg_catalog.now(), lease_owner = NULL, lease_expires_at = NULL,
           last_error = pg_catalog.left(p_reason || COALESCE('; earlier: ' || (p_job).last_error, ''), 2000)
     WHERE id OPERATOR(pg_catalog.=) (p_job).id;
END
$$;
COMMENT ON FUNCTION agentmarket_private.requeue_running_job(agentmarket_private.jobs, text) IS
    'Puts a running job back in the queue, due now, with reason as its last error; dead (through its dead handler) when it has no attempt left.';

-- A sidecar that stops before its calls ended (drain deadline) gives their
-- jobs back, so another sidecar takes them now rather than after the lease.
CREATE FUNCTION agentmarket_private.release_jobs(p_worker text, p_job_ids bigint[], p_reason text)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j agentmarket_private.jobs;
    n integer := 0;
BEGIN
    PERFORM agentmarket_private.check_lease_args(p_worker, p_job_ids);
    IF p_reason IS NULL OR p_reason OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a released job needs a reason' USING ERRCODE = '22023';
    END IF;
    FOR j IN SELECT * FROM agentmarket_private.jobs h
              WHERE h.id OPERATOR(pg_catalog.=) ANY (p_job_ids)
                AND h.status OPERATOR(pg_catalog.=) 'running' AND h.lease_owner OPERATOR(pg_catalog.=) p_worker
              ORDER BY h.id
                FOR UPDATE
    LOOP
        PERFORM agentmarket_private.requeue_running_job(j, pg_catalog.left(p_reason, 500));
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    IF n OPERATOR(pg_catalog.>) 0 THEN
        PERFORM pg_catalog.pg_notify('agentmarket_jobs', 'released');
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket_private.release_jobs(text, bigint[], text) IS
    'A stopping sidecar gives back the jobs it still holds among the ids: queued again and due now (dead when out of attempts), reason kept as last error; returns how many.';
GRANT EXECUTE ON FUNCTION agentmarket_private.release_jobs(text, bigint[], text) TO service_role;

-- Running jobs nobody works on: their lease ran out without a heartbeat.
-- updated_at moves with every renewal, so it is the worker's last sign of life.
CREATE VIEW agentmarket_private.queue_orphaned AS
    SELECT j.id, j.kind, j.lease_owner AS worker, j.attempts, j.max_attempts,
           j.updated_at AS last_heartbeat_at, j.lease_expires_at,
           pg_catalog.now() OPERATOR(pg_catalog.-) j.lease_expires_at AS waiting,
           j.last_error
      FROM agentmarket_private.jobs j
     WHERE j.status OPERATOR(pg_catalog.=) 'running'
       AND j.lease_expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
     ORDER BY j.lease_expires_at;
COMMENT ON VIEW agentmarket_private.queue_orphaned IS
    'Running jobs whose worker is gone (lease expired without renewal), oldest first, with how long they have waited since; release_orphaned_jobs() requeues them at once.';
REVOKE ALL ON agentmarket_private.queue_orphaned FROM PUBLIC;
GRANT SELECT ON agentmarket_private.queue_orphaned TO service_role;

-- Operators: without a worker, every job of queue_orphaned; with one (known
-- to be dead, e.g. killed), all its running jobs, lease or not.
CREATE FUNCTION agentmarket_private.release_orphaned_jobs(p_worker text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j agentmarket_private.jobs;
    n integer := 0;
BEGIN
    IF p_worker IS NOT NULL THEN
        PERFORM agentmarket_private.check_lease_args(p_worker, '{}');
    END IF;
    FOR j IN SELECT * FROM agentmarket_private.jobs h
              WHERE h.status OPERATOR(pg_catalog.=) 'running'
                AND CASE WHEN p_worker IS NULL THEN h.lease_expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
                         ELSE h.lease_owner OPERATOR(pg_catalog.=) p_worker END
              ORDER BY h.id
                FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM agentmarket_private.requeue_running_job(j,
            pg_catalog.format('released by an operator: worker %s is gone (attempt %s of %s)',
                              j.lease_owner, j.attempts, j.max_attempts));
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    IF n OPERATOR(pg_catalog.>) 0 THEN
        PERFORM pg_catalog.pg_notify('agentmarket_jobs', 'released');
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket_private.release_orphaned_jobs(text) IS
    'Operators: requeues (due now) the running jobs whose lease expired, or with a worker name every running job of that worker; out of attempts they are dead. Returns how many.';
GRANT EXECUTE ON FUNCTION agentmarket_private.release_orphaned_jobs(text) TO service_role;
