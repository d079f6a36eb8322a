/*-------------------------------------------------------------------------
 * main.c
 *	  agentmarket-sidecar: signals and the loop (its settings: config.c).
 *
 *	  claim a batch (committed, with a short lease) -> perform the calls
 *	  concurrently (curl multi) while a heartbeat renews the leases -> report
 *	  the outcomes in a new transaction -> claim again when there is room, on
 *	  NOTIFY agentmarket_jobs, or every --poll-ms.
 *
 *	  The database may go away at any time: the calls in flight go on, their
 *	  outcomes wait in the report backlog, and everything is reported once it
 *	  is back (it is tried with backoff).  A job whose lease could not be
 *	  renewed in time is abandoned before it can run twice at once.  --once
 *	  drains what is due and exits; otherwise SIGTERM/SIGINT stop claiming,
 *	  and what is not done within --drain-seconds is released for another
 *	  sidecar (a second signal releases at once); the exit status is 0.
 *-------------------------------------------------------------------------
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "health.h"
#include "http.h"
#include "job.h"
#include "log.h"
#include "provider.h"
#include "queue.h"
#include "sidecar.h"

volatile sig_atomic_t stop_requested = 0;

/* A job is abandoned this long before its lease could run out in the database. */
#define LEASE_MARGIN_S 1.0

static job *active_jobs;		/* claimed, being performed */
static int	active;
static job *backlog;			/* ended, outcome not reported yet */
static int	backlog_count;
static int	reporting_count;	/* ended, outcome sent, verdict awaited */
static job *ready;				/* claimed ahead, started as soon as a slot frees */
static int	ready_count;
static int	claim_threshold;	/* claims wait for this much room (a quarter batch) */
static int	claim_ahead;		/* jobs claimed ahead of the free slots (a batch) */

/* The loop's claim state, also moved by the claimed callback. */
static int	wake = 1;			/* claim at once */
static double next_claim;		/* else claim at least at this time */
static int	claiming;			/* jobs asked for by the claims in flight */
static long long claimed_total;
static long long exchanges;		/* statements that reported and/or claimed */
static double busy_slot_seconds;	/* calls in flight integrated over time */
static double started_at;
static double last_tick;		/* the loop's last turn, and the calls then in flight */
static int	last_active;
static int	exit_status;
static int	once_drained;		/* --once: a claim found nothing and nothing is left */


/* SIGTERM/SIGINT: stop claiming and drain; a second one: release now. */
static void
on_stop_signal(int sig)
{
	(void) sig;
	stop_requested = stop_requested ? 2 : 1;
}

/* Milliseconds between heartbeats: a third of the lease. */
static double
heartbeat_interval(void)
{
	return config.lease_seconds / 3.0;
}

/* Unlink j from *list; returns 1 when it was there. */
static int
unlink_job(job **list, job *j)
{
	job		  **link;

	for (link = list; *link != NULL; link = &(*link)->next)
		if (*link == j)
		{
			*link = j->next;
			j->next = NULL;
			return 1;
		}
	return 0;
}

/* Move the ended jobs from the active list to the report backlog. */
static void
collect_ended(void)
{
	job		  **link = &active_jobs;

	while (*link != NULL)
	{
		job		   *j = *link;

		if (j->state == JOB_ACTIVE)
		{
			link = &j->next;
			continue;
		}
		*link = j->next;
		j->next = backlog;
		backlog = j;
		active--;
		backlog_count++;
	}
}

/* Free every job of a list. */
static void
free_jobs(job *list)
{
	while (list != NULL)
	{
		job		   *j = list;

		list = j->next;
		job_free(j);
	}
}

/*
 * Whether the backlog should be reported now.  Outcomes are gathered for a
 * moment (a quarter of the batch, or 20 ms) so that one commit carries many;
 * nothing waits when no call is left in flight or the sidecar is stopping.
 */
static int
report_due(void)
{
	double		oldest = 0;
	job		   *j;

	if (backlog_count == 0)
		return 0;
	for (j = backlog; j != NULL; j = j->next)
		if (oldest == 0 || j->ended_at < oldest)
			oldest = j->ended_at;
	return active == 0 || stop_requested || backlog_count * 4 >= config.batch ||
		now_seconds() - oldest >= 0.02;
}

/* Move every job of list to the front of *to, counting them in *count. */
static void
move_jobs(job *list, job **to, int *count)
{
	while (list != NULL)
	{
		job		   *j = list;

		list = j->next;
		j->next = *to;
		*to = j;
		(*count)++;
	}
}

/*
 * Send one exchange: the backlog's outcomes when report is set, and a claim
 * of claim jobs (0: none).  The reported callback gets the verdict, the
 * claimed callback the jobs.  Returns 0 when sent.
 */
