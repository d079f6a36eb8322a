-- upgrade/finish.sql: the old version's objects go.  Nothing outside the
-- extension depends on them (begin.sql checked), so the cascade reaches only
-- the old version's own objects.
DROP SCHEMA upgrade_from_agentmarket_analytics CASCADE;
DROP SCHEMA upgrade_from_agentmarket_private CASCADE;
DROP SCHEMA upgrade_from_agentmarket CASCADE;
SELECT pg_catalog.set_config('agentmarket.upgrade_by_hand', '', true);
-- A dropped table leaves its entry in the extension's dump registration
-- (pg_extension.extconfig): the old version's entries are taken out, so the
-- registration is exactly the new version's.
UPDATE pg_catalog.pg_extension e
   SET extconfig = k.config, extcondition = k.conditions
  FROM (SELECT pg_catalog.array_agg(c.rel ORDER BY c.n) AS config, pg_catalog.array_agg(c.cond ORDER BY c.n) AS conditions
          FROM pg_catalog.pg_extension x,
               ROWS FROM (pg_catalog.unnest(x.extconfig), pg_catalog.unnest(x.extcondition)) WITH ORDINALITY AS c (rel, cond, n)
         WHERE x.extname OPERATOR(pg_catalog.=) 'agentmarket'
           AND EXISTS (SELECT FROM pg_catalog.pg_class r WHERE r.oid OPERATOR(pg_catalog.=) c.rel)) k
 WHERE e.extname OPERATOR(pg_catalog.=) 'agentmarket';
