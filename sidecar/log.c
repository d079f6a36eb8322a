/*-------------------------------------------------------------------------
 * log.c
 *	  JSON log lines on stderr, one object per line.  Callers never pass
 *	  secrets (tokens, API keys, request bodies) in the fields.
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include "clock.h"
#include "log.h"

static int	min_rank = 1;

/* Severity rank of a level name (debug 0 .. error 3). */
static int
level_rank(const char *level)
{
	if (strcmp(level, "debug") == 0)
		return 0;
	if (strcmp(level, "info") == 0)
		return 1;
	if (strcmp(level, "warn") == 0)
		return 2;
	return 3;
}

/* Print only lines of this level and above; -1 for an unknown name. */
int
log_set_level(const char *level)
{
	if (strcmp(level, "debug") && strcmp(level, "info") && strcmp(level, "warn") && strcmp(level, "error"))
		return -1;
	min_rank = level_rank(level);
	return 0;
}

/* Whether lines of this level are printed (callers skip building their fields). */
int
log_enabled(const char *level)
{
	return level_rank(level) >= min_rank;
}

/* Print {"ts","level","event",...fields} as one line; takes fields' reference. */
void
log_event(const char *level, const char *event, json_t *fields)
{
	json_t	   *line = json_object();
	struct timeval tv;
	struct tm	tm;
	char		ts[64];
	char	   *text;

	if (level_rank(level) < min_rank)
	{
		json_decref(fields);
		json_decref(line);
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (int) (tv.tv_usec / 1000));
	json_object_set_new(line, "ts", json_string(ts));
	json_object_set_new(line, "level", json_string(level));
	json_object_set_new(line, "event", json_string(event));
	if (fields != NULL)
	{
		json_object_update(line, fields);
		json_decref(fields);
	}
	text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text != NULL)
	{
		fprintf(stderr, "%s\n", text);
		free(text);
	}
	json_decref(line);
}
