-- search_direct.sql: what answered a search that reads every match through
-- GIN.  search_agents reads them in C (search_direct.c) rather than through
-- a statement; agentmarket.search_direct = off takes the statements
-- (sql/search_direct compares both, byte for byte).

-- Whether the backend's last search_agents call read its matches directly,
-- NULL when it did not (sql/search_direct checks which path answered: the
-- rows cannot tell).
CREATE FUNCTION agentmarket_private.search_direct_last(OUT path text, OUT checked bigint, OUT matches bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'search_direct_last'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmarket_private.search_direct_last() IS
    'Whether the last search_agents call of this session read every match through GIN in C (score every match, or sort every match), the listings the bitmap gave and the matches among them; NULL when a statement answered.';
