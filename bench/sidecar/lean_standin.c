/*-------------------------------------------------------------------------
 * lean_standin.c
 *	  bench/sidecar's stand-in for the one endpoint the benchmark drives
 *	  (POST /v1/customers), and a minimal client to measure it alone.
 *
 *	  The Python Stripe stand-in (test/standin/stripe_server.py) costs about
 *	  0.2 ms of CPU per request and answers 64 connections in ~25 ms instead
 *	  of 20, so on a small machine it, not the sidecar, sets the benchmark's
 *	  figure.  This server answers exactly --latency-ms after a request has
 *	  arrived, with the bytes the real stand-in answered to the same request
 *	  (--response FILE, captured by bench.py at start: status line, headers,
 *	  body), the customer id (--vary ID) made unique per answer, so the
 *	  sidecar and the database see what Stripe's stand-in would have sent.
 *	  Anything but a POST /v1/customers with the Bearer key (--api-key), a
 *	  body and an Idempotency-Key gets Stripe's error shape (404, 401, 400).
 *
 *	  server: lean_standin serve --port P --api-key K --latency-ms N
 *	                           --response FILE [--vary ID]
 *	          prints "ready" once it listens; runs until killed.
 *	  client: lean_standin drive --port P --api-key K --connections C
 *	                           --requests N
 *	          C keep-alive connections POST back to back, N requests in all;
 *	          prints "<requests/s> <median ms> <answers not 200>".
 *
 *	  One thread, epoll, HTTP/1.1 keep-alive; answers leave in arrival order
 *	  (one latency for all, so a FIFO of due times is sorted), timed by a
 *	  timerfd.  Built by bench/sidecar/run; no part of the product.
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MAX_CONNS 1024
#define IN_CAP 65536

typedef struct conn
{
	int			fd;
	unsigned	generation;		/* answers queued for an earlier use of this slot are dropped */
	char		in[IN_CAP];
	size_t		in_len;
	char	   *out;			/* bytes not yet written */
	size_t		out_len;
	size_t		out_cap;
	int			want_out;
} conn;

typedef struct answer
{
	int			slot;
	unsigned	generation;
	int			kind;			/* 0: the captured answer; else an error status */
	struct timespec due;
} answer;

static conn *conns[MAX_CONNS];
static unsigned generations[MAX_CONNS];
static answer *fifo;
static size_t fifo_cap;
static size_t fifo_head;
static size_t fifo_len;
static int	epfd;
static int	tfd;
static char *response;
static size_t response_len;
static size_t vary_at[8];
static int	vary_count;
static size_t vary_len;
static unsigned long long served;
static const char *api_key = "";
static long latency_ns;

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Find the end of the request head at the start of buf; its length, or 0. */
static size_t
head_end(const char *buf, size_t len)
{
	const char *p = memmem(buf, len, "\r\n\r\n", 4);

	return p ? (size_t) (p - buf) + 4 : 0;
}

/* The value of header name in head (not NUL-terminated: its length in *vlen), or NULL. */
static const char *
header_value(const char *head, size_t head_len, const char *name, size_t *vlen)
{
	size_t		nlen = strlen(name);
	const char *p = memmem(head, head_len, "\r\n", 2);
	const char *end = head + head_len;

	while (p != NULL && p + 2 < end)
	{
		const char *line = p + 2;
		const char *eol = memmem(line, (size_t) (end - line), "\r\n", 2);

		if (eol == NULL)
			break;
		if ((size_t) (eol - line) > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0)
		{
			const char *v = line + nlen + 1;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t) (eol - v);
			return v;
		}
		p = eol;
	}
	return NULL;
}

