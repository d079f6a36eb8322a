/*-------------------------------------------------------------------------
 * kept_relations.c
 *	  Relations of the extension opened by name, their OIDs kept per
 *	  backend (search_vocabulary.c's vocabulary, search_direct.c's agents and
 *	  its indexes): two catalog lookups a relation on every search otherwise.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "agentmarket.h"

/* A relation by name and the OID it had when last opened (InvalidOid: look it up). */
typedef struct AmKeptRelation
{
	const char *schema;
	const char *name;
	Oid			relid;
	struct AmKeptRelation *next;
} AmKeptRelation;

static AmKeptRelation *am_kept;
static bool am_kept_callback;

/*
 * An invalidation of a kept relation (dropped, renamed, altered) forgets
 * its OID; one of every relation forgets them all.
 */
static void
am_kept_relcache(Datum arg, Oid relid)
{
	AmKeptRelation *k;

	for (k = am_kept; k != NULL; k = k->next)
		if (!OidIsValid(relid) || k->relid == relid)
			k->relid = InvalidOid;
}

/* The entry of schema.name (string constants of the callers), made on first use. */
static AmKeptRelation *
am_kept_entry(const char *schema, const char *name)
{
	AmKeptRelation *k;

	if (!am_kept_callback)
	{
		CacheRegisterRelcacheCallback(am_kept_relcache, (Datum) 0);
		am_kept_callback = true;
	}
	for (k = am_kept; k != NULL; k = k->next)
		if (strcmp(k->name, name) == 0 && strcmp(k->schema, schema) == 0)
			return k;
	k = MemoryContextAllocZero(TopMemoryContext, sizeof(AmKeptRelation));
	k->schema = schema;
	k->name = name;
	k->next = am_kept;
	am_kept = k;
	return k;
}

/*
 * schema.name, open with AccessShareLock, of relkind (0: any).  Its OID is
 * the one kept unless an invalidation of it arrived while it was opened
 * (taking the lock processes them), when the name is looked up again.
 */
Relation
am_open_kept(const char *schema, const char *name, char relkind)
{
	AmKeptRelation *k = am_kept_entry(schema, name);
	int			attempt;

	for (attempt = 0;; attempt++)
	{
		Relation	rel;

		if (!OidIsValid(k->relid))
		{
			/* not kept when missing: a relation created under the name sends no invalidation here */
			Oid			relid = get_relname_relid(name, get_namespace_oid(schema, false));

			if (!OidIsValid(relid))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_TABLE),
						 errmsg("relation %s.%s does not exist", schema, name)));
			k->relid = relid;
		}
		rel = try_relation_open(k->relid, AccessShareLock);
		if (rel != NULL && OidIsValid(k->relid))
		{
			if (relkind != 0 && rel->rd_rel->relkind != relkind)
				ereport(ERROR,
						(errcode(ERRCODE_WRONG_OBJECT_TYPE),
						 errmsg("\"%s\" is not %s", RelationGetRelationName(rel),
								relkind == RELKIND_INDEX ? "an index" : "a table")));
			return rel;
		}
		if (rel != NULL)
			relation_close(rel, AccessShareLock);
		k->relid = InvalidOid;
		if (attempt >= 10)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("relation %s.%s keeps changing", schema, name)));
	}
}

/* The OID schema.name had when last opened, InvalidOid when not known. */
Oid
am_kept_relid(const char *schema, const char *name)
{
	return am_kept_entry(schema, name)->relid;
}
