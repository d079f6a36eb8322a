/*-------------------------------------------------------------------------
 * search_prepare.c
 *	  Query planning of marketplace search in C: a user's query becomes a
 *	  search_plan (search.sql) of expanded terms, estimates and score
 *	  bounds.
 *
 * Every search calls this first, so it reads the vocabulary directly
 * through its btree indexes (the corpus size, the words' counts, the
 * completions of a prefix, the typo candidates through the deletion index):
 * a handful of index probes, where starting the executor for one statement
 * cost more than all of them (sql/search_prepare compares the plans with
 * the same lookups in SQL).  The bounds use the scoring constants of
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
#include "access/visibilitymap.h"
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
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"

#include "agentmarket.h"

/* Queries are cut to this many characters before parsing. */
#define AM_QUERY_PARSED_CHARS 512
/* Longer queries are refused. */
#define AM_QUERY_MAX_CHARS 4096
/* Queries with more distinct words than this are refused. */
#define AM_QUERY_MAX_WORDS 12
/* Typo candidates per word, and the word lengths that get them. */
#define AM_TYPO_CANDIDATES 8
#define AM_TYPO_MIN_CHARS 5
#define AM_TYPO_MAX_CHARS 64

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

/*
 * A row of what the plan reads from the vocabulary: the corpus size (kind
 * 0), a word's counts (1), the summed counts of a prefix's completions (2),
 * a typo candidate of a word (3).
 */
typedef struct AmLookupRow
{
	int			kind;
	char	   *of;				/* the word it is for */
	char	   *lexeme;			/* the candidate (kind 3) */
	int64		counts[4];		/* ndoc, n_a, n_b, n_c */
} AmLookupRow;

/* The vocabulary's relations, open for one lookup. */
typedef struct AmVocabulary
{
	Relation	vocabulary;
	Relation	vocabulary_pkey;
	Relation	typo;
	Relation	typo_pkey;
	Relation	corpus;
	TupleTableSlot *vocabulary_slot;
	TupleTableSlot *typo_slot;
	Snapshot	snapshot;
	IndexScanDesc word_scan;	/* a word's counts: started once, again per word */
	IndexScanDesc typo_scan;	/* a deletion key's words, read from the index */
	Buffer		typo_vm;		/* the typo index's visibility map page */
} AmVocabulary;

/* A relation of agentmarket_private by name, open with AccessShareLock. */
static Relation
am_private_relation(Oid schema, const char *name, bool index)
{
	Oid			relid = get_relname_relid(name, schema);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation agentmarket_private.%s does not exist", name)));
	return index ? index_open(relid, AccessShareLock) : table_open(relid, AccessShareLock);
}