/* Append bytes to a connection's output. */
static void
out_append(conn *c, const char *data, size_t len)
{
	if (c->out_len + len > c->out_cap)
	{
		size_t		cap = c->out_cap ? c->out_cap : 4096;

		while (c->out_len + len > cap)
			cap *= 2;
		if ((c->out = realloc(c->out, cap)) == NULL)
			die("realloc");
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
}

static void
conn_close(int slot)
{
	conn	   *c = conns[slot];

	if (c == NULL)
		return;
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	free(c);
	conns[slot] = NULL;
	generations[slot]++;
}

/* Write what is pending; wait for EPOLLOUT when the socket is full. */
static void
conn_flush(int slot)
{
	conn	   *c = conns[slot];
	struct epoll_event ev;

	while (c->out_len > 0)
	{
		ssize_t		n = write(c->fd, c->out, c->out_len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
		{
			conn_close(slot);
			return;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t) n);
		c->out_len -= (size_t) n;
	}
	if ((c->out_len > 0) != c->want_out)
	{
		c->want_out = c->out_len > 0;
		ev.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0);
		ev.data.u64 = (uint64_t) slot;
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

/* Arm the timer for the answer at the head of the FIFO. */
static void
arm_timer(void)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	if (fifo_len > 0)
	{
		its.it_value = fifo[fifo_head].due;
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;
	}
	if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
		die("timerfd_settime");
}

/* Queue an answer for slot, due latency after now. */
static void
queue_answer(int slot, int kind)
{
	answer	   *a;
	struct timespec t;

	if (fifo_len == fifo_cap)
	{
		size_t		cap = fifo_cap ? fifo_cap * 2 : 1024;
		answer	   *grown = malloc(cap * sizeof(answer));
		size_t		i;

		if (grown == NULL)
			die("malloc");
		for (i = 0; i < fifo_len; i++)
			grown[i] = fifo[(fifo_head + i) % fifo_cap];
		free(fifo);
		fifo = grown;
		fifo_cap = cap;
		fifo_head = 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_nsec += latency_ns;
	t.tv_sec += t.tv_nsec / 1000000000L;
	t.tv_nsec %= 1000000000L;
	a = &fifo[(fifo_head + fifo_len) % fifo_cap];
	a->slot = slot;
	a->generation = generations[slot];
	a->kind = kind;
	a->due = t;
	fifo_len++;
	if (fifo_len == 1)
		arm_timer();
}

/* A Stripe-shaped error answer. */
static void
error_answer(conn *c, int status, const char *reason, const char *type, const char *message)
{
	char		body[512];
	char		head[256];
	int			blen = snprintf(body, sizeof(body), "{\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}", type, message);
	int			hlen = snprintf(head, sizeof(head),
								"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
								status, reason, blen);

	out_append(c, head, (size_t) hlen);
	out_append(c, body, (size_t) blen);
}

/* The captured answer, its customer id made unique. */
static void
captured_answer(conn *c)
{
	size_t		start = c->out_len;
	char		id[64];
	int			i;

	out_append(c, response, response_len);
	served++;
	if (vary_count == 0)
		return;
	/* Same length as the captured id: the Content-Length stays right. */
	snprintf(id, sizeof(id), "%0*llx", (int) vary_len, served);
	for (i = 0; i < vary_count; i++)
		memcpy(c->out + start + vary_at[i], id + strlen(id) - vary_len, vary_len);
}

/* Send the answers that are due. */
static void
answer_due(void)
{
	struct timespec t;
	uint64_t	expirations;

	if (read(tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		die("read timerfd");
	clock_gettime(CLOCK_MONOTONIC, &t);
	while (fifo_len > 0)
	{
		answer	   *a = &fifo[fifo_head];
		conn	   *c;

		if (a->due.tv_sec > t.tv_sec || (a->due.tv_sec == t.tv_sec && a->due.tv_nsec > t.tv_nsec))
			break;
		fifo_head = (fifo_head + 1) % fifo_cap;
		fifo_len--;
		c = conns[a->slot];
		if (c == NULL || generations[a->slot] != a->generation)
			continue;
		if (a->kind == 0)
			captured_answer(c);
		else if (a->kind == 401)
			error_answer(c, 401, "Unauthorized", "invalid_request_error", "Invalid API Key provided.");
		else if (a->kind == 404)
			error_answer(c, 404, "Not Found", "invalid_request_error", "Unrecognized request URL.");
		else
			error_answer(c, 400, "Bad Request", "idempotency_error",
						 "This stand-in needs a form body and an Idempotency-Key.");
		conn_flush(a->slot);
	}
	arm_timer();
}

/* Parse the complete requests in a connection's input; queue their answers. */
static void
conn_requests(int slot)
{
	conn	   *c = conns[slot];
	size_t		off = 0;

	for (;;)
	{
		const char *buf = c->in + off;
		size_t		len = c->in_len - off;
		size_t		hlen = head_end(buf, len);
		size_t		vlen = 0;
		const char *v;
		long		body_len = 0;
		int			kind = 0;

		if (hlen == 0)
			break;
		v = header_value(buf, hlen, "Content-Length", &vlen);
		if (v != NULL)
			body_len = strtol(v, NULL, 10);
		if (body_len < 0 || body_len > IN_CAP / 2)
		{
			conn_close(slot);
			return;
		}
		if (len < hlen + (size_t) body_len)
			break;
		if (strncmp(buf, "POST /v1/customers ", 19) != 0)
			kind = 404;
		else
		{
			const char *auth = header_value(buf, hlen, "Authorization", &vlen);
			size_t		klen = strlen(api_key);

			if (auth == NULL || vlen != klen + 7 || strncmp(auth, "Bearer ", 7) != 0 ||
				memcmp(auth + 7, api_key, klen) != 0)
				kind = 401;
			else if (body_len == 0 || header_value(buf, hlen, "Idempotency-Key", &vlen) == NULL)
				kind = 400;
		}
		queue_answer(slot, kind);
		off += hlen + (size_t) body_len;
	}
	if (off > 0)
	{
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (c->in_len == IN_CAP)
		conn_close(slot);		/* a head larger than we take */
}

static int
listen_on(int port)
{
	struct sockaddr_in a;
	int			one = 1;
	int			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short) port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *) &a, sizeof(a)) != 0 || listen(fd, 1024) != 0)
		die("bind/listen");
	return fd;
}

/* Read a whole file into memory. */
static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = malloc(1 << 20);

	if (f == NULL || buf == NULL)
		die(path);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[*len] = '\0';
	return buf;
}

