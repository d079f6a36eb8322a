/*-------------------------------------------------------------------------
 * search_order_sets.c
 *	  The ordered walk's sets (search_order.c): the listings with a query
 *	  word in their name, read from the posting lists of search_fields'
 *	  a/ terms (or, for a phrase's or a long prefix's, through GIN's
 *	  bitmap), merged into one sorted array of members with which words
 *	  each has, and narrowed to the filters when their lists are short.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/tidbitmap.h"
#include "tsearch/ts_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "agentmarket.h"
#include "search_agents.h"
#include "search_direct.h"
#include "search_gin.h"
#include "search_order.h"

/* The sets read: at most this many listings in them, or this share of all. */
#define AM_ORDER_SET_MIN 20000
#define AM_ORDER_SET_SHARE 0.1
/*
 * Tagline sets may bring them to this share: a common word's holds about a
 * fifth of all listings, and its set lets the walk pass listings with the
 * word in the description only.  A name set of a word in a third of all
 * names ('agent') spares few rows: the page fills from its names.
 */
#define AM_ORDER_HEAD_SHARE 0.4
/*
 * A filter's list is walked against the members when at most this many
 * times the rows it spares (a row read costs about as much as this many
 * items of a list decoded and compared).
 */
#define AM_ORDER_FILTER_RATIO 256
/* The rows the walk may read: this many times those with k matches within the filters. */
#define AM_ORDER_FILTER_READS 4
/* The bitmaps of the name sets: never lossy below this many kilobytes. */
#define AM_ORDER_BITMAP_KB (64 * 1024)

/*
 * The listings whose search_fields match a tsquery text (GIN, every TID of
 * the index's entries, visible or not), as sorted TID keys; false when the
 * bitmap went lossy.
 */
bool
am_order_set(Relation index, const char *query, uint64 **keys, int64 *n)
{
	ScanKeyData key;
	IndexScanDesc scan;
	TIDBitmap  *tbm;
	TBMIterator *it;
	TBMIterateResult *page;
	int64		size = 1024;
	bool		exact = true;

	ScanKeyEntryInitialize(&key, 0, 1, 1 /* @@ */ , TSQUERYOID, index->rd_indcollation[0],
						   F_TS_MATCH_VQ, DirectFunctionCall1(tsqueryin, CStringGetDatum(query)));
	tbm = tbm_create(Max((long) work_mem, (long) AM_ORDER_BITMAP_KB) * 1024L, NULL);
	scan = index_beginscan_bitmap(index, GetActiveSnapshot(), 1);
	index_rescan(scan, &key, 1, NULL, 0);
	index_getbitmap(scan, tbm);
	index_endscan(scan);
	*keys = palloc(sizeof(uint64) * size);
	*n = 0;
	it = tbm_begin_iterate(tbm);
	while ((page = tbm_iterate(it)) != NULL)
	{
		int			i;

		if (page->ntuples < 0)
		{
			exact = false;
			break;
		}
		if (*n + page->ntuples > size)
		{
			size = Max(size * 2, *n + page->ntuples);
			*keys = repalloc_huge(*keys, sizeof(uint64) * size);
		}
		for (i = 0; i < page->ntuples; i++)
			(*keys)[(*n)++] = am_tid_key(page->blockno, page->offsets[i]);
	}
	tbm_end_iterate(it);
	tbm_free(tbm);
	return exact;
}

/*
 * The listings with a term of the plan's group (the word, its typos, a
 * prefix's completions) under a search_fields key prefix ("a/": the
 * name's terms; "b/": the tagline's and tags'), from the GIN
 * index's posting lists read directly (search_gin.c: a few nanoseconds a
 * listing, where GIN's bitmap costs a hash entry and a sort), as sorted TID
 * keys; false when a prefix has too many completions.
 */
