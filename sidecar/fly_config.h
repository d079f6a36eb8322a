/*-------------------------------------------------------------------------
 * fly_config.h
 *	  The update_config flow and app secrets of Fly jobs (fly_config.c).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_FLY_CONFIG_H
#define AGENTMARKET_FLY_CONFIG_H

#include <jansson.h>

#include "http.h"
#include "job.h"

extern void fly_config_start(job *j);
extern void fly_set_secrets(job *j, json_t *values, http_done_fn done);
extern long fly_secrets_version(const http_response *r);

#endif							/* AGENTMARKET_FLY_CONFIG_H */
