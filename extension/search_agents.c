/*-------------------------------------------------------------------------
 * search_agents.c
 *	  The driver of marketplace search in C: search_agents checks its
 *	  arguments, decodes the page cursor, plans the query (search_prepare.c),
 *	  estimates, picks a strategy and returns the page, through SPI plans
 *	  kept per statement shape (search_shapes.c).
 *
 * Each strategy's statement is generated for its shape (the sort, which
 * filters are given, a cursor or not, words or not), prepared once per
 * backend and kept with a generic plan, so a search that reads a handful of
 * listings costs about what those reads cost; no statement is planned per
 * call.  The walk of a relevance search over common words is search_walk.c.
 * Every strategy returns exactly what scoring (or sorting) every match
 * returns (sql/search_strategies).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "common/shortest_dec.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "tsearch/ts_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "agentmarket.h"
#include "search_agents.h"

PG_FUNCTION_INFO_V1(search_agents);

/* Matches in the sample trusted to project few. */
#define AM_ORDER_TRUSTED_HITS 8
/* Projected matches scored at once up to this many pages; more: walked over the candidates. */
#define AM_ORDER_FEW_PAGES 4

/*
 * Puts one result row in the tuplestore: values and nulls hold the card
 * columns and the score (AM_NCARD + 3 slots); the cursor is added.
 */
