/*-------------------------------------------------------------------------
 * search.c
 *	  Marketplace search: typo candidates, text scoring of a listing's
 *	  weighted tsvector against an expanded query, the static quality score
 *	  (Bayesian-average rating and log of hires) and their blend.
 *
 * search.sql drives the queries; everything here is a pure function of its
 * arguments, so the scores it computes are reproducible bit for bit: the
 * keyset cursor and the early-stopping bound of search_agents rely on it.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "mb/pg_wchar.h"
#include "tsearch/ts_type.h"
#include "tsearch/ts_utils.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "agentmarket.h"

/*
 * The scoring constants.  This is their one source: the scorer below uses
 * them, search_prepare (search_prepare.c) bounds per-word values with them
 * (where search_agents may stop early; never below a score this file
 * computes, sql/search_bounds checks it), and search_scoring() shows them
 * to SQL.
 */
/* Weight of an occurrence in the name (A), tagline or tags (B), description (C). */
#define AM_NAME_WEIGHT 1.0
#define AM_HEAD_WEIGHT 0.5
#define AM_BODY_WEIGHT 0.25
/* D: no field has it; only the filter lexemes, which no query word matches. */
#define AM_OTHER_WEIGHT 0.1

/* A term one typo away from the word typed scores this fraction of it. */
#define AM_TYPO_FACTOR 0.5

/* A completion of the last word scores this fraction of an exact match. */
#define AM_PREFIX_COMPLETION_FACTOR 0.8

/* Text and static scores blend as TEXT_SHARE * text + (1 - TEXT_SHARE) * static. */
#define AM_TEXT_SHARE 0.75

/* Weight of a lexeme occurrence by its tsvector weight class D, C, B, A. */
static const double am_weight_value[4] = {AM_OTHER_WEIGHT, AM_BODY_WEIGHT, AM_HEAD_WEIGHT, AM_NAME_WEIGHT};

/* Bayesian average: the prior is this many reviews of this rating. */
#define AM_PRIOR_REVIEWS 5.0
#define AM_PRIOR_RATING 3.0

/* Hires reach half of their share at this many hires. */
#define AM_HIRES_HALF 100.0

/* Longest word handled by the typo functions, in characters. */
#define AM_MAX_WORD 64

/* One expanded query term: a lexeme of a group, its factor and prefix flag. */
typedef struct AmTerm
{
	char	   *lexeme;
	int			len;
	int			group;
	double		factor;
	bool		prefix;
} AmTerm;

/* The parsed term arrays of search_text_score, cached across calls. */
struct AmTermCache
{
	bytea	   *key;			/* the four arrays' bytes, concatenated */
	int			nterms;
	int			ngroups;
	AmTerm	   *terms;
	double	   *group_best;		/* scratch, one per group */
};

static int	am_term_cmp(const void *a, const void *b);

PG_FUNCTION_INFO_V1(search_typo_keys);
PG_FUNCTION_INFO_V1(search_is_one_typo);
PG_FUNCTION_INFO_V1(search_text_score);
PG_FUNCTION_INFO_V1(search_text_bound);
PG_FUNCTION_INFO_V1(search_static_score);
PG_FUNCTION_INFO_V1(search_blend);
PG_FUNCTION_INFO_V1(search_positive_lexemes);
PG_FUNCTION_INFO_V1(search_scoring);
PG_FUNCTION_INFO_V1(search_cursor);

/* Rounds a text score to a fixed grid so equal scores compare equal. */
static inline double
am_quantize(double x)
{
	return rint(x * 1e6) / 1e6;
}

/* Decodes a text into wide characters; false when it is too long. */
static bool
am_to_wchars(text *t, pg_wchar *out, int *nout)
{
	int			bytes = VARSIZE_ANY_EXHDR(t);
	int			n;

	if (pg_mbstrlen_with_len(VARDATA_ANY(t), bytes) > AM_MAX_WORD)
		return false;
	n = pg_mb2wchar_with_len(VARDATA_ANY(t), out, bytes);
	*nout = n;
	return true;
}

