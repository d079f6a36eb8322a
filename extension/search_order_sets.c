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
#include "search_gin.h"
#include "search_order.h"

/* A filter's list is intersected with the members when at most this many times longer. */
#define AM_ORDER_FILTER_RATIO 64
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
 * The listings with a word in their name (search_fields' a/ terms of the
 * plan's group: the word, its typos, a prefix's completions), from the GIN
 * index's posting lists read directly (search_gin.c: a few nanoseconds a
 * listing, where GIN's bitmap costs a hash entry and a sort), as sorted TID
 * keys; false when a prefix has too many completions.
 */
bool
am_order_name_set(AmSearch *s, Relation index, int group, uint64 **keys, int64 *n)
{
	int			nlex,
				i,
				nkeys = 0,
				maxkeys = 8,
				nitems;
	Datum	   *lexemes = am_plan_array(s->plan_values, 1, TEXTOID, &nlex);
	Datum	   *groups = am_plan_array(s->plan_values, 2, INT4OID, &nlex);
	Datum	   *prefixes = am_plan_array(s->plan_values, 4, BOOLOID, &nlex);
	char	  **names = palloc(sizeof(char *) * maxkeys);
	ItemPointer items;

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
		names[nkeys++] = psprintf("a/%s", lexeme);
		for (w = 0; w < nwords; w++)
			names[nkeys++] = psprintf("a/%s", words[w]);
	}
	items = am_gin_key_items(index, GetActiveSnapshot(), names, nkeys, &nitems);
	*keys = palloc_extended(sizeof(uint64) * Max(nitems, 1), MCXT_ALLOC_HUGE);
	for (i = 0; i < nitems; i++)
		(*keys)[i] = am_tid_key(ItemPointerGetBlockNumber(&items[i]), ItemPointerGetOffsetNumber(&items[i]));
	*n = nitems;
	return true;
}

/*
 * The members within the filters (their lexemes in search_fields, read from
 * the posting lists) when a filter's listings are not many times more than
 * the members: a member out of them can never be on the page, and reading
 * its row costs more than its share of the filter's list.  Returns how many
 * are left (in place, in order).
 */
int64
am_order_filter(AmSearch *s, Relation index, AmMember *members, int64 n)
{
	static const char *const prefix[4] = {" category ", " pricing ", " relay ", " model "};
	static const int flag[4] = {AM_F_CATEGORY, AM_F_PRICING, AM_F_RELAYS, AM_F_MODELS};
	int			f;

	for (f = 0; f < 4 && n > 0; f++)
	{
		char	  **keys;
		int			nkeys = 0,
					nitems,
					i;
		int64		m,
					out = 0;
		ItemPointer items;
		double		size;

		if (!(s->filters & flag[f]))
			continue;
		if (f < 2)
		{
			keys = palloc(sizeof(char *));
			keys[nkeys++] = psprintf("%s%s", prefix[f], TextDatumGetCString(f == 0 ? s->category : s->pricing));
		}
		else
		{
			Datum	   *e;
			bool	   *en;
			int			ne;

			deconstruct_array(DatumGetArrayTypeP(f == 2 ? s->relays : s->models), TEXTOID, -1, false,
							  TYPALIGN_INT, &e, &en, &ne);
			keys = palloc(sizeof(char *) * Max(ne, 1));
			for (i = 0; i < ne; i++)
				if (!en[i])
					keys[nkeys++] = psprintf("%s%s", prefix[f], TextDatumGetCString(e[i]));
		}
		size = f == 0 && s->category_share < 1 ? s->category_share * s->published : s->published / 2 * nkeys;
		if (nkeys == 0 || Min(size, s->published) > AM_ORDER_FILTER_RATIO * (double) n)
			continue;
		for (i = 0; i < nkeys; i++)
			if (strlen(keys[i]) >= 2000)
				break;			/* no such lexeme (too long): not intersected */
		if (i < nkeys)
			continue;
		items = am_gin_key_items(index, GetActiveSnapshot(), keys, nkeys, &nitems);
		for (m = 0, i = 0; m < n && i < nitems;)
		{
			uint64		key = am_tid_key(ItemPointerGetBlockNumber(&items[i]), ItemPointerGetOffsetNumber(&items[i]));

			if (members[m].tid < key)
				m++;
			else if (key < members[m].tid)
				i++;
			else
			{
				members[out++] = members[m++];
				i++;
			}
		}
		n = out;
	}
	return n;
}

/* Merges sorted TID keys into the sorted members, marking them with bit. */
AmMember *
am_order_merge(AmMember *members, int64 *n, const uint64 *keys, int64 nkeys, uint32 bit)
{
	AmMember   *out = palloc_extended(sizeof(AmMember) * Max(*n + nkeys, 1), MCXT_ALLOC_HUGE);
	int64		i = 0,
				j = 0,
				m = 0;

	while (i < *n || j < nkeys)
	{
		if (j >= nkeys || (i < *n && members[i].tid < keys[j]))
			out[m++] = members[i++];
		else if (i >= *n || keys[j] < members[i].tid)
		{
			out[m].tid = keys[j++];
			out[m++].mask = bit;
		}
		else
		{
			out[m] = members[i++];
			out[m++].mask |= bit;
			j++;
		}
	}
	*n = m;
	return out;
}

/* The member of a TID key, or NULL (binary search). */
const AmMember *
am_order_find(const AmMember *members, int64 n, uint64 key)
{
	int64		lo = 0,
				hi = n;

	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (members[mid].tid < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && members[lo].tid == key ? &members[lo] : NULL;
}
