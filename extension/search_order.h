/*-------------------------------------------------------------------------
 * search_order.h
 *	  The ordered walk's sets of listings and its words' bounds
 *	  (search_order_sets.c), shared with the walk itself (search_order.c).
 *-------------------------------------------------------------------------
 */
#ifndef SEARCH_ORDER_H
#define SEARCH_ORDER_H

#include "search_agents.h"
#include "search_gin.h"
#include "storage/block.h"
#include "storage/off.h"
#include "utils/relcache.h"

/* A member's bit of word g in a tagline or tags (bit g: in the name). */
#define AM_ORDER_HEAD_BIT 16

/*
 * A listing with some word in its name (bit g) or in its tagline or tags
 * (bit AM_ORDER_HEAD_BIT + g): its heap TID as a number, which words (then
 * its class).
 */
typedef struct AmMember
{
	uint64		tid;			/* first: am_order_filter reads members as TID keys */
	uint32		mask;
} AmMember;

/* Words of a query (search_prepare refuses more than 12). */
#define AM_ORDER_MAX_GROUPS 12

/*
 * Per word: its best value in a name, in a tagline or tags, in a
 * description, and whether its name set and tagline set are read.
 */
typedef struct AmWords
{
	int			n;
	double		name[AM_ORDER_MAX_GROUPS];
	double		head[AM_ORDER_MAX_GROUPS];
	double		body[AM_ORDER_MAX_GROUPS];
	bool		has_name[AM_ORDER_MAX_GROUPS];
	bool		has_head[AM_ORDER_MAX_GROUPS];
} AmWords;

extern bool am_order_words(AmSearch *s, AmWords *words);
extern void am_order_choose_sets(AmSearch *s, AmWords *words, bool heads);
extern int	am_order_read_sets(AmSearch *s, Relation fields, AmWords *words, AmMember **members, int64 *n);
extern double am_order_class_bound(const AmWords *words, uint32 mask);

/*
 * The members by heap block: those of block b are members[start[b]] up to
 * members[start[b + 1]] (a lookup reads two slots and the few members of a
 * block, where a binary search of thousands missed the caches each step).
 */
typedef struct AmMemberIndex
{
	const AmMember *members;
	int32	   *start;
	BlockNumber nblocks;
} AmMemberIndex;

extern void am_order_index(AmMemberIndex *index, const AmMember *members, int64 n);

/* The member of a TID key, or NULL. */
static inline const AmMember *
am_order_lookup(const AmMemberIndex *index, uint64 key)
{
	BlockNumber block = am_tid_key_block(key);
	int32		i;

	if (block >= index->nblocks)
		return NULL;
	for (i = index->start[block]; i < index->start[block + 1]; i++)
		if (index->members[i].tid == key)
			return &index->members[i];
	return NULL;
}

extern bool am_order_set(Relation index, const char *query, uint64 **keys, int64 *n);
extern bool am_order_name_set(AmSearch *s, Relation index, int group, uint64 **keys, int64 *n);
extern bool am_order_head_set(AmSearch *s, Relation index, int group, uint64 **keys, int64 *n);
extern bool am_order_candidates(AmSearch *s, uint64 **keys, int64 *n);
extern int64 am_order_intersect(uint64 *a, int64 na, const uint64 *b, int64 nb);
extern AmMember *am_order_restrict(const AmMember *members, int64 n, const uint64 *matches, int64 nmatches);
extern int64 am_order_filter(AmSearch *s, Relation index, void *members, size_t stride, int64 n, double *share_left);
extern AmMember *am_order_merge(const uint64 *const *keys, const int64 *nkeys, const uint32 *bits, int nsets, int64 *n);

#endif							/* SEARCH_ORDER_H */
