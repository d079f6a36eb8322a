/*-------------------------------------------------------------------------
 * metering_rows.c
 *	  A record_usage batch's open rows found, locked and added to without
 *	  statements.
 *
 *	  For each (instance, session) group, in uuid order: the open row's queue
 *	  entry is found through the unique index usage_pending_open and locked
 *	  as SELECT ... FOR UPDATE locks it (waiting, then following the row to
 *	  its newest version); a rollup that claimed it meanwhile deleted it, and
 *	  a batch that closed it cleared its instance, so neither is open any
 *	  more.  Then its usage_events row is found by its key and locked too,
 *	  so that what the batch reads (to see whether its sums still fit) is
 *	  what it will update.  Adding is an update of that locked version the
 *	  way logical replication applies one (ExecSimpleRelationUpdate): row
 *	  triggers, check constraints, indexes when the update cannot be HOT,
 *	  and the foreign keys' after-row checks (queued only when a key could
 *	  have changed).
 *
 *	  The path runs only when it does what the statements would: READ
 *	  COMMITTED (as the platform calls it; under REPEATABLE READ the
 *	  statements give the serialization failures that isolation promises),
 *	  no row security in force, the caller allowed to lock and update, the
 *	  tables and the index shaped as record_usage knows them, and no
 *	  statement-level or transition-table update trigger on usage_events.
 *	  Anything unexpected while locking also hands the batch back to the
 *	  statements (a row locked already stays locked: the statement's lock
 *	  is then no wait).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parsetree.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "metering.h"

/* The columns the path reads or writes, by table. */
enum
{
	P_EVENT, P_SESSION, P_INSTANCE, P_COLUMNS
};
enum
{
	E_ID, E_SECONDS, E_INPUT, E_OUTPUT, E_COST, E_COLUMNS
};

struct UsageOpenRows
{
	Relation	pending;
	Relation	open_index;		/* usage_pending_open */
	Relation	events;
	Relation	events_key;		/* usage_events_pkey */
	AttrNumber	p_attno[P_COLUMNS];
	AttrNumber	e_attno[E_COLUMNS];
	int32		cost_typmod;
	Snapshot	snapshot;
	int			ngroups;
	HeapTuple  *rows;			/* per group: its locked usage_events version, or NULL */
	MemoryContext cxt;
};

/* The attribute number of column name if it has type type, else 0. */
static AttrNumber
usage_column(Relation rel, const char *name, Oid type)
{
	AttrNumber	attno = get_attnum(RelationGetRelid(rel), name);

	if (attno <= 0 || TupleDescAttr(RelationGetDescr(rel), attno - 1)->atttypid != type)
		return 0;
	return attno;
}

/* Open rel's index named name if it is valid, unique, on natts columns, the first attno. */
static Relation
usage_open_index(Relation rel, const char *name, int natts, AttrNumber first)
{
	Oid			relid = get_relname_relid(name, RelationGetNamespace(rel));
	Relation	index;

	if (!OidIsValid(relid))
		return NULL;
	index = index_open(relid, RowExclusiveLock);
	if (index->rd_index->indrelid != RelationGetRelid(rel) || !index->rd_index->indisunique
		|| !index->rd_index->indisvalid || !index->rd_index->indimmediate
		|| index->rd_index->indnatts != natts || index->rd_index->indkey.values[0] != first
		|| index->rd_rel->relam != BTREE_AM_OID)
	{
		index_close(index, RowExclusiveLock);
		return NULL;
	}
	return index;
}

static void
usage_open_rows_close(UsageOpenRows *d, LOCKMODE mode)
{
	if (d->open_index)
		index_close(d->open_index, mode);
	if (d->events_key)
		index_close(d->events_key, mode);
	table_close(d->events, mode);
	table_close(d->pending, mode);
	if (d->snapshot)
		UnregisterSnapshot(d->snapshot);
	MemoryContextDelete(d->cxt);
}

