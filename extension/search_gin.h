/*-------------------------------------------------------------------------
 * search_gin.h
 *	  Search read from the GIN indexes' posting lists in C: the listings
 *	  that can match (search_gin.c); the posting-list reader is exported
 *	  for other walks of the same lists.
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

/* A term to read: its key and, once read, its items (sorted, distinct). */
typedef struct AmGinTerm
{
	char	   *key;
	int			keylen;
	int			group;
	ItemPointer items;
	int			n;
	ItemPointer pending;		/* items in the pending list (unsorted) */
	int			npending;
	int			maxpending;
} AmGinTerm;

typedef struct AmGinRead
{
	Relation	index;
	Snapshot	snapshot;
	GinState	ginstate;
	AmGinTerm  *terms;
	int			nterms;
	int			maxterms;
} AmGinRead;

/* search_gin.c: posting lists read whole (the pending list's entries merged in) */
extern bool am_gin_merge_on(void);
extern void am_gin_begin(AmGinRead *r, Relation index, Snapshot snapshot);
extern void am_gin_add_term(AmGinRead *r, const char *key, int group);
extern int	am_gin_add_words(AmGinRead *r, const AmSearch *s, bool *left_out);
extern ItemPointer am_gin_group_items(AmGinRead *r, int group, int *n);
extern void am_gin_read_pending(AmGinRead *r);
extern void am_gin_read_key(AmGinRead *r, AmGinTerm *term);

extern bool am_gin_candidates(AmSearch *s, Relation index, Snapshot snapshot, TIDBitmap *tbm);
extern double am_gin_items(const AmSearch *s, double *least, double *left, double *first);
extern double am_gin_cost_items(const AmSearch *s);
extern bool am_gin_candidate_items(AmSearch *s, ItemPointer *cand, int *ncand);
/* The items of sorted a also in sorted b, kept in a (merged or galloped); how many. */
extern int	am_gin_intersect(ItemPointer a, int na, const ItemPointerData *b, int nb);
extern ItemPointer am_gin_key_items(Relation index, Snapshot snapshot, char **keys, int nkeys, int *n);

#endif							/* SEARCH_GIN_H */
