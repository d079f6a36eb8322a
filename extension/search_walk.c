/*-------------------------------------------------------------------------
 * search_walk.c
 *	  The relevance top-k of a search whose words are common, in C: a walk
 *	  of the listings in descending static score with tiers fetched through
 *	  GIN and an early stop on the tiers' bounds (am_walk), and the tiers
 *	  themselves (am_tiers, also the SQL function search_tiers that
 *	  sql/search_bounds checks).
 *
 * Scores blend a text score (the mean over words of each word's best
 * field) with a static score.  The walk reads listings in static order in
 * doubling chunks (the first 64 are the sample of the matches' density):
 * when the density projects few matches, or scoring them all would cost
 * less than the walk has read, it stops and every match is scored instead.
 * Otherwise the matches are split into tiers by where each of the first
 * three words occurs (name; tagline or tags; description only): small tiers
 * are fetched whole through the GIN index on search_fields (with the page
 * full, only from the static score that can still reach it), and the walk
 * goes on until no listing further down, at the best text score of the
 * tiers left to it, can reach the page.  Every statement is kept (prepared
 * once per backend); the old PL/pgSQL walk planned each of them per call.
 * Results equal scoring every match (sql/search_strategies).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "portability/instr_time.h"
#include "tsearch/ts_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "agentmarket.h"
#include "search_agents.h"

PG_FUNCTION_INFO_V1(search_tiers);
PG_FUNCTION_INFO_V1(search_walk_last);

/* Listings of the walk's first chunk (the density sample), and the largest chunk. */
#define AM_WALK_FIRST 64
#define AM_WALK_MAX_CHUNK 8192
/* Matches seen before the walk trusts their density to project few. */
#define AM_WALK_TRUSTED_HITS 8
/* Tiers of at least this many listings are walked, not fetched. */
#define AM_TIER_MIN_LIMIT 1500
/* Tiers come from the first three words: at most 3^3. */
#define AM_MAX_TIERS 27

/* A tier: where each of the first three words occurs. */
typedef struct AmTier
{
	int			code;			/* base 3, word by word: 0 name, 1 tagline/tags, 2 neither */
	double		bound;			/* the best text score a listing in it can have */
	double		estimate;		/* its size if words were independent */
	char	   *required;		/* tsquery text of what its listings have in search_fields; NULL: nothing */
	char	   *condition;		/* tsquery text of its whole condition on search_fields */
} AmTier;

/* Kept statements: the walk's chunks by (filters, continued, size), the tiers' by (filters, cursor). */
typedef struct AmWalkPlan
{
	uint32		key;
	SPIPlanPtr	plan;
} AmWalkPlan;

#define AM_MAX_WALK_PLANS 256
static AmWalkPlan am_walk_plans[AM_MAX_WALK_PLANS];
static int	am_nwalk_plans;
static SPIPlanPtr am_plan_max_static;

/* What the backend's last search_agents call walked (search_walk_last). */
static struct
{
	bool		ran;			/* it walked */
	double		walked;			/* listings read in static order */
	double		matches;		/* of them matches */
	int			tiers_fetched;	/* tiers read through GIN */
	bool		walked_over;	/* the walk took over tiers cheaper to walk down to */
	bool		scored_all;		/* it stopped for scoring every match */
}			am_last_walk;
static SPIPlanPtr am_plan_static_count;

/*
 * Listings with a static score of at least static_floor, counted up to cap: what
 * the walk reads to get there.
 */
static double
am_static_count(double static_floor, double cap)
{
	Datum		values[2];
	bool		isnull;
	double		count;

	if (am_plan_static_count == NULL)
	{
		Oid			types[2] = {FLOAT8OID, INT8OID};

		am_plan_static_count = am_prepare_kept(
			"SELECT pg_catalog.count(*)::float8 FROM (SELECT 1 FROM agentmarket.agents a"
			" WHERE a.status OPERATOR(pg_catalog.=) 'published' AND a.search_static OPERATOR(pg_catalog.>=) $1"
			" ORDER BY a.search_static DESC, a.id DESC LIMIT $2) x", 2, types, false);
	}
	values[0] = Float8GetDatum(static_floor);
	values[1] = Int64GetDatum((int64) ceil(cap));
	am_run(am_plan_static_count, values, NULL, 1);
	count = am_float_col(SPI_tuptable->vals[0], 1, &isnull);
	SPI_freetuptable(SPI_tuptable);
	return count;
}