static bool
am_order_group_set(AmSearch *s, Relation index, int group, const char *key_prefix, uint64 **keys, int64 *n)
{
	int			nlex,
				i,
				nkeys = 0,
				maxkeys = 8;
	Datum	   *lexemes = am_plan_array(s->plan_values, 1, TEXTOID, &nlex);
	Datum	   *groups = am_plan_array(s->plan_values, 2, INT4OID, &nlex);
	Datum	   *prefixes = am_plan_array(s->plan_values, 4, BOOLOID, &nlex);
	char	  **names = palloc(sizeof(char *) * maxkeys);
	AmGinRead	r;

	for (i = 0; i < nlex; i++)
	{
		char	   *lexeme;
		char	  **words = NULL;
		int			nwords = 0,
					w;

		if (DatumGetInt32(groups[i]) - 1 != group)
			continue;
		lexeme = TextDatumGetCString(lexemes[i]);
		if (DatumGetBool(prefixes[i]) && !am_completions(lexeme, &words, &nwords))
			return false;
		if (nkeys + nwords + 1 > maxkeys)
		{
			maxkeys = 2 * (nkeys + nwords + 1);
			names = repalloc(names, sizeof(char *) * maxkeys);
		}
		names[nkeys++] = psprintf("%s%s", key_prefix, lexeme);
		for (w = 0; w < nwords; w++)
			names[nkeys++] = psprintf("%s%s", key_prefix, words[w]);
	}
	am_gin_begin(&r, index, GetActiveSnapshot());
	for (i = 0; i < nkeys; i++)
		am_gin_add_term(&r, names[i], 0);
	am_gin_read_pending(&r);
	*keys = am_gin_group_keys(&r, 0, n);
	if (*keys == NULL)
		*keys = palloc(sizeof(uint64));
	return true;
}

/* The listings with a word in their name (search_fields' a/ terms of the plan's group). */
bool
am_order_name_set(AmSearch *s, Relation index, int group, uint64 **keys, int64 *n)
{
	return am_order_group_set(s, index, group, "a/", keys, n);
}

/* The listings with a word in their tagline or tags (search_fields' b/ terms). */
bool
am_order_head_set(AmSearch *s, Relation index, int group, uint64 **keys, int64 *n)
{
	return am_order_group_set(s, index, group, "b/", keys, n);
}

/*
 * Whether reading the candidates costs what scoring every match reads:
 * scoring reads the same posting lists whole when search_gin.c would read
 * them (am_gin_cost_items); otherwise GIN's scan, skipping through the long
 * lists, reads less.
 */
bool
am_order_candidates_pay(const AmSearch *s)
{
	return am_gin_cost_items(s) >= 0;
}

/*
 * The listings that can match: every word's listings anywhere (its terms
 * on search_document: the word, its typos, a prefix's completions), read
 * with one pass over the index's pending list; the word with the fewest
 * read whole (its terms merged), each other word, fewest first, walked
 * against the listings left (am_gin_keep_group: no copy of its lists), as
 * sorted TID keys (dead row versions too: the rows decide); false when no
 * word could be read (a prefix with too many completions is left out: the
 * other words still hold every match).
 */
bool
am_order_candidates(AmSearch *s, uint64 **keys, int64 *n)
{
	AmGinRead	r;
	int			g,
				ndocs;
	bool		left_out[AM_ORDER_MAX_GROUPS];
	bool		done[AM_ORDER_MAX_GROUPS];
	Datum	   *docs = am_plan_array(s->plan_values, 12, INT8OID, &ndocs);
	uint64	   *cand = NULL;
	int64		ncand = 0;
	bool		any = false;

	if (s->ngroups > AM_ORDER_MAX_GROUPS || ndocs < s->ngroups)
		return false;
	memset(left_out, 0, sizeof(left_out));
	am_gin_begin(&r, am_direct_index("agents_search_document_idx"), GetActiveSnapshot());
	am_gin_add_words(&r, s, left_out);
	am_gin_read_pending(&r);
	memcpy(done, left_out, sizeof(done));
	/* fewest first (by the vocabulary's counts) */
	for (;;)
	{
		int			pick = -1;

		for (g = 0; g < s->ngroups; g++)
			if (!done[g] && (pick < 0 || DatumGetInt64(docs[g]) < DatumGetInt64(docs[pick])))
				pick = g;
		if (pick < 0)
			break;
		done[pick] = true;
		if (!any)
		{
			cand = am_gin_group_keys(&r, pick, &ncand);
			if (cand == NULL)
				cand = palloc(sizeof(uint64));
			any = true;
		}
		else
			ncand = am_gin_keep_group(&r, pick, cand, sizeof(uint64), ncand);
	}
	index_close(r.index, AccessShareLock);
	if (!any)
		return false;
	*keys = cand;
	*n = ncand;
	return true;
}

/*
 * The listings that can match (sorted TID keys), each a member with its
 * words in the name and tagline, or with none (mask 0); members out of
 * them dropped.
 */
