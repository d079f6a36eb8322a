/*-------------------------------------------------------------------------
 * queue.c
 *	  The database side: claim a batch (one statement, committed at once, so
 *	  no transaction is open while calls are in flight), and report each
 *	  outcome afterwards in its own transaction through finish_job/fail_job.
 *	  LISTEN agentmarket_jobs lets enqueues wake the sidecar.
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar.h"

/* Log a database error with the statement's purpose. */
static void
queue_log_error(const char *what, PGconn *conn, PGresult *res)
{
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
	char		clean[512];
	size_t		n;

	snprintf(clean, sizeof(clean), "%s", msg ? msg : "unknown error");
	n = strlen(clean);
	while (n > 0 && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
		clean[--n] = '\0';
	log_event("error", "database_error", json_pack("{ssss}", "during", what, "error", clean));
}

/* Run a command that returns nothing; 0 on success. */
static int
queue_command(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	int			ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		queue_log_error(sql, conn, res);
	PQclear(res);
	return ok ? 0 : -1;
}

/* Connect (AGENTMARKET_DSN, else libpq's PG* variables) and LISTEN. */
PGconn *
queue_connect(void)
{
	PGconn	   *conn = PQconnectdb(config.dsn ? config.dsn : "");

	if (PQstatus(conn) != CONNECTION_OK)
	{
		queue_log_error("connect", conn, NULL);
		PQfinish(conn);
		return NULL;
	}
	if (queue_command(conn, "SET application_name = 'agentmarket-sidecar'") != 0 ||
		queue_command(conn, "LISTEN agentmarket_jobs") != 0)
	{
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* Make sure the connection is usable, reconnecting once if it broke. */
static int
queue_ensure(PGconn *conn)
{
	if (PQstatus(conn) == CONNECTION_OK)
		return 0;
	PQreset(conn);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		queue_log_error("reconnect", conn, NULL);
		return -1;
	}
	log_event("warn", "database_reconnected", NULL);
	if (queue_command(conn, "SET application_name = 'agentmarket-sidecar'") != 0 ||
		queue_command(conn, "LISTEN agentmarket_jobs") != 0)
		return -1;
	return 0;
}

/*
 * Claim up to max due jobs (leased to this worker); prepends them to *out.
 * Returns how many, or -1 on a database error.
 */
int
queue_claim(PGconn *conn, int max, job **out)
{
	char		max_text[16];
	char		lease_text[16];
	const char *params[3];
	PGresult   *res;
	int			n;
	int			i;

	if (queue_ensure(conn) != 0)
		return -1;
	snprintf(max_text, sizeof(max_text), "%d", max);
	snprintf(lease_text, sizeof(lease_text), "%d", config.lease_seconds);
	params[0] = config.worker;
	params[1] = max_text;
	params[2] = lease_text;
	res = PQexecParams(conn,
					   "SELECT job_id, kind, provider, attempt, idempotency_key, request::text "
					   "FROM agentmarket_private.claim_jobs($1, $2::integer, "
					   "pg_catalog.make_interval(secs => $3::integer))",
					   3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		queue_log_error("claim_jobs", conn, res);
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++)
	{
		job		   *j = job_from_claim(res, i);

		if (j == NULL)
			continue;			/* out of memory: its lease expires, it runs again */
		j->next = *out;
		*out = j;
	}
	PQclear(res);
	return n;
}

/* fail_job for j with message msg, and log what became of the job. */
static void
queue_fail(PGconn *conn, job *j, const char *msg, int permanent, int retry_after_s)
{
	char		id_text[32];
	char		retry_text[16];
	const char *params[5];
	PGresult   *res;

	snprintf(id_text, sizeof(id_text), "%lld", j->id);
	snprintf(retry_text, sizeof(retry_text), "%d", retry_after_s);
	params[0] = id_text;
	params[1] = msg;
	params[2] = retry_after_s >= 0 ? retry_text : NULL;
	params[3] = permanent ? "true" : "false";
	params[4] = config.worker;
	res = PQexecParams(conn,
					   "SELECT agentmarket_private.fail_job($1::bigint, $2, "
					   "pg_catalog.make_interval(secs => $3::integer), $4::boolean, $5)",
					   5, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		queue_log_error("fail_job", conn, res);
	else if (PQgetisnull(res, 0, 0))
		log_event("warn", "lease_lost", json_pack("{sIss}", "job", (json_int_t) j->id, "kind", j->kind));
	else
		log_event(permanent || strcmp(PQgetvalue(res, 0, 0), "dead") == 0 ? "error" : "warn",
				  strcmp(PQgetvalue(res, 0, 0), "dead") == 0 ? "job_dead" : "job_retry",
				  json_pack("{sIsssisssi}", "job", (json_int_t) j->id, "kind", j->kind,
							"attempt", j->attempt, "error", msg,
							"retry_after", retry_after_s));
	PQclear(res);
}

/*
 * Hand j's outcome to the database in a new transaction.  A success whose
 * handler raises (the database refuses the result) becomes a retryable
 * failure.  Returns 0, or -1 when the database could not be reached (the
 * job's lease then expires and it runs again).
 */
int
queue_report(PGconn *conn, job *j)
{
	char		id_text[32];
	const char *params[3];
	PGresult   *res;
	char	   *result_text;
	int			ms = (int) ((now_seconds() - j->started_at) * 1000);

	if (queue_ensure(conn) != 0)
		return -1;
	if (j->state == JOB_FAILED)
	{
		queue_fail(conn, j, j->error ? j->error : "unknown error", j->permanent, j->retry_after_s);
		return 0;
	}
	snprintf(id_text, sizeof(id_text), "%lld", j->id);
	result_text = json_dumps(j->result, JSON_COMPACT);
	params[0] = id_text;
	params[1] = result_text;
	params[2] = config.worker;
	res = PQexecParams(conn,
					   "SELECT agentmarket_private.finish_job($1::bigint, $2::jsonb, $3)",
					   3, NULL, params, NULL, NULL, 0);
	free(result_text);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		char		msg[600];
		const char *e = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		snprintf(msg, sizeof(msg), "database refused the result: %s", e ? e : "unknown error");
		PQclear(res);
		if (PQstatus(conn) != CONNECTION_OK)
			return -1;
		queue_fail(conn, j, msg, 0, -1);
		return 0;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		log_event("info", "job_succeeded",
				  json_pack("{sIsssisi}", "job", (json_int_t) j->id, "kind", j->kind,
							"attempt", j->attempt, "ms", ms));
	else
		log_event("warn", "lease_lost", json_pack("{sIss}", "job", (json_int_t) j->id, "kind", j->kind));
	PQclear(res);
	return 0;
}

/* Log one reported outcome. */
static void
queue_log_outcome(job *j, const char *outcome)
{
	int			ms = (int) ((now_seconds() - j->started_at) * 1000);

	if (strcmp(outcome, "succeeded") == 0)
		log_event("info", "job_succeeded",
				  json_pack("{sIsssisi}", "job", (json_int_t) j->id, "kind", j->kind,
							"attempt", j->attempt, "ms", ms));
	else if (strcmp(outcome, "lease_lost") == 0)
		log_event("warn", "lease_lost", json_pack("{sIss}", "job", (json_int_t) j->id, "kind", j->kind));
	else
		log_event(strcmp(outcome, "dead") == 0 ? "error" : "warn",
				  strcmp(outcome, "dead") == 0 ? "job_dead" : "job_retry",
				  json_pack("{sIsssisssi}", "job", (json_int_t) j->id, "kind", j->kind,
							"attempt", j->attempt,
							"error", j->error ? j->error : (j->state == JOB_SUCCEEDED ? "database refused the result" : ""),
							"retry_after", j->retry_after_s));
}

/*
 * Report every ended job of the list in one round trip and one new
 * transaction (report_jobs applies each in its own subtransaction).  Falls
 * back to one report per job when that fails.  Returns 0, or -1 when the
 * database could not be reached (the leases then expire; the jobs run again).
 */
int
queue_report_all(PGconn *conn, job *list)
{
	json_t	   *outcomes = json_array();
	job		   *j;
	const char *params[2];
	char	   *text;
	PGresult   *res;
	int			i;

	if (queue_ensure(conn) != 0)
	{
		json_decref(outcomes);
		return -1;
	}
	for (j = list; j != NULL; j = j->next)
	{
		json_t	   *o;

		if (j->state == JOB_SUCCEEDED)
			o = json_pack("{sIsbsO}", "id", (json_int_t) j->id, "ok", 1, "result", j->result);
		else
		{
			o = json_pack("{sIsbsssb}", "id", (json_int_t) j->id, "ok", 0,
						  "error", j->error ? j->error : "unknown error", "permanent", j->permanent);
			json_object_set_new(o, "retry_after", j->retry_after_s >= 0 ? json_integer(j->retry_after_s) : json_null());
		}
		json_array_append_new(outcomes, o);
	}
	text = json_dumps(outcomes, JSON_COMPACT);
	json_decref(outcomes);
	params[0] = config.worker;
	params[1] = text;
	res = PQexecParams(conn, "SELECT job_id, outcome FROM agentmarket_private.report_jobs($1, $2::jsonb)",
					   2, NULL, params, NULL, NULL, 0);
	free(text);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		queue_log_error("report_jobs", conn, res);
		PQclear(res);
		if (PQstatus(conn) != CONNECTION_OK)
			return -1;
		for (j = list; j != NULL; j = j->next)
			queue_report(conn, j);
		return 0;
	}
	for (i = 0; i < PQntuples(res); i++)
	{
		long long	id = strtoll(PQgetvalue(res, i, 0), NULL, 10);

		for (j = list; j != NULL; j = j->next)
			if (j->id == id)
			{
				queue_log_outcome(j, PQgetvalue(res, i, 1));
				break;
			}
	}
	PQclear(res);
	return 0;
}

/* Consume NOTIFY messages; returns how many arrived. */
int
queue_drain_notifications(PGconn *conn)
{
	PGnotify   *n;
	int			count = 0;

	if (PQconsumeInput(conn) == 0)
		return 0;
	while ((n = PQnotifies(conn)) != NULL)
	{
		count++;
		PQfreemem(n);
	}
	return count;
}
