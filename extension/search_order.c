/*-------------------------------------------------------------------------
 * search_order.c
 *	  The relevance top-k of common words read in static order with a bound
 *	  per listing: the ordered walk.
 *
 * The tiers of search_walk.c are fetched through one GIN scan each and
 * read whole before a static floor applies to them: 'recipe fitness travel
 * garden' (13,000 matches in 100k listings) read some 4,000 listings of 20
 * tiers, each GIN scan decoding the same posting lists again.  Here the
 * posting lists of the words' name terms (search_fields' a/word, within the
 * filter lexemes) are read once, into a sorted array of the listings that
 * have some word in their name and which ones: a listing's class.  A
 * class's bound is the best text score its listings can have (a word in
 * the name at its best value anywhere, any other word at best in a tagline
 * or tags); listings in no class have the least bound.  Classes are read
 * best bound first: small ones fetched by their listings (heap tuples by
 * TID, no statement), while the page is not full or walking down to their
 * static floor would read more of the static-score btree than they hold;
 * then the btree is walked index-only, and a listing's row is read only
 * when its class's bound at its static score can still reach the page
 * (blend(bound, static) >= the page's k-th score).  The walk stops when
 * no class with listings left unseen can reach the page at the static
 * score reached.  Each bound is at least the listing's score, so the page
 * is exactly what scoring every match gives (sql/search_order).
 *
 * Beside a word's name set, its tagline set (search_fields' b/word): a
 * listing in neither has the word in its description only, so its class
 * is bounded by the description's weight (agentmarket.search_order_heads).
 * The sets are read smallest first within a budget (AM_ORDER_SET_MIN
 * listings, or AM_ORDER_SET_SHARE of all, AM_ORDER_HEAD_SHARE with tagline
 * sets, search_order_sets.c): a word left without one counts at its best
 * in every class.  When the first
 * listings in static order hold none or one match where independent words
 * would meet often, the listings that can match are read first (the words'
 * posting lists on search_document intersected): few are fetched by TID
 * with no set read, many narrow the walk to them (an entry of another
 * listing is skipped without its row) and every class has a count the
 * walk can exhaust (agentmarket.search_order_matches: auto, on, off).  When
 * the page fills slowly, the density the walk reads projects the matches,
 * and scoring them all is chosen when it costs less (their posting lists
 * included).  The members are looked up by heap block, not by a binary
 * search.  OR queries, lossy bitmaps and agentmarket.search_order = off
 * take search_walk.c's walk.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/itup.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "nodes/tidbitmap.h"
#include "tsearch/ts_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "agentmarket.h"
#include "search_agents.h"
#include "search_direct.h"
#include "search_gin.h"
#include "search_order.h"

PG_FUNCTION_INFO_V1(search_order_last);

/*
 * Index entries the walk may read for one row it saves: a row read costs
 * a heap page, a document decompressed, checked and scored; an entry of
 * the btree read index-only, a binary search.
 */
#define AM_ORDER_ENTRY_RATIO 40
/*
 * With the page not full, a class is fetched by its listings up to this many
 * times the page's size, or half of sqrt(k * N / filter share) (where
 * fetching costs less than walking to k of its listings); a larger one
 * fills the page through the walk (which reads the sets' listings first).
 */
#define AM_ORDER_FIRST_CLASS 4
/* Entries of listings in no set put aside at most, while the page is not full. */
#define AM_ORDER_DEFER_MAX 8192
/* Entries read with the page not full between two looks at the density. */
#define AM_ORDER_SAMPLE 64

/* The listings of one combination of words in the name. */
typedef struct AmClass
{
	uint32		mask;
	double		bound;			/* the best text score a listing of it can have */
	int64		count;			/* its listings (in the sets) */
	int64		unseen;			/* of them not yet seen by the walk */
	bool		fetched;		/* read by TID: the walk skips them */
} AmClass;

/* An entry of the walk put aside: its TID and static score. */
typedef struct AmDeferred
{
	ItemPointerData tid;
	double		st;
} AmDeferred;

