/*-------------------------------------------------------------------------
 * credits.h
 *	  Declarations shared by the credit ledger's C files.
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_CREDITS_H
#define AGENTMARKET_CREDITS_H

#include "postgres.h"

#include "utils/elog.h"

/*
 * Whether an error raised after an idempotency key was claimed is the key's
 * outcome: state-dependent refusals only (not enough credits, bad state
 * change).  Transient errors (deadlock, cancel, serialization) are not.
 */
#define CREDIT_FAILURE_IS_OUTCOME(code) \
	((code) == AM_ERRCODE_INSUFFICIENT_CREDITS || (code) == ERRCODE_INVALID_PARAMETER_VALUE)

/*
 * Record the failure of an idempotent call in a separate committed
 * transaction; false (with a WARNING) when that was not possible.
 */
extern bool credit_record_failure(const char *user_id, const char *idempotency_key,
								  const char *operation, const char *arguments_json,
								  const char *sqlstate, const char *message,
								  const char *detail);

#endif							/* AGENTMARKET_CREDITS_H */
