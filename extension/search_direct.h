/*-------------------------------------------------------------------------
 * search_direct.h
 *	  Listings read in C, without a statement (search_direct.c: every match
 *	  through GIN; search_direct_walk.c: a sort's index walked): the
 *	  columns read, the filters, the sort's keys and the cursor checked on
 *	  a row as the statements check them.
 *-------------------------------------------------------------------------
 */
#ifndef SEARCH_DIRECT_H
#define SEARCH_DIRECT_H

#include "postgres.h"

#include "executor/tuptable.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "agentmarket.h"
#include "search_agents.h"

/* The columns of agents the direct path reads. */
enum
{
	AM_COL_STATUS = AM_NCARD,
	AM_COL_DOCUMENT,
	AM_COL_STATIC,
	AM_NCOLS
};

/* By name: the card columns in result order, then the others. */
extern const char *const am_col_names[AM_NCOLS];

/* A page row's columns (search_direct.c, am_page_row): the card's, then these. */
#define AM_KEPT_STATIC AM_NCARD
#define AM_KEPT_DOCUMENT (AM_NCARD + 1)
#define AM_NKEPT (AM_NCARD + 2)

/* Card columns a filter or sort reads (indexes into am_col_names). */
#define AM_CARD_ID 0
#define AM_CARD_CATEGORY 5
#define AM_CARD_PRICING 6
#define AM_CARD_RATING 8
#define AM_CARD_REVIEWS 9
#define AM_CARD_HIRES 10
#define AM_CARD_RELAYS 11
#define AM_CARD_MODELS 12
#define AM_CARD_TAGS 13
#define AM_CARD_PUBLISHED 14

/* A listing on the page so far: its keys and a copy of its row. */
typedef struct AmCandidate
{
	double		score;			/* relevance: the score; else the static score */
	Datum		key;			/* rating (numeric), hires, publication */
	bool		key_null;
	int32		key2;			/* reviews */
	pg_uuid_t	id;
	Datum	   *row;			/* on the page: AM_NKEPT values, nulls, data (am_page_row) */
} AmCandidate;

/* A text[] filter's values, unpacked once per search: rows are compared with them byte for byte. */
typedef struct AmTextSet
{
	int			n;
	const char **data;
	int		   *len;
	bool		has_null;		/* a NULL value: @> fails, && ignores it */
	bool	   *seen;			/* scratch: the values a row was found to hold (@>) */
} AmTextSet;

/* One direct read: the request, the relation's columns, the filters' values. */
typedef struct AmDirect
{
	AmSearch   *s;
	bool		scored;			/* relevance by score; else the sort's keys */
	AttrNumber	attnums[AM_NCOLS];
	AmTextSet	tags;			/* tags @> */
	AmTextSet	relays;			/* relays && */
	AmTextSet	models;			/* models && */
	AmTermCache *terms;
	AmCandidate *page;
	int			n;
	MemoryContext page_cxt;		/* the page's copies; each row's work is in a context reset after it */
	Datum		published;		/* 'published' */
	int64		matches;		/* matches put to the page (or below it) */
} AmDirect;

/* A column of the slot by our index. */
static inline Datum
am_col(AmDirect *d, TupleTableSlot *slot, int col, bool *isnull)
{
	return slot_getattr(slot, d->attnums[col], isnull);
}

extern bool am_direct_on(void);
extern Relation am_direct_heap(void);
extern Relation am_direct_index(const char *name);
extern void am_direct_setup(AmDirect *d, AmSearch *s, Relation heap);
extern bool am_direct_passes(AmDirect *d, TupleTableSlot *slot);
extern void am_direct_keys(AmDirect *d, TupleTableSlot *slot, AmCandidate *c);
extern bool am_after_cursor(AmDirect *d, const AmCandidate *c);
extern void am_direct_report(const char *path, int64 checked, int64 matches);
extern void am_direct_row(AmDirect *d, TupleTableSlot *slot, bool recheck, Datum query);
extern void am_direct_emit(AmDirect *d, ReturnSetInfo *rsinfo);

#endif							/* SEARCH_DIRECT_H */