/* One ordered walk. */
typedef struct AmOrder
{
	AmSearch   *s;
	AmDirect	d;
	Relation	heap;
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	MemoryContext row_cxt;
	Snapshot	snapshot;
	AmTop		top;
	double		text_share;
	int64		rows;			/* rows read */
	int64		matches;		/* of them matches after the cursor */
} AmOrder;

/* What the backend's last search_agents call walked in order (search_order_last). */
static struct
{
	bool		ran;
	int64		members;		/* listings in the name sets */
	int			sets;			/* words with a set */
	int			classes;		/* classes with listings */
	int			classes_fetched;	/* read by TID */
	int64		entries;		/* btree entries the walk read */
	int64		rows;			/* rows read (by TID and by the walk) */
	int64		matches;
	bool		scored_all;		/* it gave way to scoring every match */
	int64		candidates;		/* listings that can match, from the words' posting lists; -1: not read */
}			am_last_order;

/* CPU time of this backend, ms (the machine is shared: wall time means little). */
static double
am_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* A search_agents call begins. */
void
am_order_reset(void)
{
	memset(&am_last_order, 0, sizeof(am_last_order));
	am_last_order.candidates = -1;
}

/*
 * Whether a listing whose text scores at most bound, at static score
 * static_score, can still reach the page: its score cannot be above
 * blend(bound, static), and a tie may still win on the id.  The blend is
 * rounded to a 1e-9 grid; away from the page's k-th score by more than
 * that, the unrounded sum decides without the call (the walk asks for
 * every btree entry).
 */
static inline bool
am_order_reaches(AmOrder *o, double bound, double static_score)
{
	double		kth,
				raw;

	if (o->top.n < o->s->k)
		return true;
	kth = o->top.scores[o->s->k - 1];
	raw = o->text_share * bound + (1 - o->text_share) * static_score;
	if (raw >= kth + 1e-8)
		return true;
	if (raw < kth - 1e-8)
		return false;
	return am_blend(bound, static_score) >= kth;
}

/*
 * Reads the listing at a TID (the visible member of its HOT chain) and, when
 * it is published, in the filters, a match and after the cursor, puts it on
 * the page with its score.
 */
static void
am_order_row(AmOrder *o, ItemPointer tid)
{
	AmSearch   *s = o->s;
	bool		call_again = false;
	bool		all_dead = false;
	MemoryContext old;

	old = MemoryContextSwitchTo(o->row_cxt);
	if (table_index_fetch_tuple(o->fetch, tid, o->snapshot, o->slot, &call_again, &all_dead))
	{
		bool		isnull;
		Datum		v;

		o->rows++;
		if (am_direct_passes(&o->d, o->slot) &&
			!(v = am_col(&o->d, o->slot, AM_COL_DOCUMENT, &isnull), isnull))
		{
			TSVector	doc = DatumGetTSVector(v);

			if (DatumGetBool(DirectFunctionCall2(ts_match_vq, PointerGetDatum(doc), s->plan_values[0])))
			{
				double		static_score = DatumGetFloat8(am_col(&o->d, o->slot, AM_COL_STATIC, &isnull));
				double		score = am_blend(am_text_score(o->d.terms, doc), static_score);
				pg_uuid_t	id;

				memcpy(id.data, DatumGetUUIDP(am_col(&o->d, o->slot, AM_CARD_ID, &isnull))->data, UUID_LEN);
				if (!s->after || am_rank_cmp(score, &id, s->after_score, DatumGetUUIDP(s->after_id)) > 0)
				{
					o->matches++;
					am_top_add(&o->top, s->k, score, &id);
				}
			}
		}
		ExecClearTuple(o->slot);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(o->row_cxt);
}

/*
 * Reads the entries put aside (in static order) that can still reach the
 * page at bound; none are left.
 */
static int
am_order_flush(AmOrder *o, const AmDeferred *deferred, int n, double bound)
{
	int			i;

	for (i = 0; i < n; i++)
		if (am_order_reaches(o, bound, deferred[i].st))
		{
			ItemPointerData tid = deferred[i].tid;

			am_order_row(o, &tid);
		}
	return 0;
}

/* The walk's index: the category's when filtered by one (its listings only), else every listing's. */
static IndexScanDesc
am_order_scan(AmOrder *o, Relation index, bool by_category)
{
	ScanKeyData key;
	IndexScanDesc scan = index_beginscan(o->heap, index, o->snapshot, by_category ? 1 : 0, 0);

	scan->xs_want_itup = true;
	if (by_category)
		ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[0], F_TEXTEQ, o->s->category);
	index_rescan(scan, &key, by_category ? 1 : 0, NULL, 0);
	return scan;
}

