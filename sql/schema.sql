-- schema: the safety nets every capability relies on (schema.sql and the
-- house rules of footer.sql): roles, the private schema, RLS on every table,
-- pg_dump registration, comments, no function executable by PUBLIC, pinned
-- search_path, updated_at triggers.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(19);

-- Roles, as in Supabase.
SELECT has_role('anon', 'role anon exists');
SELECT has_role('authenticated', 'role authenticated exists');
SELECT has_role('service_role', 'role service_role exists');
SELECT ok((SELECT rolbypassrls AND NOT rolcanlogin FROM pg_roles WHERE rolname = 'service_role'),
    'service_role bypasses RLS and cannot log in');
SELECT ok((SELECT NOT rolbypassrls AND NOT rolcanlogin FROM pg_roles WHERE rolname = 'anon'),
    'anon is subject to RLS and cannot log in');
SELECT ok((SELECT NOT rolbypassrls AND NOT rolcanlogin FROM pg_roles WHERE rolname = 'authenticated'),
    'authenticated is subject to RLS and cannot log in');

-- Schemas.
SELECT has_schema('agentmarket_private', 'the private schema exists');
SELECT ok(NOT has_schema_privilege('anon', 'agentmarket_private', 'USAGE')
          AND NOT has_schema_privilege('authenticated', 'agentmarket_private', 'USAGE'),
    'anon and authenticated cannot use the private schema');
SELECT ok(NOT has_schema_privilege('public', 'agentmarket', 'CREATE')
          AND NOT has_schema_privilege('authenticated', 'agentmarket', 'CREATE'),
    'nobody but the owner creates objects in agentmarket');

-- Every table of the exposed schema has RLS; every data table is dumped.
SELECT cmp_ok((SELECT count(*)::int FROM pg_class WHERE relnamespace = 'agentmarket'::regnamespace AND relkind = 'r'),
    '>=', 18, 'agentmarket holds the 13 seed tables and the 5 new ones');
SELECT is_empty($$SELECT relname FROM pg_class WHERE relnamespace = 'agentmarket'::regnamespace
                   AND relkind IN ('r', 'p') AND NOT relrowsecurity$$,
    'row-level security is enabled on every table in agentmarket');
SELECT is_empty($$SELECT c.oid::regclass::text FROM pg_class c
                   WHERE c.relnamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
                     AND c.relkind = 'r'
                     AND c.oid <> ALL (SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'agentmarket')
                     AND c.relname NOT IN ('setting_definitions', 'machine_price_list')$$,
    'every table that holds data is registered with pg_extension_config_dump');
SELECT is_empty($$SELECT c.oid::regclass::text FROM pg_class c
                   WHERE c.relnamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
                     AND c.relkind IN ('r', 'v', 'm') AND obj_description(c.oid, 'pg_class') IS NULL$$,
    'every table and view has a comment');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                   WHERE p.pronamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
                     AND obj_description(p.oid, 'pg_proc') IS NULL$$,
    'every function has a comment');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                   WHERE p.pronamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
                     AND p.prosecdef
                     AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')$$,
    'every SECURITY DEFINER function pins search_path');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                   WHERE p.pronamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
                     AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'no function is executable by PUBLIC');

-- updated_at is maintained wherever the seed has it.
SELECT is_empty($$SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                   WHERE c.relnamespace = 'agentmarket'::regnamespace AND c.relkind = 'r'
                     AND a.attname = 'updated_at'
                     AND NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid
                                        AND t.tgfoid = 'agentmarket_private.touch_updated_at'::regproc)$$,
    'every table with updated_at has the touch trigger');
INSERT INTO users (id, email, updated_at) VALUES ('20000000-0000-4000-8000-000000000001', 'touch@f.example', '2001-01-01');
UPDATE users SET display_name = 'Touched' WHERE id = '20000000-0000-4000-8000-000000000001';
SELECT is(updated_at, now(), 'an UPDATE sets updated_at to the transaction time')
  FROM users WHERE id = '20000000-0000-4000-8000-000000000001';
SELECT is(created_at, now(), 'created_at is the insert time and is left alone')
  FROM users WHERE id = '20000000-0000-4000-8000-000000000001';

SELECT * FROM finish();
ROLLBACK;
