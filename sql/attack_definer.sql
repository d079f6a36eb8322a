-- attack_definer: no SECURITY DEFINER function of the extension ever runs the
-- caller's code.  A SQL login that is a member of anon, authenticated and
-- service_role (PostgREST's authenticator, the sidecar's role) fills its
-- temporary schema with traps: for every table, view and type name of the
-- extension a pg_temp view of the same shape whose rows and INSTEAD OF
-- triggers call the attacker's function, domains over uuid, text, jsonb ...
-- with a CHECK that calls it, and so on.  Then every definer function found
-- in pg_proc (so a new one is covered without editing this file) is called
-- as anon, authenticated, service_role and the login itself, with plausible
-- arguments and with NULLs, and the triggers are fired by ordinary writes.
-- The attacker's function counts its runs in a temporary sequence, which no
-- rollback undoes: the count must stay 0.  A deliberately careless definer
-- function (unqualified name) proves that the traps do spring.
\ir test/fixture.sql
-- This session's own names: pg_catalog first, pg_temp last, so the traps
-- below never catch the test itself.
SET search_path = pg_catalog, public, pg_temp;
BEGIN;
SELECT plan(11);

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agentmarket_attack_login') THEN
        CREATE ROLE agentmarket_attack_login LOGIN;
    END IF;
END
$roles$;
GRANT anon, authenticated, service_role TO agentmarket_attack_login;

------------------------------------------------------------------------------
-- The traps, made by the attacker
------------------------------------------------------------------------------
SET LOCAL ROLE agentmarket_attack_login;
CREATE SEQUENCE pg_temp.attack_ran;
GRANT ALL ON SEQUENCE pg_temp.attack_ran TO PUBLIC;
-- What the attacker wants to run with someone else's rights.
CREATE FUNCTION pg_temp.attack() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.nextval('pg_temp.attack_ran');
    RETURN true;
END
$$;
CREATE FUNCTION pg_temp.attack_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_temp.attack();
    RETURN NULL;
END
$$;

-- Every relation and type name of the extension's schemas, as a view of the
-- same columns that calls attack() for its row and for every write.
DO $traps$
DECLARE
    r record;
    cols text;
BEGIN
    FOR r IN
        SELECT DISTINCT ON (c.relname) c.oid, c.relname
          FROM pg_class c
         WHERE c.relnamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace,
                                  'agentmarket_analytics'::regnamespace)
           AND c.relkind IN ('r', 'v', 'p', 'c', 'm', 'f')
           AND c.relname NOT IN ('credit_state', 'agent_search_result')
         ORDER BY c.relname, c.oid
    LOOP
        -- Column types the attacker may name (others become text).
        SELECT string_agg(format('NULL::%s AS %I',
                                 CASE WHEN t.typnamespace = 'agentmarket_private'::regnamespace
                                      THEN 'text' ELSE format_type(a.atttypid, a.atttypmod) END,
                                 a.attname), ', ' ORDER BY a.attnum)
          INTO cols
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped;
        EXECUTE format('CREATE VIEW pg_temp.%I AS SELECT %s WHERE pg_temp.attack()',
                       r.relname, coalesce(cols, '1 AS x'));
        EXECUTE format('CREATE TRIGGER attack INSTEAD OF INSERT OR UPDATE OR DELETE ON pg_temp.%I '
                       'FOR EACH ROW EXECUTE FUNCTION pg_temp.attack_trigger()', r.relname);
        EXECUTE format('GRANT ALL ON pg_temp.%I TO PUBLIC', r.relname);
    END LOOP;
END
$traps$;
-- Types the attacker can wrap: a domain whose CHECK runs attack().
CREATE DOMAIN pg_temp.credit_state AS agentmarket.credit_state CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.agent_search_result AS agentmarket.agent_search_result CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.uuid AS pg_catalog.uuid CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.jsonb AS pg_catalog.jsonb CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.int4 AS pg_catalog.int4 CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.int8 AS pg_catalog.int8 CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.numeric AS pg_catalog.numeric CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.bool AS pg_catalog.bool CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.timestamptz AS pg_catalog.timestamptz CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.interval AS pg_catalog.interval CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.tsvector AS pg_catalog.tsvector CHECK (pg_temp.attack());
CREATE DOMAIN pg_temp.regconfig AS pg_catalog.regconfig CHECK (pg_temp.attack());
RESET ROLE;

