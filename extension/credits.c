/*-------------------------------------------------------------------------
 * credits.c
 *	  deduct_credits: the hot path of the credit ledger.
 *
 * One call locks the user's balance row (a saved plan, SELECT ... FOR
 * UPDATE), decides the split (subscription credits first, then top-up), and
 * applies it with one more saved statement that takes the credits from the
 * first lot in burn order (lots.sql), updates the row and appends one ledger
 * row carrying the value consumed.  When that lot does not cover the amount,
 * a PL/pgSQL function takes them lot by lot instead.  Only that user's row is locked, so
 * deductions of different users never wait for each other, and deductions of
 * one user are serialized: no double spending, no pot below zero.
 *
 * The head-lot case is written without statements when it can be
 * (credit_direct.c: the same lock, rows, triggers, constraints and checks,
 * at a fraction of the executor's start-up cost); the statements above are
 * its fallback and the only path for everything else.
 *
 * With an idempotency key, the deduction runs under the ledger's one
 * idempotency executor (credits_idempotency.c); without one, it runs alone.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "agentmarket.h"
#include "credit_direct.h"
#include "credits.h"

/* A user's balances after a deduction (the SQL type agentmarket.credit_state). */
typedef struct CreditState
{
	int32		subscription;
	int32		topup;
	int32		held;
} CreditState;

/* The head lot as the balance row carries it (lots.sql). */
typedef struct HeadLot
{
	int64		lot;			/* 0: no lot with credits */
	int32		remaining;
	int64		value_units;	/* 1e-4 USD */
	bool		subscription;
} HeadLot;

/* The arguments of one deduct_credits call. */
typedef struct DeductArgs
{
	Datum		user_id;
	int32		amount;
	Datum		session_id;
	bool		session_isnull;
	Datum		description;
	bool		description_isnull;
} DeductArgs;

/* Saved plans, prepared once per backend. */
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr user_plan = NULL;
static SPIPlanPtr session_plan = NULL;
static SPIPlanPtr apply_plan = NULL;
static SPIPlanPtr take_plan = NULL;
static SPIPlanPtr head_plan = NULL;
static SPIPlanPtr pots_lock_plan = NULL;
static SPIPlanPtr pots_apply_plan = NULL;

PG_FUNCTION_INFO_V1(deduct_credits);

/* Prepare a statement once and keep it for the life of the backend. */
static SPIPlanPtr
credit_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not prepare a credit ledger statement: %s",
						SPI_result_code_string(SPI_result))));
	if (SPI_keepplan(plan) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not keep a credit ledger statement")));
	return plan;
}

/* The user and session lookups, the same on every schema (first call in a backend). */
static void
credit_prepare_lookups(void)
{
	Oid			uuid_arg[1] = {UUIDOID};

	if (session_plan != NULL)
		return;
	user_plan = credit_prepare(
		"SELECT 1 FROM agentmarket.users WHERE id OPERATOR(pg_catalog.=) $1",
		1, uuid_arg);
	/* Last: the others are ready once this is set. */
	session_plan = credit_prepare(
		"SELECT user_id FROM agentmarket.sessions WHERE id OPERATOR(pg_catalog.=) $1",
		1, uuid_arg);
}

