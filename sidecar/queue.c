/*-------------------------------------------------------------------------
 * queue.c
 *	  The database side: claim a batch (one statement, committed at once, so
 *	  no transaction is open while calls are in flight), renew the leases of
 *	  what runs (heartbeat), and report outcomes afterwards in a new
 *	  transaction.  LISTEN agentmarket_jobs lets enqueues wake the sidecar
 *	  (off through a transaction pooler, where polling takes over).
 *
 *	  The connection may be lost at any time (a restart, a failover, a
 *	  pooler that lost its server).  Then it is closed, tried again with
 *	  backoff, and the loss and the recovery are each logged once.  Every
 *	  statement is a single call with parameters and no session state.
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
#include "sidecar.h"

#define RECONNECT_FIRST_S 0.25
#define RECONNECT_MAX_S 5.0

/*
 * conns[0] LISTENs and carries the heartbeat, releases and the lag probe;
 * every connection carries exchanges, so that with two, one commits (a WAL
 * flush) while the other's statement runs, on another core.
 */
#define MAX_CONNS 2
static PGconn *conns[MAX_CONNS];
static double next_connect_at;

/*
 * The statements in flight, one per connection at most, sent without
 * waiting (PQsendQueryParams), so the HTTP calls go on while the database
 * works; their results are handed to the callbacks by queue_poll.  Each is
 * one exchange_jobs: the outcomes of ended jobs reported and free slots
 * refilled in one round trip and one commit.  The synchronous calls
 * (heartbeat, release, lag) let them finish first (queue_wait).
 */
static int	pending[MAX_CONNS];	/* a statement is in flight */
static PGresult *pending_result[MAX_CONNS];	/* its result, until the connection is idle */
static job *pending_jobs[MAX_CONNS];	/* the jobs it reports (NULL: none) */
static int	pending_claim[MAX_CONNS];	/* how many it claims (0: none) */
static double pending_sent[MAX_CONNS];	/* when it was sent (a claimed lease's start) */
static queue_reported_fn on_reported;
static queue_claimed_fn on_claimed;
static double reconnect_delay = RECONNECT_FIRST_S;
static long long connect_attempts;
static char down_reason[512];

/* A libpq message without its trailing newlines and spaces. */
static void
clean_message(char *dst, size_t size, const char *msg)
{
	size_t		n;

	snprintf(dst, size, "%s", msg && *msg ? msg : "unknown error");
	n = strlen(dst);
	while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
		dst[--n] = '\0';
	for (n = 0; dst[n]; n++)
		if (dst[n] == '\n')
			dst[n] = ' ';
}

/* Log a statement's error (on connection c) with the statement's purpose. */
static void
queue_log_error(PGconn *c, const char *what, PGresult *res)
{
	char		clean[512];
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	clean_message(clean, sizeof(clean), res ? PQresultErrorMessage(res) : c ? PQerrorMessage(c) : "connection closed");
	log_event("error", "database_error", json_pack("{ssssss}", "during", what, "error", clean,
												  "sqlstate", state ? state : ""));
}

/* libpq notices (RAISE NOTICE, WARNING) become log lines like the others. */
static void
queue_notice(void *arg, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	char		message[512];
	json_t	   *fields;

	(void) arg;
	clean_message(message, sizeof(message), PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
	fields = json_pack("{ssssss}", "severity", severity ? severity : "NOTICE",
					   "sqlstate", state ? state : "", "message", message);
	if (detail != NULL)
		json_object_set_new(fields, "detail", json_string(detail));
	log_event(severity && strcmp(severity, "WARNING") == 0 ? "warn" :
			  severity && strcmp(severity, "DEBUG") == 0 ? "debug" : "info",
			  "database_notice", fields);
}

static void queue_pending_lost(void);

/*
 * The database went away: close, log once, try again after the backoff.  why
 * may be PQerrorMessage(conns[0]), which PQfinish frees: it is copied first.
 */
static void
queue_went_down(const char *what, const char *why)
{
	char		reason[sizeof(down_reason)];

	int			i;

	clean_message(reason, sizeof(reason), why);
	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i] != NULL)
		{
			PQfinish(conns[i]);
			conns[i] = NULL;
		}
	queue_pending_lost();
	next_connect_at = now_seconds() + reconnect_delay;
	if (status.database_up || status.database_changed_at == 0)
	{
		memcpy(down_reason, reason, sizeof(down_reason));
		log_event("error", "database_unavailable",
				  json_pack("{ssss}", "during", what, "error", down_reason));
		status.database_up = 0;
		status.database_changed_at = now_seconds();
		status.outages++;
	}
}

