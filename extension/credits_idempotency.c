/*-------------------------------------------------------------------------
 * credits_idempotency.c
 *	  The one idempotency executor of the credit ledger.
 *
 * Every ledger operation that takes an idempotency key runs through
 * credit_idempotent(): deduct_credits from C, and grant_credits,
 * refresh_subscription_credits, refund_credits, reserve_credits,
 * capture_hold and release_hold through the SQL function credit_execute,
 * which runs the operation's body (agentmarket_private.<operation>(user_id
 * uuid, arguments jsonb) returning its outcome as jsonb).  The protocol:
 *
 *	1. claim the key: insert (user, key, operation, arguments) into
 *	   agentmarket_private.credit_idempotency.  A concurrent call with the
 *	   same key waits on the insert until the first one's transaction ends;
 *	2. a key that was claimed before: the same operation with the same
 *	   arguments gets the first outcome back and changes nothing; anything
 *	   else is refused (22023);
 *	3. a new key: run the operation, store its outcome with the key.
 *
 * Refusals.  A refusal (PT402, 22023, P0002, ...) is raised through and
 * rolls back with the caller's transaction, claim included: no error is
 * recorded, and a retry with the key is decided afresh (a refused call
 * changed nothing, so it cannot happen twice).  The claim is part of the
 * caller's transaction, so no subtransaction is needed: a caller that
 * catches the error has one of its own, which takes the claim back with it.
 * The only recorded errors are those 0.1.0 wrote (outcome {sqlstate,
 * message, detail}, failed = true): they are raised again here, the one
 * place that reads them.
 *
 * Without a key none of this runs: the operation runs alone.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "credits.h"

#define CREDIT_KEY_MAX_CHARS 255

/* Saved plans, prepared once per backend. */
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr first_plan = NULL;
static SPIPlanPtr store_plan = NULL;

PG_FUNCTION_INFO_V1(credit_execute);
PG_FUNCTION_INFO_V1(credit_idempotency_record_failure);

/* Prepare a statement once and keep it for the life of the backend. */
static SPIPlanPtr
idempotency_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not prepare an idempotency statement: %s",
						SPI_result_code_string(SPI_result))));
	if (SPI_keepplan(plan) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not keep an idempotency statement")));
	return plan;
}

/* Prepare the executor's statements (first keyed call in a backend). */
static void
idempotency_prepare_plans(void)
{
	Oid			claim_args[4] = {UUIDOID, TEXTOID, TEXTOID, JSONBOID};
	Oid			first_args[3] = {UUIDOID, TEXTOID, JSONBOID};
	Oid			store_args[3] = {UUIDOID, TEXTOID, JSONBOID};

	if (store_plan != NULL)
		return;
	claim_plan = idempotency_prepare(
		"INSERT INTO agentmarket_private.credit_idempotency"
		"  (user_id, idempotency_key, operation, arguments)"
		" VALUES ($1, $2, $3, $4)"
		" ON CONFLICT ON CONSTRAINT credit_idempotency_pkey DO NOTHING",
		4, claim_args);
	first_plan = idempotency_prepare(
		"SELECT i.operation, i.arguments OPERATOR(pg_catalog.=) $3, i.arguments::pg_catalog.text,"
		"       i.outcome, i.failed,"
		"       i.outcome OPERATOR(pg_catalog.->>) 'sqlstate',"
		"       i.outcome OPERATOR(pg_catalog.->>) 'message',"
		"       i.outcome OPERATOR(pg_catalog.->>) 'detail'"
		"  FROM agentmarket_private.credit_idempotency i"
		" WHERE i.user_id OPERATOR(pg_catalog.=) $1"
		"   AND i.idempotency_key OPERATOR(pg_catalog.=) $2",
		3, first_args);
	/* Last: the others are ready once this is set. */
	store_plan = idempotency_prepare(
		"UPDATE agentmarket_private.credit_idempotency i SET outcome = $3"
		" WHERE i.user_id OPERATOR(pg_catalog.=) $1"
		"   AND i.idempotency_key OPERATOR(pg_catalog.=) $2",
		3, store_args);
}

/* A key is 1 to 255 characters, as the table's CHECK says (22023). */
static void
idempotency_check_key(text *key)
{
	int			bytes = VARSIZE_ANY_EXHDR(key);

	if (bytes == 0 ||
		pg_mbstrlen_with_len(VARDATA_ANY(key), bytes) > CREDIT_KEY_MAX_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid idempotency key"),
				 errdetail("An idempotency key is 1 to 255 characters long.")));
}

/* A text column of the current SPI row, or NULL. */
static char *
idempotency_text_column(int column)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column);
}

/* Raise again an error 0.1.0 recorded as a key's outcome. */
static void
idempotency_raise_recorded(const char *sqlstate, const char *message, const char *detail)
{
	int			code = ERRCODE_INTERNAL_ERROR;

	if (sqlstate != NULL && strlen(sqlstate) == 5 &&
		strspn(sqlstate, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 5)
		code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4]);
	ereport(ERROR,
			(errcode(code),
			 errmsg_internal("%s", message != NULL ? message : "idempotent credit call failed"),
			 (detail != NULL && detail[0] != '\0') ? errdetail_internal("%s", detail) : 0));
}

/*
 * Claim a key.  True when it was claimed before by the same operation with
 * the same arguments: *outcome is then its first outcome (in the caller's
 * memory context).  False when this call owns the key now.
 */