static int
exchange(int report, int claim)
{
	if (queue_exchange_send(report ? backlog : NULL, claim) != 0)
		return -1;
	exchanges++;
	claiming += claim;
	if (report)
	{
		reporting_count += backlog_count;
		backlog = NULL;
		backlog_count = 0;
	}
	return 0;
}

/*
 * A report's verdict.  Delivered: the jobs are done (and finished jobs may
 * unblock the next job of their instance: claim soon).  Refused as a batch:
 * each job alone.  Unreachable: kept and reported once the database is back.
 */
static void
reported(job *list, int rc)
{
	job		   *j;

	for (j = list; j != NULL; j = j->next)
		reporting_count--;
	if (rc == -2)
		rc = queue_report_each(list);
	if (rc == 0)
	{
		free_jobs(list);
		wake = 1;
	}
	else
		move_jobs(list, &backlog, &backlog_count);	/* reported once the database is back */
}

/*
 * Start claimed-ahead jobs while a slot is free.  Up to a batch is claimed
 * ahead of the free slots, so a slot whose call ended starts its next job at
 * once instead of waiting for a claim's round trip.
 */
static void
start_ready(void)
{
	while (ready != NULL && active < config.concurrency)
	{
		job		   *j = ready;

		ready = j->next;
		ready_count--;
		j->next = active_jobs;
		active_jobs = j;
		active++;
		provider_start(j);
	}
}

/*
 * A call ended (http_run hands its answer over): when that ended its job,
 * the slot takes its next claimed-ahead job and that job's request goes out
 * now, before the other answers of the turn are read.
 */
static void
call_ended(void)
{
	collect_ended();
	if (!stop_requested)
		start_ready();
	http_kick();
}

/*
 * Stopping: claimed-ahead jobs were never started, so they go back at once
 * (release_jobs); when the database cannot take them, their leases run out
 * and another sidecar claims them, nobody having performed them.
 */
static void
release_ready(void)
{
	job		  **held;
	job		   *j;
	int			n = 0;
	char		reason[256];

	queue_wait();				/* a claim in flight adds to ready first */
	if (ready == NULL)
		return;
	held = malloc(sizeof(job *) * (size_t) ready_count);
	for (j = ready; j != NULL && held != NULL; j = j->next)
		held[n++] = j;
	snprintf(reason, sizeof(reason), "released: sidecar %s stopped before it started the job", config.worker);
	if (held != NULL)
		queue_release(held, n, reason);
	free(held);
	free_jobs(ready);
	ready = NULL;
	ready_count = 0;
}

/* A claim's jobs (n < 0: the claim failed; wanted: what it asked for): started as slots allow. */
static void
claimed(job *fresh, int n, int wanted)
{
	double		now = now_seconds();

	claiming -= wanted;
	if (n < 0)
	{
		if (config.once)
		{
			/* Report what can still be reported, then exit 1. */
			exit_status = 1;
			stop_requested = 1;
		}
		n = 0;
	}
	claimed_total += n;
	move_jobs(fresh, &ready, &ready_count);
	if (!stop_requested)
		start_ready();
	http_kick();				/* their requests go out now */
	/* A full batch means more may be due: claim again soon. */
	wake = n == wanted && n > 0;
	if (!wake)
		next_claim = now + config.poll_ms / 1000.0;
	if (config.once && n == 0 && active == 0 && ready_count == 0 && backlog_count == 0 && reporting_count == 0 &&
		claiming == 0)
		once_drained = 1;
	/* Jobs refused at once (no call) end now: report them soon. */
	collect_ended();
}

/*
 * The heartbeat: renew the leases of everything held (running, and ended but
 * not reported).  A job another worker took meanwhile is dropped here: its
 * calls are abandoned and its outcome is not ours to report.
 */
static void
heartbeat(void)
{
	job		  **held;
	job		   *j;
	int			n = 0;
	int			i;

	queue_wait();				/* a report in flight settles first: its jobs are then held or done */
	held = malloc(sizeof(job *) * (size_t) (active + ready_count + backlog_count + 1));
	if (held == NULL)
		return;
	for (j = active_jobs; j != NULL; j = j->next)
		held[n++] = j;
	for (j = ready; j != NULL; j = j->next)
		held[n++] = j;
	for (j = backlog; j != NULL; j = j->next)
		held[n++] = j;
	if (queue_renew(held, n) == 0)
	{
		for (i = 0; i < n; i++)
		{
			j = held[i];
			if (!j->lease_lost)
				continue;
			if (unlink_job(&active_jobs, j))
			{
				active--;
				http_cancel(j);
			}
			else if (unlink_job(&ready, j))
				ready_count--;
			else if (unlink_job(&backlog, j))
				backlog_count--;
			metrics_count(j->kind, METRIC_LEASE_LOST);
			log_event("warn", "lease_lost", json_pack("{sIsssb}", "job", (json_int_t) j->id, "kind", j->kind,
													  "ended", j->state != JOB_ACTIVE));
			job_free(j);
		}
	}
	free(held);
	if (config.health_port != 0)
		queue_measure_lag();
}