/* Prepare every statement deduct_credits uses (first call in a backend). */
static void
credit_prepare_plans(void)
{
	Oid			uuid_arg[1] = {UUIDOID};
	Oid			apply_args[8] = {UUIDOID, INT4OID, INT4OID, TEXTOID, UUIDOID, INT4OID, INT8OID, INT8OID};
	Oid			take_args[4] = {UUIDOID, INT4OID, TEXTOID, UUIDOID};

	if (lock_plan != NULL)
		return;
	credit_prepare_lookups();
	/*
	 * The fast path: the whole amount from the head lot, the first lot in
	 * burn order, whose remaining credits and value the balance row carries
	 * while it is the head (lots.sql): one row updated, one appended, as
	 * before lots.  Pots and head change by deltas, not absolute values.
	 */
	apply_plan = credit_prepare(
		"WITH balance AS ("
		"  UPDATE agentmarket.credit_balances"
		"     SET subscription_credits = subscription_credits OPERATOR(pg_catalog.-) $2,"
		"         topup_credits = topup_credits OPERATOR(pg_catalog.-) $3,"
		"         head_remaining = head_remaining OPERATOR(pg_catalog.-) $6,"
		"         head_value_units = head_value_units OPERATOR(pg_catalog.-) $7"
		"   WHERE user_id OPERATOR(pg_catalog.=) $1)"
		" INSERT INTO agentmarket.credit_transactions"
		"   (user_id, type, amount, credit_type, description, session_id, lot_id, value_usd)"
		" VALUES ($1, 'session_deduct', OPERATOR(pg_catalog.-) $6,"
		"         CASE WHEN $2 OPERATOR(pg_catalog.>) 0 THEN 'subscription' ELSE 'topup' END,"
		"         $4, $5, $8, ($7 OPERATOR(pg_catalog./) -10000::pg_catalog.numeric))",
		8, apply_args);
	/* Make the first lot in burn order the head (after a PL/pgSQL writer flushed it). */
	head_plan = credit_prepare(
		"SELECT agentmarket_private.credit_lot_load_head($1)",
		1, uuid_arg);
	/* The slow path: several lots, or both pots (PL/pgSQL, lots.sql). */
	take_plan = credit_prepare(
		"SELECT agentmarket_private.credit_lot_take($1, $2, 0, $3, $4)",
		4, take_args);
	/* Last: the others are ready once this is set. */
	lock_plan = credit_prepare(
		"SELECT subscription_credits, topup_credits, held_credits,"
		"       head_lot_id, head_remaining, head_value_units, head_subscription"
		"  FROM agentmarket.credit_balances"
		" WHERE user_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
		1, uuid_arg);
}

/* An int4 column of the current SPI result row (0 when NULL). */
static inline int32
credit_int_column(int row, int column)
{
	bool		isnull;
	Datum		value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
									  column, &isnull);

	return isnull ? 0 : DatumGetInt32(value);
}

/* An int8 column of the current SPI result row; false when NULL. */
static inline bool
credit_int8_column(int row, int column, int64 *result)
{
	bool		isnull;
	Datum		value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
									  column, &isnull);

	*result = isnull ? 0 : DatumGetInt64(value);
	return !isnull;
}

/* A boolean column of the current SPI result row (false when NULL). */
static inline bool
credit_bool_column(int row, int column)
{
	bool		isnull;
	Datum		value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
									  column, &isnull);

	return !isnull && DatumGetBool(value);
}

/* A uuid Datum as text, for messages. */
static inline char *
credit_uuid_text(Datum uuid)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, uuid));
}

/* Raise PT402 with the figures the caller needs. */
static void
credit_raise_insufficient(int64 available, int32 required)
{
	ereport(ERROR,
			(errcode(AM_ERRCODE_INSUFFICIENT_CREDITS),
			 errmsg("insufficient credits"),
			 errdetail_internal("available " INT64_FORMAT ", required %d", available, required)));
}

/* Check that the session exists and belongs to the user (P0002, 22023). */
static void
credit_check_session(const DeductArgs *args)
{
	int			rc;
	bool		isnull;
	Datum		owner;

	rc = SPI_execute_plan(session_plan, (Datum *) &args->session_id, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("session lookup failed: %s", SPI_result_code_string(rc))));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("session not found"),
				 errdetail("No session has id %s.", credit_uuid_text(args->session_id))));
	owner = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull || !DatumGetBool(DirectFunctionCall2(uuid_eq, owner, args->user_id)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("session belongs to another user"),
				 errdetail("Session %s is not a session of user %s.",
						   credit_uuid_text(args->session_id),
						   credit_uuid_text(args->user_id))));
}

/*
 * No balance row: an unknown user (P0002), or a user who never had credits
 * (PT402).  Does not return.
 */
static void
credit_raise_no_balance(const DeductArgs *args)
{
	int			rc = SPI_execute_plan(user_plan, (Datum *) &args->user_id, NULL, true, 1);

	if (rc != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("user lookup failed: %s", SPI_result_code_string(rc))));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("user not found"),
				 errdetail("No user has id %s.", credit_uuid_text(args->user_id))));
	credit_raise_insufficient(0, args->amount);
}

