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
 * and 16-27 ms at 1M.  Here the rarest word's terms are read whole
 * (decoded a leaf page at a time, straight into TID keys) and merged; each
 * other word, fewer first, is walked against the listings left: its lists
 * decoded a leaf at a time and compared, a leaf with none of them in its
 * range skipped, no copy, no merge, no array the size of the list (at 1M
 * listings those cost more than the decoding, most of it in page faults on
 * fresh memory): a few nanoseconds an item.  The filters' lexemes
 * (' category coding', ...) narrow them too when their lists are short
 * beside the listings left, else are checked on the rows.  The
 * listings left are handed back in TID order to recheck: every one is
 * checked against the whole query on its row (phrases, negated words), so
 * the answer is exactly GIN's.
 *
 * Chosen from the vocabulary's counts before anything is read
 * (am_gin_cost_items): GIN's scan costs about a step for each listing of the
 * rarest word, this one an item for each listing of every word it reads;
 * a rare word beside a common one whose list is read is left to GIN, which
 * skips through the common word's posting tree (where the common word's
 * list does not pay, only the rare word's is read here, the rows decide).
 * The index's pending list (fastupdate) is read too: its entries of the
 * query's terms are added to their lists.
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
#include "nodes/tidbitmap.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
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
/* Below this many listings of the rarest word GIN's scan is as cheap, when other lists are read too. */
#define AM_GIN_MERGE_MIN 128
/* Items read at most (6 bytes each in memory). */
#define AM_GIN_MERGE_MAX_ITEMS 8000000
/* A filter's list is intersected when at most this many times the listings left. */
#define AM_GIN_FILTER_RATIO 64
/* Lists of a search at most: its words' (12 at most) and four filters'. */
#define AM_GIN_MAX_LISTS 16

/* A list to intersect: a word's terms or a filter's lexemes, and its estimated listings. */
typedef struct AmGinList
{
	int			group;			/* the group of its terms in the read */
	bool		filter;
	double		size;
} AmGinList;

/* Orders lists by their listings, fewest first (words before filters of a like size). */
static int
am_gin_list_cmp(const void *a, const void *b)
{
	const AmGinList *x = (const AmGinList *) a;
	const AmGinList *y = (const AmGinList *) b;

	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	if (x->filter != y->filter)
		return x->filter ? 1 : -1;
	return x->group - y->group;
}

/*
 * Whether a list of size listings is worth reading to narrow ncand
 * listings: a filter when it is at most AM_GIN_FILTER_RATIO times them; a
 * word when the listings it is expected to remove (those without it, as
 * if independent) are worth more than decoding it, a row not read being
 * worth AM_GIN_FILTER_RATIO items.  A word in nearly every listing
 * ('agent': 97 %) is then checked on the rows, as every listing left is
 * anyway: reading its list to remove 3 % of them cost more than the rows.
 */
static bool
am_gin_list_pays(const AmGinList *l, double ncand, double published)
{
	if (l->filter)
		return Min(l->size, published) <= ncand * AM_GIN_FILTER_RATIO;
	return l->size <= ncand * (1 - Min(l->size / published, 1)) * AM_GIN_FILTER_RATIO;
}

/*
 * The lists of a search, ordered: each word's (its listings from the
 * vocabulary, the plan's group_docs) and each filter's (the summed counts
 * of its lexemes when the plan counted them, else guessed at half the
 * listings for each value); false when a word has no count.
 */
static bool
am_gin_lists(const AmSearch *s, AmGinList *lists, int *nlists)
{
	Datum	   *docs;
	int			n,
				g,
				f;

	if (s->ngroups < 1 || s->ngroups > AM_GIN_MAX_LISTS - 4 || s->plan_nulls[8] ||
		DatumGetBool(s->plan_values[8]) || s->plan_nulls[12])
		return false;
	docs = am_plan_array(s->plan_values, 12, INT8OID, &n);
	if (n < s->ngroups)
		return false;
	*nlists = 0;
	for (g = 0; g < s->ngroups; g++)
	{
		lists[*nlists].group = g;
		lists[*nlists].filter = false;
		lists[(*nlists)++].size = (double) DatumGetInt64(docs[g]);
	}
	for (f = 0; f < 4; f++)
	{
		double		size = s->published / 2;

		if (!(s->filters & am_lexeme_filters[f]))
			continue;
		if (s->filter_docs[f] > 0)
			size = s->filter_docs[f];
		else if (f >= 2)
			size *= ArrayGetNItems(1, ARR_DIMS(DatumGetArrayTypeP(f == 2 ? s->relays : s->models)));
		lists[*nlists].group = s->ngroups + f;
		lists[*nlists].filter = true;
		lists[(*nlists)++].size = size;
	}
	qsort(lists, *nlists, sizeof(AmGinList), am_gin_list_cmp);
	return true;
}

/*
 * The items reading the posting lists here would decode, from the
 * vocabulary's counts: the smallest list and then those that pay
 * (am_gin_list_pays), the listings left estimated as if independent (in
 * *left); the rarest word's listings in *least, the first list's items in
 * *first (each later one is intersected too).  -1 when the query is not
 * all required words.
 */
