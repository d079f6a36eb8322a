/*-------------------------------------------------------------------------
 * job.h
 *	  One claimed job and its outcome.  Depends on no other module: the
 *	  queue builds jobs, providers perform them, the queue reports them.
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_JOB_H
#define AGENTMARKET_JOB_H

#include <jansson.h>

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
	json_t	   *result;			/* JOB_SUCCEEDED (or result_text) */
	char	   *result_text;	/* JOB_SUCCEEDED: the answer's own text, one JSON object */
	char	   *error;			/* JOB_FAILED */
	int			retry_after_s;	/* JOB_FAILED: floor of the next attempt, -1 none */
	int			permanent;		/* JOB_FAILED: do not retry */

	/* provider progress */
	int			flow;			/* the provider's flow (its own numbering) */
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

extern job *job_new(long long id, const char *kind, const char *provider, int attempt,
					const char *idempotency_key, const char *request_text);
extern void job_free(job *j);
extern void job_succeed(job *j, json_t *result);
extern int	job_succeed_text(job *j, const char *text, size_t len);
extern void job_fail(job *j, int permanent, int retry_after_s, const char *fmt,...)
			__attribute__((format(printf, 4, 5)));
extern const char *json_str(json_t *obj, const char *key);

#endif							/* AGENTMARKET_JOB_H */
