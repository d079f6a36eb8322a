/*-------------------------------------------------------------------------
 * metering.c
 *	  agentmarket.record_usage(events jsonb): the platform's usage reports,
 *	  recorded in batches.
 *
 *	  One pass over the JSON array validates every event (a bad one raises
 *	  22023 naming its 1-based position, before anything is written) and
 *	  folds the events per (instance, session) in memory.  Then a few saved
 *	  statements do the writing, each over arrays, once per batch:
 *
 *	    1. look up every (instance, session) group once: does the instance
 *	       exist, does the session belong to it, whose is it, and what does a
 *	       second of its machine cost now;
 *	    2. lock each group's open usage_events row (one of earlier batches
 *	       that the rollup has not folded yet: its usage_pending row has the
 *	       instance), in uuid order;
 *	    3. insert the batch's idempotency keys into usage_keys, in byte
 *	       order, with a plain INSERT (ON CONFLICT DO NOTHING only when a key
 *	       is known already): the keys inserted are the new events;
 *	    4. add each group's new events to its open row (an UPDATE that
 *	       changes no key and no indexed column: no foreign-key check, no
 *	       index entry), or insert one new usage_events row for it, which
 *	       stays open for later batches until the rollup folds it.
 *
 *	  So the foreign-keyed, indexed usage_events takes at most one row per
 *	  instance and session per rollup, and each event costs one narrow key
 *	  row with one btree entry.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "agentmarket.h"
#include "metering.h"

PG_FUNCTION_INFO_V1(record_usage);

typedef struct UsageGroupEntry
{
	UsageGroupKey key;
	int			index;
} UsageGroupEntry;

static SPIPlanPtr groups_plan = NULL;
static SPIPlanPtr rows_plan = NULL;
static SPIPlanPtr open_plan = NULL;
static SPIPlanPtr update_plan = NULL;
static SPIPlanPtr close_plan = NULL;
static SPIPlanPtr closed_pending_plan = NULL;

/*
 * Prepare a statement once and keep it for the life of the backend, with
 * one generic plan: the plan cache would otherwise plan every call again
 * whenever a plan for the batch's actual arrays looks cheaper (it did, for
 * the groups' look-up), and a plan for 10 array elements (index probes) is
 * the one that stays right however large the tables grow.
 */
SPIPlanPtr
usage_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not prepare a metering statement: %s",
						SPI_result_code_string(SPI_result))));
	if (SPI_keepplan(plan) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not keep a metering statement")));
	return plan;
}

