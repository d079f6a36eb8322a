/*-------------------------------------------------------------------------
 * http.c
 *	  The HTTP engine: every call of every job goes through one libcurl multi
 *	  handle, so a batch of jobs is performed concurrently by one thread.
 *	  TLS verification is on, connect and total timeouts are explicit, only
 *	  http and https are allowed, and no header or body is ever logged.
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "clock.h"
#include "http.h"
#include "log.h"
#include "sidecar.h"

/* One transfer in flight. */
typedef struct http_call
{
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *request_body;
	char	   *body;
	size_t		body_len;
	size_t		body_cap;
	int			retry_after_s;
	int			should_retry;
	char		errbuf[CURL_ERROR_SIZE];
	job		   *owner;
	http_done_fn done;
	struct http_call *prev;		/* the list of calls in flight */
	struct http_call *next;
} http_call;

static CURLM *multi;
static CURLSH *share;
static int	in_flight;
static http_call *calls;

/*
 * libcurl's socket interface: libcurl says which sockets to watch (the
 * socket callback keeps them in an epoll set) and when its next timeout is
 * due (the timer callback), and each readiness is handed back for that one
 * socket (curl_multi_socket_action).  So a turn of the loop costs what its
 * ready sockets cost, not a pass over every transfer in flight.
 */
static int	epfd = -1;
static void (*ended_hook) (void);	/* after each completed transfer */
static double timer_due = -1;	/* when libcurl wants its timeout run; -1: no timer */

/*
 * Ended calls kept for the next ones: their easy handle (reset, so no
 * option of the last request survives) and their answer buffer, so a call
 * costs no handle set-up nor buffer growth.  Connections live in the multi
 * handle either way.
 */
static http_call *spare;
static int	spare_count;
#define SPARE_BODY_MAX (64 * 1024)	/* a buffer grown larger is not kept */

/* libcurl's socket callback: watch s for what it asks (or no longer). */
static int
http_socket_changed(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct epoll_event ev;

	(void) easy;
	(void) userp;
	memset(&ev, 0, sizeof(ev));
	ev.data.fd = s;
	if (what == CURL_POLL_REMOVE)
	{
		/* libcurl may have closed it already: then the set forgot it too. */
		epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	/* socketp: non-NULL once the socket is in the set. */
	if (socketp == NULL)
	{
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, s, &ev) != 0 &&
			(errno != EEXIST || epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev) != 0))
			return -1;
		curl_multi_assign(multi, s, &epfd);
	}
	else if (epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev) != 0)
		return -1;
	return 0;
}

/* libcurl's timer callback: run its timeout in timeout_ms (-1: none). */
static int
http_timer_changed(CURLM *m, long timeout_ms, void *userp)
{
	(void) m;
	(void) userp;
	timer_due = timeout_ms < 0 ? -1 : now_seconds() + timeout_ms / 1000.0;
	return 0;
}

/* Set up libcurl once for the process. */
int
http_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	multi = curl_multi_init();
	share = curl_share_init();
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (multi == NULL || share == NULL || epfd < 0)
		return -1;
	if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, http_socket_changed) != CURLM_OK ||
		curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, http_timer_changed) != CURLM_OK)
		return -1;
	/* DNS answers and TLS sessions are reused across the transfers. */
	if (curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
		curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
		curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) (config.concurrency + 8)) != CURLM_OK)
		return -1;
	return 0;
}

/* Release libcurl's handles. */
void
http_cleanup(void)
{
	while (spare != NULL)
	{
		http_call  *call = spare;

		spare = call->next;
		curl_easy_cleanup(call->easy);
		free(call->body);
		free(call);
	}
	spare_count = 0;
	if (multi != NULL)
		curl_multi_cleanup(multi);
	if (share != NULL)
		curl_share_cleanup(share);
	if (epfd >= 0)
		close(epfd);
	epfd = -1;
	curl_global_cleanup();
}

/* Number of transfers in flight. */
int
http_in_flight(void)
{
	return in_flight;
}

/*
 * Append a header line to *headers; 0, or -1 when libcurl could not (out of
 * memory: *headers is then freed and NULL, so nothing half-built is sent).
 */
int
http_header_add(struct curl_slist **headers, const char *header)
{
	struct curl_slist *grown = curl_slist_append(*headers, header);

	if (grown == NULL)
	{
		curl_slist_free_all(*headers);
		*headers = NULL;
		return -1;
	}
	*headers = grown;
	return 0;
}