static bool
idempotency_claim(const char *operation, Datum user_id, text *key, Datum arguments,
				  Datum *outcome)
{
	Datum		values[4];
	bool		isnull;
	bool		same_arguments;
	char	   *first_operation;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not connect to SPI")));
	idempotency_prepare_plans();

	values[0] = user_id;
	values[1] = PointerGetDatum(key);
	values[2] = CStringGetTextDatum(operation);
	values[3] = arguments;
	rc = SPI_execute_plan(claim_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("idempotency claim failed: %s", SPI_result_code_string(rc))));
	if (SPI_processed == 1)
	{
		SPI_finish();
		return false;
	}

	/*
	 * The key is known: what was it first used for?  Not read-only, so that
	 * the statement takes a new snapshot and sees a first call that has just
	 * committed while this one waited on the insert.
	 */
	values[2] = arguments;
	rc = SPI_execute_plan(first_plan, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("idempotency lookup failed: %s", SPI_result_code_string(rc))));
	first_operation = idempotency_text_column(1);
	same_arguments = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 2, &isnull));
	if (strcmp(first_operation, operation) != 0 || !same_arguments)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency key already used with different arguments"),
				 errdetail("Key \"%s\" was first used for %s(%s).", text_to_cstring(key),
						   first_operation, idempotency_text_column(3)),
				 errhint("Use a new key for a new operation.")));
	*outcome = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency key is in use by the same call"),
				 errdetail("Key \"%s\" is being used by an unfinished call of this transaction.",
						   text_to_cstring(key))));
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull)))
		idempotency_raise_recorded(idempotency_text_column(6), idempotency_text_column(7),
								   idempotency_text_column(8));
	*outcome = SPI_datumTransfer(*outcome, false, -1);
	SPI_finish();
	return true;
}

/* Store the outcome of the call that claimed the key. */
static void
idempotency_store(Datum user_id, text *key, Datum outcome)
{
	Datum		values[3];
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not connect to SPI")));
	values[0] = user_id;
	values[1] = PointerGetDatum(key);
	values[2] = outcome;
	rc = SPI_execute_plan(store_plan, values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("idempotency store failed: %s", SPI_result_code_string(rc))));
	SPI_finish();
}

/* The executor (credits.h). */
Datum
credit_idempotent(const char *operation, Datum user_id, text *key, Datum arguments,
				  CreditOperation run, void *context)
{
	Datum		outcome;

	idempotency_check_key(key);
	if (idempotency_claim(operation, user_id, key, arguments, &outcome))
		return outcome;
	outcome = run(context);
	idempotency_store(user_id, key, outcome);
	return outcome;
}

/* An operation body as credit_execute calls it. */
typedef struct CreditBodyCall
{
	FmgrInfo	flinfo;
	Datum		user_id;
	Datum		arguments;
} CreditBodyCall;

/* Run an operation body: agentmarket_private.<operation>(user_id, arguments). */
static Datum
credit_execute_body(void *context)
{
	CreditBodyCall *call = (CreditBodyCall *) context;

	return FunctionCall2Coll(&call->flinfo, InvalidOid, call->user_id, call->arguments);
}

/*
 * SQL function: agentmarket_private.credit_execute(operation regprocedure,
 * user_id uuid, idempotency_key text, arguments jsonb) returns jsonb
 *
 * Runs a ledger operation's body, a function (user_id uuid, arguments jsonb)
 * returning jsonb whose name is the operation's, under the caller's
 * idempotency key when one is given.  The body reads its inputs from the
 * arguments the key is bound to, so a repeat is the same call.
 */
Datum
credit_execute(PG_FUNCTION_ARGS)
{
	CreditBodyCall call;
	Oid			body;
	Oid		   *argtypes;
	int			nargs;
	char	   *operation;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operation, user_id and arguments must not be null")));
	body = PG_GETARG_OID(0);
	operation = get_func_name(body);
	if (operation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("credit operation %u does not exist", body)));
	/* Called from C, the body would skip the privilege check of a call. */
	if (pg_proc_aclcheck(body, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for credit operation %s", operation)));
	if (get_func_signature(body, &argtypes, &nargs) != JSONBOID || nargs != 2 ||
		argtypes[0] != UUIDOID || argtypes[1] != JSONBOID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not a credit operation", operation),
				 errdetail("A credit operation takes (user_id uuid, arguments jsonb) and returns jsonb.")));

	fmgr_info(body, &call.flinfo);
	call.user_id = PG_GETARG_DATUM(1);
	call.arguments = PG_GETARG_DATUM(3);
	if (PG_ARGISNULL(2))
		PG_RETURN_DATUM(credit_execute_body(&call));
	PG_RETURN_DATUM(credit_idempotent(operation, call.user_id, PG_GETARG_TEXT_PP(2),
									  call.arguments, credit_execute_body, &call));
}

/*
 * SQL function (0.1.0 only): agentmarket_private.credit_idempotency_record_failure
 *
 * Version 0.1.0 recorded the refusal of a keyed credit call in a short-lived
 * background worker; that left a record behind a transaction that rolled back
 * and needed a worker per refusal.  Refusals now roll back with their caller
 * (above).  The entry point stays, doing nothing, because the released 0.1.0
 * install script declares it and must still load with this library.
 */
Datum
credit_idempotency_record_failure(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(false);
}