/* True when a and b are at optimal-string-alignment distance exactly 1. */
static bool
am_one_edit(const pg_wchar *a, int la, const pg_wchar *b, int lb)
{
	int			i = 0;

	if (la == lb)
	{
		int			first = -1,
					diffs = 0;

		for (i = 0; i < la; i++)
			if (a[i] != b[i])
			{
				if (first < 0)
					first = i;
				diffs++;
			}
		if (diffs == 1)
			return true;		/* substitution */
		/* transposition of two adjacent characters */
		return diffs == 2 && first + 1 < la &&
			a[first] == b[first + 1] && a[first + 1] == b[first];
	}
	if (la == lb + 1 || lb == la + 1)
	{
		const pg_wchar *longer = la > lb ? a : b;
		const pg_wchar *shorter = la > lb ? b : a;
		int			ls = la > lb ? lb : la;
		int			j;

		/* one deletion from the longer: skip the first difference, rest equal */
		while (i < ls && longer[i] == shorter[i])
			i++;
		for (j = i; j < ls; j++)
			if (longer[j + 1] != shorter[j])
				return false;
		return true;
	}
	return false;
}

/*
 * search_typo_keys: the word and every form of it with one character
 * deleted.  Two words within one edit of each other share a key, so the key
 * table finds typo candidates by exact lookups.
 */
/* SQL function: search_typo_keys */
Datum
search_typo_keys(PG_FUNCTION_ARGS)
{
	text	   *word = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(word);
	int			bytes = VARSIZE_ANY_EXHDR(word);
	Datum	   *keys;
	int			nkeys = 0;
	int			nchars;
	int			offset;

	nchars = pg_mbstrlen_with_len(s, bytes);
	if (nchars > AM_MAX_WORD)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("word too long for typo keys"),
				 errdetail("Words of up to %d characters have typo keys.", AM_MAX_WORD)));
	keys = palloc(sizeof(Datum) * (nchars + 1));
	keys[nkeys++] = PointerGetDatum(cstring_to_text_with_len(s, bytes));
	offset = 0;
	while (offset < bytes)
	{
		int			clen = pg_mblen(s + offset);
		text	   *key = palloc(VARHDRSZ + bytes - clen);
		bool		duplicate = false;
		int			k;

		SET_VARSIZE(key, VARHDRSZ + bytes - clen);
		memcpy(VARDATA(key), s, offset);
		memcpy(VARDATA(key) + offset, s + offset + clen, bytes - offset - clen);
		/* a doubled letter gives the same key twice */
		for (k = 1; k < nkeys && !duplicate; k++)
			duplicate = (VARSIZE(DatumGetPointer(keys[k])) == VARSIZE(key) &&
						 memcmp(VARDATA(DatumGetPointer(keys[k])), VARDATA(key),
								bytes - clen) == 0);
		if (!duplicate)
			keys[nkeys++] = PointerGetDatum(key);
		offset += clen;
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(keys, nkeys, TEXTOID, -1, false, TYPALIGN_INT));
}

/* SQL function: search_is_one_typo */
Datum
search_is_one_typo(PG_FUNCTION_ARGS)
{
	pg_wchar	a[AM_MAX_WORD * 4 + 1];
	pg_wchar	b[AM_MAX_WORD * 4 + 1];
	int			la,
				lb;

	if (!am_to_wchars(PG_GETARG_TEXT_PP(0), a, &la) ||
		!am_to_wchars(PG_GETARG_TEXT_PP(1), b, &lb))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(am_one_edit(a, la, b, lb));
}

/* Appends the bytes of an array argument to the cache key. */
static void
am_key_append(StringInfo key, ArrayType *array)
{
	appendBinaryStringInfo(key, (char *) array, VARSIZE(array));
}

/*
 * Parses the term arrays of search_text_score (in the current memory
 * context; key: the bytes the cache compares, or NULL).
 */
