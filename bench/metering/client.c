/*
 * bench/metering/client.c: one client, one connection, sending each line of
 * a file (a JSON array of usage events) to record_usage as a bound text
 * parameter of one prepared statement, the way drivers and PostgREST send a
 * request body, one transaction per batch.  Prints the wall-clock seconds and
 * its server backend's CPU seconds (from /proc) for the whole run.
 *
 *   client FILE   (connection from the PG* environment)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static double
backend_cpu(int pid)
{
	char		path[64];
	FILE	   *f;
	unsigned long utime = 0,
				stime = 0;
	int			field;
	int			c;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	/* Skip to field 14 (utime): past the ")" that ends the command name. */
	while ((c = fgetc(f)) != EOF && c != ')')
		;
	for (field = 2; field < 13 && (c = fgetc(f)) != EOF;)
		if (c == ' ')
			field++;
	if (fscanf(f, " %lu %lu", &utime, &stime) != 2)
		utime = stime = 0;
	fclose(f);
	return (double) (utime + stime) / sysconf(_SC_CLK_TCK);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	PGresult   *res;
	FILE	   *in;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	int			pid;
	long		events = 0;
	double		t0,
				c0;

	if (argc != 2 || (in = fopen(argv[1], "r")) == NULL)
	{
		fprintf(stderr, "usage: client FILE\n");
		return 2;
	}
	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(conn));
		return 1;
	}
	res = PQprepare(conn, "record", "SELECT count(*) FROM agentmarket.record_usage($1::jsonb)", 1, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(conn));
		return 1;
	}
	PQclear(res);
	pid = PQbackendPID(conn);
	if (getenv("BENCH_CLIENT_PAUSE"))
	{
		/* For a profiler to attach to the backend first. */
		fprintf(stderr, "backend %d\n", pid);
		sleep(atoi(getenv("BENCH_CLIENT_PAUSE")));
	}
	t0 = now();
	c0 = backend_cpu(pid);
	while ((len = getline(&line, &cap, in)) > 0)
	{
		const char *values[1];

		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (len == 0)
			continue;
		values[0] = line;
		res = PQexecPrepared(conn, "record", 1, values, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "%s", PQerrorMessage(conn));
			return 1;
		}
		events += atol(PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	printf("%ld %.6f %.6f\n", events, now() - t0, backend_cpu(pid) - c0);
	PQfinish(conn);
	return 0;
}