/* URL-escape s (path segments, form values); caller frees with curl_free. */
char *
http_escape(const char *s)
{
	return curl_easy_escape(NULL, s, 0);
}

/* libcurl write callback: append to the call's body buffer. */
static size_t
http_write_body(char *data, size_t size, size_t n, void *userdata)
{
	http_call  *call = userdata;
	size_t		len = size * n;

	if (call->body_len + len + 1 > call->body_cap)
	{
		size_t		cap = call->body_cap ? call->body_cap : 1024;
		char	   *grown;

		while (call->body_len + len + 1 > cap)
			cap *= 2;
		/* Answers of these APIs are small; refuse absurd ones. */
		if (cap > 8 * 1024 * 1024)
			return 0;
		grown = realloc(call->body, cap);
		if (grown == NULL)
			return 0;
		call->body = grown;
		call->body_cap = cap;
	}
	memcpy(call->body + call->body_len, data, len);
	call->body_len += len;
	call->body[call->body_len] = '\0';
	return len;
}

/* libcurl header callback: keep Retry-After and Stripe-Should-Retry. */
static size_t
http_write_header(char *data, size_t size, size_t n, void *userdata)
{
	http_call  *call = userdata;
	size_t		len = size * n;
	char		line[256];
	char	   *value;

	if (len >= sizeof(line))
		return len;
	memcpy(line, data, len);
	line[len] = '\0';
	/* A new response (after a redirect or 100-continue) resets what we kept. */
	if (strncmp(line, "HTTP/", 5) == 0)
	{
		call->retry_after_s = -1;
		call->should_retry = -1;
		return len;
	}
	value = strchr(line, ':');
	if (value == NULL)
		return len;
	*value++ = '\0';
	while (*value == ' ' || *value == '\t')
		value++;
	value[strcspn(value, "\r\n")] = '\0';
	if (strcasecmp(line, "Retry-After") == 0 && isdigit((unsigned char) value[0]))
	{
		long		s = strtol(value, NULL, 10);

		call->retry_after_s = s > 86400 ? 86400 : (int) s;
	}
	else if (strcasecmp(line, "Stripe-Should-Retry") == 0)
		call->should_retry = strcasecmp(value, "true") == 0 ? 1 : 0;
	return len;
}

/* Free a call and what it owns, keeping its handle and buffer as a spare when there is room. */
static void
http_call_free(http_call *call)
{
	if (call->prev != NULL)
		call->prev->next = call->next;
	else if (calls == call)
		calls = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	if (call->easy != NULL)
		curl_multi_remove_handle(multi, call->easy);
	curl_slist_free_all(call->headers);
	free(call->request_body);
	if (call->easy != NULL && spare_count < config.concurrency + 8 && call->body_cap <= SPARE_BODY_MAX)
	{
		CURL	   *easy = call->easy;
		char	   *body = call->body;
		size_t		body_cap = call->body_cap;

		curl_easy_reset(easy);
		memset(call, 0, sizeof(*call));
		call->easy = easy;
		call->body = body;
		call->body_cap = body_cap;
		call->next = spare;
		spare = call;
		spare_count++;
		return;
	}
	if (call->easy != NULL)
		curl_easy_cleanup(call->easy);
	free(call->body);
	free(call);
}

/* A call to fill: a spare one, or a new one; NULL when out of memory. */
static http_call *
http_call_new(void)
{
	http_call  *call = spare;

	if (call != NULL)
	{
		spare = call->next;
		spare_count--;
		call->next = NULL;
		if (call->body != NULL)
			call->body[0] = '\0';
		return call;
	}
	call = calloc(1, sizeof(http_call));
	if (call != NULL && (call->easy = curl_easy_init()) == NULL)
	{
		free(call);
		call = NULL;
	}
	return call;
}

/*
 * Start a request for job j; done(j, response) is called from http_run when
 * it completes.  fresh_connection: never reuse a connection (requests that
 * are not safe to repeat).  Takes ownership of headers.  Returns 0, or -1 when the
 * request could not even be started (done is then not called).
 */