static AmTermCache *
am_terms_parse(ArrayType *lexemes, ArrayType *groups, ArrayType *factors, ArrayType *prefixes,
			   int32 ngroups, StringInfo key)
{
	AmTermCache *cache;
	Datum	   *lex_d,
			   *grp_d,
			   *fac_d,
			   *pre_d;
	bool	   *lex_n,
			   *grp_n,
			   *fac_n,
			   *pre_n;
	int			n,
				n2,
				n3,
				n4,
				i;

	deconstruct_array(lexemes, TEXTOID, -1, false, TYPALIGN_INT, &lex_d, &lex_n, &n);
	deconstruct_array(groups, INT4OID, 4, true, TYPALIGN_INT, &grp_d, &grp_n, &n2);
	deconstruct_array(factors, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &fac_d, &fac_n, &n3);
	deconstruct_array(prefixes, BOOLOID, 1, true, TYPALIGN_CHAR, &pre_d, &pre_n, &n4);
	if (n != n2 || n != n3 || n != n4 || ngroups < 1 || ngroups > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inconsistent search terms"),
				 errdetail("The term arrays must have equal lengths and at least one group.")));

	cache = palloc0(sizeof(AmTermCache));
	if (key != NULL)
	{
		cache->key = (bytea *) palloc(VARHDRSZ + key->len);
		SET_VARSIZE(cache->key, VARHDRSZ + key->len);
		memcpy(VARDATA(cache->key), key->data, key->len);
	}
	cache->nterms = n;
	cache->ngroups = ngroups;
	cache->terms = palloc0(sizeof(AmTerm) * Max(n, 1));
	cache->group_best = palloc0(sizeof(double) * ngroups);
	for (i = 0; i < n; i++)
	{
		AmTerm	   *t = &cache->terms[i];

		if (lex_n[i] || grp_n[i] || fac_n[i] || pre_n[i] ||
			DatumGetInt32(grp_d[i]) < 1 || DatumGetInt32(grp_d[i]) > ngroups)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid search term %d", i + 1),
					 errdetail("Terms are not null and name a group between 1 and %d.", ngroups)));
		t->lexeme = text_to_cstring(DatumGetTextPP(lex_d[i]));
		t->len = strlen(t->lexeme);
		t->group = DatumGetInt32(grp_d[i]) - 1;
		t->factor = DatumGetFloat8(fac_d[i]);
		t->prefix = DatumGetBool(pre_d[i]);
	}
	/* in the documents' lexeme order: each term's search starts where the last one's ended */
	qsort(cache->terms, n, sizeof(AmTerm), am_term_cmp);
	return cache;
}

/* The terms of a search_plan's arrays, for C callers (search_direct.c). */
AmTermCache *
am_terms(Datum lexemes, Datum groups, Datum factors, Datum prefixes, int32 ngroups)
{
	return am_terms_parse(DatumGetArrayTypeP(lexemes), DatumGetArrayTypeP(groups),
						  DatumGetArrayTypeP(factors), DatumGetArrayTypeP(prefixes), ngroups, NULL);
}

/* Parses (or finds in the cache) the term arrays of search_text_score. */
static AmTermCache *
am_term_cache(FunctionCallInfo fcinfo)
{
	ArrayType  *lexemes = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *groups = PG_GETARG_ARRAYTYPE_P(2);
	ArrayType  *factors = PG_GETARG_ARRAYTYPE_P(3);
	ArrayType  *prefixes = PG_GETARG_ARRAYTYPE_P(4);
	int32		ngroups = PG_GETARG_INT32(5);
	AmTermCache *cache = (AmTermCache *) fcinfo->flinfo->fn_extra;
	StringInfoData key;
	MemoryContext old;

	/* the same arrays as the last call (every row of a search): compared in place */
	if (cache != NULL &&
		VARSIZE(cache->key) - VARHDRSZ == VARSIZE(lexemes) + VARSIZE(groups) + VARSIZE(factors) +
		VARSIZE(prefixes) + sizeof(ngroups))
	{
		const char *at = VARDATA(cache->key);
		bool		same = true;

		same = same && memcmp(at, lexemes, VARSIZE(lexemes)) == 0;
		at += VARSIZE(lexemes);
		same = same && memcmp(at, groups, VARSIZE(groups)) == 0;
		at += VARSIZE(groups);
		same = same && memcmp(at, factors, VARSIZE(factors)) == 0;
		at += VARSIZE(factors);
		same = same && memcmp(at, prefixes, VARSIZE(prefixes)) == 0;
		at += VARSIZE(prefixes);
		if (same && memcmp(at, &ngroups, sizeof(ngroups)) == 0)
			return cache;
	}
	initStringInfo(&key);
	am_key_append(&key, lexemes);
	am_key_append(&key, groups);
	am_key_append(&key, factors);
	am_key_append(&key, prefixes);
	appendBinaryStringInfo(&key, (char *) &ngroups, sizeof(ngroups));
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	cache = am_terms_parse(lexemes, groups, factors, prefixes, ngroups, &key);
	MemoryContextSwitchTo(old);
	pfree(key.data);
	fcinfo->flinfo->fn_extra = cache;
	return cache;
}