/*
 * Whether a failed statement means the database is unreachable (rather than
 * that it refused the statement): no answer at all, the connection classes
 * 08, and the shutdown and startup errors 57P01..57P03.
 */
static int
queue_lost(PGconn *c, PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (c == NULL || PQstatus(c) != CONNECTION_OK || state == NULL)
		return 1;
	return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
		strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 || strcmp(state, "53300") == 0;
}

/*
 * Handle a statement that did not return expect: 0 when it did, -1 when the
 * database is unreachable (now marked down), -2 when it refused the
 * statement (logged).
 */
static int
queue_check_on(PGconn *c, PGresult *res, ExecStatusType expect, const char *what)
{
	if (res != NULL && PQresultStatus(res) == expect)
		return 0;
	if (queue_lost(c, res))
	{
		char		why[512];

		clean_message(why, sizeof(why), res ? PQresultErrorMessage(res) : c ? PQerrorMessage(c) : "connection closed");
		queue_went_down(what, why);
		return -1;
	}
	queue_log_error(c, what, res);
	return -2;
}

/* queue_check_on for a statement on the first connection. */
static int
queue_check(PGresult *res, ExecStatusType expect, const char *what)
{
	return queue_check_on(conns[0], res, expect, what);
}

/* Whether the connection is open and its last use succeeded. */
int
queue_up(void)
{
	return conns[0] != NULL;
}

/* The connections' sockets for the wait loop (up to max); how many. */
int
queue_sockets(int *fds, int max)
{
	int			n = 0;
	int			i;

	for (i = 0; i < MAX_CONNS && n < max; i++)
		if (conns[i] != NULL && PQsocket(conns[i]) >= 0)
			fds[n++] = PQsocket(conns[i]);
	return n;
}

/* Close the connections (at exit). */
void
queue_close(void)
{
	int			i;

	for (i = 0; i < MAX_CONNS; i++)
	{
		if (conns[i] != NULL)
			PQfinish(conns[i]);
		conns[i] = NULL;
	}
}

/*
 * Connect when down and the backoff allows (AGENTMARKET_DSN, else libpq's
 * PG* variables), then prove the server answers (LISTEN, or a probe through
 * a pooler).  Returns 1 when up.
 */
int
queue_connect_when_due(void)
{
	const char *keys[8];
	const char *values[8];
	int			k = 0;
	PGresult   *res;
	double		now = now_seconds();
	int			i;

	if (conns[0] != NULL)
		return 1;
	if (now < next_connect_at)
		return 0;
	connect_attempts++;
	/* A host that does not answer must not hold the loop (and the calls) for long. */
	if (getenv("PGCONNECT_TIMEOUT") == NULL)
	{
		keys[k] = "connect_timeout";
		values[k++] = "10";
	}
	/* A server that vanished without a word (failover, a cut network) is noticed in about 25 s. */
	keys[k] = "keepalives_idle";
	values[k++] = "10";
	keys[k] = "keepalives_interval";
	values[k++] = "5";
	keys[k] = "keepalives_count";
	values[k++] = "3";
	if (config.dsn != NULL)
	{
		keys[k] = "dbname";
		values[k++] = config.dsn;
	}
	keys[k] = "fallback_application_name";
	values[k++] = "agentmarket-sidecar";
	keys[k] = NULL;
	values[k] = NULL;
	conns[0] = PQconnectdbParams(keys, values, 1);
	if (conns[0] == NULL || PQstatus(conns[0]) != CONNECTION_OK)
	{
		char		why[512];

		clean_message(why, sizeof(why), conns[0] ? PQerrorMessage(conns[0]) : "out of memory");
		queue_went_down("connect", why);
		reconnect_delay = reconnect_delay * 2 > RECONNECT_MAX_S ? RECONNECT_MAX_S : reconnect_delay * 2;
		return 0;
	}
	PQsetNoticeReceiver(conns[0], queue_notice, NULL);
	res = PQexec(conns[0], config.listen ? "LISTEN agentmarket_jobs" : "SELECT 1");
	if (queue_check(res, config.listen ? PGRES_COMMAND_OK : PGRES_TUPLES_OK,
					config.listen ? "listen" : "probe") != 0)
	{
		PQclear(res);
		queue_close();
		next_connect_at = now + reconnect_delay;
		reconnect_delay = reconnect_delay * 2 > RECONNECT_MAX_S ? RECONNECT_MAX_S : reconnect_delay * 2;
		return 0;
	}
	PQclear(res);
	for (i = 1; i < config.database_connections; i++)
	{
		conns[i] = PQconnectdbParams(keys, values, 1);
		if (conns[i] == NULL || PQstatus(conns[i]) != CONNECTION_OK)
		{
			char		why[512];

			clean_message(why, sizeof(why), conns[i] ? PQerrorMessage(conns[i]) : "out of memory");
			queue_went_down("connect", why);
			next_connect_at = now + reconnect_delay;
			reconnect_delay = reconnect_delay * 2 > RECONNECT_MAX_S ? RECONNECT_MAX_S : reconnect_delay * 2;
			return 0;
		}
		PQsetNoticeReceiver(conns[i], queue_notice, NULL);
	}
	if (!status.database_up && status.database_changed_at != 0)
		log_event("info", "database_available",
				  json_pack("{sfsI}", "down_seconds", now_seconds() - status.database_changed_at,
							"attempts", (json_int_t) connect_attempts));
	status.database_up = 1;
	status.database_changed_at = now_seconds();
	reconnect_delay = RECONNECT_FIRST_S;
	connect_attempts = 0;
	return 1;
}

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

	for (i = 0; i < MAX_CONNS; i++)
		if (pending[i])
			return 1;
	return 0;
}

