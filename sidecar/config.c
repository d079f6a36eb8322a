/*-------------------------------------------------------------------------
 * config.c
 *	  agentmarket-sidecar's settings: command-line flags over environment
 *	  variables over defaults, secrets also from *_FILE variables, every
 *	  value checked before the daemon starts (exit 2 otherwise).
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sidecar.h"

sidecar_config config;

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

/*
 * A secret from NAME, or from the file NAME_FILE names (systemd credentials,
 * Docker and Kubernetes secrets); trailing newlines are dropped.  Exits when
 * both are set or the file cannot be read.
 */
static const char *
env_secret(const char *name)
{
	char		file_var[128];
	const char *path;
	FILE	   *f;
	char	   *buf;
	size_t		n;

	snprintf(file_var, sizeof(file_var), "%s_FILE", name);
	path = env_str(file_var);
	if (path == NULL)
		return env_str(name);
	if (env_str(name) != NULL)
	{
		fprintf(stderr, "agentmarket-sidecar: set %s or %s, not both\n", name, file_var);
		exit(2);
	}
	f = fopen(path, "r");
	buf = malloc(65536);
	if (f == NULL || buf == NULL)
	{
		fprintf(stderr, "agentmarket-sidecar: cannot read %s (%s): %s\n", file_var, path,
				f == NULL ? strerror(errno) : "out of memory");
		exit(2);
	}
	n = fread(buf, 1, 65535, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n == 0)
	{
		fprintf(stderr, "agentmarket-sidecar: %s (%s) is empty\n", file_var, path);
		exit(2);
	}
	return buf;					/* kept for the life of the process */
}

/* Whether an on/off setting is on. */
static int
is_on(const char *v)
{
	return !(strcmp(v, "0") == 0 || strcmp(v, "off") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0);
}

/* Print usage. */
static void
usage(FILE *out)
{
	fprintf(out,
			"usage: agentmarket-sidecar [--once] [--concurrency N] [--batch N] [--database-connections 1|2]\n"
			"         [--connect-timeout-ms N] [--request-timeout-ms N] [--fly-wait-seconds N]\n"
			"         [--lease-seconds N] [--poll-ms N] [--no-listen] [--drain-seconds N]\n"
			"         [--rate-limit-delay-seconds N] [--health-port N] [--health-address IP]\n"
			"         [--worker NAME] [--log-level debug|info|warn|error] [--version]\n"
			"environment: AGENTMARKET_DSN (or PG*), FLY_API_TOKEN, FLY_API_BASE_URL, FLY_ORG_SLUG,\n"
			"  STRIPE_SECRET_KEY, STRIPE_API_BASE_URL (secrets also as NAME_FILE: a file holding it),\n"
			"  AGENTMARKET_SIDECAR_CONCURRENCY, ..._BATCH, ..._DATABASE_CONNECTIONS, ..._CONNECT_TIMEOUT_MS,\n"
			"  ..._REQUEST_TIMEOUT_MS,\n"
			"  ..._FLY_WAIT_SECONDS, ..._LEASE_SECONDS, ..._POLL_MS, ..._LISTEN, ..._DRAIN_SECONDS,\n"
			"  ..._RATE_LIMIT_DELAY_SECONDS, ..._HEALTH_PORT, ..._HEALTH_ADDRESS, ..._LOG_LEVEL\n");
}