/* The best weight value among an entry's positions (D when it has none). */
static double
am_entry_weight(TSVector doc, WordEntry *entry)
{
	WordEntryPos *pos = POSDATAPTR(doc, entry);
	int			npos = POSDATALEN(doc, entry);
	int			best = 0;
	int			i;

	for (i = 0; i < npos && best < 3; i++)
		if (WEP_GETWEIGHT(pos[i]) > best)
			best = WEP_GETWEIGHT(pos[i]);
	return am_weight_value[best];
}

/*
 * tsCompareString inlined (the scorer compares a few lexemes per term and
 * document): bytes as unsigned, then length; with prefix, a equal to the
 * start of b is equal.
 */
static inline int
am_lexeme_cmp(const char *a, int la, const char *b, int lb, bool prefix)
{
	int			n = Min(la, lb);
	int			i;

	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return (unsigned char) a[i] < (unsigned char) b[i] ? -1 : 1;
	if (prefix)
		return la > lb ? 1 : 0;
	return la == lb ? 0 : (la < lb ? -1 : 1);
}

/* Orders terms as a tsvector orders its lexemes. */
static int
am_term_cmp(const void *a, const void *b)
{
	const AmTerm *x = (const AmTerm *) a;
	const AmTerm *y = (const AmTerm *) b;

	return am_lexeme_cmp(x->lexeme, x->len, y->lexeme, y->len, false);
}

/* The first entry from lo on whose lexeme is not below (lexeme, len). */
static int
am_lower_bound(TSVector doc, const char *lexeme, int len, int lo)
{
	WordEntry  *entries = ARRPTR(doc);
	char	   *strings = STRPTR(doc);
	int			hi = doc->size;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (am_lexeme_cmp(strings + entries[mid].pos, entries[mid].len, lexeme, len, false) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Sums per-group values in group order and quantizes the mean. */
double
am_group_mean(const double *values, int ngroups)
{
	double		sum = 0;
	int			g;

	for (g = 0; g < ngroups; g++)
		sum += values[g];
	return am_quantize(sum / ngroups);
}

/*
 * search_text_score: for each query group (a word with its typo and prefix
 * alternatives) the best of weight(occurrence) * factor over the group's
 * terms in the document; the score is the mean over groups, in [0, 1].
 */
/* SQL function: search_text_score */
Datum
search_text_score(PG_FUNCTION_ARGS)
{
	TSVector	doc = PG_GETARG_TSVECTOR(0);

	PG_RETURN_FLOAT8(am_text_score(am_term_cache(fcinfo), doc));
}

/* The text score of a document (search_text_score), for C callers too. */
double
am_text_score(AmTermCache *cache, TSVector doc)
{
	WordEntry  *entries = ARRPTR(doc);
	char	   *strings = STRPTR(doc);
	int			i,
				from = 0;

	memset(cache->group_best, 0, sizeof(double) * cache->ngroups);
	for (i = 0; i < cache->nterms && from < doc->size; i++)
	{
		AmTerm	   *t = &cache->terms[i];
		int			at = am_lower_bound(doc, t->lexeme, t->len, from);

		/* the terms are in lexeme order: the next one's entries are not before this one's */
		from = at;
		for (; at < doc->size; at++)
		{
			WordEntry  *e = &entries[at];
			double		value;

			if (am_lexeme_cmp(t->lexeme, t->len, strings + e->pos, e->len, t->prefix) != 0)
				break;
			value = am_entry_weight(doc, e) * t->factor;
			if (e->len != t->len)
				value *= AM_PREFIX_COMPLETION_FACTOR;
			if (value > cache->group_best[t->group])
				cache->group_best[t->group] = value;
			if (!t->prefix)
				break;
		}
	}
	return am_group_mean(cache->group_best, cache->ngroups);
}

/* SQL function: search_text_bound */
Datum
search_text_bound(PG_FUNCTION_ARGS)
{
	ArrayType  *bounds = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *values;
	bool	   *nulls;
	double	   *v;
	int			n,
				i;

	deconstruct_array(bounds, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &values, &nulls, &n);
	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("text bound needs at least one group")));
	v = palloc(sizeof(double) * n);
	for (i = 0; i < n; i++)
		v[i] = nulls[i] ? 0 : DatumGetFloat8(values[i]);
	PG_RETURN_FLOAT8(am_group_mean(v, n));
}

/*
 * search_static_score: a listing's quality without the query, in [0, 1]:
 * 0.6 of its Bayesian-average rating (5 prior reviews of 3 stars), scaled
 * from 1..5, plus 0.4 of ln(1+hires) / (ln(1+hires) + ln(101)).
 */