/* The tables, if the path applies to them; NULL otherwise. */
static UsageOpenRows *
usage_open_rows_open(void)
{
	Oid			schema = get_namespace_oid("agentmarket_private", true);
	Oid			pending_id = OidIsValid(schema) ? get_relname_relid("usage_pending", schema) : InvalidOid;
	Oid			events_id = get_relname_relid("usage_events", get_namespace_oid("agentmarket", false));
	MemoryContext cxt;
	UsageOpenRows *d;
	TriggerDesc *trig;
	bool		ok;

	if (!OidIsValid(pending_id) || !OidIsValid(events_id)
		|| XactReadOnly || IsolationUsesXactSnapshot()
		|| pg_class_aclcheck(pending_id, GetUserId(), ACL_SELECT | ACL_UPDATE) != ACLCHECK_OK
		|| pg_class_aclcheck(events_id, GetUserId(), ACL_SELECT | ACL_UPDATE) != ACLCHECK_OK
		|| check_enable_rls(pending_id, InvalidOid, true) == RLS_ENABLED
		|| check_enable_rls(events_id, InvalidOid, true) == RLS_ENABLED)
		return NULL;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "usage open rows", ALLOCSET_SMALL_SIZES);
	d = MemoryContextAllocZero(cxt, sizeof(UsageOpenRows));
	d->cxt = cxt;
	d->pending = table_open(pending_id, RowShareLock);
	d->events = table_open(events_id, RowExclusiveLock);
	d->p_attno[P_EVENT] = usage_column(d->pending, "usage_event_id", UUIDOID);
	d->p_attno[P_SESSION] = usage_column(d->pending, "session_id", UUIDOID);
	d->p_attno[P_INSTANCE] = usage_column(d->pending, "instance_id", UUIDOID);
	d->e_attno[E_ID] = usage_column(d->events, "id", UUIDOID);
	d->e_attno[E_SECONDS] = usage_column(d->events, "compute_seconds", INT4OID);
	d->e_attno[E_INPUT] = usage_column(d->events, "input_tokens", INT4OID);
	d->e_attno[E_OUTPUT] = usage_column(d->events, "output_tokens", INT4OID);
	d->e_attno[E_COST] = usage_column(d->events, "cost_usd", NUMERICOID);
	trig = d->events->trigdesc;
	ok = d->pending->rd_rel->relkind == RELKIND_RELATION && d->events->rd_rel->relkind == RELKIND_RELATION
		&& (trig == NULL || !(trig->trig_update_before_statement || trig->trig_update_after_statement
							  || trig->trig_update_new_table || trig->trig_update_old_table));
	for (int c = 0; c < P_COLUMNS; c++)
		ok = ok && d->p_attno[c] != 0;
	for (int c = 0; c < E_COLUMNS; c++)
		ok = ok && d->e_attno[c] != 0;
	if (ok)
	{
		d->cost_typmod = TupleDescAttr(RelationGetDescr(d->events), d->e_attno[E_COST] - 1)->atttypmod;
		d->open_index = usage_open_index(d->pending, "usage_pending_open", 2, d->p_attno[P_INSTANCE]);
		d->events_key = usage_open_index(d->events, "usage_events_pkey", 1, d->e_attno[E_ID]);
		ok = d->open_index != NULL && d->events_key != NULL;
	}
	if (!ok)
	{
		usage_open_rows_close(d, NoLock);
		return NULL;
	}
	return d;
}

/*
 * The one tuple visible to the scan's snapshot with keys in its index, or
 * false.  One scan per index serves the whole batch, started again with each
 * group's keys: starting a btree scan allocates its position arrays.
 */
static bool
usage_fetch(IndexScanDesc scan, ScanKey keys, int nkeys, TupleTableSlot *slot)
{
	index_rescan(scan, keys, nkeys, NULL, 0);
	return index_getnext_slot(scan, ForwardScanDirection, slot);
}

/* Lock the tuple in slot (following it to its newest version): true if it is there. */
static bool
usage_lock(Relation rel, TupleTableSlot *slot, Snapshot snapshot, LockTupleMode mode, bool *unusual)
{
	TM_FailureData tmfd;

	switch (table_tuple_lock(rel, &slot->tts_tid, snapshot, slot, GetCurrentCommandId(true), mode,
							 LockWaitBlock, TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd))
	{
		case TM_Ok:
			return true;
		case TM_Deleted:
			return false;
		default:
			*unusual = true;
			return false;
	}
}

/*
 * Find and lock each group's open row (groups in uuid order).  For a group
 * with one, open[g] is set, ids[g] is its usage_events id and secs, ins,
 * outs and cost what it holds now.  NULL: the path does not apply, and the
 * caller runs its statements.
 */
