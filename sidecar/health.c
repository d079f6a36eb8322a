/*-------------------------------------------------------------------------
 * health.c
 *	  What the sidecar counts (claims, outcomes per kind) and shows (in-flight
 *	  calls, report backlog, queue lag, database state), and a small HTTP
 *	  endpoint on a local port (off by default) serving it:
 *	    GET /healthz   200 {"status": "ok", ...} while the database answers,
 *	                   503 while it does not
 *	    GET /metrics   Prometheus text format
 *	  It runs in the sidecar's one loop: the sockets are non-blocking and are
 *	  waited on with the transfers; a client that does not send a request
 *	  within two seconds is dropped.
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "health.h"
#include "log.h"
#include "sidecar.h"

#define MAX_KINDS 64
#define MAX_CLIENTS 8
#define CLIENT_TIMEOUT_S 2.0

sidecar_status status;

typedef struct kind_counters
{
	char		kind[64];
	long long	n[METRIC_COUNTERS];
} kind_counters;

typedef struct health_client
{
	int			fd;				/* -1: free slot */
	double		deadline;
	size_t		len;
	char		request[1024];
} health_client;

static kind_counters kinds[MAX_KINDS];
static int	nkinds;
static int	listen_fd = -1;
static health_client clients[MAX_CLIENTS];

static const char *const counter_names[METRIC_COUNTERS] = {
	"agentmarket_sidecar_jobs_claimed_total",
	"agentmarket_sidecar_jobs_succeeded_total",
	"agentmarket_sidecar_jobs_failed_total",
	"agentmarket_sidecar_jobs_dead_total",
	"agentmarket_sidecar_jobs_lease_lost_total"
};
static const char *const counter_help[METRIC_COUNTERS] = {
	"Jobs claimed, per kind.",
	"Jobs whose success the database applied, per kind.",
	"Attempts that failed and were queued again, per kind.",
	"Jobs that ended dead (permanent failure or out of attempts), per kind.",
	"Outcomes not applied because another worker held the lease, per kind."
};

/* Count one event of a job of kind. */
void
metrics_count(const char *kind, metric_counter which)
{
	int			i;

	for (i = 0; i < nkinds; i++)
		if (strcmp(kinds[i].kind, kind) == 0)
			break;
	if (i == nkinds)
	{
		/* Kinds are registered in the database (^[a-z]+\.[a-z_]+$); few. */
		if (nkinds == MAX_KINDS || strlen(kind) >= sizeof(kinds[0].kind))
			return;
		snprintf(kinds[nkinds].kind, sizeof(kinds[0].kind), "%s", kind);
		nkinds++;
	}
	kinds[i].n[which]++;
}

/* Open the endpoint when --health-port is set; 0, or -1 when it cannot listen. */
int
health_open(void)
{
	struct sockaddr_in addr;
	int			one = 1;
	int			i;

	for (i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	if (config.health_port == 0)
		return 0;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short) config.health_port);
	if (inet_pton(AF_INET, config.health_address, &addr.sin_addr) != 1)
	{
		log_event("error", "health_listen_failed",
				  json_pack("{ssss}", "address", config.health_address, "error", "not an IPv4 address"));
		return -1;
	}
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 ||
		setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(listen_fd, (struct sockaddr *) &addr, sizeof(addr)) != 0 ||
		listen(listen_fd, 16) != 0)
	{
		log_event("error", "health_listen_failed",
				  json_pack("{sssiss}", "address", config.health_address, "port", config.health_port,
							"error", strerror(errno)));
		if (listen_fd >= 0)
			close(listen_fd);
		listen_fd = -1;
		return -1;
	}
	log_event("info", "health_listening",
			  json_pack("{sssi}", "address", config.health_address, "port", config.health_port));
	return 0;
}

/* Close the endpoint and its clients. */
void
health_close(void)
{
	int			i;

	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd >= 0)
		{
			close(clients[i].fd);
			clients[i].fd = -1;
		}
	if (listen_fd >= 0)
		close(listen_fd);
	listen_fd = -1;
}