/* Prepare the statements record_usage uses (first call in a backend). */
static void
usage_prepare_plans(void)
{
	Oid			two_uuids[2] = {UUIDARRAYOID, UUIDARRAYOID};
	Oid			rows_args[8] = {UUIDARRAYOID, UUIDARRAYOID, UUIDARRAYOID, UUIDARRAYOID,
	INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, NUMERICARRAYOID};
	Oid			open_args[6] = {UUIDARRAYOID, UUIDARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
	NUMERICARRAYOID};
	Oid			update_args[5] = {UUIDARRAYOID, INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, NUMERICARRAYOID};
	Oid			one_uuids[1] = {UUIDARRAYOID};

	if (groups_plan == NULL)
		groups_plan = usage_prepare(
			"SELECT g.n::integer, i.id IS NOT NULL,"
			"       g.session_id IS NULL OR s.instance_id OPERATOR(pg_catalog.=) g.instance_id,"
			"       i.user_id,"
			"       CASE WHEN i.status IN ('suspended', 'stopped', 'destroyed') THEN 0"
			"            ELSE COALESCE(m.usd_per_second, l.usd_per_second) END,"
			"       a.fly_machine_size, a.fly_machine_memory_mb"
			"  FROM unnest($1, $2) WITH ORDINALITY g(instance_id, session_id, n)"
			"  LEFT JOIN agentmarket.agent_instances i ON i.id OPERATOR(pg_catalog.=) g.instance_id"
			"  LEFT JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) i.agent_id"
			"  LEFT JOIN agentmarket.sessions s ON s.id OPERATOR(pg_catalog.=) g.session_id"
			"  LEFT JOIN agentmarket_private.machine_prices m"
			"    ON m.machine_size OPERATOR(pg_catalog.=) a.fly_machine_size"
			"   AND m.memory_mb OPERATOR(pg_catalog.=) a.fly_machine_memory_mb"
			"  LEFT JOIN agentmarket_private.machine_price_list l"
			"    ON l.machine_size OPERATOR(pg_catalog.=) a.fly_machine_size"
			"   AND l.memory_mb OPERATOR(pg_catalog.=) a.fly_machine_memory_mb",
			2, two_uuids);
	if (rows_plan == NULL)
		rows_plan = usage_prepare(
			"WITH folded AS ("
			"  INSERT INTO agentmarket.usage_events AS e (id, user_id, instance_id, session_id,"
			"         compute_seconds, input_tokens, output_tokens, cost_usd)"
			"  SELECT r.id, r.user_id, r.instance_id, r.session_id, r.secs, r.ins, r.outs,"
			"         pg_catalog.round(r.rate OPERATOR(pg_catalog.*) r.secs, 6)"
			"    FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) r(id, user_id, instance_id, session_id, secs, ins, outs, rate)"
			"  RETURNING e.id, e.instance_id, e.session_id)"
			" INSERT INTO agentmarket_private.usage_pending AS p (usage_event_id, session_id, instance_id)"
			" SELECT folded.id, folded.session_id, folded.instance_id FROM folded"
			"  ORDER BY folded.instance_id, folded.session_id"
			" ON CONFLICT DO NOTHING RETURNING p.usage_event_id",
			8, rows_args);
	if (open_plan == NULL)
		open_plan = usage_prepare(
			"SELECT g.n::integer, p.usage_event_id,"
			"       e.compute_seconds::bigint OPERATOR(pg_catalog.+) g.secs OPERATOR(pg_catalog.<=) 2147483647"
			"   AND e.input_tokens::bigint OPERATOR(pg_catalog.+) g.ins OPERATOR(pg_catalog.<=) 2147483647"
			"   AND e.output_tokens::bigint OPERATOR(pg_catalog.+) g.outs OPERATOR(pg_catalog.<=) 2147483647"
			"   AND e.cost_usd OPERATOR(pg_catalog.+) pg_catalog.round(g.rate OPERATOR(pg_catalog.*) g.secs, 6)"
			"       OPERATOR(pg_catalog.<) 10000"
			"  FROM unnest($1, $2, $3, $4, $5, $6) WITH ORDINALITY g(instance_id, session_id, secs, ins, outs, rate, n)"
			"  JOIN agentmarket_private.usage_pending p"
			"    ON p.instance_id OPERATOR(pg_catalog.=) g.instance_id"
			"   AND COALESCE(p.session_id, '" USAGE_NO_SESSION "'::pg_catalog.uuid)"
			"       OPERATOR(pg_catalog.=) COALESCE(g.session_id, '" USAGE_NO_SESSION "'::pg_catalog.uuid)"
			"  JOIN agentmarket.usage_events e ON e.id OPERATOR(pg_catalog.=) p.usage_event_id"
			" ORDER BY g.n"
			"   FOR UPDATE OF p",
			6, open_args);
	if (update_plan == NULL)
		update_plan = usage_prepare(
			"UPDATE agentmarket.usage_events e"
			"   SET compute_seconds = e.compute_seconds OPERATOR(pg_catalog.+) r.secs,"
			"       input_tokens = e.input_tokens OPERATOR(pg_catalog.+) r.ins,"
			"       output_tokens = e.output_tokens OPERATOR(pg_catalog.+) r.outs,"
			"       cost_usd = e.cost_usd OPERATOR(pg_catalog.+) pg_catalog.round(r.rate OPERATOR(pg_catalog.*) r.secs, 6)"
			"  FROM unnest($1, $2, $3, $4, $5) r(id, secs, ins, outs, rate)"
			" WHERE e.id OPERATOR(pg_catalog.=) r.id",
			5, update_args);
	if (close_plan == NULL)
		close_plan = usage_prepare(
			"UPDATE agentmarket_private.usage_pending SET instance_id = NULL"
			" WHERE usage_event_id OPERATOR(pg_catalog.=) ANY ($1)",
			1, one_uuids);
	if (closed_pending_plan == NULL)
		closed_pending_plan = usage_prepare(
			"INSERT INTO agentmarket_private.usage_pending (usage_event_id, session_id)"
			" SELECT * FROM unnest($1, $2)",
			2, two_uuids);
}

