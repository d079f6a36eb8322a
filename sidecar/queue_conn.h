/*-------------------------------------------------------------------------
 * queue_conn.h
 *	  The database connections (queue_conn.c), as queue.c's statements use
 *	  them.  Private to those two files.
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_QUEUE_CONN_H
#define AGENTMARKET_QUEUE_CONN_H

#include <libpq-fe.h>

#define QUEUE_MAX_CONNS 2

/* Open connections (NULL: closed); [0] LISTENs and carries the synchronous calls. */
extern PGconn *queue_conns[QUEUE_MAX_CONNS];

/* The database went away: close every connection, log once, retry after the backoff. */
extern void queue_went_down(const char *what, const char *why);

/*
 * Handle a statement (on connection c, or the first) that did not return
 * expect: 0 when it did, -1 when the database is unreachable (now marked
 * down), -2 when it refused the statement (logged).
 */
extern int	queue_check_on(PGconn *c, PGresult *res, ExecStatusType expect, const char *what);
extern int	queue_check(PGresult *res, ExecStatusType expect, const char *what);

/* queue.c: the statements in flight are lost with the connections (their callbacks told). */
extern void queue_pending_lost(void);

#endif							/* AGENTMARKET_QUEUE_CONN_H */
