/*-------------------------------------------------------------------------
 * queue_conn.c
 *	  The sidecar's database connections, lost and found again.
 *
 *	  queue_conns[0] LISTENs and carries the heartbeat, releases and the lag
 *	  probe; every connection carries exchanges, so that with two, one
 *	  commits (a WAL flush) while the other's statement runs, on another
 *	  core.  A connection may be lost at any time (a restart, a failover, a
 *	  pooler that lost its server).  Then all are closed, tried again with
 *	  backoff, and the loss and the recovery are each logged once.
 *	  libpq notices become JSON log lines.
 *-------------------------------------------------------------------------
 */
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

#define RECONNECT_FIRST_S 0.25
#define RECONNECT_MAX_S 5.0

PGconn	   *queue_conns[QUEUE_MAX_CONNS];
static double next_connect_at;
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

/*
 * The database went away: close, log once, try again after the backoff.  why
 * may be PQerrorMessage(queue_conns[0]), which PQfinish frees: it is copied first.
 */
void
queue_went_down(const char *what, const char *why)
{
	char		reason[sizeof(down_reason)];

	int			i;

	clean_message(reason, sizeof(reason), why);
	for (i = 0; i < QUEUE_MAX_CONNS; i++)
		if (queue_conns[i] != NULL)
		{
			PQfinish(queue_conns[i]);
			queue_conns[i] = NULL;
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
int
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
int
queue_check(PGresult *res, ExecStatusType expect, const char *what)
{
	return queue_check_on(queue_conns[0], res, expect, what);
}

/* Whether the connection is open and its last use succeeded. */
int
queue_up(void)
{
	return queue_conns[0] != NULL;
}

/* The connections' sockets for the wait loop (up to max); how many. */
int
queue_sockets(int *fds, int max)
{
	int			n = 0;
	int			i;

	for (i = 0; i < QUEUE_MAX_CONNS && n < max; i++)
		if (queue_conns[i] != NULL && PQsocket(queue_conns[i]) >= 0)
			fds[n++] = PQsocket(queue_conns[i]);
	return n;
}

/* Close the connections (at exit). */
void
queue_close(void)
{
	int			i;

	for (i = 0; i < QUEUE_MAX_CONNS; i++)
	{
		if (queue_conns[i] != NULL)
			PQfinish(queue_conns[i]);
		queue_conns[i] = NULL;
	}
}

/* A failed attempt: the next one waits twice as long, up to RECONNECT_MAX_S. */
static void
queue_back_off(void)
{
	reconnect_delay = reconnect_delay * 2 > RECONNECT_MAX_S ? RECONNECT_MAX_S : reconnect_delay * 2;
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

	if (queue_conns[0] != NULL)
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
	queue_conns[0] = PQconnectdbParams(keys, values, 1);
	if (queue_conns[0] == NULL || PQstatus(queue_conns[0]) != CONNECTION_OK)
	{
		char		why[512];

		clean_message(why, sizeof(why), queue_conns[0] ? PQerrorMessage(queue_conns[0]) : "out of memory");
		queue_went_down("connect", why);
		queue_back_off();
		return 0;
	}
	PQsetNoticeReceiver(queue_conns[0], queue_notice, NULL);
	res = PQexec(queue_conns[0], config.listen ? "LISTEN agentmarket_jobs" : "SELECT 1");
	if (queue_check(res, config.listen ? PGRES_COMMAND_OK : PGRES_TUPLES_OK,
					config.listen ? "listen" : "probe") != 0)
	{
		PQclear(res);
		queue_close();
		next_connect_at = now + reconnect_delay;
		queue_back_off();
		return 0;
	}
	PQclear(res);
	for (i = 1; i < config.database_connections; i++)
	{
		queue_conns[i] = PQconnectdbParams(keys, values, 1);
		if (queue_conns[i] == NULL || PQstatus(queue_conns[i]) != CONNECTION_OK)
		{
			char		why[512];

			clean_message(why, sizeof(why), queue_conns[i] ? PQerrorMessage(queue_conns[i]) : "out of memory");
			queue_went_down("connect", why);
			next_connect_at = now + reconnect_delay;
			queue_back_off();
			return 0;
		}
		PQsetNoticeReceiver(queue_conns[i], queue_notice, NULL);
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