/* SQL function: search_static_score */
Datum
search_static_score(PG_FUNCTION_ARGS)
{
	double		rating = 0;
	double		reviews = PG_ARGISNULL(1) ? 0 : Max(PG_GETARG_INT32(1), 0);
	double		hires = PG_ARGISNULL(2) ? 0 : Max(PG_GETARG_INT32(2), 0);
	double		bayes,
				lh,
				score;

	if (!PG_ARGISNULL(0))
		rating = DatumGetFloat8(DirectFunctionCall1(numeric_float8, PG_GETARG_DATUM(0)));
	if (PG_ARGISNULL(0) || rating < 1 || rating > 5)
		reviews = 0;
	bayes = (AM_PRIOR_REVIEWS * AM_PRIOR_RATING + reviews * rating) / (AM_PRIOR_REVIEWS + reviews);
	lh = log1p(hires);
	score = 0.6 * (bayes - 1) / 4 + 0.4 * lh / (lh + log1p(AM_HIRES_HALF));
	PG_RETURN_FLOAT8(am_quantize(score));
}

/* SQL function: search_blend */
Datum
search_blend(PG_FUNCTION_ARGS)
{
	double		text_score = PG_GETARG_FLOAT8(0);
	double		static_score = PG_GETARG_FLOAT8(1);

	PG_RETURN_FLOAT8(am_blend(text_score, static_score));
}

/* The score of a listing from its text and static scores (search_blend). */
double
am_blend(double text_score, double static_score)
{
	/* on a 1e-9 grid: still monotone, and prints without float noise */
	return rint((AM_TEXT_SHARE * text_score + (1 - AM_TEXT_SHARE) * static_score) * 1e9) / 1e9;
}

/* Collects the lexemes of a tsquery that are not under a NOT. */
static void
am_collect_positive(TSQuery query, QueryItem *item, bool negated, Datum *out, int *nout)
{
	check_stack_depth();
	if (item->type == QI_VAL)
	{
		QueryOperand *op = &item->qoperand;
		char	   *lexeme = GETOPERAND(query) + op->distance;
		int			k;

		if (negated)
			return;
		for (k = 0; k < *nout; k++)
		{
			text	   *seen = DatumGetTextPP(out[k]);

			if (VARSIZE_ANY_EXHDR(seen) == op->length &&
				memcmp(VARDATA_ANY(seen), lexeme, op->length) == 0)
				return;
		}
		out[(*nout)++] = PointerGetDatum(cstring_to_text_with_len(lexeme, op->length));
		return;
	}
	if (item->qoperator.oper == OP_NOT)
	{
		am_collect_positive(query, item + 1, !negated, out, nout);
		return;
	}
	/* left operand first, so the lexemes come in typing order */
	am_collect_positive(query, item + item->qoperator.left, negated, out, nout);
	am_collect_positive(query, item + 1, negated, out, nout);
}

/*
 * search_positive_lexemes: the distinct lexemes of a query that a match must
 * or may contain (those under a NOT are left out), in query order.
 */
/* SQL function: search_positive_lexemes */
Datum
search_positive_lexemes(PG_FUNCTION_ARGS)
{
	TSQuery		query = PG_GETARG_TSQUERY(0);
	Datum	   *out;
	int			nout = 0;

	if (query->size == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TEXTOID));
	out = palloc(sizeof(Datum) * query->size);
	am_collect_positive(query, GETQUERY(query), false, out, &nout);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, nout, TEXTOID, -1, false, TYPALIGN_INT));
}

/* The scoring constants, for the C that bounds scores (search_prepare.c). */
void
am_search_scoring(AmScoring *scoring)
{
	scoring->name_weight = AM_NAME_WEIGHT;
	scoring->head_weight = AM_HEAD_WEIGHT;
	scoring->body_weight = AM_BODY_WEIGHT;
	scoring->typo_factor = AM_TYPO_FACTOR;
	scoring->completion_factor = AM_PREFIX_COMPLETION_FACTOR;
	scoring->text_share = AM_TEXT_SHARE;
}

/*
 * search_scoring: the constants the scorer uses, for the SQL that works with
 * scores: field weights, the typo and completion factors and the text share
 * of the blend.
 */
