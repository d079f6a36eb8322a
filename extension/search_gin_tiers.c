/*-------------------------------------------------------------------------
 * search_gin_tiers.c
 *	  One word with typos or completions, walked in static order through
 *	  the name and tagline/tag tiers' posting lists (see below).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/gin_private.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
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
 * ---------------------------------------------------------------------
 * One word with typos or completions, walked in static order through the
 * name and tagline/tag tiers' posting lists.
 *
 * A word whose matches are many but score low where most of them hold it
 * (a typo's 0.5, a completion's 0.8, mostly in descriptions) makes the
 * relevance walk read thousands of listings in static order before the
 * page's last score beats what any listing further down could score
 * ('invoise' by relay at 1M: 4,032 listings for 843 matches, 20-26 ms):
 * only a listing with the word in its name can stop it.  Here the walk
 * reads the static-score btree's entries (TIDs and static scores, not the
 * listings) and knows each listing's tier from the search_fields posting
 * lists of its terms (a/t: the name; b/t: tagline or tags): a listing of
 * the name or tagline tier is read and scored when its ceiling (0.75 x the
 * tier's best text + 0.25 x its static score) can still reach the page;
 * any other listing can only match in its description, and is set aside
 * and read (from the best static score down) only while the description
 * tier's ceiling can still reach the page (a listing in none of the word's
 * posting lists on search_document is no match: skipped).  The walk stops when the page
 * is full and its last score is above the ceiling of every tier at the
 * current static score.  Every listing read is checked and scored on its
 * row as scoring every match scores it, so the page is exactly that one.
 * ---------------------------------------------------------------------
 */

/* Listings set aside at most before they are read (memory). */
#define AM_TIERS_DEFERRED 4096

/* A TID as one number in the order of TIDs (block, offset). */
static inline uint64
am_gin_key(const ItemPointerData *tid)
{
	return ((uint64) ItemPointerGetBlockNumberNoCheck(tid) << 16) | ItemPointerGetOffsetNumberNoCheck(tid);
}

