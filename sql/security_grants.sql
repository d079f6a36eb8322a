-- security_grants: what each role may reach at all.  The checks are written
-- over the catalog, so a function or table added later that forgets its
-- REVOKE, its pinned search_path or its RLS is caught here.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(34);

CREATE TEMP VIEW am_schemas (nsp) AS
    VALUES ('agentmarket'::regnamespace), ('agentmarket_private'::regnamespace),
           ('agentmarket_analytics'::regnamespace);
CREATE TEMP VIEW am_functions AS
    SELECT p.oid, p.oid::regprocedure::text AS signature, p.pronamespace::regnamespace::text AS schema,
           p.prosecdef, p.proconfig,
           (SELECT string_agg(CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ','
                              ORDER BY a.grantee::regrole::text)
              FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
             WHERE a.privilege_type = 'EXECUTE') AS executors
      FROM pg_proc p WHERE p.pronamespace IN (SELECT nsp FROM am_schemas);
CREATE TEMP VIEW am_relations AS
    SELECT c.oid, c.oid::regclass::text AS name, c.relnamespace::regnamespace::text AS schema, c.relkind,
           c.relrowsecurity, coalesce(c.relacl, acldefault('r', c.relowner)) AS acl
      FROM pg_class c WHERE c.relnamespace IN (SELECT nsp FROM am_schemas)
       AND c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S');
CREATE TEMP VIEW client_roles (role) AS VALUES ('anon'), ('authenticated'), ('agentmarket_analyst');
CREATE TEMP VIEW seed_tables (tbl) AS
    SELECT unnest(ARRAY['users', 'projects', 'teams', 'agents', 'agent_instances', 'sessions', 'messages',
                        'credit_balances', 'credit_transactions', 'usage_events', 'creator_earnings',
                        'agent_reviews', 'relay_connections', 'agent_versions', 'agent_skills',
                        'team_agents', 'purchases', 'ssh_configs']);

-- Functions
SELECT ok((SELECT count(*) FROM am_functions) > 0, 'the function checks below see the extension''s functions');
SELECT is_empty($$ SELECT signature, executors FROM am_functions WHERE ',' || executors || ',' LIKE '%,PUBLIC,%' $$,
                'no function of agentmarket, agentmarket_private or agentmarket_analytics is executable by PUBLIC');
SELECT is_empty($$
    SELECT signature, proconfig FROM am_functions
     WHERE prosecdef
       AND NOT EXISTS (SELECT FROM unnest(proconfig) c
                        WHERE c LIKE 'search_path=%' AND c !~* '(public|\$user)' AND c <> 'search_path=""')
$$, 'every SECURITY DEFINER function pins a search_path without public or $user');
SELECT is_empty($$
    SELECT f.signature, r.role FROM am_functions f CROSS JOIN client_roles r
     WHERE f.schema = 'agentmarket_private' AND has_function_privilege(r.role, f.oid, 'EXECUTE')
$$, 'no function of agentmarket_private is executable by anon, authenticated or the analyst');
SELECT is((SELECT executors FROM am_functions WHERE oid = 'agentmarket.configure(text,text)'::regprocedure),
          -- The owner of definer functions is agentmarket_definer (footer.sql).
          (SELECT string_agg(r, ',' ORDER BY r) FROM unnest(ARRAY['agentmarket_definer', 'service_role']) r),
          'configure: its owner (agentmarket_definer) and service_role only');
SELECT is((SELECT executors FROM am_functions WHERE oid = 'agentmarket.configuration()'::regprocedure),
          (SELECT string_agg(r, ',' ORDER BY r) FROM unnest(ARRAY['agentmarket_definer', 'service_role']) r),
          'configuration: its owner (agentmarket_definer) and service_role only');
SELECT is((SELECT prosecdef FROM pg_proc WHERE oid = 'agentmarket_private.drop_referenced_secret()'::regprocedure), true,
          'the trigger that deletes an SSH key or relay token with its reference runs as the extension owner (its deleter has no access to secrets)');

-- Schemas
SELECT is_empty($$
    SELECT n.nspname, a.privilege_type FROM pg_namespace n, aclexplode(n.nspacl) a
     WHERE n.oid IN (SELECT nsp FROM am_schemas) AND a.grantee = 0
$$, 'no schema of the extension grants anything to PUBLIC');
SELECT is((SELECT array_agg(r ORDER BY r) FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'agentmarket_analyst']) r
            WHERE has_schema_privilege(r, 'agentmarket', 'USAGE')),
          ARRAY['anon', 'authenticated', 'service_role'], 'agentmarket is used by the three PostgREST roles');
SELECT is((SELECT array_agg(r ORDER BY r) FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'agentmarket_analyst']) r
            WHERE has_schema_privilege(r, 'agentmarket_private', 'USAGE')),
          ARRAY['service_role'], 'agentmarket_private: only service_role may use it (to call functions granted to it)');
