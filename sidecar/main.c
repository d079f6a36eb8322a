/*-------------------------------------------------------------------------
 * main.c
 *	  agentmarket-sidecar: configuration, signals and the loop.
 *
 *	  claim a batch (committed) -> perform the calls concurrently (curl multi)
 *	  -> report each outcome in its own transaction -> claim again when there
 *	  is room, on NOTIFY agentmarket_jobs, or every --poll-ms.  --once drains
 *	  what is due and exits; otherwise SIGTERM/SIGINT stop claiming and the
 *	  loop ends when the calls in flight have finished and been reported.
 *-------------------------------------------------------------------------
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sidecar.h"

sidecar_config config;
volatile sig_atomic_t stop_requested = 0;


/* SIGTERM/SIGINT: stop claiming; in-flight calls finish and are reported. */
static void
on_stop_signal(int sig)
{
	(void) sig;
	stop_requested = 1;
}

/* Integer from the environment, or dflt. */
static long
env_long(const char *name, long dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* String from the environment, NULL when unset or empty. */
static const char *
env_str(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* Print usage. */
static void
usage(FILE *out)
{
	fprintf(out,
			"usage: agentmarket-sidecar [--once] [--concurrency N] [--batch N]\n"
			"         [--connect-timeout-ms N] [--request-timeout-ms N] [--fly-wait-seconds N]\n"
			"         [--lease-seconds N] [--poll-ms N] [--rate-limit-delay-seconds N]\n"
			"         [--worker NAME] [--log-level debug|info|warn|error]\n"
			"environment: AGENTMARKET_DSN (or PG*), FLY_API_TOKEN, FLY_API_BASE_URL, FLY_ORG_SLUG,\n"
			"  STRIPE_SECRET_KEY, STRIPE_API_BASE_URL, AGENTMARKET_SIDECAR_CONCURRENCY, ..._BATCH,\n"
			"  ..._CONNECT_TIMEOUT_MS, ..._REQUEST_TIMEOUT_MS, ..._LEASE_SECONDS, ..._POLL_MS\n");
}

/* Fill config from the environment, then the flags; exits on bad usage. */
static void
configure(int argc, char **argv)
{
	static struct option opts[] = {
		{"once", no_argument, NULL, 'o'},
		{"concurrency", required_argument, NULL, 'c'},
		{"batch", required_argument, NULL, 'b'},
		{"connect-timeout-ms", required_argument, NULL, 'C'},
		{"request-timeout-ms", required_argument, NULL, 'T'},
		{"fly-wait-seconds", required_argument, NULL, 'W'},
		{"lease-seconds", required_argument, NULL, 'l'},
		{"poll-ms", required_argument, NULL, 'p'},
		{"rate-limit-delay-seconds", required_argument, NULL, 'r'},
		{"worker", required_argument, NULL, 'w'},
		{"log-level", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	char		host[64] = "host";
	const char *log_level = "info";
	int			c;
	size_t		i;

	config.dsn = env_str("AGENTMARKET_DSN");
	config.fly_token = env_str("FLY_API_TOKEN");
	config.fly_base_url = env_str("FLY_API_BASE_URL") ? env_str("FLY_API_BASE_URL") : "https://api.machines.dev";
	config.fly_org_slug = env_str("FLY_ORG_SLUG");
	config.stripe_key = env_str("STRIPE_SECRET_KEY");
	config.stripe_base_url = env_str("STRIPE_API_BASE_URL") ? env_str("STRIPE_API_BASE_URL") : "https://api.stripe.com";
	config.concurrency = (int) env_long("AGENTMARKET_SIDECAR_CONCURRENCY", 32);
	config.batch = (int) env_long("AGENTMARKET_SIDECAR_BATCH", 0);
	config.connect_timeout_ms = env_long("AGENTMARKET_SIDECAR_CONNECT_TIMEOUT_MS", 5000);
	config.request_timeout_ms = env_long("AGENTMARKET_SIDECAR_REQUEST_TIMEOUT_MS", 30000);
	config.fly_wait_seconds = (int) env_long("AGENTMARKET_SIDECAR_FLY_WAIT_SECONDS", 60);
	config.lease_seconds = (int) env_long("AGENTMARKET_SIDECAR_LEASE_SECONDS", 600);
	config.poll_ms = (int) env_long("AGENTMARKET_SIDECAR_POLL_MS", 1000);
	config.rate_limit_delay_s = (int) env_long("AGENTMARKET_SIDECAR_RATE_LIMIT_DELAY_SECONDS", 30);
	if (env_str("AGENTMARKET_SIDECAR_LOG_LEVEL"))
		log_level = env_str("AGENTMARKET_SIDECAR_LOG_LEVEL");
	gethostname(host, sizeof(host) - 1);
	srand((unsigned) (time(NULL) ^ getpid()));
	snprintf(config.worker, sizeof(config.worker), "%s-%d-%04x", host, (int) getpid(), rand() & 0xffff);

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'o': config.once = 1; break;
			case 'c': config.concurrency = atoi(optarg); break;
			case 'b': config.batch = atoi(optarg); break;
			case 'C': config.connect_timeout_ms = atol(optarg); break;
			case 'T': config.request_timeout_ms = atol(optarg); break;
			case 'W': config.fly_wait_seconds = atoi(optarg); break;
			case 'l': config.lease_seconds = atoi(optarg); break;
			case 'p': config.poll_ms = atoi(optarg); break;
			case 'r': config.rate_limit_delay_s = atoi(optarg); break;
			case 'w': snprintf(config.worker, sizeof(config.worker), "%s", optarg); break;
			case 'L': log_level = optarg; break;
			case 'h': usage(stdout); exit(0);
			default: usage(stderr); exit(2);
		}
	}
	if (log_set_level(log_level) != 0)
	{
		fprintf(stderr, "agentmarket-sidecar: unknown log level %s\n", log_level);
		exit(2);
	}
	/* Worker names are part of the lease; keep them to safe characters. */
	for (i = 0; config.worker[i]; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@/-", config.worker[i]))
			config.worker[i] = '-';
	if (config.batch <= 0)
		config.batch = config.concurrency;
	if (config.concurrency < 1 || config.concurrency > 4096 || config.batch > 10000 ||
		config.connect_timeout_ms < 1 || config.request_timeout_ms < 1 || config.fly_wait_seconds < 1 ||
		config.fly_wait_seconds > 60 || config.lease_seconds < 1 || config.poll_ms < 1)
	{
		fprintf(stderr, "agentmarket-sidecar: a setting is out of range\n");
		usage(stderr);
		exit(2);
	}
	/* A lease must outlive the longest job, or a slow job would run twice. */
	if (config.lease_seconds * 1000L < 6 * (config.request_timeout_ms + config.fly_wait_seconds * 1000L))
		log_event("warn", "lease_shorter_than_jobs",
				  json_pack("{sisI}", "lease_seconds", config.lease_seconds,
							"longest_job_ms", (json_int_t) (6 * (config.request_timeout_ms + config.fly_wait_seconds * 1000L))));
}

/* Report and free every job of *list that has ended; returns how many. */
static int
report_finished(PGconn *conn, job **list, int *active)
{
	job		  **link = list;
	job		   *ended = NULL;
	int			n = 0;

	while (*link != NULL)
	{
		job		   *j = *link;

		if (j->state == JOB_ACTIVE)
		{
			link = &j->next;
			continue;
		}
		*link = j->next;
		j->next = ended;
		ended = j;
		(*active)--;
		n++;
	}
	if (ended != NULL)
		queue_report_all(conn, ended);
	while (ended != NULL)
	{
		job		   *j = ended;

		ended = j->next;
		job_free(j);
	}
	return n;
}

/*
 * Whether the ended jobs should be reported now.  Outcomes are gathered for a
 * moment (a quarter of the batch, or 20 ms) so that one commit carries many;
 * nothing waits when no call is left in flight or the sidecar is stopping.
 */
static int
report_due(job *list, int active)
{
	int			ended = 0;
	double		oldest = 0;
	job		   *j;

	for (j = list; j != NULL; j = j->next)
		if (j->state != JOB_ACTIVE)
		{
			ended++;
			if (oldest == 0 || j->ended_at < oldest)
				oldest = j->ended_at;
		}
	if (ended == 0)
		return 0;
	return ended == active || stop_requested || ended * 4 >= config.batch ||
		now_seconds() - oldest >= 0.02;
}

/* The loop; returns the exit status. */
int
main(int argc, char **argv)
{
	struct sigaction sa;
	PGconn	   *conn;
	job		   *active_jobs = NULL;
	int			active = 0;
	int			wake = 1;
	double		next_claim = 0;
	long long	claimed_total = 0;
	int			status = 0;

	configure(argc, argv);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (http_init() != 0)
	{
		log_event("error", "http_init_failed", NULL);
		return 1;
	}
	conn = queue_connect();
	if (conn == NULL)
	{
		http_cleanup();
		return 1;
	}
	log_event("info", "started",
			  json_pack("{sssisisbssss}", "worker", config.worker, "concurrency", config.concurrency,
						"lease_seconds", config.lease_seconds, "once", config.once,
						"fly_api", config.fly_base_url, "stripe_api", config.stripe_base_url));

	for (;;)
	{
		int			room = config.concurrency - active;
		int			timeout_ms;

		if (stop_requested && active == 0)
			break;
		if (!stop_requested && room > 0 && (wake || now_seconds() >= next_claim))
		{
			int			want = room < config.batch ? room : config.batch;
			job		   *fresh = NULL;
			int			n = queue_claim(conn, want, &fresh);

			if (n < 0)
			{
				if (config.once)
				{
					status = 1;
					break;
				}
				n = 0;
			}
			claimed_total += n;
			while (fresh != NULL)
			{
				job		   *j = fresh;

				fresh = j->next;
				j->next = active_jobs;
				active_jobs = j;
				active++;
				job_start(j);
			}
			/* A full batch means more may be due: claim again soon. */
			wake = n == want && n > 0;
			if (!wake)
				next_claim = now_seconds() + config.poll_ms / 1000.0;
			if (config.once && n == 0 && active == 0)
				break;
		}
		if (report_due(active_jobs, active) && report_finished(conn, &active_jobs, &active) > 0)
		{
			/* Finished jobs may unblock the next job of their instance. */
			if (config.once ? active == 0 : active <= config.concurrency * 3 / 4)
				wake = 1;
		}
		if (stop_requested && active == 0)
			break;
		if (wake && active < config.concurrency && !stop_requested)
			timeout_ms = 0;
		else
		{
			double		until = (next_claim - now_seconds()) * 1000;

			/* With calls in flight, come back soon to report gathered outcomes. */
			timeout_ms = active > 0 ? 10 : (int) (until < 1 ? 1 : until);
			/* Idle waits stay short so that a SIGTERM is noticed promptly. */
			if (timeout_ms > 250)
				timeout_ms = 250;
		}
		if (http_run(timeout_ms, PQsocket(conn)) && queue_drain_notifications(conn) > 0)
			wake = 1;
	}
	log_event("info", "stopped", json_pack("{sssI}", "worker", config.worker, "claimed", (json_int_t) claimed_total));
	PQfinish(conn);
	http_cleanup();
	return status;
}