AmMember *
am_order_restrict(const AmMember *members, int64 n, const uint64 *matches, int64 nmatches)
{
	AmMember   *out = am_scratch_alloc(sizeof(AmMember) * Max(nmatches, 1));
	int64		i = 0,
				j;

	for (j = 0; j < nmatches; j++)
	{
		while (i < n && members[i].tid < matches[j])
			i++;
		out[j].tid = matches[j];
		out[j].mask = i < n && members[i].tid == matches[j] ? members[i].mask : 0;
	}
	return out;
}

/* The words' best values per field, from the plan; false when it has none. */
bool
am_order_words(AmSearch *s, AmWords *words)
{
	int			n,
				g;
	Datum	   *name_bound = am_plan_array(s->plan_values, 16, FLOAT8OID, &n);
	Datum	   *head_bound = am_plan_array(s->plan_values, 17, FLOAT8OID, &n);
	Datum	   *body_bound = am_plan_array(s->plan_values, 18, FLOAT8OID, &n);

	if (n < s->ngroups || s->ngroups > AM_ORDER_MAX_GROUPS)
		return false;
	words->n = s->ngroups;
	for (g = 0; g < s->ngroups; g++)
	{
		words->name[g] = DatumGetFloat8(name_bound[g]);
		words->head[g] = DatumGetFloat8(head_bound[g]);
		words->body[g] = DatumGetFloat8(body_bound[g]);
		words->has_name[g] = words->has_head[g] = false;
	}
	return true;
}

/*
 * Which words get a set: those a name lifts above a tagline (a name set),
 * or a tagline above a description (a tagline set, when heads: listings in
 * neither set of a word have it in the description only), fewest listings
 * first, while the sets fit the budget: a name set's AM_ORDER_SET_SHARE of
 * all listings, a tagline set's AM_ORDER_HEAD_SHARE.  A word without one
 * counts at its best.
 */
void
am_order_choose_sets(AmSearch *s, AmWords *words, bool heads)
{
	int			n,
				g;
	Datum	   *name_docs = am_plan_array(s->plan_values, 13, INT8OID, &n);
	Datum	   *head_docs = am_plan_array(s->plan_values, 14, INT8OID, &n);
	double		budget = Max(AM_ORDER_SET_MIN, AM_ORDER_SET_SHARE * s->published);
	double		head_budget = Max(AM_ORDER_SET_MIN, AM_ORDER_HEAD_SHARE * s->published);
	double		spent = 0;

	for (;;)
	{
		int			pick = -1;
		bool		pick_head = false;
		double		pick_size = 0;

		for (g = 0; g < words->n && g < n; g++)
		{
			double		size = (double) DatumGetInt64(name_docs[g]);

			if (!words->has_name[g] && words->name[g] > Max(words->head[g], words->body[g]) &&
				spent + size <= budget && (pick < 0 || size < pick_size))
			{
				pick = g;
				pick_head = false;
				pick_size = size;
			}
			size = (double) DatumGetInt64(head_docs[g]);
			if (heads && !words->has_head[g] && words->head[g] > words->body[g] &&
				spent + size <= head_budget && (pick < 0 || size < pick_size))
			{
				pick = g;
				pick_head = true;
				pick_size = size;
			}
		}
		if (pick < 0)
			break;
		spent += pick_size;
		if (pick_head)
			words->has_head[pick] = true;
		else
			words->has_name[pick] = true;
	}
}

/*
 * Reads the chosen sets into sorted members (bit g: the word in the name;
 * bit AM_ORDER_HEAD_BIT + g: in a tagline or tags); how many were read, or
 * -1 when a name set went lossy (no ordered walk).  A name set is read from
 * the posting lists (the filters are intersected after, from theirs:
 * through GIN's scan they cost 10-20 ms at 1M listings), through GIN's scan
 * when a prefix has too many completions; a tagline set then is not read.
 */
