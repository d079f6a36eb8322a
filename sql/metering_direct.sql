-- metering_direct: record_usage writes a batch's idempotency keys into
-- usage_keys the way COPY writes rows (metering_keys.c), or through its
-- saved INSERT when that path does not apply; both give the same rows, a
-- key seen before is a duplicate either way, and whatever the table gains
-- (a trigger, a check, a column) is honoured because the statement runs.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(18);

SELECT agentmarket.configure('free_trial_credits', '0') \g /dev/null
INSERT INTO users (id, email, role) VALUES
  ('6d000000-0000-4000-8000-00000000c001', 'creator@direct.example', 'creator'),
  ('6d000000-0000-4000-8000-00000000e001', 'user1@direct.example', 'user'),
  ('6d000000-0000-4000-8000-00000000e002', 'user2@direct.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    github_repo_url, fly_machine_size, fly_machine_memory_mb, published_at) VALUES
  ('6d000000-0000-4000-8000-0000000000a1', '6d000000-0000-4000-8000-00000000c001', 'direct-small', 'Small',
   't', 'd', 'research', 'published', 'free', 'https://x/1', 'shared-cpu-1x', 256, now());
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status)
SELECT ('6d000000-0000-4000-8000-0000000000d' || n)::uuid, ('6d000000-0000-4000-8000-00000000e00' || n)::uuid,
       '6d000000-0000-4000-8000-0000000000a1', 'am-d' || n, 'd' || n, 'running'
  FROM generate_series(1, 2) n;

-- A batch of 300 events in scrambled key order, through either path.
CREATE FUNCTION pg_temp.batch(instance int, prefix text, n int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object('instance_id', '6d000000-0000-4000-8000-0000000000d' || instance,
                                        'compute_seconds', i % 5, 'input_tokens', i, 'output_tokens', 2 * i,
                                        'idempotency_key', prefix || md5(i::text)) ORDER BY md5(prefix || i))
      FROM generate_series(1, n) i;
$$;
CREATE TEMP TABLE outcomes (path text, outcome text, n int);
SET LOCAL agentmarket.usage_direct_path = on;
INSERT INTO outcomes SELECT 'on', outcome, count(*) FROM record_usage(pg_temp.batch(1, 'k-', 300)) GROUP BY 2;
SET LOCAL agentmarket.usage_direct_path = off;
INSERT INTO outcomes SELECT 'off', outcome, count(*) FROM record_usage(pg_temp.batch(2, 'k-', 300)) GROUP BY 2;
SELECT results_eq('SELECT path, outcome, n FROM outcomes ORDER BY 1, 2',
    $$VALUES ('off', 'duplicate', 300), ('on', 'recorded', 300)$$,
    'the same 300 keys: new through the direct path, duplicates through the statement');

-- Both paths write the same rows: a second set of keys through the statement.
SET LOCAL agentmarket.usage_direct_path = off;
SELECT is((SELECT count(*)::int FROM record_usage(pg_temp.batch(2, 'j-', 300)) WHERE outcome = 'recorded'), 300,
    'the statement records new keys');
SELECT results_eq(
    $$SELECT left(k.idempotency_key, 2) COLLATE "default", count(*)::int, count(DISTINCT k.usage_event_id)::int,
             bool_and(k.recorded_at = now()), bool_and(e.instance_id IS NOT NULL)
        FROM agentmarket_private.usage_keys k LEFT JOIN usage_events e ON e.id = k.usage_event_id
       GROUP BY 1 ORDER BY 1$$,
    $$VALUES ('j-', 300, 1, true, true), ('k-', 300, 1, true, true)$$,
    'each path: one row per key, naming the usage row its event went into, recorded now()');
SELECT is((SELECT sum(input_tokens)::int FROM usage_events), 2 * 45150, 'each event counted once');

-- Duplicates met by the direct path: the batch falls back to learn which.
SET LOCAL agentmarket.usage_direct_path = on;
SELECT results_eq(
    $$SELECT outcome, count(*)::int FROM record_usage(pg_temp.batch(1, 'k-', 310)) GROUP BY 1 ORDER BY 1$$,
    $$VALUES ('duplicate', 300), ('recorded', 10)$$,
    'a batch with keys seen before: those are duplicates, the rest recorded');
SELECT is((SELECT count(*)::int FROM agentmarket_private.usage_keys), 610, 'ten keys more, no other change');
SELECT is((SELECT sum(input_tokens)::int FROM usage_events), 2 * 45150 + 3055, 'only the ten new events added');

-- Every index entry is there (amcheck finds each heap row in each btree);
-- the BRIN index summarizes the new pages.
CREATE EXTENSION IF NOT EXISTS amcheck;
SELECT is((SELECT count(*)::int FROM pg_index i, LATERAL bt_index_check(i.indexrelid, true)
            WHERE i.indrelid = 'agentmarket_private.usage_keys'::regclass
              AND (SELECT relam FROM pg_class WHERE oid = i.indexrelid) = (SELECT oid FROM pg_am WHERE amname = 'btree')), 1,
    'the primary key holds every key');
