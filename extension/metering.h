/*-------------------------------------------------------------------------
 * metering.h
 *	  What the C parts of record_usage share: one parsed usage event, and
 *	  the parser that checks it (metering_events.c).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_METERING_H
#define AGENTMARKET_METERING_H

#include "postgres.h"

#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#define USAGE_MAX_EVENTS	2000
#define USAGE_MAX_KEY_CHARS	200
#define USAGE_MAX_SECONDS	86400
#define USAGE_MAX_TOKENS	1000000
/* How an open row's missing session is spelled in usage_pending_open. */
#define USAGE_NO_SESSION	"00000000-0000-0000-0000-000000000000"

/* One parsed event. */
typedef struct UsageEvent
{
	pg_uuid_t	instance_id;
	pg_uuid_t	session_id;
	bool		has_session;
	int32		compute_seconds;
	int32		input_tokens;
	int32		output_tokens;
	text	   *key;
	int			group;			/* index into the batch's groups */
	bool		first;			/* first event of the batch with its key */
	bool		recorded;		/* new: its key was not known before */
} UsageEvent;

/* An (instance, session) group of a batch; a hash key, and in uuid order the lock order. */
typedef struct UsageGroupKey
{
	pg_uuid_t	instance_id;
	pg_uuid_t	session_id;		/* all zero when there is no session */
} UsageGroupKey;

/* Is the group's session set (not the "no session" all-zero uuid)? */
static inline bool
usage_group_has_session(const UsageGroupKey *g)
{
	static const pg_uuid_t zero;

	return memcmp(&g->session_id, &zero, sizeof(zero)) != 0;
}

/*
 * The groups' open rows, found, locked and added to without statements
 * (metering_rows.c).  usage_open_rows_lock() returns NULL when that path does
 * not apply (the caller runs its statements); otherwise the caller ends it
 * with usage_open_rows_add().
 */
typedef struct UsageOpenRows UsageOpenRows;
extern UsageOpenRows *usage_open_rows_lock(const UsageGroupKey *groups, int ngroups, bool *open, Datum *ids,
										   int64 *secs, int64 *ins, int64 *outs, Datum *cost);
extern void usage_open_rows_add(UsageOpenRows *rows, const bool *add, const int32 *secs, const int32 *ins,
								const int32 *outs, const Datum *cost_add);

/* round(rate * seconds, 6): what a batch's seconds cost, as the statements compute it. */
extern Datum usage_batch_cost(Datum rate, int64 seconds);

/* The statements' bounds on the locked open rows: a row the batch would overflow is full instead. */
extern void usage_bound_locked(int ngroups, bool *open, bool *full,
							   int64 *cur_secs, int64 *cur_ins, int64 *cur_outs, Datum *cur_cost,
							   int64 *secs, int64 *ins, int64 *outs, Datum *rates);

/* Raise 22023 "usage event N is malformed: problem" for index i (0-based). */
extern void usage_malformed(int i, const char *problem) pg_attribute_noreturn();

/* Parse and check the event at index i into ev (22023 when malformed). */
extern void usage_parse_events(Jsonb *events, int n, UsageEvent *ev);

/*
 * Hash entry: an idempotency key of the batch (the event's own text, hashed
 * and compared by its bytes: usage_key_hash_create) and its first event.
 */
typedef struct UsageKeyEntry
{
	text	   *key;
	int			event;
} UsageKeyEntry;
extern HTAB *usage_key_hash_create(int n);
/*
 * Record a batch's keys (metering_keys.c): as COPY writes rows when it can,
 * else by the saved INSERT; ev[i].recorded for the events whose key was new.
 */
extern void usage_record_keys(UsageEvent *ev, int n, int nfirst, Datum *group_ids, HTAB *key_hash);

/* Saved statements and their array arguments (metering.c). */
extern SPIPlanPtr usage_prepare(const char *sql, int nargs, Oid *argtypes);
extern Datum usage_array(Datum *values, bool *nulls, int n, Oid type);

/* agentmarket.usage_direct_path: off sends every batch's keys and open rows to the statements. */
extern bool usage_direct_path;

#endif							/* AGENTMARKET_METERING_H */
