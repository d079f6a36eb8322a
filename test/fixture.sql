\set ECHO none
-- test/fixture.sql: the preamble and helpers every pg_regress suite shares.
-- Each sql/<suite>.sql starts with
--     \ir test/fixture.sql
-- (pg_regress feeds a suite to psql on standard input, so the path is from
-- the repository root, where make runs), then sets its own search_path and
-- opens its transaction.  Echo is off while it runs, so no expected output
-- repeats it.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

-- Act as role r, with JWT sub claim sub (none when NULL), until the
-- transaction ends, as PostgREST does for a request.
CREATE FUNCTION pg_temp.act(r text, sub text DEFAULT NULL) RETURNS void LANGUAGE sql AS $$
    SELECT set_config('role', r, true),
           set_config('request.jwt.claims', COALESCE(json_build_object('sub', sub, 'role', r)::text, ''), true);
$$;

-- 'ok', or the error q raises: "SQLSTATE: message / detail".
CREATE FUNCTION pg_temp.error_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || SQLERRM || ' / ' || d;
END $$;

-- A request as PostgREST sends it, as user who: the statement's result as
-- text, or error:<SQLSTATE>.  The request's writes stay (no savepoint).
CREATE FUNCTION pg_temp.as_user(who uuid, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    PERFORM set_config('request.jwt.claims', json_build_object('sub', who, 'role', 'authenticated')::text, true);
    PERFORM set_config('role', 'authenticated', true);
    BEGIN
        EXECUTE stmt INTO res;
    EXCEPTION WHEN OTHERS THEN
        res := 'error:' || SQLSTATE;
    END;
    PERFORM set_config('role', 'none', true);
    RETURN coalesce(res, 'null');
END
$$;

-- How many rows of every table of the extension's schemas contain needle.
CREATE FUNCTION pg_temp.rows_containing(needle text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE t regclass; n bigint; total bigint := 0;
BEGIN
    FOR t IN SELECT c.oid FROM pg_class c
              WHERE c.relnamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
                AND c.relkind = 'r' LOOP
        EXECUTE format('SELECT count(*) FROM %s r WHERE strpos(r::text, $1) > 0', t) INTO n USING needle;
        total := total + n;
    END LOOP;
    RETURN total;
END $$;
\set ECHO all
