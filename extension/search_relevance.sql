-- search_relevance.sql: the tiers of the relevance walk.  The walk itself
-- (the top-k by relevance of search_agents when some words are common: the
-- listings in static-score order, tiers fetched through GIN, an early stop
-- on the tiers' bounds) is C, search_walk.c; search_agents (search_agents.c)
-- picks it, or scoring every match, from estimates.  The per-word bounds the
-- tiers use come from search_prepare (search.sql), whose constants are the
-- scorer's (search.c).

-- The tiers of a query: every combination of where each of its first three
-- words matches (name; tagline or tags but not the name; neither), with
-- the best text score a listing in the tier can have (a further word counts
-- at its best value anywhere), its size estimated as if words were
-- independent and, when some word must be in a name, tagline or tags, the
-- search_fields condition that selects the tier through its GIN index.
-- Tiers nothing can be in are left out.  The walk computes them with the
-- same C (am_tiers); sql/search_bounds checks them through this function.
CREATE FUNCTION agentmarket_private.search_tiers(p agentmarket_private.search_plan)
RETURNS TABLE (bound double precision, estimate double precision, driver text, condition text)
AS 'MODULE_PATHNAME', 'search_tiers'
LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION agentmarket_private.search_tiers(agentmarket_private.search_plan) IS
    'The possible tiers of a query (where each of its first three words matches), with their best text score, estimated size, GIN condition and full condition on search_fields.';

-- What the backend's last search_agents call walked, NULL when it did not
-- walk (sql/search_walk checks which strategy answered: the rows cannot
-- tell).
CREATE FUNCTION agentmarket_private.search_walk_last(
    OUT walked bigint, OUT matches bigint, OUT tiers_fetched integer, OUT walked_over boolean, OUT scored_all boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'search_walk_last'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmarket_private.search_walk_last() IS
    'What the last search_agents call of this session walked: listings read in static order (or in the sort''s order), matches among them, tiers fetched through GIN, whether the walk took over the remaining tiers, whether it stopped to score (or sort) every match; NULL when it did not walk.';