int
am_order_read_sets(AmSearch *s, Relation fields, AmWords *words, AmMember **members, int64 *n)
{
	int			nterms,
				g,
				sets = 0;
	Datum	   *name_terms = am_plan_array(s->plan_values, 10, TEXTOID, &nterms);
	uint64	   *keys[2 * AM_ORDER_MAX_GROUPS];
	int64		nkeys[2 * AM_ORDER_MAX_GROUPS];
	uint32		bits[2 * AM_ORDER_MAX_GROUPS];

	for (g = 0; g < words->n; g++)
	{
		if (!words->has_name[g])
			continue;
		if (!am_order_name_set(s, fields, g, &keys[sets], &nkeys[sets]))
		{
			char	   *query = am_expand_prefixes(TextDatumGetCString(name_terms[g]), true);

			if (s->filter_text != NULL)
				query = psprintf("(%s) & (%s)", query, s->filter_text);
			if (!am_order_set(fields, query, &keys[sets], &nkeys[sets]))
				return -1;
		}
		bits[sets++] = (uint32) 1 << g;
	}
	for (g = 0; g < words->n; g++)
	{
		if (!words->has_head[g])
			continue;
		if (!am_order_head_set(s, fields, g, &keys[sets], &nkeys[sets]))
		{
			words->has_head[g] = false;
			continue;
		}
		bits[sets++] = (uint32) 1 << (AM_ORDER_HEAD_BIT + g);
	}
	*members = am_order_merge((const uint64 *const *) keys, nkeys, bits, sets, n);
	for (g = sets - 1; g >= 0; g--)
		am_scratch_free(keys[g]);
	return sets;
}

/*
 * The best text score of a class (its words in the name and tagline by its
 * mask): each word in the name unless its name set says otherwise, in a
 * tagline or tags unless its tagline set does, else in the description
 * (every match has every word), at its best value there.
 */
double
am_order_class_bound(const AmWords *words, uint32 mask)
{
	double		bounds[AM_ORDER_MAX_GROUPS];
	int			g;

	for (g = 0; g < words->n; g++)
	{
		bounds[g] = words->body[g];
		if (!words->has_name[g] || (mask & ((uint32) 1 << g)))
			bounds[g] = Max(bounds[g], words->name[g]);
		if (!words->has_head[g] || (mask & ((uint32) 1 << (AM_ORDER_HEAD_BIT + g))))
			bounds[g] = Max(bounds[g], words->head[g]);
	}
	return am_group_mean(bounds, words->n);
}

/*
 * The members within the filters (their lexemes in search_fields, read from
 * the posting lists), each filter walked against the members when the rows
 * it would spare cost more than its lists: a member out of it can never be
 * on the page, and its row, read, costs about AM_ORDER_FILTER_RATIO
 * listings of a list (decoded and compared).  Fewest listings first (the
 * most selective: the members shrink before the longer lists are read).
 * The members are sorted TID keys, each the first field of an element
 * stride bytes long; returns how many are left (in place, in order), and in
 * share_left the share of them within the filters neither walked here nor
 * by the ordered walk's index (the category's, when filtered by one): as
 * s->filter_share, tags' included, but those.
 */
int64
am_order_filter(AmSearch *s, Relation index, void *members, size_t stride, int64 n, double *share_left)
{
	double		size[4];
	bool		done[4];
	int			f;

	*share_left = s->filter_share;
	if ((s->filters & AM_F_CATEGORY) && s->category_share < 1)
		*share_left /= s->category_share;
	for (f = 0; f < 4; f++)
	{
		int			nkeys;

		done[f] = !(s->filters & am_lexeme_filters[f]);
		if (done[f])
			continue;
		(void) am_filter_lexemes(s, f, &nkeys);
		size[f] = s->filter_docs[f] > 0 ? s->filter_docs[f]
			: f == 0 && s->category_share < 1 ? s->category_share * s->published : s->published / 2 * nkeys;
		size[f] = Min(size[f], s->published);
	}
	while (n > 0)
	{
		char	  **keys;
		int			nkeys,
					i,
					pick = -1;
		AmGinRead	r;

		for (f = 0; f < 4; f++)
			if (!done[f] && (pick < 0 || size[f] < size[pick]))
				pick = f;
		if (pick < 0)
			break;
		done[pick] = true;
		/* the rows spared: of those the walk may read, the share out of the filter */
		if (size[pick] > AM_ORDER_FILTER_RATIO * (1 - size[pick] / s->published) *
			Min((double) n, AM_ORDER_FILTER_READS * s->k / Max(s->filter_share, 1e-9)))
			continue;
		keys = am_filter_lexemes(s, pick, &nkeys);
		for (i = 0; i < nkeys; i++)
			if (strlen(keys[i]) >= 2000)
				break;			/* no such lexeme (too long): not intersected */
		if (nkeys == 0 || i < nkeys)
			continue;
		am_gin_begin(&r, index, GetActiveSnapshot());
		for (i = 0; i < nkeys; i++)
			am_gin_add_term(&r, keys[i], 0);
		am_gin_read_pending(&r);
		n = am_gin_keep_group(&r, 0, members, stride, n);
		if (pick != 0)
			*share_left /= Max(size[pick] / s->published, 1e-9);
	}
	*share_left = Min(*share_left, 1);
	return n;
}


