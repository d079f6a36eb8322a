/*-------------------------------------------------------------------------
 * search_agents.h
 *	  A search_agents request, shared by the C driver of search
 *	  (search_agents.c: strategies and result rows; search_shapes.c: their
 *	  statements) and the code
 *	  that checks, decodes and plans it (search_request.c).
 *-------------------------------------------------------------------------
 */
#ifndef SEARCH_AGENTS_H
#define SEARCH_AGENTS_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* Sorts, in the order of their names below. */
#define AM_SORT_RELEVANCE 0
#define AM_SORT_RATING 1
#define AM_SORT_POPULAR 2
#define AM_SORT_NEWEST 3
extern const char *const am_sort_names[];

/* Filters, as bits of a statement shape. */
#define AM_F_CATEGORY 0x01
#define AM_F_TAGS 0x02
#define AM_F_RELAYS 0x04
#define AM_F_MODELS 0x08
#define AM_F_PRICING 0x10
/* The filters that are lexemes of a document, in the order of AmSearch.filter_docs. */
extern const int am_lexeme_filters[4];

/* Matches up to which every one is scored, unless the setting says. */
#define AM_EXHAUSTIVE_LIMIT 2000
/* Words in at most this many listings are found through GIN without the filters. */
#define AM_WORDS_ALONE 256
/* Filters that keep more than this share of listings are not intersected by GIN. */
#define AM_FILTER_SCANNED 0.5
/* The longest walk of a sort's index, in listings. */
#define AM_SORTED_CAP 4096
/* The card columns of a result row (id to published_at), before score and cursor. */
#define AM_NCARD 15
/* The parameters of the statements ($1 to $23, see am_param_types). */
#define AM_NPARAMS 23

/* A search_agents call checked and decoded, with its plan and estimates. */
typedef struct AmSearch
{
	Datum		category;		/* filters; NULL flags in nulls[] */
	Datum		tags;
	Datum		relays;
	Datum		models;
	Datum		pricing;
	int			filters;		/* AM_F_* of the filters given */
	int			sort;
	int			k;
	bool		after;			/* a cursor was given */
	double		after_score;
	Datum		after_rating;
	int64		after_count;
	TimestampTz after_time;
	Datum		after_id;
	Datum		plan_values[AM_PLAN_COLUMNS];	/* the search_plan's columns */
	bool		plan_nulls[AM_PLAN_COLUMNS];
	int			ngroups;
	bool		has_query;		/* plan.query is not NULL */
	double		published;
	bool		joint_null;
	double		joint;
	double		filter_share;
	double		category_share;	/* the category filter's share of listings (1: none, or not counted) */
	double		filter_docs[4];	/* listings of each filter's lexemes (category, pricing, relays, models); 0: not counted */
	char	   *filter_text;	/* tsquery text of the filter lexemes GIN intersects; NULL: none */
	bool		gin_null;
	Datum		gin_query;		/* what GIN reads (a prefix may become its completions) */
	Datum		gin_check;		/* the same before any expansion: what a listing is checked with */
	bool		expected_null;
	double		expected;
	double		exhaustive_limit;
} AmSearch;

/* search_request.c */
extern void am_check_arguments(FunctionCallInfo fcinfo, AmSearch *s);
extern void am_plan(AmSearch *s, text *query);
extern char **am_filter_lexemes(const AmSearch *s, int f, int *n);
extern void am_statement_settings_reset(void);
extern void am_statement_settings(void);
extern void am_statement_settings_end(bool done);
extern SPIPlanPtr am_prepare_kept(const char *sql, int nargs, Oid *types, bool custom);
extern void am_run(SPIPlanPtr plan, Datum *values, const char *nulls, long max_rows);
extern double am_float_col(HeapTuple row, int col, bool *isnull);
extern Oid	am_private_type(const char *name);

/* search_shapes.c: the strategies' statements, one per shape, kept per backend; their kinds: */
#define AM_KIND_SORTED_WALK 1	/* the sort's index, capped */
#define AM_KIND_SORTED_GIN 2	/* GIN, then sort */
#define AM_KIND_SCORE_ALL 3		/* GIN, score every match */
#define AM_KIND_ROWS 4			/* the cards of the walk's ids */
#define AM_KIND_SAMPLE 5		/* the first listings of the walk, counted */

/* Listings of the walk's first sample of the matches' density. */
#define AM_SAMPLE 64

