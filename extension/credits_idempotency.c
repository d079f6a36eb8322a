/*-------------------------------------------------------------------------
 * credits_idempotency.c
 *	  Durable failed outcomes of idempotent credit calls.
 *
 * A call made with an idempotency key that is refused (not enough credits, a
 * bad state change) raises, so its transaction rolls back, and with it
 * anything that transaction wrote.  Yet a retry with the same key must raise
 * the same error again.  The refusal is therefore written by a short-lived
 * background worker in its own transaction, which commits before the caller
 * raises.  The caller has already rolled back the subtransaction in which it
 * claimed the key, so the worker never waits for a row of its caller.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "agentmarket.h"
#include "credits.h"

/* The strings handed to the worker, in this order, each NUL-terminated. */
#define CREDIT_FAILURE_NFIELDS 5

typedef struct CreditFailureMessage
{
	Oid			database_id;
	bool		recorded;		/* set by the worker after it committed */
	Size		length;			/* bytes used in data */
	char		data[FLEXIBLE_ARRAY_MEMBER];
} CreditFailureMessage;

PGDLLEXPORT void credit_failure_worker_main(Datum main_arg);

PG_FUNCTION_INFO_V1(credit_idempotency_record_failure);

/* Append a JSON string (or null) to buf. */
static void
credit_json_string(StringInfo buf, const char *value)
{
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, value);
}

/*
 * credit_record_failure: write {sqlstate, message, detail} as the outcome of
 * (user_id, idempotency_key) in a committed transaction of its own, unless the
 * key already has one.  Waits for the worker; returns whether it recorded.
 */
bool
credit_record_failure(const char *user_id, const char *idempotency_key,
					  const char *operation, const char *arguments_json,
					  const char *sqlstate, const char *message, const char *detail)
{
	StringInfoData outcome;
	const char *fields[CREDIT_FAILURE_NFIELDS];
	Size		length = 0;
	dsm_segment *segment;
	CreditFailureMessage *msg;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	char	   *cursor;
	bool		recorded;
	int			i;

	initStringInfo(&outcome);
	appendStringInfoString(&outcome, "{\"sqlstate\": ");
	credit_json_string(&outcome, sqlstate);
	appendStringInfoString(&outcome, ", \"message\": ");
	credit_json_string(&outcome, message);
	appendStringInfoString(&outcome, ", \"detail\": ");
	credit_json_string(&outcome, detail);
	appendStringInfoChar(&outcome, '}');

	fields[0] = user_id;
	fields[1] = idempotency_key;
	fields[2] = operation;
	fields[3] = arguments_json;
	fields[4] = outcome.data;
	for (i = 0; i < CREDIT_FAILURE_NFIELDS; i++)
		length += strlen(fields[i]) + 1;

	segment = dsm_create(offsetof(CreditFailureMessage, data) + length, 0);
	msg = dsm_segment_address(segment);
	msg->database_id = MyDatabaseId;
	msg->recorded = false;
	msg->length = length;
	cursor = msg->data;
	for (i = 0; i < CREDIT_FAILURE_NFIELDS; i++)
	{
		Size		n = strlen(fields[i]) + 1;

		memcpy(cursor, fields[i], n);
		cursor += n;
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "$libdir/agentmarket");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "credit_failure_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "agentmarket idempotency recorder for PID %d", MyProcPid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "agentmarket idempotency recorder");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(segment));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_detach(segment);
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not record the failed outcome of idempotency key \"%s\"",
						idempotency_key),
				 errdetail("No background worker slot was free."),
				 errhint("Raise max_worker_processes.")));
		return false;
	}
	(void) WaitForBackgroundWorkerShutdown(handle);
	recorded = msg->recorded;
	dsm_detach(segment);
	if (!recorded)
		ereport(WARNING,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not record the failed outcome of idempotency key \"%s\"",
						idempotency_key),
				 errdetail("The recording worker did not commit; see the server log.")));
	return recorded;
}

/* Entry point of the recording worker: one INSERT in one transaction. */
void
credit_failure_worker_main(Datum main_arg)
{
	dsm_segment *segment;
	CreditFailureMessage *msg;
	Datum		values[CREDIT_FAILURE_NFIELDS];
	Oid			types[CREDIT_FAILURE_NFIELDS];
	char	   *cursor;
	int			i;
	int			rc;

	BackgroundWorkerUnblockSignals();
	segment = dsm_attach(DatumGetUInt32(main_arg));
	if (segment == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not attach to the idempotency message segment")));
	msg = dsm_segment_address(segment);

	BackgroundWorkerInitializeConnectionByOid(msg->database_id, BOOTSTRAP_SUPERUSERID, 0);

	cursor = msg->data;
	for (i = 0; i < CREDIT_FAILURE_NFIELDS; i++)
	{
		values[i] = CStringGetTextDatum(cursor);
		types[i] = TEXTOID;
		cursor += strlen(cursor) + 1;
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not connect to SPI")));
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "recording a failed idempotent credit call");

	/* Never wait long: the caller waits for this worker without deadlock detection. */
	rc = SPI_execute("SET LOCAL lock_timeout = '5s'", false, 0);
	if (rc != SPI_OK_UTILITY)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not set lock_timeout: %s", SPI_result_code_string(rc))));
	rc = SPI_execute_with_args(
		"INSERT INTO agentmarket_private.credit_idempotency "
		"(user_id, idempotency_key, operation, arguments, outcome, failed) "
		"VALUES ($1::pg_catalog.uuid, $2, $3, $4::pg_catalog.jsonb, $5::pg_catalog.jsonb, true) "
		"ON CONFLICT ON CONSTRAINT credit_idempotency_pkey DO NOTHING",
		CREDIT_FAILURE_NFIELDS, types, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not record the failed outcome: %s", SPI_result_code_string(rc))));

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	msg->recorded = true;
	dsm_detach(segment);
	proc_exit(0);
}

/* SQL function: agentmarket_private.credit_idempotency_record_failure */
Datum
credit_idempotency_record_failure(PG_FUNCTION_ARGS)
{
	int			i;

	/* detail (argument 7) may be NULL; everything else is required. */
	for (i = 0; i < 6; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d of credit_idempotency_record_failure must not be null", i + 1)));

	PG_RETURN_BOOL(credit_record_failure(
		DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0))),
		text_to_cstring(PG_GETARG_TEXT_PP(1)),
		text_to_cstring(PG_GETARG_TEXT_PP(2)),
		DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(3))),
		text_to_cstring(PG_GETARG_TEXT_PP(4)),
		text_to_cstring(PG_GETARG_TEXT_PP(5)),
		PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6))));
}
