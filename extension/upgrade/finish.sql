-- upgrade/finish.sql: the old version's objects go (begin.sql took them out
-- of the extension).  Nothing outside the extension depends on them
-- (begin.sql checked), so the cascade reaches only the old version's own
-- objects.
DROP SCHEMA upgrade_from_agentmarket_analytics CASCADE;
DROP SCHEMA upgrade_from_agentmarket_private CASCADE;
DROP SCHEMA upgrade_from_agentmarket CASCADE;
SELECT pg_catalog.set_config('agentmarket.upgrade_by_hand', '', true), pg_catalog.set_config('agentmarket.upgrade_dumped', '', true);
