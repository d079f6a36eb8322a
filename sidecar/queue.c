/*-------------------------------------------------------------------------
 * queue.c
 *	  The database side's statements: claim a batch and report outcomes in
 *	  one statement (exchange_jobs, committed at once, so no transaction is
 *	  open while calls are in flight), renew the leases of what runs
 *	  (heartbeat), release, measure the lag.  LISTEN agentmarket_jobs lets
 *	  enqueues wake the sidecar (off through a transaction pooler, where
 *	  polling takes over).  Every statement is a single call with parameters
 *	  and no session state.  The connections themselves, lost and found
 *	  again, are queue_conn.c's.
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "clock.h"
#include "health.h"
#include "log.h"
#include "queue.h"
#include "queue_conn.h"
#include "sidecar.h"



/*
 * The statements in flight, one per connection at most, sent without
 * waiting (PQsendQueryParams), so the HTTP calls go on while the database
 * works; their results are handed to the callbacks by queue_poll.  Each is
 * one exchange_jobs: the outcomes of ended jobs reported and free slots
 * refilled in one round trip and one commit.  The synchronous calls
 * (heartbeat, release, lag) let them finish first (queue_wait).
 */
static int	pending[QUEUE_MAX_CONNS];	/* a statement is in flight */
static PGresult *pending_result[QUEUE_MAX_CONNS];	/* its result, until the connection is idle */
static job *pending_jobs[QUEUE_MAX_CONNS];	/* the jobs it reports (NULL: none) */
static int	pending_claim[QUEUE_MAX_CONNS];	/* how many it claims (0: none) */
static double pending_sent[QUEUE_MAX_CONNS];	/* when it was sent (a claimed lease's start) */
static queue_reported_fn on_reported;
static queue_claimed_fn on_claimed;

/*
 * The round trip: outcomes reported, then due jobs leased to this worker with
 * their requests.  Reported rows carry an outcome, claimed rows a kind.
 */
#define EXCHANGE_SQL \
	"SELECT job_id, outcome, kind, provider, attempt, idempotency_key, request::text " \
	"FROM agentmarket_private.exchange_jobs($1, $2::jsonb, $3::integer, pg_catalog.make_interval(secs => $4::integer))"
#define COL_OUTCOME 1
#define COL_KIND 2

/* Jobs from the claimed rows of an exchange sent at `sent`, prepended to *out; how many rows. */
static int
queue_claimed(PGresult *res, double sent, job **out)
{
	int			rows = PQntuples(res);
	int			n = 0;
	int			i;

	status.last_claim_at = now_seconds();
	for (i = 0; i < rows; i++)
	{
		job		   *j;

		if (PQgetisnull(res, i, COL_KIND))
			continue;			/* a reported job */
		n++;
		j = job_new(strtoll(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 2),
					PQgetvalue(res, i, 3), atoi(PQgetvalue(res, i, 4)),
					PQgetvalue(res, i, 5), PQgetvalue(res, i, 6));
		if (j == NULL)
			continue;			/* out of memory: its lease expires, it runs again */
		j->lease_until = sent + config.lease_seconds;
		metrics_count(j->kind, METRIC_CLAIMED);
		j->next = *out;
		*out = j;
	}
	if (n > 0)
		status.last_job_claimed_at = status.last_claim_at;
	return n;
}

/* Where queue_poll hands finished statements. */
void
queue_set_callbacks(queue_reported_fn reported, queue_claimed_fn claimed)
{
	on_reported = reported;
	on_claimed = claimed;
}

/* Whether a statement is in flight. */
int
queue_busy(void)
{
	int			i;

	for (i = 0; i < QUEUE_MAX_CONNS; i++)
		if (pending[i])
			return 1;
	return 0;
}

/* A connection that is up with no statement in flight, or -1. */
static int
queue_idle_connection(void)
{
	int			i;

	for (i = 0; i < config.database_connections && i < QUEUE_MAX_CONNS; i++)
		if (queue_conns[i] != NULL && !pending[i])
			return i;
	return -1;
}

