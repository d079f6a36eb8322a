/*-------------------------------------------------------------------------
 * clock.h
 *	  Wall-clock seconds, for deadlines, leases and log lines (header only).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_CLOCK_H
#define AGENTMARKET_CLOCK_H

#include <sys/time.h>

/* Wall-clock time in seconds, with microseconds. */
static inline double
now_seconds(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec + tv.tv_usec / 1e6;
}

#endif							/* AGENTMARKET_CLOCK_H */
