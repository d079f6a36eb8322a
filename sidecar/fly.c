/*-------------------------------------------------------------------------
 * fly.c
 *	  Fly.io Machines API jobs.  Every instance has its own app, named by the
 *	  database from the instance id, so every step can be replayed: a create
 *	  that already happened answers 422 name_taken (app), or is found again by
 *	  looking before creating (volume by name, machine by its
 *	  config.metadata.agentmarket_instance tag).  Look-ups happen on every
 *	  attempt after the first, i.e. after a crash, a timeout or a 5xx whose
 *	  effect is unknown.  429, 408 and 5xx are retried; other 4xx are final.
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar.h"
#include "provider_id.h"

static void fly_create_volume_or_lookup(job *j);
static void fly_machine_step(job *j);
static void fly_create_machine(job *j);
static void fly_wait(job *j, const char *state);
static void fly_destroy_machine(job *j);
static void fly_destroy_volume(job *j);
static void fly_destroy_app(job *j);
static void fly_provision_secrets(job *j);
static void fly_runtime_secrets_listed(job *j, const http_response *r);

/* Send a Fly API request: path is under /v1; body (may be NULL) is borrowed. */
static void
fly_call(job *j, const char *method, const char *path, json_t *body, long timeout_ms, http_done_fn done)
{
	char		url[1024];
	char		auth[1024];
	struct curl_slist *headers = NULL;
	char	   *text = NULL;

	/* A job already ended (an invalid id) makes no further call. */
	if (j->state != JOB_ACTIVE)
		return;
	snprintf(url, sizeof(url), "%s/v1%s", config.fly_base_url, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", config.fly_token);
	headers = curl_slist_append(headers, auth);
	headers = curl_slist_append(headers, "Accept: application/json");
	if (body != NULL)
	{
		headers = curl_slist_append(headers, "Content-Type: application/json");
		text = json_dumps(body, JSON_COMPACT);
	}
	else if (strcmp(method, "POST") == 0)
	{
		/* start, stop, suspend take no parameters: an empty JSON object, as JSON. */
		headers = curl_slist_append(headers, "Content-Type: application/json");
		text = strdup("{}");
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
static void
fly_fail_from(job *j, const http_response *r, const char *what)
{
	char	   *msg = error_message_from(r, "fly");
	int			retryable = r->status == 0 || r->status == 408 || r->status == 429 || r->status >= 500;
	double		delay = 0.5 * (1 << j->restarts);

	if (r->retry_after_s > delay)
		delay = r->retry_after_s;
	if (retryable && j->restarts < FLY_RESTARTS && delay <= FLY_RESTART_MAX_DELAY_S &&
		(strcmp(j->kind, "fly.provision_instance") == 0 || strcmp(j->kind, "fly.destroy_instance") == 0))
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
static json_t *
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
static void
set_id(job *j, char **slot, const char *id)
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

/* The final result of a Fly job. */
static void
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
	set_id(j, &j->volume_id, json_str(body, "id"));
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

	snprintf(path, sizeof(path), "/apps/%s/volumes", json_str(j->request, "app_name"));
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
			set_id(j, &j->volume_id, json_str(v, "id"));
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
		set_id(j, &j->volume_id, json_str(j->request, "volume_id"));
		fly_machine_step(j);
		return;
	}
	if (!j->lookup)
	{
		fly_create_volume(j);
		return;
	}
	snprintf(path, sizeof(path), "/apps/%s/volumes", json_str(j->request, "app_name"));
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
	fly_wait(j, "started");
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

	if (r->status == 404 && strcmp(j->kind, "fly.destroy_instance") == 0)
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
			set_id(j, &j->machine_id, json_str(m, "id"));
			state = json_str(m, "state");
			break;
		}
	}
	if (strcmp(j->kind, "fly.destroy_instance") == 0)
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
		snprintf(path, sizeof(path), "/apps/%s/machines/%s/start", json_str(j->request, "app_name"), j->machine_id);
		fly_call(j, "POST", path, NULL, 0, fly_found_machine_started);
		return;
	}
	json_decref(body);
	fly_wait(j, "started");
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
	set_id(j, &j->machine_id, json_str(body, "id"));
	json_decref(body);
	if (j->machine_id == NULL)
	{
		job_fail(j, 0, -1, "fly: create machine: answer has no id");
		return;
	}
	fly_wait(j, "started");
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
	snprintf(path, sizeof(path), "/apps/%s/machines", json_str(j->request, "app_name"));
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
		set_id(j, &j->machine_id, json_str(j->request, "machine_id"));
		fly_wait(j, "started");
		return;
	}
	if (!j->lookup)
	{
		fly_create_machine(j);
		return;
	}
	snprintf(path, sizeof(path), "/apps/%s/machines", json_str(j->request, "app_name"));
	fly_call(j, "GET", path, NULL, 0, fly_machines_listed);
}

/* ---- waiting for a state ----------------------------------------------- */