UsageOpenRows *
usage_open_rows_lock(const UsageGroupKey *groups, int ngroups, bool *open, Datum *ids,
					 int64 *secs, int64 *ins, int64 *outs, Datum *cost)
{
	UsageOpenRows *d;
	TupleTableSlot *pslot,
			   *eslot;
	IndexScanDesc pscan,
				escan;
	MemoryContext caller;
	bool		unusual = false;

	if (!usage_direct_path || (d = usage_open_rows_open()) == NULL)
		return NULL;
	caller = MemoryContextSwitchTo(d->cxt);
	d->snapshot = RegisterSnapshot(GetTransactionSnapshot());
	d->ngroups = ngroups;
	d->rows = palloc0(sizeof(HeapTuple) * ngroups);
	pslot = table_slot_create(d->pending, NULL);
	eslot = table_slot_create(d->events, NULL);
	pscan = index_beginscan(d->pending, d->open_index, d->snapshot, 2, 0);
	escan = index_beginscan(d->events, d->events_key, d->snapshot, 1, 0);
	for (int g = 0; g < ngroups && !unusual; g++)
	{
		ScanKeyData keys[2];
		bool		isnull;
		Datum		d_instance,
					d_session,
					event_id;

		open[g] = false;
		ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(&groups[g].instance_id));
		ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(&groups[g].session_id));
		if (!usage_fetch(pscan, keys, 2, pslot)
			|| !usage_lock(d->pending, pslot, d->snapshot, LockTupleExclusive, &unusual))
			continue;
		/* Still open, for this group, in its newest version? */
		d_instance = slot_getattr(pslot, d->p_attno[P_INSTANCE], &isnull);
		if (isnull || memcmp(DatumGetUUIDP(d_instance), &groups[g].instance_id, UUID_LEN) != 0)
			continue;
		d_session = slot_getattr(pslot, d->p_attno[P_SESSION], &isnull);
		if (isnull ? usage_group_has_session(&groups[g])
			: memcmp(DatumGetUUIDP(d_session), &groups[g].session_id, UUID_LEN) != 0)
			continue;
		event_id = slot_getattr(pslot, d->p_attno[P_EVENT], &isnull);
		if (isnull)
			continue;
		ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_UUID_EQ, event_id);
		if (!usage_fetch(escan, keys, 1, eslot)
			|| !usage_lock(d->events, eslot, d->snapshot, LockTupleNoKeyExclusive, &unusual))
		{
			unusual = true;		/* a queued row without its usage row */
			break;
		}
		d->rows[g] = ExecCopySlotHeapTuple(eslot);
		open[g] = true;
		/* ids and cost outlive the path's memory: kept in the caller's. */
		ids[g] = PointerGetDatum(memcpy(MemoryContextAlloc(caller, UUID_LEN), DatumGetPointer(event_id), UUID_LEN));
		secs[g] = DatumGetInt32(slot_getattr(eslot, d->e_attno[E_SECONDS], &isnull));
		ins[g] = DatumGetInt32(slot_getattr(eslot, d->e_attno[E_INPUT], &isnull));
		outs[g] = DatumGetInt32(slot_getattr(eslot, d->e_attno[E_OUTPUT], &isnull));
		MemoryContextSwitchTo(caller);
		cost[g] = datumCopy(slot_getattr(eslot, d->e_attno[E_COST], &isnull), false, -1);
		MemoryContextSwitchTo(d->cxt);
	}
	index_endscan(pscan);
	index_endscan(escan);
	ExecDropSingleTupleTableSlot(pslot);
	ExecDropSingleTupleTableSlot(eslot);
	MemoryContextSwitchTo(caller);
	if (unusual)
	{
		usage_open_rows_close(d, NoLock);
		return NULL;
	}
	return d;
}

/*
 * Add to each group's locked row (add[g]) its batch's sums, cost_add[g]
 * being the batch's USD, then let go of the path.
 */