/* The static score of the walk's current entry. */
static inline double
am_order_static(IndexScanDesc scan, bool by_category)
{
	bool		isnull;
	Datum		v = index_getattr(scan->xs_itup, by_category ? 2 : 1, scan->xs_itupdesc, &isnull);

	return isnull ? 0 : DatumGetFloat8(v);
}

/*
 * Entries of the walk's index with a static score of at least floor,
 * counted up to cap + 1 (index-only); *first: the best static score.
 */
static int64
am_order_count(AmOrder *o, Relation index, bool by_category, double floor, int64 cap, double *first)
{
	IndexScanDesc scan = am_order_scan(o, index, by_category);
	int64		n = 0;

	*first = 0;
	while (n <= cap && index_getnext_tid(scan, ForwardScanDirection) != NULL)
	{
		double		st = am_order_static(scan, by_category);

		if (n == 0)
			*first = st;
		if (st < floor)
			break;
		n++;
	}
	index_endscan(scan);
	return n;
}

static int
am_class_cmp(const void *a, const void *b)
{
	const AmClass *x = (const AmClass *) a;
	const AmClass *y = (const AmClass *) b;

	if (x->bound != y->bound)
		return x->bound > y->bound ? -1 : 1;
	if (x->count != y->count)
		return x->count < y->count ? -1 : 1;
	return (int) x->mask - (int) y->mask;
}

/*
 * The class of a mask (open addressing, size a power of two; slots -1 when
 * free).  The hash is the product's top bits: its low bits depend only on
 * the mask's low bits, so masks differing only in their tagline bits (16
 * and up) all probed on from one slot (3.3 ms for 208,000 members of 79
 * classes at a million listings, 0.4 with the top bits).
 */
static int
am_class_slot(const uint32 *keys, const int *slots, int size, uint32 mask)
{
	int			h = (int) ((mask * 2654435761u) >> (32 - pg_leftmost_one_pos32((uint32) size)));

	while (slots[h] >= 0 && keys[h] != mask)
		h = (h + 1) & (size - 1);
	return h;
}

/*
 * Whether the walk reads the words' posting lists on search_document first
 * (see am_order_walk).
 */
static bool
am_order_reads_matches(bool asked)
{
	int			setting = am_order_matches_setting();

	return setting >= 0 ? setting == 1 : asked;
}

/* Whether the ordered walk applies: on, every word required (no OR), at most AM_ORDER_MAX_GROUPS. */
bool
am_order_applies(const AmSearch *s)
{
	return am_order_on() && am_direct_on() && s->ngroups >= 1 && s->ngroups <= AM_ORDER_MAX_GROUPS &&
		!DatumGetBool(s->plan_values[8]) && !s->plan_nulls[0];
}

/*
 * The most listings of a class (or of the listings that can match) fetched
 * by their rows while the page is not full, when share_left of them are
 * within the filters (am_order_filter).  Walking to k of them reads k / share_left of their
 * rows and k / share_left / count of the walked index's entries per
 * listing (an entry costs 1 / AM_ORDER_ENTRY_RATIO of a row); fetching,
 * count rows.  So: those rows, or the count where both cost the same,
 * whichever is more, and at least AM_ORDER_FIRST_CLASS pages.  (Before
 * 2026-12-02 it was half of sqrt(k * N / filter share) on every page: at
 * a million listings a class of 2,400 within two relays was fetched, 10 ms,
 * where walking read 37 rows.)
 */
