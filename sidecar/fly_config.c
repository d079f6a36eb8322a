/*-------------------------------------------------------------------------
 * fly_config.c
 *	  The update_config flow of Fly jobs (fly.update_runtime, and
 *	  fly.update_machine, whose claim also gives an image): set the app's
 *	  secrets to those the claim gives (unsetting ours that are gone), then
 *	  update the machine's config with the claim's environment unless it
 *	  already carries the claim's digest.  Both steps are safe to repeat.
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fly.h"
#include "fly_config.h"

static void fly_runtime_secrets_listed(job *j, const http_response *r);

/* POST /apps/{app}/secrets with values (borrowed); done gets the answer. */
void
fly_set_secrets(job *j, json_t *values, http_done_fn done)
{
	json_t	   *body = json_pack("{sO}", "values", values);
	char		path[256];

	snprintf(path, sizeof(path), "/v1/apps/%s/secrets", json_str(j->request, "app_name"));
	fly_call(j, "POST", path, body, 0, done);
	json_decref(body);
}

/* The secrets version of a secrets update answer (0 when absent). */
long
fly_secrets_version(const http_response *r)
{
	json_t	   *body = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
	json_t	   *v = json_object_get(body, "version");
	long		version = json_is_integer(v) ? (long) json_integer_value(v) : 0;

	json_decref(body);
	return version;
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
	snprintf(path, sizeof(path), "/v1/apps/%s/machines/%s", json_str(j->request, "app_name"), j->machine_id);
	fly_call(j, "POST", path, update, 0, fly_runtime_machine_updated);
	json_decref(update);
}

/* Read the machine to see whether its config needs our update. */
static void
fly_runtime_read_machine(job *j)
{
	char		path[256];

	snprintf(path, sizeof(path), "/v1/apps/%s/machines/%s", json_str(j->request, "app_name"), j->machine_id);
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

/* Start the flow: list the app's secrets (the machine must exist). */
void
fly_config_start(job *j)
{
	char		path[256];

	if (j->machine_id == NULL)
	{
		job_fail(j, 1, -1, "claim gave no machine id");
		return;
	}
	snprintf(path, sizeof(path), "/v1/apps/%s/secrets", json_str(j->request, "app_name"));
	fly_call(j, "GET", path, NULL, 0, fly_runtime_secrets_listed);
}
