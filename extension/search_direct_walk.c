/*-------------------------------------------------------------------------
 * search_direct_walk.c
 *	  The walk of a sort's index in C: listings in the sort's order (or,
 *	  by relevance without words in a category, the category's static
 *	  order), from the cursor on, within the filters, read in the chunks
 *	  search_agents.c asks for; the matches among them emitted until the
 *	  page is full.
 *
 * This is the sorted walk's statement (search_shapes.c, AM_KIND_SORTED_WALK)
 * without a statement: its executor start, and the card columns of every
 * listing it read copied through SPI, cost more than reading the few dozen
 * listings a page of a common word takes.  The cursor's first key starts
 * the index scan; the whole keyset, the filters and the words are checked
 * on the row as the statement checks them, so the rows (and the listings
 * counted as read) are the statement's: sql/search_direct compares both.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_collation.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "tsearch/ts_type.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "agentmarket.h"
#include "search_agents.h"
#include "search_direct.h"
#include "search_gin.h"

/*
 * What a sorted page costs, in microseconds (am_direct_walk_candidates),
 * as measured on the bench's corpus: a listing's row read and checked by a
 * walk (1.2), or read, checked and sorted by GIN and sort (2.5: 'kazu' by
 * rating, 270 rows in 0.9 ms); an entry of a sort's index stepped over;
 * a posting list item decoded ('agent', 97,000 listings, in 0.58 ms), and
 * decoded and intersected with the listings left ('ai' in a category,
 * 52,000 items, in 0.75 ms).  The walk over candidates is taken when it
 * costs at most AM_CANDIDATES_MARGIN of the other way: its estimates of
 * the walk's length are the least sure.
 */
#define AM_COST_ROW 1.2
#define AM_COST_SORTED_ROW 2.5
#define AM_COST_ENTRY 0.035
#define AM_COST_ITEM 0.006
#define AM_COST_MERGED 0.016
#define AM_CANDIDATES_MARGIN 0.8

PG_FUNCTION_INFO_V1(search_sample_last);

/* The backend's last density sample read in C (search_sample_last). */
static struct
{
	bool		ran;
	int32		filters;		/* AM_F_* the listings passed */
	int32		walked;
	int32		hits;
}			am_last_sample;

/* A walk of a sort's index under way. */
struct AmDirectWalk
{
	AmDirect	d;
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	MemoryContext row_cxt;		/* each listing's work, reset after it */
	bool		done;			/* the index has no more */
	int64		read;			/* listings read (published, in the filters, after the cursor) */
	int64		hits;			/* of them matches emitted */
	/* Over candidates (am_direct_walk_candidates): only their rows are read. */
	ItemPointer cand;			/* the listings that can match, sorted */
	int			ncand;
	uint64	   *blocks;			/* a bit per heap block holding one */
	BlockNumber nblocks;
	int64		entries;		/* index entries stepped through */
	int64		max_entries;	/* then the walk gives up (over) */
	bool		over;
};

/* A key on an index column: at most the cursor's value (the scan's start). */
static void
am_start_key(ScanKey key, Relation index, AttrNumber column, RegProcedure proc, Datum value)
{
	ScanKeyEntryInitialize(key, 0, column, BTLessEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[column - 1], proc, value);
}

/*
 * Starts the walk of the request's sort: NULL when listings are not read
 * directly (agentmarket.search_direct = off; the statement walks).
 */
AmDirectWalk *
am_direct_walk_begin(AmSearch *s)
{
	AmDirectWalk *w;
	ScanKeyData keys[2];
	int			nkeys = 0;
	bool		by_category = s->sort == AM_SORT_RELEVANCE && (s->filters & AM_F_CATEGORY);

	if (!am_direct_on())
		return NULL;
	w = palloc0(sizeof(AmDirectWalk));
	w->heap = am_direct_heap();
	am_direct_setup(&w->d, s, w->heap);
	switch (s->sort)
	{
		case AM_SORT_RELEVANCE:
			/* without words: the static order, the category's own when filtered by one */
			w->index = am_direct_index(by_category ? "agents_search_category_idx" : "agents_search_static_idx");
			if (by_category)
				ScanKeyEntryInitialize(&keys[nkeys++], 0, 1, BTEqualStrategyNumber, InvalidOid,
									   w->index->rd_indcollation[0], F_TEXTEQ, s->category);
			if (s->after)
				am_start_key(&keys[nkeys++], w->index, by_category ? 2 : 1, F_FLOAT8LE,
							 Float8GetDatum(s->after_score));
			break;
		case AM_SORT_RATING:
			w->index = am_direct_index("agents_search_rating_idx");
			if (s->after)
				am_start_key(&keys[nkeys++], w->index, 1, F_NUMERIC_LE, s->after_rating);
			break;
		case AM_SORT_POPULAR:
			w->index = am_direct_index("agents_search_popular_idx");
			if (s->after)
				am_start_key(&keys[nkeys++], w->index, 1, F_INT4LE, Int32GetDatum((int32) s->after_count));
			break;
		default:
			w->index = am_direct_index("agents_search_newest_idx");
			if (s->after)
				am_start_key(&keys[nkeys++], w->index, 1, F_TIMESTAMPTZ_LE, TimestampTzGetDatum(s->after_time));
			break;
	}
	w->scan = index_beginscan(w->heap, w->index, GetActiveSnapshot(), nkeys, 0);
	index_rescan(w->scan, keys, nkeys, NULL, 0);
	w->slot = table_slot_create(w->heap, NULL);
	w->row_cxt = AllocSetContextCreate(CurrentMemoryContext, "search direct walk row", ALLOCSET_DEFAULT_SIZES);
	return w;
}

