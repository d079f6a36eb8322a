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
 * call.  Only the walk of a relevance search over common words stays in
 * PL/pgSQL (search_walk, search_relevance.sql): its work is the reading.
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

PG_FUNCTION_INFO_V1(search_agents);

/* Sorts, in the order of their names below. */
#define AM_SORT_RELEVANCE 0
#define AM_SORT_RATING 1
#define AM_SORT_POPULAR 2
#define AM_SORT_NEWEST 3
static const char *const am_sort_names[] = {"relevance", "rating", "popular", "newest"};

/* Filters, as bits of a statement shape. */
#define AM_F_CATEGORY 0x01
#define AM_F_TAGS 0x02
#define AM_F_RELAYS 0x04
#define AM_F_MODELS 0x08
#define AM_F_PRICING 0x10

/* Statement kinds. */
#define AM_KIND_SORTED_WALK 1	/* the sort's index, capped */
#define AM_KIND_SORTED_GIN 2	/* GIN, then sort */
#define AM_KIND_SCORE_ALL 3		/* GIN, score every match */
#define AM_KIND_ROWS 4			/* the cards of the walk's ids */

/* Matches up to which every one is scored, unless the setting says. */
#define AM_EXHAUSTIVE_LIMIT 2000
/* The longest walk of a sort's index, in listings. */
#define AM_SORTED_CAP 4096

/* The parameters every statement is prepared with (unused ones are fine). */
#define AM_NPARAMS 18
static Oid	am_param_types[AM_NPARAMS] = {
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
	INT4OID						/* $18 rows wanted */
};

/* The card columns every statement returns first, then score and static. */
#define AM_CARD_COLUMNS \
	"%1$s.id, %1$s.slug, %1$s.name, %1$s.tagline, %1$s.icon_url, %1$s.category, %1$s.pricing_model," \
	" %1$s.credits_per_session, %1$s.avg_rating, %1$s.total_reviews, %1$s.total_hires," \
	" %1$s.supported_relays, %1$s.supported_models, %1$s.tags, %1$s.published_at"
#define AM_NCARD 15

/* A kept statement of one shape. */
typedef struct AmShape
{
	uint32		key;
	SPIPlanPtr	plan;
} AmShape;

#define AM_MAX_SHAPES 256
static AmShape am_shapes[AM_MAX_SHAPES];
static int	am_nshapes;

static SPIPlanPtr am_plan_corpus_size;
static SPIPlanPtr am_plan_filter_counts;
static SPIPlanPtr am_plan_walk;
static Oid	am_plan_walk_type = InvalidOid;

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
	Datum		plan;			/* search_plan row */
	Datum		plan_values[19];
	bool		plan_nulls[19];
	int			ngroups;
	bool		has_query;		/* plan.query is not NULL */
	double		published;
	bool		joint_null;
	double		joint;
	double		filter_share;
	bool		gin_null;
	Datum		gin_query;
	bool		expected_null;
	double		expected;
	double		exhaustive_limit;
} AmSearch;

static void am_bad_cursor(const char *sort) pg_attribute_noreturn();

/* A 22023 for a bad page cursor. */
static void
am_bad_cursor(const char *sort)
{
	if (sort != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid page cursor"),
				 errdetail("page_after must be the cursor of a row returned by search_agents with sort %s.", sort)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid page cursor"),
			 errdetail("page_after must be the cursor of a row returned by search_agents.")));
}

