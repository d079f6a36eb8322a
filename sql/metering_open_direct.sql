-- metering_open_direct: record_usage finds, locks and adds to each group's
-- open usage_events row without statements (metering_rows.c), or through
-- its statements when that path does not apply; both leave the same rows,
-- row triggers fire and check constraints hold on the direct path, and a
-- statement-level trigger sends the batch to the statements.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(11);

SELECT agentmarket.configure('free_trial_credits', '0') \g /dev/null
INSERT INTO users (id, email, role) VALUES
  ('6c000000-0000-4000-8000-00000000c001', 'creator@open-direct.example', 'creator'),
  ('6c000000-0000-4000-8000-00000000e001', 'user1@open-direct.example', 'user'),
  ('6c000000-0000-4000-8000-00000000e002', 'user2@open-direct.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    github_repo_url, fly_machine_size, fly_machine_memory_mb, published_at) VALUES
  ('6c000000-0000-4000-8000-0000000000a1', '6c000000-0000-4000-8000-00000000c001', 'open-direct', 'Perf',
   't', 'd', 'research', 'published', 'free', 'https://x/1', 'performance-1x', 2048, now());
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status)
SELECT ('6c000000-0000-4000-8000-0000000000d' || n)::uuid, ('6c000000-0000-4000-8000-00000000e00' || n)::uuid,
       '6c000000-0000-4000-8000-0000000000a1', 'am-od' || n, 'od' || n, 'running'
  FROM generate_series(1, 2) n;
INSERT INTO sessions (id, instance_id, user_id)
SELECT ('6c000000-0000-4000-8000-0000000000f' || n)::uuid, ('6c000000-0000-4000-8000-0000000000d' || n)::uuid,
       ('6c000000-0000-4000-8000-00000000e00' || n)::uuid
  FROM generate_series(1, 2) n;

-- Batch b of instance n: 20 events, half in its session, half without one.
CREATE FUNCTION pg_temp.batch(n int, b int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object('instance_id', '6c000000-0000-4000-8000-0000000000d' || n,
                                        'session_id', CASE WHEN i % 2 = 0 THEN '6c000000-0000-4000-8000-0000000000f' || n END,
                                        'compute_seconds', b * 7 + i, 'input_tokens', b * 100 + i, 'output_tokens', i,
                                        'idempotency_key', 'od-' || n || '-' || b || '-' || i))
      FROM generate_series(1, 20) i;
$$;
CREATE FUNCTION pg_temp.rows_of(n int) RETURNS TABLE (has_session boolean, seconds int, inputs int, outputs int, usd numeric)
LANGUAGE sql AS $$
    SELECT session_id IS NOT NULL, compute_seconds, input_tokens, output_tokens, cost_usd FROM usage_events
     WHERE instance_id = ('6c000000-0000-4000-8000-0000000000d' || n)::uuid ORDER BY 1;
$$;

-- Three batches each way: the first opens the rows, the others add to them.
SET LOCAL agentmarket.usage_direct_path = on;
SELECT count(*) FROM record_usage(pg_temp.batch(1, 1)) \g /dev/null
SELECT count(*) FROM record_usage(pg_temp.batch(1, 2)) \g /dev/null
SELECT count(*) FROM record_usage(pg_temp.batch(1, 3)) \g /dev/null
SET LOCAL agentmarket.usage_direct_path = off;
SELECT count(*) FROM record_usage(pg_temp.batch(2, 1)) \g /dev/null
SELECT count(*) FROM record_usage(pg_temp.batch(2, 2)) \g /dev/null
SELECT count(*) FROM record_usage(pg_temp.batch(2, 3)) \g /dev/null
SELECT results_eq('SELECT * FROM pg_temp.rows_of(1)', 'SELECT * FROM pg_temp.rows_of(2)',
    'three batches give the same two rows through either path');
SELECT results_eq('SELECT has_session, seconds, inputs, outputs FROM pg_temp.rows_of(1)',
    $$VALUES (false, 10 * 7 * 6 + 3 * 100, 1000 * 6 + 3 * 100, 3 * 100), (true, 10 * 7 * 6 + 3 * 110, 1000 * 6 + 3 * 110, 3 * 110)$$,
    'each row holds the sums of its events');
SELECT is((SELECT sum(usd) FROM pg_temp.rows_of(1)),
          (SELECT sum(agentmarket.compute_cost_usd('performance-1x', 2048, s))
             FROM (SELECT sum(b * 7 + i) AS s FROM generate_series(1, 3) b, generate_series(1, 20) i GROUP BY b, i % 2) x),
    'cost_usd: each batch''s seconds at the machine''s rate, rounded per batch and row');