void
usage_open_rows_add(UsageOpenRows *d, const bool *add, const int32 *secs, const int32 *ins,
					const int32 *outs, const Datum *cost_add)
{
	TupleDesc	desc = RelationGetDescr(d->events);
	MemoryContext caller;
	EState	   *estate;
	ResultRelInfo *info;
	EPQState	epq;
	RangeTblEntry *rte;
	TupleTableSlot *oldrow,
			   *newrow;
	bool		any = false;

	for (int g = 0; g < d->ngroups; g++)
		any = any || (add[g] && d->rows[g] != NULL);
	if (!any)
	{
		usage_open_rows_close(d, NoLock);
		return;
	}

	/* As a statement's start would make it: range table, result relation, indexes. */
	estate = CreateExecutorState();
	caller = MemoryContextSwitchTo(estate->es_query_cxt);
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(d->events);
	rte->relkind = d->events->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_SELECT | ACL_UPDATE;
	for (int c = E_SECONDS; c <= E_COST; c++)
		rte->updatedCols = bms_add_member(rte->updatedCols, d->e_attno[c] - FirstLowInvalidHeapAttributeNumber);
	ExecInitRangeTable(estate, list_make1(rte));
	estate->es_relations[0] = d->events;
	info = makeNode(ResultRelInfo);
	InitResultRelInfo(info, d->events, 1, NULL, 0);
	estate->es_opened_result_relations = list_make1(info);
	estate->es_output_cid = GetCurrentCommandId(true);
	estate->es_snapshot = d->snapshot;
	ExecOpenIndices(info, false);
	EvalPlanQualInit(&epq, estate, NULL, NIL, -1);
	oldrow = ExecInitExtraTupleSlot(estate, desc, &TTSOpsHeapTuple);
	newrow = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
	AfterTriggerBeginQuery();

	for (int g = 0; g < d->ngroups; g++)
	{
		Datum		cost;

		if (!add[g] || d->rows[g] == NULL)
			continue;
		ExecStoreHeapTuple(d->rows[g], oldrow, false);
		slot_getallattrs(oldrow);
		ExecClearTuple(newrow);
		memcpy(newrow->tts_values, oldrow->tts_values, desc->natts * sizeof(Datum));
		memcpy(newrow->tts_isnull, oldrow->tts_isnull, desc->natts * sizeof(bool));
#define ADD_INT4(c, v) \
		(newrow->tts_values[d->e_attno[c] - 1] = \
		 DirectFunctionCall2(int4pl, newrow->tts_values[d->e_attno[c] - 1], Int32GetDatum(v)))
		ADD_INT4(E_SECONDS, secs[g]);
		ADD_INT4(E_INPUT, ins[g]);
		ADD_INT4(E_OUTPUT, outs[g]);
#undef ADD_INT4
		/* cost_usd + the batch's cost, to the column's numeric(p,s) as assignment does. */
		cost = DirectFunctionCall2(numeric_add, newrow->tts_values[d->e_attno[E_COST] - 1], cost_add[g]);
		newrow->tts_values[d->e_attno[E_COST] - 1] =
			DirectFunctionCall2(numeric, cost, Int32GetDatum(d->cost_typmod));
		ExecStoreVirtualTuple(newrow);
		ExecSimpleRelationUpdate(info, estate, &epq, oldrow, newrow);
		ResetPerTupleExprContext(estate);
	}

	AfterTriggerEndQuery(estate);
	EvalPlanQualEnd(&epq);
	ExecCloseIndices(info);
	ExecResetTupleTable(estate->es_tupleTable, false);
	MemoryContextSwitchTo(caller);
	FreeExecutorState(estate);
	usage_open_rows_close(d, NoLock);
}

/* round(rate * seconds, 6): what a batch's seconds cost, as the statements compute it. */
Datum
usage_batch_cost(Datum rate, int64 seconds)
{
	Datum		product = DirectFunctionCall2(numeric_mul, rate, NumericGetDatum(int64_to_numeric(seconds)));

	return DirectFunctionCall2(numeric_round, product, Int32GetDatum(6));
}

/*
 * The statement's bounds on the rows the direct path locked (open[g], with
 * their sums now in cur_*): a row the batch would overflow (int4 sums, or
 * cost_usd reaching 10,000) is full instead.
 */
void
usage_bound_locked(int ngroups, bool *open, bool *full,
				   int64 *cur_secs, int64 *cur_ins, int64 *cur_outs, Datum *cur_cost,
				   int64 *secs, int64 *ins, int64 *outs, Datum *rates)
{
	Datum		limit = DirectFunctionCall1(int4_numeric, Int32GetDatum(10000));

	for (int g = 0; g < ngroups; g++)
	{
		Datum		cost;

		if (!open[g])
			continue;
		cost = DirectFunctionCall2(numeric_add, cur_cost[g], usage_batch_cost(rates[g], secs[g]));
		if (cur_secs[g] + secs[g] > PG_INT32_MAX || cur_ins[g] + ins[g] > PG_INT32_MAX
			|| cur_outs[g] + outs[g] > PG_INT32_MAX || !DatumGetBool(DirectFunctionCall2(numeric_lt, cost, limit)))
		{
			open[g] = false;
			full[g] = true;
		}
	}
}
