/*-------------------------------------------------------------------------
 * json_text.h
 *	  Is this text one JSON object that jsonb takes as it is (json_text.c)?
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_JSON_TEXT_H
#define AGENTMARKET_JSON_TEXT_H

#include <stddef.h>

extern int	json_text_is_object(const char *text, size_t len);

#endif							/* AGENTMARKET_JSON_TEXT_H */
