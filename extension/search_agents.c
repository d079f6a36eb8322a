/*-------------------------------------------------------------------------
 * search_agents.c
 *	  The driver of marketplace search in C: search_agents checks its
 *	  arguments, decodes the page cursor, plans the query (search_prepare.c),
 *	  estimates, picks a strategy and returns the page, through SPI plans
 *	  kept per statement shape.
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

/* Statement kinds. */
#define AM_KIND_SORTED_WALK 1	/* the sort's index, capped */
#define AM_KIND_SORTED_GIN 2	/* GIN, then sort */
#define AM_KIND_SCORE_ALL 3		/* GIN, score every match */
#define AM_KIND_ROWS 4			/* the cards of the walk's ids */
#define AM_KIND_SAMPLE 5		/* the first listings of the walk, counted */

/* Listings of the walk's first sample of the matches' density. */
#define AM_SAMPLE 64
/* Matches in the sample trusted to project few. */
#define AM_ORDER_TRUSTED_HITS 8
/* Projected matches scored at once up to this many pages; more: walked over the candidates. */
#define AM_ORDER_FEW_PAGES 4

/* The parameters every statement is prepared with (unused ones are fine). */
Oid			am_param_types[AM_NPARAMS] = {
	TSQUERYOID,					/* $1 the query */
	TEXTARRAYOID,				/* $2 lexemes */
	INT4ARRAYOID,				/* $3 groups */
	FLOAT8ARRAYOID,				/* $4 factors */
	BOOLARRAYOID,				/* $5 prefixes */
	INT4OID,					/* $6 ngroups */
	TEXTOID,					/* $7 category */
	TEXTARRAYOID,				/* $8 tags */
	TEXTARRAYOID,				/* $9 relays */
	TEXTARRAYOID,				/* $10 models */
	TEXTOID,					/* $11 pricing model */
	FLOAT8OID,					/* $12 cursor: score */
	UUIDOID,					/* $13 cursor: id */
	TSQUERYOID,					/* $14 the words and filter lexemes */
	NUMERICOID,					/* $15 cursor: rating */
	INT4OID,					/* $16 cursor: reviews or hires */
	TIMESTAMPTZOID,				/* $17 cursor: publication */
	INT4OID,					/* $18 rows wanted */
	FLOAT8OID,					/* $19 walk: static score of the last listing read */
	UUIDOID,					/* $20 walk: its id */
	TSQUERYOID,					/* $21 walk: words a tier's listings have in search_fields */
	TSQUERYOID,					/* $22 walk: the tier's whole condition on search_fields */
	FLOAT8OID					/* $23 walk: the least static score that can reach the page */
};

/* The card columns every statement returns first, then score and static. */
#define AM_CARD_COLUMNS \
	"%1$s.id, %1$s.slug, %1$s.name, %1$s.tagline, %1$s.icon_url, %1$s.category, %1$s.pricing_model," \
	" %1$s.credits_per_session, %1$s.avg_rating, %1$s.total_reviews, %1$s.total_hires," \
	" %1$s.supported_relays, %1$s.supported_models, %1$s.tags, %1$s.published_at"

/* A kept statement of one shape. */
typedef struct AmShape
{
	uint32		key;
	SPIPlanPtr	plan;
} AmShape;

#define AM_MAX_SHAPES 256
static AmShape am_shapes[AM_MAX_SHAPES];
static int	am_nshapes;


/* The filters of a shape, on listing alias a. */
void
am_append_filters(StringInfo sql, int filters)
{
	if (filters & AM_F_CATEGORY)
		appendStringInfoString(sql, " AND a.category OPERATOR(pg_catalog.=) $7");
	if (filters & AM_F_TAGS)
		appendStringInfoString(sql, " AND a.tags OPERATOR(pg_catalog.@>) $8");
	if (filters & AM_F_RELAYS)
		appendStringInfoString(sql, " AND a.supported_relays OPERATOR(pg_catalog.&&) $9");
	if (filters & AM_F_MODELS)
		appendStringInfoString(sql, " AND a.supported_models OPERATOR(pg_catalog.&&) $10");
	if (filters & AM_F_PRICING)
		appendStringInfoString(sql, " AND a.pricing_model OPERATOR(pg_catalog.=) $11");
}

