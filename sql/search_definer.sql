-- search_definer: search_agents is the one client function that takes
-- agentmarket_definer's rights and its pinned search path in C (definer.c)
-- rather than by SECURITY DEFINER and a SET clause (on PostgreSQL 15 the
-- clause costs ~40 µs a call on cold caches, as much as a rare word's whole
-- search).  What the clause guaranteed is checked here of the C way: it runs
-- as the definer (anon, without USAGE on the private schema, gets results);
-- none of the caller's names are seen (a hostile schema first in the
-- caller's search_path, shadowing operators, functions and relations, and
-- pg_temp traps: none runs, the answer is unchanged); and the caller gets
-- back its user, search path and schemas after a normal call, after an
-- error caught by a PL/pgSQL handler, and after a rolled-back savepoint.
\ir test/fixture.sql
SET search_path = pg_catalog, public, pg_temp;
BEGIN;
SELECT plan(15);

CREATE TEMP VIEW sig (f) AS
    VALUES ('agentmarket.search_agents(text,text,text[],text[],text[],text,text,integer,text)'::regprocedure);

SELECT is((SELECT format('%s definer=%s config=%s', l.lanname, p.prosecdef, p.proconfig)
             FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = (SELECT f FROM sig)),
          'c definer=f config=',
          'search_agents is C, takes the definer''s rights in C: no SECURITY DEFINER, no SET clause');
SELECT is((SELECT string_agg(r, ',' ORDER BY r) FROM unnest(ARRAY['anon', 'authenticated', 'service_role',
                                                                  'agentmarket_analyst']) r
            WHERE has_function_privilege(r, (SELECT f FROM sig), 'EXECUTE')),
          'anon,authenticated,service_role', 'search_agents: EXECUTE for anon, authenticated and service_role only');

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('8d8d8d8d-0000-4000-8000-000000000001', 'maker@sd.test', 'creator');
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, github_repo_url,
                                total_hires, published_at)
SELECT 'sd-' || i, '8d8d8d8d-0000-4000-8000-000000000001', 'Quillmark Ledger ' || i, 'Bookkeeping',
       'Reconciles your ledger every night.', 'finance', CASE WHEN i <= 8 THEN 'published' ELSE 'draft' END,
       'https://g/sd' || i, i, '2026-01-01'::timestamptz + i * interval '1 day'
  FROM generate_series(1, 10) i;

-- The answer as the installing superuser, the reference for the calls below.
CREATE TEMP TABLE reference AS
    SELECT array_agg(s.slug ORDER BY s.slug) AS slugs FROM agentmarket.search_agents('quillmark ledger') s;
GRANT SELECT ON pg_temp.reference TO PUBLIC;
SELECT is((SELECT cardinality(slugs) FROM reference), 8, 'the reference search finds the 8 published listings');

------------------------------------------------------------------------------
-- The definer's rights
------------------------------------------------------------------------------
SELECT ok(NOT has_schema_privilege('anon', 'agentmarket_private', 'USAGE')
          AND NOT has_table_privilege('anon', 'agentmarket_private.search_vocabulary', 'SELECT'),
          'anon may not reach the private schema or the vocabulary');
SELECT pg_temp.act('anon');
SELECT is((SELECT array_agg(s.slug ORDER BY s.slug) FROM agentmarket.search_agents('quillmark ledger') s),
          (SELECT slugs FROM pg_temp.reference),
          'anon searches: the search reads the private vocabulary as agentmarket_definer, drafts stay hidden');
SELECT is(current_user::text, 'anon', 'and the caller is anon again afterwards');
RESET role;

------------------------------------------------------------------------------
-- The caller's names are never seen
------------------------------------------------------------------------------
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agentmarket_search_attacker') THEN
        CREATE ROLE agentmarket_search_attacker LOGIN;
    END IF;
