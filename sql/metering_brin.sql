-- metering_brin: record_usage's direct key write inserts into usage_keys'
-- BRIN index on recorded_at only the first key of a batch on each heap page
-- (all keys of a batch share recorded_at, so the others would change no
-- summary).  Here the index has one page per range and the batch lands in
-- the free space of several pages whose ranges are already summarized with
-- an older time, first slot taken (a key that opens a page is inserted
-- anyway): each of those summaries must widen, or a BRIN scan for the
-- batch's time misses the pages.  Each step is its own transaction (VACUUM
-- makes the free space), in a database of its own, so that no other suite's
-- rows decide where the batch lands.
\set QUIET 1
\set home :DBNAME
CREATE DATABASE metering_brin;
\c metering_brin
SET client_min_messages = warning;
CREATE EXTENSION pgtap;
CREATE EXTENSION agentmarket CASCADE;
\ir test/fixture.sql
SET search_path = agentmarket, public;
SELECT plan(5);

INSERT INTO users (id, email, role) VALUES
  ('6b000000-0000-4000-8000-00000000c001', 'creator@brin.example', 'creator'),
  ('6b000000-0000-4000-8000-00000000e001', 'user@brin.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    github_repo_url, fly_machine_size, fly_machine_memory_mb, published_at) VALUES
  ('6b000000-0000-4000-8000-0000000000a1', '6b000000-0000-4000-8000-00000000c001', 'brin-small', 'Small',
   't', 'd', 'research', 'published', 'free', 'https://x/brin', 'shared-cpu-1x', 256, now());
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('6b000000-0000-4000-8000-0000000000d1', '6b000000-0000-4000-8000-00000000e001',
   '6b000000-0000-4000-8000-0000000000a1', 'am-brin', 'b1', 'running');
CREATE FUNCTION pg_temp.batch(prefix text, n int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object('instance_id', '6b000000-0000-4000-8000-0000000000d1',
                                        'compute_seconds', 1, 'idempotency_key', prefix || lpad(i::text, 40, '0')))
      FROM generate_series(1, n) i;
$$;

-- One heap page per BRIN range.
DROP INDEX agentmarket_private.usage_keys_recorded_at;
CREATE INDEX usage_keys_recorded_at ON agentmarket_private.usage_keys USING brin (recorded_at) WITH (pages_per_range = 1);

-- Batch A fills pages; every other key of it goes, but not the first of a
-- page, and VACUUM frees the room.
SELECT count(*) AS recorded_a FROM record_usage(pg_temp.batch('brin-a-', 600)) WHERE outcome = 'recorded';
DELETE FROM agentmarket_private.usage_keys
 WHERE idempotency_key LIKE 'brin-a-%' AND right(idempotency_key, 1)::int % 2 = 0 AND (ctid::text::point)[1] > 1;
VACUUM agentmarket_private.usage_keys;
-- Every page's range summarized: the pages hold batch A's time only.
CREATE TEMP TABLE old_pages AS
SELECT p AS page FROM generate_series(0, pg_relation_size('agentmarket_private.usage_keys') / 8192 - 1) p;
SELECT bool_and(brin_summarize_range('agentmarket_private.usage_keys_recorded_at', page) >= 0) AS summarized FROM old_pages;

-- Batch B, a later transaction, lands in that room.
SELECT count(*) AS recorded_b FROM record_usage(pg_temp.batch('brin-b-', 200)) WHERE outcome = 'recorded';
SELECT cmp_ok((SELECT count(DISTINCT (ctid::text::point)[0]::int)::int FROM agentmarket_private.usage_keys
                WHERE idempotency_key LIKE 'brin-b-%' AND (ctid::text::point)[0]::int IN (SELECT page FROM old_pages)),
              '>=', 3, 'batch B went into the free space of at least three of batch A''s summarized pages');

-- A scan through the BRIN index alone finds every key of each batch.
SET enable_seqscan = off;
SET enable_indexscan = off;
CREATE FUNCTION pg_temp.brin_count(prefix text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM agentmarket_private.usage_keys
     WHERE recorded_at = (SELECT max(recorded_at) FROM agentmarket_private.usage_keys WHERE idempotency_key LIKE prefix || '%')
       AND left(idempotency_key, 7) = prefix;
$$;
CREATE FUNCTION pg_temp.plan_uses_brin() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXPLAIN SELECT count(*) FROM agentmarket_private.usage_keys
                       WHERE recorded_at = now() AND left(idempotency_key, 7) = 'brin-b-' LOOP
    IF line LIKE '%Bitmap Index Scan on usage_keys_recorded_at%' THEN RETURN true; END IF;
  END LOOP;
  RETURN false;
END $$;
SELECT ok(pg_temp.plan_uses_brin(), 'the counts below go through the BRIN index');
SELECT is(pg_temp.brin_count('brin-b-'), 200::bigint,
    'every key of batch B is found through the BRIN index: each summarized page it entered was widened');
SELECT is(pg_temp.brin_count('brin-a-'), (SELECT count(*) FROM agentmarket_private.usage_keys WHERE left(idempotency_key, 7) = 'brin-a-'),
    'batch A''s remaining keys too');
RESET enable_seqscan;
RESET enable_indexscan;
SELECT cmp_ok((SELECT count(*)::int FROM agentmarket_private.usage_keys WHERE left(idempotency_key, 7) = 'brin-a-'),
              '<', 400, 'batch A lost about half its keys');

SELECT * FROM finish();

-- Leave nothing behind.
\c :home
DROP DATABASE metering_brin;