SELECT is((SELECT array_agg(r ORDER BY r) FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'agentmarket_analyst']) r
            WHERE has_schema_privilege(r, 'agentmarket_analytics', 'USAGE')),
          ARRAY['agentmarket_analyst'], 'agentmarket_analytics: only the analyst');
SELECT is_empty($$
    SELECT n.nspname, r FROM pg_namespace n, unnest(ARRAY['anon', 'authenticated', 'service_role', 'agentmarket_analyst']) r
     WHERE n.oid IN (SELECT nsp FROM am_schemas) AND has_schema_privilege(r, n.oid, 'CREATE')
$$, 'no client role may create objects in the extension''s schemas');

-- Relations
SELECT is_empty($$
    SELECT name, a.privilege_type FROM am_relations, aclexplode(acl) a WHERE a.grantee = 0
$$, 'no table or view of the extension grants anything to PUBLIC');
SELECT is_empty($$ SELECT name FROM am_relations WHERE schema = 'agentmarket' AND relkind IN ('r', 'p') AND NOT relrowsecurity $$,
                'every table of agentmarket has row-level security enabled');
SELECT is_empty($$
    SELECT m.name, r.role, p FROM am_relations m CROSS JOIN client_roles r,
           unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
     WHERE m.schema = 'agentmarket_private' AND m.relkind <> 'S'
       AND (has_table_privilege(r.role, m.oid, p)
            OR (p IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') AND has_any_column_privilege(r.role, m.oid, p)))
$$, 'no table of agentmarket_private is reachable by anon, authenticated or the analyst');
SELECT is_empty($$
    SELECT m.name, a.privilege_type FROM am_relations m, aclexplode(m.acl) a
     WHERE m.schema = 'agentmarket_private' AND a.grantee = 'service_role'::regrole
       AND NOT (m.relkind = 'v' AND a.privilege_type = 'SELECT')
$$, 'service_role holds no privilege on private tables (only SELECT on operations views): it goes through functions');
SELECT is_empty($$
    SELECT m.name, r, p FROM am_relations m, unnest(ARRAY['anon', 'authenticated']) r,
           unnest(ARRAY['TRUNCATE', 'REFERENCES', 'TRIGGER']) p
     WHERE m.schema = 'agentmarket' AND has_table_privilege(r, m.oid, p)
$$, 'anon and authenticated have no TRUNCATE (it ignores RLS), REFERENCES or TRIGGER in agentmarket');
SELECT is_empty($$
    SELECT m.name, p FROM am_relations m, unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) p
     WHERE m.schema = 'agentmarket'
       AND (has_table_privilege('anon', m.oid, p)
            OR (p <> 'DELETE' AND has_any_column_privilege('anon', m.oid, p)))
$$, 'anon writes nothing in agentmarket');
SELECT is((SELECT array_agg(m.name ORDER BY m.name) FROM am_relations m
            WHERE m.schema = 'agentmarket' AND has_any_column_privilege('anon', m.oid, 'SELECT')
              AND m.name IN (SELECT 'agentmarket.' || tbl FROM seed_tables UNION ALL SELECT 'agentmarket.creator_profiles')),
          ARRAY['agentmarket.agent_reviews', 'agentmarket.agent_skills', 'agentmarket.agent_versions',
                'agentmarket.agents', 'agentmarket.creator_profiles'],
          'anon reads the marketplace only: agents, versions, skills, reviews, creator profiles');
SELECT is_empty($$
    SELECT t.tbl, p FROM seed_tables t, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
     WHERE NOT has_table_privilege('service_role', ('agentmarket.' || t.tbl)::regclass, p)
$$, 'service_role has every table privilege on the data model, as Supabase gives it');
SELECT is_empty($$
    SELECT t.tbl FROM seed_tables t
     WHERE NOT EXISTS (SELECT FROM pg_policies p
                        WHERE p.schemaname = 'agentmarket' AND p.tablename = t.tbl AND p.permissive = 'PERMISSIVE'
                          AND p.roles = '{service_role}' AND p.cmd = 'ALL' AND p.qual = 'true' AND p.with_check = 'true')
$$, 'service_role passes RLS on every table of the data model, by policy as well as by BYPASSRLS');
SELECT ok((SELECT rolbypassrls FROM pg_roles WHERE rolname = 'service_role'), 'service_role bypasses RLS');
SELECT is((SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns
            WHERE table_schema = 'agentmarket' AND table_name = 'creator_profiles'),
          ARRAY['id', 'display_name', 'avatar_url'], 'creator_profiles shows id, display name and avatar only');
SELECT is((SELECT array_agg(column_name::text ORDER BY column_name) FROM information_schema.column_privileges
            WHERE table_schema = 'agentmarket' AND table_name = 'relay_connections'
              AND grantee = 'authenticated' AND privilege_type = 'SELECT'),
          ARRAY['created_at', 'external_chat_id', 'external_user_id', 'id', 'instance_id', 'relay', 'status'],
          'authenticated selects every relay_connections column but config');

-- The analyst
SELECT is((SELECT rolcanlogin FROM pg_roles WHERE rolname = 'agentmarket_analyst'), false,
          'agentmarket_analyst exists and cannot log in (granted to people, not used directly)');
SELECT is_empty($$
    SELECT m.name FROM am_relations m
     WHERE m.schema = 'agentmarket_analytics' AND NOT has_table_privilege('agentmarket_analyst', m.oid, 'SELECT')
$$, 'the analyst reads every view of agentmarket_analytics');
SELECT is_empty($$
    SELECT m.name, p FROM am_relations m, unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
     WHERE m.schema = 'agentmarket_analytics' AND has_table_privilege('agentmarket_analyst', m.oid, p)
$$, 'the analyst writes nothing');
SELECT is_empty($$
    SELECT m.name FROM am_relations m
     WHERE m.schema IN ('agentmarket', 'agentmarket_private') AND has_any_column_privilege('agentmarket_analyst', m.oid, 'SELECT')
$$, 'the analyst reads no table directly');
SELECT is_empty($$
    SELECT table_name, column_name FROM information_schema.columns
     WHERE table_schema = 'agentmarket_analytics'
       AND column_name ~ '^(email|display_name|avatar_url|content|tool_use|config|secret|external_user_id|external_chat_id|description|changelog)$|^stripe_'
$$, 'no analytics view has an email, name, message or review text, tool payload, relay id, secret or Stripe id');

INSERT INTO agentmarket.users (id, email, role) VALUES ('00000000-0000-4000-8000-0000005a0001', 'analyst-fixture@example.test', 'creator');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category, credits_per_session, github_repo_url)
VALUES ('00000000-0000-4000-8000-0000005a0002', '00000000-0000-4000-8000-0000005a0001', 'analyst-fixture',
        'A', 't', 'd', 'research', 10, 'https://github.com/a/a');
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id)
VALUES ('00000000-0000-4000-8000-0000005a0003', '00000000-0000-4000-8000-0000005a0001',
        '00000000-0000-4000-8000-0000005a0002', 'am-a', 'm-a');
