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
 * through the executor's single-row routines that logical replication
 * applies changes with (ExecSimpleRelationUpdate; for the ledger row the
 * same steps as ExecSimpleRelationInsert): row triggers fire
 * (touch_updated_at), check and not-null constraints are checked (compiled
 * once, not parsed from text per statement), every index is maintained (HOT
 * when it can be), as a statement would.  The ledger's foreign keys are
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
 * the ledger but single-column, immediate foreign key checks.  Otherwise, or when anything
 * unusual happens while locking (the row moved to another user, was deleted,
 * was changed later in this transaction), the caller falls back to the
 * saved statements, which decide as the executor does.
 *
 * What the tables look like is checked once and kept until a relcache
 * invalidation of either table (any DDL on them).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "agentmarket.h"
#include "credit_direct.h"

/* The balance row's columns this path reads or writes. */
enum
{
	B_USER, B_SUBSCRIPTION, B_TOPUP, B_HELD, B_HEAD_LOT, B_HEAD_REMAINING,
	B_HEAD_VALUE, B_HEAD_SUBSCRIPTION, B_COLUMNS
};

/* Every column of the ledger (the path fills each one). */
enum
{
	L_ID, L_USER, L_TYPE, L_AMOUNT, L_CREDIT_TYPE, L_DESCRIPTION, L_SESSION,
	L_STRIPE_PAYMENT, L_CREATED_AT, L_LOT, L_VALUE, L_COLUMNS
};

typedef struct CreditColumn
{
	const char *name;
	Oid			type;
} CreditColumn;

static const CreditColumn balance_columns[B_COLUMNS] = {
	{"user_id", UUIDOID},
	{"subscription_credits", INT4OID},
	{"topup_credits", INT4OID},
	{"held_credits", INT4OID},
	{"head_lot_id", INT8OID},
	{"head_remaining", INT4OID},
	{"head_value_units", INT8OID},
	{"head_subscription", BOOLOID},
};

static const CreditColumn ledger_columns[L_COLUMNS] = {
	{"id", UUIDOID},
	{"user_id", UUIDOID},
	{"type", TEXTOID},
	{"amount", INT4OID},
	{"credit_type", TEXTOID},
	{"description", TEXTOID},
	{"session_id", UUIDOID},
	{"stripe_payment_id", TEXTOID},
	{"created_at", TIMESTAMPTZOID},
	{"lot_id", INT8OID},
	{"value_usd", NUMERICOID},
};

/* A single-column foreign key of the ledger, checked by this path itself. */
typedef struct CreditForeignKey
{
	AttrNumber	attno;			/* the referencing column */
	Oid			type;			/* its type (and the referenced key's) */
	Oid			referenced;		/* the referenced table */
	Oid			index;			/* its unique index on the referenced column */
	RegProcedure equal;			/* the index's equality for the type */
	NameData	name;			/* the constraint */
} CreditForeignKey;

#define CREDIT_MAX_FOREIGN_KEYS 4

/* What the tables look like, checked once per relcache generation. */
typedef struct CreditShape
{
	bool		checked;		/* the fields below describe balances/ledger */
	bool		usable;			/* the path may be taken */
	Oid			balances;
	Oid			ledger;
	Oid			user_index;		/* unique btree on credit_balances(user_id) */
	AttrNumber	balance_attno[B_COLUMNS];
	AttrNumber	ledger_attno[L_COLUMNS];
	int32		value_typmod;	/* value_usd's numeric(p, s) */
	int			nforeign_keys;
	CreditForeignKey foreign_keys[CREDIT_MAX_FOREIGN_KEYS];
	/* Check constraints compiled once (a statement parses them from text each time). */
	ExprState **balance_checks;
	ExprState **ledger_checks;
	/* Partial index predicates of the ledger, compiled once, by index. */
	int			npredicates;
	Oid		   *predicate_index;
	ExprState **predicate;
} CreditShape;

static CreditShape shape = {false};
static bool credit_direct_enabled = true;	/* agentmarket.credit_direct_path */
static MemoryContext shape_context = NULL;	/* holds what shape points to */
static bool callback_registered = false;

