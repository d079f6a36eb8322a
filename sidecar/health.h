/*-------------------------------------------------------------------------
 * health.h
 *	  Counters, gauges, and the local /healthz and /metrics endpoint (health.c).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_HEALTH_H
#define AGENTMARKET_HEALTH_H

#include <curl/curl.h>

typedef enum metric_counter
{
	METRIC_CLAIMED,
	METRIC_SUCCEEDED,
	METRIC_FAILED,				/* retryable failure: queued again */
	METRIC_DEAD,
	METRIC_LEASE_LOST,
	METRIC_COUNTERS
} metric_counter;

typedef struct sidecar_status
{
	int			database_up;
	double		database_changed_at;	/* when database_up last changed */
	double		last_claim_at;	/* last claim statement that succeeded */
	double		last_job_claimed_at;	/* last claim that returned a job */
	int			in_flight;		/* jobs being performed */
	int			report_backlog; /* ended jobs whose outcome is not reported yet */
	double		queue_lag_s;	/* age of the job due longest, at the last heartbeat */
	long long	outages;
	double		statement_seconds;	/* time with a claim or report in flight */
} sidecar_status;

extern sidecar_status status;
extern void metrics_count(const char *kind, metric_counter which);
extern int	health_open(void);
extern unsigned int health_wait_fds(struct curl_waitfd *fds, unsigned int max);
extern void health_serve(struct curl_waitfd *fds, unsigned int nfds);
extern void health_close(void);

#endif							/* AGENTMARKET_HEALTH_H */
