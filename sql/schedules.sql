-- schedules: schedule_jobs() registers every periodic task with pg_cron at
-- its configured cadence, again harmlessly; unschedule_jobs() removes exactly
-- ours; without pg_cron both say so (55000); client roles are refused, and
-- so is a role pg_cron could not run the jobs as.
-- test/run starts the cluster with cron.database_name = contrib_regression,
-- so pg_cron can be created here (inside this suite's transaction) and the
-- jobs are the real cron.job rows the scheduler would run.
\ir test/fixture.sql
BEGIN;
SELECT plan(34);

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

-- Every periodic function of the extension is scheduled: each prune_* and
-- each function documented as run by pg_cron appears in a job's command.
SELECT is(
    (SELECT array_agg(p.oid::regproc::text ORDER BY 1)
       FROM pg_proc p
       JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname IN ('agentmarket', 'agentmarket_private')
      WHERE (p.proname LIKE 'prune\_%' OR obj_description(p.oid, 'pg_proc') ~* 'pg_cron')
        AND p.proname NOT IN ('schedule_jobs', 'unschedule_jobs', 'scheduled_jobs', 'require_pg_cron')
        AND NOT EXISTS (SELECT FROM agentmarket.scheduled_jobs() j
                         WHERE j.command LIKE '%' || n.nspname || '.' || p.proname || '(%')),
    NULL, 'every prune_* and every pg_cron function of the extension has a job');
SELECT is((SELECT count(*)::int FROM agentmarket.scheduled_jobs()), 12, 'twelve periodic tasks');
SELECT is((SELECT count(*)::int FROM agentmarket.scheduled_jobs()
            WHERE job_name ~ '^agentmarket\.[a-z_]+$' AND setting = 'schedule_' || substr(job_name, 13)
              AND schedule = (SELECT c.value FROM agentmarket.configuration() c WHERE c.key = setting)), 12,
    'each job is named agentmarket.<task> and runs at setting schedule_<task>');

-- Without pg_cron in this database.
SELECT throws_ok('SELECT agentmarket.schedule_jobs()', '55000', 'pg_cron is not installed in this database',
    'schedule_jobs without pg_cron: 55000');
SELECT throws_ok('SELECT agentmarket.unschedule_jobs()', '55000', 'pg_cron is not installed in this database',
    'unschedule_jobs without pg_cron: 55000');

-- Cadences are validated settings.
SELECT throws_ok($$SELECT agentmarket.configure('schedule_run_payouts', 'every monday')$$, '22023', NULL,
    'a cadence that is no cron schedule is refused');
SELECT throws_ok($$SELECT agentmarket.configure('schedule_run_payouts', '* * * *')$$, '22023', NULL,
    'a cadence with four fields is refused');

CREATE EXTENSION pg_cron;
SELECT cron.schedule('someone-elses-job', '0 0 * * *', 'SELECT 1');

SELECT is((SELECT count(*)::int FROM agentmarket.schedule_jobs() WHERE jobid IS NOT NULL), 12,
    'schedule_jobs registers twelve jobs');
CREATE TEMP TABLE first AS
    SELECT jobid, jobname, schedule, command, database, username FROM cron.job WHERE jobname LIKE 'agentmarket.%';
SELECT is((SELECT count(*)::int FROM cron.job c JOIN agentmarket.scheduled_jobs() s
            ON s.job_name = c.jobname AND s.schedule = c.schedule AND s.command = c.command
           WHERE c.database = current_database() AND c.active), 12,
    'cron.job holds each job with its cadence and command, active, in this database');
SELECT is((SELECT schedule FROM cron.job WHERE jobname = 'agentmarket.billing_rollup'), '* * * * *',
    'the billing rollup runs every minute');
SELECT is((SELECT schedule FROM cron.job WHERE jobname = 'agentmarket.run_payouts'), '0 6 * * 1',
    'payouts run on Mondays at 06:00');

-- Each command runs as it stands (as the job's user would run it).
DO $$
DECLARE c text;
BEGIN
    FOR c IN SELECT command FROM cron.job WHERE jobname LIKE 'agentmarket.%' ORDER BY jobid LOOP
        EXECUTE c;
    END LOOP;
END $$;
SELECT pass('every job''s command runs');

-- Again: nothing new, same ids.
SELECT is((SELECT count(*)::int FROM agentmarket.schedule_jobs()), 12, 'running it again reports the same twelve');
SELECT set_eq('SELECT jobid, jobname, schedule, command, database, username FROM cron.job WHERE jobname LIKE ''agentmarket.%''',
              'SELECT * FROM first', 'running it again changes nothing: same jobs, same ids');
SELECT is((SELECT count(*)::int FROM cron.job), 13, 'thirteen jobs in all: ours and the other one');

-- A new cadence is honoured by the next run; off removes the job.
SELECT agentmarket.configure('schedule_run_payouts', '30 5 1,15 * *');
SELECT agentmarket.configure('schedule_prune_jobs', 'off');
SELECT is((SELECT jobid FROM agentmarket.schedule_jobs() WHERE job_name = 'agentmarket.prune_jobs'), NULL,
    'a job that is off has no id');
SELECT is((SELECT schedule FROM cron.job WHERE jobname = 'agentmarket.run_payouts'), '30 5 1,15 * *',
    'the configured cadence is the job''s schedule');
SELECT is((SELECT jobid FROM cron.job WHERE jobname = 'agentmarket.run_payouts'),
          (SELECT jobid FROM first WHERE jobname = 'agentmarket.run_payouts'), 'the job was updated, not duplicated');
SELECT ok(NOT EXISTS (SELECT FROM cron.job WHERE jobname = 'agentmarket.prune_jobs'), 'a job set off is removed');
SELECT is((SELECT count(*)::int FROM cron.job), 12, 'eleven of ours and the other one');

-- pg_cron runs a job as the role that scheduled it: service_role itself
-- (NOLOGIN) is refused, a login member of it schedules its own jobs.
SELECT pg_temp.act('service_role');
SELECT throws_ok('SELECT agentmarket.schedule_jobs()', '42501', 'role "service_role" may not use pg_cron',
    'service_role without USAGE on schema cron: 42501');
RESET role;
GRANT USAGE ON SCHEMA cron TO service_role;
SELECT pg_temp.act('service_role');
SELECT throws_ok('SELECT agentmarket.schedule_jobs()', '42501', 'pg_cron jobs cannot run as role "service_role"',
    'service_role cannot log in, so its jobs could not run: 42501');
RESET role;
CREATE ROLE schedules_operator LOGIN IN ROLE service_role;
SELECT pg_temp.act('schedules_operator');
SELECT is((SELECT count(*)::int FROM agentmarket.schedule_jobs() WHERE jobid IS NOT NULL), 11,
    'a login member of service_role schedules the eleven jobs that are on');
SELECT is((SELECT count(*)::int FROM cron.job WHERE username = 'schedules_operator' AND jobname LIKE 'agentmarket.%'), 11,
    'they are its own');
SELECT is(agentmarket.unschedule_jobs(), 11, 'and it unschedules exactly those');
RESET role;
SELECT is((SELECT count(*)::int FROM cron.job), 12, 'the superuser''s jobs and the other one stay');

-- Client roles: refused.
SELECT pg_temp.act('authenticated', '75000000-0000-4000-8000-00000000e001');
SELECT throws_ok('SELECT agentmarket.schedule_jobs()', '42501', NULL, 'authenticated cannot schedule');
SELECT throws_ok('SELECT agentmarket.unschedule_jobs()', '42501', NULL, 'authenticated cannot unschedule');
SELECT throws_ok('SELECT agentmarket.scheduled_jobs()', '42501', NULL, 'authenticated cannot list the jobs');
SELECT pg_temp.act('anon');
SELECT throws_ok('SELECT agentmarket.schedule_jobs()', '42501', NULL, 'anon cannot schedule');
SELECT throws_ok('SELECT agentmarket.unschedule_jobs()', '42501', NULL, 'anon cannot unschedule');
RESET role;

-- Unschedule: exactly ours.
SELECT is(agentmarket.unschedule_jobs(), 11, 'unschedule_jobs removes our eleven jobs');
SELECT is((SELECT array_agg(jobname) FROM cron.job), '{someone-elses-job}', 'the other job stays');
SELECT is(agentmarket.unschedule_jobs(), 0, 'unscheduling again removes nothing');

SELECT * FROM finish();
ROLLBACK;
