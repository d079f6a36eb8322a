/*-------------------------------------------------------------------------
 * credit_direct.c
 *	  The executor-level fast path of deduct_credits.
 *
 * A deduction from the head lot (nearly every deduction) is one row locked
 * and updated in credit_balances and one row appended to
 * credit_transactions.  Done with SQL statements, most of the time goes to
 * starting and ending the executor for two statements (plans, expression
 * trees, range tables, the check constraints parsed from text again).  Here
 * the row is found through the unique index on user_id and locked as
 * SELECT ... FOR UPDATE locks it (waiting, then following the row to its
 * newest version under READ COMMITTED; a concurrent update is a
 * serialization failure under REPEATABLE READ), and both rows are written
 * with the steps of the executor's single-row routines that logical
 * replication applies changes with (ExecSimpleRelationUpdate,
 * ExecSimpleRelationInsert): row triggers fire (touch_updated_at), check and
 * not-null constraints are checked (compiled once, not parsed from text per
 * statement), every index is maintained (the balance row's indexes are
 * opened only when its update cannot be HOT), as a statement would.  The ledger's foreign keys are
 * checked here at once, as their own check does it (the referenced row found
 * through its unique index and locked FOR KEY SHARE, 23503 when missing),
 * instead of being queued as after-row triggers that would run an SPI query
 * each.
 *
 * The path is taken only when it writes exactly what the statements would:
 * the caller may select and update the balances and insert into the ledger
 * and row security does not apply to it (deduct_credits runs as the owner),
 * the transaction may write (and session_replication_role is origin), the
 * tables have the columns this file knows (the ledger no others, since it
 * fills every column), a plain unique btree on user_id, no deferrable index
 * on the ledger, no statement-level or transition-table triggers for these
 * commands (those belong to statements), and no after-row insert trigger on
 * the ledger but single-column, immediate foreign key checks.  Otherwise,
 * or when anything unusual happens while locking (the row moved to another
 * user, was deleted, was changed later in this transaction), the caller
 * falls back to the saved statements, which decide as the executor does.
 *
 * What the tables look like is checked once per table definition
 * (credit_shape.c).  Everything that does not need the balance row (the
 * executor state, the indexes opened, the user's row locked for the
 * ledger's foreign key) is done before the row is locked, so that
 * deductions of one user, which queue on that row, hold it for as short a
 * time as possible.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "agentmarket.h"
#include "credit_direct.h"
#include "credit_shape.h"

static bool credit_direct_enabled = true;	/* agentmarket.credit_direct_path */

/*
 * The two tables and whether the current user may write them directly, kept
 * until a change to either table (its privileges, row security, owner, name),
 * to any schema or to any role or role membership.
 */
typedef struct CreditAccess
{
	bool		valid;
	Oid			user;
	Oid			balances;
	Oid			ledger;
	bool		may_write;
} CreditAccess;

static CreditAccess credit_access = {false};
static bool access_callbacks = false;

/* One deduction in progress (between credit_direct_lock and its end). */
struct CreditDirect
{
	const CreditShape *shape;
	Relation	balances;
	Relation	ledger;
	EState	   *estate;
	ResultRelInfo *balance_info;
	ResultRelInfo *ledger_info;
	EPQState	epqstate;
	TupleTableSlot *row;		/* the locked balance row */
	TupleTableSlot *newrow;		/* its new version */
	TupleTableSlot *entry;		/* the ledger row */
	bool		key_locked[CREDIT_MAX_FOREIGN_KEYS];	/* referenced row locked already ... */
	Datum		locked_key[CREDIT_MAX_FOREIGN_KEYS];	/* ... for this key */
};

/*
 * am_credits_init: define agentmarket.credit_direct_path, a switch for tests
 * and benchmarks: off, every deduction takes the saved statements.  It
 * changes speed, never results.
 */
void
am_credits_init(void)
{
	DefineCustomBoolVariable("agentmarket.credit_direct_path",
							 "Lets deduct_credits write a head-lot deduction without statements.",
							 "Off: every deduction runs its saved statements (same results, slower).",
							 &credit_direct_enabled,
							 true,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
}

static void
credit_access_relcache(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == credit_access.balances || relid == credit_access.ledger)
		credit_access.valid = false;
}

