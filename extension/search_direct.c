/*-------------------------------------------------------------------------
 * search_direct.c
 *	  Every match of a search read through the GIN index in C: the bitmap
 *	  of the words and filter lexemes, the listings on it checked, scored
 *	  (or keyed by the sort), the page kept as it goes and emitted.
 *
 * This is what the statements "score every match" and "GIN, then sort"
 * (search_agents.c) compute, without a statement: for a search that reads
 * a few dozen listings, starting the executor, sorting every match's card
 * columns and copying the rows through SPI cost more than the reads.  Only
 * the page's listings become result rows (cards, cursors).  The rows are
 * byte for byte those of the statements: sql/search_direct compares both
 * paths (agentmarket.search_direct = off takes the statements), and
 * search_direct_last() says which answered.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/tupmacs.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/tidbitmap.h"
#include "tsearch/ts_type.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "agentmarket.h"
#include "search_agents.h"
#include "search_direct.h"
#include "search_gin.h"

PG_FUNCTION_INFO_V1(search_direct_last);

/* By name: the card columns in result order, then the others (AM_COL_*). */
const char *const am_col_names[AM_NCOLS] = {
	"id", "slug", "name", "tagline", "icon_url", "category", "pricing_model", "credits_per_session",
	"avg_rating", "total_reviews", "total_hires", "supported_relays", "supported_models", "tags",
	"published_at", "status", "search_document", "search_static"
};

/* What the backend's last search_agents call read directly (search_direct_last). */
static struct
{
	const char *path;			/* what read them; NULL: nothing */
	int64		checked;		/* listings the bitmap held, read */
	int64		matches;		/* of them matches (after the cursor) */
}			am_last_direct;

/* A search_agents call begins: nothing read directly yet. */
void
am_direct_reset(void)
{
	memset(&am_last_direct, 0, sizeof(am_last_direct));
}

/* Whether a text column equals a value (texteq: the default collation, deterministic). */
static bool
am_text_equal(Datum column, Datum value)
{
	return DatumGetBool(DirectFunctionCall2Coll(texteq, DEFAULT_COLLATION_OID, column, value));
}

/* A text[] filter's values (NULL: none), unpacked into set in the current context. */
static void
am_text_set(Datum array, AmTextSet *set)
{
	Datum	   *values;
	bool	   *nulls;
	int			i;

	memset(set, 0, sizeof(*set));
	if (array == (Datum) 0)
		return;
	deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false, TYPALIGN_INT, &values, &nulls, &set->n);
	set->data = palloc(sizeof(char *) * Max(set->n, 1));
	set->len = palloc(sizeof(int) * Max(set->n, 1));
	set->seen = palloc(sizeof(bool) * Max(set->n, 1));
	for (i = 0; i < set->n; i++)
	{
		set->has_null |= nulls[i];
		set->data[i] = nulls[i] ? NULL : VARDATA_ANY(DatumGetPointer(values[i]));
		set->len[i] = nulls[i] ? -1 : (int) VARSIZE_ANY_EXHDR(DatumGetPointer(values[i]));
	}
}

/*
 * A row's text[] against a filter's values, as the statements' operators
 * compare them (texteq in the default collation, which is deterministic:
 * bytes): all, the row holds every value (@>, false when a value is
 * NULL); else it holds one of them (&&).  NULL elements match nothing.
 * Without fmgr: arrayoverlap looked its type up and unpacked both arrays
 * for every row (13% of a rare word filtered by relay).
 */