void
am_emit_values(ReturnSetInfo *rsinfo, AmSearch *s, Datum *values, bool *nulls)
{
	char	   *key = NULL;
	char	   *key2 = NULL;
	char		buf[MAXINT8LEN + 1];
	char		buf2[MAXINT8LEN + 1];
	char		fbuf[DOUBLE_SHORTEST_DECIMAL_LEN];

	switch (s->sort)
	{
		case AM_SORT_RELEVANCE:
			/* the score: with words the blend, without them the static score */
			if (!nulls[AM_NCARD])
			{
				/* shortest exact, as float8out with extra_float_digits > 0 */
				double_to_shortest_decimal_buf(DatumGetFloat8(values[AM_NCARD]), fbuf);
				key = fbuf;
			}
			break;
		case AM_SORT_RATING:
			key = nulls[8] ? "0" : DatumGetCString(DirectFunctionCall1(numeric_out, values[8]));
			if (!nulls[9])
			{
				pg_ltoa(DatumGetInt32(values[9]), buf2);
				key2 = buf2;
			}
			break;
		case AM_SORT_POPULAR:
			if (!nulls[10])
			{
				pg_ltoa(DatumGetInt32(values[10]), buf);
				key = buf;
			}
			break;
		default:
			if (!nulls[14])
			{
				pg_lltoa((int64) DatumGetTimestampTz(values[14]) +
						 (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY, buf);
				key = buf;
			}
			break;
	}
	values[AM_NCARD + 1] = PointerGetDatum(am_search_cursor(am_sort_names[s->sort], key, key2, values[0]));
	nulls[AM_NCARD + 1] = false;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Puts one result row (card columns of an SPI row, score, cursor) in the tuplestore. */
static void
am_emit(ReturnSetInfo *rsinfo, AmSearch *s, HeapTuple row)
{
	Datum		values[AM_NCARD + 3];
	bool		nulls[AM_NCARD + 3];

	Assert(SPI_tuptable->tupdesc->natts <= AM_NCARD + 3);
	heap_deform_tuple(row, SPI_tuptable->tupdesc, values, nulls);
	am_emit_values(rsinfo, s, values, nulls);
}

/* Emits the rows of the last statement, up to max. */
static void
am_emit_all(ReturnSetInfo *rsinfo, AmSearch *s, uint64 max)
{
	uint64		i;

	for (i = 0; i < SPI_processed && i < max; i++)
		am_emit(rsinfo, s, SPI_tuptable->vals[i]);
}

/*
 * Fetches up to n listings of the sorted walk's statement and emits the
 * matches among them while the page has room; the listings fetched.
 */
static uint64
am_walk_fetch(Portal walk, ReturnSetInfo *rsinfo, AmSearch *s, long n, uint64 *hits)
{
	uint64		fetched;
	uint64		i;

	SPI_cursor_fetch(walk, true, n);
	for (i = 0; i < SPI_processed && *hits < (uint64) s->k; i++)
	{
		bool		isnull;
		Datum		hit = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
									   AM_NCARD + 3, &isnull);

		if (!isnull && DatumGetBool(hit))
		{
			am_emit(rsinfo, s, SPI_tuptable->vals[i]);
			(*hits)++;
		}
	}
	fetched = SPI_processed;
	SPI_freetuptable(SPI_tuptable);
	return fetched;
}

/*
 * The density sample: the first AM_SAMPLE listings in static order (within
 * filters), how many were read (*walked) and how many match (*hits).
 */
static void
am_sample(AmSearch *s, int filters, Datum *values, const char *nulls, int32 *walked, int32 *hits)
{
	bool		isnull;

	/* in C (search_direct_walk.c), or through the statement */
	if (am_direct_sample(s, filters, AM_SAMPLE, walked, hits))
		return;

	am_run(am_shape_plan(AM_KIND_SAMPLE, AM_SORT_RELEVANCE, filters, false, true, true, 0),
		   values, nulls, 0);
	*walked = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*hits = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
}

/*
 * Sorted by a column, or relevance without words: keyset after the cursor.
 * Few expected matches (under L/3): they are found through GIN and sorted.
 * Otherwise the sort's index is walked, until the page is full, for at
 * most three times as many listings as should hold a page of matches; when
 * that does not fill the page, GIN and sort after all.
 */
static void
am_sorted(ReturnSetInfo *rsinfo, AmSearch *s)
{
	Datum		values[AM_NPARAMS];
	char		nulls[AM_NPARAMS];
	bool		by_gin = !s->gin_null && !s->expected_null && s->expected < s->exhaustive_limit / 3;
	bool		words = s->ngroups > 0;

	am_bind(s, values, nulls);

	/*
	 * One word (with its typos or completions) is counted exactly: when a
	 * page of its matches takes more listings of the walk than the walk's
	 * cap, the walk would read to the cap and then GIN and sort after all,
	 * so GIN now ('kazu' by rating at 1M: 2,700 matches, one in 370
	 * listings, a page in 7,400; the walk of 4,096 first cost 16 ms).
	 */
	if (!by_gin && s->has_query && s->ngroups == 1 && !s->gin_null && !s->expected_null &&
		(double) s->k * s->published / Max(s->joint, 1) >= AM_SORTED_CAP)
		by_gin = true;

	/*
	 * Words assumed independent may meet far more often (words of one
	 * domain) or far less (of two): for several common words the first
	 * listings in static order show the density; many matches are sorted
	 * faster by walking the sort's index, few by GIN and sort.
	 */
	if (s->has_query && s->ngroups > 1 && !DatumGetBool(s->plan_values[8]) &&
		!s->plan_nulls[6] && (double) DatumGetInt64(s->plan_values[6]) >= s->exhaustive_limit / 3)
	{
		int32		sampled;
		int32		sample_hits;

		am_sample(s, s->filters, values, nulls, &sampled, &sample_hits);
		if (sampled == AM_SAMPLE)
		{
			double		density = (double) sample_hits / sampled;

			by_gin = density * s->published * s->filter_share < s->exhaustive_limit / 3;
			if (!by_gin)
				s->joint = Max(s->joint, density * s->published);
		}
	}
	/* few matches among many listings: the sort's index over the candidates, when that costs less */
	switch (am_direct_walk_candidates(rsinfo, s, by_gin))
	{
		case AM_CANDIDATES_ANSWERED:
			return;
		case AM_CANDIDATES_OVER:
			by_gin = true;
			break;
	}
	if (!by_gin)
	{
		int			cap;
		int			limit = 16;
		int			page_rows;
		long		chunk;
		uint64		hits = 0;
		uint64		seen = 0;
		Portal		walk = NULL;
		AmDirectWalk *direct;

		/* three times the listings that should hold a page */
		if (!s->has_query)
			page_rows = s->k;
		else if (s->joint_null)
			page_rows = AM_SORTED_CAP;
		else
			page_rows = (int) Min((double) AM_SORTED_CAP, ceil(3.0 * s->k * s->published / Max(s->joint, 1)));

		/*
		 * The walk reads up to that, and up to half the matches GIN and sort
		 * would read instead: the top of the sort's order may not be like the
		 * rest (a burst of new listings of other words), and sorting many
		 * matches costs more than walking past them.
		 */
		cap = page_rows;
		if (s->has_query && !s->expected_null)
			cap = (int) Min((double) AM_SORTED_CAP, Max(cap, s->expected / 2));
		while (limit < cap)
			limit *= 2;
		/* read in chunks (first: what should hold a page), up to cap; stop at a full page */
		chunk = Max(16, page_rows / 3);
		/* in C (search_direct_walk.c), or through the statement */
		direct = am_direct_walk_begin(s);
		if (direct == NULL)
		{
			am_statement_settings();
			walk = SPI_cursor_open(NULL, am_shape_plan(AM_KIND_SORTED_WALK, s->sort, s->filters, s->after,
													   s->has_query, words, limit),
								   values, nulls, true);
		}
		while (hits < (uint64) s->k && seen < (uint64) cap)
		{
			uint64		got = direct != NULL
				? am_direct_walk_fetch(direct, rsinfo, Min(chunk, (long) (cap - seen)), &hits)
				: am_walk_fetch(walk, rsinfo, s, Min(chunk, (long) (cap - seen)), &hits);

			if (got == 0)
				break;
			seen += got;
			chunk *= 2;
			/*
			 * At this density the rest of the walk would not fill the page:
			 * GIN now, when GIN and sort is cheap (few matches expected).
			 * With many, the top of the sort's order may just not be like
			 * the rest (a burst of new listings of other words first):
			 * walking on to the cap costs less than sorting them all.
			 */
			if (s->has_query && hits < (uint64) s->k && seen < (uint64) cap &&
				!s->expected_null && s->expected <= s->exhaustive_limit &&
				hits + (double) hits / seen * (cap - seen) < s->k)
			{
				seen = cap;
				break;
			}
		}
		if (direct != NULL)
			am_direct_walk_end(direct);
		else
			SPI_cursor_close(walk);
		by_gin = hits < (uint64) s->k && seen == (uint64) cap && s->has_query;
		am_walk_sorted(seen, hits, by_gin);
		if (by_gin)
			tuplestore_clear(rsinfo->setResult);
	}
	if (by_gin && !s->gin_null)
		values[13] = s->gin_query = am_expand_prefix_query(s->gin_query);
	if (by_gin && !am_direct_gin(rsinfo, s, false))
	{
		am_run(am_shape_plan(AM_KIND_SORTED_GIN, s->sort, s->filters, s->after, s->has_query, words, 0),
			   values, nulls, 0);
		am_emit_all(rsinfo, s, s->k);
	}
}

/*
 * Before the ordered walk (search_order.c), the first listings in static
 * order within the filters, as the tiers' walk reads its first chunk: when
 * their density projects few matches (trusted when 8 are seen, or when
 * independent words would meet rarely too) and walking to a page costs
 * more than scoring them, or the walk would read a third as many listings
 * as match, every match is scored instead (words common apart and rare
 * together: their posting lists intersected, search_gin.c).  Fewer
 * listings in the filters than the sample: scored.
 */
static bool
am_order_scores_all(AmSearch *s, Datum *values, char *nulls, bool *read_matches)
{
	int32		sampled;
	int32		hits;
	double		projected;
	bool		rare_apart = !s->joint_null && s->joint * s->filter_share <= s->exhaustive_limit;

	*read_matches = false;
	if (!am_order_applies(s))
		return false;
	am_sample(s, s->filters, values, nulls, &sampled, &hits);
	if (sampled < AM_SAMPLE)
		return true;
	projected = (double) hits * s->published * s->filter_share / sampled;
	if (projected <= s->exhaustive_limit && (hits >= AM_ORDER_TRUSTED_HITS || rare_apart) &&
		!am_walk_pays(s, projected, 1, 0))
	{
		/*
		 * Few matches, but more than a few pages of them ('email inbox' by
		 * pricing: 1,681, 7 ms scored): the ordered walk over the listings
		 * that can match reads the same posting lists and at most their
		 * rows, and usually only the few whose class can reach the page.
		 */
		if (projected > AM_ORDER_FEW_PAGES * s->k && am_order_matches_setting() != 0 &&
			am_order_candidates_pay(s))
			*read_matches = true;
		return !*read_matches;
	}
	if (sampled * 3 < projected)
		return false;
	if (hits >= AM_ORDER_TRUSTED_HITS || rare_apart)
		return true;

	/*
	 * None or one match in the sample where independent words would meet
	 * often ('email inbox' by model: 0 of 64, 2,606 matches, 8 ms scored
	 * and 1.2 ms walked): the sample cannot tell words that rarely meet from
	 * an unlucky draw.  The walk reads the listings that can match first
	 * (the words' posting lists, as scoring them would): with few, it
	 * fetches them and stops; with many, it walks only them.  When scoring
	 * would not read the posting lists whole (lists of unlike sizes: GIN's
	 * scan skips), or agentmarket.search_order_matches = off, every match
	 * is scored as before.
	 */
	if (am_order_matches_setting() == 0 || !am_order_candidates_pay(s))
		return true;
	*read_matches = true;
	return false;
}

/*
 * Relevance with words.  When the rarest word (all words under OR) is in at
 * most L listings, or the filters keep at most L, every match is scored
 * (one GIN scan of the words and filter lexemes).  Otherwise the walk in
 * static-score order with tiers (am_walk, search_walk.c), which may find
 * scoring every match cheaper after all (its first chunk is the sample of
 * the matches' density).
 */
static void
am_relevance(ReturnSetInfo *rsinfo, AmSearch *s)
{
	Datum		values[AM_NPARAMS];
	char		nulls[AM_NPARAMS];
	double		estimate = s->plan_nulls[6] ? 0 : (double) DatumGetInt64(s->plan_values[6]);
	bool		exact = Min(estimate, s->published * s->filter_share) <= s->exhaustive_limit;

	am_bind(s, values, nulls);

	/*
	 * Filters that keep few listings, of which the words may still match
	 * most (a common word with all four filters; words of the category's
	 * domain): walked when the walk reads fewer listings than scoring every
	 * match would.  How many match is counted on the first listings of the
	 * walk's index (the category's, or all), the other filters assumed
	 * independent of the words: the vocabulary does not count words per
	 * category, and words of a domain crowd its category.
	 */
	if (exact && estimate > s->exhaustive_limit &&
		am_walk_pays(s, s->published * s->filter_share, 1.5, 0))
	{
		int32		sampled;
		int32		sample_hits;

		am_sample(s, s->filters & AM_F_CATEGORY, values, nulls, &sampled, &sample_hits);
		/* the walk fetches tiers too: 'github deploy server' walked, then scored after all */
		if (sampled == AM_SAMPLE &&
			am_walk_pays(s, (double) sample_hits / sampled * s->published * s->filter_share, 1.5,
						 am_walk_tiers_cost(s, (double) sample_hits / sampled)))
			exact = false;
	}
	if (!exact)
	{
		Datum		ids[2];
		bool		read_matches;

		/* read in static order with a bound per listing, or walked with tiers */
		int			order = am_order_scores_all(s, values, nulls, &read_matches) ? AM_ORDER_SCORE_ALL
			: am_order_walk(s, read_matches, &ids[0], &ids[1]);

		exact = order == AM_ORDER_SCORE_ALL ||
			(order == AM_ORDER_NONE && am_walk(s, values, nulls, &ids[0], &ids[1]));
		if (!exact)
		{
			am_run(am_shape_plan(AM_KIND_ROWS, 0, 0, false, false, false, 0), ids, NULL, 0);
			am_emit_all(rsinfo, s, s->k);
			return;
		}
	}
	if (!s->gin_null)
		values[13] = s->gin_query = am_expand_prefix_query(s->gin_query);
	if (am_direct_gin(rsinfo, s, true))
		return;
	am_run(am_shape_plan(AM_KIND_SCORE_ALL, AM_SORT_RELEVANCE, s->filters, s->after, true, true, 0),
		   values, nulls, 0);
	am_emit_all(rsinfo, s, s->k);
}

/* The search itself, as agentmarket_definer under the pinned path. */
static void
am_search_agents(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AmSearch	s;

	am_walk_reset();
	am_order_reset();
	am_direct_reset();
	am_direct_sample_reset();
	am_prefix_reset();
	am_check_arguments(fcinfo, &s);
	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not connect to SPI")));
	am_statement_settings_reset();
	am_scratch_begin();
	PG_TRY();
	{
		am_plan(&s, PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0));
		if (s.sort != AM_SORT_RELEVANCE || s.ngroups == 0)
			am_sorted(rsinfo, &s);
		else
			am_relevance(rsinfo, &s);
	}
	PG_CATCH();
	{
		am_scratch_end();
		am_statement_settings_end(false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	am_scratch_end();
	SPI_finish();
	am_statement_settings_end(true);
}

/*
 * search_agents: published listings matching a query and filters, a page
 * of them in the chosen sort after the cursor, each with its score and the
 * cursor of the page after it.  See README, "Search".  It runs as
 * agentmarket_definer under a pinned search path entered in C (definer.c).
 */
/* SQL function: search_agents */
Datum
search_agents(PG_FUNCTION_ARGS)
{
	AmDefiner	saved;

	am_definer_enter(&saved);
	PG_TRY();
	{
		am_search_agents(fcinfo);
	}
	PG_FINALLY();
	{
		am_definer_exit(&saved);
	}
	PG_END_TRY();
	return (Datum) 0;
}