/* GET .../wait answered: the machine reached the state, or not yet (408). */
static void
fly_waited(job *j, const http_response *r)
{
	json_t	   *body;
	const char *state;

	if (r->status == 404 && strcmp(j->kind, "fly.destroy_instance") == 0)
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
	if (strcmp(j->kind, "fly.destroy_instance") == 0)
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

	snprintf(path, sizeof(path), "/apps/%s/machines/%s/wait?state=%s&timeout=%d",
			 json_str(j->request, "app_name"), j->machine_id, state, config.fly_wait_seconds);
	fly_call(j, "GET", path, NULL, config.fly_wait_seconds * 1000L + config.request_timeout_ms, fly_waited);
}

/* ---- start, stop, suspend ---------------------------------------------- */

/* POST start/stop/suspend answered: wait for the state it leads to. */
static void
fly_transition_sent(job *j, const http_response *r)
{
	if (r->status != 200)
	{
		fly_fail_from(j, r, j->kind);
		return;
	}
	if (strcmp(j->kind, "fly.start_machine") == 0)
		fly_wait(j, "started");
	else if (strcmp(j->kind, "fly.stop_machine") == 0)
		fly_wait(j, "stopped");
	else
		fly_wait(j, "suspended");
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

	snprintf(path, sizeof(path), "/apps/%s", json_str(j->request, "app_name"));
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
	set_id(j, &j->volume_id, volume);
	snprintf(path, sizeof(path), "/apps/%s/volumes/%s", json_str(j->request, "app_name"), volume);
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
	fly_wait(j, "destroyed");
}

/* Force-delete the machine. */
static void
fly_destroy_machine(job *j)
{
	char		path[256];

	snprintf(path, sizeof(path), "/apps/%s/machines/%s?force=true", json_str(j->request, "app_name"), j->machine_id);
	fly_call(j, "DELETE", path, NULL, 0, fly_machine_destroyed);
}

/* Start a Fly job over within its attempt, looking before creating. */
void
fly_restart(job *j)
{
	set_id(j, &j->volume_id, NULL);
	fly_start(j);
}

/* ---- runtime configuration: app secrets and machine environment ------- */

/* POST /apps/{app}/secrets with values (borrowed); done gets the answer. */
static void
fly_set_secrets(job *j, json_t *values, http_done_fn done)
{
	json_t	   *body = json_pack("{sO}", "values", values);
	char		path[256];

	snprintf(path, sizeof(path), "/apps/%s/secrets", json_str(j->request, "app_name"));
	fly_call(j, "POST", path, body, 0, done);
	json_decref(body);
}

