/*-------------------------------------------------------------------------
 * http.h
 *	  The HTTP engine: every call of every job on one libcurl multi handle.
 *-------------------------------------------------------------------------
 */
#ifndef AGENTMARKET_HTTP_H
#define AGENTMARKET_HTTP_H

#include <stddef.h>
#include <curl/curl.h>

#include "job.h"

/* An HTTP answer, or a transport failure (status 0, curl_error set). */
typedef struct http_response
{
	long		status;
	char	   *body;
	size_t		body_len;
	const char *curl_error;		/* NULL when an answer arrived */
	int			timed_out;
	int			retry_after_s;	/* Retry-After header, -1 when absent */
	int			should_retry;	/* Stripe-Should-Retry: 1 true, 0 false, -1 absent */
} http_response;

typedef void (*http_done_fn) (job *j, const http_response *r);

extern int	http_init(void);
extern void http_cleanup(void);
extern int	http_header_add(struct curl_slist **headers, const char *header);
extern int	http_send(job *j, const char *method, const char *url, struct curl_slist *headers,
					  const char *body, long timeout_ms, int fresh_connection, http_done_fn done);
extern void http_run(int timeout_ms, struct curl_waitfd *fds, unsigned int nfds);
extern void http_kick(void);
extern void http_on_ended(void (*fn) (void));
extern int	http_cancel(job *j);
extern int	http_in_flight(void);
extern char *http_escape(const char *s);
extern char *http_error_message(const http_response *r, const char *provider);

#endif							/* AGENTMARKET_HTTP_H */
