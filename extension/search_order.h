/*-------------------------------------------------------------------------
 * search_order.h
 *	  The ordered walk's sets of listings (search_order_sets.c), shared with
 *	  the walk itself (search_order.c).
 *-------------------------------------------------------------------------
 */
#ifndef SEARCH_ORDER_H
#define SEARCH_ORDER_H

#include "search_agents.h"
#include "storage/block.h"
#include "storage/off.h"
#include "utils/relcache.h"

/* A listing with some word in its name: its heap TID as a number, which words (then its class). */
typedef struct AmMember
{
	uint64		tid;
	uint32		mask;
} AmMember;

/* A heap TID as one number in TID order (block, offset). */
static inline uint64
am_tid_key(BlockNumber block, OffsetNumber offset)
{
	return ((uint64) block << 16) | offset;
}

extern bool am_order_set(Relation index, const char *query, uint64 **keys, int64 *n);
extern bool am_order_name_set(AmSearch *s, Relation index, int group, uint64 **keys, int64 *n);
extern int64 am_order_filter(AmSearch *s, Relation index, AmMember *members, int64 n);
extern AmMember *am_order_merge(AmMember *members, int64 *n, const uint64 *keys, int64 nkeys, uint32 bit);
extern const AmMember *am_order_find(const AmMember *members, int64 n, uint64 key);

#endif							/* SEARCH_ORDER_H */