/*
 * Lock the user's balance row with plan (its first columns: subscription,
 * top-up, held) and check the amount is available: held credits are promised
 * to holds.  The row stays the current SPI result for the caller.
 */
static CreditState
credit_lock_balance(SPIPlanPtr plan, const DeductArgs *args)
{
	CreditState state;
	int64		available;
	int			rc = SPI_execute_plan(plan, (Datum *) &args->user_id, NULL, false, 1);

	if (rc != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("balance lookup failed: %s", SPI_result_code_string(rc))));
	if (SPI_processed == 0)
		credit_raise_no_balance(args);
	state.subscription = credit_int_column(0, 1);
	state.topup = credit_int_column(0, 2);
	state.held = credit_int_column(0, 3);
	available = (int64) state.subscription + state.topup - state.held;
	if (available < args->amount)
		credit_raise_insufficient(available, args->amount);
	return state;
}

#ifdef HAVE_INT128
/* The value of amount credits taken from a head lot: pro rata, rounded down to 1e-4 USD; the last credit takes the rest. */
static inline int64
credit_head_value(int64 value_units, int32 remaining, int32 amount)
{
	return (remaining == amount) ? value_units
		: (int64) (((int128) value_units * amount) / remaining);
}

/*
 * The deduction through credit_direct.c: lock the row, and when the head lot
 * covers the amount from its own pot, write both rows there.  Returns false
 * when the statements must do it (the row may then be locked already).
 */
static bool
credit_deduct_direct(const DeductArgs *args, CreditState *state)
{
	CreditBalanceRow row;
	CreditDirect *direct;
	CreditHeadTake take;
	int64		available;

	switch (credit_direct_lock(args->user_id, args->session_id, args->session_isnull, &row, &direct))
	{
		case CREDIT_NOT_DIRECT:
			return false;
		case CREDIT_NO_ROW:
			credit_raise_no_balance(args);
			break;
		case CREDIT_LOCKED:
			break;
	}
	available = (int64) row.subscription + row.topup - row.held;
	if (available < args->amount)
	{
		credit_direct_end(direct);
		credit_raise_insufficient(available, args->amount);
	}
	take.from_subscription = Min(row.subscription, args->amount);
	take.from_topup = args->amount - take.from_subscription;
	if (!row.has_head || row.head_lot == 0 || row.head_remaining < args->amount ||
		(row.head_subscription ? take.from_topup != 0 : take.from_subscription != 0))
	{
		credit_direct_end(direct);
		return false;
	}
	take.amount = args->amount;
	take.value_units = credit_head_value(row.head_value_units, row.head_remaining, args->amount);
	take.lot = row.head_lot;
	take.description = args->description;
	take.description_isnull = args->description_isnull;
	take.session_id = args->session_id;
	take.session_isnull = args->session_isnull;
	credit_direct_apply(direct, &take);
	state->subscription = row.subscription - take.from_subscription;
	state->topup = row.topup - take.from_topup;
	state->held = row.held;
	return true;
}
#endif

/* The deduction itself: lock, decide, write.  Connected to SPI. */
static CreditState
credit_deduct(const DeductArgs *args)
{
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	HeadLot		head = {0, 0, 0, false};
	CreditState state;
	int32		from_subscription;
	int32		from_topup;
	bool		applied = false;
	int			rc;

	if (!args->session_isnull)
		credit_check_session(args);

#ifdef HAVE_INT128
	/* (Without a session, credit_deduct_connected tried it already.) */
	if (!args->session_isnull && credit_deduct_direct(args, &state))
		return state;
#endif
	state = credit_lock_balance(lock_plan, args);
	from_subscription = Min(state.subscription, args->amount);
	from_topup = args->amount - from_subscription;

	if (credit_int8_column(0, 4, &head.lot) == false)
	{
		/* No head yet: load it (the balance row is ours, the snapshot fresh). */
		rc = SPI_execute_plan(head_plan, (Datum *) &args->user_id, NULL, false, 1);
		if (rc != SPI_OK_SELECT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("head lot lookup failed: %s", SPI_result_code_string(rc))));
		rc = SPI_execute_plan(lock_plan, (Datum *) &args->user_id, NULL, false, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("balance lookup failed: %s", SPI_result_code_string(rc))));
		(void) credit_int8_column(0, 4, &head.lot);
	}
	head.remaining = credit_int_column(0, 5);
	(void) credit_int8_column(0, 6, &head.value_units);
	head.subscription = credit_bool_column(0, 7);

	values[0] = args->user_id;
	values[1] = Int32GetDatum(from_subscription);
	values[2] = Int32GetDatum(from_topup);
	values[3] = args->description;
	values[4] = args->session_id;
	if (args->description_isnull)
		nulls[3] = 'n';
	if (args->session_isnull)
		nulls[4] = 'n';

	/* The head lot covers it, from its own pot (nearly always), else lot by lot. */
