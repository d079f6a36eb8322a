-- search_scratch.sql: the working memory search_agents keeps per backend
-- (search_scratch.c: its large arrays carved from one region whose pages
-- stay mapped between calls, instead of malloc mapping and faulting in
-- fresh ones each call).

CREATE FUNCTION agentmarket_private.search_scratch_last(
    OUT kept bigint, OUT wanted bigint, OUT from_palloc bigint, OUT held integer)
RETURNS record
AS 'MODULE_PATHNAME', 'search_scratch_last'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmarket_private.search_scratch_last() IS
    'The working memory search_agents keeps in this session: bytes kept between calls, the most the last call held at once, of that what did not fit and came from palloc, and how many calls hold the region now (0 between calls).';