static bool
am_text_array_meets(Datum row, AmTextSet *set, bool all)
{
	ArrayType  *a;
	char	   *p;
	bits8	   *bitmap;
	int			nitems,
				i,
				j,
				met = 0;

	if (all && set->has_null)
		return false;
	a = DatumGetArrayTypeP(row);
	nitems = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	if (all)
		memset(set->seen, 0, sizeof(bool) * set->n);
	/* the elements in place (ARR_DATA_PTR's own expansion trips -Wsign-compare) */
	p = (char *) a + (ARR_HASNULL(a) ? (Size) a->dataoffset : ARR_OVERHEAD_NONULLS(ARR_NDIM(a)));
	bitmap = ARR_NULLBITMAP(a);
	for (i = 0; i < nitems; i++)
	{
		const char *data;
		int			len;

		if (bitmap != NULL && !(bitmap[i / 8] & (1 << (i % 8))))
			continue;			/* NULL: no data */
		data = VARDATA_ANY(p);
		len = VARSIZE_ANY_EXHDR(p);
		p = att_addlength_pointer(p, -1, p);
		p = (char *) att_align_nominal(p, TYPALIGN_INT);
		for (j = 0; j < set->n; j++)
			if (set->len[j] == len && memcmp(set->data[j], data, len) == 0)
			{
				if (!all)
					return true;
				if (!set->seen[j])
				{
					set->seen[j] = true;
					if (++met == set->n)
						return true;
				}
			}
	}
	return false;
}

/*
 * Whether a listing is published and passes the request's filters (NULL
 * columns fail them, as in SQL).
 */
bool
am_direct_passes(AmDirect *d, TupleTableSlot *slot)
{
	AmSearch   *s = d->s;
	bool		isnull;
	Datum		v;

	v = am_col(d, slot, AM_COL_STATUS, &isnull);
	if (isnull || !am_text_equal(v, d->published))
		return false;

	if (s->filters & AM_F_CATEGORY)
	{
		v = am_col(d, slot, AM_CARD_CATEGORY, &isnull);
		if (isnull || !am_text_equal(v, s->category))
			return false;
	}
	if (s->filters & AM_F_TAGS)
	{
		v = am_col(d, slot, AM_CARD_TAGS, &isnull);
		if (isnull || !am_text_array_meets(v, &d->tags, true))
			return false;
	}
	if (s->filters & AM_F_RELAYS)
	{
		v = am_col(d, slot, AM_CARD_RELAYS, &isnull);
		if (isnull || !am_text_array_meets(v, &d->relays, false))
			return false;
	}
	if (s->filters & AM_F_MODELS)
	{
		v = am_col(d, slot, AM_CARD_MODELS, &isnull);
		if (isnull || !am_text_array_meets(v, &d->models, false))
			return false;
	}
	if (s->filters & AM_F_PRICING)
	{
		v = am_col(d, slot, AM_CARD_PRICING, &isnull);
		if (isnull || !am_text_equal(v, s->pricing))
			return false;
	}
	return true;
}

/*
 * a against b in the page's order: < 0 when a comes first.  Relevance:
 * score (or static score) descending; rating: COALESCE(avg_rating, 0),
 * reviews; popular: hires; newest: publication (NULL first, as DESC puts
 * it); then id, all descending.
 */
static int
am_candidate_cmp(AmDirect *d, const AmCandidate *a, const AmCandidate *b)
{
	int			c = 0;

	switch (d->s->sort)
	{
		case AM_SORT_RELEVANCE:
			c = -float8_cmp_internal(a->score, b->score);
			break;
		case AM_SORT_RATING:
			c = -DatumGetInt32(DirectFunctionCall2(numeric_cmp, a->key, b->key));
			if (c == 0 && a->key2 != b->key2)
				c = a->key2 > b->key2 ? -1 : 1;
			break;
		case AM_SORT_POPULAR:
			if (DatumGetInt32(a->key) != DatumGetInt32(b->key))
				c = DatumGetInt32(a->key) > DatumGetInt32(b->key) ? -1 : 1;
			break;
		default:
			if (a->key_null != b->key_null)
				c = a->key_null ? -1 : 1;
			else if (!a->key_null && DatumGetTimestampTz(a->key) != DatumGetTimestampTz(b->key))
				c = DatumGetTimestampTz(a->key) > DatumGetTimestampTz(b->key) ? -1 : 1;
			break;
	}
	if (c == 0)
		c = -memcmp(a->id.data, b->id.data, UUID_LEN);
	return c;
}