/* Add the endpoint's sockets to fds (at most max); returns how many. */
unsigned int
health_wait_fds(struct curl_waitfd *fds, unsigned int max)
{
	unsigned int n = 0;
	int			i;

	if (listen_fd < 0)
		return 0;
	if (n < max)
	{
		fds[n].fd = listen_fd;
		fds[n].events = CURL_WAIT_POLLIN;
		fds[n++].revents = 0;
	}
	for (i = 0; i < MAX_CLIENTS && n < max; i++)
		if (clients[i].fd >= 0)
		{
			fds[n].fd = clients[i].fd;
			fds[n].events = CURL_WAIT_POLLIN;
			fds[n++].revents = 0;
		}
	return n;
}

/* An ISO 8601 UTC time, or null for 0. */
static json_t *
json_time(double t)
{
	char		buf[40];
	time_t		secs = (time_t) t;
	struct tm	tm;

	if (t == 0)
		return json_null();
	gmtime_r(&secs, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

/* The /healthz body; *ok says whether the database answers. */
static char *
health_body(int *ok)
{
	json_t	   *o = json_object();
	double		now = now_seconds();
	char	   *text;

	*ok = status.database_up;
	json_object_set_new(o, "status", json_string(*ok ? "ok" : "unavailable"));
	json_object_set_new(o, "database", json_string(status.database_up ? "up" : "down"));
	json_object_set_new(o, "database_since", json_time(status.database_changed_at));
	json_object_set_new(o, "last_claim_at", json_time(status.last_claim_at));
	json_object_set_new(o, "last_claim_age_seconds",
						status.last_claim_at ? json_real(now - status.last_claim_at) : json_null());
	json_object_set_new(o, "last_job_claimed_at", json_time(status.last_job_claimed_at));
	json_object_set_new(o, "in_flight", json_integer(status.in_flight));
	json_object_set_new(o, "report_backlog", json_integer(status.report_backlog));
	json_object_set_new(o, "worker", json_string(config.worker));
	json_object_set_new(o, "version", json_string(SIDECAR_VERSION));
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return text;
}

/* Append printf output to a growing buffer. */
static void
append(char **buf, size_t *len, size_t *cap, const char *fmt,...)
	__attribute__((format(printf, 4, 5)));

static void
append(char **buf, size_t *len, size_t *cap, const char *fmt,...)
{
	va_list		ap;
	int			n;

	if (*buf == NULL)
		return;
	for (;;)
	{
		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (*len + (size_t) n < *cap)
		{
			*len += (size_t) n;
			return;
		}
		else
		{
			char	   *grown = realloc(*buf, *cap * 2 + (size_t) n);

			if (grown == NULL)
			{
				free(*buf);
				*buf = NULL;
				return;
			}
			*buf = grown;
			*cap = *cap * 2 + (size_t) n;
		}
	}
}

/* A gauge with its help and type lines. */
static void
gauge(char **buf, size_t *len, size_t *cap, const char *name, const char *help, double value)
{
	append(buf, len, cap, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, value);
}

/* The /metrics body (Prometheus text format 0.0.4). */
static char *
metrics_body(void)
{
	size_t		cap = 4096;
	size_t		len = 0;
	char	   *buf = malloc(cap);
	int			m;
	int			i;

	if (buf != NULL)
		buf[0] = '\0';
	for (m = 0; m < METRIC_COUNTERS; m++)
	{
		append(&buf, &len, &cap, "# HELP %s %s\n# TYPE %s counter\n", counter_names[m], counter_help[m],
			   counter_names[m]);
		for (i = 0; i < nkinds; i++)
			append(&buf, &len, &cap, "%s{kind=\"%s\"} %lld\n", counter_names[m], kinds[i].kind, kinds[i].n[m]);
	}
	gauge(&buf, &len, &cap, "agentmarket_sidecar_in_flight", "Jobs being performed now.", status.in_flight);
	gauge(&buf, &len, &cap, "agentmarket_sidecar_report_backlog",
		  "Ended jobs whose outcome waits to be reported (the database was unreachable).", status.report_backlog);
	gauge(&buf, &len, &cap, "agentmarket_sidecar_queue_lag_seconds",
		  "How long the job due longest has waited (queue_oldest_due), at the last heartbeat.", status.queue_lag_s);
	gauge(&buf, &len, &cap, "agentmarket_sidecar_database_up", "1 while the database answers.", status.database_up);
	gauge(&buf, &len, &cap, "agentmarket_sidecar_last_claim_timestamp_seconds",
		  "Unix time of the last claim that succeeded.", status.last_claim_at);
	append(&buf, &len, &cap,
		   "# HELP agentmarket_sidecar_database_outages_total Times the database became unreachable.\n"
		   "# TYPE agentmarket_sidecar_database_outages_total counter\n"
		   "agentmarket_sidecar_database_outages_total %lld\n", status.outages);
	return buf;
}

/* Answer one request and close the client. */
static void
health_answer(health_client *c)
{
	char		head[256];
	char	   *body = NULL;
	const char *type = "application/json";
	int			code = 200;
	int			ok;
	ssize_t		ignored;

	if (strncmp(c->request, "GET /healthz ", 13) == 0 || strncmp(c->request, "GET /healthz?", 13) == 0)
	{
		body = health_body(&ok);
		code = ok ? 200 : 503;
	}
	else if (strncmp(c->request, "GET /metrics ", 13) == 0 || strncmp(c->request, "GET /metrics?", 13) == 0)
	{
		body = metrics_body();
		type = "text/plain; version=0.0.4; charset=utf-8";
	}
	else if (strncmp(c->request, "GET ", 4) == 0)
	{
		code = 404;
		body = strdup("{\"error\":\"not found: try /healthz or /metrics\"}");
	}
	else
	{
		code = 405;
		body = strdup("{\"error\":\"only GET is served\"}");
	}
	if (body == NULL)
	{
		code = 500;
		body = strdup("");
	}
	snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
			 "Cache-Control: no-store\r\n\r\n",
			 code, code == 200 ? "OK" : code == 503 ? "Service Unavailable" : code == 404 ? "Not Found" :
			 code == 405 ? "Method Not Allowed" : "Internal Server Error", type, body ? strlen(body) : 0);
	/* Small answers: the socket buffer takes them whole; a slow reader loses. */
	ignored = send(c->fd, head, strlen(head), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (ignored > 0 && body != NULL)
		ignored = send(c->fd, body, strlen(body), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void) ignored;
	free(body);
	close(c->fd);
	c->fd = -1;
}

/* Accept new clients, read requests, answer complete ones, drop slow ones. */
void
health_serve(struct curl_waitfd *fds, unsigned int nfds)
{
	unsigned int k;
	int			i;
	double		now = now_seconds();

	if (listen_fd < 0)
		return;
	for (k = 0; k < nfds; k++)
	{
		if (fds[k].revents == 0)
			continue;
		if (fds[k].fd == listen_fd)
		{
			int			fd;

			while ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
			{
				for (i = 0; i < MAX_CLIENTS && clients[i].fd >= 0; i++)
					;
				if (i == MAX_CLIENTS)
				{
					close(fd);	/* busy: a scraper tries again */
					continue;
				}
				clients[i].fd = fd;
				clients[i].len = 0;
				clients[i].deadline = now + CLIENT_TIMEOUT_S;
			}
			continue;
		}
		for (i = 0; i < MAX_CLIENTS; i++)
		{
			health_client *c = &clients[i];
			ssize_t		got;

			if (c->fd != fds[k].fd)
				continue;
			got = recv(c->fd, c->request + c->len, sizeof(c->request) - 1 - c->len, 0);
			if (got <= 0)
			{
				if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				{
					close(c->fd);
					c->fd = -1;
				}
				break;
			}
			c->len += (size_t) got;
			c->request[c->len] = '\0';
			if (strstr(c->request, "\r\n\r\n") || strstr(c->request, "\n\n") || c->len == sizeof(c->request) - 1)
				health_answer(c);
			break;
		}
	}
	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd >= 0 && now > clients[i].deadline)
		{
			close(clients[i].fd);
			clients[i].fd = -1;
		}
}
