/*-------------------------------------------------------------------------
 * agentmarket.c
 *	  The agentmarket module: module magic and helpers shared by the
 *	  capability files (credits.c, search.c, ...).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "agentmarket.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init: define the module's server settings (each capability's init).
 */
void
_PG_init(void)
{
	am_secrets_init();
	am_credits_init();
	am_metering_init();
	am_search_init();
}

static SPIPlanPtr am_setting_plan = NULL;

/*
 * am_setting: the value of a configuration key, allocated with SPI_palloc so
 * that it outlives SPI_finish, or NULL when it is unset and has no default.  The caller
 * must be connected to SPI; the plan is prepared once per backend.
 */
char *
am_setting(const char *key)
{
	Datum		arg = CStringGetTextDatum(key);
	Oid			argtype = TEXTOID;
	bool		isnull;
	Datum		value;
	int			rc;

	if (am_setting_plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare("SELECT agentmarket_private.setting($1)", 1, &argtype);

		if (plan == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not prepare the setting lookup: %s",
							SPI_result_code_string(SPI_result))));
		SPI_keepplan(plan);
		am_setting_plan = plan;
	}

	rc = SPI_execute_plan(am_setting_plan, &arg, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("setting lookup failed: %s", SPI_result_code_string(rc))));

	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return NULL;
	{
		/* The tuple lives in SPI memory: copy into the caller's context. */
		char	   *str = TextDatumGetCString(value);
		char	   *copy = SPI_palloc(strlen(str) + 1);

		strcpy(copy, str);
		return copy;
	}
}

/*
 * am_caller_is_service: does the caller act as service_role?  The caller is
 * the role SET ROLE chose (PostgREST switches to it), or the session's login
 * role when there is none, as current_setting('role') tells it; SECURITY
 * DEFINER changes neither.  True when that role is a member of service_role
 * (pg_has_role(..., 'MEMBER'): a superuser is a member of every role).
 */
bool
am_caller_is_service(void)
{
	Oid			service = get_role_oid("service_role", true);
	Oid			caller = OidIsValid(GetCurrentRoleId()) ? GetCurrentRoleId() : GetSessionUserId();

	return OidIsValid(service) && is_member_of_role(caller, service);
}

PG_FUNCTION_INFO_V1(caller_is_service);

/* SQL function: agentmarket_private.caller_is_service(), am_caller_is_service(). */
Datum
caller_is_service(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(am_caller_is_service());
}

/*
 * The row of a function declared with OUT parameters, from its values and
 * nulls (the search's *_last functions, which tell tests what a call read).
 */
Datum
am_result_row(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s must return a row", get_func_name(fcinfo->flinfo->fn_oid))));
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
}

/*
 * am_random_uuid: a version 4 UUID as gen_random_uuid() makes one (122
 * random bits from pg_strong_random, version and variant set alike), its
 * random bytes taken from a buffer this backend fills 4 kB at a time.  Each
 * call of OpenSSL's generator costs microseconds whatever it returns (5% of
 * a deduction's time went to it), so the rows the direct paths write get
 * their ids 256 to a call.  The buffer belongs to the process that filled
 * it: a process forked with a full one (none is, but a background worker
 * would be) starts again, so no two processes ever hand out the same bytes.
 */
Datum
am_random_uuid(void)
{
	static uint8 pool[4096];
	static int	used = sizeof(pool);
	static int	owner = 0;
	pg_uuid_t  *uuid = palloc(UUID_LEN);

	if (owner != MyProcPid || used + UUID_LEN > (int) sizeof(pool))
	{
		if (!pg_strong_random(pool, sizeof(pool)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
		owner = MyProcPid;
		used = 0;
	}
	memcpy(uuid->data, pool + used, UUID_LEN);
	memset(pool + used, 0, UUID_LEN);	/* handed out once */
	used += UUID_LEN;
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;	/* version 4 */
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	return UUIDPGetDatum(uuid);
}

PG_FUNCTION_INFO_V1(touch_updated_at);

/*
 * SQL function: touch_updated_at() — BEFORE UPDATE row trigger that sets the
 * row's updated_at column to the transaction start time (now()).
 */
Datum
touch_updated_at(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	int			attnum;
	Datum		value;
	bool		isnull = false;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("touch_updated_at must be a BEFORE UPDATE row trigger")));

	tupdesc = RelationGetDescr(trigdata->tg_relation);
	attnum = SPI_fnumber(tupdesc, "updated_at");
	if (attnum <= 0 || TupleDescAttr(tupdesc, attnum - 1)->atttypid != TIMESTAMPTZOID)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("table \"%s\" has no updated_at column of type timestamptz",
						RelationGetRelationName(trigdata->tg_relation))));

	value = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	return PointerGetDatum(heap_modify_tuple_by_cols(trigdata->tg_newtuple, tupdesc,
													 1, &attnum, &value, &isnull));
}