/* The elements of a one-dimensional array of the plan (text, int8 or float8). */
Datum *
am_plan_array(const Datum *plan_values, int index, Oid type, int *n)
{
	int16		typlen;
	bool		byval;
	char		align;
	Datum	   *elems;
	bool	   *nulls;

	get_typlenbyvalalign(type, &typlen, &byval, &align);
	deconstruct_array(DatumGetArrayTypeP(plan_values[index]), type, typlen, byval, align, &elems, &nulls, n);
	return elems;
}

static int
am_tier_cmp(const void *a, const void *b)
{
	const AmTier *x = (const AmTier *) a;
	const AmTier *y = (const AmTier *) b;

	/* by bound, best first, then the smaller first */
	if (x->bound != y->bound)
		return x->bound > y->bound ? -1 : 1;
	if (x->estimate != y->estimate)
		return x->estimate < y->estimate ? -1 : 1;
	return x->code - y->code;
}

/*
 * The possible tiers of a search_plan (its values, deformed), best bound
 * first: every combination of where each of its first three words matches
 * (name; tagline or tags but not the name; neither), with the best text
 * score a listing in it can have (a further word counts at its best value
 * anywhere), its size as if words were independent, and its conditions on
 * search_fields.  Tiers nothing can be in are left out.
 */
static int
am_tiers(const Datum *plan_values, AmTier *tiers)
{
	int			ngroups = DatumGetInt32(plan_values[5]);
	bool		any_word = DatumGetBool(plan_values[8]);
	double		n = Max((double) DatumGetInt64(plan_values[7]), 1);
	int			nn;
	Datum	   *name_terms = am_plan_array(plan_values, 10, TEXTOID, &nn);
	Datum	   *head_terms = am_plan_array(plan_values, 11, TEXTOID, &nn);
	Datum	   *docs = am_plan_array(plan_values, 12, INT8OID, &nn);
	Datum	   *name_docs = am_plan_array(plan_values, 13, INT8OID, &nn);
	Datum	   *head_docs = am_plan_array(plan_values, 14, INT8OID, &nn);
	Datum	   *body_docs = am_plan_array(plan_values, 15, INT8OID, &nn);
	Datum	   *name_bound = am_plan_array(plan_values, 16, FLOAT8OID, &nn);
	Datum	   *head_bound = am_plan_array(plan_values, 17, FLOAT8OID, &nn);
	Datum	   *body_bound = am_plan_array(plan_values, 18, FLOAT8OID, &nn);
	int			first = Min(ngroups, 3);
	int			ntiers = 0;
	int			count = first == 3 ? 27 : first == 2 ? 9 : 3;
	int			t;

	if (ngroups < 1 || nn < ngroups)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("search tiers need a word")));
	for (t = 0; t < count; t++)
	{
		AmTier	   *tier = &tiers[ntiers];
		double	   *bounds = palloc(sizeof(double) * ngroups);
		StringInfoData required,
					condition;
		bool		possible = true;
		int			code = t;
		int			g;

		initStringInfo(&required);
		initStringInfo(&condition);
		tier->code = t;
		tier->estimate = n;
		for (g = 0; g < first; g++)
		{
			int			level = code % 3;
			char	   *name = TextDatumGetCString(name_terms[g]);
			char	   *head = TextDatumGetCString(head_terms[g]);
			double		nb = DatumGetFloat8(name_bound[g]);
			double		hb = DatumGetFloat8(head_bound[g]);
			double		bb = DatumGetFloat8(body_bound[g]);

			code /= 3;
			if (condition.len > 0)
				appendStringInfoString(&condition, " & ");
			if (level == 0)		/* in the name */
			{
				possible = possible && nb > 0;
				bounds[g] = Max(nb, Max(hb, bb));
				tier->estimate *= (double) DatumGetInt64(name_docs[g]) / n;
				appendStringInfo(&condition, "(%s)", name);
				appendStringInfo(&required, "%s(%s)", required.len > 0 ? " & " : "", name);
			}
			else if (level == 1)	/* in the tagline or tags, not the name */
			{
				possible = possible && hb > 0;
				bounds[g] = Max(hb, bb);
				tier->estimate *= (double) DatumGetInt64(head_docs[g]) / n;
				appendStringInfo(&condition, "(%s) & !(%s)", head, name);
				appendStringInfo(&required, "%s(%s)", required.len > 0 ? " & " : "", head);
			}
			else				/* only in the description, or nowhere */
			{
				bounds[g] = bb;
				/* without an OR every word must match: here, only in a description */
				if (!any_word)
				{
					possible = possible && DatumGetInt64(body_docs[g]) > 0;
					tier->estimate *= (double) DatumGetInt64(body_docs[g]) / n;
				}
				appendStringInfo(&condition, "!(%s) & !(%s)", name, head);
			}
		}
		/* words after the third: their best value anywhere, in every tier */
		for (g = first; g < ngroups; g++)
		{
			bounds[g] = Max(DatumGetFloat8(name_bound[g]),
							Max(DatumGetFloat8(head_bound[g]), DatumGetFloat8(body_bound[g])));
			if (!any_word)
				tier->estimate *= (double) DatumGetInt64(docs[g]) / n;
		}
		if (!possible)
			continue;
		tier->bound = am_group_mean(bounds, ngroups);
		tier->required = required.len > 0 ? required.data : NULL;
		tier->condition = condition.data;
		ntiers++;
	}
	return ntiers;
}