/* Whether an exchange can be sent now (a connection is up and idle). */
int
queue_can_send(void)
{
	return queue_idle_connection() >= 0;
}

/* Log one reported outcome and count it. */
static void
queue_log_outcome(job *j, const char *outcome)
{
	int			ms = (int) ((now_seconds() - j->started_at) * 1000);

	if (strcmp(outcome, "succeeded") == 0)
	{
		metrics_count(j->kind, METRIC_SUCCEEDED);
		if (log_enabled("info"))
			log_event("info", "job_succeeded",
					  json_pack("{sIsssisi}", "job", (json_int_t) j->id, "kind", j->kind,
								"attempt", j->attempt, "ms", ms));
	}
	else if (strcmp(outcome, "lease_lost") == 0)
	{
		metrics_count(j->kind, METRIC_LEASE_LOST);
		log_event("warn", "lease_lost", json_pack("{sIss}", "job", (json_int_t) j->id, "kind", j->kind));
	}
	else
	{
		int			dead = strcmp(outcome, "dead") == 0;

		metrics_count(j->kind, dead ? METRIC_DEAD : METRIC_FAILED);
		log_event(dead ? "error" : "warn", dead ? "job_dead" : "job_retry",
				  json_pack("{sIsssisssi}", "job", (json_int_t) j->id, "kind", j->kind,
							"attempt", j->attempt,
							"error", j->error ? j->error : (j->state == JOB_SUCCEEDED ? "database refused the result" : ""),
							"retry_after", j->retry_after_s));
	}
}

/* One job's outcome as report_jobs takes it. */
static json_t *
queue_outcome_json(job *j)
{
	json_t	   *o;

	if (j->state == JOB_SUCCEEDED)
		return json_pack("{sIsbsO}", "id", (json_int_t) j->id, "ok", 1, "result", j->result);
	o = json_pack("{sIsbsssb}", "id", (json_int_t) j->id, "ok", 0,
				  "error", j->error ? j->error : "unknown error", "permanent", j->permanent);
	json_object_set_new(o, "retry_after", j->retry_after_s >= 0 ? json_integer(j->retry_after_s) : json_null());
	return o;
}

#define REPORT_SQL "SELECT job_id, outcome FROM agentmarket_private.report_jobs($1, $2::jsonb)"