END
$roles$;
GRANT anon, authenticated TO agentmarket_search_attacker;
CREATE SCHEMA search_evil AUTHORIZATION agentmarket_search_attacker;
SET LOCAL ROLE agentmarket_search_attacker;
CREATE SEQUENCE search_evil.ran;
GRANT USAGE ON SCHEMA search_evil TO PUBLIC;
GRANT ALL ON SEQUENCE search_evil.ran TO PUBLIC;
CREATE FUNCTION search_evil.trap() RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_catalog.nextval('search_evil.ran'); RETURN true; END $$;
-- Operators and functions the search's statements use, shadowed for the
-- types they are used with (first in the caller's path, they would win over
-- pg_catalog's for unqualified names).
CREATE FUNCTION search_evil.eq_text(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT search_evil.trap() $$;
CREATE OPERATOR search_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = search_evil.eq_text);
CREATE FUNCTION search_evil.match(tsvector, tsquery) RETURNS boolean LANGUAGE sql AS $$ SELECT search_evil.trap() $$;
CREATE OPERATOR search_evil.@@ (LEFTARG = tsvector, RIGHTARG = tsquery, FUNCTION = search_evil.match);
CREATE FUNCTION search_evil.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN search_evil.trap() THEN $1 END $$;
CREATE FUNCTION search_evil.to_tsquery(regconfig, text) RETURNS tsquery LANGUAGE sql
    AS $$ SELECT CASE WHEN search_evil.trap() THEN NULL::tsquery END $$;
CREATE FUNCTION search_evil.similarity(text, text) RETURNS real LANGUAGE sql AS $$ SELECT CASE WHEN search_evil.trap() THEN 1 END::real $$;
-- Relations of the same names as the extension's, in the hostile schema and in pg_temp.
DO $traps$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT c.relname FROM pg_class c
         WHERE c.relnamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
           AND c.relkind IN ('r', 'v', 'm', 'p')
    LOOP
        EXECUTE format('CREATE VIEW search_evil.%I AS SELECT 1 AS x WHERE search_evil.trap()', r.relname);
        EXECUTE format('CREATE TEMP VIEW %I AS SELECT 1 AS x WHERE search_evil.trap()', r.relname);
    END LOOP;
END
$traps$;
RESET role;
SELECT is((SELECT count(*) FROM pg_class WHERE relnamespace = 'search_evil'::regnamespace AND relkind = 'v'),
          (SELECT count(DISTINCT c.relname) FROM pg_class c
            WHERE c.relnamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
              AND c.relkind IN ('r', 'v', 'm', 'p')),
          'the hostile schema shadows every relation name of the extension');
-- The traps spring for names looked up through the hostile path: the
-- caller's own statements (not pgTAP's, which run under a plain path).
SET LOCAL search_path = search_evil, pg_catalog;
SELECT count(*) AS shadow_rows, ('a'::text = 'b'::text) AS shadow_eq FROM agents \gset
SET LOCAL search_path = pg_catalog, public, pg_temp;
SELECT ok(:shadow_rows = 1 AND :'shadow_eq'::boolean AND (SELECT last_value FROM search_evil.ran) >= 2,
          'through the hostile path, agents is the trap view and = the trap operator: both ran');
SELECT last_value AS ran_before FROM search_evil.ran \gset

-- The attacker (a member of anon and authenticated) searches under the hostile path.
SET LOCAL ROLE agentmarket_search_attacker;
SET LOCAL search_path = search_evil, pg_catalog;
SELECT set_config('request.jwt.claims', '{"role":"anon"}', true) IS NOT NULL AS claims \gset
CREATE TEMP TABLE attacker_pages AS
    SELECT 1 AS n, array_agg(s.slug ORDER BY s.slug) AS slugs FROM agentmarket.search_agents('quillmark ledger') s
    UNION ALL
    SELECT 2, array_agg(s.slug) FROM agentmarket.search_agents('quilmark ledg', category => 'finance',
                                                               sort => 'popular', page_size => 3) s;
RESET role;
SET LOCAL search_path = pg_catalog, public, pg_temp;
SELECT is((SELECT slugs FROM pg_temp.attacker_pages WHERE n = 1), (SELECT slugs FROM pg_temp.reference),
          'with the hostile schema first in its path, the attacker gets the same answer');
SELECT is((SELECT slugs FROM pg_temp.attacker_pages WHERE n = 2), ARRAY['sd-8', 'sd-7', 'sd-6'],
          'a typo, a prefix, a filter and a sort under the hostile path: the right page');
SELECT is((SELECT last_value FROM search_evil.ran), :ran_before::bigint,
          'none of the caller''s operators, functions, views or temporary views ran');

------------------------------------------------------------------------------
-- The caller's state is given back
------------------------------------------------------------------------------
SET LOCAL search_path = public, pg_catalog;
CREATE TEMP VIEW caller_state (state) AS
    SELECT format('user=%s session=%s path=%s schemas=%s', current_user, session_user,
                  current_setting('search_path'), current_schemas(true));
CREATE TEMP TABLE state_before AS SELECT state FROM pg_temp.caller_state;
SELECT count(*) AS n FROM agentmarket.search_agents('ledger') \gset
SELECT is((SELECT state FROM pg_temp.caller_state), (SELECT state FROM pg_temp.state_before),
          'after a call: the same user, search_path and schemas');
DO $$
BEGIN
    PERFORM count(*) FROM agentmarket.search_agents('ledger', sort => 'sideways');
EXCEPTION WHEN invalid_parameter_value THEN
    NULL;
END
$$;
SELECT is((SELECT state FROM pg_temp.caller_state), (SELECT state FROM pg_temp.state_before),
          'after a 22023 caught by a PL/pgSQL handler: the same user, search_path and schemas');
SAVEPOINT bad_cursor;
SELECT count(*) FROM agentmarket.search_agents('ledger', page_after => 'bm90IGEgY3Vyc29y');
ROLLBACK TO SAVEPOINT bad_cursor;
SELECT is((SELECT state FROM pg_temp.caller_state), (SELECT state FROM pg_temp.state_before),
          'after an error rolled back to a savepoint: the same user, search_path and schemas');
SELECT is(pg_temp.error_of($$SELECT count(*) FROM agentmarket.search_agents('ledger', page_size => 0)$$) ~ '^22023',
          true, 'a bad page size is 22023');

SELECT * FROM finish();
ROLLBACK;