/*
 * Whether a listing comes after the cursor: the keyset row comparison
 * (keys..., id) < (cursor's keys..., id) of the statements, where a NULL
 * key makes it NULL (not after).
 */
bool
am_after_cursor(AmDirect *d, const AmCandidate *c)
{
	AmSearch   *s = d->s;
	int			cmp = 0;

	switch (s->sort)
	{
		case AM_SORT_RELEVANCE:
			cmp = float8_cmp_internal(c->score, s->after_score);
			break;
		case AM_SORT_RATING:
			cmp = DatumGetInt32(DirectFunctionCall2(numeric_cmp, c->key, s->after_rating));
			if (cmp == 0 && (int64) c->key2 != s->after_count)
				cmp = (int64) c->key2 < s->after_count ? -1 : 1;
			break;
		case AM_SORT_POPULAR:
			if ((int64) DatumGetInt32(c->key) != s->after_count)
				cmp = (int64) DatumGetInt32(c->key) < s->after_count ? -1 : 1;
			break;
		default:
			if (c->key_null)
				return false;
			if (DatumGetTimestampTz(c->key) != s->after_time)
				cmp = DatumGetTimestampTz(c->key) < s->after_time ? -1 : 1;
			break;
	}
	if (cmp == 0)
		cmp = memcmp(c->id.data, DatumGetUUIDP(s->after_id)->data, UUID_LEN);
	return cmp < 0;
}

/*
 * What the page keeps of a match's row, in one chunk of page_cxt: the
 * values of the card's columns, the static score and, where the emitted
 * score is computed from it (sorted by a column, with words), the document;
 * then their nulls; then the data of those passed by reference.  The whole
 * row was copied before, about 1.5 kB, most of it the description and the
 * document: for a rare word, whose every match goes on the page, those
 * copies were a third of the memory the call wrote, each into memory not
 * in the CPU's caches.
 */
/*
 * Whether a page row's emitted score is computed from its document (sorted
 * by a column, with words), so the page keeps the document: by relevance
 * the score was computed as the row was read.
 */
static inline bool
am_page_scores_document(const AmDirect *d)
{
	return d->s->ngroups > 0 && !(d->s->sort == AM_SORT_RELEVANCE && d->scored);
}

/* The column (AM_COL_*) of a page row's column c (AM_KEPT_*: the card's first). */
static inline int
am_kept_col(int c)
{
	return c < AM_NCARD ? c : c == AM_KEPT_STATIC ? AM_COL_STATIC : AM_COL_DOCUMENT;
}

static Datum *
am_page_row(AmDirect *d, TupleTableSlot *slot)
{
	TupleDesc	desc = slot->tts_tupleDescriptor;
	Datum		values[AM_NKEPT];
	bool		nulls[AM_NKEPT];
	Size		lens[AM_NKEPT];
	Size		head = MAXALIGN(sizeof(Datum) * AM_NKEPT + sizeof(bool) * AM_NKEPT);
	Size		size = head;
	Datum	   *row;
	char	   *data;
	int			c;

	for (c = 0; c < AM_NKEPT; c++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, d->attnums[am_kept_col(c)] - 1);

		if (c == AM_KEPT_DOCUMENT && !am_page_scores_document(d))
		{
			values[c] = (Datum) 0;
			nulls[c] = true;
			lens[c] = 0;
			continue;
		}
		values[c] = am_col(d, slot, am_kept_col(c), &nulls[c]);
		lens[c] = nulls[c] || att->attbyval ? 0
			: att->attlen > 0 ? (Size) att->attlen : VARSIZE_ANY(DatumGetPointer(values[c]));
		size += MAXALIGN(lens[c]);
	}
	row = MemoryContextAlloc(d->page_cxt, size);
	memcpy(row, values, sizeof(values));
	memcpy(row + AM_NKEPT, nulls, sizeof(nulls));
	data = (char *) row + head;
	for (c = 0; c < AM_NKEPT; c++)
		if (lens[c] > 0)
		{
			memcpy(data, DatumGetPointer(values[c]), lens[c]);
			row[c] = PointerGetDatum(data);
			data += MAXALIGN(lens[c]);
		}
	return row;
}