/* Append n bytes of s to the growing text *buf (*len used, *cap allocated); -1 when out of memory. */
static int
queue_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap)
	{
		size_t		grown_cap = *cap ? *cap : 4096;
		char	   *grown;

		while (*len + n + 1 > grown_cap)
			grown_cap *= 2;
		if ((grown = realloc(*buf, grown_cap)) == NULL)
			return -1;
		*buf = grown;
		*cap = grown_cap;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/*
 * The outcomes of the jobs of list as report_jobs takes them (a JSON array);
 * caller frees; NULL when out of memory.  A result kept as the answer's own
 * text (job_succeed_text, checked to be one JSON object) goes in as it is.
 */
static char *
queue_outcomes_text(job *list, int only_first)
{
	char	   *buf = NULL;
	size_t		len = 0;
	size_t		cap = 0;
	int			ok;
	job		   *j;

	ok = queue_append(&buf, &len, &cap, "[", 1) == 0;
	for (j = list; j != NULL && ok; j = only_first ? NULL : j->next)
	{
		if (j != list)
			ok = queue_append(&buf, &len, &cap, ",", 1) == 0;
		if (j->state == JOB_SUCCEEDED && j->result_text != NULL)
		{
			char		head[64];
			int			n = snprintf(head, sizeof(head), "{\"id\":%lld,\"ok\":true,\"result\":", j->id);

			ok = ok && queue_append(&buf, &len, &cap, head, (size_t) n) == 0 &&
				queue_append(&buf, &len, &cap, j->result_text, strlen(j->result_text)) == 0 &&
				queue_append(&buf, &len, &cap, "}", 1) == 0;
		}
		else
		{
			json_t	   *o = queue_outcome_json(j);
			char	   *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

			ok = ok && text != NULL && queue_append(&buf, &len, &cap, text, strlen(text)) == 0;
			free(text);
			json_decref(o);
		}
	}
	ok = ok && queue_append(&buf, &len, &cap, "]", 1) == 0;
	if (!ok)
	{
		free(buf);
		return NULL;
	}
	return buf;
}

/* Send outcomes through report_jobs and wait; the result, *rc as queue_check says. */
static PGresult *
queue_send_outcomes(job *list, int only_first, int *rc)
{
	const char *params[2];
	char	   *text = queue_outcomes_text(list, only_first);
	PGresult   *res;

	params[0] = config.worker;
	params[1] = text;
	res = PQexecParams(queue_conns[0], REPORT_SQL, 2, NULL, params, NULL, NULL, 0);
	free(text);
	*rc = queue_check(res, PGRES_TUPLES_OK, "report_jobs");
	return res;
}

/*
 * Log the outcome of every job of list named in a report_jobs result (col:
 * the outcome's column; rows without one are claimed jobs).  The result's
 * rows come in id order, as the list's jobs are kept, so one pass matches
 * them; a job out of order is looked up.
 */
static void
queue_log_outcomes(PGresult *res, job *list, int col)
{
	int			i;
	job		   *j;
	job		   *from = list;

	for (i = 0; i < PQntuples(res); i++)
	{
		long long	id;

		if (PQgetisnull(res, i, col))
			continue;
		id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		for (j = from; j != NULL && j->id != id; j = j->next)
			;
		for (j = j ? j : list; j != NULL && j->id != id; j = j->next)
			;
		if (j != NULL)
		{
			queue_log_outcome(j, PQgetvalue(res, i, col));
			from = j->next;
		}
	}
}

/*
 * Send one exchange_jobs without waiting: the outcomes of every ended job of
 * list (NULL: none) reported and up to max due jobs claimed (0: none), in
 * one round trip and one new transaction, while the calls go on.  The
 * reported callback gets the list back with the verdict, the claimed
 * callback the jobs.  0 when sent, -1 when not (down, or busy: the caller
 * keeps the list).
 */
int
queue_exchange_send(job *list, int max)
{
	char		max_text[16];
	char		lease_text[16];
	const char *params[4];
	char	   *text;
	int			sent;
	int			c = queue_idle_connection();

	if (c < 0 || (list == NULL && max <= 0))
		return -1;
	if ((text = list ? queue_outcomes_text(list, 0) : strdup("[]")) == NULL)
		return -1;
	snprintf(max_text, sizeof(max_text), "%d", max > 0 ? max : 0);
	snprintf(lease_text, sizeof(lease_text), "%d", config.lease_seconds);
	params[0] = config.worker;
	params[1] = text;
	params[2] = max_text;
	params[3] = lease_text;
	pending_sent[c] = now_seconds();
	sent = PQsendQueryParams(queue_conns[c], EXCHANGE_SQL, 4, NULL, params, NULL, NULL, 0);
	free(text);
	if (!sent)
	{
		queue_went_down("exchange_jobs", PQerrorMessage(queue_conns[c]));
		return -1;
	}
	pending[c] = 1;
	pending_jobs[c] = list;
	pending_claim[c] = max > 0 ? max : 0;
	return 0;
}

/*
 * Report each job of the list alone (the database refused the batch, so one
 * bad outcome cannot hold back the others).  0 when delivered, -1 when the
 * database could not be reached.
 */
int
queue_report_each(job *list)
{
	job		   *j;
	PGresult   *res;
	int			rc;

	queue_wait();
	if (queue_conns[0] == NULL)
		return -1;
	for (j = list; j != NULL; j = j->next)
	{
		res = queue_send_outcomes(j, 1, &rc);
		if (rc == 0)
			queue_log_outcomes(res, list, 1);
		PQclear(res);
		if (rc == -1)
			return -1;
	}
	return 0;
}

/*
 * Report every ended job of the list and wait (the drain deadline): one
 * round trip and one new transaction, each job alone when the batch is
 * refused.  Returns 0 when the outcomes were delivered, -1 when the database
 * could not be reached: the caller keeps them and reports them again once
 * it is back (a report that did commit before the answer was lost comes
 * back as lease_lost, changing nothing).
 */
int
queue_report_all(job *list)
{
	PGresult   *res;
	int			rc;

	queue_wait();
	if (queue_conns[0] == NULL)
		return -1;
	res = queue_send_outcomes(list, 0, &rc);
	if (rc == 0)
		queue_log_outcomes(res, list, 1);
	PQclear(res);
	return rc == -2 ? queue_report_each(list) : rc;
}

/* "{1,2,3}" of the ids of jobs[0..n); caller frees. */
static char *
queue_id_array(job **jobs, int n)
{
	char	   *text = malloc((size_t) n * 21 + 3);
	size_t		len = 0;
	int			i;

	if (text == NULL)
		return NULL;
	text[len++] = '{';
	for (i = 0; i < n; i++)
		len += sprintf(text + len, "%s%lld", i ? "," : "", jobs[i]->id);
	text[len++] = '}';
	text[len] = '\0';
	return text;
}

/*
 * Heartbeat: renew the leases of jobs[0..n) (running, or ended and not yet
 * reported).  Renewed jobs get a new local lease bound; the others are
 * marked lease_lost.  Returns 0, or -1 on a database error.
 */
int
queue_renew(job **jobs, int n)
{
	char		lease_text[16];
	const char *params[3];
	char	   *ids;
	PGresult   *res;
	int			i;
	double		sent = now_seconds();

	queue_wait();
	if (queue_conns[0] == NULL)
		return -1;
	if (n == 0)
		return 0;
	if ((ids = queue_id_array(jobs, n)) == NULL)
		return -1;
	snprintf(lease_text, sizeof(lease_text), "%d", config.lease_seconds);
	params[0] = config.worker;
	params[1] = ids;
	params[2] = lease_text;
	res = PQexecParams(queue_conns[0],
					   "SELECT agentmarket_private.renew_leases($1, $2::bigint[], "
					   "pg_catalog.make_interval(secs => $3::integer))",
					   3, NULL, params, NULL, NULL, 0);
	free(ids);
	if (queue_check(res, PGRES_TUPLES_OK, "renew_leases") != 0)
	{
		PQclear(res);
		return -1;
	}
	for (i = 0; i < n; i++)
		jobs[i]->lease_lost = 1;
	for (i = 0; i < PQntuples(res); i++)
	{
		long long	id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		int			k;

		for (k = 0; k < n; k++)
			if (jobs[k]->id == id)
			{
				jobs[k]->lease_lost = 0;
				jobs[k]->lease_until = sent + config.lease_seconds;
				break;
			}
	}
	PQclear(res);
	return 0;
}

/* Give jobs[0..n) back to the queue (drain deadline); how many, or -1. */
int
queue_release(job **jobs, int n, const char *reason)
{
	const char *params[3];
	char	   *ids;
	PGresult   *res;
	int			released;

	queue_wait();
	if (queue_conns[0] == NULL)
		return -1;
	if (n == 0)
		return 0;
	if ((ids = queue_id_array(jobs, n)) == NULL)
		return -1;
	params[0] = config.worker;
	params[1] = ids;
	params[2] = reason;
	res = PQexecParams(queue_conns[0], "SELECT agentmarket_private.release_jobs($1, $2::bigint[], $3)",
					   3, NULL, params, NULL, NULL, 0);
	free(ids);
	if (queue_check(res, PGRES_TUPLES_OK, "release_jobs") != 0)
	{
		PQclear(res);
		return -1;
	}
	released = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return released;
}

/* Measure the queue's lag (the job due longest) for /metrics. */
void
queue_measure_lag(void)
{
	PGresult   *res;

	queue_wait();
	if (queue_conns[0] == NULL)
		return;
	res = PQexec(queue_conns[0], "SELECT COALESCE((SELECT pg_catalog.date_part('epoch', waiting) "
				 "FROM agentmarket_private.queue_oldest_due), 0)");
	if (queue_check(res, PGRES_TUPLES_OK, "queue_oldest_due") == 0)
		status.queue_lag_s = strtod(PQgetvalue(res, 0, 0), NULL);
	PQclear(res);
}

/*
 * Hand the finished exchange on connection c to the callbacks (c is idle):
 * the verdict of what it reported first, then the jobs it claimed.
 */
static void
queue_deliver(int c, PGresult *res)
{
	job		   *jobs = pending_jobs[c];
	int			claim = pending_claim[c];
	double		sent = pending_sent[c];
	job		   *fresh = NULL;
	int			n = -1;
	int			rc;

	pending[c] = 0;
	pending_jobs[c] = NULL;
	pending_claim[c] = 0;
	status.statement_seconds += now_seconds() - sent;
	rc = queue_check_on(queue_conns[c], res, PGRES_TUPLES_OK, "exchange_jobs");
	if (rc == 0)
	{
		if (jobs != NULL)
			queue_log_outcomes(res, jobs, COL_OUTCOME);
		if (claim > 0)
			n = queue_claimed(res, sent, &fresh);
	}
	PQclear(res);
	if (jobs != NULL)
		on_reported(jobs, rc);
	if (claim > 0)
		on_claimed(fresh, n, claim);
}

/* The connections were lost with statements in flight: the callbacks learn it. */
void
queue_pending_lost(void)
{
	int			c;

	for (c = 0; c < QUEUE_MAX_CONNS; c++)
	{
		job		   *jobs = pending_jobs[c];
		int			claim = pending_claim[c];

		if (!pending[c])
			continue;
		pending[c] = 0;
		pending_jobs[c] = NULL;
		pending_claim[c] = 0;
		if (pending_result[c] != NULL)
			PQclear(pending_result[c]);
		pending_result[c] = NULL;
		if (jobs != NULL)
			on_reported(jobs, -1);
		if (claim > 0)
			on_claimed(NULL, -1, claim);
	}
}

/* NOTIFY messages consumed since queue_poll last said. */
static int	notifications;

/*
 * Read what the server sent, without waiting: NOTIFY messages, and the
 * results of the statements in flight, each handed to its callbacks once its
 * connection is idle again.  Returns how many notifications arrived.
 */
int
queue_poll(void)
{
	PGnotify   *n;
	int			count;
	int			c;

	for (c = 0; c < QUEUE_MAX_CONNS; c++)
	{
		if (queue_conns[c] == NULL)
			continue;
		if (PQconsumeInput(queue_conns[c]) == 0)
		{
			queue_went_down(pending[c] ? "exchange_jobs" : "listen", PQerrorMessage(queue_conns[c]));
			return 0;
		}
		while ((n = PQnotifies(queue_conns[c])) != NULL)
		{
			notifications++;
			PQfreemem(n);
		}
		/* A callback may lose the connections (then every queue_conns[] is NULL). */
		while (queue_conns[c] != NULL && pending[c] && !PQisBusy(queue_conns[c]))
		{
			PGresult   *r = PQgetResult(queue_conns[c]);

			if (r == NULL)
			{
				PGresult   *res = pending_result[c];

				pending_result[c] = NULL;
				queue_deliver(c, res);
				break;
			}
			if (pending_result[c] == NULL)
				pending_result[c] = r;
			else
				PQclear(r);
		}
	}
	count = notifications;
	notifications = 0;
	return count;
}

/* Wait until no statement is in flight (their callbacks have run), or the connections are lost. */
void
queue_wait(void)
{
	while (queue_conns[0] != NULL && queue_busy())
	{
		struct pollfd p[QUEUE_MAX_CONNS];
		int			np = 0;
		int			c;

		for (c = 0; c < QUEUE_MAX_CONNS; c++)
			if (queue_conns[c] != NULL && pending[c] && PQisBusy(queue_conns[c]))
			{
				p[np].fd = PQsocket(queue_conns[c]);
				p[np].events = POLLIN;
				p[np++].revents = 0;
			}
		if (np > 0 && poll(p, (nfds_t) np, 1000) < 0 && errno != EINTR)
		{
			queue_went_down("wait", strerror(errno));
			return;
		}
		notifications += queue_poll();
	}
}