int
http_send(job *j, const char *method, const char *url, struct curl_slist *headers,
		  const char *body, long timeout_ms, int fresh_connection, http_done_fn done)
{
	http_call  *call = http_call_new();
	CURL	   *easy;
	int			ok = 1;

	if (call == NULL)
	{
		curl_slist_free_all(headers);
		return -1;
	}
	call->headers = headers;
	call->owner = j;
	call->done = done;
	call->retry_after_s = -1;
	call->should_retry = -1;
	easy = call->easy;
	if (body != NULL)
	{
		call->request_body = strdup(body);
		ok &= call->request_body != NULL;
	}
	ok &= curl_easy_setopt(easy, CURLOPT_URL, url) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
	if (strcmp(method, "GET") == 0)
		ok &= curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L) == CURLE_OK;
	else if (call->request_body != NULL)
	{
		ok &= curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->request_body) == CURLE_OK;
		ok &= curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(call->request_body)) == CURLE_OK;
	}
	else if (strcmp(method, "POST") == 0)
	{
		ok &= curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "") == CURLE_OK;
		ok &= curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, 0L) == CURLE_OK;
	}
	ok &= curl_easy_setopt(easy, CURLOPT_HTTPHEADER, call->headers) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, http_write_body) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_WRITEDATA, call) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, http_write_header) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_HEADERDATA, call) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, call->errbuf) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_PRIVATE, call) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_SHARE, share) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, config.connect_timeout_ms) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
	ok &= curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
#else
	ok &= curl_easy_setopt(easy, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS)) == CURLE_OK;
#endif
	ok &= curl_easy_setopt(easy, CURLOPT_USERAGENT, "agentmarket-sidecar/" SIDECAR_VERSION) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
	/*
	 * libcurl silently re-sends a request whose reused connection closed
	 * before any answer.  A create without an idempotency key must never be
	 * sent twice behind our back (its first copy may have taken effect), so
	 * it gets a connection of its own.
	 */
	if (fresh_connection)
		ok &= curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L) == CURLE_OK;
	if (!ok || curl_multi_add_handle(multi, easy) != CURLM_OK)
	{
		http_call_free(call);
		return -1;
	}
	call->next = calls;
	if (calls != NULL)
		calls->prev = call;
	calls = call;
	in_flight++;
	return 0;
}

/*
 * Abandon the calls of job j in flight (its lease ran out, or the drain
 * deadline passed): their done callbacks are never called.  Returns how many.
 */
int
http_cancel(job *j)
{
	http_call  *call = calls;
	int			n = 0;

	while (call != NULL)
	{
		http_call  *next = call->next;

		if (call->owner == j)
		{
			http_call_free(call);
			in_flight--;
			n++;
		}
		call = next;
	}
	return n;
}

/*
 * fn runs after each completed transfer's done callback, so that a slot
 * whose call ended takes its next job before the next answer is read.
 */
void
http_on_ended(void (*fn) (void))
{
	ended_hook = fn;
}

/* Hand every completed transfer to its done callback; returns how many. */
static int
http_collect(void)
{
	CURLMsg    *msg;
	int			left;
	int			n = 0;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		http_call  *call = NULL;
		http_response r;

		if (msg->msg != CURLMSG_DONE)
			continue;
		/* Every transfer is ours and carries its call: without it, nothing to hand back. */
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &call) != CURLE_OK || call == NULL)
		{
			log_event("error", "curl_transfer_unknown", NULL);
			curl_multi_remove_handle(multi, msg->easy_handle);
			continue;
		}
		memset(&r, 0, sizeof(r));
		r.retry_after_s = call->retry_after_s;
		r.should_retry = call->should_retry;
		if (msg->data.result == CURLE_OK &&
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r.status) == CURLE_OK)
		{
			/* A reused buffer may hold an earlier answer: only what this one wrote counts. */
			r.body = call->body_len > 0 ? call->body : NULL;
			r.body_len = call->body_len;
		}
		else if (msg->data.result == CURLE_OK)
		{
			r.status = 0;
			r.curl_error = "the answer's status could not be read";
		}
		else
		{
			r.status = 0;
			r.timed_out = msg->data.result == CURLE_OPERATION_TIMEDOUT;
			r.curl_error = call->errbuf[0] ? call->errbuf : curl_easy_strerror(msg->data.result);
		}
		in_flight--;
		n++;
		/* done may start the job's next request; this call is freed after. */
		call->done(call->owner, &r);
		http_call_free(call);
		if (ended_hook != NULL)
			ended_hook();
	}
	return n;
}

/* Run libcurl's timeout when it is due (new transfers start there); 0 or -1. */
static int
http_run_timer(void)
{
	int			running;

	if (timer_due < 0 || now_seconds() < timer_due)
		return 0;
	timer_due = -1;
	return curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running) == CURLM_OK ? 0 : -1;
}

/*
 * Start the transfers added since the last turn now (their requests go out
 * at once, not after whatever else the caller does first).  Completions are
 * left for http_run.
 */