/* The value of one base64 character, or -1. */
static inline int
am_base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* An int64 as int8in reads it (spaces around, a sign); false if it is none. */
static bool
am_parse_int64(const char *s, int64 *out)
{
	bool		negative = false;
	uint64		v = 0;
	bool		digits = false;

	while (isspace((unsigned char) *s))
		s++;
	if (*s == '-' || *s == '+')
		negative = *s++ == '-';
	for (; isdigit((unsigned char) *s); s++)
	{
		if (v > (PG_UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (*s - '0');
		digits = true;
	}
	while (isspace((unsigned char) *s))
		s++;
	if (!digits || *s != '\0')
		return false;
	if (negative)
	{
		if (v > (uint64) PG_INT64_MAX + 1)
			return false;
		*out = v == (uint64) PG_INT64_MAX + 1 ? PG_INT64_MIN : -(int64) v;
	}
	else
	{
		if (v > (uint64) PG_INT64_MAX)
			return false;
		*out = (int64) v;
	}
	return true;
}

/* A plain decimal (spaces around, a sign, digits, one point). */
static bool
am_is_decimal(const char *s)
{
	bool		digits = false;
	bool		point = false;

	while (isspace((unsigned char) *s))
		s++;
	if (*s == '-' || *s == '+')
		s++;
	for (; isdigit((unsigned char) *s) || (*s == '.' && !point); s++)
	{
		if (*s == '.')
			point = true;
		else
			digits = true;
	}
	while (isspace((unsigned char) *s))
		s++;
	return digits && *s == '\0';
}

/* A uuid as uuid_in reads it; false if it is none. */
static bool
am_parse_uuid(const char *src, pg_uuid_t *uuid)
{
	bool		braces = false;
	int			i;

	if (src[0] == '{')
	{
		src++;
		braces = true;
	}
	for (i = 0; i < UUID_LEN; i++)
	{
		char		buf[3];

		if (src[0] == '\0' || src[1] == '\0' ||
			!isxdigit((unsigned char) src[0]) || !isxdigit((unsigned char) src[1]))
			return false;
		buf[0] = src[0];
		buf[1] = src[1];
		buf[2] = '\0';
		uuid->data[i] = (unsigned char) strtoul(buf, NULL, 16);
		src += 2;
		if (src[0] == '-' && (i % 2) == 1 && i < UUID_LEN - 1)
			src++;
	}
	if (braces)
	{
		if (*src != '}')
			return false;
		src++;
	}
	return *src == '\0';
}

/*
 * Decodes page_after for the request's sort: base64url of
 * "sort|key|key2|id" (what am_search_cursor makes); 22023 for anything else.
 */
static void
am_decode_cursor(AmSearch *s, text *cursor)
{
	const char *sort = am_sort_names[s->sort];
	const char *in = VARDATA_ANY(cursor);
	int			len = VARSIZE_ANY_EXHDR(cursor);
	char	   *raw;
	int			nraw = 0;
	uint32		acc = 0;
	int			bits = 0;
	int			i;
	char	   *parts[4];
	int			nparts = 1;
	pg_uuid_t  *id;
	int64		count;

	if (len == 0 || len > 400 || len % 4 == 1)
		am_bad_cursor(sort);
	raw = palloc(len + 1);
	for (i = 0; i < len; i++)
	{
		int			v = am_base64_value(in[i]);

		if (v < 0)
			am_bad_cursor(sort);
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			raw[nraw++] = (char) ((acc >> bits) & 0xFF);
		}
	}
	raw[nraw] = '\0';
	if (!pg_verify_mbstr(PG_UTF8, raw, nraw, true))
		am_bad_cursor(sort);
	parts[0] = raw;
	for (i = 0; i < nraw; i++)
		if (raw[i] == '|')
		{
			if (nparts == 4)
				am_bad_cursor(sort);
			raw[i] = '\0';
			parts[nparts++] = raw + i + 1;
		}
	if (nparts != 4 || strcmp(parts[0], sort) != 0)
		am_bad_cursor(sort);
	id = palloc(sizeof(pg_uuid_t));
	if (!am_parse_uuid(parts[3], id))
		am_bad_cursor(sort);
	s->after_id = UUIDPGetDatum(id);
	s->after = true;
	switch (s->sort)
	{
		case AM_SORT_RELEVANCE:
			{
				bool		error = false;

				s->after_score = float8in_internal_opt_error(parts[1], NULL, "double precision",
															 parts[1], &error);
				if (error)
					am_bad_cursor(NULL);
				break;
			}
		case AM_SORT_RATING:
			if (!am_is_decimal(parts[1]) || !am_parse_int64(parts[2], &count) ||
				count < PG_INT32_MIN || count > PG_INT32_MAX)
				am_bad_cursor(NULL);
			s->after_rating = DirectFunctionCall3(numeric_in, CStringGetDatum(parts[1]),
												  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
			s->after_count = count;
			break;
		case AM_SORT_POPULAR:
			if (!am_parse_int64(parts[1], &count) || count < PG_INT32_MIN || count > PG_INT32_MAX)
				am_bad_cursor(NULL);
			s->after_count = count;
			break;
		default:
			{
				/* microseconds since 1970 */
				const int64 shift = (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
				int64		t;

				if (!am_parse_int64(parts[1], &count) || pg_sub_s64_overflow(count, shift, &t) ||
					!IS_VALID_TIMESTAMP(t))
					am_bad_cursor(NULL);
				s->after_time = t;
				break;
			}
	}
}

/* NULL for an empty array; 22023 when an element is not one of allowed. */
static bool
am_check_values(Datum array, const char *const *allowed, int nallowed, bool *is_empty)
{
	ArrayType  *a = DatumGetArrayTypeP(array);
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i,
				j;

	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	*is_empty = n == 0;
	for (i = 0; i < n; i++)
	{
		bool		found = false;
		char	   *v;

		if (nulls[i])
			return false;
		v = TextDatumGetCString(elems[i]);
		for (j = 0; j < nallowed && !found; j++)
			found = strcmp(v, allowed[j]) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* Checks the arguments (22023 on bad ones) and decodes them into s. */
static void
am_check_arguments(FunctionCallInfo fcinfo, AmSearch *s)
{
	static const char *const relays[] = {"telegram", "whatsapp", "slack", "discord"};
	static const char *const models[] = {"claude", "gpt", "gemini", "llama", "mistral"};
	static const char *const pricing[] = {"per_session", "per_task", "free"};
	bool		empty;
	int			i;

	memset(s, 0, sizeof(*s));
	s->k = PG_ARGISNULL(7) ? 0 : PG_GETARG_INT32(7);
	if (s->k < 1 || s->k > 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("page_size must be between 1 and 100")));
	s->sort = -1;
	if (!PG_ARGISNULL(6))
	{
		char	   *sort = text_to_cstring(PG_GETARG_TEXT_PP(6));

		for (i = 0; i < 4; i++)
			if (strcmp(sort, am_sort_names[i]) == 0)
				s->sort = i;
	}
	if (s->sort < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown sort \"%s\"", PG_ARGISNULL(6) ? "<NULL>" : text_to_cstring(PG_GETARG_TEXT_PP(6))),
				 errhint("Sort by relevance, rating, popular or newest.")));
	/* the category is a lexeme of the GIN query: it must fit one */
	if (!PG_ARGISNULL(1))
	{
		if (VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(1)) > 1000)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("category too long"),
					 errdetail("A category filter has at most 1000 bytes.")));
		s->category = PG_GETARG_DATUM(1);
		s->filters |= AM_F_CATEGORY;
	}
	if (!PG_ARGISNULL(5))
	{
		char	   *v = text_to_cstring(PG_GETARG_TEXT_PP(5));
		bool		found = false;

		for (i = 0; i < 3 && !found; i++)
			found = strcmp(v, pricing[i]) == 0;
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown pricing model \"%s\"", v),
					 errhint("Use per_session, per_task or free.")));
		s->pricing = PG_GETARG_DATUM(5);
		s->filters |= AM_F_PRICING;
	}
	if (!PG_ARGISNULL(3))
	{
		if (!am_check_values(PG_GETARG_DATUM(3), relays, 4, &empty))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown relay in %s", OidOutputFunctionCall(F_ARRAY_OUT, PG_GETARG_DATUM(3))),
					 errhint("Relays are telegram, whatsapp, slack and discord.")));
		if (!empty)
		{
			s->relays = PG_GETARG_DATUM(3);
			s->filters |= AM_F_RELAYS;
		}
	}
	if (!PG_ARGISNULL(4))
	{
		if (!am_check_values(PG_GETARG_DATUM(4), models, 5, &empty))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown model in %s", OidOutputFunctionCall(F_ARRAY_OUT, PG_GETARG_DATUM(4))),
					 errhint("Models are claude, gpt, gemini, llama and mistral.")));
		if (!empty)
		{
			s->models = PG_GETARG_DATUM(4);
			s->filters |= AM_F_MODELS;
		}
	}
	if (!PG_ARGISNULL(2) && ArrayGetNItems(ARR_NDIM(PG_GETARG_ARRAYTYPE_P(2)),
										   ARR_DIMS(PG_GETARG_ARRAYTYPE_P(2))) > 0)
	{
		s->tags = PG_GETARG_DATUM(2);
		s->filters |= AM_F_TAGS;
	}
	if (!PG_ARGISNULL(8))
		am_decode_cursor(s, PG_GETARG_TEXT_PP(8));
}