/* Puts a match on the page (best first, at most k), copying what it keeps of the row, unless it falls below. */
static void
am_page_add(AmDirect *d, AmCandidate *c, TupleTableSlot *slot)
{
	int			k = d->s->k;
	int			at;
	MemoryContext old;

	if (d->n == k && am_candidate_cmp(d, c, &d->page[k - 1]) >= 0)
		return;
	if (d->n == k)
	{
		pfree(d->page[k - 1].row);
		if (d->s->sort == AM_SORT_RATING)
			pfree(DatumGetPointer(d->page[k - 1].key));
		d->n--;
	}
	for (at = d->n; at > 0 && am_candidate_cmp(d, c, &d->page[at - 1]) < 0; at--)
		d->page[at] = d->page[at - 1];
	old = MemoryContextSwitchTo(d->page_cxt);
	c->row = am_page_row(d, slot);
	if (d->s->sort == AM_SORT_RATING)
		c->key = PointerGetDatum(PG_DETOAST_DATUM_COPY(c->key));
	MemoryContextSwitchTo(old);
	d->page[at] = *c;
	d->n++;
}

/*
 * A listing the bitmap holds: checked (published, the words when the
 * bitmap asks to recheck, the filters), keyed, after the cursor, and put
 * on the page when it belongs there.
 */
void
am_direct_row(AmDirect *d, TupleTableSlot *slot, bool recheck, Datum query)
{
	AmSearch   *s = d->s;
	AmCandidate c;
	bool		isnull;
	Datum		v;
	TSVector	doc = NULL;

	if (!am_direct_passes(d, slot))
		return;
	v = am_col(d, slot, AM_COL_DOCUMENT, &isnull);
	if (isnull)
		return;
	if (recheck || d->scored)
		doc = DatumGetTSVector(v);
	if (recheck && !DatumGetBool(DirectFunctionCall2(ts_match_vq, PointerGetDatum(doc), query)))
		return;
	am_direct_keys(d, slot, &c);
	if (d->scored)
		c.score = am_blend(am_text_score(d->terms, doc), c.score);
	if (s->after && !am_after_cursor(d, &c))
		return;
	am_last_direct.matches++;
	d->matches++;
	am_page_add(d, &c, slot);
}

/*
 * A listing's keys in the request's sort: its id and, by relevance, its
 * static score (the caller blends in the text score), or the sort's columns.
 */
void
am_direct_keys(AmDirect *d, TupleTableSlot *slot, AmCandidate *c)
{
	bool		isnull;

	memset(c, 0, sizeof(*c));
	memcpy(c->id.data, DatumGetUUIDP(am_col(d, slot, AM_CARD_ID, &isnull))->data, UUID_LEN);
	switch (d->s->sort)
	{
		case AM_SORT_RELEVANCE:
			c->score = DatumGetFloat8(am_col(d, slot, AM_COL_STATIC, &isnull));
			break;
		case AM_SORT_RATING:
			c->key = am_col(d, slot, AM_CARD_RATING, &isnull);
			/*
			 * Unpacked once (the row's work context): numeric_cmp would
			 * otherwise copy a short-header numeric out of the row on every
			 * comparison of the page's insertion (8% of a rare word by
			 * rating).
			 */
			c->key = isnull ? DirectFunctionCall1(int4_numeric, Int32GetDatum(0))
				: PointerGetDatum(PG_DETOAST_DATUM(c->key));
			c->key2 = DatumGetInt32(am_col(d, slot, AM_CARD_REVIEWS, &isnull));
			break;
		case AM_SORT_POPULAR:
			c->key = am_col(d, slot, AM_CARD_HIRES, &isnull);
			break;
		default:
			c->key = am_col(d, slot, AM_CARD_PUBLISHED, &c->key_null);
			break;
	}
}