-- How often the attacker's code ran so far.
CREATE FUNCTION pg_temp.attack_runs() RETURNS bigint
LANGUAGE sql AS $$ SELECT coalesce(pg_catalog.pg_sequence_last_value('pg_temp.attack_ran'::regclass), 0) $$;

------------------------------------------------------------------------------
-- The control: a careless definer function is caught
------------------------------------------------------------------------------
CREATE FUNCTION public.attack_careless_definer() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN (SELECT count(*) FROM jobs); END $$;
GRANT EXECUTE ON FUNCTION public.attack_careless_definer() TO authenticated;
SELECT pg_temp.attack_runs() AS before_control \gset
SAVEPOINT control;
SET LOCAL ROLE authenticated;
SELECT public.attack_careless_definer() IS NOT NULL AS called;
ROLLBACK TO SAVEPOINT control;
SELECT cmp_ok(pg_temp.attack_runs(), '>', :before_control::bigint,
              'control: an unqualified table name in a definer function runs the caller''s trap');
DROP FUNCTION public.attack_careless_definer();

------------------------------------------------------------------------------
-- A fixture for plausible arguments, written after the traps exist (its
-- triggers are definer functions too)
------------------------------------------------------------------------------
SELECT pg_temp.attack_runs() AS before_fixture \gset
CREATE TEMP TABLE attack_ids (name text PRIMARY KEY, id uuid NOT NULL);
INSERT INTO attack_ids VALUES
  ('user', '00000000-0000-4000-8000-0000a77ac001'), ('creator', '00000000-0000-4000-8000-0000a77ac002'),
  ('admin', '00000000-0000-4000-8000-0000a77ac003'), ('agent', '00000000-0000-4000-8000-0000a77aa001'),
  ('version', '00000000-0000-4000-8000-0000a77aa002'), ('instance', '00000000-0000-4000-8000-0000a77aa003'),
  ('session', '00000000-0000-4000-8000-0000a77aa004'), ('secret', '00000000-0000-4000-8000-0000a77aa005');
INSERT INTO agentmarket.users (id, email, display_name, role) VALUES
  ('00000000-0000-4000-8000-0000a77ac001', 'user@attack.test', 'User', 'user'),
  ('00000000-0000-4000-8000-0000a77ac002', 'creator@attack.test', 'Creator', 'creator'),
  ('00000000-0000-4000-8000-0000a77ac003', 'admin@attack.test', 'Admin', 'admin');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category,
                                credits_per_session, github_repo_url, status, published_at, supported_relays) VALUES
  ('00000000-0000-4000-8000-0000a77aa001', '00000000-0000-4000-8000-0000a77ac002', 'attack-agent', 'Attack agent',
   'Attacks', 'An agent.', 'research', 10, 'https://github.com/c/attack', 'published', now(), '{telegram}');
INSERT INTO agentmarket.agent_versions (id, agent_id, version, status, is_current, published_at, docker_image, openclaw_version)
VALUES ('00000000-0000-4000-8000-0000a77aa002', '00000000-0000-4000-8000-0000a77aa001', '1.0.0', 'published', true,
        now(), 'registry.fly.io/attack:1', '2026.1.1');
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, agent_version_id, fly_app_name, fly_machine_id, status)
VALUES ('00000000-0000-4000-8000-0000a77aa003', '00000000-0000-4000-8000-0000a77ac001',
        '00000000-0000-4000-8000-0000a77aa001', '00000000-0000-4000-8000-0000a77aa002',
        agentmarket_private.fly_app_name('00000000-0000-4000-8000-0000a77aa003'), 'm0123456789abc', 'running');