static void
am_vocabulary_open(AmVocabulary *v)
{
	Oid			schema = get_namespace_oid("agentmarket_private", false);

	v->vocabulary = am_private_relation(schema, "search_vocabulary", false);
	/* read directly, not through SQL: the caller must be allowed to read it */
	if (pg_class_aclcheck(RelationGetRelid(v->vocabulary), GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table search_vocabulary")));
	v->vocabulary_pkey = am_private_relation(schema, "search_vocabulary_pkey", true);
	v->typo = am_private_relation(schema, "search_typo_index", false);
	v->typo_pkey = am_private_relation(schema, "search_typo_index_pkey", true);
	v->corpus = am_private_relation(schema, "search_corpus", false);
	v->vocabulary_slot = table_slot_create(v->vocabulary, NULL);
	v->typo_slot = table_slot_create(v->typo, NULL);
	v->snapshot = GetActiveSnapshot();
	v->word_scan = NULL;
	v->typo_scan = NULL;
	v->typo_vm = InvalidBuffer;
}

static void
am_vocabulary_close(AmVocabulary *v)
{
	if (v->word_scan != NULL)
		index_endscan(v->word_scan);
	if (v->typo_scan != NULL)
		index_endscan(v->typo_scan);
	if (BufferIsValid(v->typo_vm))
		ReleaseBuffer(v->typo_vm);
	ExecDropSingleTupleTableSlot(v->vocabulary_slot);
	ExecDropSingleTupleTableSlot(v->typo_slot);
	table_close(v->corpus, AccessShareLock);
	index_close(v->typo_pkey, AccessShareLock);
	table_close(v->typo, AccessShareLock);
	index_close(v->vocabulary_pkey, AccessShareLock);
	table_close(v->vocabulary, AccessShareLock);
}

/* An int4 column of a slot (NULL as 0). */
static int64
am_slot_int(TupleTableSlot *slot, int col)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

/* A text scan key on the first column of a vocabulary index, in the C collation. */
static void
am_text_key(ScanKey key, StrategyNumber strategy, RegProcedure proc, const char *value)
{
	ScanKeyEntryInitialize(key, 0, 1, strategy, InvalidOid, C_COLLATION_OID, proc,
						   PointerGetDatum(cstring_to_text(value)));
}

/*
 * The vocabulary's counts of a word (false: not in it), or the sums over
 * the words a prefix extends to (prefix: the words after it sharing it).
 */
static bool
am_vocabulary_counts(AmVocabulary *v, const char *word, bool prefix, int64 *counts)
{
	ScanKeyData keys[2];
	IndexScanDesc scan;
	bool		found = false;

	memset(counts, 0, sizeof(int64) * 4);
	if (prefix)
	{
		/* lexeme > word AND lexeme < word || U+10FFFF, as the btree orders them */
		am_text_key(&keys[0], BTGreaterStrategyNumber, F_TEXT_GT, word);
		am_text_key(&keys[1], BTLessStrategyNumber, F_TEXT_LT, psprintf("%s\xf4\x8f\xbf\xbf", word));
	}
	else
		am_text_key(&keys[0], BTEqualStrategyNumber, F_TEXTEQ, word);
	if (prefix)
		scan = index_beginscan(v->vocabulary, v->vocabulary_pkey, v->snapshot, 2, 0);
	else
	{
		/* one scan serves every word (the last word, typo candidates) */
		if (v->word_scan == NULL)
			v->word_scan = index_beginscan(v->vocabulary, v->vocabulary_pkey, v->snapshot, 1, 0);
		scan = v->word_scan;
	}
	index_rescan(scan, keys, prefix ? 2 : 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, v->vocabulary_slot))
	{
		int			c;

		for (c = 0; c < 4; c++)
			counts[c] += am_slot_int(v->vocabulary_slot, 2 + c);
		found = true;
		if (!prefix)
			break;
	}
	if (prefix)
		index_endscan(scan);
	return found;
}

/* Orders typo candidates as the plan takes them: in most listings first, then by lexeme. */
static int
am_candidate_cmp(const void *a, const void *b)
{
	const AmLookupRow *x = (const AmLookupRow *) a;
	const AmLookupRow *y = (const AmLookupRow *) b;

	if (x->counts[0] != y->counts[0])
		return x->counts[0] > y->counts[0] ? -1 : 1;
	return strcmp(x->lexeme, y->lexeme);
}

/*
 * The typo candidates of a word: the vocabulary's words sharing a deletion
 * key with it (the typo index), one edit away, in a published listing, the
 * eight in most listings (ties by lexeme), appended to rows.
 */
static void
am_typo_candidates(AmVocabulary *v, text *word, AmLookupRow **rows, int *nrows, int *size)
{
	char	   *w = text_to_cstring(word);
	ArrayType  *keys = DatumGetArrayTypeP(DirectFunctionCall1(search_typo_keys, PointerGetDatum(word)));
	Datum	   *key_datums;
	bool	   *key_nulls;
	int			nkeys,
				i,
				ncand = 0;
	AmLookupRow *cand = NULL;
	int			cand_size = 0;

	deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &key_datums, &key_nulls, &nkeys);
	for (i = 0; i < nkeys; i++)
	{
		ScanKeyData key;
		IndexScanDesc scan;
		ItemPointer tid;

		ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid, C_COLLATION_OID, F_TEXTEQ,
							   key_datums[i]);
		if (v->typo_scan == NULL)
		{
			v->typo_scan = index_beginscan(v->typo, v->typo_pkey, v->snapshot, 1, 0);
			v->typo_scan->xs_want_itup = true;
		}
		scan = v->typo_scan;
		index_rescan(scan, &key, 1, NULL, 0);
		while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;
			text	   *lexeme;
			char	   *l;
			int64		counts[4];
			int			j;
			bool		seen = false;

			/*
			 * (key, lexeme) is the whole row: read from the index, as an
			 * index-only scan does, when the page is all visible
			 */
			if (!VM_ALL_VISIBLE(v->typo, ItemPointerGetBlockNumber(tid), &v->typo_vm))
			{
				if (!index_fetch_heap(scan, v->typo_slot))
					continue;
				lexeme = DatumGetTextPP(slot_getattr(v->typo_slot, 2, &isnull));
			}
			else
			{
				lexeme = DatumGetTextPP(index_getattr(scan->xs_itup, 2, scan->xs_itupdesc, &isnull));
				PredicateLockPage(v->typo, ItemPointerGetBlockNumber(tid), v->snapshot);
			}
			l = text_to_cstring(lexeme);

			if (strcmp(l, w) == 0)
				continue;
			for (j = 0; j < ncand && !seen; j++)
				seen = strcmp(cand[j].lexeme, l) == 0;
			if (seen)
				continue;
			if (!DatumGetBool(DirectFunctionCall2(search_is_one_typo, PointerGetDatum(word),
												  PointerGetDatum(lexeme))))
				continue;
			if (!am_vocabulary_counts(v, l, false, counts) || counts[0] <= 0)
				continue;
			if (ncand == cand_size)
			{
				cand_size = Max(8, cand_size * 2);
				cand = cand == NULL ? palloc(sizeof(AmLookupRow) * cand_size)
					: repalloc(cand, sizeof(AmLookupRow) * cand_size);
			}
			cand[ncand].kind = 3;
			cand[ncand].of = w;
			cand[ncand].lexeme = l;
			memcpy(cand[ncand].counts, counts, sizeof(counts));
			ncand++;
		}
	}
	if (ncand > 1)
		qsort(cand, ncand, sizeof(AmLookupRow), am_candidate_cmp);
	for (i = 0; i < ncand && i < AM_TYPO_CANDIDATES; i++)
	{
		if (*nrows == *size)
		{
			*size *= 2;
			*rows = repalloc(*rows, sizeof(AmLookupRow) * *size);
		}
		(*rows)[(*nrows)++] = cand[i];
	}
}