/* The sort's keys on alias x, as an ORDER BY list or the cursor's keyset. */
static void
am_append_order(StringInfo sql, int sort, const char *x, bool keyset)
{
	switch (sort)
	{
		case AM_SORT_RELEVANCE:
			appendStringInfo(sql, keyset ? "(%1$s.search_static, %1$s.id) OPERATOR(pg_catalog.<) ($12, $13)"
							 : "%1$s.search_static DESC, %1$s.id DESC", x);
			break;
		case AM_SORT_RATING:
			appendStringInfo(sql, keyset ? "(COALESCE(%1$s.avg_rating, 0), %1$s.total_reviews, %1$s.id)"
							 " OPERATOR(pg_catalog.<) ($15, $16, $13)"
							 : "COALESCE(%1$s.avg_rating, 0) DESC, %1$s.total_reviews DESC, %1$s.id DESC", x);
			break;
		case AM_SORT_POPULAR:
			appendStringInfo(sql, keyset ? "(%1$s.total_hires, %1$s.id) OPERATOR(pg_catalog.<) ($16, $13)"
							 : "%1$s.total_hires DESC, %1$s.id DESC", x);
			break;
		default:
			appendStringInfo(sql, keyset ? "(%1$s.published_at, %1$s.id) OPERATOR(pg_catalog.<) ($17, $13)"
							 : "%1$s.published_at DESC, %1$s.id DESC", x);
			break;
	}
}

/* The score of a listing x: blended with the text score when there are words. */
static void
am_append_score(StringInfo sql, bool words, const char *x)
{
	if (words)
		appendStringInfo(sql, "agentmarket_private.search_blend(agentmarket_private.search_text_score("
						 "%1$s.search_document, $2, $3, $4, $5, $6), %1$s.search_static)", x);
	else
		appendStringInfo(sql, "%s.search_static", x);
}

/*
 * The statement of a shape, generated, prepared and kept the first time.
 * Rows: the card columns, the score, the static score (and, for the sorted
 * walk, whether the listing matches).
 */
static SPIPlanPtr
am_shape_plan(int kind, int sort, int filters, bool after, bool query, bool words, int limit)
{
	uint32		key = kind | (sort << 3) | (filters << 5) | (after << 10) | (query << 11) |
		(words << 12) | ((uint32) limit << 13);
	StringInfoData sql;
	SPIPlanPtr	plan;
	int			i;

	for (i = 0; i < am_nshapes; i++)
		if (am_shapes[i].key == key)
			return am_shapes[i].plan;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	appendStringInfo(&sql, AM_CARD_COLUMNS, kind == AM_KIND_SORTED_WALK ? "a" : "x");
	appendStringInfoString(&sql, ", ");
	switch (kind)
	{
		case AM_KIND_SORTED_WALK:
			/* the sort's index, after the cursor; the matches scored */
			if (query)
			{
				appendStringInfoString(&sql, "CASE WHEN a.search_document OPERATOR(pg_catalog.@@) $1 THEN ");
				am_append_score(&sql, words, "a");
				appendStringInfoString(&sql, " END, a.search_static,"
									   " a.search_document OPERATOR(pg_catalog.@@) $1");
			}
			else
				appendStringInfoString(&sql, "a.search_static, a.search_static, true");
			appendStringInfoString(&sql, " FROM agentmarket.agents a"
								   " WHERE a.status OPERATOR(pg_catalog.=) 'published'");
			am_append_filters(&sql, filters);
			if (after)
			{
				appendStringInfoString(&sql, " AND ");
				am_append_order(&sql, sort, "a", true);
			}
			appendStringInfoString(&sql, " ORDER BY ");
			am_append_order(&sql, sort, "a", false);
			/* a constant: planned as the short walk it is */
			appendStringInfo(&sql, " LIMIT %d", limit);
			break;
		case AM_KIND_SORTED_GIN:
			/* every match (materialized: never turned back into a walk), sorted */
			am_append_score(&sql, words, "x");
			appendStringInfoString(&sql, ", x.search_static FROM (SELECT h.* FROM hits h");
			if (after)
			{
				appendStringInfoString(&sql, " WHERE ");
				am_append_order(&sql, sort, "h", true);
			}
			appendStringInfoString(&sql, " ORDER BY ");
			am_append_order(&sql, sort, "h", false);
			appendStringInfoString(&sql, " LIMIT $18) x ORDER BY ");
			am_append_order(&sql, sort, "x", false);
			{
				StringInfoData cte;

				initStringInfo(&cte);
				appendStringInfoString(&cte, "WITH hits AS MATERIALIZED (SELECT ");
				appendStringInfo(&cte, AM_CARD_COLUMNS, "a");
				appendStringInfoString(&cte, ", a.search_document, a.search_static"
									   " FROM agentmarket.agents a WHERE a.status OPERATOR(pg_catalog.=) 'published'"
									   " AND a.search_document OPERATOR(pg_catalog.@@) $14");
				am_append_filters(&cte, filters);
				appendStringInfo(&cte, ") %s", sql.data);
				sql = cte;
			}
			break;
		case AM_KIND_SAMPLE:
			/* as search_walk starts: the best static scores passing the filters */
			sql.len = 0;
			sql.data[0] = '\0';
			appendStringInfo(&sql, "SELECT pg_catalog.count(*)::integer,"
							 " (pg_catalog.count(*) FILTER (WHERE a.search_document OPERATOR(pg_catalog.@@) $1))::integer"
							 " FROM (SELECT a.search_document FROM agentmarket.agents a"
							 " WHERE a.status OPERATOR(pg_catalog.=) 'published'");
			am_append_filters(&sql, filters);
			appendStringInfo(&sql, " ORDER BY a.search_static DESC, a.id DESC LIMIT %d) a", AM_SAMPLE);
			break;
		case AM_KIND_SCORE_ALL:
			/* every match scored; the best after the cursor */
			appendStringInfoString(&sql, "x.score, x.search_static FROM (SELECT ");
			appendStringInfo(&sql, AM_CARD_COLUMNS, "a");
			appendStringInfoString(&sql, ", a.search_static, ");
			am_append_score(&sql, true, "a");
			appendStringInfoString(&sql, " AS score FROM agentmarket.agents a"
								   " WHERE a.status OPERATOR(pg_catalog.=) 'published'"
								   " AND a.search_document OPERATOR(pg_catalog.@@) $14");
			am_append_filters(&sql, filters);
			appendStringInfoString(&sql, ") x");
			if (after)
				appendStringInfoString(&sql, " WHERE (x.score, x.id) OPERATOR(pg_catalog.<) ($12, $13)");
			appendStringInfoString(&sql, " ORDER BY x.score DESC, x.id DESC LIMIT $18");
			break;
		default:
			/* the cards of the ids the walk chose, in its order */
			appendStringInfoString(&sql, "t.score, x.search_static"
								   " FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::float8[]))"
								   " WITH ORDINALITY t(id, score, o)"
								   " JOIN agentmarket.agents x ON x.id OPERATOR(pg_catalog.=) t.id ORDER BY t.o");
			break;
	}
	if (kind == AM_KIND_ROWS)
	{
		Oid			types[2] = {UUIDARRAYOID, FLOAT8ARRAYOID};

		plan = am_prepare_kept(sql.data, 2, types, false);
	}
	else
		plan = am_prepare_kept(sql.data, AM_NPARAMS, am_param_types,
							   /*
								* A walk in a sort's order with filters is planned
								* with their values: a generic plan, guessing them
								* selective, sorts all of a category's listings.
								*/
							   filters != 0 && (kind == AM_KIND_SORTED_WALK || kind == AM_KIND_SAMPLE));
	if (am_nshapes < AM_MAX_SHAPES)
	{
		am_shapes[am_nshapes].key = key;
		am_shapes[am_nshapes].plan = plan;
		am_nshapes++;
	}
	return plan;
}