static void
credit_access_syscache(Datum arg, int cacheid, uint32 hashvalue)
{
	credit_access.valid = false;
}

/*
 * The two tables, and whether the current user may write them directly as
 * statements would let it (privileges; row security does not apply to it).
 * False when either table is missing.
 */
static bool
credit_caller_may_write(Oid *balances, Oid *ledger)
{
	Oid			user = GetUserId();
	Oid			schema;

	if (!access_callbacks)
	{
		CacheRegisterRelcacheCallback(credit_access_relcache, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, credit_access_syscache, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, credit_access_syscache, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, credit_access_syscache, (Datum) 0);
		access_callbacks = true;
	}
	if (!credit_access.valid || credit_access.user != user)
	{
		schema = get_namespace_oid("agentmarket", true);
		credit_access.user = user;
		credit_access.balances = OidIsValid(schema) ? get_relname_relid("credit_balances", schema) : InvalidOid;
		credit_access.ledger = OidIsValid(schema) ? get_relname_relid("credit_transactions", schema) : InvalidOid;
		credit_access.may_write = OidIsValid(credit_access.balances) && OidIsValid(credit_access.ledger) &&
			pg_class_aclmask(credit_access.balances, user, ACL_SELECT | ACL_UPDATE, ACLMASK_ALL) ==
			(ACL_SELECT | ACL_UPDATE) &&
			pg_class_aclmask(credit_access.ledger, user, ACL_INSERT, ACLMASK_ALL) == ACL_INSERT &&
			check_enable_rls(credit_access.balances, InvalidOid, true) != RLS_ENABLED &&
			check_enable_rls(credit_access.ledger, InvalidOid, true) != RLS_ENABLED;
		credit_access.valid = true;
	}
	*balances = credit_access.balances;
	*ledger = credit_access.ledger;
	return credit_access.may_write;
}

/* A range table entry for one of the two tables, with the columns the command sets. */
static RangeTblEntry *
credit_rte(Relation rel, Bitmapset *inserted, Bitmapset *updated)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = updated != NULL ? (ACL_SELECT | ACL_UPDATE) : ACL_INSERT;
	rte->insertedCols = inserted;
	rte->updatedCols = updated;
	return rte;
}

static inline Bitmapset *
credit_add_column(Bitmapset *set, AttrNumber attno)
{
	return bms_add_member(set, attno - FirstLowInvalidHeapAttributeNumber);
}

/* Give an opened result relation the compiled predicates of its partial indexes. */
static void
credit_use_predicates(const CreditShape *shape, ResultRelInfo *info)
{
	for (int i = 0; i < info->ri_NumIndices; i++)
		for (int p = 0; p < shape->npredicates; p++)
			if (RelationGetRelid(info->ri_IndexRelationDescs[i]) == shape->predicate_index[p] &&
				info->ri_IndexRelationInfo[i]->ii_Predicate != NIL)
				info->ri_IndexRelationInfo[i]->ii_PredicateState = shape->predicate[p];
}

/*
 * The executor state both writes need, as a statement's start would make it
 * (range table with the columns each command sets, result relations where
 * the trigger machinery finds them, indexes open, slots), made before the
 * row is locked.
 */
