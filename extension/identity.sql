-- identity.sql: who is calling.  PostgREST runs each request as anon,
-- authenticated or service_role with the JWT claims in request.jwt.claims;
-- these read them exactly as Supabase's auth.uid() does.

CREATE FUNCTION agentmarket.current_user_id()
RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    -- NULLIF is syntax, not a function: it cannot be schema-qualified, hence
    -- the pinned search_path.  An empty sub is no user too (auth.uid() would
    -- fail to cast it).
    SELECT nullif(COALESCE(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
    ), '')::uuid
$$;
COMMENT ON FUNCTION agentmarket.current_user_id() IS
    'The caller''s user id: the sub claim of the PostgREST JWT (legacy request.jwt.claim.sub first), NULL without one. Same semantics as Supabase auth.uid().';
REVOKE ALL ON FUNCTION agentmarket.current_user_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.current_user_id() TO anon, authenticated, service_role;

CREATE FUNCTION agentmarket.current_user_is_admin()
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT COALESCE(
        (SELECT u.role OPERATOR(pg_catalog.=) 'admin'
           FROM agentmarket.users u
          WHERE u.id OPERATOR(pg_catalog.=) agentmarket.current_user_id()),
        false)
$$;
COMMENT ON FUNCTION agentmarket.current_user_is_admin() IS
    'True when the caller''s users row has role admin.';
REVOKE ALL ON FUNCTION agentmarket.current_user_is_admin() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.current_user_is_admin() TO anon, authenticated, service_role;