/* The parameters of the shape statements, from the request. */
void
am_bind(AmSearch *s, Datum *values, char *nulls)
{
	memset(nulls, 'n', AM_NPARAMS);
	if (s->has_query)
	{
		values[0] = s->plan_values[0];
		nulls[0] = ' ';
	}
	if (s->ngroups > 0)
	{
		int			i;

		for (i = 1; i <= 4; i++)
		{
			values[i] = s->plan_values[i];
			nulls[i] = ' ';
		}
	}
	values[5] = Int32GetDatum(s->ngroups);
	nulls[5] = ' ';
#define AM_BIND(index, flag, datum) \
	if (s->filters & (flag)) { values[index] = (datum); nulls[index] = ' '; }
	AM_BIND(6, AM_F_CATEGORY, s->category);
	AM_BIND(7, AM_F_TAGS, s->tags);
	AM_BIND(8, AM_F_RELAYS, s->relays);
	AM_BIND(9, AM_F_MODELS, s->models);
	AM_BIND(10, AM_F_PRICING, s->pricing);
#undef AM_BIND
	if (s->after)
	{
		values[11] = Float8GetDatum(s->after_score);
		values[12] = s->after_id;
		nulls[11] = nulls[12] = ' ';
		if (s->sort == AM_SORT_RATING)
		{
			values[14] = s->after_rating;
			nulls[14] = ' ';
		}
		values[15] = Int32GetDatum((int32) s->after_count);
		values[16] = TimestampTzGetDatum(s->after_time);
		nulls[15] = nulls[16] = ' ';
	}
	if (!s->gin_null)
	{
		values[13] = s->gin_query;
		nulls[13] = ' ';
	}
	values[17] = Int32GetDatum(s->k);
	nulls[17] = ' ';
}

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
