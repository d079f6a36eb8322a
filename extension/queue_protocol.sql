-- queue_protocol.sql: how the sidecar claims jobs, reports outcomes and fails them (the
-- registry and enqueueing are in queue.sql, leases and heartbeats in queue_leases.sql).
------------------------------------------------------------------------------
-- Claim, finish, fail
------------------------------------------------------------------------------

-- A job's request: its kind's flow, method, endpoint and wait state, merged
-- with the fields the kind's request function built.  Plain SQL without SET
-- (every name qualified), so that a claim's statement inlines it.
-- A worker (sidecar) names itself in every call: 1 to 200 of these characters.
CREATE FUNCTION agentmarket_private.check_worker_name(p_worker text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_worker IS NULL OR p_worker !~ '^[A-Za-z0-9._:@/-]{1,200}$' THEN
        RAISE EXCEPTION 'invalid worker name' USING ERRCODE = '22023',
            DETAIL = 'A worker name has 1 to 200 letters, digits and ._:@/- characters.';
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.check_worker_name(text) IS
    'Validates a worker name (1 to 200 letters, digits and ._:@/- characters); 22023 otherwise.';

CREATE FUNCTION agentmarket_private.kind_request(p_kind agentmarket_private.job_kinds, p_fields jsonb)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'flow', (p_kind).flow, 'method', (p_kind).method, 'path', (p_kind).endpoint, 'wait', (p_kind).wait_state))
           OPERATOR(pg_catalog.||) COALESCE(p_fields, '{}'::pg_catalog.jsonb)
$$;
COMMENT ON FUNCTION agentmarket_private.kind_request(agentmarket_private.job_kinds, jsonb) IS
    'A request: the kind''s flow, method, path (with {field} placeholders) and wait state, then the fields its request function built.';

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
    fields jsonb;
BEGIN
    SELECT * INTO STRICT k FROM agentmarket_private.job_kinds jk WHERE jk.kind OPERATOR(pg_catalog.=) (p_job).kind;
    EXECUTE pg_catalog.format('SELECT %s($1)', pg_catalog.to_regprocedure(k.request_function)::pg_catalog.oid::pg_catalog.regproc)
       INTO fields USING p_job;
    RETURN agentmarket_private.kind_request(k, fields);
END
$$;
COMMENT ON FUNCTION agentmarket_private.job_request(agentmarket_private.jobs) IS
    'The request a claimed job hands to the sidecar: its kind''s flow, method, path (with {field} placeholders) and wait state, merged with what the kind''s request function builds.';