/* The page's rows: cards, score, cursor. */
void
am_direct_emit(AmDirect *d, ReturnSetInfo *rsinfo)
{
	int			i;

	for (i = 0; i < d->n; i++)
	{
		AmCandidate *p = &d->page[i];
		const bool *kept_nulls = (const bool *) (p->row + AM_NKEPT);
		Datum		values[AM_NCARD + 3];
		bool		nulls[AM_NCARD + 3];

		memcpy(values, p->row, sizeof(Datum) * AM_NCARD);
		memcpy(nulls, kept_nulls, sizeof(bool) * AM_NCARD);
		nulls[AM_NCARD] = false;
		if (d->s->sort == AM_SORT_RELEVANCE && (d->scored || d->s->ngroups == 0))
			values[AM_NCARD] = Float8GetDatum(p->score);
		else
		{
			/* sorted by a column: the score as the statement computes it */
			double		static_score = DatumGetFloat8(p->row[AM_KEPT_STATIC]);

			values[AM_NCARD] = Float8GetDatum(am_page_scores_document(d)
											  ? am_blend(am_text_score(d->terms, DatumGetTSVector(p->row[AM_KEPT_DOCUMENT])),
														 static_score)
											  : static_score);
		}
		nulls[AM_NCARD + 2] = true;
		values[AM_NCARD + 2] = (Datum) 0;
		am_emit_values(rsinfo, d->s, values, nulls);
	}
}