static double
am_order_fetch_max(const AmSearch *s, double share_left)
{
	double		walked = s->published * ((s->filters & AM_F_CATEGORY) ? s->category_share : 1);
	double		most;

	share_left = Max(share_left, 1e-9);
	most = Max(Max(AM_ORDER_FIRST_CLASS * s->k, s->k / share_left),
			   sqrt(s->k * walked / share_left / AM_ORDER_ENTRY_RATIO));

	/*
	 * After a cursor the walk first passes the pages before it, their rows
	 * read and let go, which the above does not count: there the bound the
	 * walk had before (half of sqrt(k * N / filter share)) stands.
	 */
	if (s->after)
		most = Max(most, sqrt(s->k * s->published / Max(s->filter_share, 1e-9)) / 2);
	return most;
}

/*
 * The ordered walk (see the header): false when it does not apply (the
 * caller walks with search_walk.c); otherwise true with the page's ids and
 * scores as arrays, best first.
 */
int
am_order_walk(AmSearch *s, bool read_matches, Datum *ids, Datum *scores)
{
	int			ngroups = s->ngroups;
	AmWords		words;
	AmMember   *members = NULL;
	int64		nmembers = 0;
	int64		maxclasses;
	uint32	   *slot_keys;
	int		   *slots;
	int			nslots = 16;
	AmClass    *classes;
	int		   *rank;
	int64	   *starts;
	int64	   *by_class;
	int			nclasses = 0;
	int			g,
				i,
				c;
	int64		m;
	AmOrder		o;
	AmScoring	w;
	Relation	fields;
	Relation	index;
	bool		by_category = (s->filters & AM_F_CATEGORY) != 0;
	double		max_static = 0;
	bool		have_max_static = false;
	int			first_walked;
	bool		done = false;
	bool		score_all = false;
	bool		known = false;	/* members are every listing that can match, in no set or in some */
	double		share_left = s->filter_share;	/* of the members, within the filters */
	uint64	   *mkeys = NULL;
	int64		nm = 0;
	int64		candidates = 0;
	double		t0,
				t1,
				t2;

	if (!am_order_applies(s))
		return AM_ORDER_NONE;
	t0 = am_cpu_ms();
	if (!am_order_words(s, &words))
		return AM_ORDER_NONE;
	am_order_choose_sets(s, &words, am_order_heads_on());

	/*
	 * The listings that can match, when the sample could not tell words
	 * that rarely meet from an unlucky draw (am_order_reads_matches): the
	 * words' posting lists on search_document intersected, as scoring every
	 * match would read them.  Then every member is a listing that can
	 * match, with its words in the name or tagline or none; the walk skips
	 * the others' entries without reading their rows, and every class
	 * (listings in no set too) has a count the walk can exhaust.  Few: they
	 * are fetched by their listings, and no set is read.
	 */
	fields = am_direct_index("agents_search_fields_idx");
	if (am_order_reads_matches(read_matches))
	{
		known = am_order_candidates(s, &mkeys, &nm);
		if (known)
		{
			/* within the filters (their lists, when they pay) */
			nm = am_order_filter(s, fields, mkeys, sizeof(uint64), nm, &share_left);
			if (nm <= am_order_fetch_max(s, share_left))
				for (g = 0; g < ngroups; g++)
					words.has_name[g] = words.has_head[g] = false;
		}
	}

	/* the sets: listings with each word in their name or tagline */
	am_last_order.sets = am_order_read_sets(s, fields, &words, &members, &nmembers);
	if (am_last_order.sets < 0)
	{
		index_close(fields, AccessShareLock);
		am_last_order.sets = 0;
		return AM_ORDER_NONE;
	}
	if (known)
	{
		/* the members that can match (within the filters already), and the others that can */
		members = am_order_restrict(members, nmembers, mkeys, nm);
		nmembers = nm;
		am_last_order.candidates = candidates = nm;
	}
	else
		nmembers = am_order_filter(s, fields, members, sizeof(AmMember), nmembers, &share_left);
	index_close(fields, AccessShareLock);

	/* the classes, by their words' fields; the first: listings in no set */
	maxclasses = Min(nmembers, (int64) 1 << (2 * ngroups));
	while (nslots < 2 * (maxclasses + 1))
		nslots *= 2;
	slot_keys = palloc(sizeof(uint32) * nslots);
	slots = palloc(sizeof(int) * nslots);
	memset(slots, -1, sizeof(int) * nslots);
	classes = palloc0(sizeof(AmClass) * (maxclasses + 1));
	i = am_class_slot(slot_keys, slots, nslots, 0);
	slot_keys[i] = 0;
	slots[i] = nclasses++;
	for (m = 0; m < nmembers; m++)
	{
		i = am_class_slot(slot_keys, slots, nslots, members[m].mask);
		if (slots[i] < 0)
		{
			slot_keys[i] = members[m].mask;
			slots[i] = nclasses;
			classes[nclasses++].mask = members[m].mask;
		}
		classes[slots[i]].count++;
		members[m].mask = (uint32) slots[i];	/* from here on: the class */
	}
	for (c = 0; c < nclasses; c++)
	{
		classes[c].bound = am_order_class_bound(&words, classes[c].mask);
		classes[c].unseen = classes[c].count;
		classes[c].mask = c;	/* its number before sorting */
	}
	/* each class's listings, in TID order */
	starts = palloc0(sizeof(int64) * (nclasses + 1));
	for (m = 0; m < nmembers; m++)
		starts[members[m].mask + 1]++;
	for (c = 0; c < nclasses; c++)
		starts[c + 1] += starts[c];
	by_class = am_scratch_alloc(sizeof(int64) * Max(nmembers, 1));
	{
		int64	   *next = palloc(sizeof(int64) * (nclasses + 1));

		memcpy(next, starts, sizeof(int64) * (nclasses + 1));
		for (m = 0; m < nmembers; m++)
			by_class[next[members[m].mask]++] = m;
	}
	qsort(classes, nclasses, sizeof(AmClass), am_class_cmp);
	rank = palloc(sizeof(int) * nclasses);
	for (c = 0; c < nclasses; c++)
		rank[classes[c].mask] = c;
	am_last_order.ran = true;
	am_last_order.members = nmembers;
	am_last_order.classes = nclasses - 1;
	t1 = am_cpu_ms();

	/* reading rows */
	memset(&o, 0, sizeof(o));
	o.s = s;
	o.snapshot = GetActiveSnapshot();
	o.heap = am_direct_heap();
	am_direct_setup(&o.d, s, o.heap);
	o.fetch = table_index_fetch_begin(o.heap);
	o.slot = table_slot_create(o.heap, NULL);
	o.row_cxt = AllocSetContextCreate(CurrentMemoryContext, "search order row", ALLOCSET_DEFAULT_SIZES);
	am_search_scoring(&w);
	o.text_share = w.text_share;
	index = am_direct_index(by_category ? "agents_search_category_idx" : "agents_search_static_idx");

	/*
	 * Classes fetched by their listings, best bound first: while the page is
	 * not full (small ones), and when it is, while walking down to
	 * the class's static floor would read more entries than the rows of it
	 * and every later class would (the walk reads those past the floor too).
	 */
	for (first_walked = 0; first_walked < nclasses; first_walked++)
	{
		AmClass    *cl = &classes[first_walked];
		int			number = cl->mask;

		if (number == 0 && !known)
			break;				/* listings in no set, not counted: walked */
		/* the best static score, read once the page is full (a btree descent) */
		if (o.top.n >= s->k && !have_max_static)
		{
			am_order_count(&o, index, by_category, 2, 0, &max_static);
			have_max_static = true;
		}
		if (!am_order_reaches(&o, cl->bound, max_static))
		{
			done = true;		/* nothing below can reach the page */
			break;
		}
		if (o.top.n < s->k)
		{
			if (cl->count > am_order_fetch_max(s, share_left))
				break;
		}
		else
		{
			double		floor = (o.top.scores[s->k - 1] - o.text_share * cl->bound) / (1 - o.text_share) - 1e-6;
			int64		later = 0;
			double		first;
			double		share = am_static_share_above(floor);
			double		above;

			/* the classes that can still reach the page (the others are never read) */
			for (c = first_walked; c < nclasses; c++)
				if ((classes[c].mask != 0 || known) && am_order_reaches(&o, classes[c].bound, max_static))
					later += classes[c].count;
			above = share >= 0
				? share * s->published * (by_category ? s->category_share : 1)
				: (double) am_order_count(&o, index, by_category, floor, later * AM_ORDER_ENTRY_RATIO, &first);
			if (above <= later * AM_ORDER_ENTRY_RATIO)
				break;
		}
		for (m = starts[number]; m < starts[number + 1]; m++)
		{
			ItemPointerData tid;
			uint64		key = members[by_class[m]].tid;

			ItemPointerSet(&tid, am_tid_key_block(key), am_tid_key_offset(key));
			am_order_row(&o, &tid);
		}
		cl->fetched = true;
		am_last_order.classes_fetched++;
	}
	if (first_walked >= nclasses)
		done = true;			/* every class fetched: nothing to walk */
	t2 = am_cpu_ms();

	/* the walk: entries in static order, rows read when their class can reach the page */
	if (!done)
	{
		IndexScanDesc scan = am_order_scan(&o, index, by_category);
		int			best_left = first_walked;	/* the best class not fetched with listings unseen */
		ItemPointer tid;
		int64		open_entries = 0;	/* entries read while the page was not full */
		int64		open_hits = 0;	/* of them matches */
		double		size = s->published * (by_category ? s->category_share : 1);
		bool		rare_apart = !s->joint_null && s->joint * s->filter_share <= s->exhaustive_limit;
		double		gin_cost = am_gin_cost(s);
		/*
		 * While the page is not full, listings in no set (the least bound)
		 * are put aside rather than read: the page fills from the sets'
		 * listings, and those put aside are read once it is full, when
		 * they can still reach it, or when too many wait.
		 */
		AmDeferred *deferred = am_scratch_alloc(sizeof(AmDeferred) * AM_ORDER_DEFER_MAX);
		int			ndeferred = 0;
		bool		deferring = nmembers > 0;
		AmClass    *none = &classes[rank[0]];
		AmMemberIndex lookup;

		am_order_index(&lookup, members, nmembers);

		while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
		{
			double		st = am_order_static(scan, by_category);
			const AmMember *member;
			AmClass    *cl;

			CHECK_FOR_INTERRUPTS();
			while (best_left < nclasses && (classes[best_left].fetched ||
											((classes[best_left].mask != 0 || known) &&
											 classes[best_left].unseen == 0)))
				best_left++;
			if (best_left >= nclasses || !am_order_reaches(&o, classes[best_left].bound, st))
				break;
			am_last_order.entries++;
			member = am_order_lookup(&lookup,
									 am_tid_key(ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid)));
			if (member == NULL && known)
				continue;		/* cannot match: its row is not read */
			cl = &classes[rank[member != NULL ? member->mask : 0]];
			if (cl->fetched)
				continue;
			if (cl->mask != 0 || known)
				cl->unseen--;
			if (o.top.n < s->k && deferring && cl == none)
			{
				if (ndeferred < AM_ORDER_DEFER_MAX)
				{
					deferred[ndeferred].tid = *tid;
					deferred[ndeferred++].st = st;
					continue;
				}
				ndeferred = am_order_flush(&o, deferred, ndeferred, none->bound);
				deferring = false;
			}
			if (o.top.n < s->k && !deferring)
			{
				int64		before = o.matches;

				am_order_row(&o, tid);
				open_entries++;
				open_hits += o.matches - before;

				/*
				 * The page fills slowly: the matches the density projects
				 * (or the listings that can match, when read) are scored at
				 * once when that costs less than a third of what was read
				 * (a few matches in a small sample are taken at their word
				 * only when independent words would meet rarely too), as
				 * search_walk.c's walk does.  Scoring them reads the words'
				 * posting lists too: for words in most listings ('help task
				 * agent' with all four filters) those cost more than the
				 * rows.
				 */
				if (open_entries % AM_ORDER_SAMPLE == 0 && (known || open_hits >= 8 || rare_apart) &&
					(o.rows + (double) am_last_order.entries / AM_ORDER_ENTRY_RATIO) * 3 >=
					(known ? (double) candidates : (double) open_hits / open_entries * size) + gin_cost)
				{
					score_all = true;
					break;
				}
			}
			else if (am_order_reaches(&o, cl->bound, st))
				am_order_row(&o, tid);
			if (ndeferred > 0 && o.top.n == s->k)
				ndeferred = am_order_flush(&o, deferred, ndeferred, none->bound);
		}
		ndeferred = am_order_flush(&o, deferred, ndeferred, none->bound);
		index_endscan(scan);
	}

	table_index_fetch_end(o.fetch);
	ExecDropSingleTupleTableSlot(o.slot);
	MemoryContextDelete(o.row_cxt);
	index_close(index, AccessShareLock);
	table_close(o.heap, AccessShareLock);
	am_last_order.rows = o.rows;
	am_last_order.matches = o.matches;
	am_last_order.scored_all = score_all;
	am_walk_ordered(am_last_order.entries, o.matches, am_last_order.classes_fetched, score_all);
	{
		double		t3 = am_cpu_ms();

		elog(DEBUG1, "search_agents: ordered walk: %d sets, %lld listings in them, %d classes (%d fetched): %.3f ms;"
			 " fetched %.3f ms; walked %lld entries %.3f ms; %lld rows, %lld matches (CPU)",
			 am_last_order.sets, (long long) nmembers, nclasses - 1, am_last_order.classes_fetched,
			 t1 - t0, t2 - t1, (long long) am_last_order.entries,
			 t3 - t2, (long long) o.rows, (long long) o.matches);
	}

	if (score_all)
		return AM_ORDER_SCORE_ALL;
	{
		Datum	   *id_datums = palloc(sizeof(Datum) * Max(o.top.n, 1));
		Datum	   *score_datums = palloc(sizeof(Datum) * Max(o.top.n, 1));

		for (i = 0; i < o.top.n; i++)
		{
			id_datums[i] = UUIDPGetDatum(&o.top.ids[i]);
			score_datums[i] = Float8GetDatum(o.top.scores[i]);
		}
		*ids = PointerGetDatum(construct_array(id_datums, o.top.n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
		*scores = PointerGetDatum(construct_array(score_datums, o.top.n, FLOAT8OID, 8, FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
	}
	return AM_ORDER_ANSWERED;
}

/*
 * search_order_last: what the backend's last search_agents call read in
 * its ordered walk (listings in the name sets, words with a set, classes
 * and those fetched by TID, btree entries walked, rows read, matches,
 * whether it gave way to scoring every match), or NULL when it took no
 * ordered walk.  For tests: the rows cannot tell.
 */
/* SQL function: search_order_last */
Datum
search_order_last(PG_FUNCTION_ARGS)
{
	Datum		values[9];
	bool		nulls[9] = {false, false, false, false, false, false, false, false, false};

	if (!am_last_order.ran)
		PG_RETURN_NULL();
	values[0] = Int64GetDatum(am_last_order.members);
	values[1] = Int32GetDatum(am_last_order.sets);
	values[2] = Int32GetDatum(am_last_order.classes);
	values[3] = Int32GetDatum(am_last_order.classes_fetched);
	values[4] = Int64GetDatum(am_last_order.entries);
	values[5] = Int64GetDatum(am_last_order.rows);
	values[6] = Int64GetDatum(am_last_order.matches);
	values[7] = BoolGetDatum(am_last_order.scored_all);
	values[8] = Int64GetDatum(am_last_order.candidates);
	nulls[8] = am_last_order.candidates < 0;
	PG_RETURN_DATUM(am_result_row(fcinfo, values, nulls));
}
