/*-------------------------------------------------------------------------
 * provider.c
 *	  The provider table.  A claim says which provider performs a job and
 *	  how (flow, method, path, body or params, the state to wait for); this
 *	  module hands the job to that provider's module and fills the {field}
 *	  placeholders of a path.  Nothing here, nor in the providers, depends on
 *	  a job's kind: a new kind of a known flow is a row in the database.
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fly.h"
#include "provider.h"
#include "provider_id.h"
#include "stripe.h"

/* A provider: its name in job_kinds.provider, how to start and restart a job. */
typedef struct provider
{
	const char *name;
	void		(*start) (job *j);
	void		(*restart) (job *j);	/* start over within the attempt; NULL: never */
} provider;

static const provider providers[] = {
	{"fly", fly_start, fly_restart},
	{"stripe", stripe_start, NULL},
};

/* The provider named by the job's claim, or NULL. */
static const provider *
provider_of(job *j)
{
	size_t		i;

	for (i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
		if (strcmp(providers[i].name, j->provider) == 0)
			return &providers[i];
	return NULL;
}

/* Start performing a job: refused ones end at once, others go to their provider. */
void
provider_start(job *j)
{
	const provider *p = provider_of(j);
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
	if (p == NULL)
	{
		job_fail(j, 1, -1, "provider %s is not known to this sidecar", j->provider);
		return;
	}
	p->start(j);
}

/* Start a job over within its attempt (after a transient fault). */
void
provider_restart(job *j)
{
	const provider *p = provider_of(j);

	if (p != NULL && p->restart != NULL)
		p->restart(j);
	else
		job_fail(j, 0, -1, "provider %s cannot start a job over", j->provider);
}

/*
 * The request's path template (e.g. /v1/apps/{app_name}/machines) with every
 * {field} replaced by that string field of the request.  A value must be a
 * plain provider id (provider_id_valid), so no answer or row can turn a path
 * towards another resource.  NULL (and the job failed for good) otherwise;
 * the caller frees the result.
 */
char *
provider_path(job *j, const char *template)
{
	char		out[1024];
	size_t		len = 0;
	const char *p = template;

	if (template == NULL || template[0] != '/')
	{
		job_fail(j, 1, -1, "claim gave no API path");
		return NULL;
	}
	while (*p != '\0')
	{
		const char *value = NULL;
		size_t		n;

		if (*p == '{')
		{
			char		field[64];
			const char *close = strchr(p, '}');

			if (close == NULL || (size_t) (close - p - 1) >= sizeof(field))
				break;
			memcpy(field, p + 1, (size_t) (close - p - 1));
			field[close - p - 1] = '\0';
			value = json_str(j->request, field);
			if (!provider_id_valid(value))
			{
				job_fail(j, 1, -1, "claim gave no valid %s for the path", field);
				return NULL;
			}
			p = close + 1;
		}
		else
		{
			n = strcspn(p, "{");
			if (len + n >= sizeof(out))
				break;
			memcpy(out + len, p, n);
			len += n;
			p += n;
			continue;
		}
		n = strlen(value);
		if (len + n >= sizeof(out))
			break;
		memcpy(out + len, value, n);
		len += n;
	}
	if (*p != '\0')
	{
		job_fail(j, 1, -1, "claim gave a malformed or too long API path");
		return NULL;
	}
	out[len] = '\0';
	return strdup(out);
}