SELECT cmp_ok(brin_summarize_new_values('agentmarket_private.usage_keys_recorded_at'), '>=', 0, 'the BRIN index takes the new pages');
SELECT is((SELECT count(*)::int FROM agentmarket_private.usage_keys WHERE recorded_at >= now() - interval '1 minute'), 610,
    'found by recorded_at');

-- A trigger on usage_keys: the statement runs and the trigger sees every key.
CREATE TEMP TABLE seen (k text);
GRANT INSERT ON seen TO PUBLIC; -- the trigger runs as record_usage's owner
CREATE FUNCTION pg_temp.note_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO seen VALUES (NEW.idempotency_key); RETURN NEW; END $$;
CREATE TRIGGER note_key BEFORE INSERT ON agentmarket_private.usage_keys FOR EACH ROW EXECUTE FUNCTION pg_temp.note_key();
SET LOCAL agentmarket.usage_direct_path = on;
SELECT is((SELECT count(*)::int FROM record_usage(pg_temp.batch(1, 't-', 50)) WHERE outcome = 'recorded'), 50, 'recorded with a trigger');
SELECT is((SELECT count(*)::int FROM seen WHERE k LIKE 't-%'), 50, 'the trigger fired for each key');
DROP TRIGGER note_key ON agentmarket_private.usage_keys;

-- Each change below is rolled back to its savepoint, and pgTAP keeps its
-- results in a table, so what is asserted is noted in a variable first.
-- A check constraint: enforced, the batch refused whole.
SAVEPOINT checked;
ALTER TABLE agentmarket_private.usage_keys ADD CONSTRAINT short_keys CHECK (idempotency_key NOT LIKE 'c-%') NOT VALID;
SELECT pg_temp.error_of($$SELECT * FROM agentmarket.record_usage(pg_temp.batch(1, 'c-', 5))$$) AS check_error \gset
ROLLBACK TO SAVEPOINT checked;
SELECT alike(:'check_error'::text, '23514: %short_keys%', 'a check constraint added to usage_keys is enforced');

-- A new column with a default: the statement fills it.
SAVEPOINT widened;
ALTER TABLE agentmarket_private.usage_keys ADD COLUMN source text DEFAULT 'api';
SELECT count(*) AS widened_recorded FROM record_usage(pg_temp.batch(1, 'w-', 20)) WHERE outcome = 'recorded' \gset
SELECT :widened_recorded || ' recorded, ' ||
       (SELECT count(*) FROM agentmarket_private.usage_keys WHERE idempotency_key LIKE 'w-%' AND source = 'api') || ' with the default'
       AS widened \gset
ROLLBACK TO SAVEPOINT widened;
SELECT is(:'widened'::text, '20 recorded, 20 with the default', 'a column added to usage_keys gets its default for every new key');

-- A deferrable unique key instead of the primary key: its check is a
-- trigger, so the statement runs and queues it; it fails once constraints
-- are checked.
SAVEPOINT deferred;
ALTER TABLE agentmarket_private.usage_keys DROP CONSTRAINT usage_keys_pkey,
    ADD CONSTRAINT usage_keys_deferred UNIQUE (idempotency_key) DEFERRABLE INITIALLY DEFERRED;
SELECT count(*) AS deferred_recorded FROM record_usage(pg_temp.batch(1, 'k-', 3)) WHERE outcome = 'recorded' \gset
SELECT pg_temp.error_of('SET CONSTRAINTS ALL IMMEDIATE') AS deferred_error \gset
ROLLBACK TO SAVEPOINT deferred;
SELECT alike(:'deferred_recorded' || ' / ' || :'deferred_error', '3 / 23505: %usage_keys_deferred%',
    'a deferred unique key: the keys go in, and the queued check refuses them when it runs');

-- Another default for recorded_at: the statement writes it.
SAVEPOINT redefault;
ALTER TABLE agentmarket_private.usage_keys ALTER COLUMN recorded_at SET DEFAULT '2001-02-03 04:05:06+00';
SELECT count(*) AS redefault_recorded FROM record_usage(pg_temp.batch(1, 'd-', 5)) WHERE outcome = 'recorded' \gset
SELECT :redefault_recorded || ' recorded, ' ||
       (SELECT count(*) FROM agentmarket_private.usage_keys WHERE idempotency_key LIKE 'd-%' AND recorded_at = '2001-02-03 04:05:06+00')
       || ' at the new default' AS redefault \gset
ROLLBACK TO SAVEPOINT redefault;
SELECT is(:'redefault'::text, '5 recorded, 5 at the new default', 'a changed default of recorded_at is what the keys get');

-- Read-only: refused as the statement refuses it, nothing written.
SAVEPOINT readonly;
SET LOCAL transaction_read_only = on;
SELECT pg_temp.error_of($$SELECT * FROM agentmarket.record_usage(pg_temp.batch(1, 'r-', 5))$$) AS readonly_error \gset
ROLLBACK TO SAVEPOINT readonly;
SELECT alike(:'readonly_error'::text, '25006: %', 'a read-only transaction cannot record usage');
SELECT is((SELECT count(*)::int FROM agentmarket_private.usage_keys WHERE idempotency_key ~ '^[cwrd]-'), 0, 'none of those keys stayed');

SELECT * FROM finish();
ROLLBACK;