/*
 * A job whose lease could not be renewed (the database is unreachable) stops
 * before the database lets another sidecar take it: its calls are abandoned
 * and it fails as a retryable attempt, reported once the database is back.
 */
static void
abandon_expiring(double now)
{
	job		   *j;
	job		  **link = &ready;

	/* A claimed-ahead job about to lose its lease ends the same way (nothing was called). */
	while ((j = *link) != NULL)
	{
		if (now < j->lease_until - LEASE_MARGIN_S)
		{
			link = &j->next;
			continue;
		}
		*link = j->next;
		ready_count--;
		j->next = active_jobs;
		active_jobs = j;
		active++;
	}
	for (j = active_jobs; j != NULL; j = j->next)
		if (j->state == JOB_ACTIVE && now >= j->lease_until - LEASE_MARGIN_S)
		{
			http_cancel(j);
			job_fail(j, 0, -1, "lease ran out before the job ended (the database was unreachable)");
			log_event("warn", "lease_expiring", json_pack("{sIss}", "job", (json_int_t) j->id, "kind", j->kind));
		}
}

/* Start over the jobs whose restart time has come (transient faults). */
static void
restart_due(double now)
{
	job		   *j;

	for (j = active_jobs; j != NULL; j = j->next)
		if (j->state == JOB_ACTIVE && j->restart_at > 0 && now >= j->restart_at)
		{
			j->restart_at = 0;
			provider_restart(j);
		}
}

/*
 * The drain deadline passed: abandon the calls still in flight and give their
 * jobs back, and report what ended.  What cannot be given back (the database
 * is unreachable) is claimed again when its lease runs out.
 */
static void
give_up(void)
{
	job		  **held;
	job		   *j;
	int			n = 0;
	int			released = -1;
	char		reason[256];

	queue_wait();				/* what is in flight settles first */
	release_ready();			/* a claim that came meanwhile: never started */
	held = malloc(sizeof(job *) * (size_t) (active + 1));
	for (j = active_jobs; j != NULL && held != NULL; j = j->next)
	{
		http_cancel(j);
		held[n++] = j;
	}
	snprintf(reason, sizeof(reason), "released: sidecar %s stopped before the call ended (drain deadline %d s)",
			 config.worker, config.drain_seconds);
	if (held != NULL && queue_connect_when_due())
		released = queue_release(held, n, reason);
	free(held);
	if (backlog != NULL && queue_up() && queue_report_all(backlog) == 0)
	{
		free_jobs(backlog);
		backlog = NULL;
		backlog_count = 0;
	}
	log_event(released == n && backlog == NULL ? "warn" : "error", "drain_deadline_passed",
			  json_pack("{sisisi}", "in_flight", active, "released", released < 0 ? 0 : released,
						"unreported", backlog_count));
	free_jobs(active_jobs);
	active_jobs = NULL;
	active = 0;
	free_jobs(backlog);
	backlog = NULL;
	backlog_count = 0;
}

