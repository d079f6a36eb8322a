/*-------------------------------------------------------------------------
 * sidecar.h
 *	  Shared declarations of agentmarket-sidecar: configuration, jobs, the
 *	  HTTP engine, the providers, the queue client and logging.
 *
 * The sidecar holds no state and makes no business decision: it claims jobs
 * (agentmarket_private.claim_jobs), performs the calls the claim describes,
 * and hands each outcome back (finish_job / fail_job).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_SIDECAR_H
#define AGENTMARKET_SIDECAR_H

#include <signal.h>
#include <stddef.h>
#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

typedef struct sidecar_config
{
	const char *dsn;			/* AGENTMARKET_DSN(_FILE); NULL: libpq PG* variables */
	const char *fly_token;
	const char *fly_base_url;
	const char *fly_org_slug;
	const char *stripe_key;
	const char *stripe_base_url;
	char		worker[128];	/* lease owner name, unique per process */
	int			concurrency;	/* jobs in flight at once */
	int			batch;			/* most jobs claimed at once */
	long		connect_timeout_ms;
	long		request_timeout_ms;
	int			fly_wait_seconds;	/* timeout of Fly's wait endpoint */
	int			lease_seconds;	/* renewed by heartbeat every third of it */
	int			poll_ms;		/* claim at least this often without NOTIFY */
	int			listen;			/* LISTEN agentmarket_jobs (off through a transaction pooler) */
	int			drain_seconds;	/* after SIGTERM, release what is not done by then */
	int			rate_limit_delay_s; /* Stripe 429 rate_limit: requeue at least this late */
	int			health_port;	/* /healthz and /metrics; 0: off */
	const char *health_address;
	int			once;			/* drain what is due, then exit */
} sidecar_config;

extern sidecar_config config;
extern volatile sig_atomic_t stop_requested;	/* 1: drain; 2: a second signal, stop now */

typedef enum job_state
{
	JOB_ACTIVE,
	JOB_SUCCEEDED,
	JOB_FAILED
} job_state;

/* One claimed job and its progress through the provider's calls. */
typedef struct job
{
	long long	id;
	char	   *kind;
	char	   *provider;
	int			attempt;
	char	   *idempotency_key;
	json_t	   *request;		/* what claim_jobs says to do */

	job_state	state;
	json_t	   *result;			/* JOB_SUCCEEDED */
	char	   *error;			/* JOB_FAILED */
	int			retry_after_s;	/* JOB_FAILED: floor of the next attempt, -1 none */
	int			permanent;		/* JOB_FAILED: do not retry */

	/* provider progress */
	int			step;
	int			lookup;			/* look before creating (replay or ambiguity) */
	int			restarts;		/* starts over within this attempt so far */
	double		restart_at;		/* > 0: start over at this time */
	char	   *machine_id;
	char	   *volume_id;
	long		secrets_version;	/* Fly app secrets version we set (runtime), 0 none */
	double		started_at;
	double		ended_at;		/* when the outcome was known */
	double		lease_until;	/* local bound of the lease: sent time of the last renewal + lease */
	int			lease_lost;		/* a renewal said another worker has it, or it is over */

	struct job *next;
} job;

/* An HTTP answer, or a transport failure (status 0, curl_error set). */
typedef struct http_response
{
	long		status;
	char	   *body;
	size_t		body_len;
	const char *curl_error;		/* NULL when an answer arrived */
	int			timed_out;
	int			retry_after_s;	/* Retry-After header, -1 when absent */
	int			should_retry;	/* Stripe-Should-Retry: 1 true, 0 false, -1 absent */
} http_response;

typedef void (*http_done_fn) (job *j, const http_response *r);

/* http.c */
extern int	http_init(void);
extern void http_cleanup(void);
extern int	http_send(job *j, const char *method, const char *url, struct curl_slist *headers,
					  const char *body, long timeout_ms, int fresh_connection, http_done_fn done);
extern void http_run(int timeout_ms, struct curl_waitfd *fds, unsigned int nfds);
extern int	http_cancel(job *j);
extern int	http_in_flight(void);
extern char *http_escape(const char *s);

/* job.c */
extern job *job_from_claim(PGresult *res, int row);
extern void job_free(job *j);
extern void job_succeed(job *j, json_t *result);
extern void job_fail(job *j, int permanent, int retry_after_s, const char *fmt,...)
			__attribute__((format(printf, 4, 5)));
extern void job_start(job *j);
extern const char *json_str(json_t *obj, const char *key);
extern char *error_message_from(const http_response *r, const char *provider);

/* fly.c */
extern void fly_start(job *j);
extern void fly_restart(job *j);

/* stripe.c */
extern void stripe_start(job *j);
extern char *stripe_form_encode(json_t *params);

/* queue.c: the one database connection, lost and found again */
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

/* health.c: counters, gauges, and the local /healthz and /metrics endpoint */
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
} sidecar_status;

extern sidecar_status status;
extern void metrics_count(const char *kind, metric_counter which);
extern int	health_open(void);
extern unsigned int health_wait_fds(struct curl_waitfd *fds, unsigned int max);
extern void health_serve(struct curl_waitfd *fds, unsigned int nfds);
extern void health_close(void);

/* log.c */
extern void log_event(const char *level, const char *event, json_t *fields);
extern double now_seconds(void);
extern int	log_set_level(const char *level);

#endif							/* AGENTMARKET_SIDECAR_H */