/*
 * search_tiers: the tiers of a query's plan (am_tiers), each with its bound,
 * estimated size, the GIN condition that finds it (NULL: none, it has no
 * word in a name, tagline or tags) and its whole condition, as SQL on
 * listing alias a.  22023 without a word.
 */
/* SQL function: search_tiers */
Datum
search_tiers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HeapTupleHeader plan = PG_GETARG_HEAPTUPLEHEADER(0);
	TupleDesc	plan_desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(plan),
												   HeapTupleHeaderGetTypMod(plan));
	HeapTupleData tuple;
	Datum		plan_values[19];
	bool		plan_nulls[19];
	AmTier		tiers[AM_MAX_TIERS];
	int			ntiers,
				i;

	if (plan_desc->natts != 19)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("search_tiers needs a search_plan")));
	tuple.t_len = HeapTupleHeaderGetDatumLength(plan);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = plan;
	heap_deform_tuple(&tuple, plan_desc, plan_values, plan_nulls);
	ReleaseTupleDesc(plan_desc);
	for (i = 5; i <= 18; i++)
		if (plan_nulls[i] && i != 6)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("search tiers need a word")));
	InitMaterializedSRF(fcinfo, 0);
	ntiers = am_tiers(plan_values, tiers);
	for (i = 0; i < ntiers; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Float8GetDatum(tiers[i].bound);
		values[1] = Float8GetDatum(tiers[i].estimate);
		if (tiers[i].required == NULL)
			nulls[2] = true;
		else
			values[2] = CStringGetTextDatum(psprintf("a.search_fields @@ %s::tsquery",
													 quote_literal_cstr(tiers[i].required)));
		values[3] = CStringGetTextDatum(psprintf("a.search_fields @@ %s::tsquery",
												 quote_literal_cstr(tiers[i].condition)));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * A walk of a sort's index read walked listings, matches of them, and gave
 * way to GIN and sort (search_walk_last).
 */
void
am_walk_sorted(double walked, double matches, bool then_gin)
{
	am_last_walk.ran = true;
	am_last_walk.walked = walked;
	am_last_walk.matches = matches;
	am_last_walk.scored_all = then_gin;
}

/*
 * The ordered walk (search_order.c) read entries of the static-score btree,
 * found matches, fetched classes by their listings, gave way to scoring
 * every match (search_walk_last).
 */
void
am_walk_ordered(double entries, double matches, int classes_fetched, bool scored_all)
{
	am_last_walk.ran = true;
	am_last_walk.walked = entries;
	am_last_walk.matches = matches;
	am_last_walk.tiers_fetched = classes_fetched;
	am_last_walk.scored_all = scored_all;
}

/*
 * What fetching the tiers the walk would fetch costs, in listings read (a
 * statement costs about 50; tiers sorted by bound): the tiers GIN finds
 * cheaply, above every tier that is walked, their listings within the
 * filters (GIN intersects the filter lexemes).  Their static floors are not
 * known yet: every listing of a tier counts.
 */
static double
am_tiers_cost(const AmTier *tiers, int ntiers, double correction, double tier_limit, double filter_share)
{
	bool		have_dense = false;
	double		dense_bound = 0;
	double		cost = 0;
	int			i;

	for (i = 0; i < ntiers; i++)
		if (tiers[i].required == NULL || tiers[i].estimate * correction > tier_limit)
		{
			dense_bound = have_dense ? Max(dense_bound, tiers[i].bound) : tiers[i].bound;
			have_dense = true;
		}
	for (i = 0; i < ntiers; i++)
		if (!(tiers[i].required == NULL || tiers[i].estimate * correction > tier_limit ||
			  (have_dense && tiers[i].bound <= dense_bound)))
			cost += 50 + tiers[i].estimate * correction * filter_share;
	return cost;
}

/*
 * What GIN intersects to find a tier's listings in search_fields: the words
 * they have in a name, tagline or tags, and the filter lexemes the
 * request's GIN scan intersects (search_fields holds them too), so that a
 * filtered tier reads only its listings within the filters ('agent pod' by
 * category read a tier of 2,254 listings for the 280 in the category: the
 * search took 15.7 ms, now 10, at 100k).  With GIN doing the filtering,
 * the tier's statement keeps a generic plan (no planning per tier).
 */
static char *
am_tier_driver(const AmSearch *s, const AmTier *tier)
{
	if (s->filter_text == NULL)
		return tier->required;
	return psprintf("(%s) & (%s)", tier->required, s->filter_text);
}

/*
 * A tier is fetched when that reads fewer listings (its own, within the
 * filters) than walking to k of them would (N / its size for each); a
 * second page must walk past the first one too (twice k at least).
 */
static double
am_tier_limit(const AmSearch *s)
{
	return Max(AM_TIER_MIN_LIMIT, sqrt((s->after ? 2 : 1) * s->k * s->published / s->filter_share));
}

/* What the tiers a walk would fetch cost, before it walks (density: of a sample, corrects their sizes). */
double
am_walk_tiers_cost(const AmSearch *s, double density)
{
	AmTier		tiers[AM_MAX_TIERS];
	int			ntiers = am_tiers(s->plan_values, tiers);
	double		correction = Max(1, density * s->published / Max(s->joint_null ? 0 : s->joint, 1));

	return am_tiers_cost(tiers, ntiers, correction, am_tier_limit(s), s->filter_share);
}

/* A search_agents call begins: nothing walked yet. */
void
am_walk_reset(void)
{
	memset(&am_last_walk, 0, sizeof(am_last_walk));
}

/*
 * search_walk_last: what the backend's last search_agents call walked
 * (listings read in static order, or in the sort's order, matches among
 * them, tiers fetched, whether the walk took over tiers, whether it stopped
 * to score, or sort, every match), or NULL when it did not walk.  For tests: which strategy
 * answered is invisible in the rows.
 */
/* SQL function: search_walk_last */
Datum
search_walk_last(PG_FUNCTION_ARGS)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (!am_last_walk.ran)
		PG_RETURN_NULL();
	values[0] = Int64GetDatum((int64) am_last_walk.walked);
	values[1] = Int64GetDatum((int64) am_last_walk.matches);
	values[2] = Int32GetDatum(am_last_walk.tiers_fetched);
	values[3] = BoolGetDatum(am_last_walk.walked_over);
	values[4] = BoolGetDatum(am_last_walk.scored_all);
	PG_RETURN_DATUM(am_result_row(fcinfo, values, nulls));
}

