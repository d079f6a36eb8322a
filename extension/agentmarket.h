/*-------------------------------------------------------------------------
 * agentmarket.h
 *	  Declarations shared by the agentmarket module's C files.
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_H
#define AGENTMARKET_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "access/tupdesc.h"
#include "tsearch/ts_type.h"
#include "utils/relcache.h"

/* SQLSTATEs of shared/DESIGN.md that PostgreSQL has no name for. */
#define AM_ERRCODE_INSUFFICIENT_CREDITS	MAKE_SQLSTATE('P','T','4','0','2')
#define AM_ERRCODE_BAD_SIGNATURE		MAKE_SQLSTATE('P','T','4','0','1')

/* Current value of a configuration key (its default), or NULL; needs SPI. */
extern char *am_setting(const char *key);
extern bool am_caller_is_service(void);
extern Datum am_random_uuid(void);
extern Datum am_result_row(FunctionCallInfo fcinfo, Datum *values, bool *nulls);

/* Defines agentmarket.secret_key_file (secrets.c); called from _PG_init. */
extern void am_secrets_init(void);
extern void am_credits_init(void);
extern void am_metering_init(void);
extern void am_search_init(void);

/* definer.c: agentmarket_definer's rights and a pinned search path, entered in C (search_agents). */
typedef struct AmDefiner
{
	Oid			userid;
	int			sec_context;
} AmDefiner;
extern void am_definer_enter(AmDefiner *saved);
extern void am_definer_exit(const AmDefiner *saved);

/* kept_relations.c: relations of the extension by name, their OIDs kept per backend. */
extern Relation am_open_kept(const char *schema, const char *name, char relkind);
extern Oid	am_kept_relid(const char *schema, const char *name);

/* The scoring constants of search.c (search_scoring() in SQL). */
typedef struct AmScoring
{
	double		name_weight;
	double		head_weight;
	double		body_weight;
	double		typo_factor;
	double		completion_factor;
	double		text_share;
} AmScoring;
extern void am_search_scoring(AmScoring *scoring);
/* search.c: the blended score (search_blend), and a text score's bound from per-word bounds (search_text_bound). */
extern double am_blend(double text_score, double static_score);
extern double am_group_mean(const double *values, int ngroups);

/* search.c: the lexemes of a tsquery outside any NOT (search_prepare.c uses it). */
extern Datum search_positive_lexemes(PG_FUNCTION_ARGS);
/* search.c: a word's deletion keys, and whether a word is one edit from another (search_prepare.c). */
extern Datum search_typo_keys(PG_FUNCTION_ARGS);
extern Datum search_is_one_typo(PG_FUNCTION_ARGS);

/* search.c: the parsed terms of a search_plan, and a document's text score (search_text_score). */
typedef struct AmTermCache AmTermCache;
extern AmTermCache *am_terms(Datum lexemes, Datum groups, Datum factors, Datum prefixes, int32 ngroups);
extern double am_text_score(AmTermCache *cache, TSVector doc);

/* search.c: a row's page cursor ("sort|key|key2|id", base64url). */
extern text *am_search_cursor(const char *sort, const char *key, const char *key2, Datum id);

/* search_prepare.c: the search_plan of a query (NULL: none), as a row of tupdesc. */
extern Datum am_search_prepare(text *query, TupleDesc tupdesc);
/* ... and as the values of its columns. */
#define AM_PLAN_COLUMNS 19
extern void am_search_prepare_values(text *query, Datum *values, bool *nulls);
/* A lexeme quoted as a tsquery operand after field ('a/', 'b/' or ''), :* if prefix (search_prepare.c). */
extern void am_append_quoted(StringInfo out, const char *field, const char *lexeme, bool prefix);

/* The value of one hex digit, or -1. */
static inline int
am_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif							/* AGENTMARKET_H */
