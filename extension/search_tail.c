/*-------------------------------------------------------------------------
 * search_tail.c
 *	  What keeps the slowest searches fast: the costs search_agents weighs
 *	  before walking or scoring every match (am_walk_pays), the share of
 *	  listings above a static score (am_static_share_above, from ANALYZE's
 *	  statistics through the syscache: how deep a walk in static order
 *	  goes), and prefix terms of its GIN queries ('bud':*) replaced by their completions from the
 *	  vocabulary ('bud' | 'budget'), for the GIN scans of search (every
 *	  match scored or sorted, a walk's tiers).
 *
 * GIN matches a prefix by collecting every item of every completion into
 * a bitmap and then checking each: 'b/bud':* alone took 7 ms for 7,400
 * listings, 'a/invoic' & 'b/bud':* 3.9 ms where 'a/invoic' & 'b/budget'
 * took 0.6 (GIN intersects exact terms' posting lists, skipping).  The
 * vocabulary holds every lexeme of a published listing (kept by statement
 * triggers, read in the search's snapshot), so the completions match
 * exactly the listings the prefix matches; a prefix with more than
 * AM_MAX_COMPLETIONS completions is left as it is.  The query a listing is
 * checked and scored with keeps its prefix: only what GIN reads changes.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_statistic.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "tsearch/ts_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "agentmarket.h"
#include "search_agents.h"

/*
 * What the GIN scan of scoring every match reads, in listings: its words'
 * posting lists, about 100 entries for a listing read (a prefix's are its
 * completions', am_expand_prefixes).
 */
double
am_gin_cost(const AmSearch *s)
{
	int			n,
				i;
	Datum	   *docs = am_plan_array(s->plan_values, 12, INT8OID, &n);
	double		entries = 0;

	for (i = 0; i < n; i++)
		entries += (double) DatumGetInt64(docs[i]);
	return entries / 100;
}

/*
 * Whether walking to a page costs less than scoring every one of matches
 * (expected matches, within the filters).  Both read listings from the
 * heap: scoring reads every match, the walk reads its index's listings
 * (the category's when filtered by one, every listing otherwise), of which
 * matches / (published * walk share) match, until k of them and about as
 * many again before its bounds stop it.  Before walking, the walk must read
 * at most 2/3 of what scoring reads (margin 1.5); once walking, no more
 * (margin 1: its first listings are read already).  Dense matches within
 * few filtered listings (a common word with all four filters) are walked,
 * where scoring them cost 10-19 ms and the walk 1-2 (bench/search, 100k).
 * extra: listings the walk reads besides (its tiers); scoring reads the
 * GIN posting lists too (am_gin_cost).
 */
bool
am_walk_pays(const AmSearch *s, double matches, double margin, double extra)
{
	double		walk_share = (s->filters & AM_F_CATEGORY) ? s->category_share : 1;
	double		walk_rows = 2.0 * s->k * s->published * walk_share / Max(matches, 1);

	return margin * walk_rows + extra < matches + am_gin_cost(s);
}

/*
 * The static scores' distribution from ANALYZE (pg_statistic through the
 * syscache), parsed once per backend and kept until pg_statistic changes:
 * ANALYZE (here, or on the primary of a standby) invalidates the syscache
 * entry, and its callback drops this copy.
 */
static struct
{
	bool		valid;
	double	   *bounds;			/* histogram bounds, ascending */
	int			nbounds;
	double	   *mcv;			/* most common values */
	double	   *mcv_freq;
	int			nmcv;
	double		hist_share;		/* the share of rows the histogram describes */
}			am_static_stats;
static bool am_static_stats_callback;

/* pg_statistic changed (ANALYZE, a dropped column or table): read it again. */
static void
am_static_stats_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	am_static_stats.valid = false;
}