static void
serve(int port, const char *response_path, const char *vary)
{
	int			lfd = listen_on(port);
	struct epoll_event ev;
	struct epoll_event events[256];

	response = read_file(response_path, &response_len);
	if (vary != NULL && *vary)
	{
		const char *p = response;

		vary_len = strlen(vary);
		while (vary_count < 8 && (p = memmem(p, response_len - (size_t) (p - response), vary, vary_len)) != NULL)
		{
			vary_at[vary_count++] = (size_t) (p - response);
			p += vary_len;
		}
	}
	epfd = epoll_create1(0);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	if (epfd < 0 || tfd < 0)
		die("epoll/timerfd");
	ev.events = EPOLLIN;
	ev.data.u64 = (uint64_t) -1;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.u64 = (uint64_t) -2;
	epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
	printf("ready\n");
	fflush(stdout);
	for (;;)
	{
		int			n = epoll_wait(epfd, events, 256, -1);
		int			i;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (i = 0; i < n; i++)
		{
			uint64_t	tag = events[i].data.u64;

			if (tag == (uint64_t) -1)
			{
				int			fd;

				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
				{
					int			slot;
					int			one = 1;

					for (slot = 0; slot < MAX_CONNS && conns[slot] != NULL; slot++)
						;
					if (slot == MAX_CONNS)
					{
						close(fd);
						continue;
					}
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					if ((conns[slot] = calloc(1, sizeof(conn))) == NULL)
						die("calloc");
					conns[slot]->fd = fd;
					ev.events = EPOLLIN;
					ev.data.u64 = (uint64_t) slot;
					epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
				}
			}
			else if (tag == (uint64_t) -2)
				answer_due();
			else
			{
				int			slot = (int) tag;
				conn	   *c = conns[slot];

				if (c == NULL)
					continue;
				if (events[i].events & EPOLLOUT)
					conn_flush(slot);
				if (conns[slot] == NULL)
					continue;
				if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				{
					ssize_t		r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);

					if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
						conn_close(slot);
					else if (r > 0)
					{
						c->in_len += (size_t) r;
						conn_requests(slot);
					}
				}
			}
		}
	}
}

/* ---- the minimal client ---------------------------------------------- */

typedef struct client
{
	int			fd;
	char		in[65536];
	size_t		in_len;
	double		sent_at;
	int			busy;
} client;

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y;
}

