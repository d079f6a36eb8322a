/*-------------------------------------------------------------------------
 * metering.c
 *	  agentmarket.record_usage(events jsonb): the platform's usage reports,
 *	  recorded in batches.
 *
 *	  One pass over the JSON array validates every event (a bad one raises
 *	  22023 naming its 1-based position, before anything is written) and
 *	  folds the events per (instance, session) in memory.  Then three saved
 *	  statements do the writing, each over arrays:
 *
 *	    1. look up every (instance, session) group once: does the instance
 *	       exist, does the session belong to it, whose is it, and what does a
 *	       second of its machine cost now;
 *	    2. insert the batch's idempotency keys into usage_keys with ON
 *	       CONFLICT DO NOTHING: the keys it returns are the new events;
 *	    3. insert one usage_events row per group that has new events (their
 *	       sums, and cost = rate x seconds rounded to 6 decimals), and queue
 *	       it in usage_pending for the rollup.
 *
 *	  So the foreign-keyed, indexed usage_events takes one row per instance
 *	  and session per batch, and each event costs one narrow key row.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/uuid.h"

#include "agentmarket.h"

PG_FUNCTION_INFO_V1(record_usage);

#define USAGE_MAX_EVENTS	2000
#define USAGE_MAX_KEY_CHARS	200
#define USAGE_MAX_SECONDS	86400
#define USAGE_MAX_TOKENS	1000000

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

/* Hash entry: an (instance, session) pair of the batch. */
typedef struct UsageGroupKey
{
	pg_uuid_t	instance_id;
	pg_uuid_t	session_id;		/* all zero when there is no session */
} UsageGroupKey;

typedef struct UsageGroupEntry
{
	UsageGroupKey key;
	int			index;
} UsageGroupEntry;

/* Hash entry: an idempotency key of the batch and its first event. */
typedef struct UsageKeyEntry
{
	char		key[USAGE_MAX_KEY_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1];
	int			event;
} UsageKeyEntry;

static SPIPlanPtr groups_plan = NULL;
static SPIPlanPtr keys_plan = NULL;
static SPIPlanPtr keys_fast_plan = NULL;
static SPIPlanPtr rows_plan = NULL;
static SPIPlanPtr service_plan = NULL;

/* Prepare a statement once and keep it for the life of the backend. */
static SPIPlanPtr
usage_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

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
	Oid			keys_args[2] = {TEXTARRAYOID, UUIDARRAYOID};
	Oid			rows_args[8] = {UUIDARRAYOID, UUIDARRAYOID, UUIDARRAYOID, UUIDARRAYOID,
	INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, NUMERICARRAYOID};

	if (service_plan == NULL)
		service_plan = usage_prepare("SELECT agentmarket_private.caller_is_service()", 0, NULL);
	if (groups_plan == NULL)
		groups_plan = usage_prepare(
			"SELECT g.n::integer, i.id IS NOT NULL,"
			"       g.session_id IS NULL OR s.instance_id OPERATOR(pg_catalog.=) g.instance_id,"
			"       i.user_id,"
			"       CASE WHEN i.status IN ('suspended', 'stopped', 'destroyed') THEN 0"
			"            ELSE COALESCE((SELECT m.usd_per_second FROM agentmarket_private.machine_prices m"
			"                            WHERE m.machine_size OPERATOR(pg_catalog.=) a.fly_machine_size"
			"                              AND m.memory_mb OPERATOR(pg_catalog.=) a.fly_machine_memory_mb),"
			"                          (SELECT l.usd_per_second FROM agentmarket_private.machine_price_list l"
			"                            WHERE l.machine_size OPERATOR(pg_catalog.=) a.fly_machine_size"
			"                              AND l.memory_mb OPERATOR(pg_catalog.=) a.fly_machine_memory_mb)) END,"
			"       a.fly_machine_size, a.fly_machine_memory_mb"
			"  FROM unnest($1, $2) WITH ORDINALITY g(instance_id, session_id, n)"
			"  LEFT JOIN agentmarket.agent_instances i ON i.id OPERATOR(pg_catalog.=) g.instance_id"
			"  LEFT JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) i.agent_id"
			"  LEFT JOIN agentmarket.sessions s ON s.id OPERATOR(pg_catalog.=) g.session_id",
			2, two_uuids);
	if (keys_plan == NULL)
		keys_plan = usage_prepare(
			"INSERT INTO agentmarket_private.usage_keys AS k (idempotency_key, usage_event_id)"
			" SELECT * FROM unnest($1, $2)"
			" ON CONFLICT DO NOTHING RETURNING k.idempotency_key",
			2, keys_args);
	if (keys_fast_plan == NULL)
		keys_fast_plan = usage_prepare(
			"INSERT INTO agentmarket_private.usage_keys (idempotency_key, usage_event_id)"
			" SELECT * FROM unnest($1, $2)",
			2, keys_args);
	if (rows_plan == NULL)
		rows_plan = usage_prepare(
			"WITH folded AS ("
			"  INSERT INTO agentmarket.usage_events AS e (id, user_id, instance_id, session_id,"
			"         compute_seconds, input_tokens, output_tokens, cost_usd)"
			"  SELECT r.id, r.user_id, r.instance_id, r.session_id, r.secs, r.ins, r.outs,"
			"         pg_catalog.round(r.rate OPERATOR(pg_catalog.*) r.secs, 6)"
			"    FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) r(id, user_id, instance_id, session_id, secs, ins, outs, rate)"
			"  RETURNING e.id, e.session_id)"
			" INSERT INTO agentmarket_private.usage_pending (usage_event_id, session_id)"
			" SELECT folded.id, folded.session_id FROM folded",
			8, rows_args);
}