INSERT INTO agentmarket.sessions (id, instance_id, user_id)
VALUES ('00000000-0000-4000-8000-0000005a0004', '00000000-0000-4000-8000-0000005a0003', '00000000-0000-4000-8000-0000005a0001');
INSERT INTO agentmarket.messages (session_id, role, content, tool_use, tokens_used)
VALUES ('00000000-0000-4000-8000-0000005a0004', 'tool', 'secret words', '{"name": "web_search", "input": "private"}', 12);
INSERT INTO agentmarket.usage_events (user_id, instance_id, compute_seconds, input_tokens, output_tokens,
                                      credits_consumed, cost_usd, created_at)
VALUES ('00000000-0000-4000-8000-0000005a0001', '00000000-0000-4000-8000-0000005a0003', 60, 100, 50, 25, 0.004,
        '2026-03-01 23:30:00+00'),
       ('00000000-0000-4000-8000-0000005a0001', '00000000-0000-4000-8000-0000005a0003', 30, 10, 5, 5, 0.001,
        '2026-03-01 00:10:00+00');
SET LOCAL ROLE agentmarket_analyst;
SELECT is((SELECT format('%s %s %s %s %s %s %s', to_char(day, 'YYYY-MM-DD'), users, credits, compute_seconds, input_tokens, output_tokens, cost_usd)
             FROM agentmarket_analytics.agent_daily_usage WHERE agent_id = '00000000-0000-4000-8000-0000005a0002'),
          '2026-03-01 1 30 90 110 55 0.005000', 'agent_daily_usage sums one agent''s usage per UTC day');
SELECT is((SELECT format('%s %s %s %s', role, tool_name, tokens_used, content_chars) FROM agentmarket_analytics.messages
            WHERE session_id = '00000000-0000-4000-8000-0000005a0004'),
          'tool web_search 12 12', 'the analyst sees a message''s role, tool name, tokens and length, past RLS');
SELECT throws_ok('SELECT count(*) FROM agentmarket.messages', '42501', NULL, 'the analyst cannot read the messages table');
RESET ROLE;

-- DROP EXTENSION takes its objects and leaves the cluster-wide roles.
DROP EXTENSION agentmarket CASCADE;
SELECT is((SELECT array_agg(rolname::text ORDER BY rolname) FROM pg_roles
            WHERE rolname IN ('anon', 'authenticated', 'service_role', 'agentmarket_analyst')),
          ARRAY['agentmarket_analyst', 'anon', 'authenticated', 'service_role'],
          'DROP EXTENSION leaves the roles in place');
SELECT is((SELECT count(*)::int FROM pg_namespace WHERE nspname IN ('agentmarket_private', 'agentmarket_analytics')), 0,
          'DROP EXTENSION removes agentmarket_private and agentmarket_analytics');

SELECT * FROM finish();
ROLLBACK;
