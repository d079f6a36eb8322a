-- footer.sql: the house rules, applied once to everything installed before
-- it.  Last in the install order (SQL_PART_ORDER), so no capability part
-- repeats them:
--
--   * no function of the extension is executable by PUBLIC (PostgreSQL
--     creates every function executable by PUBLIC, and per-schema default
--     privileges cannot take that away): a capability grants EXECUTE
--     explicitly to the roles that call it, and to no one else;
--   * row-level security is on for every table of the exposed schema
--     agentmarket, and for every table that has a policy (a policy on a table
--     without RLS is silently ignored);
--   * every table and sequence of the extension is registered with
--     pg_extension_config_dump, or pg_dump silently drops its rows.  A table
--     whose rows are part of the extension's code registers with the filter
--     'WHERE false': dumped without rows, recreated by CREATE EXTENSION;
--   * no table, view or sequence of the extension grants anything to PUBLIC;
--   * SECURITY DEFINER functions run as agentmarket_definer, not as the
--     superuser that installed the extension.
--
-- A rule that cannot be applied (an unregistered table, a table with
-- policies but no RLS) stops the install with 55000 and names the objects.
-- The built upgrade scripts contain this part too (Makefile: every part of
-- the new version, then the carry), so an upgrade ends under the same rules;
-- a hand-written step that adds objects after it calls
-- agentmarket_private.apply_house_rules() again.

------------------------------------------------------------------------------
-- agentmarket_definer: definer functions run as this role (as pg_cron's jobs
-- do not run as a superuser): NOLOGIN, no superuser, BYPASSRLS, with exactly
-- the privileges the extension's own objects need.  A future slip in a
-- definer function can then reach the extension's data, but not the server
-- (no file access, COPY PROGRAM, untrusted languages or other databases'
-- objects).  Cluster-wide like the PostgREST roles: created when missing,
-- left in place by DROP EXTENSION.  attack_definer checks that every definer
-- function is owned by it.
------------------------------------------------------------------------------
DO $definer$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'agentmarket_definer') THEN
        CREATE ROLE agentmarket_definer NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
END
$definer$;

-- Applies the house rules above to every object of the extension; raises
-- 55000 naming what breaks a rule it cannot apply itself.
CREATE FUNCTION agentmarket_private.apply_house_rules()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'agentmarket');
    f regprocedure;
    t regclass;
    r record;
    no_rls text[] := '{}';
    not_dumped text[] := '{}';
    to_public text[] := '{}';
BEGIN
    -- EXECUTE for nobody but the roles granted it explicitly.
    FOR f IN SELECT d.objid FROM pg_catalog.pg_depend d
              WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::regclass
                AND d.refobjid OPERATOR(pg_catalog.=) ext AND d.deptype OPERATOR(pg_catalog.=) 'e'
                AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::regclass
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', f);
    END LOOP;

    -- RLS on every table of the exposed schema.
    FOR t IN SELECT c.oid FROM pg_catalog.pg_class c
              WHERE c.relnamespace OPERATOR(pg_catalog.=) 'agentmarket'::regnamespace
                AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
    END LOOP;

    -- The extension's own relations: those that are its members.
    FOR r IN SELECT c.oid::regclass AS rel, c.relkind, c.relrowsecurity,
                    c.oid OPERATOR(pg_catalog.=) ANY (e.extconfig) AS dumped,
                    EXISTS (SELECT FROM pg_catalog.pg_policy p WHERE p.polrelid OPERATOR(pg_catalog.=) c.oid) AS has_policy,
                    EXISTS (SELECT FROM pg_catalog.aclexplode(c.relacl) a WHERE a.grantee OPERATOR(pg_catalog.=) 0) AS public_grant
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
                                          AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.objsubid OPERATOR(pg_catalog.=) 0
                                          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::regclass
                                          AND d.deptype OPERATOR(pg_catalog.=) 'e'
               JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
              WHERE e.oid OPERATOR(pg_catalog.=) ext AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
              ORDER BY c.oid::regclass::text
    LOOP
        IF r.has_policy AND NOT r.relrowsecurity THEN
            no_rls := no_rls || r.rel::text;
        END IF;
        IF r.relkind IN ('r', 'p', 'S') AND NOT r.dumped THEN
            not_dumped := not_dumped || r.rel::text;
        END IF;
        IF r.public_grant THEN
            to_public := to_public || r.rel::text;
        END IF;
    END LOOP;
    IF pg_catalog.cardinality(no_rls) OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'tables with policies but without row-level security: %', pg_catalog.array_to_string(no_rls, ', ')
            USING ERRCODE = '55000',
                  DETAIL = 'A policy on a table without row-level security is never applied.',
                  HINT = 'ALTER TABLE ... ENABLE ROW LEVEL SECURITY in the part that creates the table.';
    END IF;
    IF pg_catalog.cardinality(not_dumped) OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'tables or sequences not registered with pg_extension_config_dump: %', pg_catalog.array_to_string(not_dumped, ', ')
            USING ERRCODE = '55000',
                  DETAIL = 'pg_dump drops the rows of an extension table that is not registered, and does not keep an unregistered sequence''s position.',
                  HINT = 'SELECT pg_catalog.pg_extension_config_dump(''schema.name'', '''') in the part that creates it; a table whose rows are part of the extension''s code registers with ''WHERE false''.';
    END IF;
    IF pg_catalog.cardinality(to_public) OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'relations that grant to PUBLIC: %', pg_catalog.array_to_string(to_public, ', ')
            USING ERRCODE = '55000',
                  HINT = 'Grant to the roles that need it (anon, authenticated, service_role, agentmarket_analyst) instead.';
    END IF;

    -- Definer functions run as agentmarket_definer, which needs the
    -- extension's objects and nothing else.
    GRANT USAGE ON SCHEMA agentmarket, agentmarket_private TO agentmarket_definer;
    GRANT ALL ON ALL TABLES IN SCHEMA agentmarket, agentmarket_private TO agentmarket_definer;
    GRANT ALL ON ALL SEQUENCES IN SCHEMA agentmarket, agentmarket_private TO agentmarket_definer;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA agentmarket, agentmarket_private TO agentmarket_definer;
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.prosecdef
                AND p.pronamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
                AND p.proowner OPERATOR(pg_catalog.<>) 'agentmarket_definer'::regrole
    LOOP
        EXECUTE pg_catalog.format('ALTER ROUTINE %s OWNER TO agentmarket_definer', f);
    END LOOP;
END
$$;
COMMENT ON FUNCTION agentmarket_private.apply_house_rules() IS
    'The house rules, applied to every object of the extension: EXECUTE revoked from PUBLIC, RLS on every table of agentmarket, definer functions owned by agentmarket_definer; 55000 when a table has policies but no RLS, a table or sequence is not registered for pg_dump, or a relation grants to PUBLIC. Run last by the install script and by every upgrade script.';

SELECT agentmarket_private.apply_house_rules();
