-- foundation: the safety nets every capability relies on: roles, the private
-- schema, RLS on every table, pg_dump registration, updated_at triggers,
-- comments, and the settings store behind agentmarket.configure().
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(42);

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

-- Settings store.
SELECT is(agentmarket_private.setting('creator_rate'), '0.85', 'creator_rate defaults to 0.85');
SELECT lives_ok($$SELECT agentmarket.configure('creator_rate', '0.80')$$, 'a valid value is accepted');
SELECT is(agentmarket_private.setting('creator_rate'), '0.80', 'the configured value is read back');
SELECT is((SELECT is_default FROM agentmarket.configuration() WHERE key = 'creator_rate'), false,
    'configuration() shows the key as changed');
SELECT lives_ok($$SELECT agentmarket.configure('creator_rate', NULL)$$, 'NULL resets a key');
SELECT is(agentmarket_private.setting('creator_rate'), '0.85', 'a reset key has its default again');
SELECT throws_ok($$SELECT agentmarket.configure('no_such_key', '1')$$, '22023', 'unknown setting "no_such_key"',
    'unknown keys are refused');
SELECT throws_ok($$SELECT agentmarket.configure('no_such_key', NULL)$$, '22023', 'unknown setting "no_such_key"',
    'unknown keys are refused on reset too');
SELECT throws_ok($$SELECT agentmarket.configure(NULL, '1')$$, '22023', NULL, 'a NULL key is refused');
SELECT throws_ok($$SELECT agentmarket.configure('creator_rate', 'lots')$$, '22023', NULL, 'a number must be a number');
SELECT throws_ok($$SELECT agentmarket.configure('creator_rate', '1.5')$$, '22023', NULL, 'creator_rate is at most 1');
SELECT throws_ok($$SELECT agentmarket.configure('creator_rate', '0.855')$$, '22023', NULL, 'creator_rate has two decimals (NUMERIC(3,2))');
SELECT throws_ok($$SELECT agentmarket.configure('free_trial_credits', '2.5')$$, '22023', NULL, 'an integer key takes whole numbers');
SELECT throws_ok($$SELECT agentmarket.configure('free_trial_credits', '-1')$$, '22023', NULL, 'free_trial_credits is not negative');
SELECT throws_ok($$SELECT agentmarket.configure('payout_minimum_usd', 'NaN')$$, '22023', NULL, 'NaN is not a number here');
SELECT throws_ok($$SELECT agentmarket.configure('stripe_webhook_secret', 'hunter2')$$, '22023', NULL, 'a webhook secret must look like whsec_...');
SELECT lives_ok($$SELECT agentmarket.configure('stripe_webhook_secret', 'whsec_abc123')$$, 'a webhook secret is stored');
SELECT is((SELECT value FROM agentmarket.configuration() WHERE key = 'stripe_webhook_secret'), '(set)',
    'configuration() never shows a secret');
SELECT is((SELECT count(*)::int FROM agentmarket_private.settings WHERE key = 'stripe_webhook_secret'), 1,
    'the secret is in the private settings table');

SET LOCAL ROLE service_role;
SELECT lives_ok($$SELECT agentmarket.configure('idle_suspend_minutes', '30')$$, 'service_role may configure');
RESET ROLE;
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT agentmarket.configure('idle_suspend_minutes', '30')$$, '42501', NULL,
    'authenticated may not configure');
SELECT throws_ok($$SELECT * FROM agentmarket_private.settings$$, '42501', NULL,
    'authenticated cannot read the settings table');
RESET ROLE;
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT * FROM agentmarket.configuration()$$, '42501', NULL,
    'anon cannot list the configuration');
RESET ROLE;
ROLLBACK TO 
SELECT * FROM finish();
ROLLBACK;