/* agentmarket.agents, open to read (read directly, not through SQL: the caller must be allowed to). */
Relation
am_direct_heap(void)
{
	Relation	heap = am_open_kept("agentmarket", "agents", RELKIND_RELATION);

	if (pg_class_aclcheck(RelationGetRelid(heap), GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table agents")));
	return heap;
}

/* An index of agents by name (a string constant), open to read. */
Relation
am_direct_index(const char *name)
{
	return am_open_kept("agentmarket", name, RELKIND_INDEX);
}

/* A listing read from the bitmap, checked and keyed in its own work context. */
static void
am_direct_read_row(AmDirect *d, AmSearch *s, TupleTableSlot *slot, bool recheck, MemoryContext row_cxt)
{
	MemoryContext old = MemoryContextSwitchTo(row_cxt);

	am_last_direct.checked++;
	am_direct_row(d, slot, recheck, s->gin_check);
	MemoryContextSwitchTo(old);
	MemoryContextReset(row_cxt);
}

/*
 * The listing at tid as an index scan fetches it (the visible member of its
 * HOT chain; tid is the fetch's to move along it), read as
 * am_direct_read_row reads it.
 */
static void
am_direct_fetch_row(AmDirect *d, IndexFetchTableData *fetch, ItemPointerData tid, Snapshot snapshot,
					TupleTableSlot *slot, bool recheck, MemoryContext row_cxt)
{
	bool		call_again = false;

	if (table_index_fetch_tuple(fetch, &tid, snapshot, slot, &call_again, NULL))
		am_direct_read_row(d, d->s, slot, recheck, row_cxt);
}

/*
 * The listings on a bitmap (rows rechecked against the query where it says
 * so), or without one (tbm NULL) the nitems listings of items in TID order
 * (each rechecked), checked and keyed in C; the page after the cursor is
 * emitted: by score (scored), else in the sort's order.  heap and index are
 * closed.
 */
static void
am_direct_read(ReturnSetInfo *rsinfo, AmSearch *s, bool scored, Relation heap, Relation index, TIDBitmap *tbm,
			   ItemPointer items, int nitems)
{
	AmDirect	d;
	Snapshot	snapshot = GetActiveSnapshot();
	TBMIterator *it;
	TBMIterateResult *page;
	TableScanDesc scan = NULL;
	IndexFetchTableData *fetch = NULL;
	TupleTableSlot *slot;
	MemoryContext row_cxt;

	/* what this read reports: its own rows, not a walk's that gave way to it */
	am_last_direct.checked = 0;
	am_last_direct.matches = 0;
	am_direct_setup(&d, s, heap);
	d.scored = scored;
	d.page = palloc(sizeof(AmCandidate) * s->k);
	d.page_cxt = CurrentMemoryContext;
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "search direct row", ALLOCSET_DEFAULT_SIZES);

	/*
	 * the listings on it: a page of listings the bitmap names one by one
	 * fetched as an index scan fetches them (the visible member of each HOT
	 * chain, as a bitmap heap scan finds it on such a page, without a
	 * scan's setup: the relation's size asked of the kernel, its
	 * descriptor), a page it holds whole (lossy) read by a bitmap heap scan
	 */
	slot = table_slot_create(heap, NULL);
	/* or the listings named in TID order, each rechecked (read from the posting lists) */
	if (tbm == NULL)
	{
		int			i;

		fetch = table_index_fetch_begin(heap);
		for (i = 0; i < nitems; i++)
		{
			if ((i & 1023) == 0)
				CHECK_FOR_INTERRUPTS();
			am_direct_fetch_row(&d, fetch, items[i], snapshot, slot, true, row_cxt);
		}
	}
	it = tbm != NULL ? tbm_begin_iterate(tbm) : NULL;
	while (it != NULL && (page = tbm_iterate(it)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		if (page->ntuples >= 0)
		{
			int			i;

			if (fetch == NULL)
				fetch = table_index_fetch_begin(heap);
			for (i = 0; i < page->ntuples; i++)
			{
				ItemPointerData tid;

				ItemPointerSet(&tid, page->blockno, page->offsets[i]);
				am_direct_fetch_row(&d, fetch, tid, snapshot, slot, page->recheck, row_cxt);
			}
			continue;
		}
		if (scan == NULL)
			scan = table_beginscan_bm(heap, snapshot, 0, NULL);
		if (!table_scan_bitmap_next_block(scan, page))
			continue;
		while (table_scan_bitmap_next_tuple(scan, page, slot))
			am_direct_read_row(&d, s, slot, page->recheck, row_cxt);
	}
	if (it != NULL)
	{
		tbm_end_iterate(it);
		tbm_free(tbm);
	}
	ExecDropSingleTupleTableSlot(slot);
	if (fetch != NULL)
		table_index_fetch_end(fetch);
	if (scan != NULL)
		table_endscan(scan);

	MemoryContextDelete(row_cxt);
	am_direct_emit(&d, rsinfo);
	if (index != NULL)
		index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
}

/*
 * Every match through the GIN index on search_document (the request's GIN
 * query: words and filter lexemes), checked and keyed in C; the page after
 * the cursor is emitted: by score (scored, relevance with words), else in
 * the sort's order.  False (nothing done) when agentmarket.search_direct
 * is off: the statements answer.
 */
bool
am_direct_gin(ReturnSetInfo *rsinfo, AmSearch *s, bool scored)
{
	Relation	heap;
	Relation	index;
	Snapshot	snapshot = GetActiveSnapshot();
	ScanKeyData key;
	IndexScanDesc iscan;
	TIDBitmap  *tbm;
	ItemPointer cand;
	int			ncand;
	bool		merged;

	if (!am_direct_on())
		return false;
	Assert(!s->gin_null);
	heap = am_direct_heap();
	index = am_direct_index("agents_search_document_idx");

	/*
	 * the words and filter lexemes: their posting lists intersected in C
	 * when that costs less (search_gin.c), the listings left read in TID
	 * order; else GIN's scan into a bitmap (of more than a page of
	 * listings, a hash table: 12 kB zeroed, too, for a rare word)
	 */
	merged = am_gin_candidates(s, index, snapshot, &cand, &ncand);
	if (merged)
		am_direct_read(rsinfo, s, scored, heap, index, NULL, cand, ncand);
	else
	{
		tbm = tbm_create(work_mem * 1024L, NULL);
		ScanKeyEntryInitialize(&key, 0, 1, 1 /* @@ */ , TSQUERYOID, index->rd_indcollation[0],
							   F_TS_MATCH_VQ, s->gin_query);
		iscan = index_beginscan_bitmap(index, snapshot, 1);
		index_rescan(iscan, &key, 1, NULL, 0);
		index_getbitmap(iscan, tbm);
		index_endscan(iscan);
		am_direct_read(rsinfo, s, scored, heap, index, tbm, NULL, 0);
	}
	if (merged)
		am_last_direct.path = scored ? "score every match, posting lists" : "sort every match, posting lists";
	else
		am_last_direct.path = scored ? "score every match" : "sort every match";
	return true;
}

/*
 * The listings that can match, already read from the posting lists (a sort
 * walk's candidates), sorted in C: each row checked against the query.
 */
void
am_direct_sort_candidates(ReturnSetInfo *rsinfo, AmSearch *s, ItemPointer cand, int ncand)
{
	am_direct_read(rsinfo, s, false, am_direct_heap(), NULL, NULL, cand, ncand);
	am_last_direct.path = "sort the candidates";
}

/*
 * agents' column numbers by AM_COL_*, found by name once per backend and
 * found again after any change of the table (a relcache invalidation:
 * columns added, dropped, renamed).
 */
static Oid	am_attnums_relid = InvalidOid;
static AttrNumber am_attnums[AM_NCOLS];
static bool am_attnums_callback;

static void
am_attnums_relcache(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == am_attnums_relid)
		am_attnums_relid = InvalidOid;
}

/* Sets up a read of agents (open, the caller may read it): its columns, the filters' functions, the terms. */
void
am_direct_setup(AmDirect *d, AmSearch *s, Relation heap)
{
	TupleDesc	desc = RelationGetDescr(heap);
	int			c;

	memset(d, 0, sizeof(*d));
	d->s = s;
	if (!am_attnums_callback)
	{
		CacheRegisterRelcacheCallback(am_attnums_relcache, (Datum) 0);
		am_attnums_callback = true;
	}
	if (am_attnums_relid != RelationGetRelid(heap))
	{
		for (c = 0; c < AM_NCOLS; c++)
		{
			int			a;

			for (a = 0; a < desc->natts; a++)
				if (!TupleDescAttr(desc, a)->attisdropped &&
					strcmp(NameStr(TupleDescAttr(desc, a)->attname), am_col_names[c]) == 0)
					break;
			if (a == desc->natts)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column agents.%s does not exist", am_col_names[c])));
			am_attnums[c] = a + 1;
		}
		am_attnums_relid = RelationGetRelid(heap);
	}
	memcpy(d->attnums, am_attnums, sizeof(am_attnums));
	am_text_set(s->filters & AM_F_TAGS ? s->tags : (Datum) 0, &d->tags);
	am_text_set(s->filters & AM_F_RELAYS ? s->relays : (Datum) 0, &d->relays);
	am_text_set(s->filters & AM_F_MODELS ? s->models : (Datum) 0, &d->models);
	if (s->ngroups > 0)
		d->terms = am_terms(s->plan_values[1], s->plan_values[2], s->plan_values[3], s->plan_values[4],
							s->ngroups);
	d->published = CStringGetTextDatum("published");
}

/* What a direct read did, for search_direct_last (the walk of a sort's index reports here). */
void
am_direct_report(const char *path, int64 checked, int64 matches)
{
	am_last_direct.path = path;
	am_last_direct.checked = checked;
	am_last_direct.matches = matches;
}

/*
 * search_direct_last: whether the backend's last search_agents call read
 * its matches directly (score every match, or GIN then sort), how many
 * listings the bitmap gave and how many of them matched; NULL when a
 * statement answered.  For tests: the rows cannot tell.
 */
/* SQL function: search_direct_last */
Datum
search_direct_last(PG_FUNCTION_ARGS)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (am_last_direct.path == NULL)
		PG_RETURN_NULL();
	values[0] = CStringGetTextDatum(am_last_direct.path);
	values[1] = Int64GetDatum(am_last_direct.checked);
	values[2] = Int64GetDatum(am_last_direct.matches);
	PG_RETURN_DATUM(am_result_row(fcinfo, values, nulls));
}
