/*-------------------------------------------------------------------------
 * queue.h
 *	  The one database connection, lost and found again (queue.c).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_QUEUE_H
#define AGENTMARKET_QUEUE_H

#include "job.h"

extern int	queue_up(void);
extern int	queue_connect_when_due(void);
extern int	queue_socket(void);
extern int	queue_claim(int max, job **out);
extern int	queue_report_all(job *list);
extern int	queue_renew(job **jobs, int n);
extern int	queue_release(job **jobs, int n, const char *reason);
extern void queue_measure_lag(void);
extern int	queue_drain_notifications(void);
extern void queue_close(void);

#endif							/* AGENTMARKET_QUEUE_H */
