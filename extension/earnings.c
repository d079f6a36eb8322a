/*-------------------------------------------------------------------------
 * earnings.c
 *	  The earnings split of shared/DESIGN.md (Money), exact:
 *
 *	    gross    = credits x 0.01 USD
 *	    creator  = (gross - compute_cost) x rate, rounded down to 4 decimals,
 *	               never below 0
 *	    platform = gross - creator
 *
 *	  so creator + platform = gross to the last digit.  The arithmetic is on
 *	  64-bit integers in units of 1e-10 USD (compute cost has 6 decimals, the
 *	  rate 2), which holds every value the columns can store.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "agentmarket.h"

PG_FUNCTION_INFO_V1(split_earnings);
PG_FUNCTION_INFO_V1(split_revenue);

/* Largest credits for which gross fits NUMERIC(10,4): 999,999.9999 USD. */
#define EARN_MAX_CREDITS	99999999

/*
 * earn_scaled: the numeric value times 10^scale as an exact int64; raises
 * 22023 naming what when the value has more decimals than scale, is
 * negative, not finite, or larger than limit (already scaled).
 */
static int64
earn_scaled(Numeric value, int scale, int64 limit, const char *what)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(value)));
	const char *p = text;
	int64		result = 0;
	int			decimals = -1;	/* -1: before the point */
	const char *last_nonzero;

	if (*p == '-')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what),
				 errdetail("The value given was %s.", text)));
	if (*p < '0' || *p > '9')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number", what),
				 errdetail("The value given was %s.", text)));

	/* Trailing zeros after the point do not count as decimals. */
	last_nonzero = text + strlen(text) - 1;
	if (strchr(text, '.') != NULL)
		while (*last_nonzero == '0')
			last_nonzero--;

	for (; p <= last_nonzero; p++)
	{
		if (*p == '.')
		{
			decimals = 0;
			continue;
		}
		if (decimals >= 0 && ++decimals > scale)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s has more than %d decimals", what, scale),
					 errdetail("The value given was %s.", text)));
		result = result * 10 + (*p - '0');
		if (result > limit)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s is out of range", what),
					 errdetail("The value given was %s.", text)));
	}
	for (decimals = (decimals < 0 ? 0 : decimals); decimals < scale; decimals++)
	{
		result *= 10;
		if (result > limit)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s is out of range", what),
					 errdetail("The value given was %s.", text)));
	}
	pfree(text);
	return result;
}

/* earn_numeric: an int64 count of 1e-4 USD as a numeric with 4 decimals. */
static Datum
earn_numeric(int64 units)
{
	char		buf[64];

	snprintf(buf, sizeof(buf), INT64_FORMAT ".%04d", units / 10000, (int) (units % 10000));
	return DirectFunctionCall3(numeric_in, CStringGetDatum(buf),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

/*
 * earn_split: the split of gross (1e-4 USD) with cost (1e-6 USD) at rate
 * (hundredths), as the (gross, creator, platform) record of the call.
 */
static Datum
earn_split(FunctionCallInfo fcinfo, int64 gross, int64 cost, int64 rate)
{
	int64		net;			/* 1e-6 USD */
	int64		creator;		/* 1e-4 USD */
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an earnings split must be called in a context that accepts a record")));
	tupdesc = BlessTupleDesc(tupdesc);

	net = gross * 100 - cost;
	if (net <= 0)
		creator = 0;
	else
		creator = (net * rate) / 10000;	/* 1e-8 USD -> 1e-4 USD, truncated */

	values[0] = earn_numeric(gross);
	values[1] = earn_numeric(creator);
	values[2] = earn_numeric(gross - creator);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * SQL function: split_earnings(credits integer, compute_cost numeric,
 * creator_rate numeric) returns (gross_revenue, creator_amount,
 * platform_amount), each numeric with 4 decimals.
 */
Datum
split_earnings(PG_FUNCTION_ARGS)
{
	int32		credits = PG_GETARG_INT32(0);
	Numeric		cost_arg = PG_GETARG_NUMERIC(1);
	Numeric		rate_arg = PG_GETARG_NUMERIC(2);
	int64		cost;			/* 1e-6 USD */
	int64		rate;			/* hundredths */
	int64		gross;			/* 1e-4 USD */

	if (credits < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("credits must not be negative"),
				 errdetail("The value given was %d.", credits)));
	if (credits > EARN_MAX_CREDITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("credits are out of range"),
				 errdetail("At most %d credits fit one earnings row; %d were given.",
						   EARN_MAX_CREDITS, credits)));
	/* NUMERIC(10,6) holds at most 9999.999999. */
	cost = earn_scaled(cost_arg, 6, INT64CONST(9999999999), "compute cost");
	rate = earn_scaled(rate_arg, 2, 100, "creator rate");

	gross = (int64) credits * 100;	/* one credit is 0.01 USD = 100 x 1e-4 */
	PG_RETURN_DATUM(earn_split(fcinfo, gross, cost, rate));
}

/*
 * SQL function: split_revenue(gross_revenue numeric, compute_cost numeric,
 * creator_rate numeric) returns (gross_revenue, creator_amount,
 * platform_amount): the same split of a gross given in USD (at most 4
 * decimals, what NUMERIC(10,4) holds), the value of the credits a session
 * consumed.
 */
Datum
split_revenue(PG_FUNCTION_ARGS)
{
	int64		gross = earn_scaled(PG_GETARG_NUMERIC(0), 4, INT64CONST(9999999999), "gross revenue");
	int64		cost = earn_scaled(PG_GETARG_NUMERIC(1), 6, INT64CONST(9999999999), "compute cost");
	int64		rate = earn_scaled(PG_GETARG_NUMERIC(2), 2, 100, "creator rate");

	PG_RETURN_DATUM(earn_split(fcinfo, gross, cost, rate));
}