/* The loop; returns the exit status. */
int
main(int argc, char **argv)
{
	struct sigaction sa;
	double		next_heartbeat = 0;
	double		drain_deadline = 0;
	int			was_up = 0;

	sidecar_configure(argc, argv);
	started_at = last_tick = now_seconds();
	queue_set_callbacks(reported, claimed);
	http_on_ended(call_ended);
	claim_threshold = (config.batch < config.concurrency ? config.batch : config.concurrency) / 4;
	if (claim_threshold < 1)
		claim_threshold = 1;
	/*
	 * Enough claimed ahead to refill the slots whose calls end while the
	 * round trips to the database under way (two connections, each a
	 * commit: a WAL flush) come back: a whole batch.  Half a batch ran dry
	 * whenever a round trip took longer than half a call (the machine
	 * busy): 6-20% of the slot time went idle in the benchmark.
	 */
	claim_ahead = config.batch < config.concurrency ? config.batch : config.concurrency;
	if (claim_ahead < 1)
		claim_ahead = 1;
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
	if (health_open() != 0)
	{
		http_cleanup();
		return 1;
	}
	log_event("info", "started",
			  json_pack("{sssssisisisbsbssss}", "version", SIDECAR_VERSION, "worker", config.worker,
						"concurrency", config.concurrency, "lease_seconds", config.lease_seconds,
						"drain_seconds", config.drain_seconds, "listen", config.listen, "once", config.once,
						"fly_api", config.fly_base_url, "stripe_api", config.stripe_base_url));
	/* --once is for cron and tests: no database, nothing to do. */
	if (!queue_connect_when_due() && config.once)
	{
		health_close();
		http_cleanup();
		return 1;
	}

	for (;;)
	{
		struct curl_waitfd fds[16];
		unsigned int nfds = 0;
		int			room;
		int			timeout_ms;
		double		now;
		int			up = queue_connect_when_due();

		now = now_seconds();
		busy_slot_seconds += last_active * (now - last_tick);
		last_tick = now;
		/* Back after an outage: renew and report before claiming anything. */
		if (up && !was_up)
			next_heartbeat = 0;
		was_up = up;
		if (up && now >= next_heartbeat &&
			(active > 0 || ready_count > 0 || backlog_count > 0 || reporting_count > 0 || config.health_port != 0))
		{
			heartbeat();
			next_heartbeat = now + heartbeat_interval();
		}
		abandon_expiring(now);
		restart_due(now);
		collect_ended();
		if (!stop_requested)
			start_ready();
		http_kick();
		if (once_drained)
			break;

		if (stop_requested)
		{
			if (drain_deadline == 0)
			{
				drain_deadline = now + config.drain_seconds;
				if (active > 0 || backlog_count > 0)
					log_event("info", "draining", json_pack("{sisisi}", "in_flight", active,
															"unreported", backlog_count,
															"drain_seconds", config.drain_seconds));
			}
			if (stop_requested == 2)
				drain_deadline = now;
			if (ready != NULL)
				release_ready();
			if (active == 0 && backlog_count == 0 && reporting_count == 0 && !queue_busy())
				break;
			if (now >= drain_deadline)
			{
				give_up();
				break;
			}
		}

		/*
		 * A slot is free as soon as its call ended: reporting is separate.
		 * Outcomes piling up (the database slow or away: more than two
		 * batches' worth) hold claims back.  Claims wait for a quarter batch
		 * of room, so that each statement carries many jobs, unless nothing
		 * is in flight or a report goes anyway.
		 */
		room = backlog_count + reporting_count >= 2 * config.concurrency ? 0 :
			config.concurrency + claim_ahead - active - ready_count - claiming;
		if (queue_up() && queue_can_send())
		{
			/*
			 * One statement reports and claims (exchange_jobs): a report
			 * that is due takes whatever room there is along, a claim that
			 * is due takes the ended outcomes along.  Sent without waiting;
			 * the verdict comes to reported(), the jobs to claimed().
			 */
			int			claim_due = !stop_requested && room > 0 && (wake || now >= next_claim);
			int			report = backlog_count > 0 && (report_due() || (claim_due && room >= claim_threshold));
			int			claim = claim_due && (report || room >= claim_threshold || active == 0) ?
				(room < config.batch ? room : config.batch) : 0;

			if ((report || claim > 0) && exchange(report, claim) != 0 && claim > 0)
			{
				claiming += claim;
				claimed(NULL, -1, claim);
			}
		}
		status.in_flight = active;
		status.report_backlog = backlog_count + reporting_count;

		if (wake && !stop_requested && queue_up() && queue_can_send() && room > 0 &&
			(room >= claim_threshold || active == 0))
			timeout_ms = 0;
		else
		{
			double		until = (next_claim - now_seconds()) * 1000;

			/* With calls or a statement in flight, come back soon (the socket wakes us too). */
			timeout_ms = active > 0 || backlog_count > 0 || queue_busy() ? 10 : (int) (until < 1 ? 1 : until);
			/* Idle waits stay short so that a signal or a deadline is noticed promptly. */
			if (timeout_ms > 250)
				timeout_ms = 250;
		}
		{
			int			sockets[2];
			int			n = queue_sockets(sockets, 2);
			int			i;

			for (i = 0; i < n; i++)
			{
				fds[nfds].fd = sockets[i];
				fds[nfds].events = CURL_WAIT_POLLIN;
				fds[nfds++].revents = 0;
			}
		}
		nfds += health_wait_fds(fds + nfds, 16 - nfds);
		last_active = active;
		http_run(timeout_ms, fds, nfds);
		/* NOTIFY, and the result of the statement in flight (handed to its callback). */
		if (queue_poll() > 0)
			wake = 1;
		health_serve(fds, nfds);
	}
	/*
	 * How full the slots were kept, how many round trips (reports and claims)
	 * it took, and how much of the time one was under way.
	 */
	{
		double		ran = now_seconds() - started_at > 0 ? now_seconds() - started_at : 1;

		log_event("info", "stopped",
				  json_pack("{sssIsIsfsf}", "worker", config.worker, "claimed", (json_int_t) claimed_total,
							"round_trips", (json_int_t) exchanges, "mean_in_flight", busy_slot_seconds / ran,
							"database_busy", status.statement_seconds / ran));
	}
	queue_close();
	health_close();
	http_cleanup();
	return exit_status;
}