/* A connection that is up with no statement in flight, or -1. */
static int
queue_idle_connection(void)
{
	int			i;

	for (i = 0; i < config.database_connections && i < MAX_CONNS; i++)
		if (conns[i] != NULL && !pending[i])
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

/* The outcomes of the jobs of list as report_jobs takes them; caller frees. */
static char *
queue_outcomes_text(job *list, int only_first)
{
	json_t	   *outcomes = json_array();
	job		   *j;
	char	   *text;

	for (j = list; j != NULL; j = only_first ? NULL : j->next)
		json_array_append_new(outcomes, queue_outcome_json(j));
	text = json_dumps(outcomes, JSON_COMPACT);
	json_decref(outcomes);
	return text;
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
	res = PQexecParams(conns[0], REPORT_SQL, 2, NULL, params, NULL, NULL, 0);
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
	sent = PQsendQueryParams(conns[c], EXCHANGE_SQL, 4, NULL, params, NULL, NULL, 0);
	free(text);
	if (!sent)
	{
		queue_went_down("exchange_jobs", PQerrorMessage(conns[c]));
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
	if (conns[0] == NULL)
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
	if (conns[0] == NULL)
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
	if (conns[0] == NULL)
		return -1;
	if (n == 0)
		return 0;
	if ((ids = queue_id_array(jobs, n)) == NULL)
		return -1;
	snprintf(lease_text, sizeof(lease_text), "%d", config.lease_seconds);
	params[0] = config.worker;
	params[1] = ids;
	params[2] = lease_text;
	res = PQexecParams(conns[0],
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
	if (conns[0] == NULL)
		return -1;
	if (n == 0)
		return 0;
	if ((ids = queue_id_array(jobs, n)) == NULL)
		return -1;
	params[0] = config.worker;
	params[1] = ids;
	params[2] = reason;
	res = PQexecParams(conns[0], "SELECT agentmarket_private.release_jobs($1, $2::bigint[], $3)",
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
	if (conns[0] == NULL)
		return;
	res = PQexec(conns[0], "SELECT COALESCE((SELECT pg_catalog.date_part('epoch', waiting) "
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
	rc = queue_check_on(conns[c], res, PGRES_TUPLES_OK, "exchange_jobs");
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
static void
queue_pending_lost(void)
{
	int			c;

	for (c = 0; c < MAX_CONNS; c++)
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

	for (c = 0; c < MAX_CONNS; c++)
	{
		if (conns[c] == NULL)
			continue;
		if (PQconsumeInput(conns[c]) == 0)
		{
			queue_went_down(pending[c] ? "exchange_jobs" : "listen", PQerrorMessage(conns[c]));
			return 0;
		}
		while ((n = PQnotifies(conns[c])) != NULL)
		{
			notifications++;
			PQfreemem(n);
		}
		/* A callback may lose the connections (then every conns[] is NULL). */
		while (conns[c] != NULL && pending[c] && !PQisBusy(conns[c]))
		{
			PGresult   *r = PQgetResult(conns[c]);

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
	while (conns[0] != NULL && queue_busy())
	{
		struct pollfd p[MAX_CONNS];
		int			np = 0;
		int			c;

		for (c = 0; c < MAX_CONNS; c++)
			if (conns[c] != NULL && pending[c] && PQisBusy(conns[c]))
			{
				p[np].fd = PQsocket(conns[c]);
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