static void
drive(int port, int connections, int requests)
{
	client	   *cl = calloc((size_t) connections, sizeof(client));
	double	   *lat = malloc(sizeof(double) * (size_t) requests);
	struct epoll_event ev;
	struct epoll_event events[256];
	int			sent = 0;
	int			done = 0;
	int			not_ok = 0;
	int			i;
	double		t0;

	if (cl == NULL || lat == NULL)
		die("malloc");
	epfd = epoll_create1(0);
	for (i = 0; i < connections; i++)
	{
		struct sockaddr_in a;
		int			one = 1;

		cl[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_port = htons((unsigned short) port);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (cl[i].fd < 0 || connect(cl[i].fd, (struct sockaddr *) &a, sizeof(a)) != 0)
			die("connect");
		setsockopt(cl[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t) i;
		epoll_ctl(epfd, EPOLL_CTL_ADD, cl[i].fd, &ev);
	}
	t0 = now_s();
	while (done < requests)
	{
		int			n;

		for (i = 0; i < connections && sent < requests; i++)
			if (!cl[i].busy)
			{
				char		req[1024];
				char		body[128];
				int			blen = snprintf(body, sizeof(body), "email=c%d%%40bench.test&metadata[n]=%d", sent, sent);
				int			len = snprintf(req, sizeof(req),
										   "POST /v1/customers HTTP/1.1\r\nHost: bench\r\n"
										   "Authorization: Bearer %s\r\n"
										   "Content-Type: application/x-www-form-urlencoded\r\n"
										   "Idempotency-Key: ceiling-%d\r\nContent-Length: %d\r\n\r\n%s",
										   api_key, sent, blen, body);

				if (write(cl[i].fd, req, (size_t) len) != len)
					die("write");
				cl[i].busy = 1;
				cl[i].sent_at = now_s();
				sent++;
			}
		n = epoll_wait(epfd, events, 256, 1000);
		for (i = 0; i < n; i++)
		{
			client	   *c = &cl[events[i].data.u32];
			ssize_t		r = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
			size_t		hlen;
			size_t		vlen;
			const char *v;
			long		body_len;

			if (r <= 0)
				die("read");
			c->in_len += (size_t) r;
			if ((hlen = head_end(c->in, c->in_len)) == 0)
				continue;
			v = header_value(c->in, hlen, "Content-Length", &vlen);
			body_len = v ? strtol(v, NULL, 10) : 0;
			if (c->in_len < hlen + (size_t) body_len)
				continue;
			if (strncmp(c->in, "HTTP/1.1 200 ", 13) != 0)
				not_ok++;
			lat[done++] = now_s() - c->sent_at;
			c->in_len -= hlen + (size_t) body_len;
			memmove(c->in, c->in + hlen + body_len, c->in_len);
			c->busy = 0;
		}
	}
	{
		double		elapsed = now_s() - t0;

		qsort(lat, (size_t) requests, sizeof(double), cmp_double);
		printf("%.1f %.3f %d\n", requests / elapsed, lat[requests / 2] * 1000, not_ok);
	}
}

int
main(int argc, char **argv)
{
	int			port = 0;
	int			connections = 64;
	int			requests = 2000;
	const char *response_path = NULL;
	const char *vary = NULL;
	int			i;

	if (argc < 2)
	{
		fprintf(stderr, "usage: lean_standin serve|drive --port P --api-key K ...\n");
		return 2;
	}
	for (i = 2; i + 1 < argc; i += 2)
	{
		if (strcmp(argv[i], "--port") == 0)
			port = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--api-key") == 0)
			api_key = argv[i + 1];
		else if (strcmp(argv[i], "--latency-ms") == 0)
			latency_ns = (long) (atof(argv[i + 1]) * 1e6);
		else if (strcmp(argv[i], "--response") == 0)
			response_path = argv[i + 1];
		else if (strcmp(argv[i], "--vary") == 0)
			vary = argv[i + 1];
		else if (strcmp(argv[i], "--connections") == 0)
			connections = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--requests") == 0)
			requests = atoi(argv[i + 1]);
		else
		{
			fprintf(stderr, "lean_standin: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (port <= 0 || connections < 1 || connections > MAX_CONNS || requests < 1)
	{
		fprintf(stderr, "lean_standin: bad arguments\n");
		return 2;
	}
	if (strcmp(argv[1], "serve") == 0 && response_path != NULL)
		serve(port, response_path, vary);
	else if (strcmp(argv[1], "drive") == 0)
		drive(port, connections, requests);
	else
	{
		fprintf(stderr, "lean_standin: serve needs --response\n");
		return 2;
	}
	return 0;
}
