-- upgrade/begin.sql: the first part of every upgrade script
-- agentmarket--A--B.sql (the Makefile builds it: this, A--B.before.sql, the
-- whole install script of B, carry.sql, A--B.after.sql, finish.sql).
--
-- An upgrade is a restore into the new version, in place: the old version's
-- schemas are set aside under other names, the new version is installed
-- exactly as CREATE EXTENSION installs it (so the catalog is a fresh
-- install's: every table, function, view, policy, trigger, grant and
-- comment), and carry.sql brings the old rows across the way pg_dump and
-- pg_restore would (what each table's pg_extension_config_dump condition
-- selects, with triggers and constraints on, referenced tables first); then
-- the old schemas are dropped.  A step needs hand-written SQL only for what a
-- restore would not do (A--B.before.sql, A--B.after.sql).
--
-- Objects outside the extension must not depend on it: they would follow the
-- old objects and be dropped with them.  Such a view or foreign key stops the
-- upgrade here, named, before anything changed.
DO $begin$
DECLARE
    blockers text;
BEGIN
    WITH members AS (
        SELECT e.objid FROM pg_catalog.pg_depend e
         WHERE e.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND e.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND e.refobjid OPERATOR(pg_catalog.=) (SELECT x.oid FROM pg_catalog.pg_extension x
                                                   WHERE x.extname OPERATOR(pg_catalog.=) 'agentmarket')
           AND e.deptype OPERATOR(pg_catalog.=) 'e')
    SELECT pg_catalog.string_agg(d.what, ', ' ORDER BY d.what) INTO blockers
      FROM (
        -- Views of the user's over the extension's tables or views.
        SELECT DISTINCT pg_catalog.format('view %s', r.ev_class::pg_catalog.regclass) AS what
          FROM pg_catalog.pg_depend dep
          JOIN pg_catalog.pg_rewrite r ON dep.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                                      AND r.oid OPERATOR(pg_catalog.=) dep.objid
         WHERE dep.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND dep.refobjid IN (SELECT m.objid FROM members m)
           AND r.ev_class NOT IN (SELECT m.objid FROM members m)
        UNION
        -- Foreign keys of the user's tables to the extension's.
        SELECT pg_catalog.format('foreign key %s on %s', c.conname, c.conrelid::pg_catalog.regclass)
          FROM pg_catalog.pg_constraint c
         WHERE c.contype OPERATOR(pg_catalog.=) 'f'
           AND c.confrelid IN (SELECT m.objid FROM members m)
           AND c.conrelid NOT IN (SELECT m.objid FROM members m)) d;
    IF blockers IS NOT NULL THEN
        RAISE EXCEPTION 'objects outside the extension depend on it: %', blockers
            USING ERRCODE = '2BP01',
                  DETAIL = 'The upgrade replaces every object of the extension; these would be dropped with the old ones.',
                  HINT = 'Drop them, run ALTER EXTENSION agentmarket UPDATE, and create them again.';
    END IF;
END
$begin$;

-- The old rows are read after the new version is installed: nothing may
-- write them in the meantime (the upgrade holds every table until it
-- commits).
DO $lock$
DECLARE
    t pg_catalog.regclass;
BEGIN
    FOR t IN SELECT c.oid FROM pg_catalog.pg_class c
              WHERE c.relnamespace IN ('agentmarket'::pg_catalog.regnamespace, 'agentmarket_private'::pg_catalog.regnamespace)
                AND c.relkind IN ('r', 'p')
              ORDER BY c.oid
    LOOP
        EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', t);
    END LOOP;
END
$lock$;

ALTER SCHEMA agentmarket RENAME TO upgrade_from_agentmarket;
ALTER SCHEMA agentmarket_private RENAME TO upgrade_from_agentmarket_private;
ALTER SCHEMA agentmarket_analytics RENAME TO upgrade_from_agentmarket_analytics;

-- The old objects leave the extension (so the new install's house rules,
-- footer.sql, see only the new ones, and the dump registration loses the old
-- tables); what each old table's registration selected is kept for carry.sql
-- in the setting agentmarket.upgrade_dumped ({"schema.table": condition}).
DO $leave$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'agentmarket');
    o record;
BEGIN
    PERFORM pg_catalog.set_config('agentmarket.upgrade_dumped', (
        SELECT COALESCE(pg_catalog.jsonb_object_agg(pg_catalog.format('%I.%I', n.nspname, r.relname), c.cond), '{}')::text
          FROM pg_catalog.pg_extension e,
               ROWS FROM (pg_catalog.unnest(e.extconfig), pg_catalog.unnest(e.extcondition)) AS c (rel, cond)
          JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.rel
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) r.relnamespace
         WHERE e.oid OPERATOR(pg_catalog.=) ext), true);
    -- Schemas last: their members first.
    FOR o IN SELECT i.type, i.identity
               FROM pg_catalog.pg_depend d, LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid) i
              WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                AND d.refobjid OPERATOR(pg_catalog.=) ext AND d.deptype OPERATOR(pg_catalog.=) 'e'
              ORDER BY i.type OPERATOR(pg_catalog.=) 'schema', i.type, i.identity
    LOOP
        EXECUTE pg_catalog.format('ALTER EXTENSION agentmarket DROP %s %s',
                                  CASE o.type WHEN 'composite type' THEN 'type' ELSE o.type END, o.identity);
    END LOOP;
END
$leave$;
