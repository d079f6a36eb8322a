/*-------------------------------------------------------------------------
 * credits.h
 *	  The credit ledger's idempotency executor (credits_idempotency.c), as
 *	  deduct_credits (credits.c) uses it.
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_CREDITS_H
#define AGENTMARKET_CREDITS_H

#include "postgres.h"

/* A ledger operation run under a claimed key: returns its outcome (jsonb). */
typedef Datum (*CreditOperation) (void *context);

/*
 * Run operation under an idempotency key of a user: the first call with the
 * key runs it and stores its outcome; a repeat with the same operation and
 * arguments (jsonb) returns that outcome and runs nothing; any other use of
 * the key raises 22023.  Not connected to SPI when called.
 */
extern Datum credit_idempotent(const char *operation, Datum user_id, text *key,
							   Datum arguments, CreditOperation run, void *context);

#endif							/* AGENTMARKET_CREDITS_H */
