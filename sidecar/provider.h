/*-------------------------------------------------------------------------
 * provider.h
 *	  The provider table: which module performs a job, by the provider its
 *	  claim names, and the request parts every provider shares (the path
 *	  with its {field} placeholders filled from the request).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_PROVIDER_H
#define AGENTMARKET_PROVIDER_H

#include "job.h"

extern void provider_start(job *j);
extern void provider_restart(job *j);
extern char *provider_path(job *j, const char *template);

#endif							/* AGENTMARKET_PROVIDER_H */
