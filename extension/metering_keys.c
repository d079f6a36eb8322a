/*-------------------------------------------------------------------------
 * metering_keys.c
 *	  A record_usage batch's idempotency keys, recorded in byte order: a key
 *	  recorded before is a duplicate.  They are written into usage_keys the
 *	  way COPY writes rows: every tuple of the batch in one
 *	  table_multi_insert (one WAL record per page instead of one per row, no
 *	  executor per row), then each key's index entries, in key order.
 *
 *	  It writes exactly what the saved INSERT would, or nothing: the table
 *	  must still have the three columns record_usage knows, no trigger (a
 *	  deferrable unique key's check is one), no check constraint and no row
 *	  security in force, and the caller must be allowed to insert; otherwise
 *	  usage_keys_insert_direct() returns false and the caller runs the
 *	  statement.  A key seen before raises
 *	  unique_violation from the primary key's check, exactly as the
 *	  statement would (the caller's subtransaction catches it).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#include "agentmarket.h"
#include "metering.h"

bool		usage_direct_path = true;

/*
 * am_metering_init: define agentmarket.usage_direct_path, a switch for tests
 * and benchmarks: off, every batch takes its saved statements for its keys
 * (metering_keys.c) and its open rows (metering_rows.c).  It changes speed,
 * never results.
 */
void
am_metering_init(void)
{
	DefineCustomBoolVariable("agentmarket.usage_direct_path",
							 "Lets record_usage write a batch's keys and add to its open rows without statements.",
							 "Off: the batch runs its saved statements (same rows, slower).",
							 &usage_direct_path,
							 true,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
}

/* Does usage_keys still have exactly the columns this path writes? */
static bool
usage_keys_shape_ok(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Node	   *recorded_default;
	static const struct
	{
		const char *name;
		Oid			type;
	}			columns[3] = {
		{"idempotency_key", TEXTOID},
		{"usage_event_id", UUIDOID},
		{"recorded_at", TIMESTAMPTZOID}
	};

	if (rel->rd_rel->relkind != RELKIND_RELATION || desc->natts != 3 || rel->trigdesc != NULL
		|| (desc->constr != NULL && desc->constr->num_check > 0))
		return false;
	for (int i = 0; i < 3; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != columns[i].type || att->attgenerated != '\0'
			|| strcmp(NameStr(att->attname), columns[i].name) != 0)
			return false;
	}
	/* recorded_at is written as its default, now(): it must still be that. */
	recorded_default = build_column_default(rel, 3);
	return recorded_default != NULL && IsA(recorded_default, FuncExpr)
		&& ((FuncExpr *) recorded_default)->funcid == F_NOW;
}

/* Is the i-th index of info a plain BRIN index on recorded_at (column 3) alone? */
static bool
usage_brin_on_recorded_at(ResultRelInfo *info, int i)
{
	IndexInfo  *ii = info->ri_IndexRelationInfo[i];

	if (info->ri_IndexRelationDescs[i]->rd_rel->relam != BRIN_AM_OID
		|| ii->ii_Expressions != NIL || ii->ii_Predicate != NIL)
		return false;
	for (int k = 0; k < ii->ii_NumIndexAttrs; k++)
		if (ii->ii_IndexAttrNumbers[k] != 3)
			return false;
	return true;
}

/*
 * The batch's indexes without its BRIN indexes on recorded_at alone, or NULL
 * if there are none.  Every key of a batch has the same recorded_at (its
 * transaction's start), so once one of them is in a BRIN index's summary of
 * a block range, inserting the others changes nothing.  The caller inserts
 * into every index the first key of the batch on each heap page (a range
 * is whole pages, so that is at least the first key in each range) and any
 * key that opens a page (where brininsert asks for the range before it to be
 * summarized), and the others into these indexes only.
 */
static ResultRelInfo *
usage_keys_lean_indexes(ResultRelInfo *info)
{
	ResultRelInfo *lean = NULL;
	int			kept = 0;

	for (int i = 0; i < info->ri_NumIndices && lean == NULL; i++)
		if (usage_brin_on_recorded_at(info, i))
		{
			lean = palloc(sizeof(ResultRelInfo));
			*lean = *info;
			lean->ri_IndexRelationDescs = palloc(sizeof(Relation) * info->ri_NumIndices);
			lean->ri_IndexRelationInfo = palloc(sizeof(IndexInfo *) * info->ri_NumIndices);
		}
	if (lean == NULL)
		return NULL;
	for (int i = 0; i < info->ri_NumIndices; i++)
	{
		if (usage_brin_on_recorded_at(info, i))
			continue;
		lean->ri_IndexRelationDescs[kept] = info->ri_IndexRelationDescs[i];
		lean->ri_IndexRelationInfo[kept++] = info->ri_IndexRelationInfo[i];
	}
	lean->ri_NumIndices = kept;
	return lean;
}

/*
 * Insert n keys (sorted in byte order, no two equal) with the usage_events
 * row each went into, recorded_at as the column's default (now()).  False:
 * the path does not apply and nothing was written.
 */