INSERT INTO agentmarket.sessions (id, instance_id, user_id)
VALUES ('00000000-0000-4000-8000-0000a77aa004', '00000000-0000-4000-8000-0000a77aa003', '00000000-0000-4000-8000-0000a77ac001');
SELECT (agentmarket.grant_credits('00000000-0000-4000-8000-0000a77ac001', 500, 'topup', 'topup_purchase')).topup_credits AS granted;
INSERT INTO attack_ids
SELECT 'hold', agentmarket.reserve_credits('00000000-0000-4000-8000-0000a77ac001', 5);
INSERT INTO agentmarket_private.secrets (id, name, secret, key_id)
SELECT '00000000-0000-4000-8000-0000a77aa005', 'attack-ssh',
       agentmarket_private.pgp_armor(agentmarket_private.pgp_sym_encrypt('key', k.key, '')),
       agentmarket_private.secret_key_id(k.key)
  FROM (SELECT agentmarket_private.secret_key() AS key) k;
INSERT INTO agentmarket.ssh_configs (instance_id, host, username, host_key_fingerprint, private_key_secret_id)
VALUES ('00000000-0000-4000-8000-0000a77aa003', 'h.internal', 'agent', 'SHA256:' || repeat('C', 43),
        '00000000-0000-4000-8000-0000a77aa005');
CREATE TEMP TABLE attack_jobs AS
SELECT agentmarket_private.enqueue_instance_job('00000000-0000-4000-8000-0000a77aa003', 'fly.suspend_machine') AS id;
SELECT is(pg_temp.attack_runs(), :before_fixture::bigint,
          'writing the fixture (insert triggers, ledger and queue functions as the superuser) runs no trap');

------------------------------------------------------------------------------
-- Every definer function, as every role
------------------------------------------------------------------------------
-- A plausible value for an argument, from its name and type.
CREATE FUNCTION pg_temp.attack_argument(arg_name text, arg_type regtype) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN arg_type = 'uuid'::regtype THEN pg_catalog.quote_literal(coalesce(
            (SELECT i.id FROM pg_temp.attack_ids i WHERE i.name = CASE regexp_replace(coalesce(arg_name, ''), '^p_', '')
                WHEN 'instance_id' THEN 'instance' WHEN 'agent_id' THEN 'agent' WHEN 'session_id' THEN 'session'
                WHEN 'hold_id' THEN 'hold' WHEN 'version_id' THEN 'version' WHEN 'agent_version_id' THEN 'version'
                WHEN 'creator_id' THEN 'creator' WHEN 'team_id' THEN 'none' ELSE 'user' END),
            '00000000-0000-4000-8000-0000a77a0000')) || '::pg_catalog.uuid'
        WHEN arg_type IN ('integer'::regtype, 'smallint'::regtype) THEN CASE arg_name WHEN 'rating' THEN '5' ELSE '1' END
        WHEN arg_type = 'bigint'::regtype THEN (SELECT pg_catalog.max(j.id)::text FROM pg_temp.attack_jobs j)
        WHEN arg_type = 'numeric'::regtype THEN '0.01'
        WHEN arg_type = 'boolean'::regtype THEN 'false'
        WHEN arg_type = 'interval'::regtype THEN '''1 minute''::pg_catalog.interval'
        WHEN arg_type = 'timestamp with time zone'::regtype THEN 'pg_catalog.now()'
        WHEN arg_type = 'jsonb'::regtype THEN CASE arg_name WHEN 'skills' THEN '''[{"skill_slug": "x"}]''::pg_catalog.jsonb'
                                                       ELSE '''{}''::pg_catalog.jsonb' END
        WHEN arg_type = 'text[]'::regtype THEN '''{}''::pg_catalog.text[]'
        WHEN arg_type = 'text'::regtype THEN pg_catalog.quote_literal(CASE regexp_replace(coalesce(arg_name, ''), '^p_', '')
            WHEN 'kind' THEN 'fly.suspend_machine' WHEN 'pack' THEN 'topup_s' WHEN 'relay' THEN 'telegram'
            WHEN 'role' THEN 'user' WHEN 'key' THEN 'free_trial_credits' WHEN 'value' THEN '0'
            WHEN 'credit_type' THEN 'topup' WHEN 'type' THEN 'topup_purchase' WHEN 'version' THEN '9.9.9'
            WHEN 'region' THEN 'iad' WHEN 'worker' THEN 'attack-worker' WHEN 'query' THEN 'attack'
            WHEN 'sort' THEN 'relevance' WHEN 'payload' THEN '{}' WHEN 'signature_header' THEN 't=1,v1=00'
            WHEN 'content' THEN 'hello' WHEN 'reason' THEN 'because' ELSE 'attack' END) || '::pg_catalog.text'
        ELSE 'NULL'
    END