#ifdef HAVE_INT128
	if (head.lot != 0 && head.remaining >= args->amount &&
		(head.subscription ? from_topup == 0 : from_subscription == 0))
	{
		int64		value;

		value = credit_head_value(head.value_units, head.remaining, args->amount);
		values[5] = Int32GetDatum(args->amount);
		values[6] = Int64GetDatum(value);
		values[7] = Int64GetDatum(head.lot);
		rc = SPI_execute_plan(apply_plan, values, nulls, false, 0);
		if (rc != SPI_OK_INSERT || SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("deduction was not applied: %s", SPI_result_code_string(rc))));
		applied = true;
	}
#endif
	if (!applied)
	{
		Datum		take_values[4];
		char		take_nulls[4] = {' ', ' ', nulls[3], nulls[4]};

		take_values[0] = args->user_id;
		take_values[1] = Int32GetDatum(args->amount);
		take_values[2] = args->description;
		take_values[3] = args->session_id;
		rc = SPI_execute_plan(take_plan, take_values, take_nulls, false, 0);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("deduction was not applied: %s", SPI_result_code_string(rc))));
	}

	state.subscription -= from_subscription;
	state.topup -= from_topup;
	return state;
}

/*
 * A database still on release 0.1.0.  The module serves every C symbol the
 * released install script names (releases/agentmarket--0.1.0.sql), so that a
 * database keeps working between installing this module and ALTER EXTENSION
 * agentmarket UPDATE.  Only deduct_credits depends on the schema: 0.1.0's
 * balance row carries no head lot and its ledger has no lots, so there it
 * takes the credits from the two pots as 0.1.0 did, subscription first, one
 * ledger row per pot touched.  Decided per call, so a backend that lives
 * through the update follows it.
 */
static bool
credit_schema_has_lots(void)
{
	Oid			schema = get_namespace_oid("agentmarket", true);
	Oid			balances = OidIsValid(schema) ? get_relname_relid("credit_balances", schema) : InvalidOid;

	return !OidIsValid(balances) || get_attnum(balances, "head_lot_id") != InvalidAttrNumber;
}

/* The 0.1.0 statements (first 0.1.0 call in a backend). */
static void
credit_prepare_pots_plans(void)
{
	Oid			uuid_arg[1] = {UUIDOID};
	Oid			apply_args[5] = {UUIDOID, INT4OID, INT4OID, TEXTOID, UUIDOID};

	if (pots_lock_plan != NULL)
		return;
	credit_prepare_lookups();
	pots_apply_plan = credit_prepare(
		"WITH balance AS ("
		"  UPDATE agentmarket.credit_balances"
		"     SET subscription_credits = subscription_credits OPERATOR(pg_catalog.-) $2,"
		"         topup_credits = topup_credits OPERATOR(pg_catalog.-) $3"
		"   WHERE user_id OPERATOR(pg_catalog.=) $1)"
		" INSERT INTO agentmarket.credit_transactions"
		"   (user_id, type, amount, credit_type, description, session_id)"
		" SELECT $1, 'session_deduct', OPERATOR(pg_catalog.-) v.taken, v.pot, $4, $5"
		"   FROM (VALUES ('subscription', $2), ('topup', $3)) v(pot, taken)"
		"  WHERE v.taken OPERATOR(pg_catalog.>) 0",
		5, apply_args);
	/* Last: the others are ready once this is set. */
	pots_lock_plan = credit_prepare(
		"SELECT subscription_credits, topup_credits, held_credits"
		"  FROM agentmarket.credit_balances"
		" WHERE user_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
		1, uuid_arg);
}

