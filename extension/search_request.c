/*-------------------------------------------------------------------------
 * search_request.c
 *	  A search_agents call checked, decoded and planned (search_agents.h):
 *	  its arguments (22023 on bad ones), its page cursor, the query plan of
 *	  search_prepare and the estimates the strategy is chosen from, before
 *	  any listing is read.
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
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "agentmarket.h"
#include "search_agents.h"

const char *const am_sort_names[] = {"relevance", "rating", "popular", "newest"};

static SPIPlanPtr am_plan_corpus_size;
static SPIPlanPtr am_plan_filter_counts;

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
void
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

/*
 * Prepares (once per backend) and keeps a statement: with a generic plan,
 * or planned per call for the values given (custom).
 */
SPIPlanPtr
am_prepare_kept(const char *sql, int nargs, Oid *types, bool custom)
{
	SPIPlanPtr	plan;

	am_statement_settings();
	plan = SPI_prepare_cursor(sql, nargs, types,
										  custom ? CURSOR_OPT_CUSTOM_PLAN : CURSOR_OPT_GENERIC_PLAN);

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
void
am_run(SPIPlanPtr plan, Datum *values, const char *nulls, long max_rows)
{
	int			rc;

	am_statement_settings();
	rc = SPI_execute_plan(plan, values, nulls, true, max_rows);
	if (rc != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("search statement failed: %s", SPI_result_code_string(rc))));
}

/* A double column of the current SPI rows. */
double
am_float_col(HeapTuple row, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(row, SPI_tuptable->tupdesc, col, isnull);

	return *isnull ? 0 : DatumGetFloat8(d);
}

/* A type of agentmarket_private, by name. */
Oid
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

/* The filters that are lexemes (' category x', ...), in am_filters' order. */
const int	am_lexeme_filters[4] = {AM_F_CATEGORY, AM_F_PRICING, AM_F_RELAYS, AM_F_MODELS};

/*
 * The lexemes filter f (am_lexeme_filters' order) of the request matches,
 * as a document holds them: ' category x', ' pricing x', ' relay x' for
 * each relay, ' model x' for each model (NULL elements left out).
 */
char	  **
am_filter_lexemes(const AmSearch *s, int f, int *n)
{
	static const char *const prefix[4] = {" category ", " pricing ", " relay ", " model "};
	char	  **keys;

	*n = 0;
	if (f < 2)
	{
		keys = palloc(sizeof(char *));
		keys[(*n)++] = psprintf("%s%s", prefix[f], TextDatumGetCString(f == 0 ? s->category : s->pricing));
	}
	else
	{
		Datum	   *e;
		bool	   *en;
		int			ne,
					i;

		deconstruct_array(DatumGetArrayTypeP(f == 2 ? s->relays : s->models), TEXTOID, -1, false,
						  TYPALIGN_INT, &e, &en, &ne);
		keys = palloc(sizeof(char *) * Max(ne, 1));
		for (i = 0; i < ne; i++)
			if (!en[i])
				keys[(*n)++] = psprintf("%s%s", prefix[f], TextDatumGetCString(e[i]));
	}
	return keys;
}

/*
 * The filters' lexemes (' category x', ' pricing x', ' relay x', ' model x')
 * as a tsquery text, a group per filter; with counted, their share of
 * listings from the vocabulary's counts.
 */
