/*-------------------------------------------------------------------------
 * search_settings.c
 *	  The settings of search_agents (search_agents.h): the agentmarket.search_*
 *	  server settings, defined when the module loads and read through the
 *	  functions below, and the settings its statements run under.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "agentmarket.h"
#include "search_agents.h"
#include "search_direct.h"
#include "search_gin.h"

static bool am_setting_search_direct = true;
static bool am_setting_search_gin_merge = true;
static bool am_setting_search_sorted_candidates = true;
static bool am_setting_search_order = true;
static bool am_setting_search_order_heads = true;
static int	am_setting_search_order_matches = -1;
static int	am_setting_search_exhaustive_limit = AM_EXHAUSTIVE_LIMIT;

static const struct config_enum_entry am_order_matches_options[] = {
	{"auto", -1, false},
	{"on", 1, false},
	{"off", 0, false},
	{"true", 1, true},
	{"false", 0, true},
	{"yes", 1, true},
	{"no", 0, true},
	{"1", 1, true},
	{"0", 0, true},
	{NULL, 0, false}
};

/*
 * The search settings (README, "Search"): switches of each strategy, for
 * tests and for measuring one against another, and the exhaustive limit.
 * Defined here so a search reads them as variables: looked up by name
 * (GetConfigOption: a binary search of every setting's name, a few dozen
 * cache lines cold) on every search before.  Values of the wrong type are
 * refused when set (22023), where a placeholder took any text.
 */
void
am_search_init(void)
{
	static const struct
	{
		const char *name;
		const char *what;
		bool	   *value;
	}			switches[] = {
		{"agentmarket.search_direct", "Lets search_agents read listings in C (off: its statements answer).",
		&am_setting_search_direct},
		{"agentmarket.search_gin_merge", "Lets search_agents intersect posting lists in C (off: GIN's scan).",
		&am_setting_search_gin_merge},
		{"agentmarket.search_sorted_candidates",
			"Lets sorted pages of few matches walk over the candidates read from the posting lists.",
		&am_setting_search_sorted_candidates},
		{"agentmarket.search_order", "Lets search_agents walk common words in order of their best possible score.",
		&am_setting_search_order},
		{"agentmarket.search_order_heads", "Lets the ordered walk read tagline sets.",
		&am_setting_search_order_heads},
	};
	int			i;

	for (i = 0; i < (int) lengthof(switches); i++)
		DefineCustomBoolVariable(switches[i].name, switches[i].what, NULL, switches[i].value, true,
								 PGC_USERSET, GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	DefineCustomEnumVariable("agentmarket.search_order_matches",
							 "Whether the ordered walk reads the words' own posting lists: auto (when estimated to pay), on, off.",
							 NULL, &am_setting_search_order_matches, -1, am_order_matches_options,
							 PGC_USERSET, GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	DefineCustomIntVariable("agentmarket.search_exhaustive_limit",
							"Matches up to which search_agents scores every match (L).",
							NULL, &am_setting_search_exhaustive_limit, AM_EXHAUSTIVE_LIMIT, 0, 9999999,
							PGC_USERSET, GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
}

/* Whether searches read listings in C (agentmarket.search_direct). */
bool
am_direct_on(void)
{
	return am_setting_search_direct;
}

/* Whether reading the posting lists in C is on (agentmarket.search_gin_merge). */
bool
am_gin_merge_on(void)
{
	return am_setting_search_gin_merge;
}

/* Whether sorted pages may walk over candidates (agentmarket.search_sorted_candidates). */
bool
am_candidates_on(void)
{
	return am_setting_search_sorted_candidates;
}

/* Whether the ordered walk is on (agentmarket.search_order). */
bool
am_order_on(void)
{
	return am_setting_search_order;
}

/* Whether the walk reads tagline sets (agentmarket.search_order_heads). */
bool
am_order_heads_on(void)
{
	return am_setting_search_order_heads;
}

/*
 * Whether the walk reads the words' own posting lists (search_document) to
 * know which listings can match (agentmarket.search_order_matches: 1 on,
 * 0 off, -1 auto, the default: when estimated to pay).
 */
int
am_order_matches_setting(void)
{
	return am_setting_search_order_matches;
}

/* Matches up to which every match is scored, L (agentmarket.search_exhaustive_limit). */
int
am_exhaustive_limit(void)
{
	return am_setting_search_exhaustive_limit;
}

/*
 * The GUC nesting level of the settings search statements are planned
 * under, once this search_agents call has set them; 0: not yet; -1: not in
 * a search_agents call (nothing is set: no one would restore it).
 */
static int	am_statement_level = -1;

/* A search_agents call begins: no statement settings set yet. */
void
am_statement_settings_reset(void)
{
	am_statement_level = 0;
}

/*
 * Before a search statement is prepared, planned or run: JIT and parallel
 * plans off, whatever the caller's settings (a kept generic plan is
 * neither compiled nor parallelised).  Set once per call, and only when a
 * statement runs: searches answered in C pay nothing, where the function's
 * SET clauses cost every call a save and a restore of each setting.
 */
void
am_statement_settings(void)
{
	if (am_statement_level != 0)
		return;
	am_statement_level = NewGUCNestLevel();
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("max_parallel_workers_per_gather", "0", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * A search_agents call ends: the settings before its statements, back
 * (done: true; after an error, the transaction's or subtransaction's abort
 * restores them).
 */
void
am_statement_settings_end(bool done)
{
	if (done && am_statement_level > 0)
		AtEOXact_GUC(true, am_statement_level);
	am_statement_level = -1;
}