double
am_gin_items(const AmSearch *s, double *least, double *left, double *first)
{
	AmGinList	lists[AM_GIN_MAX_LISTS];
	int			nlists,
				i;
	double		ncand,
				cost;

	*least = -1;
	if (!am_gin_lists(s, lists, &nlists))
		return -1;
	for (i = 0; i < nlists; i++)
		if (!lists[i].filter)
			*least = *least < 0 ? lists[i].size : Min(*least, lists[i].size);
	ncand = cost = *first = lists[0].size;
	for (i = 1; i < nlists; i++)
		if (am_gin_list_pays(&lists[i], ncand, s->published))
		{
			cost += lists[i].size;
			ncand *= Min(lists[i].size / s->published, 1);
		}
	*left = ncand;
	return cost;
}

/*
 * What reading the posting lists here costs, in items (am_gin_items); -1
 * when GIN's own scan costs less (it steps through the rarest word's
 * listings, about 100 ns each, this decodes a few ns an item: read here
 * when the items read are at most AM_GIN_MERGE_RATIO times the rarest
 * word's listings) or the query is not all required words.  Scoring every
 * match reads the posting lists whole exactly when this is not -1 (the
 * ordered walk's candidates cost the same then: search_order_sets.c).
 */
double
am_gin_cost_items(const AmSearch *s)
{
	double		least;
	double		left;
	double		first;
	double		cost;

	if (!am_gin_merge_on())
		return -1;
	cost = am_gin_items(s, &least, &left, &first);
	/*
	 * Below AM_GIN_MERGE_MIN listings of the rarest word GIN's scan is as
	 * cheap when other lists are read too (it skips through them).  A
	 * word's list alone is read here however short: GIN's scan would set up
	 * a GinState (9.6 kB zeroed and filled) and a bitmap (past one heap page
	 * a hash table, 12 kB zeroed), which cost a rare word more than its
	 * list; here the GinState is the backend's and the listings are read in
	 * TID order without a bitmap.
	 */
	if (cost < 0 || (least < AM_GIN_MERGE_MIN && cost > least) || cost > AM_GIN_MERGE_RATIO * least ||
		cost > AM_GIN_MERGE_MAX_ITEMS)
		return -1;
	return cost;
}

/*
 * The listings that can match the search, sorted: the lists of
 * am_gin_lists read smallest first and intersected, each later one only
 * when it pays with the listings left (am_gin_list_pays).  False (nothing
 * read) when a prefix has too many completions: GIN reads it.
 */
static bool
am_gin_read_candidates(AmSearch *s, Relation index, Snapshot snapshot, ItemPointer *cand, int *ncand)
{
	AmGinRead	r;
	AmGinList	lists[AM_GIN_MAX_LISTS];
	int			nlists,
				i,
				f,
				l;
	uint64	   *keys = NULL;
	int64		nkeys = 0,
				k;

	if (!am_gin_lists(s, lists, &nlists))
		return false;
	am_gin_begin(&r, index, snapshot);
	/* a prefix with too many completions: GIN reads it */
	if (am_gin_add_words(&r, s, NULL) > 0)
		return false;

	/* the filters' lexemes, a group each after the words' (tags are not lexemes: checked on the rows) */
	for (f = 0; f < 4; f++)
		if (s->filters & am_lexeme_filters[f])
		{
			int			nkeys;
			char	  **keys = am_filter_lexemes(s, f, &nkeys);

			for (i = 0; i < nkeys; i++)
				am_gin_add_term(&r, keys[i], s->ngroups + f);
		}

	am_gin_read_pending(&r);

	/*
	 * Each list (a word's terms or a filter's lexemes) read when it pays
	 * with the listings left: the first (fewest) whole, each later one
	 * walked against the listings left (am_gin_keep_group: no copy, no
	 * merge); the rows are checked against the whole query and the filters
	 * anyway.
	 */
	for (l = 0; l < nlists; l++)
	{
		if (l == 0)
			keys = am_gin_group_keys(&r, lists[l].group, &nkeys);
		else if (nkeys > 0 && am_gin_list_pays(&lists[l], nkeys, s->published))
			nkeys = am_gin_keep_group(&r, lists[l].group, keys, sizeof(uint64), nkeys);
	}
	*cand = palloc_extended(sizeof(ItemPointerData) * Max(nkeys, 1), MCXT_ALLOC_HUGE);
	for (k = 0; k < nkeys; k++)
		ItemPointerSet(&(*cand)[k], am_tid_key_block(keys[k]), am_tid_key_offset(keys[k]));
	*ncand = (int) nkeys;
	am_scratch_free(keys);
	return true;
}

/*
 * The listings that can match the search (the posting lists read and
 * intersected), in TID order, each to be rechecked on its row; false, with
 * nothing read, when GIN's own scan is cheaper or the query is not all
 * required words (see the file's header).
 */
bool
am_gin_candidates(AmSearch *s, Relation index, Snapshot snapshot, ItemPointer *cand, int *ncand)
{
	return am_gin_cost_items(s) >= 0 && am_gin_read_candidates(s, index, snapshot, cand, ncand);
}

/*
 * The listings that can match the search, sorted (a superset: each is
 * checked on its row), read from the posting lists of search_document's
 * index whatever GIN's own scan would cost: for a walk of a sort's index
 * that reads only their rows (search_direct_walk.c).  False, with nothing
 * read, when they cannot be read here (see am_gin_read_candidates).
 */
bool
am_gin_candidate_items(AmSearch *s, ItemPointer *cand, int *ncand)
{
	Relation	index = am_direct_index("agents_search_document_idx");
	bool		read = am_gin_read_candidates(s, index, GetActiveSnapshot(), cand, ncand);

	index_close(index, AccessShareLock);
	return read;
}
