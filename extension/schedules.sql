-- schedules.sql: every periodic task of the extension, registered with
-- pg_cron by agentmarket.schedule_jobs() (issue 16, Operations).
--
-- pg_cron stays optional: CREATE EXTENSION agentmarket needs nothing of it,
-- and cron.* is only reached through dynamic SQL when schedule_jobs() or
-- unschedule_jobs() runs (55000 when pg_cron is not installed in this
-- database).  pg_cron can only be created in the database named by the
-- server setting cron.database_name; its jobs run in that database, so this
-- database must be it.  Each task's cadence is a setting (schedule_<task>,
-- a pg_cron schedule or 'off'); schedule_jobs() applies the current values.
-- Jobs are named agentmarket.<task>; cron.schedule(name, ...) updates a job
-- of the same name and owner, so running schedule_jobs() again is harmless.
--
-- schedule_jobs() and unschedule_jobs() run with the caller's rights, not as
-- a definer: pg_cron runs each job as the role that scheduled it, and the
-- definer role (agentmarket_definer, footer.sql) cannot log in.  The
-- caller is a superuser or a LOGIN member of service_role with USAGE on
-- schema cron; its jobs are its own (cron.job is filtered by owner).

-- The registry: a capability declares each of its periodic tasks in its own
-- part with agentmarket_private.declare_scheduled_task(task, command,
-- default schedule); this part names none of them.
CREATE TABLE agentmarket_private.scheduled_tasks (
  task TEXT PRIMARY KEY CONSTRAINT scheduled_tasks_task_format CHECK (task ~ '^[a-z][a-z0-9_]{0,50}$'),
  command TEXT NOT NULL CONSTRAINT scheduled_tasks_command_format CHECK (command ~ '^SELECT [a-z_]+\.[a-z_]+\(\)$')
);
COMMENT ON TABLE agentmarket_private.scheduled_tasks IS
    'Every periodic task of the extension (declared by the part that owns it) and the command its pg_cron job runs; its cadence is setting schedule_<task>.';
REVOKE ALL ON TABLE agentmarket_private.scheduled_tasks FROM PUBLIC;
-- Part of the extension's code: recreated by CREATE EXTENSION, dumped without rows.
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.scheduled_tasks', 'WHERE false');

-- Declares a periodic task and its setting schedule_<task> (a pg_cron
-- schedule or 'off').  Called by the install script only.
CREATE FUNCTION agentmarket_private.declare_scheduled_task(p_task text, p_command text, p_default_schedule text)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO agentmarket_private.scheduled_tasks (task, command) VALUES (p_task, p_command);
    INSERT INTO agentmarket_private.setting_definitions
        (key, kind, default_value, min_value, max_value, pattern, description)
    VALUES ('schedule_' OPERATOR(pg_catalog.||) p_task, 'text', p_default_schedule, NULL, NULL,
            '^(off|[0-9*/,-]+( [0-9*/,-]+){4})$',
            pg_catalog.format('pg_cron schedule of job agentmarket.%s (%s); off: not scheduled.',
                              p_task, pg_catalog.substr(p_command, 8)));
$$;
COMMENT ON FUNCTION agentmarket_private.declare_scheduled_task(text, text, text) IS
    'Install script: declares periodic task agentmarket.<task> running command, and its setting schedule_<task> with the default schedule (cron syntax, or off).';