/* Reads search_static's statistics (none: nothing kept, -1 below). */
static void
am_static_stats_read(void)
{
	Oid			relid = get_relname_relid("agents", get_namespace_oid("agentmarket", false));
	AttrNumber	attnum = OidIsValid(relid) ? get_attnum(relid, "search_static") : InvalidAttrNumber;
	HeapTuple	tuple;
	AttStatsSlot slot;
	int			i;

	if (!am_static_stats_callback)
	{
		CacheRegisterSyscacheCallback(STATRELATTINH, am_static_stats_invalidate, (Datum) 0);
		am_static_stats_callback = true;
	}
	if (am_static_stats.bounds)
		pfree(am_static_stats.bounds);
	if (am_static_stats.mcv)
		pfree(am_static_stats.mcv);
	if (am_static_stats.mcv_freq)
		pfree(am_static_stats.mcv_freq);
	memset(&am_static_stats, 0, sizeof(am_static_stats));
	/* valid from here: an invalidation while reading marks it invalid again */
	am_static_stats.valid = true;
	if (attnum == InvalidAttrNumber)
		return;
	tuple = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid), Int16GetDatum(attnum), BoolGetDatum(false));
	if (!HeapTupleIsValid(tuple))
		return;
	am_static_stats.hist_share = 1 - ((Form_pg_statistic) GETSTRUCT(tuple))->stanullfrac;
	if (get_attstatsslot(&slot, tuple, STATISTIC_KIND_MCV, InvalidOid,
						 ATTSTATSSLOT_VALUES | ATTSTATSSLOT_NUMBERS))
	{
		if (slot.valuetype == FLOAT8OID && slot.nvalues == slot.nnumbers)
		{
			am_static_stats.nmcv = slot.nvalues;
			am_static_stats.mcv = MemoryContextAlloc(TopMemoryContext, sizeof(double) * Max(slot.nvalues, 1));
			am_static_stats.mcv_freq = MemoryContextAlloc(TopMemoryContext, sizeof(double) * Max(slot.nvalues, 1));
			for (i = 0; i < slot.nvalues; i++)
			{
				am_static_stats.mcv[i] = DatumGetFloat8(slot.values[i]);
				am_static_stats.mcv_freq[i] = slot.numbers[i];
				am_static_stats.hist_share -= slot.numbers[i];
			}
		}
		free_attstatsslot(&slot);
	}
	if (get_attstatsslot(&slot, tuple, STATISTIC_KIND_HISTOGRAM, InvalidOid, ATTSTATSSLOT_VALUES))
	{
		if (slot.valuetype == FLOAT8OID)
		{
			am_static_stats.nbounds = slot.nvalues;
			am_static_stats.bounds = MemoryContextAlloc(TopMemoryContext, sizeof(double) * Max(slot.nvalues, 1));
			for (i = 0; i < slot.nvalues; i++)
				am_static_stats.bounds[i] = DatumGetFloat8(slot.values[i]);
		}
		free_attstatsslot(&slot);
	}
	ReleaseSysCache(tuple);
}

/*
 * The estimated share of listings with a static score of at least floor,
 * from ANALYZE's histogram and most common values of search_static (drafts
 * counted too: an estimate); -1 without statistics.
 */
double
am_static_share_above(double floor)
{
	double		share = 0;
	double		mcv_total = 0;
	int			i;

	if (!am_static_stats.valid)
		am_static_stats_read();
	if (am_static_stats.nbounds < 2 && am_static_stats.nmcv == 0)
		return -1;
	for (i = 0; i < am_static_stats.nmcv; i++)
	{
		mcv_total += am_static_stats.mcv_freq[i];
		if (am_static_stats.mcv[i] >= floor)
			share += am_static_stats.mcv_freq[i];
	}
	if (am_static_stats.nbounds >= 2)
	{
		const double *b = am_static_stats.bounds;
		int			nb = am_static_stats.nbounds;
		double		above;

		if (floor <= b[0])
			above = 1;
		else if (floor > b[nb - 1])
			above = 0;
		else
		{
			for (i = 0; i < nb - 2 && b[i + 1] < floor; i++)
				;
			above = 1 - (i + (b[i + 1] > b[i] ? (floor - b[i]) / (b[i + 1] - b[i]) : 1)) / (nb - 1);
		}
		share += Max(am_static_stats.hist_share, 0) * above;
	}
	return Min(share / Max(mcv_total + Max(am_static_stats.hist_share, 0), 1e-9), 1);
}

PG_FUNCTION_INFO_V1(search_static_share_above);

/*
 * search_static_share_above: am_static_share_above for SQL (sql/search_fast
 * checks that ANALYZE's new statistics are read at once).
 */
/* SQL function: search_static_share_above */
Datum
search_static_share_above(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(am_static_share_above(PG_GETARG_FLOAT8(0)));
}

/* Completions up to which a prefix is replaced. */
#define AM_MAX_COMPLETIONS 32

static SPIPlanPtr am_plan_completions;

/*
 * The last prefix looked up in this search, and its completions (NULL: too
 * many), in a context of their own that lives until the next search begins:
 * the callers (the GIN reads, the ordered walk, the query's expansion) run
 * in contexts of their own, and a later call for the same prefix must not
 * be handed what one of them freed.
 */
static MemoryContext am_prefix_context;
static char *am_last_prefix;
static char **am_last_completions;
static int	am_last_ncompletions;

/* A search begins: nothing looked up (the vocabulary may have changed). */
void
am_prefix_reset(void)
{
	if (am_prefix_context != NULL)
		MemoryContextReset(am_prefix_context);
	am_last_prefix = NULL;
	am_last_completions = NULL;
	am_last_ncompletions = 0;
}

/*
 * The vocabulary's words after prefix that begin with it, at most
 * AM_MAX_COMPLETIONS (false: more).
 */
