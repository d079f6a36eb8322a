/*-------------------------------------------------------------------------
 * search_direct_walk.c
 *	  The walk of a sort's index in C: listings in the sort's order (or,
 *	  by relevance without words in a category, the category's static
 *	  order), from the cursor on, within the filters, read in the chunks
 *	  search_agents.c asks for; the matches among them emitted until the
 *	  page is full.
 *
 * This is the sorted walk's statement (search_agents.c, AM_KIND_SORTED_WALK)
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
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_collation.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tsearch/ts_type.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "agentmarket.h"
#include "search_agents.h"
#include "search_direct.h"

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
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		if (!index_getnext_slot(w->scan, ForwardScanDirection, w->slot))
		{
			w->done = true;
			break;
		}
		old = MemoryContextSwitchTo(w->row_cxt);
		if (am_direct_passes(&w->d, w->slot))
		{
			AmCandidate c;

			am_direct_keys(&w->d, w->slot, &c);
			if (!s->after || am_after_cursor(&w->d, &c))
			{
				got++;
				if (am_walk_row(w, rsinfo, w->slot))
					(*hits)++;
			}
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(w->row_cxt);
	}
	w->read += got;
	w->hits = *hits;
	return got;
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
	am_direct_report("walk the sort's index", w->read, w->hits);
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
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (!am_last_sample.ran)
		PG_RETURN_NULL();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("search_sample_last must return a row")));
	values[0] = Int32GetDatum(am_last_sample.filters);
	values[1] = Int32GetDatum(am_last_sample.walked);
	values[2] = Int32GetDatum(am_last_sample.hits);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
