/*-------------------------------------------------------------------------
 * search_gin.h
 *	  The listings that can match a search, from the GIN index's posting
 *	  lists intersected in C (search_gin.c).
 *-------------------------------------------------------------------------
 */
#ifndef SEARCH_GIN_H
#define SEARCH_GIN_H

#include "postgres.h"

#include "nodes/tidbitmap.h"
#include "utils/rel.h"
#include "utils/snapshot.h"

#include "search_agents.h"

extern bool am_gin_candidates(AmSearch *s, Relation index, Snapshot snapshot, TIDBitmap *tbm);

#endif							/* SEARCH_GIN_H */