/* Adds a match to the page, unless it is on it already or below it. */
void
am_top_add(AmTop *top, int k, double score, const pg_uuid_t *id)
{
	int			at,
				i;

	if (top->n == k && am_rank_cmp(score, id, top->scores[k - 1], &top->ids[k - 1]) >= 0)
		return;
	for (i = 0; i < top->n; i++)
		if (memcmp(top->ids[i].data, id->data, UUID_LEN) == 0)
			return;
	for (at = top->n; at > 0 && am_rank_cmp(score, id, top->scores[at - 1], &top->ids[at - 1]) < 0; at--)
		;
	if (top->n == k)
		top->n--;
	memmove(&top->scores[at + 1], &top->scores[at], sizeof(double) * (top->n - at));
	memmove(&top->ids[at + 1], &top->ids[at], sizeof(pg_uuid_t) * (top->n - at));
	top->scores[at] = score;
	top->ids[at] = *id;
	top->n++;
}

/* A kept statement of the walk, generated the first time. */
static SPIPlanPtr
am_walk_plan(bool tier, int filters, bool continued, int limit)
{
	uint32		key = (tier ? 1 : 0) | (filters << 1) | (continued << 6) | ((uint32) limit << 7);
	StringInfoData sql;
	SPIPlanPtr	plan;
	int			i;
	static const char *const score =
		"agentmarket_private.search_blend(agentmarket_private.search_text_score("
		"a.search_document, $2, $3, $4, $5, $6), a.search_static)";

	for (i = 0; i < am_nwalk_plans; i++)
		if (am_walk_plans[i].key == key)
			return am_walk_plans[i].plan;
	initStringInfo(&sql);
	if (!tier)
	{
		/* the next listings in static order (continued: after $19, $20), scored when they match */
		appendStringInfo(&sql, "SELECT a.id, a.search_static, CASE WHEN a.search_document OPERATOR(pg_catalog.@@) $1"
						 " THEN %s END FROM agentmarket.agents a WHERE a.status OPERATOR(pg_catalog.=) 'published'",
						 score);
		am_append_filters(&sql, filters);
		if (continued)
			appendStringInfoString(&sql, " AND (a.search_static, a.id) OPERATOR(pg_catalog.<) ($19, $20)");
		appendStringInfo(&sql, " ORDER BY a.search_static DESC, a.id DESC LIMIT %d", limit);
	}
	else
	{
		/* a tier's best k (after the cursor), from the static score $23 that can reach the page */
		appendStringInfo(&sql, "SELECT x.id, x.score FROM (SELECT a.id, %s AS score FROM agentmarket.agents a"
						 " WHERE a.status OPERATOR(pg_catalog.=) 'published'", score);
		am_append_filters(&sql, filters);
		/*
		 * GIN intersects the words the tier's listings must have ($21) with
		 * its whole condition ($22: the exclusions' short posting lists
		 * too), so only the tier's listings are read.
		 */
		appendStringInfoString(&sql, " AND a.search_fields OPERATOR(pg_catalog.@@) $21"
							   " AND a.search_fields OPERATOR(pg_catalog.@@) $22"
							   " AND a.search_document OPERATOR(pg_catalog.@@) $1"
							   " AND ($23::float8 IS NULL OR a.search_static OPERATOR(pg_catalog.>=) $23)) x");
		if (continued)
			appendStringInfoString(&sql, " WHERE (x.score, x.id) OPERATOR(pg_catalog.<) ($12, $13)");
		appendStringInfoString(&sql, " ORDER BY x.score DESC, x.id DESC LIMIT $18");
	}
	/*
	 * Planned with the values: the filters' and tiers' selectivity decides
	 * the index (a generic plan guesses it).
	 */
	plan = am_prepare_kept(sql.data, AM_NPARAMS, am_param_types, filters != 0 && !tier);
	if (am_nwalk_plans < AM_MAX_WALK_PLANS)
	{
		am_walk_plans[am_nwalk_plans].key = key;
		am_walk_plans[am_nwalk_plans].plan = plan;
		am_nwalk_plans++;
	}
	return plan;
}

