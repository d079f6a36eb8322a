-- lifecycle: CREATE EXTENSION agentmarket CASCADE works in a fresh database,
-- DROP EXTENSION agentmarket CASCADE leaves nothing behind (but the shared
-- roles), and the extension can be created again.
\ir test/fixture.sql
DROP DATABASE IF EXISTS am_lifecycle;
CREATE DATABASE am_lifecycle;
\c am_lifecycle
SET client_min_messages = warning;
CREATE EXTENSION pgtap;
-- Everything a database holds, by catalog.
CREATE TEMP VIEW census_now AS
SELECT 'pg_namespace' AS cat, count(*) AS n FROM pg_namespace
  UNION ALL SELECT 'pg_class', count(*) FROM pg_class WHERE relpersistence <> 't' AND relnamespace <> pg_my_temp_schema()
  UNION ALL SELECT 'pg_proc', count(*) FROM pg_proc
  UNION ALL SELECT 'pg_type', count(*) FROM pg_type WHERE typnamespace <> pg_my_temp_schema()
  UNION ALL SELECT 'pg_trigger', count(*) FROM pg_trigger
  UNION ALL SELECT 'pg_policy', count(*) FROM pg_policy
  UNION ALL SELECT 'pg_constraint', count(*) FROM pg_constraint
  UNION ALL SELECT 'pg_event_trigger', count(*) FROM pg_event_trigger
  UNION ALL SELECT 'pg_extension', count(*) FROM pg_extension
  UNION ALL SELECT 'pg_default_acl', count(*) FROM pg_default_acl;
CREATE TEMP TABLE census AS SELECT 'before'::text AS phase, cat, n FROM census_now;
SELECT plan(9);
SELECT lives_ok('CREATE EXTENSION agentmarket CASCADE', 'CREATE EXTENSION agentmarket CASCADE in a fresh database');
SELECT ok((SELECT count(*) FROM pg_class WHERE relnamespace = 'agentmarket'::regnamespace) > 18,
    'the extension created its tables and indexes');
SELECT ok((SELECT NOT extrelocatable FROM pg_extension WHERE extname = 'agentmarket'),
    'agentmarket is not relocatable');
SELECT ok((SELECT count(*) = 1 FROM pg_depend WHERE classid = 'pg_namespace'::regclass
             AND objid = 'agentmarket'::regnamespace AND deptype = 'e'),
    'the schema agentmarket belongs to the extension');
SELECT ok((SELECT count(*) = 1 FROM pg_depend WHERE classid = 'pg_namespace'::regclass
             AND objid = 'agentmarket_private'::regnamespace AND deptype = 'e'),
    'the schema agentmarket_private belongs to the extension');
SELECT lives_ok('DROP EXTENSION agentmarket CASCADE', 'DROP EXTENSION agentmarket CASCADE');
INSERT INTO census SELECT 'after', cat, n FROM census_now;
SELECT is_empty($$SELECT b.cat, b.n, a.n FROM census b JOIN census a USING (cat)
                   WHERE b.phase = 'before' AND a.phase = 'after' AND a.n <> b.n$$,
    'after DROP EXTENSION every catalog holds what it held before CREATE EXTENSION');
SELECT ok(EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role'),
    'the shared Supabase roles stay (other databases may use them)');
SELECT lives_ok('CREATE EXTENSION agentmarket CASCADE', 'the extension can be created again');
SELECT * FROM finish();
\c contrib_regression
DROP DATABASE am_lifecycle;
