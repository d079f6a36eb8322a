/*-------------------------------------------------------------------------
 * search_prepare.c
 *	  Query planning of marketplace search in C: a user's query becomes a
 *	  search_plan (search.sql) of expanded terms, estimates and score
 *	  bounds.
 *
 * Every search calls this first, so it reads the vocabulary directly
 * through its btree indexes (search_vocabulary.c: the corpus size, the
 * words' counts, the completions of a prefix, the typo candidates through
 * the deletion index): a handful of index probes, where starting the
 * executor for one statement cost more than all of them (sql/search_prepare
 * compares the plans with the same lookups in SQL).  The bounds use the scoring constants of
 * search.c (am_search_scoring), so they are never below a score the scorer
 * gives (sql/search_bounds).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "tsearch/ts_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/lsyscache.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "agentmarket.h"
#include "search_prepare.h"

/* Queries are cut to this many characters before parsing. */
#define AM_QUERY_PARSED_CHARS 512
/* Longer queries are refused. */
#define AM_QUERY_MAX_CHARS 4096
/* Queries with more distinct words than this are refused. */
#define AM_QUERY_MAX_WORDS 12

/* One term of a word: the word itself or a typo of it, with its counts. */
typedef struct AmPrepTerm
{
	char	   *lexeme;
	int			kind;			/* 0 the word typed, 1 a typo */
	double		factor;
	bool		prefix;
	int64		ndoc,
				n_a,
				n_b,
				n_c;
	double		name_bound,
				head_bound,
				body_bound;
} AmPrepTerm;

PG_FUNCTION_INFO_V1(search_prepare);

static Oid	am_english_oid = InvalidOid;


/* Query texts of fewer bytes have their parse kept per backend. */
#define AM_PARSE_KEY_BYTES 256
/* Parses kept; more empty the cache first. */
#define AM_PARSED_QUERIES 1024

/* A query text's parse, kept. */
typedef struct AmParseEntry
{
	char		text[AM_PARSE_KEY_BYTES];	/* the hash key */
	TSQuery		query;
} AmParseEntry;

static HTAB *am_parse_cache;
static MemoryContext am_parse_cxt;
static bool am_parse_valid;
static bool am_parse_callbacks;

/*
 * An empty per-backend cache keyed by NUL-padded strings of keysize bytes:
 * *cxt (made under TopMemoryContext the first time) is emptied, with any
 * table built in it before, and a new table is built there.  name, the
 * context's and the table's, must be a string constant (a context keeps it).
 */
