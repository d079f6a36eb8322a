/*-------------------------------------------------------------------------
 * provider_id.h
 *	  Whether a string from a provider's answer may be used as an id.
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_PROVIDER_ID_H
#define AGENTMARKET_PROVIDER_ID_H

/* Longest id accepted (Stripe documents ids of up to 255 characters). */
#define PROVIDER_ID_MAX_LENGTH 255

extern int	provider_id_valid(const char *id);

#endif
