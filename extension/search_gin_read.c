/*-------------------------------------------------------------------------
 * search_gin_read.c
 *	  The posting-list reader of search's GIN indexes: terms added by key
 *	  (a word, its typos, a prefix's completions; a filter's lexemes), the
 *	  index's pending list read once for all of them, each key's posting
 *	  list or tree walked a leaf at a time by a visitor; and what the walks
 *	  build from it: a group's listings as sorted TID keys
 *	  (am_gin_group_keys) and a set of keys kept to those a group's lists
 *	  hold (am_gin_keep_group: no copy of the lists, leaves with none of the
 *	  set in their range not decoded).  Used by the candidates of a search
 *	  (search_gin.c) and by the ordered walk's sets and filters
 *	  (search_order_sets.c).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/gin_private.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "agentmarket.h"
#include "search_agents.h"
#include "search_gin.h"

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

/*
 * The GIN states of the indexes read, kept for the backend: a GinState is
 * 9.6 kB (its support functions for 32 columns), which initGinState zeroes
 * and fills on every read; a rare word's whole search writes about 70 kB.
 * Dropped all at once after a relcache invalidation of one of them (or of
 * every relation), set up again at the next read: the callback only marks
 * them stale and am_gin_begin rebuilds, so a state is never freed under a
 * read (a search's reads run one after another, none begins inside another).
 */
#define AM_GIN_STATES 4
static struct
{
	Oid			relid;
	GinState	state;
}		   *am_gin_states;
static int	am_gin_nstates;
static bool am_gin_states_stale;
static MemoryContext am_gin_states_cxt;

static void
am_gin_states_forget(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < am_gin_nstates; i++)
		if (!OidIsValid(relid) || am_gin_states[i].relid == relid)
			am_gin_states_stale = true;
}