HTAB *
am_backend_cache(MemoryContext *cxt, const char *name, Size keysize, Size entrysize, long nelem)
{
	HASHCTL		ctl;

	if (*cxt == NULL)
		*cxt = AllocSetContextCreateInternal(TopMemoryContext, name, ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(*cxt);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = *cxt;
	return hash_create(name, nelem, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* A text search configuration, dictionary, parser or template changed: parse again. */
static void
am_parse_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	am_parse_valid = false;
	am_plan_cache_reset();
}

/*
 * websearch_to_tsquery under english.  A query's parse depends only on its
 * text and the text search configuration (its dictionaries are read once
 * per backend as PostgreSQL's own cache reads them), so the parse of a
 * short text is kept per backend until a configuration, dictionary, parser
 * or template changes (syscache callbacks).
 */
static TSQuery
am_parse_query(text *query)
{
	int			len = VARSIZE_ANY_EXHDR(query);
	char		key[AM_PARSE_KEY_BYTES];
	AmParseEntry *entry;
	TSQuery		q;
	bool		found;

	if (!am_parse_callbacks)
	{
		CacheRegisterSyscacheCallback(TSCONFIGMAP, am_parse_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(TSCONFIGOID, am_parse_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(TSDICTOID, am_parse_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(TSPARSEROID, am_parse_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(TSTEMPLATEOID, am_parse_invalidate, (Datum) 0);
		am_parse_callbacks = true;
	}
	if (len >= AM_PARSE_KEY_BYTES || memchr(VARDATA_ANY(query), '\0', len) != NULL)
		return DatumGetTSQuery(DirectFunctionCall2(websearch_to_tsquery_byid, ObjectIdGetDatum(am_english_oid),
												   PointerGetDatum(query)));
	if (!am_parse_valid || am_parse_cache == NULL || hash_get_num_entries(am_parse_cache) >= AM_PARSED_QUERIES)
	{
		am_parse_cache = am_backend_cache(&am_parse_cxt, "search query parses", AM_PARSE_KEY_BYTES,
										  sizeof(AmParseEntry), 128);
		am_parse_valid = true;
	}
	memset(key, 0, sizeof(key));
	memcpy(key, VARDATA_ANY(query), len);
	entry = (AmParseEntry *) hash_search(am_parse_cache, key, HASH_FIND, NULL);
	if (entry == NULL)
	{
		TSQuery		parsed = DatumGetTSQuery(DirectFunctionCall2(websearch_to_tsquery_byid,
																 ObjectIdGetDatum(am_english_oid),
																 PointerGetDatum(query)));

		/* an invalidation while parsing: the parse is used, not kept */
		if (!am_parse_valid)
			return parsed;
		q = MemoryContextAlloc(am_parse_cxt, VARSIZE(parsed));
		memcpy(q, parsed, VARSIZE(parsed));
		entry = (AmParseEntry *) hash_search(am_parse_cache, key, HASH_ENTER, &found);
		entry->query = q;
		return parsed;
	}
	q = palloc(VARSIZE(entry->query));
	memcpy(q, entry->query, VARSIZE(entry->query));
	return q;
}

/* A lexeme quoted as a tsquery operand, with a prefix ('a/', 'b/' or ''). */
void
am_append_quoted(StringInfo out, const char *field, const char *lexeme, bool prefix)
{
	const char *c;

	appendStringInfoChar(out, '\'');
	appendStringInfoString(out, field);
	for (c = lexeme; *c; c++)
	{
		if (*c == '\\' || *c == '\'')
			appendStringInfoChar(out, *c);
		appendStringInfoChar(out, *c);
	}
	appendStringInfoChar(out, '\'');
	if (prefix)
		appendStringInfoString(out, ":*");
}

/* Orders terms as the plan lists them: the word, then its typos by lexeme. */
static int
am_term_cmp(const void *a, const void *b)
{
	const AmPrepTerm *x = (const AmPrepTerm *) a;
	const AmPrepTerm *y = (const AmPrepTerm *) b;

	if (x->kind != y->kind)
		return x->kind - y->kind;
	return strcmp(x->lexeme, y->lexeme);
}

/* The last run of letters and digits the query ends with, or NULL. */
static text *
am_query_tail(text *query)
{
	LOCAL_FCINFO(call, 2);
	Datum		tail;
	const char *data = VARDATA_ANY(query);
	int			len = VARSIZE_ANY_EXHDR(query);
	int			start = len;

	/*
	 * ASCII letters and digits are [[:alnum:]] in every locale, other ASCII
	 * characters are not: a query ending in ASCII has its tail found without
	 * the regular expression (a tenth of a short search's planning).
	 */
	while (start > 0 && ((data[start - 1] >= '0' && data[start - 1] <= '9') ||
						 (data[start - 1] >= 'A' && data[start - 1] <= 'Z') ||
						 (data[start - 1] >= 'a' && data[start - 1] <= 'z')))
		start--;
	if (start == 0 || !IS_HIGHBIT_SET(data[start - 1]))
		return start == len ? NULL : cstring_to_text_with_len(data + start, len - start);

	/* called directly: no match is a NULL result */
	InitFunctionCallInfoData(*call, NULL, 2, DEFAULT_COLLATION_OID, NULL, NULL);
	call->args[0].value = PointerGetDatum(query);
	call->args[0].isnull = false;
	call->args[1].value = CStringGetTextDatum("([[:alnum:]]+)$");
	call->args[1].isnull = false;
	tail = textregexsubstr(call);
	return call->isnull ? NULL : DatumGetTextPP(tail);
}

/* The first lexeme of a text under the english configuration, or NULL. */
static char *
am_first_lexeme(text *t)
{
	TSVector	v;
	WordEntry  *e;

	v = DatumGetTSVector(DirectFunctionCall2(to_tsvector_byid, ObjectIdGetDatum(am_english_oid),
											 PointerGetDatum(t)));
	if (v->size == 0)
		return NULL;
	e = ARRPTR(v);
	return pnstrdup(STRPTR(v) + e->pos, e->len);
}

/*
 * Completes a term whose own counts are read: adds the counts of its
 * completions when it is a prefix (x: ndoc, n_a, n_b, n_c of the words it
 * extends to), and sets its bounds.
 */
static void
am_term_stats(AmPrepTerm *t, const AmScoring *w, const int64 *x)
{
	int64		x_ndoc = 0,
				x_a = 0,
				x_b = 0,
				x_c = 0;
	double		e_name,
				e_head,
				e_body;

	if (t->prefix)
	{
		x_ndoc = x[0];
		x_a = x[1];
		x_b = x[2];
		x_c = x[3];
	}
	/* a last word no word of the vocabulary extends is matched exactly */
	t->prefix = t->prefix && x_ndoc > 0;
	e_name = t->n_a > 0 ? t->factor * w->name_weight : 0;
	e_head = t->n_b > 0 ? t->factor * w->head_weight : 0;
	e_body = t->ndoc > 0 ? t->factor * w->body_weight : 0;
	t->name_bound = Max(e_name, x_a > 0 ? t->factor * w->completion_factor * w->name_weight : 0);
	t->head_bound = Max(e_head, x_b > 0 ? t->factor * w->completion_factor * w->head_weight : 0);
	t->body_bound = Max(e_body, x_ndoc > 0 ? t->factor * w->completion_factor * w->body_weight : 0);
	t->ndoc += x_ndoc;
	t->n_a += x_a;
	t->n_b += x_b;
	t->n_c += x_c;
}

/* Reads the counts of a lookup row into a term. */
static void
am_term_counts(AmPrepTerm *t, const AmLookupRow *row)
{
	t->ndoc = row->counts[0];
	t->n_a = row->counts[1];
	t->n_b = row->counts[2];
	t->n_c = row->counts[3];
}

/*
 * A query text's whole plan, kept per backend (search_vocabulary.c's
 * am_plan_cache_open): the values as am_search_prepare_values returns them.
 * Kept under the corpus row's counts_xact, as the vocabulary lookups are,
 * and the corpus size; dropped when a text search configuration changes
 * (the parse's syscache callbacks).  A query seen before is then planned
 * from the corpus row alone: no parse, no lookup, no arrays built.
 */
typedef struct AmPlanEntry
{
	char		key[AM_PLAN_KEY_BYTES]; /* the query's text, NUL-ended */
	int64		published;
	Datum		values[AM_PLAN_COLUMNS];
	bool		nulls[AM_PLAN_COLUMNS];
} AmPlanEntry;

/* Whether a plan column is a varlena (else an int4, int8 or bool Datum, by value). */
static bool
am_plan_column_varlena(int c)
{
	return c <= 4 || c >= 9;
}

/* Copies a plan's values (varlenas into cxt, or the current context when NULL). */
static void
am_plan_copy(Datum *dst, bool *dst_nulls, const Datum *src, const bool *src_nulls, MemoryContext cxt)
{
	MemoryContext old = cxt != NULL ? MemoryContextSwitchTo(cxt) : CurrentMemoryContext;
	int			c;

	for (c = 0; c < AM_PLAN_COLUMNS; c++)
	{
		dst_nulls[c] = src_nulls[c];
		dst[c] = !src_nulls[c] && am_plan_column_varlena(c) ? datumCopy(src[c], false, -1) : src[c];
	}
	MemoryContextSwitchTo(old);
}

/*
 * Builds a one-dimensional array of Datums of a type: int4, int8, float8,
 * text and bool with their storage as pg_type has it (no catalog lookup per
 * array), any other through the catalog.
 */
static Datum
am_array(Datum *values, int n, Oid type)
{
	int16		typlen;
	bool		byval;
	char		align;

	switch (type)
	{
		case INT4OID:
			return PointerGetDatum(construct_array(values, n, type, sizeof(int32), true, TYPALIGN_INT));
		case INT8OID:
			return PointerGetDatum(construct_array(values, n, type, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		case FLOAT8OID:
			return PointerGetDatum(construct_array(values, n, type, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		case TEXTOID:
			return PointerGetDatum(construct_array(values, n, type, -1, false, TYPALIGN_INT));
		case BOOLOID:
			return PointerGetDatum(construct_array(values, n, type, sizeof(bool), true, TYPALIGN_CHAR));
		default:
			get_typlenbyvalalign(type, &typlen, &byval, &align);
			return PointerGetDatum(construct_array(values, n, type, typlen, byval, align));
	}
}

/*
 * search_prepare: websearch syntax (cut to 512 characters), the distinct
 * words outside any NOT, each with up to eight one-typo alternatives (words
 * of 5 to 64 characters) and the last word as a prefix when the query ends
 * inside it; vocabulary counts per word and field, the estimate (the rarest
 * word, or all words under OR) and per word the best value a term can have
 * in a name, tagline/tags or description.  The query is rewritten so each
 * word matches any of its terms.  22023 for a query over 4,096 characters or
 * with more than 12 words.
 */
/* SQL function: search_prepare */
Datum
search_prepare(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("search_prepare must return a row")));
	PG_RETURN_DATUM(am_search_prepare(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
									  BlessTupleDesc(tupdesc)));
}

/*
 * The body of search_prepare, for C callers too (search_agents.c): the plan
 * of a query (NULL: no query) as a search_plan row of this descriptor.
 */
Datum
am_search_prepare(text *query, TupleDesc tupdesc)
{
	Datum		values[AM_PLAN_COLUMNS];
	bool		nulls[AM_PLAN_COLUMNS];

	am_search_prepare_values(query, values, nulls);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/* The same plan as the values and nulls of its columns, for C that reads them. */
void
am_search_prepare_values(text *query, Datum *values, bool *nulls)
{
	const char *qdata;
	int			qbytes;
	int			i,
				g;
	TSQuery		q0;
	ArrayType  *positives;
	Datum	   *words;
	bool	   *word_nulls;
	int			nwords;
	char	   *last_lexeme = NULL;
	text	   *tail;
	AmScoring	w;
	AmPrepTerm **terms;
	int		   *nterms;
	int64		published = 0;
	AmLookupRow *rows;
	int			nrows;
	int64		completions[4] = {0, 0, 0, 0};
	bool		any_word = false;
	HTAB	   *plans = NULL;
	MemoryContext plans_cxt = NULL;
	char		plan_key[AM_PLAN_KEY_BYTES];
	int64		plan_published = 0;

	memset(nulls, true, sizeof(bool) * AM_PLAN_COLUMNS);
	nulls[5] = false;
	values[5] = Int32GetDatum(0);

	if (query == NULL)
		return;
	qdata = VARDATA_ANY(query);
	qbytes = VARSIZE_ANY_EXHDR(query);
	for (i = 0; i < qbytes && qdata[i] == ' '; i++)
		;
	if (i == qbytes)
		return;
	if (pg_mbstrlen_with_len(qdata, qbytes) > AM_QUERY_MAX_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("search query too long"),
				 errdetail("A query may have up to %d characters; only the first %d are searched.",
						   AM_QUERY_MAX_CHARS, AM_QUERY_PARSED_CHARS)));

	/* a query planned before under this vocabulary: its plan as it was */
	if (qbytes < AM_PLAN_KEY_BYTES)
	{
		plans = am_plan_cache_open(sizeof(AmPlanEntry), &plan_published, &plans_cxt);
		if (plans != NULL)
		{
			AmPlanEntry *kept;

			memcpy(plan_key, qdata, qbytes);
			plan_key[qbytes] = '\0';
			kept = (AmPlanEntry *) hash_search(plans, plan_key, HASH_FIND, NULL);
			if (kept != NULL && kept->published == plan_published && am_vocabulary_check_read())
			{
				am_plan_copy(values, nulls, kept->values, kept->nulls, NULL);
				return;
			}
		}
	}

	if (!OidIsValid(am_english_oid))
		am_english_oid = get_ts_config_oid(stringToQualifiedNameList("pg_catalog.english"), false);
	/*
	 * websearch syntax never raises a syntax error; long input is cut (and a
	 * word cut there is the last word, a prefix)
	 */
	query = cstring_to_text_with_len(qdata, pg_mbcharcliplen(qdata, qbytes, AM_QUERY_PARSED_CHARS));
	q0 = am_parse_query(query);
	if (q0->size == 0)			/* only stop words */
		return;
	values[0] = PointerGetDatum(q0);
	nulls[0] = false;
	positives = DatumGetArrayTypeP(DirectFunctionCall1(search_positive_lexemes, PointerGetDatum(q0)));
	deconstruct_array(positives, TEXTOID, -1, false, TYPALIGN_INT, &words, &word_nulls, &nwords);
	if (nwords == 0)			/* only exclusions: a filter without a text score */
		return;
	if (nwords > AM_QUERY_MAX_WORDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("too many words in search query"),
				 errdetail("A query may have up to %d distinct words; this one has %d.", AM_QUERY_MAX_WORDS, nwords),
				 errhint("Leave out some words.")));

	/* The last word is matched as a prefix when the query ends inside it. */
	tail = am_query_tail(query);
	if (tail != NULL && q0->size == 1 && VARSIZE_ANY_EXHDR(tail) == VARSIZE_ANY_EXHDR(query))
	{
		/*
		 * the query is that one run, and it gave one lexeme: the same
		 * parser and dictionaries give it again (not parsed twice)
		 */
		last_lexeme = TextDatumGetCString(words[0]);
	}
	else if (tail != NULL)
	{
		last_lexeme = am_first_lexeme(tail);
		if (last_lexeme != NULL)
		{
			bool		found = false;

			for (g = 0; g < nwords && !found; g++)
				found = strcmp(TextDatumGetCString(words[g]), last_lexeme) == 0;
			if (!found)
				last_lexeme = NULL;
		}
	}
	am_search_scoring(&w);
	/* words under OR: the query's text has a '|' (an OR, or one in a lexeme) */
	for (i = 0; i < q0->size && !any_word; i++)
	{
		QueryItem  *item = &GETQUERY(q0)[i];

		any_word = item->type == QI_VAL
			? memchr(GETOPERAND(q0) + item->qoperand.distance, '|', item->qoperand.length) != NULL
			: item->qoperator.oper == OP_OR;
	}

	terms = palloc0(sizeof(AmPrepTerm *) * nwords);
	nterms = palloc0(sizeof(int) * nwords);
	rows = am_vocabulary_lookup(words, nwords, last_lexeme, &nrows);
	for (g = 0; g < nwords; g++)
	{
		char	   *word = TextDatumGetCString(words[g]);
		int			ncand = 0;
		int			k;
		int			r;

		terms[g] = palloc0(sizeof(AmPrepTerm) * (1 + AM_TYPO_CANDIDATES));
		terms[g][0].lexeme = word;
		terms[g][0].kind = 0;
		terms[g][0].factor = 1.0;
		terms[g][0].prefix = last_lexeme != NULL && strcmp(word, last_lexeme) == 0;
		for (r = 0; r < nrows; r++)
		{
			if (rows[r].kind == 0)
			{
				published = rows[r].counts[0];
				continue;
			}
			if (strcmp(rows[r].of, word) != 0)
				continue;
			if (rows[r].kind == 1)
				am_term_counts(&terms[g][0], &rows[r]);
			else if (rows[r].kind == 2)
				memcpy(completions, rows[r].counts, sizeof(completions));
			else if (ncand < AM_TYPO_CANDIDATES)
			{
				AmPrepTerm *t = &terms[g][1 + ncand++];

				t->lexeme = rows[r].lexeme;
				t->kind = 1;
				t->factor = w.typo_factor;
				t->prefix = false;
				am_term_counts(t, &rows[r]);
			}
		}
		nterms[g] = 1 + ncand;
		for (k = 0; k < nterms[g]; k++)
			am_term_stats(&terms[g][k], &w, completions);
		qsort(terms[g], nterms[g], sizeof(AmPrepTerm), am_term_cmp);
	}

	{
		int			total = 0,
					t = 0;
		Datum	   *lexemes,
				   *groups,
				   *factors,
				   *prefixes;
		Datum		group_terms[AM_QUERY_MAX_WORDS],
					group_name_terms[AM_QUERY_MAX_WORDS],
					group_head_terms[AM_QUERY_MAX_WORDS],
					group_docs[AM_QUERY_MAX_WORDS],
					group_name_docs[AM_QUERY_MAX_WORDS],
					group_head_docs[AM_QUERY_MAX_WORDS],
					group_body_docs[AM_QUERY_MAX_WORDS],
					group_name_bound[AM_QUERY_MAX_WORDS],
					group_head_bound[AM_QUERY_MAX_WORDS],
					group_body_bound[AM_QUERY_MAX_WORDS];
		int64		estimate = 0;
		Datum		rewritten = PointerGetDatum(q0);

		for (g = 0; g < nwords; g++)
			total += nterms[g];
		lexemes = palloc(sizeof(Datum) * total);
		groups = palloc(sizeof(Datum) * total);
		factors = palloc(sizeof(Datum) * total);
		prefixes = palloc(sizeof(Datum) * total);
		for (g = 0; g < nwords; g++)
		{
			StringInfoData alt,
						name,
						head;
			int64		ndoc = 0,
						n_a = 0,
						n_b = 0,
						n_c = 0;
			double		nb = 0,
						hb = 0,
						bb = 0;
			bool		expanded = nterms[g] > 1;
			int			k;

			initStringInfo(&alt);
			initStringInfo(&name);
			initStringInfo(&head);
			for (k = 0; k < nterms[g]; k++)
			{
				AmPrepTerm *term = &terms[g][k];

				lexemes[t] = CStringGetTextDatum(term->lexeme);
				groups[t] = Int32GetDatum(g + 1);
				factors[t] = Float8GetDatum(term->factor);
				prefixes[t] = BoolGetDatum(term->prefix);
				t++;
				if (k > 0)
				{
					appendStringInfoString(&alt, " | ");
					appendStringInfoString(&name, " | ");
					appendStringInfoString(&head, " | ");
				}
				am_append_quoted(&alt, "", term->lexeme, term->prefix);
				am_append_quoted(&name, "a/", term->lexeme, term->prefix);
				am_append_quoted(&head, "b/", term->lexeme, term->prefix);
				ndoc += term->ndoc;
				n_a += term->n_a;
				n_b += term->n_b;
				n_c += term->n_c;
				nb = Max(nb, term->name_bound);
				hb = Max(hb, term->head_bound);
				bb = Max(bb, term->body_bound);
				expanded = expanded || term->prefix;
			}
			ndoc = Min(ndoc, published);
			if (any_word)
				estimate += ndoc;
			else if (g == 0 || ndoc < estimate)
				estimate = ndoc;
			group_terms[g] = CStringGetTextDatum(alt.data);
			group_name_terms[g] = CStringGetTextDatum(name.data);
			group_head_terms[g] = CStringGetTextDatum(head.data);
			group_docs[g] = Int64GetDatum(ndoc);
			group_name_docs[g] = Int64GetDatum(n_a);
			group_head_docs[g] = Int64GetDatum(n_b);
			group_body_docs[g] = Int64GetDatum(n_c);
			group_name_bound[g] = Float8GetDatum(nb);
			group_head_bound[g] = Float8GetDatum(hb);
			group_body_bound[g] = Float8GetDatum(bb);
			/* each word becomes (word | typo | ...) or word:* wherever it occurs */
			if (expanded)
			{
				StringInfoData target;

				initStringInfo(&target);
				am_append_quoted(&target, "", TextDatumGetCString(words[g]), false);
				rewritten = DirectFunctionCall3(tsquery_rewrite, rewritten,
												DirectFunctionCall1(tsqueryin, CStringGetDatum(target.data)),
												DirectFunctionCall1(tsqueryin, CStringGetDatum(alt.data)));
			}
		}
		memset(nulls, false, sizeof(bool) * AM_PLAN_COLUMNS);
		values[0] = rewritten;
		values[1] = am_array(lexemes, total, TEXTOID);
		values[2] = am_array(groups, total, INT4OID);
		values[3] = am_array(factors, total, FLOAT8OID);
		values[4] = am_array(prefixes, total, BOOLOID);
		values[5] = Int32GetDatum(nwords);
		values[6] = Int64GetDatum(estimate);
		values[7] = Int64GetDatum(published);
		values[8] = BoolGetDatum(any_word);
		values[9] = am_array(group_terms, nwords, TEXTOID);
		values[10] = am_array(group_name_terms, nwords, TEXTOID);
		values[11] = am_array(group_head_terms, nwords, TEXTOID);
		values[12] = am_array(group_docs, nwords, INT8OID);
		values[13] = am_array(group_name_docs, nwords, INT8OID);
		values[14] = am_array(group_head_docs, nwords, INT8OID);
		values[15] = am_array(group_body_docs, nwords, INT8OID);
		values[16] = am_array(group_name_bound, nwords, FLOAT8OID);
		values[17] = am_array(group_head_bound, nwords, FLOAT8OID);
		values[18] = am_array(group_body_bound, nwords, FLOAT8OID);
	}
	if (plans != NULL && published == plan_published)
	{
		bool		found;
		AmPlanEntry *kept = (AmPlanEntry *) hash_search(plans, plan_key, HASH_ENTER, &found);

		kept->published = plan_published;
		am_plan_copy(kept->values, kept->nulls, values, nulls, plans_cxt);
	}
}