/*
 * What the plan needs from the vocabulary, read directly through its
 * indexes (a statement's executor start cost more than these few probes):
 * the corpus size, the counts of the words typed, of the completions of
 * the last word when it is a prefix, and the typo candidates of the words
 * of 5 to 64 characters.
 */
static AmLookupRow *
am_vocabulary_lookup(Datum *words, int nwords, const char *last_lexeme, int *nrows)
{
	AmVocabulary v;
	int			size = 16 + nwords * (2 + AM_TYPO_CANDIDATES);
	AmLookupRow *rows = palloc0(sizeof(AmLookupRow) * size);
	TableScanDesc scan;
	int			g;

	*nrows = 0;
	am_vocabulary_open(&v);
	rows[0].kind = 0;
	scan = table_beginscan(v.corpus, v.snapshot, 0, NULL);
	{
		TupleTableSlot *slot = table_slot_create(v.corpus, NULL);

		if (table_scan_getnextslot(scan, ForwardScanDirection, slot))
			rows[0].counts[0] = am_slot_int(slot, 2);
		ExecDropSingleTupleTableSlot(slot);
	}
	table_endscan(scan);
	*nrows = 1;
	for (g = 0; g < nwords; g++)
	{
		char	   *word = TextDatumGetCString(words[g]);
		int			wchars = pg_mbstrlen_with_len(word, strlen(word));
		int64		counts[4];

		if (am_vocabulary_counts(&v, word, false, counts))
		{
			rows[*nrows].kind = 1;
			rows[*nrows].of = word;
			memcpy(rows[*nrows].counts, counts, sizeof(counts));
			(*nrows)++;
		}
		if (last_lexeme != NULL && strcmp(word, last_lexeme) == 0)
		{
			am_vocabulary_counts(&v, word, true, counts);
			rows[*nrows].kind = 2;
			rows[*nrows].of = word;
			memcpy(rows[*nrows].counts, counts, sizeof(counts));
			(*nrows)++;
		}
		if (wchars >= AM_TYPO_MIN_CHARS && wchars <= AM_TYPO_MAX_CHARS)
			am_typo_candidates(&v, DatumGetTextPP(words[g]), &rows, nrows, &size);
	}
	am_vocabulary_close(&v);
	return rows;
}

