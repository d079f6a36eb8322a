/*-------------------------------------------------------------------------
 * fly.c
 *	  Fly.io Machines API jobs.  Every instance has its own app, named by the
 *	  database from the instance id, so every step can be replayed: a create
 *	  that already happened answers 422 name_taken (app), or is found again by
 *	  looking before creating (volume by name, machine by its
 *	  config.metadata.agentmarket_instance tag).  Look-ups happen on every
 *	  attempt after the first, i.e. after a crash, a timeout or a 5xx whose
 *	  effect is unknown.  429, 408 and 5xx are retried; other 4xx are final.
 *
 *	  What to do comes from the claim, never from the job's kind: its flow
 *	  ("call": the method and path it gives, then a wait for the state it
 *	  names; or one of the multi-step flows below), the ids and bodies.
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fly.h"
#include "fly_config.h"
#include "http.h"
#include "log.h"
#include "provider.h"
#include "provider_id.h"
#include "sidecar.h"

/* The flows this module performs (job_kinds.flow of Fly kinds). */
typedef enum fly_flow
{
	FLY_CALL,					/* one request, then a wait for the state the claim names */
	FLY_PROVISION,				/* app, secrets, volume, machine, wait */
	FLY_DESTROY,				/* machine, wait, volume, app */
	FLY_UPDATE_CONFIG			/* app secrets, then the machine's config unless it has the digest */
} fly_flow;

/* Flow names, and whether a transient fault starts the flow over within its attempt. */
static const struct
{
	const char *name;
	int			restartable;	/* every step looks before it creates */
}			fly_flows[] = {
	[FLY_CALL] = {"call", 0},
	[FLY_PROVISION] = {"provision", 1},
	[FLY_DESTROY] = {"destroy", 1},
	[FLY_UPDATE_CONFIG] = {"update_config", 0},
};

static void fly_create_volume_or_lookup(job *j);
static void fly_machine_step(job *j);
static void fly_create_machine(job *j);
static void fly_wait(job *j, const char *state);
static void fly_destroy_machine(job *j);
static void fly_destroy_volume(job *j);
static void fly_destroy_app(job *j);
static void fly_provision_secrets(job *j);

/*
 * Send a Fly API request: path from /v1 on; body (may be NULL) is borrowed.
 * A POST without a body sends {} as JSON (start, stop, suspend take none).
 */
