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
 *
 * A word's typo candidates (the words sharing a deletion key with it, one
 * edit away) are kept per backend, keyed on search_corpus.words_xact: every
 * transaction that adds a word to the vocabulary or removes one sets it to
 * its own id under the corpus row's lock, so all snapshots that see one
 * value see one set of words (a later change is a later value; an earlier
 * one committed before the row could be updated again).  Kept only under a
 * committed value: the searcher's own uncommitted change of the words (it
 * may roll back) reads the deletion index.
 *
 * Whole lookups (the words' counts, the candidates chosen by their counts,
 * a prefix's sums) are kept per backend the same way, keyed on the query's
 * words under search_corpus.counts_xact, which every change of the
 * vocabulary (a count or a word) sets: a search whose snapshot sees the
 * value a lookup was kept under sees the same vocabulary, and reads only
 * the corpus row.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "access/xact.h"
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
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"

#include "agentmarket.h"
#include "search_prepare.h"

/* Bytes of a word whose typo candidates are kept (words of up to 64 characters). */
#define AM_TYPO_KEY_BYTES 260

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
	bool		cached;			/* typo candidates may be kept and reused (am_typo_cache) */
} AmVocabulary;

/* A word's typo candidates, kept: the lexemes one edit away sharing a key with it. */
typedef struct AmTypoEntry
{
	char		word[AM_TYPO_KEY_BYTES];	/* the hash key */
	int			n;
	char	  **lexemes;
} AmTypoEntry;

/*
 * What a backend keeps under a value of the corpus row (a column of
 * transaction ids): entries read under one value hold for every snapshot
 * that sees it.
 */
typedef struct AmXactCache
{
	const char *name;
	int			attnum;			/* the corpus row's column */
	Size		keysize;
	Size		entrysize;
	long		max;			/* entries kept; more empty it first */
	HTAB	   *htab;
	MemoryContext cxt;
	uint64		xact;			/* the value they were kept under */
	bool		valid;
} AmXactCache;

/* A word's typo candidates, under words_xact (the set of words). */
static AmXactCache am_typo_cache = {"search typo candidates", 3, AM_TYPO_KEY_BYTES, sizeof(AmTypoEntry), 4096};

/* A query's words (and its prefix word) whose lookup is kept: up to this many bytes. */
#define AM_LOOKUP_KEY_BYTES 256

/* A kept lookup: its rows (the corpus size, row 0, is read every time). */
typedef struct AmLookupEntry
{
	char		key[AM_LOOKUP_KEY_BYTES];	/* the hash key */
	int			nrows;
	AmLookupRow *rows;
} AmLookupEntry;

/*
 * Whole lookups, under counts_xact (the vocabulary, counts included): a
 * few hundred kB a backend at most.
 */
static AmXactCache am_lookup_cache = {"search vocabulary lookups", 4, AM_LOOKUP_KEY_BYTES, sizeof(AmLookupEntry), 2048};

/*
 * Whole plans of query texts (search_prepare.c keeps them, entries of its
 * own), under counts_xact as the lookups: 1,024 of them, about 2 MB a
 * backend at most.
 */
static AmXactCache am_plan_cache = {"search plans", 4, AM_PLAN_KEY_BYTES, 0, 1024};

/*
 * Whether entries may be kept under the value the corpus row holds (read
 * in the search's snapshot): not when it is the searcher's own uncommitted
 * change (it may roll back).  The kept ones are dropped when the value is
 * another than the one they were kept under, or when there are too many.
 */
static bool
am_xact_cache_use(AmXactCache *c, TupleTableSlot *corpus, int natts)
{
	bool		isnull;
	Datum		d;
	FullTransactionId xact;

	if (natts < c->attnum)
		return false;			/* a module newer than the installed tables */
	d = slot_getattr(corpus, c->attnum, &isnull);
	if (isnull)
		return false;
	xact = DatumGetFullTransactionId(d);
	if (FullTransactionIdIsValid(xact) &&
		FullTransactionIdEquals(xact, GetTopFullTransactionIdIfAny()))
		return false;
	if (c->valid && c->xact == U64FromFullTransactionId(xact) && hash_get_num_entries(c->htab) < c->max)
		return true;
	c->valid = false;
	c->htab = am_backend_cache(&c->cxt, c->name, c->keysize, c->entrysize, 256);
	c->xact = U64FromFullTransactionId(xact);
	c->valid = true;
	return true;
}