/*
 * The sets merged by their listings' slots when there are at most this many
 * slots (a slot per item number up to the most a block holds, for each heap
 * block up to the last member's) per TID key read: a slot is a word of
 * memory written once a key and read once, where the k-way merge compares
 * every set's head once a member.
 */
#define AM_ORDER_SLOTS_PER_KEY 4

/*
 * The sets' sorted TID keys merged into sorted members, each marked with
 * the bits of the sets that hold it.  Dense sets (a common word's tagline
 * set holds a fifth of all listings) are OR-ed into one mask per heap slot
 * and the slots read in order; sparse ones are merged at once, k-way
 * (merging them two at a time copied the members once a set).
 */
AmMember *
am_order_merge(const uint64 *const *keys, const int64 *nkeys, const uint32 *bits, int nsets, int64 *n)
{
	int64		total = 0,
				pos[2 * AM_ORDER_MAX_GROUPS],
				m = 0;
	uint64		blocks = 0,
				per_block = 2;	/* slots a block: its greatest item number, plus one */
	int			i;
	AmMember   *out;

	Assert(nsets <= 2 * AM_ORDER_MAX_GROUPS);
	for (i = 0; i < nsets; i++)
	{
		total += nkeys[i];
		pos[i] = 0;
		if (nkeys[i] > 0)
			blocks = Max(blocks, (uint64) am_tid_key_block(keys[i][nkeys[i] - 1]) + 1);
	}
	/* the items read only when the blocks alone leave the sets dense enough */
	if (blocks * per_block <= (uint64) AM_ORDER_SLOTS_PER_KEY * total)
		for (i = 0; i < nsets; i++)
		{
			int64		j;

			for (j = 0; j < nkeys[i]; j++)
				per_block = Max(per_block, (uint64) am_tid_key_offset(keys[i][j]) + 1);
		}
	out = am_scratch_alloc(sizeof(AmMember) * Max(total, 1));
	if (total > 0 && blocks * per_block <= (uint64) AM_ORDER_SLOTS_PER_KEY * total)
	{
		uint32	   *slots = am_scratch_alloc(sizeof(uint32) * blocks * per_block);
		uint64		block;

		memset(slots, 0, sizeof(uint32) * blocks * per_block);
		for (i = 0; i < nsets; i++)
		{
			const uint64 *k = keys[i];
			int64		j;

			for (j = 0; j < nkeys[i]; j++)
				slots[am_tid_key_block(k[j]) * per_block + am_tid_key_offset(k[j])] |= bits[i];
		}
		for (block = 0; block < blocks; block++)
		{
			const uint32 *b = slots + block * per_block;
			uint64		item;

			for (item = 0; item < per_block; item++)
				if (b[item] != 0)
				{
					out[m].tid = am_tid_key((BlockNumber) block, (OffsetNumber) item);
					out[m++].mask = b[item];
				}
		}
		am_scratch_free(slots);
		*n = m;
		return out;
	}
	for (;;)
	{
		uint64		least = PG_UINT64_MAX;
		uint32		mask = 0;

		for (i = 0; i < nsets; i++)
			if (pos[i] < nkeys[i] && keys[i][pos[i]] < least)
				least = keys[i][pos[i]];
		if (least == PG_UINT64_MAX)
			break;
		for (i = 0; i < nsets; i++)
			if (pos[i] < nkeys[i] && keys[i][pos[i]] == least)
			{
				mask |= bits[i];
				pos[i]++;
			}
		out[m].tid = least;
		out[m++].mask = mask;
	}
	*n = m;
	return out;
}

/* The members indexed by heap block (am_order_lookup). */
void
am_order_index(AmMemberIndex *index, const AmMember *members, int64 n)
{
	BlockNumber nblocks = n > 0 ? am_tid_key_block(members[n - 1].tid) + 1 : 0;
	BlockNumber b;
	int64		m = 0;

	index->members = members;
	index->nblocks = nblocks;
	index->start = am_scratch_alloc(sizeof(int32) * ((Size) nblocks + 1));
	for (b = 0; b <= nblocks; b++)
	{
		while (m < n && am_tid_key_block(members[m].tid) < b)
			m++;
		index->start[b] = (int32) m;
	}
}