/* One deduction in progress (between credit_direct_lock and its end). */
struct CreditDirect
{
	Relation	balances;
	Relation	ledger;
	TupleTableSlot *row;		/* the locked balance row */
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

/* Any change to either table (or all relations): check the shape again. */
static void
credit_direct_invalidate(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == shape.balances || relid == shape.ledger ||
		relid == shape.user_index)
		shape.checked = false;
}

/* The attribute numbers of columns (by name and type) in desc; false if one is missing. */
static bool
credit_find_columns(TupleDesc desc, const CreditColumn *columns, int ncolumns,
					AttrNumber *attno, int *live)
{
	int			found = 0;

	*live = 0;
	for (int c = 0; c < ncolumns; c++)
		attno[c] = InvalidAttrNumber;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		(*live)++;
		for (int c = 0; c < ncolumns; c++)
			if (strcmp(NameStr(att->attname), columns[c].name) == 0 &&
				att->atttypid == columns[c].type && attno[c] == InvalidAttrNumber)
			{
				attno[c] = att->attnum;
				found++;
			}
	}
	return found == ncolumns;
}

/* The plain unique btree on user_id alone, or InvalidOid. */
static Oid
credit_user_index(Relation balances, AttrNumber user_attno)
{
	List	   *indexes = RelationGetIndexList(balances);
	ListCell   *lc;
	Oid			result = InvalidOid;

	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;

		if (form->indisunique && form->indimmediate && form->indisvalid &&
			form->indnkeyatts == 1 && form->indkey.values[0] == user_attno &&
			index->rd_rel->relam == BTREE_AM_OID &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL))
			result = RelationGetRelid(index);
		index_close(index, AccessShareLock);
		if (OidIsValid(result))
			break;
	}
	list_free(indexes);
	return result;
}

/*
 * Describe the foreign key constraint of ledger for this path: a
 * single-column, immediate key referencing a table through a btree; false
 * for any other kind.
 */
static bool
credit_add_foreign_key(Relation ledger, Oid constraint)
{
	HeapTuple	tuple;
	Form_pg_constraint form;
	CreditForeignKey *fk;
	int			nkeys;
	AttrNumber	conkey[INDEX_MAX_KEYS];
	AttrNumber	confkey[INDEX_MAX_KEYS];
	Oid			pf_equal[INDEX_MAX_KEYS];
	Oid			pp_equal[INDEX_MAX_KEYS];
	Oid			ff_equal[INDEX_MAX_KEYS];
	Relation	index;
	bool		usable;

	if (shape.nforeign_keys >= CREDIT_MAX_FOREIGN_KEYS)
		return false;
	tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(constraint));
	if (!HeapTupleIsValid(tuple))
		return false;
	form = (Form_pg_constraint) GETSTRUCT(tuple);
	if (form->contype != CONSTRAINT_FOREIGN || form->conrelid != RelationGetRelid(ledger) ||
		form->condeferrable || !OidIsValid(form->conindid))
	{
		ReleaseSysCache(tuple);
		return false;
	}
	DeconstructFkConstraintRow(tuple, &nkeys, conkey, confkey, pf_equal, pp_equal, ff_equal,
							   NULL, NULL);
	fk = &shape.foreign_keys[shape.nforeign_keys];
	fk->attno = conkey[0];
	fk->referenced = form->confrelid;
	fk->index = form->conindid;
	namestrcpy(&fk->name, NameStr(form->conname));
	ReleaseSysCache(tuple);
	if (nkeys != 1)
		return false;
	fk->type = TupleDescAttr(RelationGetDescr(ledger), fk->attno - 1)->atttypid;

	index = index_open(fk->index, AccessShareLock);
	usable = index->rd_rel->relam == BTREE_AM_OID && index->rd_index->indnkeyatts == 1 &&
		index->rd_index->indkey.values[0] == confkey[0] &&
		index->rd_opcintype[0] == fk->type;
	if (usable)
	{
		Oid			equal = get_opfamily_member(index->rd_opfamily[0], fk->type, fk->type,
												BTEqualStrategyNumber);

		fk->equal = OidIsValid(equal) ? get_opcode(equal) : InvalidOid;
		usable = OidIsValid(fk->equal);
	}
	index_close(index, AccessShareLock);
	if (usable)
		shape.nforeign_keys++;
	return usable;
}