static void
credit_direct_prepare(CreditDirect *direct)
{
	const CreditShape *shape = direct->shape;
	EState	   *estate = CreateExecutorState();
	MemoryContext caller = MemoryContextSwitchTo(estate->es_query_cxt);
	Bitmapset  *updated = NULL;
	Bitmapset  *inserted = NULL;

	updated = credit_add_column(updated, shape->balance_attno[B_SUBSCRIPTION]);
	updated = credit_add_column(updated, shape->balance_attno[B_TOPUP]);
	updated = credit_add_column(updated, shape->balance_attno[B_HEAD_REMAINING]);
	updated = credit_add_column(updated, shape->balance_attno[B_HEAD_VALUE]);
	for (int c = 0; c < L_COLUMNS; c++)
		inserted = credit_add_column(inserted, shape->ledger_attno[c]);
	ExecInitRangeTable(estate, list_make2(credit_rte(direct->balances, NULL, updated),
										  credit_rte(direct->ledger, inserted, NULL)));
	estate->es_relations[0] = direct->balances;
	estate->es_relations[1] = direct->ledger;
	direct->balance_info = makeNode(ResultRelInfo);
	direct->ledger_info = makeNode(ResultRelInfo);
	InitResultRelInfo(direct->balance_info, direct->balances, 1, NULL, 0);
	InitResultRelInfo(direct->ledger_info, direct->ledger, 2, NULL, 0);
	estate->es_opened_result_relations = list_make2(direct->balance_info, direct->ledger_info);
	estate->es_output_cid = GetCurrentCommandId(true);
	estate->es_snapshot = GetActiveSnapshot();
	direct->balance_info->ri_ConstraintExprs = shape->balance_checks;
	direct->ledger_info->ri_ConstraintExprs = shape->ledger_checks;
	/* The balance row's indexes are opened only if its update cannot be HOT. */
	ExecOpenIndices(direct->ledger_info, false);
	credit_use_predicates(shape, direct->ledger_info);
	EvalPlanQualInit(&direct->epqstate, estate, NULL, NIL, -1);
	direct->newrow = ExecInitExtraTupleSlot(estate, RelationGetDescr(direct->balances), &TTSOpsVirtual);
	direct->entry = ExecInitExtraTupleSlot(estate, RelationGetDescr(direct->ledger), &TTSOpsVirtual);
	direct->row = table_slot_create(direct->balances, &estate->es_tupleTable);
	MemoryContextSwitchTo(caller);
	direct->estate = estate;
	AfterTriggerBeginQuery();
}

/* Close what credit_direct_lock opened (locks stay until the transaction ends). */
static void
credit_direct_close(CreditDirect *direct)
{
	if (direct->estate != NULL)
	{
		/* Any after-row trigger of the balance row queued by the update. */
		AfterTriggerEndQuery(direct->estate);
		EvalPlanQualEnd(&direct->epqstate);
		ExecCloseIndices(direct->ledger_info);
		ExecCloseIndices(direct->balance_info);
		ExecResetTupleTable(direct->estate->es_tupleTable, false);
		FreeExecutorState(direct->estate);
	}
	table_close(direct->ledger, NoLock);
	table_close(direct->balances, NoLock);
	PopActiveSnapshot();
	pfree(direct);
}

/*
 * Find the row of a foreign key's referenced table that holds key and lock
 * it FOR KEY SHARE, as the foreign key's own check does (with the
 * deduction's snapshot: fresh under READ COMMITTED, the transaction's under
 * REPEATABLE READ, where a row changed since is a serialization failure).
 * False when there is none.
 */
static bool
credit_lock_referenced(const CreditForeignKey *fk, Datum key, Relation *referenced_out)
{
	Relation	referenced = table_open(fk->referenced, RowShareLock);
	Relation	index = index_open(fk->index, AccessShareLock);
	TupleTableSlot *row = table_slot_create(referenced, NULL);
	Snapshot	snapshot = GetActiveSnapshot();
	IndexScanDesc scan;
	ScanKeyData scankey;
	TM_FailureData tmfd;
	bool		found;

	ScanKeyInit(&scankey, 1, BTEqualStrategyNumber, fk->equal, key);
	scan = index_beginscan(referenced, index, snapshot, 1, 0);
	index_rescan(scan, &scankey, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, row);
	index_endscan(scan);
	if (found)
	{
		switch (table_tuple_lock(referenced, &row->tts_tid, snapshot, row,
								 GetCurrentCommandId(false), LockTupleKeyShare, LockWaitBlock,
								 IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
								 &tmfd))
		{
			case TM_Ok:
				/* Followed to a newer version: it must still hold the key. */
				if (tmfd.traversed)
				{
					bool		keynull;
					Datum		now = slot_getattr(row, index->rd_index->indkey.values[0], &keynull);

					found = !keynull && DatumGetBool(OidFunctionCall2(fk->equal, now, key));
				}
				break;
			case TM_Updated:
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent update")));
				found = false;
				break;
			default:
				found = false;
				break;
		}
	}
	ExecDropSingleTupleTableSlot(row);
	index_close(index, NoLock);
	if (referenced_out != NULL)
		*referenced_out = referenced;
	else
		table_close(referenced, NoLock);
	return found;
}