$$;

-- The functions that take agentmarket_definer's rights and a pinned path in
-- C rather than by SECURITY DEFINER (definer.c): called as the definers are.
CREATE FUNCTION pg_temp.c_definers() RETURNS oid[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY['agentmarket.search_agents(text,text,text[],text[],text[],text,text,integer,text)'::pg_catalog.regprocedure::pg_catalog.oid]
$$;

-- Every call: (role, function, argument set); outcome and whether a trap ran.
CREATE TEMP TABLE attack_calls (actor text, fn regprocedure, args text, outcome text, trapped boolean);
DO $calls$
DECLARE
    actor text;
    f record;
    arg_sets text[];
    call_args text;
    runs bigint;
    outcome text;
BEGIN
    FOREACH actor IN ARRAY ARRAY['anon', 'authenticated', 'creator', 'admin', 'service_role', 'agentmarket_attack_login'] LOOP
        FOR f IN
            SELECT p.oid, p.oid::regprocedure AS sig, p.pronargs,
                   coalesce(p.proargnames, '{}') AS names, p.proargtypes::regtype[] AS types
              FROM pg_proc p
             WHERE (p.prosecdef OR p.oid = ANY (pg_temp.c_definers()))
               AND p.pronamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
               AND p.prorettype <> 'trigger'::regtype
             ORDER BY p.oid::regprocedure::text
        LOOP
            SELECT ARRAY[string_agg(pg_temp.attack_argument(f.names[i], f.types[i - 1]), ', ' ORDER BY i),
                         string_agg('NULL', ', ')]
              INTO arg_sets
              FROM generate_series(1, f.pronargs) i;
            IF f.pronargs = 0 THEN
                arg_sets := ARRAY[''];
            END IF;
            FOREACH call_args IN ARRAY arg_sets LOOP
                runs := pg_temp.attack_runs();
                BEGIN
                    CASE actor
                    WHEN 'anon' THEN
                        PERFORM set_config('role', 'anon', true);
                        PERFORM set_config('request.jwt.claims', '{"role":"anon"}', true);
                    WHEN 'service_role' THEN
                        PERFORM set_config('role', 'service_role', true);
                        PERFORM set_config('request.jwt.claims', '{"role":"service_role"}', true);
                    WHEN 'agentmarket_attack_login' THEN
                        PERFORM set_config('role', 'agentmarket_attack_login', true);
                        PERFORM set_config('request.jwt.claims',
                            '{"sub":"00000000-0000-4000-8000-0000a77ac001","role":"authenticated"}', true);
                    ELSE
                        PERFORM set_config('request.jwt.claims', json_build_object('sub',
                            (SELECT i.id FROM pg_temp.attack_ids i
                              WHERE i.name = CASE actor WHEN 'authenticated' THEN 'user' ELSE actor END),
                            'role', 'authenticated')::text, true);
                        PERFORM set_config('role', 'authenticated', true);
                    END CASE;
                    EXECUTE format('SELECT count(*) FROM %s(%s)', f.oid::regproc, call_args);
                    RAISE EXCEPTION USING ERRCODE = 'ZZ000', MESSAGE = 'returned';
                EXCEPTION
                    WHEN SQLSTATE 'ZZ000' THEN outcome := 'returned';
                    WHEN OTHERS THEN outcome := SQLSTATE;
                END;
                INSERT INTO pg_temp.attack_calls
                VALUES (actor, f.sig, call_args, outcome, pg_temp.attack_runs() > runs);
            END LOOP;
        END LOOP;
    END LOOP;
END
$calls$;

SELECT is(ARRAY(SELECT DISTINCT fn::text FROM pg_temp.attack_calls WHERE trapped ORDER BY 1), '{}'::text[],
          'no definer function runs the caller''s code, as any role, with any argument set');
SELECT is((SELECT count(DISTINCT fn) FROM pg_temp.attack_calls),
          (SELECT count(*) FROM pg_proc p
            WHERE (p.prosecdef OR p.oid = ANY (pg_temp.c_definers())) AND p.prorettype <> 'trigger'::regtype
              AND p.pronamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)),
          'every definer function of pg_proc was called, and search_agents (definer rights taken in C)');
