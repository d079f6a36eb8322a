/*-------------------------------------------------------------------------
 * stripe.c
 *	  Stripe API jobs: one form-encoded POST (bracket nesting for objects and
 *	  arrays) to the endpoint the claim names, always with the job's
 *	  Idempotency-Key, so a replayed job gets Stripe's saved answer instead of
 *	  a second effect, and with the Stripe-Version the database pins.  Network errors, 409, 5xx, Stripe-Should-Retry: true
 *	  and 429 lock_timeout are retried; 429 rate_limit is requeued later; any
 *	  other 4xx is final, with Stripe's message.
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "provider.h"
#include "sidecar.h"
#include "stripe.h"

/* A growing string. */
typedef struct strbuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	int			failed;
} strbuf;

/* Append s to b. */
static void
sb_append(strbuf *b, const char *s)
{
	size_t		n = strlen(s);

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;
		char	   *grown;

		while (b->len + n + 1 > cap)
			cap *= 2;
		grown = realloc(b->data, cap);
		if (grown == NULL)
		{
			b->failed = 1;
			return;
		}
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n + 1);
	b->len += n;
}

/* Append one key=value pair, both URL-escaped. */
static void
form_pair(strbuf *b, const char *key, const char *value)
{
	char	   *k = http_escape(key);
	char	   *v = http_escape(value);

	if (k == NULL || v == NULL)
		b->failed = 1;
	else
	{
		if (b->len > 0)
			sb_append(b, "&");
		sb_append(b, k);
		sb_append(b, "=");
		sb_append(b, v);
	}
	curl_free(k);
	curl_free(v);
}

