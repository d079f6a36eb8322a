/*-------------------------------------------------------------------------
 * provider_id.c
 *	  Ids that come back from Fly or Stripe are data, not paths: before one
 *	  is put into a URL path or handed to the database it must be 1 to
 *	  PROVIDER_ID_MAX_LENGTH characters of [A-Za-z0-9_-], so that an answer
 *	  such as a machine id "../../am-otherapp" can never direct a call at
 *	  another resource.  The database applies the same rule
 *	  (agentmarket_private.provider_id_ok).
 *-------------------------------------------------------------------------
 */
#include <stddef.h>

#include "provider_id.h"

/* 1 when id is a usable provider id, else 0. */
int
provider_id_valid(const char *id)
{
	size_t		i;

	if (id == NULL || id[0] == '\0')
		return 0;
	for (i = 0; id[i] != '\0'; i++)
	{
		char		c = id[i];

		if (i >= PROVIDER_ID_MAX_LENGTH)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}