/* The secrets version of a secrets update answer (0 when absent). */
static long
fly_secrets_version(const http_response *r)
{
	json_t	   *body = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
	json_t	   *v = json_object_get(body, "version");
	long		version = json_is_integer(v) ? (long) json_integer_value(v) : 0;

	json_decref(body);
	return version;
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

/* POST machine (update) answered. */
static void
fly_runtime_machine_updated(job *j, const http_response *r)
{
	if (r->status != 200)
	{
		/* 412: the machine changed since we read it; the next attempt reads it again. */
		fly_fail_from(j, r, "update machine");
		return;
	}
	fly_succeed(j, "updated");
}

/*
 * GET machine answered: unless its config already carries our digest, put our
 * environment into it (replacing every variable of ours, keeping the others)
 * and update it, as of the version we read and with our secrets.
 */
static void
fly_runtime_machine_read(job *j, const http_response *r)
{
	json_t	   *body;
	json_t	   *cfg;
	json_t	   *env;
	json_t	   *meta;
	json_t	   *update;
	json_t	   *value;
	const char *key;
	void	   *tmp;
	const char *prefix = json_str(j->request, "env_prefix");
	const char *digest = json_str(j->request, "digest");
	char		path[256];

	if (r->status != 200)
	{
		fly_fail_from(j, r, "get machine");
		return;
	}
	if ((body = fly_body(j, r, "get machine")) == NULL)
		return;
	cfg = json_object_get(body, "config");
	if (!json_is_object(cfg) || digest == NULL || prefix == NULL)
	{
		json_decref(body);
		job_fail(j, 1, -1, "fly: update runtime: the machine has no config, or the claim no digest");
		return;
	}
	meta = json_object_get(cfg, "metadata");
	if (json_is_object(meta) && json_str(meta, "agentmarket_runtime") != NULL &&
		strcmp(json_str(meta, "agentmarket_runtime"), digest) == 0)
	{
		json_decref(body);
		fly_succeed(j, "unchanged");	/* an earlier attempt updated it */
		return;
	}
	cfg = json_deep_copy(cfg);
	if (json_str(j->request, "image") != NULL)
		json_object_set_new(cfg, "image", json_string(json_str(j->request, "image")));
	env = json_object_get(cfg, "env");
	if (!json_is_object(env))
	{
		env = json_object();
		json_object_set_new(cfg, "env", env);
	}
	json_object_foreach_safe(env, tmp, key, value)
	{
		if (strncmp(key, prefix, strlen(prefix)) == 0)
			json_object_del(env, key);
	}
	json_object_update(env, json_object_get(j->request, "env"));
	meta = json_object_get(cfg, "metadata");
	if (!json_is_object(meta))
	{
		meta = json_object();
		json_object_set_new(cfg, "metadata", meta);
	}
	json_object_set_new(meta, "agentmarket_runtime", json_string(digest));
	update = json_pack("{so}", "config", cfg);
	if (json_str(body, "instance_id") != NULL)
		json_object_set_new(update, "current_version", json_string(json_str(body, "instance_id")));
	if (j->secrets_version > 0)
		json_object_set_new(update, "min_secrets_version", json_integer(j->secrets_version));
	json_decref(body);
	snprintf(path, sizeof(path), "/apps/%s/machines/%s", json_str(j->request, "app_name"), j->machine_id);
	fly_call(j, "POST", path, update, 0, fly_runtime_machine_updated);
	json_decref(update);
}

/* Read the machine to see whether its config needs our update. */
static void
fly_runtime_read_machine(job *j)
{
	char		path[256];

	snprintf(path, sizeof(path), "/apps/%s/machines/%s", json_str(j->request, "app_name"), j->machine_id);
	fly_call(j, "GET", path, NULL, 0, fly_runtime_machine_read);
}

/* Secrets set (POST answered). */
static void
fly_runtime_secrets_set(job *j, const http_response *r)
{
	if (r->status != 200)
	{
		fly_fail_from(j, r, "set app secrets");
		return;
	}
	j->secrets_version = fly_secrets_version(r);
	fly_runtime_read_machine(j);
}

/*
 * GET secrets answered: set ours, and unset those of ours (by prefix) that
 * the database no longer has.  Nothing to change: go to the machine.
 */
static void
fly_runtime_secrets_listed(job *j, const http_response *r)
{
	json_t	   *body;
	json_t	   *list;
	json_t	   *s;
	size_t		i;
	json_t	   *values;
	json_t	   *want = json_object_get(j->request, "secrets");
	const char *prefix = json_str(j->request, "secret_prefix");

	if (r->status != 200)
	{
		fly_fail_from(j, r, "list app secrets");
		return;
	}
	if ((body = fly_body(j, r, "list app secrets")) == NULL)
		return;
	if (!json_is_object(want) || prefix == NULL)
	{
		json_decref(body);
		job_fail(j, 1, -1, "fly: update runtime: the claim has no secrets object");
		return;
	}
	values = json_deep_copy(want);
	list = json_object_get(body, "secrets");
	json_array_foreach(list, i, s)
	{
		const char *name = json_str(s, "name");

		if (name && strncmp(name, prefix, strlen(prefix)) == 0 && json_object_get(want, name) == NULL)
			json_object_set_new(values, name, json_null());
	}
	json_decref(body);
	if (json_object_size(values) == 0)
	{
		json_decref(values);
		fly_runtime_read_machine(j);
		return;
	}
	fly_set_secrets(j, values, fly_runtime_secrets_set);
	json_decref(values);
}

/* Start a Fly job. */
void
fly_start(job *j)
{
	char		path[512];
	const char *app = fly_app(j);
	const char *verb;

	if (app == NULL)
		return;
	if (config.fly_token == NULL || config.fly_org_slug == NULL)
	{
		job_fail(j, 0, 60, "FLY_API_TOKEN and FLY_ORG_SLUG are not set in this sidecar");
		return;
	}
	set_id(j, &j->machine_id, json_str(j->request, "machine_id"));
	if (strcmp(j->kind, "fly.provision_instance") == 0)
	{
		json_t	   *body = json_pack("{ssss}", "name", app, "org_slug", config.fly_org_slug);

		fly_call(j, "POST", "/apps", body, 0, fly_app_created);
		json_decref(body);
		return;
	}
	if (strcmp(j->kind, "fly.destroy_instance") == 0)
	{
		if (j->machine_id != NULL)
			fly_destroy_machine(j);
		else
		{
			snprintf(path, sizeof(path), "/apps/%s/machines", app);
			fly_call(j, "GET", path, NULL, 0, fly_machines_listed);
		}
		return;
	}
	/* An upgrade (upgrades.sql) is a runtime update that also sets the image. */
	if (strcmp(j->kind, "fly.update_runtime") == 0 || strcmp(j->kind, "fly.update_machine") == 0)
	{
		if (j->machine_id == NULL)
		{
			job_fail(j, 1, -1, "claim gave no machine id");
			return;
		}
		snprintf(path, sizeof(path), "/apps/%s/secrets", app);
		fly_call(j, "GET", path, NULL, 0, fly_runtime_secrets_listed);
		return;
	}
	if (strcmp(j->kind, "fly.start_machine") == 0)
		verb = "start";
	else if (strcmp(j->kind, "fly.stop_machine") == 0)
		verb = "stop";
	else if (strcmp(j->kind, "fly.suspend_machine") == 0)
		verb = "suspend";
	else
	{
		job_fail(j, 1, -1, "job kind %s is not known to this sidecar", j->kind);
		return;
	}
	if (j->machine_id == NULL)
	{
		job_fail(j, 1, -1, "claim gave no machine id");
		return;
	}
	snprintf(path, sizeof(path), "/apps/%s/machines/%s/%s", app, j->machine_id, verb);
	fly_call(j, "POST", path, NULL, 0, fly_transition_sent);
}