/* Prepares (once per backend) and keeps a statement. */
static SPIPlanPtr
am_prepare_kept(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not prepare a search statement: %s", SPI_result_code_string(SPI_result))));
	if (SPI_keepplan(plan) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not keep a search statement")));
	return plan;
}

/* Runs a statement; its rows are in SPI_tuptable. */
static void
am_run(SPIPlanPtr plan, Datum *values, const char *nulls, long max_rows)
{
	int			rc = SPI_execute_plan(plan, values, nulls, true, max_rows);

	if (rc != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("search statement failed: %s", SPI_result_code_string(rc))));
}

/* The filters of a shape, on listing alias a. */
static void
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

		plan = am_prepare_kept(sql.data, 2, types);
	}
	else
		plan = am_prepare_kept(sql.data, AM_NPARAMS, am_param_types);
	if (am_nshapes < AM_MAX_SHAPES)
	{
		am_shapes[am_nshapes].key = key;
		am_shapes[am_nshapes].plan = plan;
		am_nshapes++;
	}
	return plan;
}

/* The parameters of the shape statements, from the request. */
static void
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

/* A double column of the current SPI rows. */
static double
am_float_col(HeapTuple row, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(row, SPI_tuptable->tupdesc, col, isnull);

	return *isnull ? 0 : DatumGetFloat8(d);
}

