-- security_identity: agentmarket.current_user_id() reads the caller exactly
-- as Supabase's auth.uid() does (legacy request.jwt.claim.sub first, then the
-- sub of request.jwt.claims; empty is no user; no JWT is no user), and
-- agentmarket.current_user_is_admin() says whether that user is an admin.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(24);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('00000000-0000-4000-8000-00000051de01', 'identity-user@example.test', 'user'),
  ('00000000-0000-4000-8000-00000051de02', 'identity-admin@example.test', 'admin');

-- A fresh session has never seen a JWT: both settings are missing.
SELECT is(agentmarket.current_user_id(), NULL, 'no JWT at all: no user');
SELECT is(agentmarket.current_user_is_admin(), false, 'no JWT at all: not an admin');

SELECT set_config('request.jwt.claims', '', true);
SELECT is(agentmarket.current_user_id(), NULL, 'empty claims: no user');

SELECT set_config('request.jwt.claims', '{"role":"anon"}', true);
SELECT is(agentmarket.current_user_id(), NULL, 'an anon JWT without sub: no user');

SELECT set_config('request.jwt.claims', '{"sub":"","role":"authenticated"}', true);
SELECT is(agentmarket.current_user_id(), NULL, 'an empty sub: no user');

SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000051de01","role":"authenticated"}', true);
SELECT is(agentmarket.current_user_id(), '00000000-0000-4000-8000-00000051de01'::uuid,
          'the sub of request.jwt.claims is the user');
SELECT is(agentmarket.current_user_is_admin(), false, 'a user whose role is user is not an admin');

SELECT set_config('request.jwt.claim.sub', '00000000-0000-4000-8000-00000051de02', true);
SELECT is(agentmarket.current_user_id(), '00000000-0000-4000-8000-00000051de02'::uuid,
          'the legacy request.jwt.claim.sub comes first');
SELECT is(agentmarket.current_user_is_admin(), true, 'a user whose role is admin is an admin');

SELECT set_config('request.jwt.claim.sub', '', true);
SELECT is(agentmarket.current_user_id(), '00000000-0000-4000-8000-00000051de01'::uuid,
          'an empty legacy sub falls through to request.jwt.claims');

SELECT set_config('request.jwt.claims', '', true);
SELECT set_config('request.jwt.claim.sub', '00000000-0000-4000-8000-00000051de02', true);
SELECT is(agentmarket.current_user_id(), '00000000-0000-4000-8000-00000051de02'::uuid,
          'the legacy sub alone is enough');
SELECT set_config('request.jwt.claim.sub', '', true);
SELECT is(agentmarket.current_user_id(), NULL, 'both settings empty (after an earlier request): no user');

SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-0000005100ff","role":"authenticated"}', true);
SELECT is(agentmarket.current_user_is_admin(), false, 'a sub that is no user is not an admin');

SELECT set_config('request.jwt.claims', '{"sub":"not-a-uuid"}', true);
SELECT throws_ok('SELECT agentmarket.current_user_id()', '22P02', NULL,
                 'a sub that is not a uuid is refused, as auth.uid() refuses it');

-- As PostgREST calls them: in the request's role.
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000051de02","role":"authenticated"}', true);
SET LOCAL ROLE authenticated;
SELECT is(agentmarket.current_user_id(), '00000000-0000-4000-8000-00000051de02'::uuid,
          'authenticated reads its own id');
SELECT is(agentmarket.current_user_is_admin(), true,
          'authenticated learns it is an admin without reading users directly');
RESET ROLE;
SET LOCAL ROLE anon;
SELECT set_config('request.jwt.claims', '{"role":"anon"}', true);
SELECT is(agentmarket.current_user_id(), NULL, 'anon may call current_user_id and is no user');
SELECT is(agentmarket.current_user_is_admin(), false, 'anon may call current_user_is_admin and is not an admin');
RESET ROLE;

SELECT is((SELECT array_agg(r ORDER BY r) FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) r
            WHERE has_function_privilege(r, 'agentmarket.current_user_id()', 'EXECUTE')),
          ARRAY['anon', 'authenticated', 'service_role'], 'current_user_id is callable by the three PostgREST roles');
SELECT is((SELECT array_agg(r ORDER BY r) FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) r
            WHERE has_function_privilege(r, 'agentmarket.current_user_is_admin()', 'EXECUTE')),
          ARRAY['anon', 'authenticated', 'service_role'], 'current_user_is_admin is callable by the three PostgREST roles');
SELECT is((SELECT provolatile FROM pg_proc WHERE oid = 'agentmarket.current_user_id()'::regprocedure), 's',
          'current_user_id is STABLE (a policy evaluates it once per statement)');
SELECT is((SELECT provolatile FROM pg_proc WHERE oid = 'agentmarket.current_user_is_admin()'::regprocedure), 's',
          'current_user_is_admin is STABLE');

SELECT ok((SELECT l.lanname = 'sql' AND NOT p.prosecdef AND p.proconfig IS NULL
             FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.oid = 'agentmarket.current_user_id()'::regprocedure),
          'current_user_id is plain SQL without SET or SECURITY DEFINER, so the planner inlines it');

-- Policies wrap them in (SELECT ...): one InitPlan per statement, not a call per row.
SELECT is_empty($$
    SELECT format('%s.%s', tablename, policyname) FROM pg_policies
     WHERE schemaname = 'agentmarket'
       AND regexp_replace(coalesce(qual, '') || ' ' || coalesce(with_check, ''),
                          '\(\s*SELECT agentmarket\.current_user_(id|is_admin)\(\) AS current_user_(id|is_admin)\)', '', 'g')
           ~ 'current_user_(id|is_admin)\(\)'
$$, 'no policy calls an identity function per row');

SELECT * FROM finish();
ROLLBACK;