/* Adds the rows of a walk chunk or tier (id, [static,] score) to the page. */
static void
am_take(AmTop *top, AmSearch *s, int score_col)
{
	uint64		r;

	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		double		score = am_float_col(SPI_tuptable->vals[r], score_col, &isnull);
		pg_uuid_t  *id;

		if (isnull)
			continue;
		id = DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		/* after the page cursor */
		if (s->after && am_rank_cmp(score, id, s->after_score, DatumGetUUIDP(s->after_id)) <= 0)
			continue;
		am_top_add(top, s->k, score, id);
	}
}

/*
 * The walk (see the header).  values and nulls: the statements' parameters
 * (am_bind).  Returns true when scoring every match is cheaper (the caller
 * does); otherwise false with the page's ids and scores as arrays, best
 * first.
 */
bool
am_walk(AmSearch *s, Datum *values, char *nulls, Datum *ids, Datum *scores)
{
	AmScoring	w;
	AmTop	   *top = palloc0(sizeof(AmTop));
	int			k = s->k;
	double		max_static = 0;
	double		tier_limit = am_tier_limit(s);
	int			m = AM_WALK_FIRST;
	double		walked = 0,
				hits = 0;
	bool		tiers_done = false;
	AmTier		tiers[AM_MAX_TIERS];
	int			ntiers = 0;
	double		correction = 1;
	bool		have_dense = false;
	double		dense_bound = 0;
	pg_uuid_t	last_id;
	double		last_static = 0;
	/* a static floor with more listings above it than the walk would take over */
	bool		have_deep = false;
	double		deep_floor = 0;
	/*
	 * The share of the listings above a static score the walk reads: the
	 * category's when that is the only filter (the walk reads its index),
	 * all of them otherwise (it checks the other filters on each).
	 */
	double		walk_share = s->filters == AM_F_CATEGORY ? s->filter_share : 1;
	bool		continued = false;
	int			i;

	am_search_scoring(&w);
	am_last_walk.ran = true;
	if (am_plan_max_static == NULL)
		am_plan_max_static = am_prepare_kept("SELECT a.search_static FROM agentmarket.agents a"
											 " WHERE a.status OPERATOR(pg_catalog.=) 'published'"
											 " ORDER BY a.search_static DESC, a.id DESC LIMIT 1", 0, NULL, false);
	am_run(am_plan_max_static, NULL, NULL, 1);
	if (SPI_processed > 0)
	{
		bool		isnull;

		max_static = am_float_col(SPI_tuptable->vals[0], 1, &isnull);
	}
	for (;;)
	{
		uint64		n;
		uint64		r;

		if (continued)
		{
			values[18] = Float8GetDatum(last_static);
			values[19] = UUIDPGetDatum(&last_id);
			nulls[18] = nulls[19] = ' ';
		}
		am_run(am_walk_plan(false, s->filters, continued, m), values, nulls, 0);
		n = SPI_processed;
		for (r = 0; r < n; r++)
		{
			bool		isnull;

			SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &isnull);
			if (!isnull)
				hits++;
		}
		am_take(top, s, 3);
		if (n > 0)
		{
			bool		isnull;
			HeapTuple	last = SPI_tuptable->vals[n - 1];

			last_static = am_float_col(last, 2, &isnull);
			memcpy(&last_id, DatumGetUUIDP(SPI_getbinval(last, SPI_tuptable->tupdesc, 1, &isnull)), sizeof(pg_uuid_t));
			continued = true;
		}
		walked += n;
		am_last_walk.walked = walked;
		am_last_walk.matches = hits;
		SPI_freetuptable(SPI_tuptable);
		if (n < (uint64) m)
			break;				/* every listing seen: the page is exact */

		/*
		 * Matches projected from the density so far; scoring them costs about
		 * a third of walking as many listings.  A few matches in a small
		 * sample project little: few matches are taken at their word only
		 * when independent words would meet rarely too (words of one domain
		 * meet far more often, and scoring thousands costs more than walking
		 * on a little).
		 */
		if (!tiers_done)
		{
			ntiers = am_tiers(s->plan_values, tiers);

			/*
			 * Words that meet more often than if they were independent make
			 * every tier that much larger: the density seen so far corrects
			 * the tiers' estimates (words of one domain, say).
			 */
			correction = Max(1, hits / walked * s->published / Max(s->joint_null ? 0 : s->joint, 1));
			qsort(tiers, ntiers, sizeof(AmTier), am_tier_cmp);
		}
		{
			double		projected = hits * s->published * s->filter_share / walked;
			bool		rare_apart = !s->joint_null && s->joint * s->filter_share <= s->exhaustive_limit;

			/*
			 * Walking on reads listings down to k matches and fetches the
			 * tiers: more than scoring every one of a few matches, unless
			 * they are dense and few tiers are fetched.
			 */
			if ((projected <= s->exhaustive_limit && (hits >= AM_WALK_TRUSTED_HITS || rare_apart) &&
				 !am_walk_pays(s, projected, 1,
							   tiers_done ? 0 : am_tiers_cost(tiers, ntiers, correction, tier_limit, s->filter_share))) ||
				walked * 3 >= projected)
			{
				am_last_walk.scored_all = true;
				return true;
			}
		}
		if (!tiers_done)
		{
			tiers_done = true;
			/* tiers no index finds cheaply are walked, and so is every tier bounded no higher */
			for (i = 0; i < ntiers; i++)
				if (tiers[i].required == NULL || tiers[i].estimate * correction > tier_limit)
				{
					dense_bound = have_dense ? Max(dense_bound, tiers[i].bound) : tiers[i].bound;
					have_dense = true;
				}
			for (i = 0; i < ntiers; i++)
			{
				AmTier	   *tier = &tiers[i];

				if (tier->required == NULL || tier->estimate * correction > tier_limit ||
					(have_dense && tier->bound <= dense_bound))
				{
					dense_bound = have_dense ? Max(dense_bound, tier->bound) : tier->bound;
					have_dense = true;
					continue;
				}
				/* with the page full, a tier that cannot reach it is not read */
				if (top->n == k && top->scores[k - 1] > am_blend(tier->bound, max_static))
					continue;

				/*
				 * With the page full, only listings whose static score can lift
				 * them onto it are read: blend(bound, static) >= the k-th score
				 * needs static >= (k-th - share * bound) / (1 - share), less a
				 * margin for the blend's rounding.
				 */
				if (top->n == k)
				{
					double		static_floor = (top->scores[k - 1] - w.text_share * tier->bound) /
						(1 - w.text_share) - 1e-6;
					double		size = tier->estimate * correction;

					/*
					 * When the walk would read fewer listings to get down to
					 * that floor than the tier holds, walking costs less than
					 * fetching this tier and the ones after it (their bounds
					 * are no higher): the walk takes them all over.  The
					 * count stops at the tier's size (and a lower floor than
					 * one found too deep is not counted again), so it costs
					 * no more than the fetch it may save.
					 */
					bool		deep = have_deep && static_floor <= deep_floor;
					double		limit = floor(Min(size / walk_share, AM_WALK_MAX_CHUNK));

					if (!deep && am_static_count(static_floor, limit + 1) > limit)
					{
						have_deep = true;
						deep_floor = static_floor;
						deep = true;
					}
					if (!deep)
					{
						dense_bound = have_dense ? Max(dense_bound, tier->bound) : tier->bound;
						have_dense = true;
						am_last_walk.walked_over = true;
						break;
					}
					values[22] = Float8GetDatum(static_floor);
					nulls[22] = ' ';
				}
				else
					nulls[22] = 'n';
				values[20] = DirectFunctionCall1(tsqueryin,
												 CStringGetDatum(am_expand_prefixes(am_tier_driver(s, tier), true)));
				values[21] = DirectFunctionCall1(tsqueryin, CStringGetDatum(am_expand_prefixes(tier->condition, true)));
				nulls[20] = nulls[21] = ' ';
				{
					instr_time	t0,
								t1;

					INSTR_TIME_SET_CURRENT(t0);
					am_run(am_walk_plan(true, s->filters, s->after, 0), values, nulls, 0);
					INSTR_TIME_SET_CURRENT(t1);
					INSTR_TIME_SUBTRACT(t1, t0);
					elog(DEBUG2, "search_agents: tier %d (bound %g, estimate %g x %g, floor %s): %lu rows in %.3f ms",
						 tier->code, tier->bound, tier->estimate, correction,
						 nulls[22] == ' ' ? psprintf("%g", DatumGetFloat8(values[22])) : "none",
						 (unsigned long) SPI_processed, INSTR_TIME_GET_MILLISEC(t1));
				}
				am_take(top, s, 2);
				am_last_walk.tiers_fetched++;
				SPI_freetuptable(SPI_tuptable);
			}
		}
		if (!have_dense)
			break;				/* every tier was fetched whole */

		/*
		 * No listing further down can reach the page.  Static scores lie on
		 * a 1e-6 grid: a tie means the same static score and, further down
		 * the walk, a smaller id.
		 */
		if (top->n == k)
		{
			double		b = am_blend(dense_bound, last_static);

			if (top->scores[k - 1] > b ||
				(top->scores[k - 1] == b && memcmp(top->ids[k - 1].data, last_id.data, UUID_LEN) >= 0))
				break;
		}
		m = Min(m * 2, AM_WALK_MAX_CHUNK);
	}
	elog(DEBUG1, "search_agents: listings walked %.0f, matches seen %.0f", walked, hits);
	{
		Datum	   *id_datums = palloc(sizeof(Datum) * Max(top->n, 1));
		Datum	   *score_datums = palloc(sizeof(Datum) * Max(top->n, 1));

		for (i = 0; i < top->n; i++)
		{
			id_datums[i] = UUIDPGetDatum(&top->ids[i]);
			score_datums[i] = Float8GetDatum(top->scores[i]);
		}
		*ids = PointerGetDatum(construct_array(id_datums, top->n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
		*scores = PointerGetDatum(construct_array(score_datums, top->n, FLOAT8OID, 8, FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
	}
	return false;
}