/* Puts one result row (card columns of an SPI row, score, cursor) in the tuplestore. */
static void
am_emit(ReturnSetInfo *rsinfo, AmSearch *s, HeapTuple row)
{
	Datum		values[AM_NCARD + 2];
	bool		nulls[AM_NCARD + 2];
	TupleDesc	spi = SPI_tuptable->tupdesc;
	char	   *key = NULL;
	char	   *key2 = NULL;
	bool		isnull;
	int			i;

	for (i = 0; i < AM_NCARD + 1; i++)
		values[i] = SPI_getbinval(row, spi, i + 1, &nulls[i]);
	switch (s->sort)
	{
		case AM_SORT_RELEVANCE:
			/* the score: with words the blend, without them the static score */
			key = float8out_internal(am_float_col(row, AM_NCARD + 1, &isnull));
			break;
		case AM_SORT_RATING:
			key = nulls[8] ? "0" : OidOutputFunctionCall(F_NUMERIC_OUT, values[8]);
			key2 = OidOutputFunctionCall(F_INT4OUT, values[9]);
			break;
		case AM_SORT_POPULAR:
			key = OidOutputFunctionCall(F_INT4OUT, values[10]);
			break;
		default:
			if (!nulls[14])
				key = psprintf(INT64_FORMAT, (int64) DatumGetTimestampTz(values[14]) +
							   (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
			break;
	}
	values[AM_NCARD + 1] = PointerGetDatum(am_search_cursor(am_sort_names[s->sort], key, key2, values[0]));
	nulls[AM_NCARD + 1] = false;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Emits the rows of the last statement, up to max. */
static void
am_emit_all(ReturnSetInfo *rsinfo, AmSearch *s, uint64 max)
{
	uint64		i;

	for (i = 0; i < SPI_processed && i < max; i++)
		am_emit(rsinfo, s, SPI_tuptable->vals[i]);
}

/* A type of agentmarket_private, by name. */
static Oid
am_private_type(const char *name)
{
	Oid			schema = get_namespace_oid("agentmarket_private", false);
	Oid			type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum(name),
									   ObjectIdGetDatum(schema));

	if (!OidIsValid(type))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type agentmarket_private.%s does not exist", name)));
	return type;
}

/* The filter values as lexemes (at most 1 + 1 + 4 + 5 distinct), by group. */
typedef struct AmFilterTokens
{
	Datum		tokens[11];
	char	   *names[11];
	int			group[11];
	int			ntokens;
	double		docs[4];		/* per group: listings with one of its lexemes */
	StringInfoData alternatives[4];	/* per group: 'lexeme' | 'lexeme' */
} AmFilterTokens;

/* Adds a filter value's lexeme (prefix value) to its group, once. */
static void
am_filter_token(AmFilterTokens *tokens, int group, const char *prefix, Datum value)
{
	char	   *token = psprintf("%s%s", prefix, TextDatumGetCString(value));
	StringInfo	alt = &tokens->alternatives[group];
	const char *c;
	int			t;

	for (t = 0; t < tokens->ntokens; t++)
		if (strcmp(tokens->names[t], token) == 0)
			return;
	if (tokens->ntokens == lengthof(tokens->tokens))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("too many search filter values")));
	tokens->names[tokens->ntokens] = token;
	tokens->tokens[tokens->ntokens] = CStringGetTextDatum(token);
	tokens->group[tokens->ntokens++] = group;
	if (alt->len > 0)
		appendStringInfoString(alt, " | ");
	/* quoted as a tsquery operand */
	appendStringInfoChar(alt, '\'');
	for (c = token; *c; c++)
	{
		if (*c == '\\' || *c == '\'')
			appendStringInfoChar(alt, *c);
		appendStringInfoChar(alt, *c);
	}
	appendStringInfoChar(alt, '\'');
}

