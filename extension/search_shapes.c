/*-------------------------------------------------------------------------
 * search_shapes.c
 *	  The statements of search_agents' strategies, one per shape (its kind,
 *	  sort, which filters are given, a cursor or not, words or not),
 *	  generated, prepared once per backend and kept with a generic plan, and
 *	  the parameters every one of them is bound with (am_bind).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "agentmarket.h"
#include "search_agents.h"

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
SPIPlanPtr
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
