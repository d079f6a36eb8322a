/*-------------------------------------------------------------------------
 * queue.h
 *	  The one database connection, lost and found again (queue.c).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_QUEUE_H
#define AGENTMARKET_QUEUE_H

#include "job.h"

/*
 * Claims and reports are sent without waiting, together in one statement
 * (exchange_jobs), so calls go on while the database works; their results
 * come to these callbacks from queue_poll (or queue_wait), with the
 * connection idle.  rc: 0 done, -1 database
 * unreachable (the jobs were not reported / nothing was claimed), -2 the
 * database refused the statement.
 */
typedef void (*queue_reported_fn) (job *list, int rc);
typedef void (*queue_claimed_fn) (job *fresh, int n, int wanted);	/* n < 0: the claim failed */

extern void queue_set_callbacks(queue_reported_fn reported, queue_claimed_fn claimed);
extern int	queue_up(void);
extern int	queue_connect_when_due(void);
extern int	queue_sockets(int *fds, int max);
extern int	queue_busy(void);
extern int	queue_can_send(void);
extern int	queue_exchange_send(job *list, int max);
extern int	queue_poll(void);
extern void queue_wait(void);
extern int	queue_report_each(job *list);
extern int	queue_report_all(job *list);
extern int	queue_renew(job **jobs, int n);
extern int	queue_release(job **jobs, int n, const char *reason);
extern void queue_measure_lag(void);
extern void queue_close(void);

#endif							/* AGENTMARKET_QUEUE_H */
