/*-------------------------------------------------------------------------
 * log.h
 *	  JSON log lines on stderr (log.c).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_LOG_H
#define AGENTMARKET_LOG_H

#include <jansson.h>

extern void log_event(const char *level, const char *event, json_t *fields);
extern int	log_set_level(const char *level);
extern int	log_enabled(const char *level);

#endif							/* AGENTMARKET_LOG_H */
