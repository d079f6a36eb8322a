/*-------------------------------------------------------------------------
 * credit_direct.h
 *	  The executor-level fast path of deduct_credits (credit_direct.c): the
 *	  balance row locked, updated and the ledger row appended through the
 *	  table access method and the executor's single-row routines (as logical
 *	  replication applies a change), without planning or starting a plan.
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_CREDIT_DIRECT_H
#define AGENTMARKET_CREDIT_DIRECT_H

#include "postgres.h"

/* The balance row as locked (the columns deduct_credits reads). */
typedef struct CreditBalanceRow
{
	int32		subscription;
	int32		topup;
	int32		held;
	bool		has_head;		/* head_lot_id is not null */
	int64		head_lot;
	int32		head_remaining;
	int64		head_value_units;	/* 1e-4 USD */
	bool		head_subscription;
} CreditBalanceRow;

/* One deduction from the head lot: what changes on the row and what is appended. */
typedef struct CreditHeadTake
{
	int32		from_subscription;
	int32		from_topup;
	int32		amount;			/* taken from the head lot */
	int64		value_units;	/* value taken, 1e-4 USD */
	int64		lot;
	Datum		description;
	bool		description_isnull;
	Datum		session_id;
	bool		session_isnull;
} CreditHeadTake;

typedef enum CreditLockResult
{
	CREDIT_LOCKED,				/* row locked, *row filled */
	CREDIT_NO_ROW,				/* the user has no balance row */
	CREDIT_NOT_DIRECT			/* use the statements instead */
} CreditLockResult;

typedef struct CreditDirect CreditDirect;

/*
 * Lock the user's balance row as SELECT ... FOR UPDATE would and read it
 * (the user's and the session's rows locked first for the ledger row's
 * foreign keys; CREDIT_NO_ROW when there is no such user).
 * Returns CREDIT_NOT_DIRECT (nothing locked, nothing open) when the tables
 * are not as this path expects them or the caller may not write them
 * directly; then the caller uses the saved statements.  On CREDIT_LOCKED
 * the caller must call credit_direct_apply() or credit_direct_end().
 */
extern CreditLockResult credit_direct_lock(Datum user_id, Datum session_id, bool session_isnull,
										   CreditBalanceRow *row, CreditDirect **direct);

/* Update the locked row and append the ledger row of take; then ends. */
extern void credit_direct_apply(CreditDirect *direct, const CreditHeadTake *take);

/* End without writing (the row stays locked until the transaction ends). */
extern void credit_direct_end(CreditDirect *direct);

#endif							/* AGENTMARKET_CREDIT_DIRECT_H */
