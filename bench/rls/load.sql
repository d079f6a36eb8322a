-- bench/rls data: 10,000 users with one hired instance each, 5 sessions per
-- user (50,000), 20 messages per session (1,000,000), written in time order
-- so that a session's messages are spread over the heap as in production.
-- Ids are derived from numbers so the pgbench scripts can name them.
\set ON_ERROR_STOP 1
SET session_replication_role = replica;  -- skip the foreign-key triggers while loading
SET synchronous_commit = off;

CREATE FUNCTION pg_temp.bench_id(kind text, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT ('00000000-0000-4000-' || kind || '-' || lpad(to_hex(n), 12, '0'))::uuid
$$;

INSERT INTO agentmarket.users (id, email, display_name, role)
SELECT pg_temp.bench_id('8000', n), 'user' || n || '@bench.test', 'User ' || n, 'user'
  FROM generate_series(1, 10000) n;
INSERT INTO agentmarket.users (id, email, display_name, role)
SELECT pg_temp.bench_id('c000', n), 'creator' || n || '@bench.test', 'Creator ' || n, 'creator'
  FROM generate_series(1, 10) n;
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category,
                                credits_per_session, github_repo_url, status, published_at)
SELECT pg_temp.bench_id('a000', n), pg_temp.bench_id('c000', 1 + n % 10), 'bench-agent-' || n,
       'Agent ' || n, 'tagline', 'description', 'productivity', 10,
       'https://github.com/bench/agent-' || n, 'published', now()
  FROM generate_series(0, 19) n;
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status)
SELECT pg_temp.bench_id('a100', n), pg_temp.bench_id('8000', n), pg_temp.bench_id('a000', n % 20),
       'am-bench-' || n, 'm-bench-' || n, 'running'
  FROM generate_series(1, 10000) n;
-- Session s (0..49999) belongs to user s / 5 + 1.
INSERT INTO agentmarket.sessions (id, instance_id, user_id, started_at)
SELECT pg_temp.bench_id('9000', s), pg_temp.bench_id('a100', s / 5 + 1), pg_temp.bench_id('8000', s / 5 + 1),
       timestamptz '2026-01-01 00:00:00+00' + s * interval '1 second'
  FROM generate_series(0, 49999) s;
-- Message i goes to session i % 50000: sessions interleave in time.
INSERT INTO agentmarket.messages (id, session_id, role, content, tokens_used, created_at)
SELECT pg_temp.bench_id('b000', i), pg_temp.bench_id('9000', i % 50000),
       CASE WHEN i / 50000 % 2 = 0 THEN 'user' ELSE 'assistant' END,
       'message ' || i || ': ' || repeat('lorem ipsum dolor sit amet ', 4),
       40, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second'
  FROM generate_series(0, 999999) i;
RESET session_replication_role;