/* A sorted set of TIDs as sorted numbers (one comparison a probe, not three). */
static uint64 *
am_gin_keys(const ItemPointerData *set, int n)
{
	uint64	   *keys = palloc(sizeof(uint64) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		keys[i] = am_gin_key(&set[i]);
	return keys;
}

/* Whether a TID is in a set of sorted numbers. */
static bool
am_gin_has(const uint64 *set, int n, ItemPointer tid)
{
	uint64		key = am_gin_key(tid);
	const uint64 *base = set;

	if (n == 0)
		return false;
	/* branch-free halving: base ends on the last element <= key, if any */
	while (n > 1)
	{
		int			half = n / 2;

		base = base[half] <= key ? base + half : base;
		n -= half;
	}
	return *base == key;
}

/* The sorted, distinct items of every term of a read (one field's terms). */
static ItemPointer
am_gin_union(AmGinRead *r, int *n)
{
	ItemPointer all = NULL;
	int			i;

	*n = 0;
	am_gin_read_pending(r);
	for (i = 0; i < r->nterms; i++)
	{
		AmGinTerm  *t = &r->terms[i];

		am_gin_read_key(r, t);
		if (t->n == 0)
			continue;
		if (*n == 0)
		{
			all = t->items;
			*n = t->n;
		}
		else
			all = ginMergeItemPointers(all, *n, t->items, t->n, n);
	}
	return all;
}

/* The first element of a float8 array column of the plan. */
static double
am_gin_plan_first(const AmSearch *s, int index, Oid type)
{
	int			n;
	Datum	   *v = am_plan_array(s->plan_values, index, type, &n);

	if (n < 1)
		return 0;
	return type == FLOAT8OID ? DatumGetFloat8(v[0]) : (double) DatumGetInt64(v[0]);
}

/*
 * Reads one listing by TID (a btree entry's) and puts it on the page if it
 * matches and belongs there; the listings read are counted.
 */
static void
am_gin_tiers_fetch(AmDirect *d, IndexFetchTableData *fetch, TupleTableSlot *slot, Snapshot snapshot,
				   ItemPointer tid, MemoryContext row_cxt, int64 *checked)
{
	bool		call_again = false;
	bool		all_dead = false;
	MemoryContext old = MemoryContextSwitchTo(row_cxt);

	if (table_index_fetch_tuple(fetch, tid, snapshot, slot, &call_again, &all_dead))
	{
		(*checked)++;
		am_direct_row(d, slot, true, d->s->plan_values[0]);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(row_cxt);
}

/* Whether the page is full and its last listing scores above ceiling. */
static inline bool
am_gin_beaten(const AmDirect *d, double ceiling)
{
	return d->n == d->s->k && d->page[d->s->k - 1].score > ceiling;
}

/*
 * Relevance, one word (with its typos or completions), not scored whole:
 * the page through the tiers in static order (above), when the vocabulary's
 * counts say its name and tagline tiers' posting lists cost less to read
 * than the listings the walk would read to fill the page from them.  False
 * (nothing done) otherwise.
 */
bool
am_gin_tiers(ReturnSetInfo *rsinfo, AmSearch *s)
{
	bool		by_category = (s->filters & AM_F_CATEGORY) != 0;
	double		walk_n,
				walk_share,
				tier_docs,
				walk_rows,
				bounds[3],
				top;
	int			nlex,
				i,
				f,
				na,
				nb;
	Datum	   *lexemes,
			   *prefixes;
	AmGinRead	fields[3];
	uint64	   *sets[3];
	int			nany;
	Relation	document_index;
	Relation	heap,
				order,
				fields_index;
	Snapshot	snapshot = GetActiveSnapshot();
	AmDirect	d;
	ScanKeyData key;
	IndexScanDesc iscan;
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	MemoryContext row_cxt;
	ItemPointer tid;
	ItemPointerData *deferred;
	double	   *deferred_static;
	int			ndeferred = 0;
	int			next_deferred = 0;
	int64		checked = 0;
	double		entries = 0;
	bool		aborted = false;

	/*
	 * Not within a category: words of a domain crowd its category and are
	 * rare in the others, which the vocabulary's counts cannot tell (the
	 * walk samples the category first); its tiers were often far sparser
	 * or denser than estimated (bench/search at 1M: 1.5-4.8 ms by the walk,
	 * 4.5-15 ms here).
	 */
	if (!am_direct_on() || !am_gin_merge_on() || by_category || s->ngroups != 1 || s->plan_nulls[8] ||
		DatumGetBool(s->plan_values[8]) || s->plan_nulls[13] || s->plan_nulls[16])
		return false;

	/*
	 * The walk reads its index's listings (the category's, or all) until k
	 * of the name and tagline tiers within the filters (the description
	 * tier's matches score too low to stop it, as a rule); this reads those
	 * tiers' posting lists.
	 */
	tier_docs = am_gin_plan_first(s, 13, INT8OID) + am_gin_plan_first(s, 14, INT8OID);
	walk_n = s->published * (by_category ? s->category_share : 1);
	walk_share = s->filter_share / (by_category ? s->category_share : 1);
	/* down to k of the best tier (the name's, or the tagline's if no name holds the word) */
	walk_rows = (s->after ? 2.0 : 1.0) * s->k * walk_n /
		Max((am_gin_plan_first(s, 13, INT8OID) > 0 ? am_gin_plan_first(s, 13, INT8OID)
			 : am_gin_plan_first(s, 14, INT8OID)) * s->filter_share, 1);

	/*
	 * In microseconds: a btree entry 0.15, a posting-list item 0.005, a
	 * listing read and scored 1.5.  This reads the btree's entries down to
	 * the page, the tiers' lists and about k / (filters' share) listings;
	 * the walk reads its listings; scoring every match reads the matches
	 * within the filters and the word's lists.  Chosen when it costs less
	 * than both, and the name and tagline tiers hold a page twice over
	 * within the filters (else the description tier decides: the walk).
	 */
	{
		double		tiers_cost = 0.15 * walk_rows + 0.005 * (tier_docs + am_gin_plan_first(s, 12, INT8OID)) +
			1.5 * s->k / Max(walk_share, 1e-9);
		double		walk_cost = 1.5 * walk_rows;
		double		score_cost = 1.5 * s->expected + 0.005 * am_gin_plan_first(s, 12, INT8OID);

		if (s->expected_null || tier_docs * s->filter_share < 2.0 * s->k ||
			tiers_cost >= walk_cost || tiers_cost >= score_cost)
			return false;
	}

	/* a prefix's completions (too many: the walk) */
	memset(fields, 0, sizeof(fields));
	lexemes = am_plan_array(s->plan_values, 1, TEXTOID, &nlex);
	prefixes = am_plan_array(s->plan_values, 4, BOOLOID, &nlex);
	for (f = 0; f < 3; f++)
	{
		fields[f].maxterms = 16;
		fields[f].terms = palloc(sizeof(AmGinTerm) * fields[f].maxterms);
		fields[f].snapshot = snapshot;
	}
	for (i = 0; i < nlex; i++)
	{
		char	   *lexeme = TextDatumGetCString(lexemes[i]);
		char	  **words = NULL;
		int			n = 0,
					w;

		if (DatumGetBool(prefixes[i]) && !am_completions(lexeme, &words, &n))
			return false;
		for (f = 0; f < 3; f++)
		{
			const char *field = f == 0 ? "a/" : f == 1 ? "b/" : "";

			am_gin_add_term(&fields[f], psprintf("%s%s", field, lexeme), 0);
			for (w = 0; w < n; w++)
				am_gin_add_term(&fields[f], psprintf("%s%s", field, words[w]), 0);
		}
	}
	/* the tiers' best text scores (a hair above: the scorer multiplies in another order) */
	bounds[0] = am_gin_plan_first(s, 16, FLOAT8OID) * (1 + 1e-9);
	bounds[1] = am_gin_plan_first(s, 17, FLOAT8OID) * (1 + 1e-9);
	bounds[2] = am_gin_plan_first(s, 18, FLOAT8OID) * (1 + 1e-9);
	top = Max(bounds[0], Max(bounds[1], bounds[2]));

	heap = am_direct_heap();
	fields_index = am_direct_index("agents_search_fields_idx");
	document_index = am_direct_index("agents_search_document_idx");
	for (f = 0; f < 3; f++)
	{
		int		   *n = f == 0 ? &na : f == 1 ? &nb : &nany;
		ItemPointer items;

		fields[f].index = f < 2 ? fields_index : document_index;
		initGinState(&fields[f].ginstate, fields[f].index);
		items = am_gin_union(&fields[f], n);
		sets[f] = am_gin_keys(items, *n);
	}
	am_direct_setup(&d, s, heap);
	d.scored = true;
	d.page = palloc(sizeof(AmCandidate) * s->k);
	d.page_cxt = CurrentMemoryContext;
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "search tiers row", ALLOCSET_DEFAULT_SIZES);
	deferred = palloc(sizeof(ItemPointerData) * AM_TIERS_DEFERRED);
	deferred_static = palloc(sizeof(double) * AM_TIERS_DEFERRED);

	/* the static-score btree: the category's when filtered by one */
	order = am_direct_index(by_category ? "agents_search_category_idx" : "agents_search_static_idx");
	iscan = index_beginscan(heap, order, snapshot, by_category ? 1 : 0, 0);
	iscan->xs_want_itup = true;
	if (by_category)
	{
		ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, TEXTOID, order->rd_indcollation[0],
							   F_TEXTEQ, s->category);
		index_rescan(iscan, &key, 1, NULL, 0);
	}
	else
		index_rescan(iscan, NULL, 0, NULL, 0);
	fetch = table_index_fetch_begin(heap);
	slot = table_slot_create(heap, NULL);

	while ((tid = index_getnext_tid(iscan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		double		st;
		int			tier;

		/*
		 * The tiers are far sparser than their counts said (words of one
		 * domain, filtered by another's category): nothing is emitted yet,
		 * so the walk or scoring every match answers instead, having lost
		 * a fifth of what the walk would read.
		 */
		if (++entries > 2 * walk_rows + 256)
		{
			aborted = true;
			break;
		}
		st = DatumGetFloat8(index_getattr(iscan->xs_itup, by_category ? 2 : 1, iscan->xs_itupdesc, &isnull));
		CHECK_FOR_INTERRUPTS();
		if (isnull)
		{
			/* no static score to bound it by: read it */
			am_gin_tiers_fetch(&d, fetch, slot, snapshot, tid, row_cxt, &checked);
			continue;
		}
		if (am_gin_beaten(&d, am_blend(top, st)))
			break;
		tier = am_gin_has(sets[0], na, tid) ? 0 : am_gin_has(sets[1], nb, tid) ? 1 : 2;
		/* in no posting list of the word: not a match */
		if (tier == 2 && !am_gin_has(sets[2], nany, tid))
			continue;
		if (am_gin_beaten(&d, am_blend(bounds[tier], st)))
			continue;
		if (tier < 2)
		{
			am_gin_tiers_fetch(&d, fetch, slot, snapshot, tid, row_cxt, &checked);
			continue;
		}
		/* the description tier: set aside, read once the tiers above have had their turn */
		if (ndeferred == AM_TIERS_DEFERRED)
		{
			for (; next_deferred < ndeferred; next_deferred++)
				if (!am_gin_beaten(&d, am_blend(bounds[2], deferred_static[next_deferred])))
					am_gin_tiers_fetch(&d, fetch, slot, snapshot, &deferred[next_deferred], row_cxt, &checked);
			ndeferred = next_deferred = 0;
		}
		deferred[ndeferred] = *tid;
		deferred_static[ndeferred++] = st;
	}
	/* the description tier's listings set aside, best static first, while they can reach the page */
	for (; !aborted && next_deferred < ndeferred; next_deferred++)
	{
		if (am_gin_beaten(&d, am_blend(bounds[2], deferred_static[next_deferred])))
			break;
		am_gin_tiers_fetch(&d, fetch, slot, snapshot, &deferred[next_deferred], row_cxt, &checked);
	}

	ExecDropSingleTupleTableSlot(slot);
	table_index_fetch_end(fetch);
	index_endscan(iscan);
	MemoryContextDelete(row_cxt);
	if (aborted)
		am_direct_reset();
	else
	{
		am_direct_emit(&d, rsinfo, RelationGetDescr(heap));
		am_direct_report("walk the tiers in static order", checked, d.matches);
	}
	index_close(order, AccessShareLock);
	index_close(fields_index, AccessShareLock);
	index_close(document_index, AccessShareLock);
	table_close(heap, AccessShareLock);
	return !aborted;
}
