/*-------------------------------------------------------------------------
 * definer.c
 *	  Definer rights and a pinned search path entered in C, for the one
 *	  client function called often enough that the SQL way costs more than
 *	  its work: search_agents.
 *
 * A SECURITY DEFINER function with SET search_path runs, on PostgreSQL 15,
 * through fmgr_security_definer: a new GUC nest level, the path parsed and
 * assigned, the namespace search path recomputed as the definer, and on
 * return AtEOXact_GUC walking every one of the ~360 settings to restore
 * one, then the caller's path recomputed again.  Warm that is a few
 * microseconds; on a call whose caches a heavier query just evicted it is
 * ~40 µs, as much as a rare word's whole search (README, "Search").
 *
 * am_definer_enter does what that does without the settings machinery: it
 * switches the user to agentmarket_definer (the owner of every SECURITY
 * DEFINER function of the extension, footer.sql) with
 * SECURITY_LOCAL_USERID_CHANGE, as fmgr does, and pushes an override
 * search path of pg_catalog, agentmarket and agentmarket_private.  That
 * path is stricter than the SET clause's: the temporary schema is not in it
 * at all (the SET clause's trailing pg_temp still searches it for relations
 * and types), and the caller's search_path, role and settings reach nothing
 * inside.  The plan cache checks a kept plan's path against the active one
 * (OverrideSearchPathMatchesCurrent), so plans made inside are only reused
 * inside.  am_definer_exit restores both; an error between them restores
 * both as well (the caller's PG_FINALLY, and at the latest the
 * (sub)transaction abort, which resets the user and pops overrides).
 * PushOverrideSearchPath is gone in PostgreSQL 17: a port sets the path
 * with set_config_option under a new GUC nest level, or takes the SET
 * clause back.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "agentmarket.h"

/* The role and schemas, looked up by name once and forgotten on a change to any role or schema. */
static Oid	am_definer_role = InvalidOid;
static OverrideSearchPath am_definer_path;
static bool am_definer_callbacks;

static void
am_definer_forget(Datum arg, int cacheid, uint32 hashvalue)
{
	am_definer_role = InvalidOid;
	if (am_definer_path.schemas != NIL)
	{
		list_free(am_definer_path.schemas);
		am_definer_path.schemas = NIL;
	}
}

static void
am_definer_resolve(void)
{
	MemoryContext old;
	Oid			role;
	Oid			public_schema;
	Oid			private_schema;

	if (!am_definer_callbacks)
	{
		CacheRegisterSyscacheCallback(AUTHOID, am_definer_forget, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, am_definer_forget, (Datum) 0);
		am_definer_callbacks = true;
	}
	if (OidIsValid(am_definer_role) && am_definer_path.schemas != NIL)
		return;
	role = get_role_oid("agentmarket_definer", true);
	public_schema = get_namespace_oid("agentmarket", true);
	private_schema = get_namespace_oid("agentmarket_private", true);
	if (!OidIsValid(role) || !OidIsValid(public_schema) || !OidIsValid(private_schema))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentmarket is not installed completely"),
				 errdetail("The role agentmarket_definer and the schemas agentmarket and agentmarket_private must exist."),
				 errhint("Reinstall the extension.")));
	old = MemoryContextSwitchTo(TopMemoryContext);
	am_definer_path.schemas = list_make2_oid(public_schema, private_schema);
	MemoryContextSwitchTo(old);
	am_definer_path.addCatalog = true;
	am_definer_path.addTemp = false;
	am_definer_path.generation = 0;
	am_definer_role = role;
}

/* Runs what follows as agentmarket_definer under the pinned path; am_definer_exit undoes it. */
void
am_definer_enter(AmDefiner *saved)
{
	am_definer_resolve();
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	PushOverrideSearchPath(&am_definer_path);
	SetUserIdAndSecContext(am_definer_role, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
am_definer_exit(const AmDefiner *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
	PopOverrideSearchPath();
}
