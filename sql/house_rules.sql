-- house_rules: the rules footer.sql applies once to everything the install
-- script made (agentmarket_private.apply_house_rules()): no function
-- executable by PUBLIC, RLS on every exposed table, every table and sequence
-- registered for pg_dump, nothing granted to PUBLIC, definer functions owned
-- by agentmarket_definer.  The second half adds objects that break a rule and
-- checks that applying the rules fixes them or stops with 55000.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(16);

CREATE TEMP VIEW am_members AS
    SELECT d.classid, d.objid FROM pg_depend d
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'agentmarket');

-- As installed.
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN am_members m
                     ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
                   WHERE has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'no function of the extension is executable by PUBLIC');
SELECT cmp_ok((SELECT count(*)::int FROM pg_proc p JOIN am_members m
                 ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid), '>', 200,
    'the check above saw the extension''s functions');
SELECT is_empty($$SELECT c.oid::regclass::text FROM pg_class c
                   WHERE c.relnamespace = 'agentmarket'::regnamespace AND c.relkind IN ('r', 'p')
                     AND NOT c.relrowsecurity$$,
    'row-level security is on for every table of agentmarket');
SELECT is_empty($$SELECT c.oid::regclass::text FROM pg_class c
                   WHERE c.relrowsecurity IS FALSE
                     AND EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)$$,
    'no table has policies without row-level security');
SELECT is_empty($$SELECT c.oid::regclass::text FROM pg_class c JOIN am_members m
                     ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
                   WHERE c.relkind IN ('r', 'p', 'S')
                     AND c.oid <> ALL (SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'agentmarket')$$,
    'every table and sequence of the extension is registered with pg_extension_config_dump');
SELECT is_empty($$SELECT c.oid::regclass::text FROM pg_class c JOIN am_members m
                     ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
                   WHERE EXISTS (SELECT FROM aclexplode(c.relacl) a WHERE a.grantee = 0)$$,
    'no table, view or sequence of the extension grants anything to PUBLIC');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN am_members m
                     ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
                   WHERE p.prosecdef AND p.proowner <> 'agentmarket_definer'::regrole$$,
    'every SECURITY DEFINER function is owned by agentmarket_definer');

-- Objects that break the rules, added to the extension as an upgrade script would.
CREATE FUNCTION agentmarket_private.house_probe() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION agentmarket_private.house_probe_definer() RETURNS int LANGUAGE sql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS 'SELECT 1';
ALTER EXTENSION agentmarket ADD FUNCTION agentmarket_private.house_probe();
ALTER EXTENSION agentmarket ADD FUNCTION agentmarket_private.house_probe_definer();
ALTER TABLE agentmarket.teams DISABLE ROW LEVEL SECURITY;
SELECT ok(has_function_privilege('public', 'agentmarket_private.house_probe()', 'EXECUTE'),
    'a new function starts executable by PUBLIC');
SELECT lives_ok('SELECT agentmarket_private.apply_house_rules()', 'the rules apply to a conforming extension');
SELECT ok(NOT has_function_privilege('public', 'agentmarket_private.house_probe()', 'EXECUTE'),
    'applying the rules revokes EXECUTE from PUBLIC on an added function');
SELECT is((SELECT proowner::regrole::text FROM pg_proc WHERE oid = 'agentmarket_private.house_probe_definer()'::regprocedure),
    'agentmarket_definer', 'applying the rules hands an added definer function to agentmarket_definer');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'agentmarket.teams'::regclass),
    'applying the rules turns row-level security back on for a table of agentmarket');

CREATE TABLE agentmarket_private.house_probe_rows (id int PRIMARY KEY);
ALTER EXTENSION agentmarket ADD TABLE agentmarket_private.house_probe_rows;
SELECT throws_ok('SELECT agentmarket_private.apply_house_rules()', '55000',
    'tables or sequences not registered with pg_extension_config_dump: agentmarket_private.house_probe_rows',
    'a table of the extension that pg_dump would drop stops the install (55000)');
ALTER EXTENSION agentmarket DROP TABLE agentmarket_private.house_probe_rows;
DROP TABLE agentmarket_private.house_probe_rows;
SELECT lives_ok('SELECT agentmarket_private.apply_house_rules()', 'without that table the rules pass again');

CREATE POLICY house_probe ON agentmarket_private.notifications USING (true);
SELECT throws_ok('SELECT agentmarket_private.apply_house_rules()', '55000',
    'tables with policies but without row-level security: agentmarket_private.notifications',
    'a policy on a table without row-level security stops the install (55000)');
DROP POLICY house_probe ON agentmarket_private.notifications;

GRANT SELECT ON agentmarket_private.settings TO PUBLIC;
SELECT throws_ok('SELECT agentmarket_private.apply_house_rules()', '55000',
    'relations that grant to PUBLIC: agentmarket_private.settings',
    'a table of the extension granted to PUBLIC stops the install (55000)');
REVOKE SELECT ON agentmarket_private.settings FROM PUBLIC;

SELECT * FROM finish();
ROLLBACK;