-- The one list of periodic tasks: job name, current cadence, command.
CREATE FUNCTION agentmarket.scheduled_jobs()
RETURNS TABLE (job_name text, schedule text, command text, setting text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'agentmarket.' OPERATOR(pg_catalog.||) t.task,
           agentmarket_private.setting('schedule_' OPERATOR(pg_catalog.||) t.task),
           t.command,
           'schedule_' OPERATOR(pg_catalog.||) t.task
      FROM agentmarket_private.scheduled_tasks t
     ORDER BY 1
$$;
COMMENT ON FUNCTION agentmarket.scheduled_jobs() IS
    'Every periodic task of the extension: its pg_cron job name (agentmarket.<task>), current schedule (setting schedule_<task>; off: not scheduled) and command. Superuser and service_role only.';
GRANT EXECUTE ON FUNCTION agentmarket.scheduled_jobs() TO service_role;

-- 55000 unless pg_cron is installed in this database.
CREATE FUNCTION agentmarket_private.require_pg_cron()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regnamespace('cron') IS NULL
       OR (pg_catalog.has_schema_privilege('cron', 'USAGE')
           AND (pg_catalog.to_regprocedure('cron.schedule(text,text,text)') IS NULL
                OR pg_catalog.to_regprocedure('cron.unschedule(bigint)') IS NULL
                OR pg_catalog.to_regclass('cron.job') IS NULL)) THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = '55000',
                  DETAIL = format('pg_cron runs its jobs in the database named by cron.database_name (%s); this is %s.',
                                  coalesce(pg_catalog.current_setting('cron.database_name', true), 'not set'),
                                  pg_catalog.current_database()),
                  HINT = 'Preload pg_cron (shared_preload_libraries), run CREATE EXTENSION pg_cron in this database, then call agentmarket.schedule_jobs() again.';
    END IF;
    IF NOT pg_catalog.has_schema_privilege('cron', 'USAGE') THEN
        RAISE EXCEPTION 'role "%" may not use pg_cron', current_user
            USING ERRCODE = '42501',
                  HINT = format('A superuser can run GRANT USAGE ON SCHEMA cron TO %I.', current_user);
    END IF;
    IF NOT (SELECT r.rolcanlogin FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
        RAISE EXCEPTION 'pg_cron jobs cannot run as role "%"', current_user
            USING ERRCODE = '42501',
                  DETAIL = 'pg_cron runs each job as the role that scheduled it, and this role cannot log in.',
                  HINT = 'Call it as a superuser or as a login role that is a member of service_role.';
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.require_pg_cron() IS
    'Raises 55000 unless pg_cron (cron.schedule, cron.unschedule, cron.job) is installed in this database, 42501 unless the current role may use it and log in (its jobs run as it).';
GRANT EXECUTE ON FUNCTION agentmarket_private.require_pg_cron() TO service_role;

CREATE FUNCTION agentmarket.schedule_jobs()
RETURNS TABLE (job_name text, schedule text, jobid bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j record;
    id bigint;
BEGIN
    PERFORM agentmarket_private.require_pg_cron();
    FOR j IN SELECT * FROM agentmarket.scheduled_jobs() s LOOP
        id := NULL;
        IF j.schedule OPERATOR(pg_catalog.=) 'off' THEN
            -- Off: a job of ours by that name goes away.
            FOR id IN EXECUTE 'SELECT c.jobid FROM cron.job c WHERE c.jobname OPERATOR(pg_catalog.=) $1'
                              ' AND c.username OPERATOR(pg_catalog.=) current_user' USING j.job_name LOOP
                EXECUTE 'SELECT cron.unschedule($1)' USING id;
            END LOOP;
            id := NULL;
        ELSE
            EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO id USING j.job_name, j.schedule, j.command;
        END IF;
        job_name := j.job_name;
        schedule := j.schedule;
        jobid := id;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION agentmarket.schedule_jobs() IS
    'Registers every periodic task of agentmarket.scheduled_jobs() with pg_cron at its configured schedule (jobs named agentmarket.<task>, run in this database as the caller; off removes the job); running it again updates them. Returns each job with its pg_cron id (NULL when off). 55000 when pg_cron is not installed in this database; 42501 unless the caller is a superuser or a login member of service_role with USAGE on schema cron.';
GRANT EXECUTE ON FUNCTION agentmarket.schedule_jobs() TO service_role;

CREATE FUNCTION agentmarket.unschedule_jobs()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
    n integer := 0;
BEGIN
    PERFORM agentmarket_private.require_pg_cron();
    FOR id IN EXECUTE 'SELECT c.jobid FROM cron.job c'
                      ' WHERE c.jobname OPERATOR(pg_catalog.=) ANY ($1)'
                      '   AND c.username OPERATOR(pg_catalog.=) current_user'
                      ' ORDER BY c.jobid'
              USING ARRAY(SELECT s.job_name FROM agentmarket.scheduled_jobs() s) LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING id;
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket.unschedule_jobs() IS
    'Removes from pg_cron the caller''s jobs of agentmarket.scheduled_jobs() (and no other job); returns how many. 55000 when pg_cron is not installed in this database; 42501 unless the caller is a superuser or a login member of service_role with USAGE on schema cron.';
GRANT EXECUTE ON FUNCTION agentmarket.unschedule_jobs() TO service_role;