/* rel's check constraints compiled in shape_context, as ExecConstraints would compile them. */
static ExprState **
credit_compile_checks(Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	ExprState **checks;

	if (constr == NULL || constr->num_check == 0)
		return NULL;
	checks = MemoryContextAlloc(shape_context, constr->num_check * sizeof(ExprState *));
	for (int i = 0; i < constr->num_check; i++)
	{
		MemoryContext caller = MemoryContextSwitchTo(shape_context);

		checks[i] = ExecInitExpr(expression_planner(stringToNode(constr->check[i].ccbin)), NULL);
		MemoryContextSwitchTo(caller);
	}
	return checks;
}

/*
 * The ledger's partial index predicates compiled in shape_context; false when
 * an index checks uniqueness at the end of the transaction (deferrable),
 * which would need the after-trigger queue.
 */
static bool
credit_compile_predicates(Relation ledger)
{
	List	   *indexes = RelationGetIndexList(ledger);
	ListCell   *lc;
	bool		immediate = true;
	MemoryContext caller = MemoryContextSwitchTo(shape_context);

	shape.npredicates = 0;
	shape.predicate_index = palloc(Max(list_length(indexes), 1) * sizeof(Oid));
	shape.predicate = palloc(Max(list_length(indexes), 1) * sizeof(ExprState *));
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		List	   *predicate = RelationGetIndexPredicate(index);

		immediate = immediate && index->rd_index->indimmediate;
		if (predicate != NIL)
		{
			shape.predicate_index[shape.npredicates] = RelationGetRelid(index);
			shape.predicate[shape.npredicates] = ExecInitQual((List *) expression_planner((Expr *) predicate),
															   NULL);
			shape.npredicates++;
		}
		index_close(index, AccessShareLock);
	}
	MemoryContextSwitchTo(caller);
	list_free(indexes);
	return immediate;
}

/* Give an opened result relation the compiled predicates of its partial indexes. */
static void
credit_use_predicates(ResultRelInfo *info)
{
	for (int i = 0; i < info->ri_NumIndices; i++)
		for (int p = 0; p < shape.npredicates; p++)
			if (RelationGetRelid(info->ri_IndexRelationDescs[i]) == shape.predicate_index[p] &&
				info->ri_IndexRelationInfo[i]->ii_Predicate != NIL)
				info->ri_IndexRelationInfo[i]->ii_PredicateState = shape.predicate[p];
}

