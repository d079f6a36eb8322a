/*-------------------------------------------------------------------------
 * credit_shape.c
 *	  What the credit tables look like to deduct_credits' direct path.
 *
 * The direct path (credit_direct.c) writes a balance row and a ledger row
 * without statements, so it must know the tables as a statement would: the
 * columns it reads and fills (found by name and type, so added or dropped
 * columns elsewhere do not matter; the ledger may have no column it does not
 * fill), the unique btree it finds a user's balance row with, the ledger's
 * foreign keys (checked by the path itself: single-column, immediate,
 * through the referenced table's unique btree), and the triggers (none that
 * belongs to statements).  Check constraints and partial index predicates
 * are compiled here once, where a statement parses them from text each
 * time.  All of it is kept until a relcache invalidation of either table
 * (any DDL on them, or a cache reset).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "credit_shape.h"

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

static CreditShape shape = {false};
static MemoryContext shape_context = NULL;	/* holds what shape points to */
static bool callback_registered = false;

/* Any change to either table (or all relations): check the shape again. */
static void
credit_shape_invalidate(Datum arg, Oid relid)
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

/* Check (once per relcache generation) that the path writes what statements would. */
const CreditShape *
credit_shape(Relation balances, Relation ledger)
{
	TriggerDesc *bt = balances->trigdesc;
	TriggerDesc *lt = ledger->trigdesc;
	int			live;

	if (shape.checked && shape.balances == RelationGetRelid(balances) &&
		shape.ledger == RelationGetRelid(ledger))
		return shape.usable ? &shape : NULL;
	if (!callback_registered)
	{
		shape_context = AllocSetContextCreate(CacheMemoryContext, "agentmarket credit shape",
											  ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(credit_shape_invalidate, (Datum) 0);
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
		return NULL;
	if (!credit_find_columns(RelationGetDescr(balances), balance_columns, B_COLUMNS,
							 shape.balance_attno, &live))
		return NULL;
	/* The ledger row is filled column by column: no column may be left to a default. */
	if (!credit_find_columns(RelationGetDescr(ledger), ledger_columns, L_COLUMNS,
							 shape.ledger_attno, &live) || live != L_COLUMNS)
		return NULL;
	shape.value_typmod = TupleDescAttr(RelationGetDescr(ledger),
									   shape.ledger_attno[L_VALUE] - 1)->atttypmod;
	/* Statement-level and transition-table triggers belong to statements. */
	if (bt != NULL &&
		(bt->trig_update_before_statement || bt->trig_update_after_statement ||
		 bt->trig_update_instead_row || bt->trig_update_old_table || bt->trig_update_new_table))
		return NULL;
	if (lt != NULL &&
		(lt->trig_insert_before_statement || lt->trig_insert_after_statement ||
		 lt->trig_insert_instead_row || lt->trig_insert_new_table))
		return NULL;
	if ((RelationGetDescr(ledger)->constr != NULL &&
		 RelationGetDescr(ledger)->constr->has_generated_stored) ||
		(RelationGetDescr(balances)->constr != NULL &&
		 RelationGetDescr(balances)->constr->has_generated_stored))
		return NULL;
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
			return NULL;
	}
	shape.user_index = credit_user_index(balances, shape.balance_attno[B_USER]);
	if (!OidIsValid(shape.user_index))
		return NULL;
	shape.balance_checks = credit_compile_checks(balances);
	shape.ledger_checks = credit_compile_checks(ledger);
	shape.usable = credit_compile_predicates(ledger);
	return shape.usable ? &shape : NULL;
}

