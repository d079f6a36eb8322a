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
	const char *dsn;			/* AGENTMARKET_DSN; NULL: libpq PG* variables */
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
	int			lease_seconds;
	int			poll_ms;		/* claim at least this often without NOTIFY */
	int			rate_limit_delay_s; /* Stripe 429 rate_limit: requeue at least this late */
	int			once;			/* drain what is due, then exit */
} sidecar_config;

extern sidecar_config config;
extern volatile sig_atomic_t stop_requested;

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
	char	   *machine_id;
	char	   *volume_id;
	double		started_at;
	double		ended_at;		/* when the outcome was known */

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
extern int	http_run(int timeout_ms, int extra_fd);
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

/* stripe.c */
extern void stripe_start(job *j);
extern char *stripe_form_encode(json_t *params);

/* queue.c */
extern PGconn *queue_connect(void);
extern int	queue_claim(PGconn *conn, int max, job **out);
extern int	queue_report(PGconn *conn, job *j);
extern int	queue_report_all(PGconn *conn, job *list);
extern int	queue_drain_notifications(PGconn *conn);

/* log.c */
extern void log_event(const char *level, const char *event, json_t *fields);
extern double now_seconds(void);
extern int	log_set_level(const char *level);

#endif							/* AGENTMARKET_SIDECAR_H */