/* Raise 22023 for the event at (0-based) index i. */
static void pg_attribute_noreturn()
usage_malformed(int i, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("usage event %d is malformed: %s", i + 1, problem),
			 errdetail("Nothing of the batch was recorded.")));
}

/* Value of one hex digit, or -1. */
static inline int
usage_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse a UUID written as 32 hex digits, with or without the four hyphens. */
static bool
usage_parse_uuid(const char *s, int len, pg_uuid_t *out)
{
	int			digits = 0;
	int			i;

	if (len != 32 && len != 36)
		return false;
	for (i = 0; i < len; i++)
	{
		int			hi,
					lo;

		if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23))
		{
			if (s[i] != '-')
				return false;
			continue;
		}
		if (i + 1 >= len || digits >= UUID_LEN)
			return false;
		hi = usage_hexval(s[i]);
		lo = usage_hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out->data[digits++] = (unsigned char) (hi << 4 | lo);
		i++;
	}
	return digits == UUID_LEN;
}

/* A whole number from 0 to max, or -1. */
static int32
usage_count(JsonbValue *v, int32 max)
{
	char	   *digits;
	int64		n = 0;
	char	   *p;

	if (v->type != jbvNumeric)
		return -1;
	digits = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	if (*digits == '\0')
		return -1;
	for (p = digits; *p; p++)
	{
		if (*p < '0' || *p > '9' || p - digits >= 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	pfree(digits);
	return n <= max ? (int32) n : -1;
}

/* Parse and check the event at index i into ev. */
static void
usage_parse_event(JsonbValue *elem, int i, UsageEvent *ev)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	bool		has_instance = false;

	memset(ev, 0, sizeof(UsageEvent));
	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		usage_malformed(i, "it is not a JSON object");

	it = JsonbIteratorInit(elem->val.binary.data);
	tok = JsonbIteratorNext(&it, &k, true); /* WJB_BEGIN_OBJECT */
	while ((tok = JsonbIteratorNext(&it, &k, true)) == WJB_KEY)
	{
		const char *name = k.val.string.val;
		int			namelen = k.val.string.len;

		tok = JsonbIteratorNext(&it, &v, true); /* WJB_VALUE */
#define USAGE_FIELD(lit) (namelen == (int) strlen(lit) && memcmp(name, lit, namelen) == 0)
		if (USAGE_FIELD("instance_id"))
		{
			if (v.type != jbvString || !usage_parse_uuid(v.val.string.val, v.val.string.len, &ev->instance_id))
				usage_malformed(i, "instance_id must be a UUID");
			has_instance = true;
		}
		else if (USAGE_FIELD("session_id"))
		{
			if (v.type == jbvNull)
				continue;
			if (v.type != jbvString || !usage_parse_uuid(v.val.string.val, v.val.string.len, &ev->session_id))
				usage_malformed(i, "session_id must be a UUID or null");
			ev->has_session = true;
		}
		else if (USAGE_FIELD("compute_seconds"))
		{
			if (v.type != jbvNull && (ev->compute_seconds = usage_count(&v, USAGE_MAX_SECONDS)) < 0)
				usage_malformed(i, "compute_seconds must be a whole number from 0 to 86400");
		}
		else if (USAGE_FIELD("input_tokens"))
		{
			if (v.type != jbvNull && (ev->input_tokens = usage_count(&v, USAGE_MAX_TOKENS)) < 0)
				usage_malformed(i, "input_tokens must be a whole number from 0 to 1000000");
		}
		else if (USAGE_FIELD("output_tokens"))
		{
			if (v.type != jbvNull && (ev->output_tokens = usage_count(&v, USAGE_MAX_TOKENS)) < 0)
				usage_malformed(i, "output_tokens must be a whole number from 0 to 1000000");
		}
		else if (USAGE_FIELD("idempotency_key"))
		{
			int			chars;

			if (v.type != jbvString)
				usage_malformed(i, "idempotency_key must be a string of 1 to 200 characters");
			chars = pg_mbstrlen_with_len(v.val.string.val, v.val.string.len);
			if (chars < 1 || chars > USAGE_MAX_KEY_CHARS)
				usage_malformed(i, "idempotency_key must be a string of 1 to 200 characters");
			ev->key = cstring_to_text_with_len(v.val.string.val, v.val.string.len);
		}
		else
			usage_malformed(i, "it has a field other than instance_id, session_id, compute_seconds, "
							"input_tokens, output_tokens and idempotency_key");
#undef USAGE_FIELD
	}
	if (!has_instance)
		usage_malformed(i, "instance_id must be a UUID");
	if (ev->key == NULL)
		usage_malformed(i, "idempotency_key must be a string of 1 to 200 characters");
}

/* The events being sorted by usage_key_order (qsort has no context). */
static UsageEvent *usage_sort_events = NULL;

/* Byte order of two events' keys (as COLLATE "C" compares them). */
static int
usage_key_order(const void *a, const void *b)
{
	text	   *ka = usage_sort_events[*(const int *) a].key;
	text	   *kb = usage_sort_events[*(const int *) b].key;
	int			la = VARSIZE_ANY_EXHDR(ka);
	int			lb = VARSIZE_ANY_EXHDR(kb);
	int			c = memcmp(VARDATA_ANY(ka), VARDATA_ANY(kb), Min(la, lb));

	if (c != 0)
		return c;
	return (la > lb) - (la < lb);
}

/*
 * Insert the batch's keys with a plain INSERT, in a subtransaction: true when
 * every key was new.  A key recorded before (or by a concurrent batch that
 * commits while this one waits for it) makes it false and leaves nothing:
 * the caller then inserts with ON CONFLICT DO NOTHING to learn which keys are
 * new.  A plain insert is the common case's cheapest path: no speculative
 * insertion (a second index probe and WAL record per key), no RETURNING.
 */
static bool
usage_insert_new_keys(Datum *args)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool all_new = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		if (SPI_execute_plan(keys_fast_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not record the usage events' keys")));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
		all_new = false;
	}
	PG_END_TRY();
	return all_new;
}

/* A one-dimensional array of n datums of a by-reference or by-value type. */
static Datum
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

/* SQL function: agentmarket.record_usage(events jsonb) */
Datum
record_usage(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *events;
	int			n,
				i,
				ngroups = 0,
				nfirst = 0,
				nrows = 0;
	UsageEvent *ev;
	UsageGroupKey *groups;
	Datum	   *group_ids;
	Datum	   *user_ids;
	Datum	   *rates;
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
	if (SPI_execute_plan(service_plan, NULL, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1
		|| !DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only the platform records usage")));
	if (n == 0)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}

	/* Parse, check, and find the groups and each key's first event. */
	ev = palloc(sizeof(UsageEvent) * n);
	groups = palloc(sizeof(UsageGroupKey) * n);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(UsageGroupKey);
	ctl.entrysize = sizeof(UsageGroupEntry);
	ctl.hcxt = CurrentMemoryContext;
	group_hash = hash_create("usage groups", n, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(((UsageKeyEntry *) NULL)->key);
	ctl.entrysize = sizeof(UsageKeyEntry);
	ctl.hcxt = CurrentMemoryContext;
	key_hash = hash_create("usage keys", n, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (i = 0; i < n; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&events->root, i);
		UsageGroupKey gk;
		UsageGroupEntry *ge;
		UsageKeyEntry *ke;
		bool		found;
		char	   *keystr;

		usage_parse_event(elem, i, &ev[i]);
		memset(&gk, 0, sizeof(gk));
		gk.instance_id = ev[i].instance_id;
		if (ev[i].has_session)
			gk.session_id = ev[i].session_id;
		ge = hash_search(group_hash, &gk, HASH_ENTER, &found);
		if (!found)
		{
			ge->index = ngroups;
			groups[ngroups++] = gk;
		}
		ev[i].group = ge->index;
		keystr = text_to_cstring(ev[i].key);
		ke = hash_search(key_hash, keystr, HASH_ENTER, &found);
		if (!found)
		{
			ke->event = i;
			ev[i].first = true;
			nfirst++;
		}
		pfree(keystr);
	}

	/* 1. Every group: instance and session exist and match; who and what rate. */
	group_ids = palloc(sizeof(Datum) * ngroups);
	user_ids = palloc(sizeof(Datum) * ngroups);
	rates = palloc(sizeof(Datum) * ngroups);
	{
		Datum		args[2];
		bool	   *session_nulls = palloc(sizeof(bool) * ngroups);
		char		nulls[2] = {' ', ' '};
		int			first_bad = n;
		const char *problem = NULL;
		char	   *bad_text = NULL;

		for (i = 0; i < ngroups; i++)
		{
			pg_uuid_t	zero;

			memset(&zero, 0, sizeof(zero));
			group_ids[i] = UUIDPGetDatum(&groups[i].instance_id);
			session_nulls[i] = memcmp(&groups[i].session_id, &zero, sizeof(zero)) == 0;
			user_ids[i] = UUIDPGetDatum(&groups[i].session_id);
		}
		args[0] = usage_array(group_ids, NULL, ngroups, UUIDOID);
		args[1] = usage_array(user_ids, session_nulls, ngroups, UUIDOID);
		if (SPI_execute_plan(groups_plan, args, nulls, false, 0) != SPI_OK_SELECT || SPI_processed != (uint64) ngroups)
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

			d = SPI_getbinval(tup, desc, 3, &isnull);
			session_ok = !isnull && DatumGetBool(d);
			if (!instance_ok || !session_ok)
			{
				int			j;

				for (j = 0; j < n && ev[j].group != g; j++);
				if (j < first_bad)
				{
					first_bad = j;
					bad_text = !instance_ok
						? psprintf("instance %s not found", usage_uuid_string(&groups[g].instance_id))
						: psprintf("session %s is not a session of instance %s",
								   usage_uuid_string(&groups[g].session_id),
								   usage_uuid_string(&groups[g].instance_id));
				}
				continue;
			}
			user_ids[g] = SPI_getbinval(tup, desc, 4, &isnull);
			rates[g] = SPI_getbinval(tup, desc, 5, &isnull);
			if (isnull)
			{
				int			j;

				for (j = 0; j < n && ev[j].group != g; j++);
				if (j < first_bad)
				{
					first_bad = j;
					bad_text = psprintf("no price for machine %s with %s MB",
										SPI_getvalue(tup, desc, 6), SPI_getvalue(tup, desc, 7));
				}
			}
		}
		if (first_bad < n)
		{
			problem = bad_text;
			usage_malformed(first_bad, problem);
		}
		for (i = 0; i < ngroups; i++)
			group_ids[i] = DirectFunctionCall1(gen_random_uuid, (Datum) 0);
	}

	/* 2. The keys, in byte order: those inserted are new. */
	{
		int		   *order = palloc(sizeof(int) * nfirst);
		Datum	   *keys = palloc(sizeof(Datum) * nfirst);
		Datum	   *key_groups = palloc(sizeof(Datum) * nfirst);
		Datum		args[2];
		int			k = 0;

		for (i = 0; i < n; i++)
			if (ev[i].first)
				order[k++] = i;
		usage_sort_events = ev;
		qsort(order, nfirst, sizeof(int), usage_key_order);
		for (k = 0; k < nfirst; k++)
		{
			keys[k] = PointerGetDatum(ev[order[k]].key);
			key_groups[k] = group_ids[ev[order[k]].group];
		}
		args[0] = usage_array(keys, NULL, nfirst, TEXTOID);
		args[1] = usage_array(key_groups, NULL, nfirst, UUIDOID);
		if (usage_insert_new_keys(args))
		{
			for (k = 0; k < nfirst; k++)
				ev[order[k]].recorded = true;
		}
		else
		{
			uint64		r;

			if (SPI_execute_plan(keys_plan, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not record the usage events' keys")));
			for (r = 0; r < SPI_processed; r++)
			{
				char	   *keystr = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
				UsageKeyEntry *ke = hash_search(key_hash, keystr, HASH_FIND, NULL);

				if (ke == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_INTERNAL_ERROR),
							 errmsg("a recorded usage key is not in the batch")));
				ev[ke->event].recorded = true;
			}
		}
	}

	/* 3. One usage_events row per group with new events. */
	{
		int64	   *secs = palloc0(sizeof(int64) * ngroups);
		int64	   *ins = palloc0(sizeof(int64) * ngroups);
		int64	   *outs = palloc0(sizeof(int64) * ngroups);
		bool	   *used = palloc0(sizeof(bool) * ngroups);
		Datum	   *cols[8];
		bool	   *session_nulls = palloc(sizeof(bool) * ngroups);
		Datum		args[8];
		int			c;
		pg_uuid_t	zero;

		memset(&zero, 0, sizeof(zero));
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
		for (i = 0; i < ngroups; i++)
		{
			if (!used[i])
				continue;
			cols[0][nrows] = group_ids[i];
			cols[1][nrows] = user_ids[i];
			cols[2][nrows] = UUIDPGetDatum(&groups[i].instance_id);
			cols[3][nrows] = UUIDPGetDatum(&groups[i].session_id);
			session_nulls[nrows] = memcmp(&groups[i].session_id, &zero, sizeof(zero)) == 0;
			/* At most 2,000 events of at most 1,000,000 each: fits int4. */
			cols[4][nrows] = Int32GetDatum((int32) secs[i]);
			cols[5][nrows] = Int32GetDatum((int32) ins[i]);
			cols[6][nrows] = Int32GetDatum((int32) outs[i]);
			cols[7][nrows] = rates[i];
			nrows++;
		}
		if (nrows > 0)
		{
			args[0] = usage_array(cols[0], NULL, nrows, UUIDOID);
			args[1] = usage_array(cols[1], NULL, nrows, UUIDOID);
			args[2] = usage_array(cols[2], NULL, nrows, UUIDOID);
			args[3] = usage_array(cols[3], session_nulls, nrows, UUIDOID);
			args[4] = usage_array(cols[4], NULL, nrows, INT4OID);
			args[5] = usage_array(cols[5], NULL, nrows, INT4OID);
			args[6] = usage_array(cols[6], NULL, nrows, INT4OID);
			args[7] = usage_array(cols[7], NULL, nrows, NUMERICOID);
			if (SPI_execute_plan(rows_plan, args, NULL, false, 0) != SPI_OK_INSERT)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not record the usage rows")));
		}
	}

	/* What happened to each event, in order. */
	for (i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, !ev[i].recorded};

		values[0] = Int32GetDatum(i + 1);
		values[1] = PointerGetDatum(ev[i].key);
		values[2] = CStringGetTextDatum(ev[i].recorded ? "recorded" : "duplicate");
		values[3] = group_ids[ev[i].group];
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	PG_RETURN_NULL();
}