/* Whether an index entry's listing is a candidate: its block's bit, then the list. */
static bool
am_walk_candidate(AmDirectWalk *w, ItemPointer tid)
{
	BlockNumber block = ItemPointerGetBlockNumberNoCheck(tid);
	int			lo = 0,
				hi = w->ncand;

	if (block >= w->nblocks || (w->blocks[block / 64] & (UINT64CONST(1) << (block % 64))) == 0)
		return false;
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c = ItemPointerCompare(&w->cand[mid], tid);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* A listing the walk read: put on the page when it matches (the statement's CASE and score). */
static bool
am_walk_row(AmDirectWalk *w, ReturnSetInfo *rsinfo, TupleTableSlot *slot)
{
	AmSearch   *s = w->d.s;
	Datum		values[AM_NCARD + 3];
	bool		nulls[AM_NCARD + 3];
	double		static_score;
	bool		isnull;
	TSVector	doc = NULL;
	int			c;

	if (s->has_query)
	{
		Datum		v = am_col(&w->d, slot, AM_COL_DOCUMENT, &isnull);

		if (isnull)
			return false;
		doc = DatumGetTSVector(v);
		if (!DatumGetBool(DirectFunctionCall2(ts_match_vq, PointerGetDatum(doc), s->plan_values[0])))
			return false;
	}
	slot_getallattrs(slot);
	for (c = 0; c < AM_NCARD; c++)
	{
		values[c] = slot->tts_values[w->d.attnums[c] - 1];
		nulls[c] = slot->tts_isnull[w->d.attnums[c] - 1];
	}
	static_score = DatumGetFloat8(slot->tts_values[w->d.attnums[AM_COL_STATIC] - 1]);
	values[AM_NCARD] = Float8GetDatum(s->has_query && s->ngroups > 0
									  ? am_blend(am_text_score(w->d.terms, doc), static_score)
									  : static_score);
	nulls[AM_NCARD] = false;
	values[AM_NCARD + 2] = (Datum) 0;
	nulls[AM_NCARD + 2] = true;
	am_emit_values(rsinfo, s, values, nulls);
	return true;
}

/*
 * A listing the walk read, its row in the slot: when it is published, in
 * the filters and after the cursor it counts as read (true), and is put on
 * the page when it matches (*hit).
 */
static bool
am_walk_take(AmDirectWalk *w, ReturnSetInfo *rsinfo, bool *hit)
{
	AmSearch   *s = w->d.s;
	MemoryContext old = MemoryContextSwitchTo(w->row_cxt);
	bool		read = false;

	*hit = false;
	if (am_direct_passes(&w->d, w->slot))
	{
		AmCandidate c;

		am_direct_keys(&w->d, w->slot, &c);
		if (!s->after || am_after_cursor(&w->d, &c))
		{
			read = true;
			*hit = am_walk_row(w, rsinfo, w->slot);
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(w->row_cxt);
	return read;
}

/*
 * Reads up to n more listings of the walk (published, in the filters,
 * after the cursor), emitting the matches while the page has room; stops
 * when it is full.  The listings read; 0 at the end of the index.
 */
uint64
am_direct_walk_fetch(AmDirectWalk *w, ReturnSetInfo *rsinfo, uint64 n, uint64 *hits)
{
	AmSearch   *s = w->d.s;
	uint64		got = 0;

	while (got < n && *hits < (uint64) s->k && !w->done)
	{
		bool		hit;

		CHECK_FOR_INTERRUPTS();
		if (!index_getnext_slot(w->scan, ForwardScanDirection, w->slot))
		{
			w->done = true;
			break;
		}
		if (am_walk_take(w, rsinfo, &hit))
		{
			got++;
			*hits += hit;
		}
	}
	w->read += got;
	w->hits = *hits;
	return got;
}

/*
 * The candidates among the entries of a leaf page of the sort's index,
 * in index order, into tids (the page share-locked and predicate-locked
 * as the btree's own scan reads it; a deleted page has none); the page's
 * right link, P_NONE at the end.
 */
static BlockNumber
am_walk_leaf(AmDirectWalk *w, BlockNumber blkno, ItemPointerData *tids, int *ntids)
{
	Buffer		buf = _bt_getbuf(w->index, blkno, BT_READ);
	Page		page = BufferGetPage(buf);
	BTPageOpaque opaque = BTPageGetOpaque(page);
	BlockNumber next = opaque->btpo_next;

	*ntids = 0;
	TestForOldSnapshot(w->scan->xs_snapshot, w->index, page);
	if (!P_IGNORE(opaque))
	{
		OffsetNumber off;
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

		PredicateLockPage(w->index, blkno, w->scan->xs_snapshot);
		for (off = P_FIRSTDATAKEY(opaque); off <= maxoff; off = OffsetNumberNext(off))
		{
			ItemId		iid = PageGetItemId(page, off);
			IndexTuple	itup;

			if (w->scan->ignore_killed_tuples && ItemIdIsDead(iid))
				continue;
			itup = (IndexTuple) PageGetItem(page, iid);
			if (BTreeTupleIsPosting(itup))
			{
				int			j;

				for (j = 0; j < BTreeTupleGetNPosting(itup); j++)
					if (am_walk_candidate(w, BTreeTupleGetPostingN(itup, j)))
						tids[(*ntids)++] = *BTreeTupleGetPostingN(itup, j);
				w->entries += BTreeTupleGetNPosting(itup);
			}
			else
			{
				if (am_walk_candidate(w, &itup->t_tid))
					tids[(*ntids)++] = itup->t_tid;
				w->entries++;
			}
		}
	}
	if (P_RIGHTMOST(opaque))
		next = P_NONE;
	_bt_relbuf(w->index, buf);
	return next;
}

/*
 * The walk over candidates (am_direct_walk_candidates): the btree's scan
 * finds the first leaf page (from the cursor) and reads it; the pages to
 * its right are read here, leaf by leaf, as its scan would read them
 * (the right link kept from the page read), but only the candidates'
 * rows are fetched: the scan's per-entry step cost more than the rows it
 * saved.  Emits matches until the page is full, the index ends, or
 * max_entries were stepped through (over).
 */
static void
am_walk_candidates_run(AmDirectWalk *w, ReturnSetInfo *rsinfo, uint64 *hits)
{
	AmSearch   *s = w->d.s;
	BTScanOpaque so = (BTScanOpaque) w->scan->opaque;
	ItemPointerData *tids = palloc(sizeof(ItemPointerData) * MaxTIDsPerBTreePage);
	int			ntids = 0;
	BlockNumber next = P_NONE;
	int			i;

	/* (rows are fetched once: an MVCC snapshot sees one version of a HOT chain) */
	Assert(IsMVCCSnapshot(w->scan->xs_snapshot));
	/* the first page, as the scan read it */
	if (index_getnext_tid(w->scan, ForwardScanDirection) == NULL)
		return;
	for (i = so->currPos.itemIndex; i <= so->currPos.lastItem; i++)
		if (am_walk_candidate(w, &so->currPos.items[i].heapTid))
			tids[ntids++] = so->currPos.items[i].heapTid;
	w->entries += so->currPos.lastItem - so->currPos.itemIndex + 1;
	if (so->currPos.moreRight)
		next = so->currPos.nextPage;

	for (;;)
	{
		for (i = 0; i < ntids && *hits < (uint64) s->k; i++)
		{
			bool		call_again = false;
			bool		all_dead = false;
			bool		hit;

			/* the row the entry stands for, visible to the snapshot (a HOT chain followed) */
			if (!table_index_fetch_tuple(w->scan->xs_heapfetch, &tids[i], w->scan->xs_snapshot, w->slot,
										 &call_again, &all_dead))
				continue;
			if (am_walk_take(w, rsinfo, &hit))
			{
				w->read++;
				*hits += hit;
			}
		}
		if (*hits >= (uint64) s->k || next == P_NONE)
			break;
		if (w->entries >= w->max_entries)
		{
			w->over = true;
			break;
		}
		CHECK_FOR_INTERRUPTS();
		next = am_walk_leaf(w, next, tids, &ntids);
	}
	w->hits = *hits;
	pfree(tids);
}

/* Ends the walk; search_direct_last reports it. */
void
am_direct_walk_end(AmDirectWalk *w)
{
	index_endscan(w->scan);
	ExecDropSingleTupleTableSlot(w->slot);
	MemoryContextDelete(w->row_cxt);
	index_close(w->index, AccessShareLock);
	table_close(w->heap, AccessShareLock);
	if (w->cand != NULL)
		am_direct_report("walk the sort's index over the candidates", w->entries, w->hits);
	else
		am_direct_report("walk the sort's index", w->read, w->hits);
}

/*
 * Sorted by a column, a page of matches that are few among the listings
 * ('kazu' by rating: 270 of 100,000, a page in 7,400 listings of the
 * sort's order; 2,700 of 1,000,000 at 1M, the same 7,400): the listings
 * that can match are read from the posting lists (search_gin.c) and the
 * sort's index is walked over them, stepping over other listings' entries
 * without reading their rows.  A page then costs its candidates' items,
 * the entries stepped over and about k rows, where GIN and sort reads
 * every match's row and the plain walk every listing's.  Chosen from the
 * estimates before anything is read, when it costs less than the way the
 * caller chose (by_gin: GIN and sort; else the plain walk, which gives way
 * to GIN after AM_SORTED_CAP rows).  Past the entries that the other way
 * would cost (at least twice those expected) the walk gives up: the page
 * is cleared and AM_CANDIDATES_OVER returned.
 */
int
am_direct_walk_candidates(ReturnSetInfo *rsinfo, AmSearch *s, bool by_gin)
{
	double		least;
	double		left;
	double		first;
	double		reading;
	double		matches;
	double		entries;
	double		rows;
	double		other;
	double		cost;
	ItemPointer cand;
	int			ncand;
	AmDirectWalk *w;
	uint64		hits = 0;
	bool		over;
	int			i;

	if (!s->has_query || s->expected_null || s->ngroups < 1 || !am_direct_on() || !am_candidates_on())
		return AM_CANDIDATES_NONE;
	/*
	 * Filters not counted (the words alone are few, am_plan: GIN and sort
	 * reads at most L/3 rows) leave the walk's length unknown: a category
	 * that holds few of them would walk far.
	 */
	for (i = 0; i < 4; i++)
		if ((s->filters & am_lexeme_filters[i]) && s->filter_docs[i] <= 0)
			return AM_CANDIDATES_NONE;
	reading = am_gin_items(s, &least, &left, &first);
	if (reading < 0)
		return AM_CANDIDATES_NONE;
	/* reading them: the first list decoded, each later one decoded and intersected */
	reading = first * AM_COST_ITEM + (reading - first) * AM_COST_MERGED;
	matches = Max(s->joint * s->filter_share, 1);
	entries = s->k * s->published / matches;
	/* rows read: the candidates met on the way to k matches (the filters not intersected drop some) */
	rows = Min(Max(s->k * left / matches, s->k), Max(left, 1));
	cost = reading + entries * AM_COST_ENTRY + rows * AM_COST_ROW;
	if (by_gin)
		other = reading + Max(left, matches) * AM_COST_SORTED_ROW;
	else if (entries <= AM_SORTED_CAP)
		other = entries * AM_COST_ROW;
	else
		other = AM_SORTED_CAP * AM_COST_ROW + reading + Max(left, matches) * AM_COST_SORTED_ROW;
	if (cost > other * AM_CANDIDATES_MARGIN || !am_gin_candidate_items(s, &cand, &ncand))
		return AM_CANDIDATES_NONE;
	if (ncand == 0)
	{
		am_direct_report("walk the sort's index over the candidates", 0, 0);
		return AM_CANDIDATES_ANSWERED;
	}

	/*
	 * The candidates are now counted, not estimated: words that rarely meet
	 * ('invoice podcast': 8 listings where independence projected 4,000)
	 * leave the walk most of the index to step through for a page it cannot
	 * fill, where sorting the few candidates reads only their rows (1.8 ms
	 * walked at 100k, a fraction of that sorted).  Spread evenly in the
	 * sort's order, k of them lie k / ncand of the way down.
	 */
	if ((double) ncand * AM_COST_SORTED_ROW <
		s->published * Min(1.0, (double) s->k / ncand) * AM_COST_ENTRY + Min(ncand, s->k) * AM_COST_ROW)
	{
		am_direct_sort_candidates(rsinfo, s, cand, ncand);
		return AM_CANDIDATES_ANSWERED;
	}

	w = am_direct_walk_begin(s);
	w->cand = cand;
	w->ncand = ncand;
	w->nblocks = ItemPointerGetBlockNumberNoCheck(&cand[ncand - 1]) + 1;
	w->blocks = palloc0(sizeof(uint64) * ((w->nblocks + 63) / 64));
	for (i = 0; i < ncand; i++)
	{
		BlockNumber block = ItemPointerGetBlockNumberNoCheck(&cand[i]);

		w->blocks[block / 64] |= UINT64CONST(1) << (block % 64);
	}
	w->max_entries = (int64) Min((double) PG_INT64_MAX / 2, Max(2 * entries, (other - reading) / AM_COST_ENTRY));
	am_walk_candidates_run(w, rsinfo, &hits);
	over = w->over;
	am_walk_sorted(w->entries, hits, over);
	am_direct_walk_end(w);
	if (over)
	{
		tuplestore_clear(rsinfo->setResult);
		return AM_CANDIDATES_OVER;
	}
	return AM_CANDIDATES_ANSWERED;
}

/*
 * The density sample in C (search_agents.c, am_sample): the first n
 * listings in static order (search_static, id, both descending: the static
 * index, or the category's when filters hold the category) that are
 * published and pass filters (a subset of the request's), how many there
 * were (*walked) and how many match the query (*hits).  What the sample
 * statement counts, without its executor start (and, with filters, its
 * plan per call).  False when listings are not read directly.
 */
bool
am_direct_sample(AmSearch *s, int filters, int n, int32 *walked, int32 *hits)
{
	AmSearch	masked = *s;
	AmDirect	d;
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData key;
	int			nkeys = 0;
	MemoryContext row_cxt;
	bool		by_category = (filters & AM_F_CATEGORY) != 0;

	if (!am_direct_on())
		return false;
	masked.filters = filters;
	masked.ngroups = 0;			/* nothing scored: no terms */
	heap = am_direct_heap();
	am_direct_setup(&d, &masked, heap);
	index = am_direct_index(by_category ? "agents_search_category_idx" : "agents_search_static_idx");
	if (by_category)
	{
		ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[0], F_TEXTEQ, s->category);
		nkeys = 1;
	}
	scan = index_beginscan(heap, index, GetActiveSnapshot(), nkeys, 0);
	index_rescan(scan, &key, nkeys, NULL, 0);
	slot = table_slot_create(heap, NULL);
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "search direct sample row", ALLOCSET_SMALL_SIZES);
	*walked = 0;
	*hits = 0;
	while (*walked < n && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		MemoryContext old = MemoryContextSwitchTo(row_cxt);

		CHECK_FOR_INTERRUPTS();
		if (am_direct_passes(&d, slot))
		{
			bool		isnull;
			Datum		doc = am_col(&d, slot, AM_COL_DOCUMENT, &isnull);

			(*walked)++;
			/* document @@ query: NULL (no document, no query) is not counted */
			if (!isnull && s->has_query &&
				DatumGetBool(DirectFunctionCall2(ts_match_vq, doc, s->plan_values[0])))
				(*hits)++;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(row_cxt);
	}
	MemoryContextDelete(row_cxt);
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	am_last_sample.ran = true;
	am_last_sample.filters = filters;
	am_last_sample.walked = *walked;
	am_last_sample.hits = *hits;
	return true;
}

/* A search_agents call begins: no sample yet. */
void
am_direct_sample_reset(void)
{
	am_last_sample.ran = false;
}

/*
 * search_sample_last: the density sample the backend's last search_agents
 * call read in C: the filters the listings passed (AM_F_* bits: 1 category,
 * 2 tags, 4 relays, 8 models, 16 pricing), the listings read (at most 64)
 * and the matches among them; NULL when it read none.  For tests: the
 * sample only steers the strategy.
 */
/* SQL function: search_sample_last */
Datum
search_sample_last(PG_FUNCTION_ARGS)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (!am_last_sample.ran)
		PG_RETURN_NULL();
	values[0] = Int32GetDatum(am_last_sample.filters);
	values[1] = Int32GetDatum(am_last_sample.walked);
	values[2] = Int32GetDatum(am_last_sample.hits);
	PG_RETURN_DATUM(am_result_row(fcinfo, values, nulls));
}