/* The check of one foreign key of the ledger row: 23503 as PostgreSQL reports it. */
static void
credit_check_foreign_key(Relation ledger, const CreditForeignKey *fk, TupleTableSlot *entry)
{
	bool		isnull;
	Datum		key = slot_getattr(entry, fk->attno, &isnull);
	Relation	referenced;
	Oid			output;
	bool		varlena;

	if (isnull)
		return;					/* a null key references nothing */
	if (credit_lock_referenced(fk, key, &referenced))
	{
		table_close(referenced, NoLock);
		return;
	}
	getTypeOutputInfo(fk->type, &output, &varlena);
	ereport(ERROR,
			(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
			 errmsg("insert or update on table \"%s\" violates foreign key constraint \"%s\"",
					RelationGetRelationName(ledger), NameStr(fk->name)),
			 errdetail("Key (%s)=(%s) is not present in table \"%s\".",
					   NameStr(TupleDescAttr(RelationGetDescr(ledger), fk->attno - 1)->attname),
					   OidOutputFunctionCall(output, key),
					   RelationGetRelationName(referenced)),
			 errtableconstraint(ledger, NameStr(fk->name))));
}

static inline int32
credit_slot_int4(TupleTableSlot *slot, AttrNumber attno, bool *isnull)
{
	Datum		value = slot_getattr(slot, attno, isnull);

	return *isnull ? 0 : DatumGetInt32(value);
}

static inline int64
credit_slot_int8(TupleTableSlot *slot, AttrNumber attno, bool *isnull)
{
	Datum		value = slot_getattr(slot, attno, isnull);

	return *isnull ? 0 : DatumGetInt64(value);
}

CreditLockResult
credit_direct_lock(Datum user_id, Datum session_id, bool session_isnull,
				   CreditBalanceRow *row, CreditDirect **result)
{
	Oid			balances_id;
	Oid			ledger_id;
	CreditDirect *direct;
	const CreditShape *shape;
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData key;
	TM_FailureData tmfd;
	TM_Result	locked;
	bool		found;
	bool		isnull;

	*result = NULL;
	/* What the statements refuse or handle specially, they do themselves. */
	if (!credit_direct_enabled || XactReadOnly || RecoveryInProgress() || IsInParallelMode() ||
		SessionReplicationRole != SESSION_REPLICATION_ROLE_ORIGIN)
		return CREDIT_NOT_DIRECT;
	if (!credit_caller_may_write(&balances_id, &ledger_id))
		return CREDIT_NOT_DIRECT;

	direct = palloc0(sizeof(CreditDirect));
	direct->balances = table_open(balances_id, RowExclusiveLock);
	direct->ledger = table_open(ledger_id, RowExclusiveLock);
	/* As a statement does: see this transaction's earlier changes, with a fresh snapshot. */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	shape = credit_shape(direct->balances, direct->ledger);
	if (shape == NULL)
	{
		credit_direct_close(direct);
		return CREDIT_NOT_DIRECT;
	}
	direct->shape = shape;
	credit_direct_prepare(direct);

	/*
	 * The rows the ledger row will reference by user and session: locked now
	 * (the lock lasts until the transaction ends), not while the balance row
	 * is held.  No user: no balance row either.
	 */
	for (int i = 0; i < shape->nforeign_keys; i++)
	{
		const CreditForeignKey *fk = &shape->foreign_keys[i];

		if (fk->attno == shape->ledger_attno[L_USER])
		{
			if (!credit_lock_referenced(fk, user_id, NULL))
			{
				credit_direct_close(direct);
				return CREDIT_NO_ROW;
			}
			direct->locked_key[i] = user_id;
		}
		else if (fk->attno == shape->ledger_attno[L_SESSION] && !session_isnull)
		{
			if (!credit_lock_referenced(fk, session_id, NULL))
			{
				credit_direct_close(direct);
				return CREDIT_NOT_DIRECT;
			}
			direct->locked_key[i] = session_id;
		}
		else
			continue;
		direct->key_locked[i] = true;
	}

	/* Find the row through the unique index on user_id ... */
	index = index_open(shape->user_index, RowExclusiveLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, user_id);
	scan = index_beginscan(direct->balances, index, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, direct->row);
	index_endscan(scan);
	index_close(index, NoLock);
	if (!found)
	{
		credit_direct_close(direct);
		return CREDIT_NO_ROW;
	}

	/*
	 * ... and lock it as FOR UPDATE does: wait for a concurrent writer, then,
	 * under READ COMMITTED, lock and read its newest version.
	 */
	locked = table_tuple_lock(direct->balances, &direct->row->tts_tid, GetActiveSnapshot(),
							  direct->row, GetCurrentCommandId(false), LockTupleExclusive,
							  LockWaitBlock,
							  IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
							  &tmfd);
	if (locked != TM_Ok ||
		(tmfd.traversed &&
		 !DatumGetBool(DirectFunctionCall2(uuid_eq, user_id,
										   slot_getattr(direct->row, shape->balance_attno[B_USER],
														&isnull)))))
	{
		/* Deleted, moved to another user, changed later in this transaction. */
		credit_direct_close(direct);
		return CREDIT_NOT_DIRECT;
	}

	row->subscription = credit_slot_int4(direct->row, shape->balance_attno[B_SUBSCRIPTION], &isnull);
	row->topup = credit_slot_int4(direct->row, shape->balance_attno[B_TOPUP], &isnull);
	row->held = credit_slot_int4(direct->row, shape->balance_attno[B_HELD], &isnull);
	row->head_lot = credit_slot_int8(direct->row, shape->balance_attno[B_HEAD_LOT], &isnull);
	row->has_head = !isnull;
	row->head_remaining = credit_slot_int4(direct->row, shape->balance_attno[B_HEAD_REMAINING], &isnull);
	row->head_value_units = credit_slot_int8(direct->row, shape->balance_attno[B_HEAD_VALUE], &isnull);
	row->head_subscription = DatumGetBool(slot_getattr(direct->row,
													   shape->balance_attno[B_HEAD_SUBSCRIPTION],
													   &isnull)) && !isnull;
	*result = direct;
	return CREDIT_LOCKED;
}

