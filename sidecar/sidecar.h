/*-------------------------------------------------------------------------
 * sidecar.h
 *	  The daemon's configuration and stop flag (main.c); each module has its
 *	  own header (job.h, http.h, provider.h, fly.h, stripe.h, queue.h,
 *	  health.h, log.h, clock.h, provider_id.h).
 *
 * The sidecar holds no state and makes no business decision: it claims jobs
 * (agentmarket_private.claim_jobs), performs the calls the claim describes,
 * and hands each outcome back (finish_job / fail_job).
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_SIDECAR_H
#define AGENTMARKET_SIDECAR_H

#include <signal.h>

typedef struct sidecar_config
{
	const char *dsn;			/* AGENTMARKET_DSN(_FILE); NULL: libpq PG* variables */
	const char *fly_token;
	const char *fly_base_url;
	const char *fly_org_slug;
	const char *stripe_key;
	const char *stripe_base_url;
	char		worker[128];	/* lease owner name, unique per process */
	int			concurrency;	/* jobs in flight at once */
	int			batch;			/* most jobs claimed at once */
	int			database_connections;	/* 1 or 2: exchanges in flight at once */
	long		connect_timeout_ms;
	long		request_timeout_ms;
	int			fly_wait_seconds;	/* timeout of Fly's wait endpoint */
	int			lease_seconds;	/* renewed by heartbeat every third of it */
	int			poll_ms;		/* claim at least this often without NOTIFY */
	int			listen;			/* LISTEN agentmarket_jobs (off through a transaction pooler) */
	int			drain_seconds;	/* after SIGTERM, release what is not done by then */
	int			rate_limit_delay_s; /* Stripe 429 rate_limit: requeue at least this late */
	int			health_port;	/* /healthz and /metrics; 0: off */
	const char *health_address;
	int			once;			/* drain what is due, then exit */
} sidecar_config;

extern sidecar_config config;

/* config.c: read the settings (flags over environment over defaults); exits 2 on a bad one. */
extern void sidecar_configure(int argc, char **argv);
extern volatile sig_atomic_t stop_requested;	/* 1: drain; 2: a second signal, stop now */

#endif							/* AGENTMARKET_SIDECAR_H */