/* A lexeme quoted as a tsquery operand, with a prefix ('a/', 'b/' or ''). */
static void
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

/* Builds a one-dimensional array of int8, float8, text or bool Datums. */
static Datum
am_array(Datum *values, int n, Oid type)
{
	int16		typlen;
	bool		byval;
	char		align;

	get_typlenbyvalalign(type, &typlen, &byval, &align);
	return PointerGetDatum(construct_array(values, n, type, typlen, byval, align));
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
	Datum		values[19];
	bool		nulls[19];
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
	char	   *qtext;
	bool		any_word;

	memset(nulls, true, sizeof(nulls));
	nulls[5] = false;
	values[5] = Int32GetDatum(0);

	if (query == NULL)
		return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
	qdata = VARDATA_ANY(query);
	qbytes = VARSIZE_ANY_EXHDR(query);
	for (i = 0; i < qbytes && qdata[i] == ' '; i++)
		;
	if (i == qbytes)
		return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
	if (pg_mbstrlen_with_len(qdata, qbytes) > AM_QUERY_MAX_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("search query too long"),
				 errdetail("A query may have up to %d characters; only the first %d are searched.",
						   AM_QUERY_MAX_CHARS, AM_QUERY_PARSED_CHARS)));

	if (!OidIsValid(am_english_oid))
		am_english_oid = get_ts_config_oid(stringToQualifiedNameList("pg_catalog.english"), false);
	/*
	 * websearch syntax never raises a syntax error; long input is cut (and a
	 * word cut there is the last word, a prefix)
	 */
	query = cstring_to_text_with_len(qdata, pg_mbcharcliplen(qdata, qbytes, AM_QUERY_PARSED_CHARS));
	q0 = DatumGetTSQuery(DirectFunctionCall2(websearch_to_tsquery_byid, ObjectIdGetDatum(am_english_oid),
											 PointerGetDatum(query)));
	if (q0->size == 0)			/* only stop words */
		return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
	values[0] = PointerGetDatum(q0);
	nulls[0] = false;
	positives = DatumGetArrayTypeP(DirectFunctionCall1(search_positive_lexemes, PointerGetDatum(q0)));
	deconstruct_array(positives, TEXTOID, -1, false, TYPALIGN_INT, &words, &word_nulls, &nwords);
	if (nwords == 0)			/* only exclusions: a filter without a text score */
		return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
	if (nwords > AM_QUERY_MAX_WORDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("too many words in search query"),
				 errdetail("A query may have up to %d distinct words; this one has %d.", AM_QUERY_MAX_WORDS, nwords),
				 errhint("Leave out some words.")));

	/* The last word is matched as a prefix when the query ends inside it. */
	tail = am_query_tail(query);
	if (tail != NULL)
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
	qtext = DatumGetCString(DirectFunctionCall1(tsqueryout, PointerGetDatum(q0)));
	any_word = strchr(qtext, '|') != NULL;

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
		memset(nulls, false, sizeof(nulls));
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
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}