-- The calls went deep, not only to the EXECUTE check: as service_role most
-- functions ran to their end with the plausible arguments.
SELECT cmp_ok((SELECT count(DISTINCT fn) FROM pg_temp.attack_calls
                WHERE actor = 'service_role' AND outcome = 'returned' AND args <> '' AND args !~ '^NULL'),
              '>=', 15::bigint, 'as service_role, most definer functions ran to their end');
SELECT cmp_ok((SELECT count(DISTINCT fn) FROM pg_temp.attack_calls
                WHERE actor IN ('authenticated', 'creator', 'admin') AND outcome = 'returned'),
              '>=', 10::bigint, 'as authenticated users, the client functions ran to their end');

------------------------------------------------------------------------------
-- The trigger functions, fired by the writes clients and the platform make
------------------------------------------------------------------------------
SELECT pg_temp.attack_runs() AS before_triggers \gset
SAVEPOINT writes;
-- A creator's PATCH of their listing (search triggers).
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-0000a77ac002","role":"authenticated"}', true) IS NOT NULL AS claims;
UPDATE agentmarket.agents SET tagline = 'Attacks better', tags = '{x}' WHERE id = '00000000-0000-4000-8000-0000a77aa001';
-- A hirer's review (review statistics trigger).
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-0000a77ac001","role":"authenticated"}', true) IS NOT NULL AS claims;
INSERT INTO agentmarket.agent_reviews (agent_id, user_id, rating)
VALUES ('00000000-0000-4000-8000-0000a77aa001', '00000000-0000-4000-8000-0000a77ac001', 4);
-- The platform: a new user (free trial), a deleted SSH config (its secret).
SET LOCAL ROLE service_role;
INSERT INTO agentmarket.users (email) VALUES ('new@attack.test');
DELETE FROM agentmarket.ssh_configs WHERE instance_id = '00000000-0000-4000-8000-0000a77aa003';
SET LOCAL ROLE agentmarket_attack_login;
UPDATE agentmarket.agents SET total_hires = total_hires + 1 WHERE id = '00000000-0000-4000-8000-0000a77aa001';
RESET ROLE;
SELECT is((SELECT count(*) FROM agentmarket_private.secrets WHERE id = '00000000-0000-4000-8000-0000a77aa005'), 0::bigint,
          'the writes ran their triggers (the SSH secret went with its config)');
ROLLBACK TO SAVEPOINT writes;
SELECT is(pg_temp.attack_runs(), :before_triggers::bigint,
          'the definer triggers (search, reviews, free trial, SSH secrets) run no trap');

------------------------------------------------------------------------------
-- Who the definer functions run as
------------------------------------------------------------------------------
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                   WHERE p.prosecdef
                     AND p.pronamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
                     AND p.proowner <> 'agentmarket_definer'::regrole$$,
                'every definer function is owned by agentmarket_definer, not by the installing superuser');
SELECT is((SELECT format('super %s, login %s, bypassrls %s', rolsuper, rolcanlogin, rolbypassrls)
             FROM pg_roles WHERE rolname = 'agentmarket_definer'),
          'super f, login f, bypassrls t', 'agentmarket_definer is no superuser and cannot log in');
CREATE FUNCTION pg_temp.as_definer_role(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', 'agentmarket_definer', true);
    EXECUTE stmt;
    RETURN 'done';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;
SELECT is(pg_temp.as_definer_role($$SELECT pg_read_file('/etc/hostname')$$), '42501',
          'a slip in a definer function cannot read a server file');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