void
http_kick(void)
{
	if (http_run_timer() != 0)
		log_event("error", "curl_multi_failed", json_pack("{ss}", "error", "curl_multi_socket_action"));
}

/*
 * Drive the transfers for up to timeout_ms (less when one completes or
 * libcurl's timer is due), also waking when one of fds (the database
 * socket, the health endpoint) is ready, with its revents set; calls the
 * done callback of every completed transfer.  Transfers that completed
 * while the caller was busy are handed back without waiting.
 */
void
http_run(int timeout_ms, struct curl_waitfd *fds, unsigned int nfds)
{
	struct pollfd p[17];
	struct epoll_event ev[64];
	unsigned int np = 0;
	unsigned int i;
	int			n;
	int			ready;
	int			failed = http_run_timer();

	if (http_collect() > 0)
		timeout_ms = 0;
	if (timer_due >= 0)
	{
		double		until = (timer_due - now_seconds()) * 1000.0;
		int			t = until <= 0 ? 0 : (int) until + 1;

		if (t < timeout_ms)
			timeout_ms = t;
	}
	p[np].fd = epfd;
	p[np].events = POLLIN;
	p[np++].revents = 0;
	for (i = 0; i < nfds && np < sizeof(p) / sizeof(p[0]); i++)
	{
		fds[i].revents = 0;
		p[np].fd = fds[i].fd;
		p[np].events = (fds[i].events & CURL_WAIT_POLLIN ? POLLIN : 0) | (fds[i].events & CURL_WAIT_POLLOUT ? POLLOUT : 0);
		p[np++].revents = 0;
	}
	ready = poll(p, np, timeout_ms);
	if (ready < 0 && errno != EINTR)
		failed = -1;
	for (i = 1; i < np; i++)
		fds[i - 1].revents = (p[i].revents & (POLLIN | POLLHUP | POLLERR) ? CURL_WAIT_POLLIN : 0) |
			(p[i].revents & POLLOUT ? CURL_WAIT_POLLOUT : 0);
	/* The sockets that are ready, each handed to libcurl alone. */
	while (p[0].revents != 0 && (n = epoll_wait(epfd, ev, 64, 0)) > 0)
	{
		for (i = 0; i < (unsigned int) n; i++)
		{
			int			what = (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? CURL_CSELECT_IN : 0) |
				(ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) | (ev[i].events & EPOLLERR ? CURL_CSELECT_ERR : 0);
			int			running;

			if (curl_multi_socket_action(multi, ev[i].data.fd, what, &running) != CURLM_OK)
				failed = -1;
			/* What this socket completed is handed back before the next one is read. */
			http_collect();
		}
		if (n < 64)
			break;
	}
	/* Nothing was ready: run libcurl's timeouts anyway (a lost timer cannot stall a transfer). */
	if (ready == 0 && in_flight > 0)
		timer_due = 0;
	if (http_run_timer() != 0)
		failed = -1;
	if (failed)
		log_event("error", "curl_multi_failed", NULL);
	http_collect();
}

/*
 * A short, loggable description of a failed call: the provider's own error
 * message when the body has one (Fly {"error": ...}, Stripe {"error":
 * {"message": ...}}), else the HTTP status or the transport error.
 */
char *
http_error_message(const http_response *r, const char *provider)
{
	char		buf[700];
	json_t	   *body = NULL;
	const char *msg = NULL;
	const char *code = NULL;

	if (r->status == 0)
	{
		snprintf(buf, sizeof(buf), "%s: %s%s", provider, r->timed_out ? "timeout: " : "",
				 r->curl_error ? r->curl_error : "transport error");
		return strdup(buf);
	}
	if (r->body != NULL)
		body = json_loadb(r->body, r->body_len, 0, NULL);
	if (json_is_object(body))
	{
		json_t	   *e = json_object_get(body, "error");

		if (json_is_object(e))
		{
			msg = json_str(e, "message");
			code = json_str(e, "code");
			if (code == NULL)
				code = json_str(e, "type");
		}
		else if (json_is_string(e))
		{
			msg = json_string_value(e);
			code = json_str(body, "status");
		}
		else
			msg = json_str(body, "message");
	}
	snprintf(buf, sizeof(buf), "%s: HTTP %ld%s%s%s%s", provider, r->status,
			 code ? " " : "", code ? code : "", msg ? ": " : "", msg ? msg : "");
	json_decref(body);
	return strdup(buf);
}
