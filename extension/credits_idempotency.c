/*-------------------------------------------------------------------------
 * credits_idempotency.c
 *	  What is left of recording failed idempotent credit calls.
 *
 * Version 0.1.0 recorded the refusal of a keyed credit call (not enough
 * credits, a bad state change) in a short-lived background worker, so that a
 * retry raised it again although the caller rolled back.  That left a record
 * behind a transaction that rolled back and needed a worker per refusal
 * (concurrent refusals exhausted max_worker_processes).  A refusal now rolls
 * back with its caller and records nothing; a retry is decided afresh.
 *
 * The SQL entry point stays, doing nothing, because the released 0.1.0
 * install script declares it and must still load with this library.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

PG_FUNCTION_INFO_V1(credit_idempotency_record_failure);

/* SQL function (0.1.0 only): agentmarket_private.credit_idempotency_record_failure */
Datum
credit_idempotency_record_failure(PG_FUNCTION_ARGS)
{
	/* Nothing is recorded any more: the refusal rolls back with its caller. */
	PG_RETURN_BOOL(false);
}
