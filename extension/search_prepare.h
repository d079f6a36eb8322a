/*-------------------------------------------------------------------------
 * search_prepare.h
 *	  What a query's plan reads from the vocabulary (search_vocabulary.c),
 *	  for search_prepare.c.
 *-------------------------------------------------------------------------
 */
#ifndef SEARCH_PREPARE_H
#define SEARCH_PREPARE_H

#include "postgres.h"

/* Typo candidates per word, and the word lengths that get them. */
#define AM_TYPO_CANDIDATES 8
#define AM_TYPO_MIN_CHARS 5
/*
 * A word in published listings is read as a typo of a neighbour only when
 * the neighbour is in at least this many times as many (search_vocabulary.c).
 */
#define AM_TYPO_POPULAR_RATIO 10
#define AM_TYPO_MAX_CHARS 64

/*
 * A row of what the plan reads from the vocabulary: the corpus size (kind
 * 0), a word's counts (1), the summed counts of a prefix's completions (2),
 * a typo candidate of a word (3).
 */
typedef struct AmLookupRow
{
	int			kind;
	char	   *of;				/* the word it is for */
	char	   *lexeme;			/* the candidate (kind 3) */
	int64		counts[4];		/* ndoc, n_a, n_b, n_c */
} AmLookupRow;

extern HTAB *am_backend_cache(MemoryContext *cxt, const char *name, Size keysize, Size entrysize, long nelem);
extern AmLookupRow *am_vocabulary_lookup(Datum *words, int nwords, const char *last_lexeme, int *nrows);

/* A query text whose whole plan is kept (search_prepare.c): up to this many bytes. */
#define AM_PLAN_KEY_BYTES 256
extern HTAB *am_plan_cache_open(Size entrysize, int64 *published, MemoryContext *cxt);
extern void am_plan_cache_reset(void);
extern bool am_vocabulary_check_read(void);

#endif							/* SEARCH_PREPARE_H */