/*
 * Plans the query and estimates, before any listing is read: joint (the
 * matches if words were independent), the filters' share of listings (from
 * the vocabulary's counts of their lexemes; tags: a guess of 10%), the GIN
 * query of words and filter lexemes, and the matches expected.
 */
static void
am_plan(AmSearch *s, text *query)
{
	TupleDesc	plan_desc = lookup_rowtype_tupdesc_copy(am_private_type("search_plan"), -1);
	HeapTupleData plan_tuple;
	HeapTupleHeader header;
	const char *setting = GetConfigOption("agentmarket.search_exhaustive_limit", true, false);
	StringInfoData filter_text;
	int			groups = 0;
	int			i;

	s->plan = am_search_prepare(query, plan_desc);
	header = DatumGetHeapTupleHeader(s->plan);
	plan_tuple.t_len = HeapTupleHeaderGetDatumLength(header);
	ItemPointerSetInvalid(&plan_tuple.t_self);
	plan_tuple.t_tableOid = InvalidOid;
	plan_tuple.t_data = header;
	heap_deform_tuple(&plan_tuple, plan_desc, s->plan_values, s->plan_nulls);
	s->has_query = !s->plan_nulls[0];
	s->ngroups = DatumGetInt32(s->plan_values[5]);

	s->exhaustive_limit = AM_EXHAUSTIVE_LIMIT;
	if (setting != NULL && strlen(setting) >= 1 && strlen(setting) <= 7 &&
		strspn(setting, "0123456789") == strlen(setting))
		s->exhaustive_limit = atoi(setting);

	if (!s->plan_nulls[7])
		s->published = (double) DatumGetInt64(s->plan_values[7]);
	else
	{
		if (am_plan_corpus_size == NULL)
			am_plan_corpus_size = am_prepare_kept("SELECT c.published::float8 FROM agentmarket_private.search_corpus c",
												  0, NULL);
		am_run(am_plan_corpus_size, NULL, NULL, 1);
		if (SPI_processed > 0)
		{
			bool		isnull;

			s->published = am_float_col(SPI_tuptable->vals[0], 1, &isnull);
		}
	}
	s->published = Max(s->published, 1);

	s->joint_null = s->plan_nulls[6];
	s->joint = s->joint_null ? 0 : (double) DatumGetInt64(s->plan_values[6]);
	if (s->ngroups > 1 && !DatumGetBool(s->plan_values[8]))
	{
		ArrayType  *docs = DatumGetArrayTypeP(s->plan_values[12]);
		Datum	   *d;
		bool	   *dn;
		int			n;
		double		sum = 0;

		deconstruct_array(docs, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, &dn, &n);
		for (i = 0; i < n; i++)
			sum += log(Max((double) DatumGetInt64(d[i]), 1.0) / s->published);
		s->joint = Min(s->joint, s->published * exp(sum));
	}

	/* the filters' lexemes: ' category x', ' pricing x', ' relay x', ' model x' */
	s->filter_share = 1;
	initStringInfo(&filter_text);
	if (s->filters & (AM_F_CATEGORY | AM_F_PRICING | AM_F_RELAYS | AM_F_MODELS))
	{
		AmFilterTokens tokens;
		Datum		param[1];
		Oid			text_array[1] = {TEXTARRAYOID};

		memset(&tokens, 0, sizeof(tokens));
		for (i = 0; i < 4; i++)
			initStringInfo(&tokens.alternatives[i]);
		if (s->filters & AM_F_CATEGORY)
			am_filter_token(&tokens, 0, " category ", s->category);
		if (s->filters & AM_F_PRICING)
			am_filter_token(&tokens, 1, " pricing ", s->pricing);
		for (i = 2; i <= 3; i++)
		{
			int			flag = i == 2 ? AM_F_RELAYS : AM_F_MODELS;

			if (s->filters & flag)
			{
				Datum	   *e;
				bool	   *en;
				int			n,
							j;

				deconstruct_array(DatumGetArrayTypeP(i == 2 ? s->relays : s->models), TEXTOID, -1, false,
								  TYPALIGN_INT, &e, &en, &n);
				for (j = 0; j < n; j++)
					am_filter_token(&tokens, i, i == 2 ? " relay " : " model ", e[j]);
			}
		}
		if (am_plan_filter_counts == NULL)
			am_plan_filter_counts = am_prepare_kept(
				"SELECT v.lexeme::text, v.ndoc::float8 FROM agentmarket_private.search_vocabulary v"
				" WHERE v.lexeme OPERATOR(pg_catalog.=) ANY ($1::text[] COLLATE \"C\")", 1, text_array);
		param[0] = PointerGetDatum(construct_array(tokens.tokens, tokens.ntokens, TEXTOID, -1, false, TYPALIGN_INT));
		am_run(am_plan_filter_counts, param, NULL, 0);
		for (i = 0; i < (int) SPI_processed; i++)
		{
			char	   *lexeme = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			bool		isnull;
			double		ndoc = am_float_col(SPI_tuptable->vals[i], 2, &isnull);
			int			t;

			for (t = 0; t < tokens.ntokens; t++)
				if (strcmp(tokens.names[t], lexeme) == 0)
					tokens.docs[tokens.group[t]] += ndoc;
		}
		for (i = 0; i < 4; i++)
			if (tokens.alternatives[i].len > 0)
			{
				if (groups++ > 0)
					appendStringInfoString(&filter_text, " & ");
				appendStringInfo(&filter_text, "(%s)", tokens.alternatives[i].data);
				s->filter_share *= Max(Min(tokens.docs[i] / s->published, 1), 1e-9);
			}
	}
	if (s->filters & AM_F_TAGS)
		s->filter_share *= 0.1;

	s->gin_null = false;
	if (groups == 0)
	{
		s->gin_null = !s->has_query;
		s->gin_query = s->plan_values[0];
	}
	else
	{
		Datum		filter_query = DirectFunctionCall1(tsqueryin, CStringGetDatum(filter_text.data));

		s->gin_query = s->has_query
			? DirectFunctionCall2(tsquery_and, s->plan_values[0], filter_query)
			: filter_query;
	}
	s->expected_null = s->has_query && s->joint_null;
	s->expected = (s->has_query ? s->joint : s->published) * s->filter_share;
}

