/*-------------------------------------------------------------------------
 * credit_shape.h
 *	  What deduct_credits' direct path (credit_direct.c) needs to know about
 *	  credit_balances and credit_transactions, checked once per table
 *	  definition (credit_shape.c).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_CREDIT_SHAPE_H
#define AGENTMARKET_CREDIT_SHAPE_H

#include "postgres.h"

#include "nodes/execnodes.h"
#include "utils/relcache.h"

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


/*
 * The shape of the two tables (opened and locked by the caller), or NULL
 * when the direct path must not write them: it would not write exactly
 * what a statement writes.
 */
extern const CreditShape *credit_shape(Relation balances, Relation ledger);

#endif							/* AGENTMARKET_CREDIT_SHAPE_H */