extern Oid	am_param_types[AM_NPARAMS];
extern void am_append_filters(StringInfo sql, int filters);
extern SPIPlanPtr am_shape_plan(int kind, int sort, int filters, bool after, bool query, bool words, int limit);
extern void am_bind(AmSearch *s, Datum *values, char *nulls);

/* search_agents.c */
extern void am_emit_values(ReturnSetInfo *rsinfo, AmSearch *s, Datum *values, bool *nulls);

/* search_direct.c: every match read through GIN in C, the page emitted; false when it is off. */
extern bool am_direct_gin(ReturnSetInfo *rsinfo, AmSearch *s, bool scored);
extern void am_direct_sort_candidates(ReturnSetInfo *rsinfo, AmSearch *s, ItemPointer cand, int ncand);
extern void am_direct_reset(void);

/* search_direct_walk.c: a sort's index walked in C; NULL when it is off. */
typedef struct AmDirectWalk AmDirectWalk;
extern AmDirectWalk *am_direct_walk_begin(AmSearch *s);
extern uint64 am_direct_walk_fetch(AmDirectWalk *w, ReturnSetInfo *rsinfo, uint64 n, uint64 *hits);
extern void am_direct_walk_end(AmDirectWalk *w);
/* A sorted page over candidates: not tried, answered, or given up (the page cleared: GIN and sort). */
#define AM_CANDIDATES_NONE 0
#define AM_CANDIDATES_ANSWERED 1
#define AM_CANDIDATES_OVER 2
extern int	am_direct_walk_candidates(ReturnSetInfo *rsinfo, AmSearch *s, bool by_gin);
extern bool am_direct_sample(AmSearch *s, int filters, int n, int32 *walked, int32 *hits);
extern void am_direct_sample_reset(void);

/* search_walk.c: the relevance walk; false with the page's ids and scores, true to score every match. */
/* The page so far: the k best (score, id), best first (the walks' pages). */
typedef struct AmTop
{
	int			n;
	double		scores[100];
	pg_uuid_t	ids[100];
} AmTop;

/* (score, id) against (score2, id2): the order of a page, best first. */
static inline int
am_rank_cmp(double score, const pg_uuid_t *id, double score2, const pg_uuid_t *id2)
{
	if (score != score2)
		return score > score2 ? -1 : 1;
	return -memcmp(id->data, id2->data, UUID_LEN);
}

extern void am_top_add(AmTop *top, int k, double score, const pg_uuid_t *id);
extern bool am_walk(AmSearch *s, Datum *values, char *nulls, Datum *ids, Datum *scores);
extern void am_walk_reset(void);
extern void am_walk_sorted(double walked, double matches, bool then_gin);
extern void am_walk_ordered(double entries, double matches, int classes_fetched, bool scored_all);
extern double am_walk_tiers_cost(const AmSearch *s, double density);
extern Datum *am_plan_array(const Datum *plan_values, int index, Oid type, int *n);

/*
 * search_settings.c: the agentmarket.search_* settings, defined when the
 * module loads (am_search_init) and read as variables through these.
 */
extern bool am_candidates_on(void);
extern bool am_order_on(void);
extern bool am_order_heads_on(void);
extern int	am_order_matches_setting(void);
extern int	am_exhaustive_limit(void);

/* search_order.c: the ordered walk of common words: it answered, does not apply, or found scoring every match cheaper. */
#define AM_ORDER_NONE 0
#define AM_ORDER_ANSWERED 1
#define AM_ORDER_SCORE_ALL 2
extern int	am_order_walk(AmSearch *s, bool read_matches, Datum *ids, Datum *scores);
extern bool am_order_applies(const AmSearch *s);
extern bool am_order_candidates_pay(const AmSearch *s);
extern void am_order_reset(void);

/* A search's large arrays, from a region kept per backend (search_scratch.c). */
extern void am_scratch_begin(void);
extern void am_scratch_end(void);
extern void *am_scratch_alloc(Size size);
extern void *am_scratch_realloc(void *p, Size old_size, Size size);
extern void am_scratch_free(void *p);

/* search_tail.c: the walk's costs; prefix terms of GIN queries replaced by their completions. */
extern void am_prefix_reset(void);
extern char *am_expand_prefixes(const char *query, bool fields);
extern bool am_walk_pays(const AmSearch *s, double matches, double margin, double extra);
extern double am_gin_cost(const AmSearch *s);
extern double am_static_share_above(double floor);
extern Datum am_expand_prefix_query(Datum query);
extern bool am_completions(const char *prefix, char ***words, int *n);

#endif							/* SEARCH_AGENTS_H */