/*
 * Sorted by a column, or relevance without words: keyset after the cursor.
 * Few expected matches (under L/3): they are found through GIN and sorted.
 * Otherwise the sort's index is walked for at most three times as many
 * listings as should hold a page of matches; when that does not fill the
 * page, GIN and sort after all.
 */
static void
am_sorted(ReturnSetInfo *rsinfo, AmSearch *s)
{
	Datum		values[AM_NPARAMS];
	char		nulls[AM_NPARAMS];
	bool		by_gin = !s->gin_null && !s->expected_null && s->expected < s->exhaustive_limit / 3;
	bool		words = s->ngroups > 0;

	am_bind(s, values, nulls);
	if (!by_gin)
	{
		int			cap;
		int			limit = 16;
		uint64		hits = 0;
		uint64		i;

		if (!s->has_query)
			cap = s->k;
		else if (s->joint_null)
			cap = AM_SORTED_CAP;
		else
			cap = (int) Min((double) AM_SORTED_CAP, ceil(3.0 * s->k * s->published / Max(s->joint, 1)));
		while (limit < cap)
			limit *= 2;
		am_run(am_shape_plan(AM_KIND_SORTED_WALK, s->sort, s->filters, s->after, s->has_query, words, limit),
			   values, nulls, cap);
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		hit = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, AM_NCARD + 3, &isnull);

			if (!isnull && DatumGetBool(hit) && hits < (uint64) s->k)
			{
				am_emit(rsinfo, s, SPI_tuptable->vals[i]);
				hits++;
			}
		}
		by_gin = hits < (uint64) s->k && SPI_processed == (uint64) cap && s->has_query;
		if (by_gin)
			tuplestore_clear(rsinfo->setResult);
	}
	if (by_gin)
	{
		am_run(am_shape_plan(AM_KIND_SORTED_GIN, s->sort, s->filters, s->after, s->has_query, words, 0),
			   values, nulls, 0);
		am_emit_all(rsinfo, s, s->k);
	}
}