/* SQL function: search_scoring */
Datum
search_scoring(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	AmScoring	w;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("search_scoring must return a row")));
	tupdesc = BlessTupleDesc(tupdesc);
	am_search_scoring(&w);
	values[0] = Float8GetDatum(w.name_weight);
	values[1] = Float8GetDatum(w.head_weight);
	values[2] = Float8GetDatum(w.body_weight);
	values[3] = Float8GetDatum(w.typo_factor);
	values[4] = Float8GetDatum(w.completion_factor);
	values[5] = Float8GetDatum(w.text_share);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* Appends a text argument, or nothing when it is NULL. */
static void
am_append_text_arg(StringInfo out, FunctionCallInfo fcinfo, int arg)
{
	if (!PG_ARGISNULL(arg))
	{
		text	   *t = PG_GETARG_TEXT_PP(arg);

		appendBinaryStringInfo(out, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	}
}

/* base64url (no padding) of len bytes into out (room for (len * 4 + 2) / 3); its length. */
static int
am_base64url_into(const unsigned char *bytes, int len, char *out)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char	   *o = out;
	int			i;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];

		*o++ = alphabet[(v >> 18) & 63];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = alphabet[v & 63];
	}
	if (len - i == 1)
	{
		uint32		v = bytes[i] << 16;

		*o++ = alphabet[(v >> 18) & 63];
		*o++ = alphabet[(v >> 12) & 63];
	}
	else if (len - i == 2)
	{
		uint32		v = (bytes[i] << 16) | (bytes[i + 1] << 8);

		*o++ = alphabet[(v >> 18) & 63];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
	}
	return o - out;
}

/* base64url (no padding) of len bytes, as a text. */
static text *
am_base64url(const char *data, int len)
{
	text	   *out = palloc(VARHDRSZ + (len * 4 + 2) / 3);

	SET_VARSIZE(out, VARHDRSZ + am_base64url_into((const unsigned char *) data, len, VARDATA(out)));
	return out;
}

/*
 * The page cursor of a row for C callers (search_agents.c): what
 * search_cursor(sort, key, key2, id) returns; a NULL key is empty.  (Made
 * for every row a search returns: written straight into its text, the id
 * as uuid_out writes it.)
 */
text *
am_search_cursor(const char *sort, const char *key, const char *key2, Datum id)
{
	static const char hex[] = "0123456789abcdef";
	const pg_uuid_t *uuid = DatumGetUUIDP(id);
	int			sort_len = strlen(sort);
	int			key_len = key ? strlen(key) : 0;
	int			key2_len = key2 ? strlen(key2) : 0;
	int			len = sort_len + key_len + key2_len + 3 + 36;
	char		stack_raw[128];
	char	   *raw = len <= (int) sizeof(stack_raw) ? stack_raw : palloc(len);
	char	   *r = raw;
	text	   *out;
	int			i;

	memcpy(r, sort, sort_len);
	r += sort_len;
	*r++ = '|';
	memcpy(r, key ? key : "", key_len);
	r += key_len;
	*r++ = '|';
	memcpy(r, key2 ? key2 : "", key2_len);
	r += key2_len;
	*r++ = '|';
	for (i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*r++ = '-';
		*r++ = hex[uuid->data[i] >> 4];
		*r++ = hex[uuid->data[i] & 0x0F];
	}
	Assert(r - raw == len);
	out = palloc(VARHDRSZ + (len * 4 + 2) / 3);
	SET_VARSIZE(out, VARHDRSZ + am_base64url_into((unsigned char *) raw, len, VARDATA(out)));
	if (raw != stack_raw)
		pfree(raw);
	return out;
}

/*
 * search_cursor: the opaque page cursor of a row, base64url (no padding) of
 * "sort|key|key2|id"; a NULL key is empty.  search_agents decodes it
 * (search_agents.c; search_cursor_parts in SQL).
 * (In C: it is computed for every row returned, and the SQL version's
 * convert_to is not immutable, so it never inlined.)
 */
/* SQL function: search_cursor */
Datum
search_cursor(PG_FUNCTION_ARGS)
{
	StringInfoData raw;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(3))
		PG_RETURN_NULL();
	initStringInfo(&raw);
	am_append_text_arg(&raw, fcinfo, 0);
	appendStringInfoChar(&raw, '|');
	am_append_text_arg(&raw, fcinfo, 1);
	appendStringInfoChar(&raw, '|');
	am_append_text_arg(&raw, fcinfo, 2);
	appendStringInfoChar(&raw, '|');
	appendStringInfoString(&raw, DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(3))));
	PG_RETURN_TEXT_P(am_base64url(raw.data, raw.len));
}