void
fly_call(job *j, const char *method, const char *path, json_t *body, long timeout_ms, http_done_fn done)
{
	char		url[1024];
	char		auth[1024];
	struct curl_slist *headers = NULL;
	char	   *text = NULL;
	int			json = body != NULL || strcmp(method, "POST") == 0;

	/* A job already ended (an invalid id) makes no further call. */
	if (j->state != JOB_ACTIVE)
		return;
	snprintf(url, sizeof(url), "%s%s", config.fly_base_url, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", config.fly_token);
	if (json)
		text = body != NULL ? json_dumps(body, JSON_COMPACT) : strdup("{}");
	if (http_header_add(&headers, auth) != 0 || http_header_add(&headers, "Accept: application/json") != 0 ||
		(json && (text == NULL || http_header_add(&headers, "Content-Type: application/json") != 0)))
	{
		curl_slist_free_all(headers);
		free(text);
		job_fail(j, 0, -1, "fly: out of memory building %s %s", method, path);
		return;
	}
	if (http_send(j, method, url, headers, text, timeout_ms ? timeout_ms : config.request_timeout_ms,
				  strcmp(method, "GET") != 0, done) != 0)
		job_fail(j, 0, -1, "fly: could not start %s %s", method, path);
	free(text);
}

/* The job's app name, or NULL after failing the job when it is unusable. */
static const char *
fly_app(job *j)
{
	const char *app = json_str(j->request, "app_name");
	size_t		i;

	if (app == NULL || app[0] == '\0' || strlen(app) > 63)
		goto bad;
	for (i = 0; app[i]; i++)
		if (!((app[i] >= 'a' && app[i] <= 'z') || (app[i] >= '0' && app[i] <= '9') || app[i] == '-'))
			goto bad;
	return app;
bad:
	job_fail(j, 1, -1, "claim gave no valid Fly app name");
	return NULL;
}

/* Restarts of one attempt after transient failures, before it fails as a whole. */
#define FLY_RESTARTS 4
/* A Retry-After longer than this is left to the queue's backoff. */
#define FLY_RESTART_MAX_DELAY_S 10

/*
 * Fail the job from an unexpected answer; retryable unless a final 4xx.
 * Provisions and destroys, whose every step can be replayed (each looks
 * before it creates), first start over within the attempt a few times,
 * after a short backoff (or the Retry-After asked): a transient fault costs
 * a second rather than an attempt of the job's budget.
 */
void
fly_fail_from(job *j, const http_response *r, const char *what)
{
	char	   *msg = http_error_message(r, "fly");
	int			retryable = r->status == 0 || r->status == 408 || r->status == 429 || r->status >= 500;
	double		delay = 0.5 * (1 << j->restarts);

	if (r->retry_after_s > delay)
		delay = r->retry_after_s;
	if (retryable && j->restarts < FLY_RESTARTS && delay <= FLY_RESTART_MAX_DELAY_S &&
		fly_flows[j->flow].restartable)
	{
		char		error[800];

		snprintf(error, sizeof(error), "%s: %s", what, msg);
		j->restarts++;
		j->lookup = 1;			/* the failed call may have taken effect */
		j->restart_at = now_seconds() + delay;
		log_event("info", "job_restart",
				  json_pack("{sIsssisisssf}", "job", (json_int_t) j->id, "kind", j->kind, "attempt", j->attempt,
							"restart", j->restarts, "error", error, "delay", delay));
		free(msg);
		return;
	}
	job_fail(j, !retryable, r->retry_after_s, "%s: %s", what, msg);
	free(msg);
}

/* Parse a JSON answer body; NULL (and the job failed) when it is not JSON. */
json_t *
fly_body(job *j, const http_response *r, const char *what)
{
	json_t	   *body = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;

	if (body == NULL)
		job_fail(j, 0, -1, "fly: %s: answer %ld is not JSON", what, r->status);
	return body;
}

/*
 * Set j->machine_id / j->volume_id from an id string.  An id that is not a
 * plain provider id (it would change the meaning of a URL path) fails the
 * job for good and leaves the slot empty; fly_call sends nothing after that.
 */
void
fly_set_id(job *j, char **slot, const char *id)
{
	free(*slot);
	*slot = NULL;
	if (id != NULL && !provider_id_valid(id))
	{
		job_fail(j, 1, -1, "fly: refusing an invalid machine or volume id from the claim or an answer");
		return;
	}
	*slot = id ? strdup(id) : NULL;
}

/* The state the claim says to wait for ("started" when it names none). */
static const char *
fly_wait_state(job *j)
{
	const char *state = json_str(j->request, "wait");

	return state != NULL ? state : "started";
}

/* The final result of a Fly job. */
void
fly_succeed(job *j, const char *state)
{
	json_t	   *result = json_object();

	json_object_set_new(result, "app_name", json_string(json_str(j->request, "app_name")));
	json_object_set_new(result, "machine_id", j->machine_id ? json_string(j->machine_id) : json_null());
	json_object_set_new(result, "volume_id", j->volume_id ? json_string(j->volume_id) : json_null());
	json_object_set_new(result, "state", json_string(state));
	job_succeed(j, result);
}

/* ---- provision ------------------------------------------------------- */

/* POST /v1/apps answered: created, or already ours (name_taken). */
static void
fly_app_created(job *j, const http_response *r)
{
	if (r->status == 422 && r->body && strstr(r->body, "name_taken"))
		j->lookup = 1;			/* an earlier attempt created it: look before creating */
	else if (r->status != 201 && r->status != 200)
	{
		fly_fail_from(j, r, "create app");
		return;
	}
	fly_provision_secrets(j);
}

/* POST volumes answered. */
static void
fly_volume_created(job *j, const http_response *r)
{
	json_t	   *body;

	if (r->status != 200 && r->status != 201)
	{
		fly_fail_from(j, r, "create volume");
		return;
	}
	if ((body = fly_body(j, r, "create volume")) == NULL)
		return;
	fly_set_id(j, &j->volume_id, json_str(body, "id"));
	json_decref(body);
	if (j->volume_id == NULL)
	{
		job_fail(j, 0, -1, "fly: create volume: answer has no id");
		return;
	}
	fly_machine_step(j);
}

/* POST the volume described by the claim. */
static void
fly_create_volume(job *j)
{
	char		path[256];

	snprintf(path, sizeof(path), "/v1/apps/%s/volumes", json_str(j->request, "app_name"));
	fly_call(j, "POST", path, json_object_get(j->request, "volume"), 0, fly_volume_created);
}

/* GET volumes answered: reuse ours (same name, not being destroyed). */
static void
fly_volumes_listed(job *j, const http_response *r)
{
	json_t	   *body;
	json_t	   *v;
	size_t		i;
	const char *want = json_str(json_object_get(j->request, "volume"), "name");

	if (r->status != 200)
	{
		fly_fail_from(j, r, "list volumes");
		return;
	}
	if ((body = fly_body(j, r, "list volumes")) == NULL)
		return;
	json_array_foreach(body, i, v)
	{
		const char *name = json_str(v, "name");
		const char *state = json_str(v, "state");

		if (name && want && strcmp(name, want) == 0 &&
			!(state && (strcmp(state, "destroyed") == 0 || strcmp(state, "destroying") == 0 ||
						strcmp(state, "pending_destroy") == 0)))
		{
			fly_set_id(j, &j->volume_id, json_str(v, "id"));
			break;
		}
	}
	json_decref(body);
	if (j->volume_id != NULL)
		fly_machine_step(j);
	else
		fly_create_volume(j);
}

/* Volume step: none wanted, known, found again, or created. */
static void
fly_create_volume_or_lookup(job *j)
{
	char		path[256];

	if (!json_is_object(json_object_get(j->request, "volume")))
	{
		fly_machine_step(j);
		return;
	}
	if (json_str(j->request, "volume_id") != NULL)
	{
		fly_set_id(j, &j->volume_id, json_str(j->request, "volume_id"));
		fly_machine_step(j);
		return;
	}
	if (!j->lookup)
	{
		fly_create_volume(j);
		return;
	}
	snprintf(path, sizeof(path), "/v1/apps/%s/volumes", json_str(j->request, "app_name"));
	fly_call(j, "GET", path, NULL, 0, fly_volumes_listed);
}

/* A machine POST /start answered (for a machine found stopped). */
static void
fly_found_machine_started(job *j, const http_response *r)
{
	if (r->status != 200)
	{
		fly_fail_from(j, r, "start machine");
		return;
	}
	fly_wait(j, fly_wait_state(j));
}

/* GET machines answered: find ours by its metadata tag. */
static void
fly_machines_listed(job *j, const http_response *r)
{
	json_t	   *body;
	json_t	   *m;
	size_t		i;
	const char *instance = json_str(j->request, "instance_id");
	const char *state = NULL;
	char		path[256];

	if (r->status == 404 && j->flow == FLY_DESTROY)
	{
		fly_destroy_app(j);		/* the app is gone already */
		return;
	}
	if (r->status != 200)
	{
		fly_fail_from(j, r, "list machines");
		return;
	}
	if ((body = fly_body(j, r, "list machines")) == NULL)
		return;
	json_array_foreach(body, i, m)
	{
		json_t	   *meta = json_object_get(json_object_get(m, "config"), "metadata");
		const char *tag = json_str(meta, "agentmarket_instance");

		if (tag && instance && strcmp(tag, instance) == 0)
		{
			fly_set_id(j, &j->machine_id, json_str(m, "id"));
			state = json_str(m, "state");
			break;
		}
	}
	if (j->flow == FLY_DESTROY)
	{
		json_decref(body);
		if (j->machine_id)
			fly_destroy_machine(j);
		else
			fly_destroy_volume(j);
		return;
	}
	if (j->machine_id == NULL)
	{
		json_decref(body);
		fly_create_machine(j);
		return;
	}
	/* Found the machine an earlier attempt created. */
	if (state && (strcmp(state, "stopped") == 0 || strcmp(state, "suspended") == 0))
	{
		json_decref(body);
		snprintf(path, sizeof(path), "/v1/apps/%s/machines/%s/start", json_str(j->request, "app_name"), j->machine_id);
		fly_call(j, "POST", path, NULL, 0, fly_found_machine_started);
		return;
	}
	json_decref(body);
	fly_wait(j, fly_wait_state(j));
}

/* POST machines answered. */
static void
fly_machine_created(job *j, const http_response *r)
{
	json_t	   *body;

	if (r->status != 200 && r->status != 201)
	{
		/* Unknown outcome (timeout, 5xx): the next attempt looks it up first. */
		fly_fail_from(j, r, "create machine");
		return;
	}
	if ((body = fly_body(j, r, "create machine")) == NULL)
		return;
	fly_set_id(j, &j->machine_id, json_str(body, "id"));
	json_decref(body);
	if (j->machine_id == NULL)
	{
		job_fail(j, 0, -1, "fly: create machine: answer has no id");
		return;
	}
	fly_wait(j, fly_wait_state(j));
}

/* POST the machine described by the claim, mounting our volume. */
static void
fly_create_machine(job *j)
{
	json_t	   *body = json_deep_copy(json_object_get(j->request, "machine"));
	json_t	   *mounts = json_object_get(json_object_get(body, "config"), "mounts");
	char		path[256];

	if (!json_is_object(body))
	{
		json_decref(body);
		job_fail(j, 1, -1, "claim gave no machine to create");
		return;
	}
	if (json_is_array(mounts) && json_array_size(mounts) > 0)
	{
		if (j->volume_id == NULL)
		{
			json_decref(body);
			job_fail(j, 1, -1, "machine mounts a volume but none was created");
			return;
		}
		json_object_set_new(json_array_get(mounts, 0), "volume", json_string(j->volume_id));
	}
	snprintf(path, sizeof(path), "/v1/apps/%s/machines", json_str(j->request, "app_name"));
	fly_call(j, "POST", path, body, 0, fly_machine_created);
	json_decref(body);
}

/* Machine step of provision: known, looked up, or created. */
static void
fly_machine_step(job *j)
{
	char		path[256];

	if (json_str(j->request, "machine_id") != NULL)
	{
		fly_set_id(j, &j->machine_id, json_str(j->request, "machine_id"));
		fly_wait(j, fly_wait_state(j));
		return;
	}
	if (!j->lookup)
	{
		fly_create_machine(j);
		return;
	}
	snprintf(path, sizeof(path), "/v1/apps/%s/machines", json_str(j->request, "app_name"));
	fly_call(j, "GET", path, NULL, 0, fly_machines_listed);
}

/* Provision: the app's secrets were set before its machine is created. */
static void
fly_provision_secrets_set(job *j, const http_response *r)
{
	if (r->status != 200)
	{
		fly_fail_from(j, r, "set app secrets");
		return;
	}
	j->secrets_version = fly_secrets_version(r);
	fly_create_volume_or_lookup(j);
}

/* Provision step after the app: its secrets first (setting them again is harmless). */
static void
fly_provision_secrets(job *j)
{
	json_t	   *secrets = json_object_get(j->request, "secrets");

	if (!json_is_object(secrets) || json_object_size(secrets) == 0)
	{
		fly_create_volume_or_lookup(j);
		return;
	}
	fly_set_secrets(j, secrets, fly_provision_secrets_set);
}

/* ---- waiting for a state ----------------------------------------------- */

/* GET .../wait answered: the machine reached the state, or not yet (408). */
static void
fly_waited(job *j, const http_response *r)
{
	json_t	   *body;
	const char *state;

	if (r->status == 404 && j->flow == FLY_DESTROY)
	{
		fly_destroy_volume(j);
		return;
	}
	if (r->status != 200)
	{
		fly_fail_from(j, r, "wait for machine state");
		return;
	}
	if ((body = fly_body(j, r, "wait")) == NULL)
		return;
	state = json_str(body, "state");
	if (j->flow == FLY_DESTROY)
	{
		json_decref(body);
		fly_destroy_volume(j);
		return;
	}
	fly_succeed(j, state ? state : "unknown");
	json_decref(body);
}

/* Wait (long-poll) until the job's machine is in state. */
static void
fly_wait(job *j, const char *state)
{
	char		path[512];

	snprintf(path, sizeof(path), "/v1/apps/%s/machines/%s/wait?state=%s&timeout=%d",
			 json_str(j->request, "app_name"), j->machine_id, state, config.fly_wait_seconds);
	fly_call(j, "GET", path, NULL, config.fly_wait_seconds * 1000L + config.request_timeout_ms, fly_waited);
}

/* ---- one call, then a wait --------------------------------------------- */

/*
 * The call answered: wait for the state the claim names, or, when it names
 * none, the answer (a JSON object) is the result.
 */
static void
fly_called(job *j, const http_response *r)
{
	json_t	   *body;

	if (r->status < 200 || r->status >= 300)
	{
		fly_fail_from(j, r, json_str(j->request, "path"));
		return;
	}
	if (json_str(j->request, "wait") != NULL)
	{
		fly_wait(j, fly_wait_state(j));
		return;
	}
	body = r->body && r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : json_object();
	if (!json_is_object(body))
	{
		json_decref(body);
		job_fail(j, 0, -1, "fly: %s: answer %ld is not a JSON object", json_str(j->request, "path"), r->status);
		return;
	}
	job_succeed(j, body);
}

/* The claim's method and path (placeholders filled), with its body if any. */
static void
fly_call_start(job *j)
{
	const char *method = json_str(j->request, "method");
	char	   *path = provider_path(j, json_str(j->request, "path"));

	if (path == NULL)
		return;
	if (method == NULL || (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 && strcmp(method, "DELETE") != 0))
		job_fail(j, 1, -1, "claim gave no usable method");
	else if (json_str(j->request, "wait") != NULL && j->machine_id == NULL)
		job_fail(j, 1, -1, "claim gave no machine id to wait for");
	else
		fly_call(j, method, path, json_object_get(j->request, "body"), 0, fly_called);
	free(path);
}

/* ---- destroy ----------------------------------------------------------- */

/* DELETE app answered: done (a missing app is as good). */
static void
fly_app_destroyed(job *j, const http_response *r)
{
	if (r->status != 202 && r->status != 200 && r->status != 204 && r->status != 404)
	{
		fly_fail_from(j, r, "destroy app");
		return;
	}
	fly_succeed(j, "destroyed");
}

/* Delete the instance's app (with anything left in it). */
static void
fly_destroy_app(job *j)
{
	char		path[256];

	snprintf(path, sizeof(path), "/v1/apps/%s", json_str(j->request, "app_name"));
	fly_call(j, "DELETE", path, NULL, 0, fly_app_destroyed);
}

/* DELETE volume answered. */
static void
fly_volume_destroyed(job *j, const http_response *r)
{
	if (r->status != 200 && r->status != 404)
	{
		/* 412: still attached while the machine goes away; try again later. */
		fly_fail_from(j, r, "destroy volume");
		if (r->status == 412)
			j->permanent = 0;
		return;
	}
	fly_destroy_app(j);
}

/* Delete the instance's volume when it has one, then its app. */
static void
fly_destroy_volume(job *j)
{
	char		path[256];
	const char *volume = json_str(j->request, "volume_id");

	if (volume == NULL)
	{
		fly_destroy_app(j);
		return;
	}
	fly_set_id(j, &j->volume_id, volume);
	snprintf(path, sizeof(path), "/v1/apps/%s/volumes/%s", json_str(j->request, "app_name"), volume);
	fly_call(j, "DELETE", path, NULL, 0, fly_volume_destroyed);
}

/* DELETE machine answered: wait until it is gone. */
static void
fly_machine_destroyed(job *j, const http_response *r)
{
	if (r->status == 404)
	{
		fly_destroy_volume(j);
		return;
	}
	if (r->status != 200)
	{
		fly_fail_from(j, r, "destroy machine");
		return;
	}
	fly_wait(j, fly_wait_state(j));
}

/* Force-delete the machine. */
static void
fly_destroy_machine(job *j)
{
	char		path[256];

	snprintf(path, sizeof(path), "/v1/apps/%s/machines/%s?force=true", json_str(j->request, "app_name"), j->machine_id);
	fly_call(j, "DELETE", path, NULL, 0, fly_machine_destroyed);
}

/* Start a Fly job over within its attempt, looking before creating. */
void
fly_restart(job *j)
{
	fly_set_id(j, &j->volume_id, NULL);
	fly_start(j);
}

/* Start a Fly job: the flow its claim names. */
void
fly_start(job *j)
{
	const char *app = fly_app(j);
	const char *flow = json_str(j->request, "flow");
	char		path[512];
	size_t		i;

	if (app == NULL)
		return;
	if (config.fly_token == NULL || config.fly_org_slug == NULL)
	{
		job_fail(j, 0, 60, "FLY_API_TOKEN and FLY_ORG_SLUG are not set in this sidecar");
		return;
	}
	for (i = 0; i < sizeof(fly_flows) / sizeof(fly_flows[0]); i++)
		if (flow != NULL && strcmp(flow, fly_flows[i].name) == 0)
			break;
	if (i == sizeof(fly_flows) / sizeof(fly_flows[0]))
	{
		job_fail(j, 1, -1, "fly: flow %s is not known to this sidecar", flow ? flow : "(none)");
		return;
	}
	j->flow = (int) i;
	fly_set_id(j, &j->machine_id, json_str(j->request, "machine_id"));
	switch ((fly_flow) j->flow)
	{
		case FLY_CALL:
			fly_call_start(j);
			return;
		case FLY_PROVISION:
			{
				json_t	   *body = json_pack("{ssss}", "name", app, "org_slug", config.fly_org_slug);

				fly_call(j, "POST", "/v1/apps", body, 0, fly_app_created);
				json_decref(body);
				return;
			}
		case FLY_DESTROY:
			if (j->machine_id != NULL)
				fly_destroy_machine(j);
			else
			{
				snprintf(path, sizeof(path), "/v1/apps/%s/machines", app);
				fly_call(j, "GET", path, NULL, 0, fly_machines_listed);
			}
			return;
		case FLY_UPDATE_CONFIG:
			fly_config_start(j);
			return;
	}
}