/*
 * Relevance with words.  When the rarest word (all words under OR) is in at
 * most L listings, or the filters keep at most L, every match is scored
 * (one GIN scan of the words and filter lexemes).  Otherwise the walk in
 * static-score order with tiers (search_walk), which may find scoring every
 * match cheaper after all.
 */
static void
am_relevance(ReturnSetInfo *rsinfo, AmSearch *s)
{
	Datum		values[AM_NPARAMS];
	char		nulls[AM_NPARAMS];
	double		estimate = s->plan_nulls[6] ? 0 : (double) DatumGetInt64(s->plan_values[6]);
	bool		exact = Min(estimate, s->published * s->filter_share) <= s->exhaustive_limit || s->ngroups > 3;

	if (!exact)
	{
		Oid			request_type = am_private_type("search_request");
		TupleDesc	request_desc = lookup_rowtype_tupdesc_copy(request_type, -1);
		Datum		r[19];
		bool		rn[19];
		Datum		walk_values[1];
		bool		isnull;
		HeapTuple	row;

		if (am_plan_walk != NULL && am_plan_walk_type != request_type)
		{
			SPI_freeplan(am_plan_walk);
			am_plan_walk = NULL;
		}
		if (am_plan_walk == NULL)
		{
			am_plan_walk = am_prepare_kept("SELECT w.top_ids, w.top_scores, w.exact"
										   "  FROM agentmarket_private.search_walk($1) w", 1, &request_type);
			am_plan_walk_type = request_type;
		}
		memset(rn, true, sizeof(rn));
#define AM_FIELD(i, datum, present) do { if (present) { r[i] = (datum); rn[i] = false; } } while (0)
		AM_FIELD(0, s->category, s->filters & AM_F_CATEGORY);
		AM_FIELD(1, s->tags, s->filters & AM_F_TAGS);
		AM_FIELD(2, s->relays, s->filters & AM_F_RELAYS);
		AM_FIELD(3, s->models, s->filters & AM_F_MODELS);
		AM_FIELD(4, s->pricing, s->filters & AM_F_PRICING);
		AM_FIELD(5, CStringGetTextDatum(am_sort_names[s->sort]), true);
		AM_FIELD(6, Int32GetDatum(s->k), true);
		AM_FIELD(7, Float8GetDatum(s->after_score), s->after);
		AM_FIELD(11, s->after_id, s->after);
		AM_FIELD(12, s->plan, true);
		AM_FIELD(13, Float8GetDatum(s->published), true);
		AM_FIELD(14, Float8GetDatum(s->joint), !s->joint_null);
		AM_FIELD(15, Float8GetDatum(s->filter_share), true);
		AM_FIELD(16, s->gin_query, !s->gin_null);
		AM_FIELD(17, Float8GetDatum(s->expected), !s->expected_null);
		AM_FIELD(18, Float8GetDatum(s->exhaustive_limit), true);
#undef AM_FIELD
		walk_values[0] = HeapTupleGetDatum(heap_form_tuple(request_desc, r, rn));
		am_run(am_plan_walk, walk_values, NULL, 1);
		row = SPI_tuptable->vals[0];
		exact = DatumGetBool(SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &isnull));
		if (!exact)
		{
			Datum		ids[2];

			ids[0] = SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull);
			ids[1] = SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull);
			am_run(am_shape_plan(AM_KIND_ROWS, 0, 0, false, false, false, 0), ids, NULL, 0);
			am_emit_all(rsinfo, s, s->k);
			return;
		}
	}
	am_bind(s, values, nulls);
	am_run(am_shape_plan(AM_KIND_SCORE_ALL, AM_SORT_RELEVANCE, s->filters, s->after, true, true, 0),
		   values, nulls, 0);
	am_emit_all(rsinfo, s, s->k);
}

/*
 * search_agents: published listings matching a query and filters, a page
 * of them in the chosen sort after the cursor, each with its score and the
 * cursor of the page after it.  See README, "Search".
 */
/* SQL function: search_agents */
Datum
search_agents(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AmSearch	s;

	am_check_arguments(fcinfo, &s);
	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not connect to SPI")));
	am_plan(&s, PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0));
	if (s.sort != AM_SORT_RELEVANCE || s.ngroups == 0)
		am_sorted(rsinfo, &s);
	else
		am_relevance(rsinfo, &s);
	SPI_finish();
	return (Datum) 0;
}