-- Which way a batch went: the direct path reads a group's usage_events row
-- once (to lock it), the statements twice (to see whether it fits, then to
-- update it).  Scans of either kind are counted, whatever the plans.
CREATE FUNCTION pg_temp.events_reads() RETURNS bigint LANGUAGE sql AS $$
    SELECT seq_scan + idx_scan FROM pg_stat_xact_user_tables WHERE relid = 'agentmarket.usage_events'::regclass;
$$;
CREATE FUNCTION pg_temp.reads_of(batch jsonb) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE before bigint := pg_temp.events_reads();
BEGIN
  PERFORM count(*) FROM agentmarket.record_usage(batch);
  RETURN pg_temp.events_reads() - before;
END $$;
SET LOCAL agentmarket.usage_direct_path = on;
SELECT is(pg_temp.reads_of('[{"instance_id": "6c000000-0000-4000-8000-0000000000d1", "compute_seconds": 1, "idempotency_key": "od-read-1"}]'),
    1::bigint, 'the direct path reads the open row once');
SET LOCAL agentmarket.usage_direct_path = off;
SELECT is(pg_temp.reads_of('[{"instance_id": "6c000000-0000-4000-8000-0000000000d2", "compute_seconds": 1, "idempotency_key": "od-read-2"}]'),
    2::bigint, 'the statements read it twice');

-- Row triggers fire on the direct path, a BEFORE trigger's change is kept.
CREATE TEMP TABLE fired (what text, old_seconds int, new_seconds int);
GRANT INSERT ON fired TO PUBLIC; -- triggers run as record_usage's owner
CREATE FUNCTION pg_temp.before_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO fired VALUES ('before', OLD.compute_seconds, NEW.compute_seconds);
  NEW.credits_consumed := OLD.credits_consumed + 1;
  RETURN NEW;
END $$;
CREATE FUNCTION pg_temp.after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO fired VALUES ('after ' || TG_LEVEL, OLD.compute_seconds, NEW.compute_seconds); RETURN NULL; END $$;
CREATE TRIGGER od_before BEFORE UPDATE ON usage_events FOR EACH ROW EXECUTE FUNCTION pg_temp.before_update();
CREATE TRIGGER od_after AFTER UPDATE ON usage_events FOR EACH ROW EXECUTE FUNCTION pg_temp.after_update();
SET LOCAL agentmarket.usage_direct_path = on;
SELECT count(*) FROM record_usage(pg_temp.batch(1, 4)) \g /dev/null
SELECT results_eq('SELECT what, new_seconds - old_seconds FROM fired ORDER BY 1, 2',
    $$VALUES ('after ROW', 10 * 28 + 100), ('after ROW', 10 * 28 + 110), ('before', 10 * 28 + 100), ('before', 10 * 28 + 110)$$,
    'before and after row triggers see each open row''s update');
SELECT is((SELECT sum(credits_consumed)::int FROM usage_events WHERE instance_id = '6c000000-0000-4000-8000-0000000000d1'), 2,
    'what a before trigger sets is written');
DROP TRIGGER od_before ON usage_events;
DROP TRIGGER od_after ON usage_events;

-- A statement-level trigger: the statements run it.
DELETE FROM fired;
CREATE TRIGGER od_statement AFTER UPDATE ON usage_events FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.after_update();
SELECT count(*) FROM record_usage(pg_temp.batch(1, 5)) \g /dev/null
SELECT is((SELECT count(*)::int FROM fired WHERE what = 'after STATEMENT'), 1, 'a statement-level update trigger fires once');
SELECT is((SELECT seconds FROM pg_temp.rows_of(1) WHERE has_session), 10 * 7 * 15 + 5 * 110, 'and the batch was added');
DROP TRIGGER od_statement ON usage_events;

-- A check constraint is checked on the direct path: the batch is refused whole.
SAVEPOINT checked;
ALTER TABLE usage_events ADD CONSTRAINT od_small CHECK (input_tokens < 20000) NOT VALID;
SELECT pg_temp.error_of($$SELECT * FROM agentmarket.record_usage(pg_temp.batch(1, 6))$$) AS check_error \gset
SELECT count(*) AS keys_after FROM agentmarket_private.usage_keys WHERE idempotency_key LIKE 'od-1-6-%' \gset
ROLLBACK TO SAVEPOINT checked;
SELECT alike(:'check_error'::text, '23514: %od_small%', 'a check constraint added to usage_events holds for an open row');
SELECT is(:keys_after::int, 0, 'and none of the batch''s keys stayed');

SELECT * FROM finish();
ROLLBACK;