static bool
usage_keys_insert_direct(Datum *keys, Datum *event_ids, int n)
{
	Oid			relid;
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *info;
	TupleDesc	desc;
	TupleTableSlot **slots;
	MemoryContext caller;
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	ResultRelInfo *lean;
	BlockNumber last_block = InvalidBlockNumber;

	relid = get_relname_relid("usage_keys", get_namespace_oid("agentmarket_private", false));
	if (!OidIsValid(relid)
		|| pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK
		|| check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED
		|| XactReadOnly)
		return false;
	rel = table_open(relid, RowExclusiveLock);
	if (!usage_keys_shape_ok(rel))
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}

	estate = CreateExecutorState();
	caller = MemoryContextSwitchTo(estate->es_query_cxt);
	info = makeNode(ResultRelInfo);
	InitResultRelInfo(info, rel, 1, NULL, 0);
	estate->es_output_cid = GetCurrentCommandId(true);
	ExecOpenIndices(info, false);

	/*
	 * The slots share an unpinned copy of the descriptor: a thousand pins of
	 * the relation's own, each remembered by the resource owner, cost more
	 * than the heap insert itself.
	 */
	desc = CreateTupleDescCopy(RelationGetDescr(rel));
	slots = palloc(sizeof(TupleTableSlot *) * n);
	for (int i = 0; i < n; i++)
	{
		Datum		values[3] = {keys[i], event_ids[i], now};
		bool		nulls[3] = {false, false, false};

		slots[i] = ExecInitExtraTupleSlot(estate, desc, &TTSOpsHeapTuple);
		ExecStoreHeapTuple(heap_form_tuple(desc, values, nulls), slots[i], true);
	}
	table_multi_insert(rel, slots, n, estate->es_output_cid, 0, NULL);
	lean = usage_keys_lean_indexes(info);
	for (int i = 0; i < n; i++)
	{
		BlockNumber blk = ItemPointerGetBlockNumber(&slots[i]->tts_tid);
		bool		full = lean == NULL || blk != last_block
			|| ItemPointerGetOffsetNumber(&slots[i]->tts_tid) == FirstOffsetNumber;

		last_block = blk;
		ResetPerTupleExprContext(estate);
		list_free(ExecInsertIndexTuples(full ? info : lean, slots[i], estate, false, false, NULL, NIL));
	}

	ExecCloseIndices(info);
	ExecResetTupleTable(estate->es_tupleTable, false);
	MemoryContextSwitchTo(caller);
	FreeExecutorState(estate);
	table_close(rel, NoLock);	/* the lock is kept to the end of the transaction */
	return true;
}

static SPIPlanPtr keys_plan = NULL;
static SPIPlanPtr keys_fast_plan = NULL;

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

/* The statements' two arrays (keys, their rows), built once and only when a statement runs. */
static void
usage_keys_args(Datum *args, Datum *keys, Datum *event_ids, int n)
{
	if (args[0] != (Datum) 0)
		return;
	args[0] = usage_array(keys, NULL, n, TEXTOID);
	args[1] = usage_array(event_ids, NULL, n, UUIDOID);
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
usage_insert_new_keys(Datum *args, Datum *keys, Datum *event_ids, int n)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool all_new = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		/* Written as COPY writes rows, or else by the statement. */
		if (!(usage_direct_path && usage_keys_insert_direct(keys, event_ids, n)))
		{
			usage_keys_args(args, keys, event_ids, n);
			if (SPI_execute_plan(keys_fast_plan, args, NULL, false, 0) != SPI_OK_INSERT)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not record the usage events' keys")));
		}
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

/*
 * Record the batch's keys (nfirst of its n events are the first with their
 * key), in byte order, each naming its group's row: those inserted are new
 * (ev[i].recorded).  key_hash finds a key's event when some were known.
 */
void
usage_record_keys(UsageEvent *ev, int n, int nfirst, Datum *group_ids, HTAB *key_hash)
{
	Oid			keys_args[2] = {TEXTARRAYOID, UUIDARRAYOID};
	int			i;
	int		   *order = palloc(sizeof(int) * nfirst);
	Datum	   *keys = palloc(sizeof(Datum) * nfirst);
	Datum	   *key_groups = palloc(sizeof(Datum) * nfirst);
	Datum		args[2] = {(Datum) 0, (Datum) 0};
	int			k = 0;

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
	if (usage_insert_new_keys(args, keys, key_groups, nfirst))
	{
		for (k = 0; k < nfirst; k++)
			ev[order[k]].recorded = true;
	}
	else
	{
		uint64		r;

		usage_keys_args(args, keys, key_groups, nfirst);
		if (SPI_execute_plan(keys_plan, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not record the usage events' keys")));
		for (r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			text	   *key = DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
			UsageKeyEntry *ke = hash_search(key_hash, &key, HASH_FIND, NULL);

			if (ke == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("a recorded usage key is not in the batch")));
			ev[ke->event].recorded = true;
		}
	}
}
