/*-------------------------------------------------------------------------
 * stripe.h
 *	  Stripe API jobs (stripe.c).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_STRIPE_H
#define AGENTMARKET_STRIPE_H

#include <jansson.h>

#include "job.h"

extern void stripe_start(job *j);
extern char *stripe_form_encode(json_t *params);

#endif							/* AGENTMARKET_STRIPE_H */