/* A key's hash and equality for the batch's key table: by its bytes. */
static uint32
usage_key_hash(const void *key, Size keysize)
{
	text	   *t = *(text *const *) key;

	return hash_bytes((const unsigned char *) VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

static int
usage_key_match(const void *a, const void *b, Size keysize)
{
	text	   *ta = *(text *const *) a;
	text	   *tb = *(text *const *) b;

	return VARSIZE_ANY_EXHDR(ta) == VARSIZE_ANY_EXHDR(tb)
		&& memcmp(VARDATA_ANY(ta), VARDATA_ANY(tb), VARSIZE_ANY_EXHDR(ta)) == 0 ? 0 : 1;
}

/*
 * A table of n of the batch's keys, each entry pointing at its event's
 * text: nothing copied (an entry holding the key itself must be as large as
 * the longest key allowed, 800 bytes, which a thousand times over cost more
 * than the keys' whole insert).
 */
HTAB *
usage_key_hash_create(int n)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(text *);
	ctl.entrysize = sizeof(UsageKeyEntry);
	ctl.hash = usage_key_hash;
	ctl.match = usage_key_match;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create("usage keys", n, &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* A one-dimensional array of n datums of a by-reference or by-value type. */
Datum
usage_array(Datum *values, bool *nulls, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, type, typlen, typbyval, typalign));
}

static char *
usage_uuid_string(pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

/* A one-dimensional bigint array. */
static Datum
usage_int8_array(int64 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return usage_array(d, NULL, n, INT8OID);
}

/*
 * Write the sums of each group's new (recorded) events: added to the group's
 * open row, or into a new usage_events row that opens for later batches
 * (queued in usage_pending with its instance).  A group whose open row is
 * full closes it first (it stays queued, and takes nothing more).  A new
 * row that finds another open one for its group (a concurrent batch opened
 * it first) is queued closed.
 */
static void
usage_write_rows(UsageEvent *ev, int n, UsageGroupKey *groups, int ngroups, Datum *group_ids,
				 Datum *user_ids, Datum *rates, bool *open_row, bool *close_row, Datum *full_ids,
				 UsageOpenRows *direct)
{
	int64	   *secs = palloc0(sizeof(int64) * ngroups);
	int64	   *ins = palloc0(sizeof(int64) * ngroups);
	int64	   *outs = palloc0(sizeof(int64) * ngroups);
	bool	   *used = palloc0(sizeof(bool) * ngroups);
	Datum	   *cols[8];
	bool	   *session_nulls = palloc(sizeof(bool) * ngroups);
	int			nnew = 0,
				nadd = 0,
				nclose = 0,
				i,
				c;

	for (i = 0; i < n; i++)
		if (ev[i].recorded)
		{
			secs[ev[i].group] += ev[i].compute_seconds;
			ins[ev[i].group] += ev[i].input_tokens;
			outs[ev[i].group] += ev[i].output_tokens;
			used[ev[i].group] = true;
		}
	for (c = 0; c < 8; c++)
		cols[c] = palloc(sizeof(Datum) * ngroups);

	/* Open rows that take this batch's sums: locked already, or by the statement. */
	if (direct != NULL)
	{
		bool	   *add = palloc(sizeof(bool) * ngroups);
		int32	   *add_secs = palloc(sizeof(int32) * ngroups);
		int32	   *add_ins = palloc(sizeof(int32) * ngroups);
		int32	   *add_outs = palloc(sizeof(int32) * ngroups);
		Datum	   *add_cost = palloc(sizeof(Datum) * ngroups);

		for (i = 0; i < ngroups; i++)
		{
			add[i] = used[i] && open_row[i];
			/* At most 2,000 events of at most 1,000,000 each: fits int4. */
			add_secs[i] = (int32) secs[i];
			add_ins[i] = (int32) ins[i];
			add_outs[i] = (int32) outs[i];
			add_cost[i] = add[i] ? usage_batch_cost(rates[i], secs[i]) : (Datum) 0;
		}
		usage_open_rows_add(direct, add, add_secs, add_ins, add_outs, add_cost);
	}
	for (i = 0; i < ngroups && direct == NULL; i++)
	{
		if (!used[i] || !open_row[i])
			continue;
		cols[0][nadd] = group_ids[i];
		/* At most 2,000 events of at most 1,000,000 each: fits int4. */
		cols[4][nadd] = Int32GetDatum((int32) secs[i]);
		cols[5][nadd] = Int32GetDatum((int32) ins[i]);
		cols[6][nadd] = Int32GetDatum((int32) outs[i]);
		cols[7][nadd] = rates[i];
		nadd++;
	}
	if (nadd > 0)
	{
		Datum		args[5];

		args[0] = usage_array(cols[0], NULL, nadd, UUIDOID);
		args[1] = usage_array(cols[4], NULL, nadd, INT4OID);
		args[2] = usage_array(cols[5], NULL, nadd, INT4OID);
		args[3] = usage_array(cols[6], NULL, nadd, INT4OID);
		args[4] = usage_array(cols[7], NULL, nadd, NUMERICOID);
		if (SPI_execute_plan(update_plan, args, NULL, false, 0) != SPI_OK_UPDATE || SPI_processed != (uint64) nadd)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not add to the open usage rows")));
	}

	/* Full open rows of groups that open a new one: closed. */
	for (i = 0; i < ngroups; i++)
		if (used[i] && close_row[i])
			cols[0][nclose++] = full_ids[i];
	if (nclose > 0)
	{
		Datum		args[1];

		args[0] = usage_array(cols[0], NULL, nclose, UUIDOID);
		if (SPI_execute_plan(close_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not close the full usage rows")));
	}

	/* New rows. */
	for (i = 0; i < ngroups; i++)
	{
		if (!used[i] || open_row[i])
			continue;
		cols[0][nnew] = group_ids[i];
		cols[1][nnew] = user_ids[i];
		cols[2][nnew] = UUIDPGetDatum(&groups[i].instance_id);
		cols[3][nnew] = UUIDPGetDatum(&groups[i].session_id);
		session_nulls[nnew] = !usage_group_has_session(&groups[i]);
		cols[4][nnew] = Int32GetDatum((int32) secs[i]);
		cols[5][nnew] = Int32GetDatum((int32) ins[i]);
		cols[6][nnew] = Int32GetDatum((int32) outs[i]);
		cols[7][nnew] = rates[i];
		nnew++;
	}
	if (nnew > 0)
	{
		Datum		args[8];
		int			nclosed = 0;

		args[0] = usage_array(cols[0], NULL, nnew, UUIDOID);
		args[1] = usage_array(cols[1], NULL, nnew, UUIDOID);
		args[2] = usage_array(cols[2], NULL, nnew, UUIDOID);
		args[3] = usage_array(cols[3], session_nulls, nnew, UUIDOID);
		args[4] = usage_array(cols[4], NULL, nnew, INT4OID);
		args[5] = usage_array(cols[5], NULL, nnew, INT4OID);
		args[6] = usage_array(cols[6], NULL, nnew, INT4OID);
		args[7] = usage_array(cols[7], NULL, nnew, NUMERICOID);
		if (SPI_execute_plan(rows_plan, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not record the usage rows")));
		if (SPI_processed < (uint64) nnew)
		{
			/* Rows queued open, in the order given: the others go closed. */
			bool	   *queued = palloc0(sizeof(bool) * nnew);
			uint64		r;
			int			k;

			for (r = 0; r < SPI_processed; r++)
			{
				bool		id_null;
				Datum		id = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &id_null);

				for (k = 0; k < nnew; k++)
					if (!queued[k] && memcmp(DatumGetUUIDP(id), DatumGetUUIDP(cols[0][k]), UUID_LEN) == 0)
					{
						queued[k] = true;
						break;
					}
			}
			for (k = 0; k < nnew; k++)
				if (!queued[k])
				{
					cols[0][nclosed] = cols[0][k];
					cols[3][nclosed] = cols[3][k];
					session_nulls[nclosed] = session_nulls[k];
					nclosed++;
				}
			args[0] = usage_array(cols[0], NULL, nclosed, UUIDOID);
			args[1] = usage_array(cols[3], session_nulls, nclosed, UUIDOID);
			if (SPI_execute_plan(closed_pending_plan, args, NULL, false, 0) != SPI_OK_INSERT)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not queue the usage rows")));
		}
	}
}

/*
 * Each group's open row, locked by the statement: open[g] with its id in
 * ids[g] when it can take the batch's sums (every event counted), else
 * full[g] with the id of the row to close.
 */
static void
usage_lock_by_statement(int ngroups, Datum *instance_ids, Datum *session_ids, bool *no_session,
						int64 *secs, int64 *ins, int64 *outs, Datum *rates,
						bool *open, bool *full, Datum *ids)
{
	Datum		args[6];
	uint64		r;

	args[0] = usage_array(instance_ids, NULL, ngroups, UUIDOID);
	args[1] = usage_array(session_ids, no_session, ngroups, UUIDOID);
	args[2] = usage_int8_array(secs, ngroups);
	args[3] = usage_int8_array(ins, ngroups);
	args[4] = usage_int8_array(outs, ngroups);
	args[5] = usage_array(rates, NULL, ngroups, NUMERICOID);
	if (SPI_execute_plan(open_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not look up the usage events' open rows")));
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			g = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull)) - 1;

		ids[g] = datumCopy(SPI_getbinval(tup, desc, 2, &isnull), false, UUID_LEN);
		if (DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)))
			open[g] = true;
		else
			full[g] = true;
	}
}

/* memcmp order of two groups: uuid order, instance first (qsort). */
static int
usage_group_order(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(UsageGroupKey));
}

/* SQL function: agentmarket.record_usage(events jsonb) */
Datum
record_usage(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *events;
	int			n,
				i,
				ngroups = 0,
				nfirst = 0;
	UsageEvent *ev;
	UsageGroupKey *groups;
	UsageGroupEntry **group_of;	/* per event */
	Datum	   *instance_ids;	/* per group */
	Datum	   *session_ids;
	bool	   *no_session;
	Datum	   *group_ids;		/* the row each group's new events go into */
	Datum	   *user_ids;
	Datum	   *rates;
	bool	   *open_row;		/* group_ids[g] is an open row it adds to */
	bool	   *close_row;		/* the open row is full: close it, open another */
	Datum	   *full_ids;
	UsageOpenRows *direct;		/* the open rows locked without statements, or NULL */
	int64	   *cur_secs,
			   *cur_ins,
			   *cur_outs;
	Datum	   *cur_cost;
	HASHCTL		ctl;
	HTAB	   *group_hash,
			   *key_hash;
	bool		isnull;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("usage events must be a JSON array")));
	events = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_ARRAY(events) || JB_ROOT_IS_SCALAR(events))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("usage events must be a JSON array")));
	n = JB_ROOT_COUNT(events);
	if (n > USAGE_MAX_EVENTS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at most %d usage events per call", USAGE_MAX_EVENTS),
				 errdetail("Got %d.", n),
				 errhint("Split the batch.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not connect to SPI")));
	usage_prepare_plans();
	if (!am_caller_is_service())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only the platform records usage")));
	if (n == 0)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}

	/* Parse, check, and find each key's first event. */
	ev = palloc(sizeof(UsageEvent) * n);
	key_hash = usage_key_hash_create(n);
	usage_parse_events(events, n, ev);
	for (i = 0; i < n; i++)
	{
		UsageKeyEntry *ke;
		bool		found;

		ke = hash_search(key_hash, &ev[i].key, HASH_ENTER, &found);
		if (!found)
		{
			ke->event = i;
			ev[i].first = true;
			nfirst++;
		}
	}

	/*
	 * The groups, in uuid order: every batch locks open rows and creates them
	 * in this one order, so two batches never wait for each other in a
	 * circle.
	 */
	groups = palloc(sizeof(UsageGroupKey) * n);
	group_of = palloc(sizeof(UsageGroupEntry *) * n);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(UsageGroupKey);
	ctl.entrysize = sizeof(UsageGroupEntry);
	ctl.hcxt = CurrentMemoryContext;
	group_hash = hash_create("usage groups", n, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (i = 0; i < n; i++)
	{
		UsageGroupKey gk;
		bool		found;

		memset(&gk, 0, sizeof(gk));
		gk.instance_id = ev[i].instance_id;
		if (ev[i].has_session)
			gk.session_id = ev[i].session_id;
		group_of[i] = hash_search(group_hash, &gk, HASH_ENTER, &found);
		if (!found)
			groups[ngroups++] = gk;
	}
	/* Only the distinct groups are sorted; each entry then learns its place. */
	qsort(groups, ngroups, sizeof(UsageGroupKey), usage_group_order);
	for (i = 0; i < ngroups; i++)
		((UsageGroupEntry *) hash_search(group_hash, &groups[i], HASH_FIND, NULL))->index = i;
	for (i = 0; i < n; i++)
		ev[i].group = group_of[i]->index;
	instance_ids = palloc(sizeof(Datum) * ngroups);
	session_ids = palloc(sizeof(Datum) * ngroups);
	no_session = palloc(sizeof(bool) * ngroups);
	group_ids = palloc(sizeof(Datum) * ngroups);
	user_ids = palloc(sizeof(Datum) * ngroups);
	rates = palloc(sizeof(Datum) * ngroups);
	open_row = palloc0(sizeof(bool) * ngroups);
	close_row = palloc0(sizeof(bool) * ngroups);
	full_ids = palloc(sizeof(Datum) * ngroups);
	cur_secs = palloc(sizeof(int64) * ngroups);
	cur_ins = palloc(sizeof(int64) * ngroups);
	cur_outs = palloc(sizeof(int64) * ngroups);
	cur_cost = palloc(sizeof(Datum) * ngroups);
	for (i = 0; i < ngroups; i++)
	{
		instance_ids[i] = UUIDPGetDatum(&groups[i].instance_id);
		session_ids[i] = UUIDPGetDatum(&groups[i].session_id);
		no_session[i] = !usage_group_has_session(&groups[i]);
	}

	/* 1. Every group: instance and session exist and match; who and what rate. */
	{
		Datum		args[2];
		int			first_bad = n;
		char	   *bad_text = NULL;

		args[0] = usage_array(instance_ids, NULL, ngroups, UUIDOID);
		args[1] = usage_array(session_ids, no_session, ngroups, UUIDOID);
		if (SPI_execute_plan(groups_plan, args, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != (uint64) ngroups)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not look up the usage events' instances")));
		for (i = 0; i < ngroups; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			int			g = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull)) - 1;
			bool		instance_ok = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
			bool		session_ok;
			Datum		d;
			int			j;

			d = SPI_getbinval(tup, desc, 3, &isnull);
			session_ok = !isnull && DatumGetBool(d);
			if (instance_ok && session_ok)
			{
				user_ids[g] = SPI_getbinval(tup, desc, 4, &isnull);
				rates[g] = SPI_getbinval(tup, desc, 5, &isnull);
				if (!isnull)
					continue;
			}
			for (j = 0; j < n && ev[j].group != g; j++);
			if (j >= first_bad)
				continue;
			first_bad = j;
			if (!instance_ok)
				bad_text = psprintf("instance %s not found", usage_uuid_string(&groups[g].instance_id));
			else if (!session_ok)
				bad_text = psprintf("session %s is not a session of instance %s",
									usage_uuid_string(&groups[g].session_id),
									usage_uuid_string(&groups[g].instance_id));
			else
				bad_text = psprintf("no price for machine %s with %s MB",
									SPI_getvalue(tup, desc, 6), SPI_getvalue(tup, desc, 7));
		}
		if (first_bad < n)
			usage_malformed(first_bad, bad_text);
	}

	/*
	 * 2. Each group's open row (a usage_events row of earlier batches that
	 * the rollup has not folded yet), locked: the rollup skips it until this
	 * transaction ends.  A group without one, or whose row could not take
	 * this batch's amounts, gets a new row.
	 */
	{
		int64	   *secs = palloc0(sizeof(int64) * ngroups);
		int64	   *ins = palloc0(sizeof(int64) * ngroups);
		int64	   *outs = palloc0(sizeof(int64) * ngroups);

		/* Bounds: every event counted, duplicates too. */
		for (i = 0; i < n; i++)
		{
			secs[ev[i].group] += ev[i].compute_seconds;
			ins[ev[i].group] += ev[i].input_tokens;
			outs[ev[i].group] += ev[i].output_tokens;
		}
		direct = usage_open_rows_lock(groups, ngroups, open_row, full_ids, cur_secs, cur_ins, cur_outs, cur_cost);
		if (direct != NULL)
			usage_bound_locked(ngroups, open_row, close_row, cur_secs, cur_ins, cur_outs, cur_cost,
							   secs, ins, outs, rates);
		else
			usage_lock_by_statement(ngroups, instance_ids, session_ids, no_session, secs, ins, outs, rates,
									open_row, close_row, full_ids);
		for (i = 0; i < ngroups; i++)
			group_ids[i] = open_row[i] ? full_ids[i] : am_random_uuid();
	}

	/* 3. The keys, in byte order: those inserted are new. */
	usage_record_keys(ev, n, nfirst, group_ids, key_hash);

	/* 4. The new events' sums: added to open rows, or in new rows. */
	usage_write_rows(ev, n, groups, ngroups, group_ids, user_ids, rates, open_row, close_row, full_ids, direct);

	/* What happened to each event, in order, into the tuplestore at once. */
	{
		Datum		recorded = CStringGetTextDatum("recorded");
		Datum		duplicate = CStringGetTextDatum("duplicate");

		for (i = 0; i < n; i++)
		{
			Datum		values[4];
			bool		nulls[4] = {false, false, false, !ev[i].recorded};

			values[0] = Int32GetDatum(i + 1);
			values[1] = PointerGetDatum(ev[i].key);
			values[2] = ev[i].recorded ? recorded : duplicate;
			values[3] = ev[i].recorded ? group_ids[ev[i].group] : (Datum) 0;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	SPI_finish();
	PG_RETURN_NULL();
}
