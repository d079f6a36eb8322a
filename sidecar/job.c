/*-------------------------------------------------------------------------
 * job.c
 *	  A claimed job: built from a claim_jobs row, dispatched to its provider,
 *	  and ended with an outcome (success with a result, or a failure that is
 *	  retryable or permanent) that queue.c hands back to the database.
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar.h"

/* A string member of a JSON object, or NULL when absent or not a string. */
const char *
json_str(json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Build a job from row `row` of a claim_jobs result; NULL when malformed. */
job *
job_from_claim(PGresult *res, int row)
{
	job		   *j = calloc(1, sizeof(job));
	json_error_t err;

	if (j == NULL)
		return NULL;
	j->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
	j->kind = strdup(PQgetvalue(res, row, 1));
	j->provider = strdup(PQgetvalue(res, row, 2));
	j->attempt = atoi(PQgetvalue(res, row, 3));
	j->idempotency_key = strdup(PQgetvalue(res, row, 4));
	j->request = json_loads(PQgetvalue(res, row, 5), 0, &err);
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

/*
 * A short, loggable description of a failed call: the provider's own error
 * message when the body has one (Fly {"error": ...}, Stripe {"error":
 * {"message": ...}}), else the HTTP status or the transport error.
 */
char *
error_message_from(const http_response *r, const char *provider)
{
	char		buf[700];
	json_t	   *body = NULL;
	const char *msg = NULL;
	const char *code = NULL;

	if (r->status == 0)
	{
		snprintf(buf, sizeof(buf), "%s: %s%s", provider, r->timed_out ? "timeout: " : "",
				 r->curl_error ? r->curl_error : "transport error");
		return strdup(buf);
	}
	if (r->body != NULL)
		body = json_loadb(r->body, r->body_len, 0, NULL);
	if (json_is_object(body))
	{
		json_t	   *e = json_object_get(body, "error");

		if (json_is_object(e))
		{
			msg = json_str(e, "message");
			code = json_str(e, "code");
			if (code == NULL)
				code = json_str(e, "type");
		}
		else if (json_is_string(e))
		{
			msg = json_string_value(e);
			code = json_str(body, "status");
		}
		else
			msg = json_str(body, "message");
	}
	snprintf(buf, sizeof(buf), "%s: HTTP %ld%s%s%s%s", provider, r->status,
			 code ? " " : "", code ? code : "", msg ? ": " : "", msg ? msg : "");
	json_decref(body);
	return strdup(buf);
}

/* Start performing a job: refused ones end at once, others go to their provider. */
void
job_start(job *j)
{
	const char *refuse;

	if (!json_is_object(j->request))
	{
		job_fail(j, 1, -1, "claim returned no request object");
		return;
	}
	refuse = json_str(j->request, "refuse");
	if (refuse != NULL)
	{
		job_fail(j, 1, -1, "%s", refuse);
		return;
	}
	if (strcmp(j->provider, "fly") == 0)
		fly_start(j);
	else if (strcmp(j->provider, "stripe") == 0)
		stripe_start(j);
	else
		job_fail(j, 1, -1, "provider %s is not known to this sidecar", j->provider);
}
