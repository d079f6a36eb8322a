/*-------------------------------------------------------------------------
 * job.c
 *	  A claimed job: made from what a claim returned (queue.c), performed by
 *	  its provider (provider.c), and ended with an outcome (success with a
 *	  result, or a failure that is retryable or permanent) that queue.c
 *	  hands back to the database.  Depends on no other module.
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "job.h"
#include "json_text.h"

/* A string member of a JSON object, or NULL when absent or not a string. */
const char *
json_str(json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A job from the columns of a claim; NULL when out of memory. */
job *
job_new(long long id, const char *kind, const char *provider, int attempt,
		const char *idempotency_key, const char *request_text)
{
	job		   *j = calloc(1, sizeof(job));
	json_error_t err;

	if (j == NULL)
		return NULL;
	j->id = id;
	j->kind = strdup(kind);
	j->provider = strdup(provider);
	j->attempt = attempt;
	j->idempotency_key = strdup(idempotency_key);
	if (j->kind == NULL || j->provider == NULL || j->idempotency_key == NULL)
	{
		job_free(j);
		return NULL;
	}
	/* A request that does not parse fails the job when it starts. */
	j->request = json_loads(request_text, 0, &err);
	j->state = JOB_ACTIVE;
	j->retry_after_s = -1;
	j->started_at = now_seconds();
	/* A replayed job (its earlier attempt may have half-happened) looks first. */
	j->lookup = j->attempt > 1;
	return j;
}

/* Free a job. */
void
job_free(job *j)
{
	if (j == NULL)
		return;
	free(j->kind);
	free(j->provider);
	free(j->idempotency_key);
	json_decref(j->request);
	json_decref(j->result);
	free(j->result_text);
	free(j->error);
	free(j->machine_id);
	free(j->volume_id);
	free(j);
}

/* End the job successfully with result (reference taken). */
void
job_succeed(job *j, json_t *result)
{
	if (j->state != JOB_ACTIVE)
	{
		json_decref(result);
		return;
	}
	j->state = JOB_SUCCEEDED;
	j->ended_at = now_seconds();
	j->result = result ? result : json_object();
}

/*
 * End the job successfully with text[0..len) as its result, kept as it is
 * (no tree built, nothing printed again: the database parses it once).
 * -1, and nothing changed, when the text is not one JSON object that jsonb
 * takes or memory runs out.
 */
int
job_succeed_text(job *j, const char *text, size_t len)
{
	char	   *copy;

	if (!json_text_is_object(text, len) || (copy = malloc(len + 1)) == NULL)
		return -1;
	if (j->state != JOB_ACTIVE)
	{
		free(copy);
		return 0;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	j->state = JOB_SUCCEEDED;
	j->ended_at = now_seconds();
	j->result_text = copy;
	return 0;
}

/* End the job with a failure; retry_after_s < 0 means "no floor". */
void
job_fail(job *j, int permanent, int retry_after_s, const char *fmt,...)
{
	va_list		ap;
	char		buf[1024];

	if (j->state != JOB_ACTIVE)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	j->state = JOB_FAILED;
	j->ended_at = now_seconds();
	j->permanent = permanent;
	j->retry_after_s = retry_after_s;
	j->error = strdup(buf);
}