-- The requests of many claimed jobs: one statement per request function
-- (not one per job), so a claim parses and plans once per kind of request.
-- When a function raises for one of its jobs, its jobs are built one by one
-- (job_request_or_refusal), so that only that job is refused.
CREATE FUNCTION agentmarket_private.job_requests(p_jobs agentmarket_private.jobs[])
RETURNS TABLE (job_id bigint, request jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text;
    members agentmarket_private.jobs[];
    part jsonb;
    built jsonb := '{}';        -- job id -> fields of its request function
    whole jsonb := '{}';        -- job id -> whole request, built one by one
BEGIN
    FOR fn, members IN
        SELECT k.request_function, pg_catalog.array_agg(c)
          FROM pg_catalog.unnest(p_jobs) c
          JOIN agentmarket_private.job_kinds k ON k.kind OPERATOR(pg_catalog.=) c.kind
         GROUP BY k.request_function
    LOOP
        BEGIN
            EXECUTE pg_catalog.format(
                'SELECT pg_catalog.jsonb_object_agg(c.id::text, %s(c)) FROM pg_catalog.unnest($1) c',
                pg_catalog.to_regprocedure(fn)::pg_catalog.oid::pg_catalog.regproc)
               INTO part USING members;
            built := built OPERATOR(pg_catalog.||) COALESCE(part, '{}'::jsonb);
        EXCEPTION WHEN OTHERS THEN
            SELECT pg_catalog.jsonb_object_agg(c.id::text, agentmarket_private.job_request_or_refusal(c))
              INTO part FROM pg_catalog.unnest(members) c;
            whole := whole OPERATOR(pg_catalog.||) part;
        END;
    END LOOP;
    RETURN QUERY
    SELECT c.id,
           COALESCE(whole OPERATOR(pg_catalog.->) c.id::text,
                    agentmarket_private.kind_request(k, built OPERATOR(pg_catalog.->) c.id::text))
      FROM pg_catalog.unnest(p_jobs) c
      JOIN agentmarket_private.job_kinds k ON k.kind OPERATOR(pg_catalog.=) c.kind;
END
$$;
COMMENT ON FUNCTION agentmarket_private.job_requests(agentmarket_private.jobs[]) IS
    'The requests of claimed jobs, one statement per request function; a job whose request cannot be built gets {"refuse": reason} while the others go ahead.';

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

-- The ids of up to p_max due jobs, locked (FOR UPDATE SKIP LOCKED): expired
-- leases first (they have waited longest), then queued jobs by due time; a
-- job waits while an earlier job with its serial key is pending.  A queue's
-- statistics are rarely right (a burst arrives between two ANALYZEs, and a
-- table thought tiny gets all its queued rows read and sorted for every
-- claim: 24 ms for 16 of 20,000 jobs), so the plans are pinned to the due
-- indexes, read in their order and stopped at p_max.
CREATE FUNCTION agentmarket_private.lock_due_jobs(p_max integer)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
DECLARE
    ids bigint[];
    more bigint[];
BEGIN
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
    RETURN COALESCE(ids, '{}');
END
$$;
COMMENT ON FUNCTION agentmarket_private.lock_due_jobs(integer) IS
    'Locks and returns the ids of up to max due jobs (expired leases first, then queued by due time; serial keys one at a time), reading the due indexes in order whatever the statistics say.';

-- Up to 100 running jobs whose last allowed attempt lost its lease, locked;
-- pinned to the lease index as lock_due_jobs is.  PL/pgSQL, so that its plan
-- is kept for the session: as a SQL function it was parsed and planned again
-- by every claim (each claim is a new transaction), ~0.3 ms of a claim.
CREATE FUNCTION agentmarket_private.lock_spent_jobs()
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
DECLARE
    ids bigint[];
BEGIN
    SELECT COALESCE(pg_catalog.array_agg(s.id), '{}') INTO ids FROM (
        SELECT e.id FROM agentmarket_private.jobs e
         WHERE e.status OPERATOR(pg_catalog.=) 'running'
           AND e.lease_expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
           AND e.attempts OPERATOR(pg_catalog.>=) e.max_attempts
         ORDER BY e.lease_expires_at
         LIMIT 100 FOR UPDATE SKIP LOCKED) s;
    RETURN ids;
END
$$;
COMMENT ON FUNCTION agentmarket_private.lock_spent_jobs() IS
    'Locks and returns the ids of up to 100 running jobs whose lease ran out on their last allowed attempt (claim_jobs makes them dead).';

CREATE FUNCTION agentmarket_private.claim_jobs(p_worker text, p_max integer, p_lease interval)
RETURNS TABLE (job_id bigint, kind text, provider text, attempt integer, idempotency_key text, request jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    expired agentmarket_private.jobs;
    ids bigint[];
    claimed agentmarket_private.jobs[];
BEGIN
    PERFORM agentmarket_private.check_worker_name(p_worker);
    IF p_max IS NULL OR p_max NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'claim size must be between 1 and 10000' USING ERRCODE = '22023';
    END IF;
    IF p_lease IS NULL OR p_lease < interval '1 second' OR p_lease > interval '1 day' THEN
        RAISE EXCEPTION 'lease must be between 1 second and 1 day' USING ERRCODE = '22023';
    END IF;

    -- A job whose last allowed attempt lost its lease (its worker died or hung)
    -- is dead rather than retried forever.
    ids := agentmarket_private.lock_spent_jobs();
    IF pg_catalog.cardinality(ids) OPERATOR(pg_catalog.>) 0 THEN
        FOR expired IN
            UPDATE agentmarket_private.jobs j
               SET status = 'dead', finished_at = pg_catalog.now(),
                   last_error = pg_catalog.format('lease of worker %s expired on attempt %s of %s%s',
                       j.lease_owner, j.attempts, j.max_attempts,
                       COALESCE('; earlier: ' || j.last_error, '')),
                   lease_owner = NULL, lease_expires_at = NULL
             WHERE j.id OPERATOR(pg_catalog.=) ANY (ids)
            RETURNING j.*
        LOOP
            PERFORM agentmarket_private.run_dead_handler(expired);
        END LOOP;
    END IF;

    ids := agentmarket_private.lock_due_jobs(p_max);
    IF COALESCE(pg_catalog.cardinality(ids), 0) OPERATOR(pg_catalog.=) 0 THEN
        RETURN;
    END IF;

    WITH c AS (
        UPDATE agentmarket_private.jobs j
           SET status = 'running', attempts = j.attempts OPERATOR(pg_catalog.+) 1,
               lease_owner = p_worker, lease_expires_at = pg_catalog.now() OPERATOR(pg_catalog.+) p_lease
         WHERE j.id OPERATOR(pg_catalog.=) ANY (ids)
        RETURNING j.*
    )
    SELECT pg_catalog.array_agg(c::agentmarket_private.jobs ORDER BY pg_catalog.array_position(ids, c.id))
      INTO claimed FROM c;
    RETURN QUERY
    SELECT c.id, c.kind, k.provider, c.attempts, c.idempotency_key, r.request
      FROM pg_catalog.unnest(claimed) WITH ORDINALITY c
      JOIN agentmarket_private.job_kinds k ON k.kind OPERATOR(pg_catalog.=) c.kind
      JOIN agentmarket_private.job_requests(claimed) r ON r.job_id OPERATOR(pg_catalog.=) c.id
     ORDER BY c.ordinality;
END
$$;
COMMENT ON FUNCTION agentmarket_private.claim_jobs(text, integer, interval) IS
    'Leases up to max due jobs to worker (FOR UPDATE SKIP LOCKED, by due time; expired leases are claimable again) and returns what the sidecar needs to perform each.';
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

-- Successes of jobs whose leases the caller holds (rows locked): each kind's
-- handler applied to its jobs in one statement, then the jobs succeeded.
CREATE FUNCTION agentmarket_private.apply_successes(p_jobs agentmarket_private.jobs[], p_results jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h text;
    members agentmarket_private.jobs[];
BEGIN
    FOR h, members IN
        SELECT k.handler, pg_catalog.array_agg(c ORDER BY c.id)
          FROM pg_catalog.unnest(p_jobs) c
          JOIN agentmarket_private.job_kinds k ON k.kind OPERATOR(pg_catalog.=) c.kind
         GROUP BY k.handler
    LOOP
        EXECUTE pg_catalog.format('SELECT %s(c, $2 OPERATOR(pg_catalog.->) c.id::text) FROM pg_catalog.unnest($1) c',
                                  pg_catalog.to_regprocedure(h)::pg_catalog.oid::pg_catalog.regproc)
           USING members, p_results;
    END LOOP;
    UPDATE agentmarket_private.jobs j
       SET status = 'succeeded', result = p_results OPERATOR(pg_catalog.->) j.id::text, finished_at = pg_catalog.now(),
           lease_owner = NULL, lease_expires_at = NULL
     WHERE j.id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.id FROM pg_catalog.unnest(p_jobs) c));
END
$$;
COMMENT ON FUNCTION agentmarket_private.apply_successes(agentmarket_private.jobs[], jsonb) IS
    'Applies the successes of locked jobs the caller holds (results: an object from job id to result): each kind''s handler over its jobs in one statement, then every job succeeded with its result.';

CREATE FUNCTION agentmarket_private.finish_job(p_job_id bigint, p_result jsonb, p_worker text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j agentmarket_private.jobs;
BEGIN
    IF p_result IS NULL OR pg_catalog.jsonb_typeof(p_result) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'job result must be a JSON object' USING ERRCODE = '22023';
    END IF;
    j := agentmarket_private.lock_leased_job(p_job_id, p_worker);
    IF j.id IS NULL THEN
        RETURN false;
    END IF;
    PERFORM agentmarket_private.apply_successes(ARRAY[j], pg_catalog.jsonb_build_object(j.id::text, p_result));
    RETURN true;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_job(bigint, jsonb, text) IS
    'Records a job''s success and applies its effect through the kind''s handler, once: false (and nothing applied) when worker no longer holds the lease.';
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
GRANT EXECUTE ON FUNCTION agentmarket_private.fail_job(bigint, text, interval, boolean, text) TO service_role;

-- Many outcomes in one round trip and one commit.  The successes of jobs
-- the worker holds are applied together (apply_successes); everything else,
-- and all of them when one result is refused, goes one by one through
-- finish_job/fail_job, each in its own subtransaction, so a result the
-- database refuses (its handler raised) becomes a retryable failure of that
-- job alone.
CREATE FUNCTION agentmarket_private.report_jobs(p_worker text, p_outcomes jsonb)
RETURNS TABLE (job_id bigint, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o jsonb;
    id bigint;
    st text;
    applied boolean;
    ok_jobs agentmarket_private.jobs[];
    ok_results jsonb;
    done bigint[] := '{}';
BEGIN
    IF p_outcomes IS NULL OR pg_catalog.jsonb_typeof(p_outcomes) OPERATOR(pg_catalog.<>) 'array' THEN
        RAISE EXCEPTION 'outcomes must be a JSON array' USING ERRCODE = '22023';
    END IF;
    -- Job id order: concurrent reports lock rows in the same order.
    PERFORM FROM agentmarket_private.jobs x
      WHERE x.id OPERATOR(pg_catalog.=) ANY (ARRAY(
                SELECT (e.value OPERATOR(pg_catalog.->>) 'id')::bigint FROM pg_catalog.jsonb_array_elements(p_outcomes) e))
      ORDER BY x.id FOR UPDATE;
    -- Successes of held jobs, each reported once (a repeated id goes one by one).
    SELECT pg_catalog.array_agg(x ORDER BY x.id), pg_catalog.jsonb_object_agg(x.id::text, once.v OPERATOR(pg_catalog.->) 'result')
      INTO ok_jobs, ok_results
      FROM (SELECT (e.value OPERATOR(pg_catalog.->>) 'id')::bigint AS id, (pg_catalog.array_agg(e.value))[1] AS v
              FROM pg_catalog.jsonb_array_elements(p_outcomes) e
             GROUP BY 1 HAVING pg_catalog.count(*) OPERATOR(pg_catalog.=) 1) once
      JOIN agentmarket_private.jobs x ON x.id OPERATOR(pg_catalog.=) once.id
     WHERE (once.v OPERATOR(pg_catalog.->) 'ok') OPERATOR(pg_catalog.=) 'true'::jsonb
       AND pg_catalog.jsonb_typeof(once.v OPERATOR(pg_catalog.->) 'result') OPERATOR(pg_catalog.=) 'object'
       AND x.status OPERATOR(pg_catalog.=) 'running' AND x.lease_owner OPERATOR(pg_catalog.=) p_worker;
    IF ok_jobs IS NOT NULL THEN
        BEGIN
            PERFORM agentmarket_private.apply_successes(ok_jobs, ok_results);
            done := ARRAY(SELECT c.id FROM pg_catalog.unnest(ok_jobs) c);
        EXCEPTION WHEN OTHERS THEN
            done := '{}';       -- a result was refused: find which, one by one
        END;
    END IF;
    FOR o, applied IN
        SELECT e.value, d.id IS NOT NULL
          FROM pg_catalog.jsonb_array_elements(p_outcomes) e
          LEFT JOIN pg_catalog.unnest(done) d(id) ON d.id OPERATOR(pg_catalog.=) (e.value OPERATOR(pg_catalog.->>) 'id')::bigint
         ORDER BY (e.value OPERATOR(pg_catalog.->>) 'id')::bigint
    LOOP
        id := (o OPERATOR(pg_catalog.->>) 'id')::bigint;
        IF applied THEN
            st := 'succeeded';
        ELSE
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
        END IF;
        job_id := id;
        outcome := st;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION agentmarket_private.report_jobs(text, jsonb) IS
    'Reports many outcomes at once ([{"id", "ok": true, "result"} | {"id", "ok": false, "error", "retry_after", "permanent"}]): successes of held jobs together, the rest (and all when one result is refused) each through finish_job/fail_job in its own subtransaction; returns each job''s new status (succeeded, queued, dead) or lease_lost.';
GRANT EXECUTE ON FUNCTION agentmarket_private.report_jobs(text, jsonb) TO service_role;

-- The sidecar's round trip: the outcomes of ended jobs reported and the free
-- slots refilled in one statement and one commit (one WAL flush, not two).
-- Report first: a finished job may let the next job of its serial key run.
CREATE FUNCTION agentmarket_private.exchange_jobs(p_worker text, p_outcomes jsonb, p_max integer, p_lease interval)
RETURNS TABLE (job_id bigint, outcome text, kind text, provider text, attempt integer, idempotency_key text,
               request jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentmarket_private.check_worker_name(p_worker);
    IF p_max IS NULL OR p_max NOT BETWEEN 0 AND 10000 THEN
        RAISE EXCEPTION 'claim size must be between 0 and 10000' USING ERRCODE = '22023';
    END IF;
    IF p_outcomes IS NULL OR pg_catalog.jsonb_typeof(p_outcomes) OPERATOR(pg_catalog.<>) 'array' THEN
        RAISE EXCEPTION 'outcomes must be a JSON array' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.jsonb_array_length(p_outcomes) OPERATOR(pg_catalog.>) 0 THEN
        RETURN QUERY
        SELECT r.job_id, r.outcome, NULL::text, NULL::text, NULL::integer, NULL::text, NULL::jsonb
          FROM agentmarket_private.report_jobs(p_worker, p_outcomes) r;
    END IF;
    IF p_max OPERATOR(pg_catalog.>) 0 THEN
        RETURN QUERY
        SELECT c.job_id, NULL::text, c.kind, c.provider, c.attempt, c.idempotency_key, c.request
          FROM agentmarket_private.claim_jobs(p_worker, p_max, p_lease) c;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.exchange_jobs(text, jsonb, integer, interval) IS
    'report_jobs(worker, outcomes) then claim_jobs(worker, max, lease) in one statement and one commit (max 0: report only; outcomes []: claim only); rows with outcome set are the reported jobs, rows with kind set the claimed ones.';
GRANT EXECUTE ON FUNCTION agentmarket_private.exchange_jobs(text, jsonb, integer, interval) TO service_role;

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
GRANT EXECUTE ON FUNCTION agentmarket_private.prune_jobs(integer) TO service_role;
-- Periodic (schedules.sql): job agentmarket.prune_jobs, setting schedule_prune_jobs.
SELECT agentmarket_private.declare_scheduled_task('prune_jobs', 'SELECT agentmarket_private.prune_jobs()', '17 3 * * *');

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

