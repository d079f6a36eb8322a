/*-------------------------------------------------------------------------
 * search_scratch.c
 *	  Working memory a search keeps from one call to the next: its large
 *	  arrays (TID keys read from posting lists, the ordered walk's members,
 *	  their index by heap block) taken from one region kept per backend.
 *
 * Each of those arrays is larger than an allocation set's chunk limit, so
 * palloc gives it to malloc, which for these sizes maps fresh pages from
 * the kernel and returns them on free (glibc's thresholds follow the sizes
 * freed, then trim the heap's top above twice that).  The next call touches
 * new pages again, a page fault for every 4 kB: in a virtual machine such
 * as the ones this was measured on, about half of what 'recipe fitness
 * travel garden' cost at a million listings in a backend that repeated it
 * (the sets' phase 11-18 ms, 1.5 with the pages kept; among the bench's
 * other queries glibc's thresholds had risen already and it gained
 * little).  Here the arrays are carved from one region whose
 * pages stay mapped: its first use faults them in, later searches reuse
 * them.  The region is grown, at the start of a search, to what the last
 * one wanted (when that did not fit, the rest came from palloc as before),
 * up to AM_SCRATCH_MAX; nothing is kept beyond that.
 *
 * Lifetime: from am_scratch_begin to am_scratch_end, around one
 * search_agents call (nested calls share it: only the outermost resets it).
 * Nothing carved here may outlive the call.  am_scratch_free and
 * am_scratch_realloc take either kind of pointer.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/memutils.h"

#include "agentmarket.h"
#include "search_agents.h"

/*
 * At most this much is kept per backend: a search at a million listings
 * wants about 4 MB (its sets' keys and members, the index by block).
 */
#define AM_SCRATCH_MAX ((Size) 32 * 1024 * 1024)

static struct
{
	char	   *base;
	Size		size;
	Size		used;
	char	   *last;			/* the last carved allocation (given back, the space is too) */
	Size		overflow;		/* what this search was given by palloc instead */
	Size		wanted;			/* the most it held at once (carved and overflow) */
	int			depth;
}			am_scratch;

/* Starts a search's use of the region (the outermost resets and sizes it). */
void
am_scratch_begin(void)
{
	if (am_scratch.depth++ > 0)
		return;
	if (am_scratch.wanted > am_scratch.size && am_scratch.size < AM_SCRATCH_MAX)
	{
		Size		size = Min(AM_SCRATCH_MAX, am_scratch.wanted + am_scratch.wanted / 4);

		if (am_scratch.base != NULL)
			pfree(am_scratch.base);
		am_scratch.base = NULL;
		am_scratch.size = 0;
		am_scratch.base = MemoryContextAllocExtended(TopMemoryContext, size,
													 MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
		if (am_scratch.base != NULL)
			am_scratch.size = size;
	}
	am_scratch.used = 0;
	am_scratch.last = NULL;
	am_scratch.overflow = 0;
	am_scratch.wanted = 0;
}

/* Ends it (on error too: search_agents calls it in its PG_CATCH). */
void
am_scratch_end(void)
{
	if (am_scratch.depth > 0)
		am_scratch.depth--;
}

static inline bool
am_scratch_owns(const void *p)
{
	return am_scratch.base != NULL && (const char *) p >= am_scratch.base &&
		(const char *) p < am_scratch.base + am_scratch.size;
}

/* size bytes, from the region while a search holds it and they fit, else palloc'd. */
void *
am_scratch_alloc(Size size)
{
	Size		need = MAXALIGN(Max(size, 1));

	if (am_scratch.depth > 0 && am_scratch.size - am_scratch.used >= need)
	{
		char	   *p = am_scratch.base + am_scratch.used;

		am_scratch.used += need;
		am_scratch.last = p;
		am_scratch.wanted = Max(am_scratch.wanted, am_scratch.used + am_scratch.overflow);
		return p;
	}
	if (am_scratch.depth > 0)
	{
		am_scratch.overflow += need;
		am_scratch.wanted = Max(am_scratch.wanted, am_scratch.used + am_scratch.overflow);
	}
	return palloc_extended(size, MCXT_ALLOC_HUGE);
}

/* p, old_size bytes long, grown to size (a new allocation, p given back). */
void *
am_scratch_realloc(void *p, Size old_size, Size size)
{
	void	   *q;

	if (p == NULL)
		return am_scratch_alloc(size);
	if (!am_scratch_owns(p))
		return repalloc_huge(p, size);
	q = am_scratch_alloc(size);
	memcpy(q, p, Min(old_size, size));
	am_scratch_free(p);
	return q;
}

/* Gives p back (the region's space only when it was the last carved). */
void
am_scratch_free(void *p)
{
	if (p == NULL)
		return;
	if (!am_scratch_owns(p))
		pfree(p);
	else if (p == am_scratch.last)
	{
		am_scratch.used = (char *) p - am_scratch.base;
		am_scratch.last = NULL;
	}
}

PG_FUNCTION_INFO_V1(search_scratch_last);

/*
 * search_scratch_last: the region kept (bytes), what the last search held
 * at most and of it what came from palloc, and the searches holding it now
 * (0 between calls: an error inside one gives it back).  For tests.
 */
/* SQL function: search_scratch_last */
Datum
search_scratch_last(PG_FUNCTION_ARGS)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	values[0] = Int64GetDatum((int64) am_scratch.size);
	values[1] = Int64GetDatum((int64) am_scratch.wanted);
	values[2] = Int64GetDatum((int64) am_scratch.overflow);
	values[3] = Int32GetDatum(am_scratch.depth);
	PG_RETURN_DATUM(am_result_row(fcinfo, values, nulls));
}
