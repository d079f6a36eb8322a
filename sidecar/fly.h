/*-------------------------------------------------------------------------
 * fly.h
 *	  Fly.io Machines API jobs (fly.c), and the call helpers its flows share
 *	  (fly_config.c).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_FLY_H
#define AGENTMARKET_FLY_H

#include <jansson.h>

#include "http.h"
#include "job.h"

extern void fly_start(job *j);
extern void fly_restart(job *j);

extern void fly_call(job *j, const char *method, const char *path, json_t *body, long timeout_ms,
					 http_done_fn done);
extern void fly_fail_from(job *j, const http_response *r, const char *what);
extern json_t *fly_body(job *j, const http_response *r, const char *what);
extern void fly_set_id(job *j, char **slot, const char *id);
extern void fly_succeed(job *j, const char *state);

#endif							/* AGENTMARKET_FLY_H */