/* Append value under key: objects as key[sub], arrays as key[i]. */
static void
form_value(strbuf *b, const char *key, json_t *value)
{
	char		scalar[64];
	char	   *sub;
	size_t		sublen;

	switch (json_typeof(value))
	{
		case JSON_OBJECT:
			{
				const char *k;
				json_t	   *v;

				json_object_foreach(value, k, v)
				{
					sublen = strlen(key) + strlen(k) + 3;
					sub = malloc(sublen);
					if (sub == NULL)
					{
						b->failed = 1;
						return;
					}
					if (key[0] == '\0')
						snprintf(sub, sublen, "%s", k);
					else
						snprintf(sub, sublen, "%s[%s]", key, k);
					form_value(b, sub, v);
					free(sub);
				}
				return;
			}
		case JSON_ARRAY:
			{
				size_t		i;
				json_t	   *v;

				json_array_foreach(value, i, v)
				{
					sublen = strlen(key) + 24;
					sub = malloc(sublen);
					if (sub == NULL)
					{
						b->failed = 1;
						return;
					}
					snprintf(sub, sublen, "%s[%zu]", key, i);
					form_value(b, sub, v);
					free(sub);
				}
				return;
			}
		case JSON_STRING:
			form_pair(b, key, json_string_value(value));
			return;
		case JSON_INTEGER:
			snprintf(scalar, sizeof(scalar), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
			form_pair(b, key, scalar);
			return;
		case JSON_REAL:
			snprintf(scalar, sizeof(scalar), "%.17g", json_real_value(value));
			form_pair(b, key, scalar);
			return;
		case JSON_TRUE:
			form_pair(b, key, "true");
			return;
		case JSON_FALSE:
			form_pair(b, key, "false");
			return;
		case JSON_NULL:
			/* Stripe reads an empty value as "unset". */
			form_pair(b, key, "");
			return;
	}
}

/* Form-encode params (a JSON object) with bracket nesting; caller frees. */
char *
stripe_form_encode(json_t *params)
{
	strbuf		b = {0};

	sb_append(&b, "");
	if (json_is_object(params))
		form_value(&b, "", params);
	if (b.failed)
	{
		free(b.data);
		return NULL;
	}
	return b.data;
}

/* The POST answered: success, retry (how soon), or a final error. */
static void
stripe_done(job *j, const http_response *r)
{
	char	   *msg;
	int			retryable;
	int			retry_after = r->retry_after_s;

	if (r->status >= 200 && r->status < 300)
	{
		/* The answer's bytes are the result: checked, not parsed into a tree. */
		if (r->body == NULL || job_succeed_text(j, r->body, r->body_len) != 0)
			job_fail(j, 0, -1, "stripe: answer %ld is not a JSON object", r->status);
		return;
	}
	msg = http_error_message(r, "stripe");
	if (r->status == 0)
		retryable = 1;
	else if (r->status == 429)
	{
		retryable = 1;
		/* rate_limit: back off for longer; lock_timeout: retry as usual. */
		if (r->body == NULL || strstr(r->body, "lock_timeout") == NULL)
			retry_after = retry_after > config.rate_limit_delay_s ? retry_after : config.rate_limit_delay_s;
	}
	else if (r->should_retry == 1)
		retryable = 1;
	else if (r->should_retry == 0)
		retryable = 0;
	else
		retryable = r->status == 409 || r->status >= 500;
	job_fail(j, !retryable, retry_after, "%s %s: %s", json_str(j->request, "method"), json_str(j->request, "path"), msg);
	free(msg);
}

/* Start a Stripe job: the claim's form POST (the only flow Stripe jobs have). */
void
stripe_start(job *j)
{
	const char *flow = json_str(j->request, "flow");
	const char *method = json_str(j->request, "method");
	const char *key = json_str(j->request, "idempotency_key");
	const char *version = json_str(j->request, "stripe_version");
	struct curl_slist *headers = NULL;
	char		url[1024];
	char		header[1024];
	char	   *path;
	char	   *form;
	int			ok;

	if (flow == NULL || strcmp(flow, "call") != 0 || method == NULL || strcmp(method, "POST") != 0)
	{
		job_fail(j, 1, -1, "claim gave no Stripe POST call");
		return;
	}
	if (key == NULL || key[0] == '\0' || strlen(key) > 255 || strpbrk(key, "\r\n") != NULL)
	{
		job_fail(j, 1, -1, "claim gave no usable idempotency key");
		return;
	}
	/* The database pins the API version; a malformed one is never sent. */
	if (version != NULL && (version[0] == '\0' || strlen(version) > 40 ||
							strspn(version, "0123456789abcdefghijklmnopqrstuvwxyz.-") != strlen(version)))
	{
		job_fail(j, 1, -1, "claim gave a malformed Stripe API version");
		return;
	}
	if (config.stripe_key == NULL)
	{
		job_fail(j, 0, 60, "STRIPE_SECRET_KEY is not set in this sidecar");
		return;
	}
	if ((path = provider_path(j, json_str(j->request, "path"))) == NULL)
		return;
	if (strncmp(path, "/v1/", 4) != 0)
	{
		free(path);
		job_fail(j, 1, -1, "claim gave no Stripe POST endpoint");
		return;
	}
	form = stripe_form_encode(json_object_get(j->request, "params"));
	snprintf(url, sizeof(url), "%s%s", config.stripe_base_url, path);
	snprintf(header, sizeof(header), "Authorization: Bearer %s", config.stripe_key);
	ok = form != NULL && http_header_add(&headers, header) == 0;
	snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
	ok = ok && http_header_add(&headers, header) == 0;
	if (version != NULL)
	{
		snprintf(header, sizeof(header), "Stripe-Version: %s", version);
		ok = ok && http_header_add(&headers, header) == 0;
	}
	ok = ok && http_header_add(&headers, "Content-Type: application/x-www-form-urlencoded") == 0 &&
		http_header_add(&headers, "Accept: application/json") == 0;
	if (!ok)
	{
		curl_slist_free_all(headers);
		job_fail(j, 0, -1, "stripe: out of memory building POST %s", path);
	}
	else if (http_send(j, "POST", url, headers, form, config.request_timeout_ms, 0, stripe_done) != 0)
		job_fail(j, 0, -1, "stripe: could not start POST %s", path);
	free(form);
	free(path);
}
