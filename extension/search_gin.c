/*-------------------------------------------------------------------------
 * search_gin.c
 *	  The listings that can match a search, read from the posting lists of
 *	  the GIN index on search_document and intersected in C, for the direct
 *	  reads of every match (search_direct.c) where GIN's own scan costs more.
 *
 * A query whose words are all required (no 'or') matches only listings
 * that hold, for every word, one of its terms: the word, its typos, the
 * completions of a last word that is a prefix.  GIN finds them by walking
 * the posting lists of the rarest terms item by item and, for each item,
 * advancing every other term's list to it and calling the query's
 * consistent function: for words common apart and rare together ('invoice
 * podcast': 21,000 listings each at 100k, 8 together; 210,000 each at 1M)
 * that is one step and one call for every listing of a word, 2 ms at 100k
 * and 16-27 ms at 1M.  Here each term's posting list is read whole
 * (decoded a leaf page at a time), a word's terms merged, and the words
 * intersected, smallest first: a few nanoseconds an item.  The filters'
 * lexemes (' category coding', ...) are intersected too when their lists
 * are short beside the listings left, else checked on the rows.  The
 * listings left are handed back as a bitmap to recheck: every one is
 * checked against the whole query on its row (phrases, negated words), so
 * the answer is exactly GIN's.
 *
 * Chosen from the vocabulary's counts before anything is read
 * (am_gin_pays): GIN's scan costs about a step for each listing of the
 * rarest word, this one an item for each listing of every word; a rare
 * word beside a common one is left to GIN, which skips through the common
 * word's posting tree.  The index's pending list (fastupdate) is read too:
 * its entries of the query's terms are added to their lists.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/gin_private.h"
#include "access/ginblock.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/tidbitmap.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/rel.h"

#include "agentmarket.h"
#include "search_agents.h"
#include "search_direct.h"
#include "search_gin.h"

/*
 * Read here when every listing of every word costs at most this many times
 * the listings of the rarest word: GIN steps through the rarest word's
 * listings (about 100 ns each: advancing the other lists, the consistent
 * call), this decodes every item (a few ns).
 */
#define AM_GIN_MERGE_RATIO 16
/* Below this many listings of the rarest word GIN's scan is as cheap. */
#define AM_GIN_MERGE_MIN 128
/* Items read at most (6 bytes each in memory). */
#define AM_GIN_MERGE_MAX_ITEMS 8000000
/* A filter's list is intersected when at most this many times the listings left. */
#define AM_GIN_FILTER_RATIO 64

/* Whether reading the posting lists here is on (agentmarket.search_gin_merge, on unless off). */
bool
am_gin_merge_on(void)
{
	const char *setting = GetConfigOption("agentmarket.search_gin_merge", true, false);

	return setting == NULL || (strcmp(setting, "off") != 0 && strcmp(setting, "false") != 0);
}

/* Adds a key to read, for a group, once. */
void
am_gin_add_term(AmGinRead *r, const char *key, int group)
{
	int			i;

	for (i = 0; i < r->nterms; i++)
		if (r->terms[i].group == group && strcmp(r->terms[i].key, key) == 0)
			return;
	if (r->nterms == r->maxterms)
	{
		r->maxterms *= 2;
		r->terms = repalloc(r->terms, sizeof(AmGinTerm) * r->maxterms);
	}
	memset(&r->terms[r->nterms], 0, sizeof(AmGinTerm));
	r->terms[r->nterms].key = pstrdup(key);
	r->terms[r->nterms].keylen = strlen(key);
	r->terms[r->nterms].group = group;
	r->nterms++;
}

/* Appends items to a growing array. */
static void
am_gin_append(ItemPointer *items, int *n, int *max, const ItemPointerData *add, int nadd)
{
	if (*n + nadd > *max)
	{
		*max = Max(*max * 2, *n + nadd);
		*items = *items == NULL ? palloc(sizeof(ItemPointerData) * *max)
			: repalloc(*items, sizeof(ItemPointerData) * *max);
	}
	memcpy(*items + *n, add, sizeof(ItemPointerData) * nadd);
	*n += nadd;
}