/* The 0.1.0 deduction: lock the balance row, split over the pots, write.  Connected to SPI. */
static CreditState
credit_deduct_pots(const DeductArgs *args)
{
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	CreditState state;
	int32		from_subscription;
	int32		from_topup;
	int			rc;

	if (!args->session_isnull)
		credit_check_session(args);
	state = credit_lock_balance(pots_lock_plan, args);
	from_subscription = Min(state.subscription, args->amount);
	from_topup = args->amount - from_subscription;

	values[0] = args->user_id;
	values[1] = Int32GetDatum(from_subscription);
	values[2] = Int32GetDatum(from_topup);
	values[3] = args->description;
	values[4] = args->session_id;
	if (args->description_isnull)
		nulls[3] = 'n';
	if (args->session_isnull)
		nulls[4] = 'n';
	rc = SPI_execute_plan(pots_apply_plan, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT || SPI_processed != (uint64) ((from_subscription > 0) + (from_topup > 0)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("deduction was not applied: %s", SPI_result_code_string(rc))));
	state.subscription -= from_subscription;
	state.topup -= from_topup;
	return state;
}

/* The arguments as the jsonb an idempotency key is bound to. */
static Datum
credit_arguments_jsonb(const DeductArgs *args)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"amount\": %d, \"session_id\": ", args->amount);
	if (args->session_isnull)
		appendStringInfoString(&buf, "null");
	else
		escape_json(&buf, credit_uuid_text(args->session_id));
	appendStringInfoString(&buf, ", \"description\": ");
	if (args->description_isnull)
		appendStringInfoString(&buf, "null");
	else
		escape_json(&buf, TextDatumGetCString(args->description));
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* A credit_state as jsonb, the stored outcome of a key. */
static Datum
credit_state_jsonb(CreditState state)
{
	char	   *json = psprintf("{\"subscription_credits\": %d, \"topup_credits\": %d, "
								"\"held_credits\": %d, \"available_credits\": %d}",
								state.subscription, state.topup, state.held,
								state.subscription + state.topup - state.held);

	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/* One int4 member of a stored credit_state (0 when missing, as jsonb_populate_record). */
static int32
credit_state_member(Jsonb *outcome, const char *name)
{
	JsonbValue	value;

	if (getKeyJsonValueFromContainer(&outcome->root, name, strlen(name), &value) == NULL ||
		value.type != jbvNumeric)
		return 0;
	return DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(value.val.numeric)));
}

/* A stored outcome as a credit_state. */
static CreditState
credit_state_of_jsonb(Datum outcome)
{
	Jsonb	   *jsonb = DatumGetJsonbP(outcome);
	CreditState state;

	state.subscription = credit_state_member(jsonb, "subscription_credits");
	state.topup = credit_state_member(jsonb, "topup_credits");
	state.held = credit_state_member(jsonb, "held_credits");
	return state;
}