bool
am_completions(const char *prefix, char ***words, int *n)
{
	Datum		values[3];
	uint64		r;
	MemoryContext old;

	if (am_last_prefix != NULL && strcmp(am_last_prefix, prefix) == 0)
	{
		*words = am_last_completions;
		*n = am_last_ncompletions;
		return *words != NULL;
	}
	if (am_plan_completions == NULL)
	{
		Oid			types[3] = {TEXTOID, TEXTOID, INT4OID};

		/* as the vocabulary's btree orders them (COLLATE "C"): prefix < word < prefix || U+10FFFF */
		am_plan_completions = am_prepare_kept(
			"SELECT v.lexeme::text FROM agentmarket_private.search_vocabulary v"
			" WHERE v.lexeme OPERATOR(pg_catalog.>) $1 AND v.lexeme OPERATOR(pg_catalog.<) $2"
			" ORDER BY v.lexeme LIMIT $3", 3, types, false);
	}
	values[0] = CStringGetTextDatum(prefix);
	values[1] = CStringGetTextDatum(psprintf("%s\xf4\x8f\xbf\xbf", prefix));
	values[2] = Int32GetDatum(AM_MAX_COMPLETIONS + 1);
	am_run(am_plan_completions, values, NULL, 0);
	if (am_prefix_context == NULL)
		am_prefix_context = AllocSetContextCreate(TopMemoryContext, "agentmarket prefix completions",
												  ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(am_prefix_context);
	*n = (int) SPI_processed;
	*words = NULL;
	if (*n <= AM_MAX_COMPLETIONS)
	{
		*words = palloc(sizeof(char *) * Max(*n, 1));
		for (r = 0; r < SPI_processed; r++)
			(*words)[r] = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
	}
	SPI_freetuptable(SPI_tuptable);
	am_last_prefix = pstrdup(prefix);
	MemoryContextSwitchTo(old);
	am_last_completions = *words;
	am_last_ncompletions = *n;
	return *words != NULL;
}

/*
 * The tsquery text query (as tsqueryout writes it) with each prefix
 * operand 'p':* replaced by ('p' | 'c1' | ...), its completions in the
 * vocabulary; fields: the operands are search_fields terms (a/p, b/p), the
 * word after the field is looked up.  A prefix with weights, too many
 * completions or none of the expected form stays as it is.
 */
char *
am_expand_prefixes(const char *query, bool fields)
{
	StringInfoData out;
	const char *p = query;

	if (strstr(query, ":*") == NULL)
		return (char *) query;
	initStringInfo(&out);
	while (*p)
	{
		StringInfoData lexeme;
		const char *start = p;
		char	  **words;
		int			n,
					i;
		const char *word;
		char	   *field;

		if (*p != '\'')
		{
			appendStringInfoChar(&out, *p++);
			continue;
		}
		/* a quoted operand: '' and \' are a quote, \\ a backslash */
		initStringInfo(&lexeme);
		p++;
		while (*p)
		{
			if (*p == '\\' && p[1] != '\0')
			{
				appendStringInfoChar(&lexeme, p[1]);
				p += 2;
			}
			else if (*p == '\'' && p[1] == '\'')
			{
				appendStringInfoChar(&lexeme, '\'');
				p += 2;
			}
			else if (*p == '\'')
				break;
			else
				appendStringInfoChar(&lexeme, *p++);
		}
		if (*p == '\'')
			p++;
		/* a prefix without weights: ':*' not followed by a weight letter */
		if (!(p[0] == ':' && p[1] == '*' && !((p[2] >= 'A' && p[2] <= 'D') || (p[2] >= 'a' && p[2] <= 'd'))))
		{
			appendBinaryStringInfo(&out, start, p - start);
			continue;
		}
		word = lexeme.data;
		field = "";
		if (fields)
		{
			if (lexeme.len < 2 || lexeme.data[1] != '/')
			{
				appendBinaryStringInfo(&out, start, p - start);
				continue;
			}
			field = pnstrdup(lexeme.data, 2);
			word = lexeme.data + 2;
		}
		if (!am_completions(word, &words, &n))
		{
			appendBinaryStringInfo(&out, start, p - start);
			continue;
		}
		p += 2;
		appendStringInfoChar(&out, '(');
		am_append_quoted(&out, field, word, false);
		for (i = 0; i < n; i++)
		{
			appendStringInfoString(&out, " | ");
			am_append_quoted(&out, field, words[i], false);
		}
		appendStringInfoChar(&out, ')');
	}
	return out.data;
}

/* A tsquery with its prefix terms replaced by their completions (am_expand_prefixes). */
Datum
am_expand_prefix_query(Datum query)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(tsqueryout, query));
	char	   *expanded = am_expand_prefixes(text, false);

	if (expanded == text)
		return query;
	return DirectFunctionCall1(tsqueryin, CStringGetDatum(expanded));
}