/*
 * Update the locked balance row to newrow as ExecSimpleRelationUpdate does
 * (before-row triggers, constraints, the new version, index entries unless
 * the update is HOT, after-row triggers), opening the indexes only when the
 * new version needs entries in them.
 */
static void
credit_update_row(CreditDirect *direct)
{
	ResultRelInfo *info = direct->balance_info;
	EState	   *estate = direct->estate;
	ItemPointer tid = &direct->row->tts_tid;
	List	   *recheck = NIL;
	bool		update_indexes;

	CheckCmdReplicaIdentity(direct->balances, CMD_UPDATE);
	if (info->ri_TrigDesc != NULL && info->ri_TrigDesc->trig_update_before_row &&
		!ExecBRUpdateTriggers(estate, &direct->epqstate, info, tid, NULL, direct->newrow, NULL))
		return;					/* a trigger said "do nothing" */
	if (RelationGetDescr(direct->balances)->constr != NULL)
		ExecConstraints(info, direct->newrow, estate);
	simple_table_tuple_update(direct->balances, tid, direct->newrow, estate->es_snapshot,
							  &update_indexes);
	if (update_indexes)
	{
		ExecOpenIndices(info, false);
		recheck = ExecInsertIndexTuples(info, direct->newrow, estate, true, false, NULL, NIL);
	}
	ExecARUpdateTriggers(estate, info, NULL, NULL, tid, NULL, direct->newrow, recheck, NULL, false);
	list_free(recheck);
}

/*
 * Append the ledger row as ExecSimpleRelationInsert does (before-row
 * triggers, constraints, the row, its index entries), with the foreign key
 * checks run here at once instead of queued as after-row triggers (those of
 * the user and session were run before the balance row was locked).
 */
static void
credit_insert_entry(CreditDirect *direct)
{
	ResultRelInfo *info = direct->ledger_info;
	Relation	ledger = direct->ledger;
	const CreditShape *shape = direct->shape;

	if (info->ri_TrigDesc != NULL && info->ri_TrigDesc->trig_insert_before_row &&
		!ExecBRInsertTriggers(direct->estate, info, direct->entry))
		return;					/* a trigger said "do nothing" */
	if (RelationGetDescr(ledger)->constr != NULL)
		ExecConstraints(info, direct->entry, direct->estate);
	simple_table_tuple_insert(ledger, direct->entry);
	if (info->ri_NumIndices > 0)
		list_free(ExecInsertIndexTuples(info, direct->entry, direct->estate, false, false, NULL, NIL));
	for (int i = 0; i < shape->nforeign_keys; i++)
	{
		const CreditForeignKey *fk = &shape->foreign_keys[i];
		bool		isnull;
		Datum		key = slot_getattr(direct->entry, fk->attno, &isnull);

		/* Locked before for this very key (a before-row trigger may have changed it). */
		if (direct->key_locked[i] && !isnull &&
			DatumGetBool(OidFunctionCall2(fk->equal, direct->locked_key[i], key)))
			continue;
		credit_check_foreign_key(ledger, fk, direct->entry);
	}
}

