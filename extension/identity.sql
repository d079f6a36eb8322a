-- identity.sql: who is calling.  PostgREST runs each request as anon,
-- authenticated or service_role with the JWT claims in request.jwt.claims;
-- these read them exactly as Supabase's auth.uid() does.

CREATE FUNCTION agentmarket.current_user_id()
RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    -- One qualified expression, no SET clause: the planner inlines it, so a
    -- policy's (SELECT agentmarket.current_user_id()) costs an expression,
    -- not a SQL function call.  CASE, not NULLIF: NULLIF cannot name its
    -- operator's schema.  An empty sub is no user too (auth.uid() would fail
    -- to cast it).
    SELECT CASE
        WHEN pg_catalog.current_setting('request.jwt.claim.sub', true) OPERATOR(pg_catalog.<>) ''
        THEN pg_catalog.current_setting('request.jwt.claim.sub', true)::pg_catalog.uuid
        WHEN pg_catalog.current_setting('request.jwt.claims', true) OPERATOR(pg_catalog.<>) ''
        THEN CASE
            WHEN (pg_catalog.current_setting('request.jwt.claims', true)::pg_catalog.jsonb
                  OPERATOR(pg_catalog.->>) 'sub') OPERATOR(pg_catalog.<>) ''
            THEN (pg_catalog.current_setting('request.jwt.claims', true)::pg_catalog.jsonb
                  OPERATOR(pg_catalog.->>) 'sub')::pg_catalog.uuid
        END
    END
$$;
COMMENT ON FUNCTION agentmarket.current_user_id() IS
    'The caller''s user id: the sub claim of the PostgREST JWT (legacy request.jwt.claim.sub first), NULL without one. Same semantics as Supabase auth.uid().';
GRANT EXECUTE ON FUNCTION agentmarket.current_user_id() TO anon, authenticated, service_role;

CREATE FUNCTION agentmarket.current_user_is_admin()
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(
        (SELECT u.role OPERATOR(pg_catalog.=) 'admin'
           FROM agentmarket.users u
          WHERE u.id OPERATOR(pg_catalog.=) agentmarket.current_user_id()),
        false)
$$;
COMMENT ON FUNCTION agentmarket.current_user_is_admin() IS
    'True when the caller''s users row has role admin.';
GRANT EXECUTE ON FUNCTION agentmarket.current_user_is_admin() TO anon, authenticated, service_role;

-- True when the calling role (the one PostgREST switched to, or the login
-- role) acts as service_role; SECURITY DEFINER does not change the role GUC.
-- C (agentmarket.c), the one implementation the C paths call directly too:
-- a SQL function with SET was parsed and planned again on every call.
CREATE FUNCTION agentmarket_private.caller_is_service()
RETURNS boolean
AS 'MODULE_PATHNAME', 'caller_is_service'
LANGUAGE C STABLE;
COMMENT ON FUNCTION agentmarket_private.caller_is_service() IS
    'True when the caller''s role is (a member of) service_role or a superuser.';