/*
 * The pending list's entries of the terms (fastupdate: listings indexed
 * but not yet merged into the tree), read before the tree as GIN's scan
 * does: an entry the cleanup moves meanwhile is in the tree by then.
 * Pages are read left to right, each locked before the one before it is
 * let go (the order the cleanup locks them in).
 */
void
am_gin_read_pending(AmGinRead *r)
{
	Buffer		metabuffer;
	Buffer		buffer;
	Page		page;
	BlockNumber blkno;

	PredicateLockPage(r->index, GIN_METAPAGE_BLKNO, r->snapshot);
	metabuffer = ReadBuffer(r->index, GIN_METAPAGE_BLKNO);
	LockBuffer(metabuffer, GIN_SHARE);
	page = BufferGetPage(metabuffer);
	TestForOldSnapshot(r->snapshot, r->index, page);
	blkno = GinPageGetMeta(page)->head;
	if (blkno == InvalidBlockNumber)
	{
		UnlockReleaseBuffer(metabuffer);
		return;
	}
	buffer = ReadBuffer(r->index, blkno);
	LockBuffer(buffer, GIN_SHARE);
	UnlockReleaseBuffer(metabuffer);
	for (;;)
	{
		OffsetNumber off,
					maxoff;
		Buffer		next;

		CHECK_FOR_INTERRUPTS();
		page = BufferGetPage(buffer);
		TestForOldSnapshot(r->snapshot, r->index, page);
		/* deleted by the cleanup: its entries, and the rest, are in the tree */
		if (GinPageIsDeleted(page))
			break;
		maxoff = PageGetMaxOffsetNumber(page);
		for (off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
		{
			IndexTuple	itup = (IndexTuple) PageGetItem(page, PageGetItemId(page, off));
			GinNullCategory category;
			Datum		key;
			int			t;

			if (gintuple_get_attrnum(&r->ginstate, itup) != 1)
				continue;
			key = gintuple_get_key(&r->ginstate, itup, &category);
			if (category != GIN_CAT_NORM_KEY)
				continue;
			for (t = 0; t < r->nterms; t++)
			{
				AmGinTerm  *term = &r->terms[t];
				text	   *k = DatumGetTextPP(key);

				if (VARSIZE_ANY_EXHDR(k) == (Size) term->keylen &&
					memcmp(VARDATA_ANY(k), term->key, term->keylen) == 0)
					am_gin_append(&term->pending, &term->npending, &term->maxpending, &itup->t_tid, 1);
			}
		}
		blkno = GinPageGetOpaque(page)->rightlink;
		if (blkno == InvalidBlockNumber)
			break;
		next = ReadBuffer(r->index, blkno);
		LockBuffer(next, GIN_SHARE);
		UnlockReleaseBuffer(buffer);
		buffer = next;
	}
	UnlockReleaseBuffer(buffer);
}

/* Orders item pointers (qsort). */
static int
am_gin_item_cmp(const void *a, const void *b)
{
	return ginCompareItemPointers((ItemPointer) a, (ItemPointer) b);
}

/*
 * A key's items in the tree: its posting list in the entry tuple, or its
 * posting tree's leaves read left to right (as GIN's scan reads them: the
 * tree's root predicate-locked, each leaf decoded while share-locked).
 */
void
am_gin_read_key(AmGinRead *r, AmGinTerm *term)
{
	GinBtreeData btree;
	GinBtreeStack *stack;
	Page		page;
	bool		locked = true;
	int			max = 0;

	ginPrepareEntryScan(&btree, 1, PointerGetDatum(cstring_to_text_with_len(term->key, term->keylen)),
						GIN_CAT_NORM_KEY, &r->ginstate);
	stack = ginFindLeafPage(&btree, true, false, r->snapshot);
	page = BufferGetPage(stack->buffer);
	if (btree.findItem(&btree, stack))
	{
		IndexTuple	itup = (IndexTuple) PageGetItem(page, PageGetItemId(page, stack->off));

		if (GinIsPostingTree(itup))
		{
			BlockNumber root = GinGetPostingTree(itup);
			GinBtreeData data;
			GinBtreeStack *leaf;
			Buffer		buffer;
			uint32		leaves;

			PredicateLockPage(r->index, root, r->snapshot);
			/* the entry's page is let go first, as GIN's scan does (vacuum locks the other way) */
			LockBuffer(stack->buffer, GIN_UNLOCK);
			locked = false;

			leaf = ginScanBeginPostingTree(&data, r->index, root, r->snapshot);
			buffer = leaf->buffer;
			/* the tree's estimate of its leaves sizes the list (no copy as it grows) */
			leaves = Max(leaf->predictNumber, 1);
			IncrBufferRefCount(buffer);
			freeGinBtreeStack(leaf);
			for (;;)
			{
				CHECK_FOR_INTERRUPTS();
				page = BufferGetPage(buffer);
				if (!GinPageIsDeleted(page))
				{
					ItemPointerData min;
					ItemPointer items;
					int			n;

					ItemPointerSetMin(&min);
					/* NULL for a leaf that vacuum emptied */
					items = GinDataLeafPageGetItems(page, &n, min);
					if (n > 0 && term->items == NULL)
					{
						max = (int) Min((double) n * leaves * 1.25 + 64, (double) MaxAllocSize / sizeof(ItemPointerData));
						term->items = palloc(sizeof(ItemPointerData) * max);
					}
					if (n > 0)
						am_gin_append(&term->items, &term->n, &max, items, n);
					if (items != NULL)
						pfree(items);
				}
				if (GinPageRightMost(page))
					break;
				buffer = ginStepRight(buffer, r->index, GIN_SHARE);
			}
			UnlockReleaseBuffer(buffer);
		}
		else
		{
			PredicateLockPage(r->index, BufferGetBlockNumber(stack->buffer), r->snapshot);
			if (GinGetNPosting(itup) > 0)
				term->items = ginReadTuple(&r->ginstate, 1, itup, &term->n);
		}
	}
	else
		PredicateLockPage(r->index, BufferGetBlockNumber(stack->buffer), r->snapshot);
	if (locked)
		LockBuffer(stack->buffer, GIN_UNLOCK);
	freeGinBtreeStack(stack);

	if (term->npending > 0)
	{
		ItemPointer merged;
		int			n;

		qsort(term->pending, term->npending, sizeof(ItemPointerData), am_gin_item_cmp);
		merged = ginMergeItemPointers(term->items, term->n, term->pending, term->npending, &n);
		term->items = merged;
		term->n = n;
	}
}

/*
 * The items of a in b, both sorted: the smaller's items looked up in the
 * larger by galloping (a few dozen listings against 200,000 read a few
 * hundred of them), into a (its length returned).
 */
static int
am_gin_intersect(ItemPointer a, int na, const ItemPointerData *b, int nb)
{
	int			out = 0;
	int			j = 0;
	int			i;

	/* lists of like sizes: merged, item by item (a gallop would compare twice as often) */
	if ((double) nb < 8.0 * na)
	{
		i = 0;
		while (i < na && j < nb)
		{
			int			c = ginCompareItemPointers(&a[i], (ItemPointer) &b[j]);

			if (c < 0)
				i++;
			else if (c > 0)
				j++;
			else
			{
				a[out++] = a[i++];
				j++;
			}
		}
		return out;
	}
	for (i = 0; i < na && j < nb; i++)
	{
		int			step = 1;
		int			lo,
					hi;

		/* gallop: the first b[j] >= a[i] */
		if (ginCompareItemPointers((ItemPointer) &b[j], &a[i]) < 0)
		{
			lo = j;
			hi = j + 1;
			while (hi < nb && ginCompareItemPointers((ItemPointer) &b[hi], &a[i]) < 0)
			{
				lo = hi;
				step *= 2;
				hi = Min(nb, hi + step);
			}
			/* b[lo] < a[i]; b[hi] >= a[i] or hi == nb */
			while (hi - lo > 1)
			{
				int			mid = lo + (hi - lo) / 2;

				if (ginCompareItemPointers((ItemPointer) &b[mid], &a[i]) < 0)
					lo = mid;
				else
					hi = mid;
			}
			j = hi;
		}
		if (j < nb && ginCompareItemPointers((ItemPointer) &b[j], &a[i]) == 0)
			a[out++] = a[i];
	}
	return out;
}

/* Orders groups by their listings, fewest first. */
static int
am_gin_size_cmp(const void *a, const void *b)
{
	double		x = ((const double *) a)[0];
	double		y = ((const double *) b)[0];

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Whether reading the posting lists here costs less than GIN's scan, from
 * the vocabulary's counts of each word's listings (the plan's group_docs):
 * every word's listings against GIN's steps through the rarest word's.
 */
static bool
am_gin_pays(const AmSearch *s)
{
	int			n,
				i;
	Datum	   *docs;
	double		least = -1,
				total = 0;

	if (s->ngroups < 1 || s->plan_nulls[8] || DatumGetBool(s->plan_values[8]) || s->plan_nulls[12])
		return false;
	docs = am_plan_array(s->plan_values, 12, INT8OID, &n);
	for (i = 0; i < n; i++)
	{
		double		g = (double) DatumGetInt64(docs[i]);

		total += g;
		least = least < 0 ? g : Min(least, g);
	}
	return least >= AM_GIN_MERGE_MIN && total <= AM_GIN_MERGE_RATIO * least &&
		total <= AM_GIN_MERGE_MAX_ITEMS;
}

/*
 * Fills tbm with the listings that can match the search (every word's
 * posting lists intersected, and the filters' where they pay), each to be
 * rechecked on its row; false, with nothing read, when GIN's own scan is
 * cheaper or the query is not all required words (see the file's header).
 */
bool
am_gin_candidates(AmSearch *s, Relation index, Snapshot snapshot, TIDBitmap *tbm)
{
	AmGinRead	r;
	int			nlex,
				i,
				g;
	Datum	   *lexemes;
	Datum	   *groups;
	Datum	   *prefixes;
	ItemPointer *group_items;
	int		   *group_n;
	double	   *order;
	ItemPointer cand = NULL;
	int			ncand = 0;
	int			nfilter_groups = 0;
	int			ngroups;

	if (!am_gin_merge_on() || !am_gin_pays(s))
		return false;
	memset(&r, 0, sizeof(r));
	r.index = index;
	r.snapshot = snapshot;
	r.maxterms = 16;
	r.terms = palloc(sizeof(AmGinTerm) * r.maxterms);
	lexemes = am_plan_array(s->plan_values, 1, TEXTOID, &nlex);
	groups = am_plan_array(s->plan_values, 2, INT4OID, &nlex);
	prefixes = am_plan_array(s->plan_values, 4, BOOLOID, &nlex);
	for (i = 0; i < nlex; i++)
	{
		char	   *lexeme = TextDatumGetCString(lexemes[i]);
		int			group = DatumGetInt32(groups[i]) - 1;

		am_gin_add_term(&r, lexeme, group);
		if (DatumGetBool(prefixes[i]))
		{
			char	  **words;
			int			n,
						w;

			/* a prefix: its completions (too many: GIN reads them) */
			if (!am_completions(lexeme, &words, &n))
				return false;
			for (w = 0; w < n; w++)
				am_gin_add_term(&r, words[w], group);
		}
	}
	ngroups = s->ngroups;

	/* the filters' lexemes, a group each (tags are not lexemes: checked on the rows) */
	{
		const char *prefix[4] = {" category ", " pricing ", " relay ", " model "};
		int			flag[4] = {AM_F_CATEGORY, AM_F_PRICING, AM_F_RELAYS, AM_F_MODELS};
		int			f;

		for (f = 0; f < 4; f++)
		{
			if (!(s->filters & flag[f]))
				continue;
			if (f < 2)
				am_gin_add_term(&r, psprintf("%s%s", prefix[f], TextDatumGetCString(f == 0 ? s->category : s->pricing)),
								ngroups + nfilter_groups);
			else
			{
				Datum	   *e;
				bool	   *en;
				int			n,
							j;

				deconstruct_array(DatumGetArrayTypeP(f == 2 ? s->relays : s->models), TEXTOID, -1, false,
								  TYPALIGN_INT, &e, &en, &n);
				for (j = 0; j < n; j++)
					if (!en[j])
						am_gin_add_term(&r, psprintf("%s%s", prefix[f], TextDatumGetCString(e[j])),
										ngroups + nfilter_groups);
			}
			nfilter_groups++;
		}
	}

	initGinState(&r.ginstate, index);
	am_gin_read_pending(&r);

	/* each word's terms read and merged; the words' sizes for the order */
	group_items = palloc0(sizeof(ItemPointer) * (ngroups + nfilter_groups));
	group_n = palloc0(sizeof(int) * (ngroups + nfilter_groups));
	order = palloc(sizeof(double) * 2 * ngroups);
	for (g = 0; g < ngroups; g++)
	{
		for (i = 0; i < r.nterms; i++)
		{
			AmGinTerm  *t = &r.terms[i];

			if (t->group != g)
				continue;
			am_gin_read_key(&r, t);
			if (t->n == 0)
				continue;
			if (group_n[g] == 0)
			{
				group_items[g] = t->items;
				group_n[g] = t->n;
			}
			else
				group_items[g] = ginMergeItemPointers(group_items[g], group_n[g], t->items, t->n, &group_n[g]);
		}
		order[2 * g] = group_n[g];
		order[2 * g + 1] = g;
	}
	qsort(order, ngroups, sizeof(double) * 2, am_gin_size_cmp);
	for (i = 0; i < ngroups; i++)
	{
		g = (int) order[2 * i + 1];
		if (i == 0)
		{
			cand = group_items[g];
			ncand = group_n[g];
		}
		else
			ncand = am_gin_intersect(cand, ncand, group_items[g], group_n[g]);
		if (ncand == 0)
			break;
	}

	/*
	 * A filter's lexemes are read when their lists are short beside the
	 * listings left (decoding an item costs a small fraction of checking a
	 * row): the category's size from its count, any other filter's guessed
	 * at half the listings for each value (more are not intersected).
	 * Otherwise the filters are checked on the rows.
	 */
	for (g = ngroups; g < ngroups + nfilter_groups && ncand > 0; g++)
	{
		double		size = 0;

		for (i = 0; i < r.nterms; i++)
			if (r.terms[i].group == g)
				size += strncmp(r.terms[i].key, " category ", 10) == 0 && s->category_share < 1
					? s->category_share * s->published : s->published / 2;
		if (Min(size, s->published) > (double) ncand * AM_GIN_FILTER_RATIO)
			continue;
		for (i = 0; i < r.nterms; i++)
		{
			AmGinTerm  *t = &r.terms[i];

			if (t->group != g)
				continue;
			am_gin_read_key(&r, t);
			if (group_n[g] == 0)
			{
				group_items[g] = t->items;
				group_n[g] = t->n;
			}
			else if (t->n > 0)
				group_items[g] = ginMergeItemPointers(group_items[g], group_n[g], t->items, t->n, &group_n[g]);
		}
		ncand = am_gin_intersect(cand, ncand, group_items[g], group_n[g]);
	}

	if (ncand > 0)
		tbm_add_tuples(tbm, cand, ncand, true);
	return true;
}

/*
 * The listings whose entries in a GIN index on one tsvector column hold any
 * of keys (the pending list's included), sorted and distinct: read as
 * am_gin_candidates reads a word's terms.  For search_order.c, whose sets
 * (the listings with a word in their name: search_fields' a/word) cost a
 * bitmap entry per listing through GIN's scan.
 */
ItemPointer
am_gin_key_items(Relation index, Snapshot snapshot, char **keys, int nkeys, int *n)
{
	AmGinRead	r;
	ItemPointer items = NULL;
	int			i;

	memset(&r, 0, sizeof(r));
	r.index = index;
	r.snapshot = snapshot;
	r.maxterms = Max(nkeys, 1);
	r.terms = palloc(sizeof(AmGinTerm) * r.maxterms);
	for (i = 0; i < nkeys; i++)
		am_gin_add_term(&r, keys[i], 0);
	initGinState(&r.ginstate, index);
	am_gin_read_pending(&r);
	*n = 0;
	for (i = 0; i < r.nterms; i++)
	{
		AmGinTerm  *t = &r.terms[i];

		am_gin_read_key(&r, t);
		if (t->n == 0)
			continue;
		if (*n == 0)
		{
			items = t->items;
			*n = t->n;
		}
		else
			items = ginMergeItemPointers(items, *n, t->items, t->n, n);
	}
	return items;
}