/*
 * The key of a lookup: the prefix word, then each word, each ended by
 * \x01; false when it would not fit or a word holds that byte (not kept).
 */
static bool
am_lookup_key(char *key, Datum *words, int nwords, const char *last_lexeme)
{
	int			len = 0;
	int			g;

	for (g = -1; g < nwords; g++)
	{
		const char *w = last_lexeme ? last_lexeme : "";
		int			wlen;

		if (g >= 0)
		{
			text	   *t = DatumGetTextPP(words[g]);

			w = VARDATA_ANY(t);
			wlen = VARSIZE_ANY_EXHDR(t);
		}
		else
			wlen = strlen(w);
		if (len + wlen + 1 >= AM_LOOKUP_KEY_BYTES || memchr(w, '\x01', wlen) != NULL)
			return false;
		memcpy(key + len, w, wlen);
		len += wlen;
		key[len++] = '\x01';
	}
	key[len] = '\0';
	return true;
}

/* Copies lookup rows (and their strings) into a context. */
static AmLookupRow *
am_lookup_copy(MemoryContext cxt, const AmLookupRow *rows, int nrows)
{
	AmLookupRow *copy = MemoryContextAlloc(cxt, sizeof(AmLookupRow) * Max(nrows, 1));
	int			r;

	for (r = 0; r < nrows; r++)
	{
		copy[r] = rows[r];
		copy[r].of = rows[r].of ? MemoryContextStrdup(cxt, rows[r].of) : NULL;
		copy[r].lexeme = rows[r].lexeme ? MemoryContextStrdup(cxt, rows[r].lexeme) : NULL;
	}
	return copy;
}

/* The vocabulary's relations, by name (AM_REL_*); their OIDs are kept per backend. */
static const char *const am_vocabulary_names[] = {
	"search_vocabulary", "search_vocabulary_pkey", "search_typo_index", "search_typo_index_pkey", "search_corpus"
};
#define AM_REL_VOCABULARY 0
#define AM_REL_VOCABULARY_PKEY 1
#define AM_REL_TYPO 2
#define AM_REL_TYPO_PKEY 3
#define AM_REL_CORPUS 4

/* A relation of the vocabulary (AM_REL_*), open with AccessShareLock (kept_relations.c). */
static Relation
am_private_relation(int which)
{
	return am_open_kept("agentmarket_private", am_vocabulary_names[which], 0);
}