/* Check (once per relcache generation) that the path writes what statements would. */
static bool
credit_shape_usable(Relation balances, Relation ledger)
{
	TriggerDesc *bt = balances->trigdesc;
	TriggerDesc *lt = ledger->trigdesc;
	int			live;

	if (shape.checked && shape.balances == RelationGetRelid(balances) &&
		shape.ledger == RelationGetRelid(ledger))
		return shape.usable;
	if (!callback_registered)
	{
		shape_context = AllocSetContextCreate(CacheMemoryContext, "agentmarket credit shape",
											  ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(credit_direct_invalidate, (Datum) 0);
		callback_registered = true;
	}
	MemoryContextReset(shape_context);
	shape.balance_checks = NULL;
	shape.ledger_checks = NULL;
	shape.npredicates = 0;
	shape.balances = RelationGetRelid(balances);
	shape.ledger = RelationGetRelid(ledger);
	shape.user_index = InvalidOid;
	shape.usable = false;
	shape.checked = true;

	if (balances->rd_rel->relkind != RELKIND_RELATION || balances->rd_rel->relispartition ||
		ledger->rd_rel->relkind != RELKIND_RELATION || ledger->rd_rel->relispartition)
		return false;
	if (!credit_find_columns(RelationGetDescr(balances), balance_columns, B_COLUMNS,
							 shape.balance_attno, &live))
		return false;
	/* The ledger row is filled column by column: no column may be left to a default. */
	if (!credit_find_columns(RelationGetDescr(ledger), ledger_columns, L_COLUMNS,
							 shape.ledger_attno, &live) || live != L_COLUMNS)
		return false;
	shape.value_typmod = TupleDescAttr(RelationGetDescr(ledger),
									   shape.ledger_attno[L_VALUE] - 1)->atttypmod;
	/* Statement-level and transition-table triggers belong to statements. */
	if (bt != NULL &&
		(bt->trig_update_before_statement || bt->trig_update_after_statement ||
		 bt->trig_update_instead_row || bt->trig_update_old_table || bt->trig_update_new_table))
		return false;
	if (lt != NULL &&
		(lt->trig_insert_before_statement || lt->trig_insert_after_statement ||
		 lt->trig_insert_instead_row || lt->trig_insert_new_table))
		return false;
	if (RelationGetDescr(ledger)->constr != NULL &&
		RelationGetDescr(ledger)->constr->has_generated_stored)
		return false;
	/* After-row insert triggers: only foreign key checks, which this path runs itself. */
	shape.nforeign_keys = 0;
	for (int i = 0; lt != NULL && i < lt->numtriggers; i++)
	{
		Trigger    *trigger = &lt->triggers[i];

		if (!TRIGGER_FOR_ROW(trigger->tgtype) || !TRIGGER_FOR_AFTER(trigger->tgtype) ||
			!TRIGGER_FOR_INSERT(trigger->tgtype) ||
			trigger->tgenabled == TRIGGER_DISABLED ||
			trigger->tgenabled == TRIGGER_FIRES_ON_REPLICA)
			continue;
		if (RI_FKey_trigger_type(trigger->tgfoid) != RI_TRIGGER_FK ||
			!credit_add_foreign_key(ledger, trigger->tgconstraint))
			return false;
	}
	shape.user_index = credit_user_index(balances, shape.balance_attno[B_USER]);
	if (!OidIsValid(shape.user_index))
		return false;
	shape.balance_checks = credit_compile_checks(balances);
	shape.ledger_checks = credit_compile_checks(ledger);
	shape.usable = credit_compile_predicates(ledger);
	return shape.usable;
}

/* Whether the current user may write both tables directly, as statements would let it. */
static bool
credit_caller_may_write(Oid balances, Oid ledger)
{
	Oid			user = GetUserId();

	if (pg_class_aclmask(balances, user, ACL_SELECT | ACL_UPDATE, ACLMASK_ALL) !=
		(ACL_SELECT | ACL_UPDATE) ||
		pg_class_aclmask(ledger, user, ACL_INSERT, ACLMASK_ALL) != ACL_INSERT)
		return false;
	/* Row security: the policies would be applied by statements only. */
	return check_enable_rls(balances, InvalidOid, true) != RLS_ENABLED &&
		check_enable_rls(ledger, InvalidOid, true) != RLS_ENABLED;
}

/* Close what credit_direct_lock opened (locks stay until the transaction ends). */
static void
credit_direct_close(CreditDirect *direct)
{
	if (direct->row != NULL)
		ExecDropSingleTupleTableSlot(direct->row);
	table_close(direct->ledger, NoLock);
	table_close(direct->balances, NoLock);
	PopActiveSnapshot();
	pfree(direct);
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
credit_direct_lock(Datum user_id, CreditBalanceRow *row, CreditDirect **result)
{
	Oid			schema;
	Oid			balances_id;
	Oid			ledger_id;
	CreditDirect *direct;
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
	schema = get_namespace_oid("agentmarket", true);
	balances_id = OidIsValid(schema) ? get_relname_relid("credit_balances", schema) : InvalidOid;
	ledger_id = OidIsValid(schema) ? get_relname_relid("credit_transactions", schema) : InvalidOid;
	if (!OidIsValid(balances_id) || !OidIsValid(ledger_id) ||
		!credit_caller_may_write(balances_id, ledger_id))
		return CREDIT_NOT_DIRECT;

	direct = palloc0(sizeof(CreditDirect));
	direct->balances = table_open(balances_id, RowExclusiveLock);
	direct->ledger = table_open(ledger_id, RowExclusiveLock);
	/* As a statement does: see this transaction's earlier changes, with a fresh snapshot. */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!credit_shape_usable(direct->balances, direct->ledger))
	{
		credit_direct_close(direct);
		return CREDIT_NOT_DIRECT;
	}

	/* Find the row through the unique index on user_id ... */
	direct->row = table_slot_create(direct->balances, NULL);
	index = index_open(shape.user_index, RowExclusiveLock);
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
										   slot_getattr(direct->row, shape.balance_attno[B_USER],
														&isnull)))))
	{
		/* Deleted, moved to another user, changed later in this transaction. */
		credit_direct_close(direct);
		return CREDIT_NOT_DIRECT;
	}

	row->subscription = credit_slot_int4(direct->row, shape.balance_attno[B_SUBSCRIPTION], &isnull);
	row->topup = credit_slot_int4(direct->row, shape.balance_attno[B_TOPUP], &isnull);
	row->held = credit_slot_int4(direct->row, shape.balance_attno[B_HELD], &isnull);
	row->head_lot = credit_slot_int8(direct->row, shape.balance_attno[B_HEAD_LOT], &isnull);
	row->has_head = !isnull;
	row->head_remaining = credit_slot_int4(direct->row, shape.balance_attno[B_HEAD_REMAINING], &isnull);
	row->head_value_units = credit_slot_int8(direct->row, shape.balance_attno[B_HEAD_VALUE], &isnull);
	row->head_subscription = DatumGetBool(slot_getattr(direct->row,
													   shape.balance_attno[B_HEAD_SUBSCRIPTION],
													   &isnull)) && !isnull;
	*result = direct;
	return CREDIT_LOCKED;
}