/* index's GIN state, set up once for the backend (its relation's address set each time). */
static GinState *
am_gin_state(Relation index)
{
	MemoryContext old;
	GinState   *state;
	int			i;

	if (am_gin_states_cxt == NULL)
	{
		am_gin_states_cxt = AllocSetContextCreate(TopMemoryContext, "search GIN states", ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(am_gin_states_forget, (Datum) 0);
	}
	if (am_gin_states_stale || am_gin_nstates == AM_GIN_STATES)
	{
		MemoryContextReset(am_gin_states_cxt);
		am_gin_states = NULL;
		am_gin_nstates = 0;
		am_gin_states_stale = false;
	}
	for (i = 0; i < am_gin_nstates; i++)
		if (am_gin_states[i].relid == RelationGetRelid(index))
			break;
	if (i == am_gin_nstates)
	{
		old = MemoryContextSwitchTo(am_gin_states_cxt);
		if (am_gin_states == NULL)
			am_gin_states = palloc(sizeof(*am_gin_states) * AM_GIN_STATES);
		initGinState(&am_gin_states[i].state, index);
		MemoryContextSwitchTo(old);
		am_gin_states[i].relid = RelationGetRelid(index);
		am_gin_nstates++;
	}
	state = &am_gin_states[i].state;
	/* the relation as opened now (unchanged since: no invalidation came) */
	state->index = index;
	state->origTupdesc = RelationGetDescr(index);
	if (state->oneCol)
		state->tupdesc[0] = RelationGetDescr(index);
	return state;
}

/* Starts a read of index's posting lists in snapshot (its GIN state set up): no terms yet. */
void
am_gin_begin(AmGinRead *r, Relation index, Snapshot snapshot)
{
	memset(r, 0, sizeof(*r));
	r->index = index;
	r->snapshot = snapshot;
	r->ginstate = am_gin_state(index);
	r->maxterms = 16;
	r->terms = palloc(sizeof(AmGinTerm) * r->maxterms);
}

/*
 * Adds the search's words to a read, each term in its word's group (0 to
 * ngroups - 1): the word, its typos, and a prefix's completions.  A word
 * whose prefix has more completions than the vocabulary lists is left out
 * (its terms not added) and, with left_out, marked there (ngroups flags);
 * how many were left out.
 */
int
am_gin_add_words(AmGinRead *r, const AmSearch *s, bool *left_out)
{
	int			nlex,
				i,
				nleft = 0;
	Datum	   *lexemes = am_plan_array(s->plan_values, 1, TEXTOID, &nlex);
	Datum	   *groups = am_plan_array(s->plan_values, 2, INT4OID, &nlex);
	Datum	   *prefixes = am_plan_array(s->plan_values, 4, BOOLOID, &nlex);
	bool	   *out = left_out != NULL ? left_out : palloc0(sizeof(bool) * Max(s->ngroups, 1));

	for (i = 0; i < nlex; i++)
	{
		char	   *lexeme = TextDatumGetCString(lexemes[i]);
		int			group = DatumGetInt32(groups[i]) - 1;
		char	  **words;
		int			nwords = 0,
					w;

		if (group < 0 || group >= s->ngroups || out[group])
			continue;
		if (DatumGetBool(prefixes[i]) && !am_completions(lexeme, &words, &nwords))
		{
			out[group] = true;
			nleft++;
			continue;
		}
		am_gin_add_term(r, lexeme, group);
		for (w = 0; w < nwords; w++)
			am_gin_add_term(r, words[w], group);
	}
	return nleft;
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

			if (gintuple_get_attrnum(r->ginstate, itup) != 1)
				continue;
			key = gintuple_get_key(r->ginstate, itup, &category);
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
 * The items past which a leaf page's are wanted (the visitor's skip, or
 * every item); false when no more are wanted.
 */
static bool
am_gin_wanted(const AmGinVisit *v, ItemPointer past)
{
	ItemPointerSetMin(past);
	return v->skip == NULL || v->skip(v->arg, past);
}

/*
 * A key's items in the tree given to a visitor: its posting list in the
 * entry tuple, or its posting tree's leaves read left to right (as GIN's
 * scan reads them: the tree's root predicate-locked, each leaf decoded
 * while share-locked), in TID order.  A leaf whose items are all at or
 * before the visitor's skip point is not decoded, nor its segments before
 * that point.  The pending list's items stay on the term.
 */
void
am_gin_visit_key(AmGinRead *r, AmGinTerm *term, const AmGinVisit *v)
{
	GinBtreeData btree;
	GinBtreeStack *stack;
	Page		page;
	bool		locked = true;

	ginPrepareEntryScan(&btree, 1, PointerGetDatum(cstring_to_text_with_len(term->key, term->keylen)),
						GIN_CAT_NORM_KEY, r->ginstate);
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
			/* the tree's estimate of its leaves: how many items to expect */
			leaves = Max(leaf->predictNumber, 1);
			IncrBufferRefCount(buffer);
			freeGinBtreeStack(leaf);
			for (;;)
			{
				ItemPointerData past;

				CHECK_FOR_INTERRUPTS();
				page = BufferGetPage(buffer);
				if (!am_gin_wanted(v, &past))
					break;
				if (!GinPageIsDeleted(page) &&
					(GinPageRightMost(page) || !ItemPointerIsValid(&past) ||
					 ginCompareItemPointers(GinDataPageGetRightBound(page), &past) > 0))
				{
					ItemPointer items;
					int			n;

					/* NULL for a leaf that vacuum emptied */
					items = GinDataLeafPageGetItems(page, &n, past);
					if (n > 0)
						v->items(v->arg, items, n, (double) n * leaves * 1.25 + 64);
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
			{
				int			n;
				ItemPointer items = ginReadTuple(r->ginstate, 1, itup, &n);

				v->items(v->arg, items, n, n);
			}
		}
	}
	else
		PredicateLockPage(r->index, BufferGetBlockNumber(stack->buffer), r->snapshot);
	if (locked)
		LockBuffer(stack->buffer, GIN_UNLOCK);
	freeGinBtreeStack(stack);
	if (term->npending > 0)
		qsort(term->pending, term->npending, sizeof(ItemPointerData), am_gin_item_cmp);
}

/*
 * Keys (sorted TID numbers, each the first field of an element stride bytes
 * long) marked by the posting lists that hold them (am_gin_keep_group).
 */
typedef struct AmGinMarks
{
	const char *keys;
	size_t		stride;
	int64		n;
	int64		next;			/* the first key after the items given so far */
	bool	   *in;
} AmGinMarks;

static inline uint64
am_gin_mark_key(const AmGinMarks *mk, int64 i)
{
	return *(const uint64 *) (mk->keys + i * mk->stride);
}

/* Marks the keys among a batch of a list's items (sorted). */
static void
am_gin_mark_items(void *arg, const ItemPointerData *items, int nitems, double expected)
{
	AmGinMarks *mk = (AmGinMarks *) arg;
	uint64		first = am_tid_key(ItemPointerGetBlockNumber(&items[0]), ItemPointerGetOffsetNumber(&items[0]));
	int64		lo = 0,
				hi = mk->n,
				m;
	int			i = 0;

	/* the first key at or after the batch (the pending list's comes after the tree's) */
	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (am_gin_mark_key(mk, mid) < first)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (m = lo; m < mk->n && i < nitems;)
	{
		uint64		k = am_gin_mark_key(mk, m);
		uint64		item = am_tid_key(ItemPointerGetBlockNumber(&items[i]), ItemPointerGetOffsetNumber(&items[i]));

		if (k < item)
			m++;
		else if (item < k)
			i++;
		else
		{
			mk->in[m++] = true;
			i++;
		}
	}
	mk->next = i >= nitems ? m : mk->n;
}

/* The item past which a list's items can mark a key: just before the next one. */
static bool
am_gin_mark_past(void *arg, ItemPointer past)
{
	AmGinMarks *mk = (AmGinMarks *) arg;
	uint64		k;
	BlockNumber block;
	OffsetNumber offset;

	if (mk->next >= mk->n)
		return false;
	k = am_gin_mark_key(mk, mk->next);
	block = am_tid_key_block(k);
	offset = am_tid_key_offset(k);
	if (offset > 1)
		ItemPointerSet(past, block, offset - 1);
	else if (block > 0)
		ItemPointerSet(past, block - 1, PG_UINT16_MAX);
	return true;
}

/*
 * Keeps, in place and in order, the elements (stride bytes long, each
 * starting with its TID key, sorted) that some term of a read's group holds
 * (the pending list read); how many are left.  Each term's list is walked
 * against the keys, a leaf decoded at a time with no union built, a leaf
 * with no key in its range not decoded: for a set of listings narrowed by
 * long lists, where reading those whole costs a copy and a merge of each
 * (at a million listings, megabytes of fresh memory a call).
 */
int64
am_gin_keep_group(AmGinRead *r, int group, void *keys, size_t stride, int64 n)
{
	bool	   *in;
	AmGinMarks	mk;
	AmGinVisit	v = {am_gin_mark_items, am_gin_mark_past, &mk};
	int			i;
	int64		m,
				out = 0;

	if (n == 0)
		return 0;
	in = am_scratch_alloc(sizeof(bool) * n);
	memset(in, 0, sizeof(bool) * n);
	mk.keys = keys;
	mk.stride = stride;
	mk.n = n;
	mk.in = in;
	for (i = 0; i < r->nterms; i++)
	{
		AmGinTerm  *t = &r->terms[i];

		if (t->group != group)
			continue;
		mk.next = 0;
		am_gin_visit_key(r, t, &v);
		if (t->npending > 0)
			am_gin_mark_items(&mk, t->pending, t->npending, 0);
	}
	for (m = 0; m < n; m++)
		if (in[m])
		{
			if (out != m)
				memcpy((char *) keys + out * stride, (char *) keys + m * stride, stride);
			out++;
		}
	am_scratch_free(in);
	return out;
}

/* A list's items as TID keys, growing (am_gin_group_keys). */
typedef struct AmGinKeys
{
	uint64	   *keys;
	int64		n;
	int64		max;
} AmGinKeys;

/* Appends a batch of items as TID keys. */
static void
am_gin_collect_keys(void *arg, const ItemPointerData *items, int n, double expected)
{
	AmGinKeys  *k = (AmGinKeys *) arg;
	int			i;

	if (k->n + n > k->max)
	{
		k->max = Max(Max(k->max * 2, k->n + n), (int64) Min(expected, (double) (MaxAllocHugeSize / sizeof(uint64))));
		k->keys = am_scratch_realloc(k->keys, sizeof(uint64) * k->n, sizeof(uint64) * k->max);
	}
	for (i = 0; i < n; i++)
		k->keys[k->n++] = am_tid_key(ItemPointerGetBlockNumber(&items[i]), ItemPointerGetOffsetNumber(&items[i]));
}

/* The union of two sorted, distinct key arrays (a new array). */
static uint64 *
am_gin_keys_union(const uint64 *a, int64 na, const uint64 *b, int64 nb, int64 *n)
{
	uint64	   *out = am_scratch_alloc(sizeof(uint64) * Max(na + nb, 1));
	int64		i = 0,
				j = 0,
				m = 0;

	while (i < na && j < nb)
	{
		if (a[i] < b[j])
			out[m++] = a[i++];
		else if (b[j] < a[i])
			out[m++] = b[j++];
		else
		{
			out[m++] = a[i++];
			j++;
		}
	}
	while (i < na)
		out[m++] = a[i++];
	while (j < nb)
		out[m++] = b[j++];
	*n = m;
	return out;
}

/*
 * The listings of a read's group (its terms' lists and pending entries),
 * sorted and distinct, as TID keys: each term's list decoded straight into
 * keys (no array of item pointers copied and converted after), the terms
 * joined fewest first.
 */
uint64 *
am_gin_group_keys(AmGinRead *r, int group, int64 *n)
{
	AmGinKeys  *lists = palloc0(sizeof(AmGinKeys) * Max(r->nterms, 1));
	int			nlists = 0,
				i;
	uint64	   *all = NULL;

	*n = 0;
	for (i = 0; i < r->nterms; i++)
	{
		AmGinTerm  *t = &r->terms[i];
		AmGinKeys  *k = &lists[nlists];
		AmGinVisit	v = {am_gin_collect_keys, NULL, k};

		if (t->group != group)
			continue;
		am_gin_visit_key(r, t, &v);
		if (t->npending > 0)
		{
			AmGinKeys	p = {NULL, 0, 0};
			uint64	   *merged;

			am_gin_collect_keys(&p, t->pending, t->npending, t->npending);
			merged = am_gin_keys_union(k->keys, k->n, p.keys, p.n, &k->n);
			k->keys = merged;
		}
		if (k->n > 0)
			nlists++;
	}
	/* fewest first: each join copies what was joined before */
	for (;;)
	{
		int			pick = -1;

		for (i = 0; i < nlists; i++)
			if (lists[i].keys != NULL && (pick < 0 || lists[i].n < lists[pick].n))
				pick = i;
		if (pick < 0)
			break;
		if (all == NULL)
		{
			all = lists[pick].keys;
			*n = lists[pick].n;
		}
		else
		{
			uint64	   *joined = am_gin_keys_union(all, *n, lists[pick].keys, lists[pick].n, n);

			am_scratch_free(all);
			am_scratch_free(lists[pick].keys);
			all = joined;
		}
		lists[pick].keys = NULL;
	}
	pfree(lists);
	return all;
}