void
credit_direct_apply(CreditDirect *direct, const CreditHeadTake *take)
{
	const CreditShape *shape = direct->shape;
	TupleDesc	balance_desc = RelationGetDescr(direct->balances);
	TupleDesc	ledger_desc = RelationGetDescr(direct->ledger);
	TupleTableSlot *newrow = direct->newrow;
	TupleTableSlot *entry = direct->entry;
	MemoryContext caller = MemoryContextSwitchTo(direct->estate->es_query_cxt);
	Numeric		value;
	bool		user_isnull;

	/* The balance row: the pots and the head lot change by what is taken. */
	slot_getallattrs(direct->row);
	ExecClearTuple(newrow);
	memcpy(newrow->tts_values, direct->row->tts_values, balance_desc->natts * sizeof(Datum));
	memcpy(newrow->tts_isnull, direct->row->tts_isnull, balance_desc->natts * sizeof(bool));
#define SET_INT4(attno, delta) \
	(newrow->tts_values[(attno) - 1] = \
	 Int32GetDatum(DatumGetInt32(newrow->tts_values[(attno) - 1]) - (delta)))
	SET_INT4(shape->balance_attno[B_SUBSCRIPTION], take->from_subscription);
	SET_INT4(shape->balance_attno[B_TOPUP], take->from_topup);
	SET_INT4(shape->balance_attno[B_HEAD_REMAINING], take->amount);
#undef SET_INT4
	newrow->tts_values[shape->balance_attno[B_HEAD_VALUE] - 1] =
		Int64GetDatum(DatumGetInt64(newrow->tts_values[shape->balance_attno[B_HEAD_VALUE] - 1]) -
					  take->value_units);
	ExecStoreVirtualTuple(newrow);
	credit_update_row(direct);

	/* The ledger row, every column given (the defaults the DDL names, written out). */
	ExecClearTuple(entry);
	memset(entry->tts_isnull, true, ledger_desc->natts * sizeof(bool));
#define SET_COLUMN(column, datum) \
	(entry->tts_values[shape->ledger_attno[column] - 1] = (datum), \
	 entry->tts_isnull[shape->ledger_attno[column] - 1] = false)
	SET_COLUMN(L_ID, am_random_uuid());
	SET_COLUMN(L_USER, slot_getattr(direct->row, shape->balance_attno[B_USER], &user_isnull));
	SET_COLUMN(L_TYPE, CStringGetTextDatum("session_deduct"));
	SET_COLUMN(L_AMOUNT, Int32GetDatum(-take->amount));
	SET_COLUMN(L_CREDIT_TYPE,
			   CStringGetTextDatum(take->from_subscription > 0 ? "subscription" : "topup"));
	if (!take->description_isnull)
		SET_COLUMN(L_DESCRIPTION, take->description);
	if (!take->session_isnull)
		SET_COLUMN(L_SESSION, take->session_id);
	SET_COLUMN(L_CREATED_AT, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
	SET_COLUMN(L_LOT, Int64GetDatum(take->lot));
	/* value_usd = -value / 10^4, as numeric(14,4) (its typmod checked as assignment does). */
	value = int64_div_fast_to_numeric(-take->value_units, 4);
	SET_COLUMN(L_VALUE, DirectFunctionCall2(numeric, NumericGetDatum(value),
											Int32GetDatum(shape->value_typmod)));
#undef SET_COLUMN
	ExecStoreVirtualTuple(entry);
	credit_insert_entry(direct);

	MemoryContextSwitchTo(caller);
	credit_direct_close(direct);
}

void
credit_direct_end(CreditDirect *direct)
{
	credit_direct_close(direct);
}
