-- search_order.sql: what the ordered walk of a relevance search over common
-- words read (search_order.c: the words' name sets read once from GIN, the
-- listings of small classes fetched by TID, the static-score btree walked
-- index-only, a row read only when its class's bound can reach the page).
-- agentmarket.search_order = off takes the tiers' walk (search_walk.c).

-- What the backend's last search_agents call read in its ordered walk, NULL
-- when it took none (sql/search_order checks which path answered: the rows
-- cannot tell).
CREATE FUNCTION agentmarket_private.search_order_last(
    OUT members bigint, OUT sets integer, OUT classes integer, OUT classes_fetched integer,
    OUT entries bigint, OUT rows_read bigint, OUT matches bigint, OUT scored_all boolean,
    OUT candidates bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'search_order_last'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmarket_private.search_order_last() IS
    'What the last search_agents call of this session read in its ordered walk: listings in the words'' name sets, words with a set, classes and those fetched by their listings, static-score btree entries walked, rows read, matches, whether it gave way to scoring every match, the listings that can match when it read them from the words'' posting lists (else NULL); NULL when it took no ordered walk.';
