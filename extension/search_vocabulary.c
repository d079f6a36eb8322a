/*-------------------------------------------------------------------------
 * search_vocabulary.c
 *	  What a query's plan reads from the vocabulary (search_prepare.c), read
 *	  directly through its btree indexes: the corpus size, the counts of the
 *	  words typed, of the completions of a last word that is a prefix, and
 *	  the typo candidates through the deletion index.
 *
 * Every search reads these first: a handful of index probes, where starting
 * the executor for one lookup statement cost more than all of them
 * (sql/search_prepare compares the plans with the same lookups in SQL).
 * One index scan serves every word probe, one every deletion key, and the
 * deletion index is read index-only where its pages are all visible.
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
#include "executor/tuptable.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "agentmarket.h"
#include "search_prepare.h"

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
AmLookupRow *
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