/* The deduction as a connected, self-contained step. */
static CreditState
credit_deduct_connected(const DeductArgs *args)
{
	CreditState state;

	if (SPI_connect() != SPI_OK_CONNECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not connect to SPI")));
#ifdef HAVE_INT128
	/* Without a session to check, the direct path first: it needs no plan. */
	if (args->session_isnull)
	{
		credit_prepare_lookups();
		if (credit_deduct_direct(args, &state))
		{
			SPI_finish();
			return state;
		}
	}
#endif
	if (credit_schema_has_lots())
	{
		credit_prepare_plans();
		state = credit_deduct(args);
	}
	else
	{
		credit_prepare_pots_plans();
		state = credit_deduct_pots(args);
	}
	SPI_finish();
	return state;
}

/* The deduction under a claimed key (a CreditOperation): its outcome as jsonb. */
static Datum
credit_deduct_operation(void *context)
{
	return credit_state_jsonb(credit_deduct_connected((const DeductArgs *) context));
}

/* SQL function: agentmarket.deduct_credits */
Datum
deduct_credits(PG_FUNCTION_ARGS)
{
	DeductArgs	args;
	CreditState state;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("user_id must not be null")));
	if (PG_ARGISNULL(1) || PG_GETARG_INT32(1) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount must be a positive number of credits"),
				 PG_ARGISNULL(1) ? errdetail("The amount given was null.")
				 : errdetail("The amount given was %d.", PG_GETARG_INT32(1))));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("deduct_credits must return agentmarket.credit_state")));

	args.user_id = PG_GETARG_DATUM(0);
	args.amount = PG_GETARG_INT32(1);
	args.session_isnull = PG_ARGISNULL(2);
	args.session_id = args.session_isnull ? (Datum) 0 : PG_GETARG_DATUM(2);
	args.description_isnull = PG_ARGISNULL(4);
	args.description = args.description_isnull ? (Datum) 0 : PG_GETARG_DATUM(4);

	if (PG_ARGISNULL(3))
		state = credit_deduct_connected(&args);
	else
		state = credit_state_of_jsonb(credit_idempotent("deduct_credits", args.user_id,
														PG_GETARG_TEXT_PP(3),
														credit_arguments_jsonb(&args),
														credit_deduct_operation, &args));

	values[0] = Int32GetDatum(state.subscription);
	values[1] = Int32GetDatum(state.topup);
	values[2] = Int32GetDatum(state.held);
	values[3] = Int32GetDatum(state.subscription + state.topup - state.held);
	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

PG_FUNCTION_INFO_V1(credit_transaction_shape_ok);
PG_FUNCTION_INFO_V1(credit_pots_ok);

/* Whether a text datum equals a C string. */
static inline bool
credit_text_is(text *value, const char *expected)
{
	Size		len = VARSIZE_ANY_EXHDR(value);

	return len == strlen(expected) && memcmp(VARDATA_ANY(value), expected, len) == 0;
}

/*
 * SQL function: agentmarket_private.credit_transaction_shape_ok
 *
 * The CHECK of a ledger row, in C because a CHECK expression is rebuilt from
 * its stored text by every statement that inserts: a list of text constants
 * costs more than the whole insert.  The rules (also in the README):
 * credit_type is subscription or topup; type is one of those below, with
 * the sign and pot each allows.
 */
Datum
credit_transaction_shape_ok(PG_FUNCTION_ARGS)
{
	text	   *type = PG_GETARG_TEXT_PP(0);
	text	   *credit_type = PG_GETARG_TEXT_PP(1);
	int32		amount = PG_GETARG_INT32(2);
	bool		subscription = credit_text_is(credit_type, "subscription");

	if (!subscription && !credit_text_is(credit_type, "topup"))
		PG_RETURN_BOOL(false);
	if (credit_text_is(type, "session_deduct"))
		PG_RETURN_BOOL(amount < 0);
	if (credit_text_is(type, "topup_purchase"))
		PG_RETURN_BOOL(amount > 0 && !subscription);
	if (credit_text_is(type, "subscription_refresh"))
		PG_RETURN_BOOL(amount > 0 && subscription);
	if (credit_text_is(type, "subscription_expiry"))
		PG_RETURN_BOOL(amount < 0 && subscription);
	if (credit_text_is(type, "free_trial") || credit_text_is(type, "refund") ||
		credit_text_is(type, "dispute_release"))
		PG_RETURN_BOOL(amount > 0);
	/* Stripe's refunds and disputes taking credits back (reconcile.sql). */
	if (credit_text_is(type, "purchase_refund") || credit_text_is(type, "refund_recovery") ||
		credit_text_is(type, "dispute_freeze") || credit_text_is(type, "dispute_lost"))
		PG_RETURN_BOOL(amount < 0);
	PG_RETURN_BOOL(false);
}

/*
 * SQL function: agentmarket_private.credit_pots_ok
 *
 * The CHECK of a balance row (in C for the reason above): no pot below zero,
 * held credits not negative and covered by the pots.
 */
Datum
credit_pots_ok(PG_FUNCTION_ARGS)
{
	int32		subscription = PG_GETARG_INT32(0);
	int32		topup = PG_GETARG_INT32(1);
	int32		held = PG_GETARG_INT32(2);

	PG_RETURN_BOOL(subscription >= 0 && topup >= 0 && held >= 0 &&
				   (int64) held <= (int64) subscription + topup);
}