/*
 * The referenced row of a foreign key, found and locked FOR KEY SHARE as the
 * foreign key's own check does (a fresh snapshot under READ COMMITTED, the
 * transaction's under REPEATABLE READ); 23503 as it reports when missing.
 */
static void
credit_check_foreign_key(Relation ledger, const CreditForeignKey *fk, TupleTableSlot *entry)
{
	bool		isnull;
	Datum		key = slot_getattr(entry, fk->attno, &isnull);
	Relation	referenced;
	Relation	index;
	TupleTableSlot *row;
	IndexScanDesc scan;
	ScanKeyData scankey;
	Snapshot	snapshot;
	TM_FailureData tmfd;
	bool		found;

	if (isnull)
		return;					/* a null key references nothing */
	referenced = table_open(fk->referenced, RowShareLock);
	index = index_open(fk->index, AccessShareLock);
	row = table_slot_create(referenced, NULL);
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
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
	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(row);
	index_close(index, NoLock);
	if (!found)
	{
		Oid			output;
		bool		varlena;

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
	table_close(referenced, NoLock);
}

/*
 * Append the ledger row as ExecSimpleRelationInsert does (before-row
 * triggers, constraints, the row, its index entries), with the foreign key
 * checks run here at once instead of queued as after-row triggers.
 */
static void
credit_insert_entry(ResultRelInfo *info, EState *estate, TupleTableSlot *entry)
{
	Relation	ledger = info->ri_RelationDesc;

	if (info->ri_TrigDesc != NULL && info->ri_TrigDesc->trig_insert_before_row &&
		!ExecBRInsertTriggers(estate, info, entry))
		return;					/* a trigger said "do nothing" */
	if (RelationGetDescr(ledger)->constr != NULL)
		ExecConstraints(info, entry, estate);
	simple_table_tuple_insert(ledger, entry);
	if (info->ri_NumIndices > 0)
		list_free(ExecInsertIndexTuples(info, entry, estate, false, false, NULL, NIL));
	for (int i = 0; i < shape.nforeign_keys; i++)
		credit_check_foreign_key(ledger, &shape.foreign_keys[i], entry);
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

void
credit_direct_apply(CreditDirect *direct, const CreditHeadTake *take)
{
	EState	   *estate = CreateExecutorState();
	MemoryContext caller = MemoryContextSwitchTo(estate->es_query_cxt);
	TupleDesc	balance_desc = RelationGetDescr(direct->balances);
	TupleDesc	ledger_desc = RelationGetDescr(direct->ledger);
	ResultRelInfo *balance_info = makeNode(ResultRelInfo);
	ResultRelInfo *ledger_info = makeNode(ResultRelInfo);
	Bitmapset  *updated = NULL;
	Bitmapset  *inserted = NULL;
	TupleTableSlot *newrow;
	TupleTableSlot *entry;
	EPQState	epqstate;
	Numeric		value;
	bool		user_isnull;
	LOCAL_FCINFO(uuid_call, 0);

	updated = credit_add_column(updated, shape.balance_attno[B_SUBSCRIPTION]);
	updated = credit_add_column(updated, shape.balance_attno[B_TOPUP]);
	updated = credit_add_column(updated, shape.balance_attno[B_HEAD_REMAINING]);
	updated = credit_add_column(updated, shape.balance_attno[B_HEAD_VALUE]);
	for (int c = 0; c < L_COLUMNS; c++)
		inserted = credit_add_column(inserted, shape.ledger_attno[c]);
	ExecInitRangeTable(estate, list_make2(credit_rte(direct->balances, NULL, updated),
										  credit_rte(direct->ledger, inserted, NULL)));
	estate->es_relations[0] = direct->balances;
	estate->es_relations[1] = direct->ledger;
	InitResultRelInfo(balance_info, direct->balances, 1, NULL, 0);
	InitResultRelInfo(ledger_info, direct->ledger, 2, NULL, 0);
	/* Where the trigger machinery looks for the relations it fires on. */
	estate->es_opened_result_relations = list_make2(balance_info, ledger_info);
	estate->es_output_cid = GetCurrentCommandId(true);
	estate->es_snapshot = GetActiveSnapshot();
	balance_info->ri_ConstraintExprs = shape.balance_checks;
	ledger_info->ri_ConstraintExprs = shape.ledger_checks;
	ExecOpenIndices(balance_info, false);
	ExecOpenIndices(ledger_info, false);
	credit_use_predicates(ledger_info);
	EvalPlanQualInit(&epqstate, estate, NULL, NIL, -1);
	AfterTriggerBeginQuery();

	/* The balance row: the pots and the head lot change by what is taken. */
	newrow = ExecInitExtraTupleSlot(estate, balance_desc, &TTSOpsVirtual);
	slot_getallattrs(direct->row);
	ExecClearTuple(newrow);
	memcpy(newrow->tts_values, direct->row->tts_values, balance_desc->natts * sizeof(Datum));
	memcpy(newrow->tts_isnull, direct->row->tts_isnull, balance_desc->natts * sizeof(bool));
#define SET_INT4(attno, delta) \
	(newrow->tts_values[(attno) - 1] = \
	 Int32GetDatum(DatumGetInt32(newrow->tts_values[(attno) - 1]) - (delta)))
	SET_INT4(shape.balance_attno[B_SUBSCRIPTION], take->from_subscription);
	SET_INT4(shape.balance_attno[B_TOPUP], take->from_topup);
	SET_INT4(shape.balance_attno[B_HEAD_REMAINING], take->amount);
#undef SET_INT4
	newrow->tts_values[shape.balance_attno[B_HEAD_VALUE] - 1] =
		Int64GetDatum(DatumGetInt64(newrow->tts_values[shape.balance_attno[B_HEAD_VALUE] - 1]) -
					  take->value_units);
	ExecStoreVirtualTuple(newrow);
	ExecSimpleRelationUpdate(balance_info, estate, &epqstate, direct->row, newrow);

	/* The ledger row, every column given (the defaults the DDL names, written out). */
	entry = ExecInitExtraTupleSlot(estate, ledger_desc, &TTSOpsVirtual);
	ExecClearTuple(entry);
	memset(entry->tts_isnull, true, ledger_desc->natts * sizeof(bool));
#define SET_COLUMN(column, datum) \
	(entry->tts_values[shape.ledger_attno[column] - 1] = (datum), \
	 entry->tts_isnull[shape.ledger_attno[column] - 1] = false)
	InitFunctionCallInfoData(*uuid_call, NULL, 0, InvalidOid, NULL, NULL);
	SET_COLUMN(L_ID, gen_random_uuid(uuid_call));
	SET_COLUMN(L_USER, slot_getattr(direct->row, shape.balance_attno[B_USER], &user_isnull));
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
											Int32GetDatum(shape.value_typmod)));
#undef SET_COLUMN
	ExecStoreVirtualTuple(entry);
	credit_insert_entry(ledger_info, estate, entry);

	/* Any after-row trigger of the balance row queued above. */
	AfterTriggerEndQuery(estate);
	EvalPlanQualEnd(&epqstate);
	ExecCloseIndices(ledger_info);
	ExecCloseIndices(balance_info);
	ExecResetTupleTable(estate->es_tupleTable, false);
	MemoryContextSwitchTo(caller);
	FreeExecutorState(estate);
	credit_direct_close(direct);
}

void
credit_direct_end(CreditDirect *direct)
{
	credit_direct_close(direct);
}