static void
am_filters(AmSearch *s, StringInfo filter_text, bool counted)
{
	AmFilterTokens tokens;
	int			i;

	memset(&tokens, 0, sizeof(tokens));
	for (i = 0; i < 4; i++)
		initStringInfo(&tokens.alternatives[i]);
	if (s->filters & AM_F_CATEGORY)
		am_filter_token(&tokens, 0, " category ", s->category);
	if (s->filters & AM_F_PRICING)
		am_filter_token(&tokens, 1, " pricing ", s->pricing);
	for (i = 2; i <= 3; i++)
	{
		Datum	   *e;
		bool	   *en;
		int			n,
					j;

		if (!(s->filters & (i == 2 ? AM_F_RELAYS : AM_F_MODELS)))
			continue;
		deconstruct_array(DatumGetArrayTypeP(i == 2 ? s->relays : s->models), TEXTOID, -1, false,
						  TYPALIGN_INT, &e, &en, &n);
		for (j = 0; j < n; j++)
			am_filter_token(&tokens, i, i == 2 ? " relay " : " model ", e[j]);
	}
	if (counted)
	{
		Datum		param[1];
		Oid			text_array[1] = {TEXTARRAYOID};
		uint64		r;

		if (am_plan_filter_counts == NULL)
			am_plan_filter_counts = am_prepare_kept(
				"SELECT v.lexeme::text, v.ndoc::float8 FROM agentmarket_private.search_vocabulary v"
				" WHERE v.lexeme OPERATOR(pg_catalog.=) ANY ($1::text[] COLLATE \"C\")", 1, text_array, false);
		param[0] = PointerGetDatum(construct_array(tokens.tokens, tokens.ntokens, TEXTOID, -1, false, TYPALIGN_INT));
		am_run(am_plan_filter_counts, param, NULL, 0);
		for (r = 0; r < SPI_processed; r++)
		{
			char	   *lexeme = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
			bool		isnull;
			double		ndoc = am_float_col(SPI_tuptable->vals[r], 2, &isnull);
			int			t;

			for (t = 0; t < tokens.ntokens; t++)
				if (strcmp(tokens.names[t], lexeme) == 0)
					tokens.docs[tokens.group[t]] += ndoc;
		}
	}
	for (i = 0; i < 4; i++)
	{
		double		share = Max(Min(tokens.docs[i] / s->published, 1), 1e-9);

		if (tokens.alternatives[i].len == 0)
			continue;
		if (counted)
		{
			s->filter_docs[i] = tokens.docs[i];
			s->filter_share *= share;
			if (i == 0)
				s->category_share = share;
		}
		/*
		 * A filter most listings pass stays out of the GIN scan: reading its
		 * long posting list costs more than checking it on the rows.
		 */
		if (counted && share > AM_FILTER_SCANNED)
			continue;
		if (filter_text->len > 0)
			appendStringInfoString(filter_text, " & ");
		appendStringInfo(filter_text, "(%s)", tokens.alternatives[i].data);
	}
}

/*
 * Plans the query and estimates, before any listing is read: joint (the
 * matches if words were independent), the filters' share of listings (from
 * the vocabulary's counts of their lexemes; tags: a guess of 10%), the GIN
 * query of words and filter lexemes, and the matches expected.
 */
void
am_plan(AmSearch *s, text *query)
{
	StringInfoData filter_text;
	double		estimate;
	bool		words_decide;
	int			i;

	/* the plan's columns, as search_prepare would return them */
	am_search_prepare_values(query, s->plan_values, s->plan_nulls);
	s->has_query = !s->plan_nulls[0];
	s->ngroups = DatumGetInt32(s->plan_values[5]);

	s->exhaustive_limit = am_exhaustive_limit();

	if (!s->plan_nulls[7])
		s->published = (double) DatumGetInt64(s->plan_values[7]);
	else
	{
		if (am_plan_corpus_size == NULL)
			am_plan_corpus_size = am_prepare_kept("SELECT c.published::float8 FROM agentmarket_private.search_corpus c",
												  0, NULL, false);
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

	estimate = s->plan_nulls[6] ? 0 : (double) DatumGetInt64(s->plan_values[6]);
	/* the words alone rare enough for GIN: every strategy scores or sorts every match */
	words_decide = s->has_query && !s->plan_nulls[6] && estimate <= s->exhaustive_limit / 3;
	s->filter_share = 1;
	s->category_share = 1;
	initStringInfo(&filter_text);
	if (s->filters & (AM_F_CATEGORY | AM_F_PRICING | AM_F_RELAYS | AM_F_MODELS))
		am_filters(s, &filter_text, !words_decide);
	if (s->filters & AM_F_TAGS)
		s->filter_share *= 0.1;

	/*
	 * The GIN scan intersects the filter lexemes with the words, unless the
	 * words alone find few listings: the filters are checked on those (their
	 * posting lists are long, a probe of them would cost more).
	 */
	s->gin_null = false;
	if (filter_text.len == 0 || (s->has_query && !s->plan_nulls[6] && estimate <= AM_WORDS_ALONE))
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
	/*
	 * A listing is checked with the query as typed: the completions a prefix
	 * becomes for GIN (am_expand_prefix_query) match the same listings, but
	 * checking a row against 32 of them costs 32 binary searches.
	 */
	s->gin_check = s->gin_query;
	s->filter_text = filter_text.len > 0 ? filter_text.data : NULL;
	s->expected_null = s->has_query && s->joint_null;
	s->expected = (s->has_query ? s->joint : s->published) * s->filter_share;
}
