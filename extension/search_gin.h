/*-------------------------------------------------------------------------
 * search_gin.h
 *	  Search read from the GIN indexes' posting lists in C: the reader and
 *	  its set operations (search_gin_read.c), the listings that can match
 *	  (search_gin.c).
 *-------------------------------------------------------------------------
 */
#ifndef SEARCH_GIN_H
#define SEARCH_GIN_H

#include "postgres.h"

#include "nodes/tidbitmap.h"
#include "utils/rel.h"
#include "utils/snapshot.h"

#include "access/gin_private.h"
#include "funcapi.h"

#include "search_agents.h"

/* A term to read: its key, its group, and its items in the pending list once read. */
typedef struct AmGinTerm
{
	char	   *key;
	int			keylen;
	int			group;
	ItemPointer pending;		/* items in the pending list (unsorted) */
	int			npending;
	int			maxpending;
} AmGinTerm;

typedef struct AmGinRead
{
	Relation	index;
	Snapshot	snapshot;
	GinState   *ginstate;		/* the backend's (am_gin_state) */
	AmGinTerm  *terms;
	int			nterms;
	int			maxterms;
} AmGinRead;

/*
 * What a walk of one key's posting list does with its items: items() gets
 * them a batch at a time in TID order (expected: how many the whole list
 * may hold); skip(), when set, is asked before each leaf of a posting tree
 * for the item past which they are wanted (min: all), false to stop.
 */
typedef struct AmGinVisit
{
	void		(*items) (void *arg, const ItemPointerData *items, int n, double expected);
	bool		(*skip) (void *arg, ItemPointer past);
	void	   *arg;
} AmGinVisit;

/* A heap TID as one number in TID order (block, offset). */
static inline uint64
am_tid_key(BlockNumber block, OffsetNumber offset)
{
	return ((uint64) block << 16) | offset;
}

/* The heap block of a TID key. */
static inline BlockNumber
am_tid_key_block(uint64 key)
{
	return (BlockNumber) (key >> 16);
}

/* The item (offset) of a TID key. */
static inline OffsetNumber
am_tid_key_offset(uint64 key)
{
	return (OffsetNumber) (key & 0xFFFF);
}

/* search_settings.c */
extern bool am_gin_merge_on(void);

/* search_gin_read.c: posting lists read (the pending list's entries included) */
extern void am_gin_begin(AmGinRead *r, Relation index, Snapshot snapshot);
extern void am_gin_add_term(AmGinRead *r, const char *key, int group);
extern int	am_gin_add_words(AmGinRead *r, const AmSearch *s, bool *left_out);
extern void am_gin_read_pending(AmGinRead *r);
extern void am_gin_visit_key(AmGinRead *r, AmGinTerm *term, const AmGinVisit *v);
extern uint64 *am_gin_group_keys(AmGinRead *r, int group, int64 *n);
extern int64 am_gin_keep_group(AmGinRead *r, int group, void *keys, size_t stride, int64 n);

/* search_gin.c: the listings that can match a search */
extern bool am_gin_candidates(AmSearch *s, Relation index, Snapshot snapshot, ItemPointer *cand, int *ncand);
extern double am_gin_items(const AmSearch *s, double *least, double *left, double *first);
extern double am_gin_cost_items(const AmSearch *s);
extern bool am_gin_candidate_items(AmSearch *s, ItemPointer *cand, int *ncand);

#endif							/* SEARCH_GIN_H */