static void
am_vocabulary_open(AmVocabulary *v)
{
	v->vocabulary = am_private_relation(AM_REL_VOCABULARY);
	/* read directly, not through SQL: the caller must be allowed to read it */
	if (pg_class_aclcheck(RelationGetRelid(v->vocabulary), GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table search_vocabulary")));
	v->vocabulary_pkey = am_private_relation(AM_REL_VOCABULARY_PKEY);
	/* the typo index is opened when it is read (kept candidates do not read it) */
	v->typo = NULL;
	v->typo_pkey = NULL;
	v->typo_slot = NULL;
	v->vocabulary_slot = table_slot_create(v->vocabulary, NULL);
	v->word_scan = NULL;
	v->typo_scan = NULL;
	v->typo_vm = InvalidBuffer;
}

/* Opens the typo index, once per lookup. */
static void
am_vocabulary_open_typo(AmVocabulary *v)
{
	if (v->typo != NULL)
		return;
	v->typo = am_private_relation(AM_REL_TYPO);
	v->typo_pkey = am_private_relation(AM_REL_TYPO_PKEY);
	v->typo_slot = table_slot_create(v->typo, NULL);
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
	if (v->typo != NULL)
	{
		ExecDropSingleTupleTableSlot(v->typo_slot);
		relation_close(v->typo_pkey, AccessShareLock);
		relation_close(v->typo, AccessShareLock);
	}
	relation_close(v->vocabulary_pkey, AccessShareLock);
	relation_close(v->vocabulary, AccessShareLock);
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
 * The words one edit away from w sharing a deletion key with it, from the
 * typo index (each once, w itself left out).
 */
static char **
am_typo_lexemes(AmVocabulary *v, text *word, const char *w, int *nout)
{
	ArrayType  *keys = DatumGetArrayTypeP(DirectFunctionCall1(search_typo_keys, PointerGetDatum(word)));
	Datum	   *key_datums;
	bool	   *key_nulls;
	int			nkeys,
				i,
				n = 0,
				size = 0;
	char	  **out = NULL;

	am_vocabulary_open_typo(v);
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
			for (j = 0; j < n && !seen; j++)
				seen = strcmp(out[j], l) == 0;
			if (seen)
				continue;
			if (!DatumGetBool(DirectFunctionCall2(search_is_one_typo, PointerGetDatum(word),
												  PointerGetDatum(lexeme))))
				continue;
			if (n == size)
			{
				size = Max(8, size * 2);
				out = out == NULL ? palloc(sizeof(char *) * size) : repalloc(out, sizeof(char *) * size);
			}
			out[n++] = l;
		}
	}
	*nout = n;
	return out;
}

/*
 * The typo candidates of a word: the vocabulary's words sharing a deletion
 * key with it (the typo index, or the backend's copy of what it held for
 * this set of words), one edit away, in published listings, the eight in
 * most listings (ties by lexeme), appended to rows.  A word in no published
 * listing (own: 0) gets every such neighbour.  A word in own of them gets
 * only the neighbours in at least AM_TYPO_POPULAR_RATIO times as many: the
 * noisy-channel rule of spelling correctors.  A typed word w is read as c
 * when P(c) P(w|c) > P(w) P(w|w); a word is typed as written far more often
 * than it is mistyped into one particular neighbour (Norvig's corrector,
 * and Lucene's by default, never correct a word the index holds), so only
 * a much more common neighbour wins.  'calender' in 3 listings reads
 * 'calendar' in 500 too; 'tekvadro' in 10 does not read 'tekkadro' in 12,
 * another word a searcher typing 'tekvadro' did not mean.  Elasticsearch's
 * "popular" suggest mode (any more common neighbour) did.
 */
static void
am_typo_candidates(AmVocabulary *v, text *word, int64 own, AmLookupRow **rows, int *nrows, int *size)
{
	char	   *w = text_to_cstring(word);
	AmTypoEntry *entry = NULL;
	char	  **lexemes;
	int			nlexemes,
				i,
				ncand = 0;
	AmLookupRow *cand = NULL;

	if (v->cached && strlen(w) < AM_TYPO_KEY_BYTES)
		entry = (AmTypoEntry *) hash_search(am_typo_cache.htab, w, HASH_FIND, NULL);
	if (entry != NULL)
	{
		lexemes = entry->lexemes;
		nlexemes = entry->n;
	}
	else
	{
		lexemes = am_typo_lexemes(v, word, w, &nlexemes);
		if (v->cached && strlen(w) < AM_TYPO_KEY_BYTES)
		{
			bool		found;
			char	  **kept = MemoryContextAlloc(am_typo_cache.cxt, sizeof(char *) * Max(nlexemes, 1));

			for (i = 0; i < nlexemes; i++)
				kept[i] = MemoryContextStrdup(am_typo_cache.cxt, lexemes[i]);
			entry = (AmTypoEntry *) hash_search(am_typo_cache.htab, w, HASH_ENTER, &found);
			entry->n = nlexemes;
			entry->lexemes = kept;
		}
	}
	if (nlexemes > 0)
		cand = palloc(sizeof(AmLookupRow) * nlexemes);
	for (i = 0; i < nlexemes; i++)
	{
		int64		counts[4];

		/* the counts of now: they change with every listing edit */
		if (!am_vocabulary_counts(v, lexemes[i], false, counts) || counts[0] <= 0 ||
			(own > 0 && counts[0] < own * AM_TYPO_POPULAR_RATIO))
			continue;
		cand[ncand].kind = 3;
		cand[ncand].of = w;
		cand[ncand].lexeme = pstrdup(lexemes[i]);
		memcpy(cand[ncand].counts, counts, sizeof(counts));
		ncand++;
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
 * The backend's kept plans, when this search may use and keep them (NULL
 * when not: the corpus row holds the searcher's own uncommitted change),
 * with the context their entries' values go in, and the corpus size read
 * with them (a plan kept under another size is not used: a listing of no
 * words published changes it and no count).  Reads the corpus row.
 */
HTAB *
am_plan_cache_open(Size entrysize, int64 *published, MemoryContext *cxt)
{
	Relation	corpus = am_private_relation(AM_REL_CORPUS);
	TableScanDesc scan = table_beginscan(corpus, GetActiveSnapshot(), 0, NULL);
	TupleTableSlot *slot = table_slot_create(corpus, NULL);
	HTAB	   *htab = NULL;

	am_plan_cache.entrysize = entrysize;
	if (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		*published = am_slot_int(slot, 2);
		if (am_xact_cache_use(&am_plan_cache, slot, RelationGetDescr(corpus)->natts))
		{
			htab = am_plan_cache.htab;
			*cxt = am_plan_cache.cxt;
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	relation_close(corpus, AccessShareLock);
	return htab;
}

/* The kept plans are of another text search configuration: dropped at their next use. */
void
am_plan_cache_reset(void)
{
	am_plan_cache.valid = false;
}

/*
 * What a plan or lookup kept from the vocabulary is given only to a caller
 * allowed to read it (an error otherwise); false when the vocabulary's OID
 * is not known (the kept entry is not used: the vocabulary is read).
 */
bool
am_vocabulary_check_read(void)
{
	Oid			relid = am_kept_relid("agentmarket_private", am_vocabulary_names[AM_REL_VOCABULARY]);

	if (!OidIsValid(relid))
		return false;
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table search_vocabulary")));
	return true;
}

/*
 * What the plan needs from the vocabulary, read directly through its
 * indexes (a statement's executor start cost more than these few probes):
 * the corpus size, the counts of the words typed, of the completions of
 * the last word when it is a prefix, and the typo candidates of the words
 * of 5 to 64 characters.  A query looked up before under the corpus row's
 * counts_xact reads only that row (am_lookup_cache).
 */
AmLookupRow *
am_vocabulary_lookup(Datum *words, int nwords, const char *last_lexeme, int *nrows)
{
	AmVocabulary v;
	int			size = 16 + nwords * (2 + AM_TYPO_CANDIDATES);
	AmLookupRow *rows = palloc0(sizeof(AmLookupRow) * size);
	TableScanDesc scan;
	int			g;
	bool		keep = false;
	char		key[AM_LOOKUP_KEY_BYTES];

	*nrows = 0;
	v.snapshot = GetActiveSnapshot();
	v.cached = false;
	v.corpus = am_private_relation(AM_REL_CORPUS);
	rows[0].kind = 0;
	scan = table_beginscan(v.corpus, v.snapshot, 0, NULL);
	{
		TupleTableSlot *slot = table_slot_create(v.corpus, NULL);

		if (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			int			natts = RelationGetDescr(v.corpus)->natts;

			rows[0].counts[0] = am_slot_int(slot, 2);
			v.cached = am_xact_cache_use(&am_typo_cache, slot, natts);
			keep = am_xact_cache_use(&am_lookup_cache, slot, natts) && am_lookup_key(key, words, nwords, last_lexeme);
		}
		ExecDropSingleTupleTableSlot(slot);
	}
	table_endscan(scan);
	relation_close(v.corpus, AccessShareLock);
	*nrows = 1;
	if (keep)
	{
		AmLookupEntry *entry = (AmLookupEntry *) hash_search(am_lookup_cache.htab, key, HASH_FIND, NULL);

		/* what the vocabulary held under this value: this caller must be allowed to read it too */
		if (entry != NULL && am_vocabulary_check_read())
		{
			AmLookupRow *kept;

			/* the caller's own copy: the kept one goes when the value changes */
			kept = am_lookup_copy(CurrentMemoryContext, entry->rows, entry->nrows);
			kept[0] = rows[0];
			*nrows = entry->nrows;
			return kept;
		}
	}
	am_vocabulary_open(&v);
	for (g = 0; g < nwords; g++)
	{
		char	   *word = TextDatumGetCString(words[g]);
		int			wchars = pg_mbstrlen_with_len(word, strlen(word));
		int64		counts[4];
		int64		own = 0;

		if (am_vocabulary_counts(&v, word, false, counts))
		{
			own = counts[0];
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
			am_typo_candidates(&v, DatumGetTextPP(words[g]), own, &rows, nrows, &size);
	}
	am_vocabulary_close(&v);
	if (keep)
	{
		bool		found;
		AmLookupEntry *entry = (AmLookupEntry *) hash_search(am_lookup_cache.htab, key, HASH_ENTER, &found);

		entry->nrows = *nrows;
		entry->rows = am_lookup_copy(am_lookup_cache.cxt, rows, *nrows);
	}
	return rows;
}