/* Fill config from the environment, then the flags; exits on bad usage. */
void
sidecar_configure(int argc, char **argv)
{
	static struct option opts[] = {
		{"once", no_argument, NULL, 'o'},
		{"concurrency", required_argument, NULL, 'c'},
		{"batch", required_argument, NULL, 'b'},
		{"database-connections", required_argument, NULL, 'D'},
		{"connect-timeout-ms", required_argument, NULL, 'C'},
		{"request-timeout-ms", required_argument, NULL, 'T'},
		{"fly-wait-seconds", required_argument, NULL, 'W'},
		{"lease-seconds", required_argument, NULL, 'l'},
		{"poll-ms", required_argument, NULL, 'p'},
		{"no-listen", no_argument, NULL, 'n'},
		{"drain-seconds", required_argument, NULL, 'd'},
		{"rate-limit-delay-seconds", required_argument, NULL, 'r'},
		{"health-port", required_argument, NULL, 'H'},
		{"health-address", required_argument, NULL, 'A'},
		{"worker", required_argument, NULL, 'w'},
		{"log-level", required_argument, NULL, 'L'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	char		host[64] = "host";
	const char *log_level = "info";
	int			c;
	size_t		i;

	config.dsn = env_secret("AGENTMARKET_DSN");
	config.fly_token = env_secret("FLY_API_TOKEN");
	config.fly_base_url = env_str("FLY_API_BASE_URL") ? env_str("FLY_API_BASE_URL") : "https://api.machines.dev";
	config.fly_org_slug = env_str("FLY_ORG_SLUG");
	config.stripe_key = env_secret("STRIPE_SECRET_KEY");
	config.stripe_base_url = env_str("STRIPE_API_BASE_URL") ? env_str("STRIPE_API_BASE_URL") : "https://api.stripe.com";
	config.concurrency = (int) env_long("AGENTMARKET_SIDECAR_CONCURRENCY", 32);
	config.batch = (int) env_long("AGENTMARKET_SIDECAR_BATCH", 0);
	config.database_connections = (int) env_long("AGENTMARKET_SIDECAR_DATABASE_CONNECTIONS", 2);
	config.connect_timeout_ms = env_long("AGENTMARKET_SIDECAR_CONNECT_TIMEOUT_MS", 5000);
	config.request_timeout_ms = env_long("AGENTMARKET_SIDECAR_REQUEST_TIMEOUT_MS", 30000);
	config.fly_wait_seconds = (int) env_long("AGENTMARKET_SIDECAR_FLY_WAIT_SECONDS", 60);
	config.lease_seconds = (int) env_long("AGENTMARKET_SIDECAR_LEASE_SECONDS", 30);
	config.poll_ms = (int) env_long("AGENTMARKET_SIDECAR_POLL_MS", 1000);
	config.listen = env_str("AGENTMARKET_SIDECAR_LISTEN") ? is_on(env_str("AGENTMARKET_SIDECAR_LISTEN")) : 1;
	config.drain_seconds = (int) env_long("AGENTMARKET_SIDECAR_DRAIN_SECONDS", 20);
	config.rate_limit_delay_s = (int) env_long("AGENTMARKET_SIDECAR_RATE_LIMIT_DELAY_SECONDS", 30);
	config.health_port = (int) env_long("AGENTMARKET_SIDECAR_HEALTH_PORT", 0);
	config.health_address = env_str("AGENTMARKET_SIDECAR_HEALTH_ADDRESS") ?
		env_str("AGENTMARKET_SIDECAR_HEALTH_ADDRESS") : "127.0.0.1";
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
			case 'D': config.database_connections = atoi(optarg); break;
			case 'C': config.connect_timeout_ms = atol(optarg); break;
			case 'T': config.request_timeout_ms = atol(optarg); break;
			case 'W': config.fly_wait_seconds = atoi(optarg); break;
			case 'l': config.lease_seconds = atoi(optarg); break;
			case 'p': config.poll_ms = atoi(optarg); break;
			case 'n': config.listen = 0; break;
			case 'd': config.drain_seconds = atoi(optarg); break;
			case 'r': config.rate_limit_delay_s = atoi(optarg); break;
			case 'H': config.health_port = atoi(optarg); break;
			case 'A': config.health_address = optarg; break;
			case 'w': snprintf(config.worker, sizeof(config.worker), "%s", optarg); break;
			case 'L': log_level = optarg; break;
			case 'V': printf("agentmarket-sidecar %s\n", SIDECAR_VERSION); exit(0);
			case 'h': usage(stdout); exit(0);
			default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
	{
		usage(stderr);
		exit(2);
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
		config.database_connections < 1 || config.database_connections > 2 ||
		config.connect_timeout_ms < 1 || config.request_timeout_ms < 1 || config.fly_wait_seconds < 1 ||
		config.fly_wait_seconds > 60 || config.lease_seconds < 3 || config.lease_seconds > 86400 ||
		config.poll_ms < 1 || config.drain_seconds < 0 || config.drain_seconds > 86400 ||
		config.health_port < 0 || config.health_port > 65535)
	{
		fprintf(stderr, "agentmarket-sidecar: a setting is out of range\n");
		usage(stderr);
		exit(2);
	}
}

