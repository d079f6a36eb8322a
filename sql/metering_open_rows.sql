-- metering_open_rows: record_usage adds each batch to its instance and
-- session's open usage_events row (one the rollup has not folded yet) or
-- opens one; the rollup folds an open row whole, and the next batch opens a
-- new one; a row that could not take a batch's amounts is closed.  Every
-- total stays exact, and keys name the row their event went into.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(22);

SELECT agentmarket.configure('free_trial_credits', '0') \g /dev/null
INSERT INTO users (id, email, role) VALUES
  ('6e000000-0000-4000-8000-00000000c001', 'creator@open.example', 'creator'),
  ('6e000000-0000-4000-8000-00000000e001', 'user@open.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    github_repo_url, fly_machine_size, fly_machine_memory_mb, published_at) VALUES
  ('6e000000-0000-4000-8000-0000000000a1', '6e000000-0000-4000-8000-00000000c001', 'open-small', 'Small',
   't', 'd', 'research', 'published', 'free', 'https://x/1', 'shared-cpu-1x', 256, now());
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('6e000000-0000-4000-8000-0000000000d1', '6e000000-0000-4000-8000-00000000e001', '6e000000-0000-4000-8000-0000000000a1', 'am-o1', 'o1', 'running');
INSERT INTO sessions (id, instance_id, user_id) VALUES
  ('6e000000-0000-4000-8000-0000000000f1', '6e000000-0000-4000-8000-0000000000d1', '6e000000-0000-4000-8000-00000000e001');
CREATE TEMP TABLE first_ids AS
SELECT * FROM record_usage('[
  {"instance_id": "6e000000-0000-4000-8000-0000000000d1", "session_id": "6e000000-0000-4000-8000-0000000000f1",
   "compute_seconds": 10, "input_tokens": 100, "output_tokens": 200, "idempotency_key": "o-1"},
  {"instance_id": "6e000000-0000-4000-8000-0000000000d1", "session_id": "6e000000-0000-4000-8000-0000000000f1",
   "compute_seconds": 0, "input_tokens": 1, "output_tokens": 2, "idempotency_key": "o-2"},
  {"instance_id": "6e000000-0000-4000-8000-0000000000d1", "compute_seconds": 5, "idempotency_key": "o-3"}]');
GRANT SELECT ON first_ids TO service_role;

SELECT is((SELECT count(*)::int FROM usage_events), 2, 'a first batch opens one row per instance and session');
SELECT is((SELECT count(*)::int FROM agentmarket_private.usage_pending WHERE instance_id = '6e000000-0000-4000-8000-0000000000d1'), 2,
    'both wait for the rollup, open (their queue rows name the instance)');

SET LOCAL ROLE service_role;
SELECT results_eq(
    $$SELECT event_position, outcome, usage_event_id FROM record_usage('[
        {"instance_id": "6e000000-0000-4000-8000-0000000000d1", "session_id": "6e000000-0000-4000-8000-0000000000f1",
         "compute_seconds": 20, "input_tokens": 10, "output_tokens": 20, "idempotency_key": "o-4"},
        {"instance_id": "6e000000-0000-4000-8000-0000000000d1", "session_id": "6e000000-0000-4000-8000-0000000000f1",
         "compute_seconds": 999, "idempotency_key": "o-1"},
        {"instance_id": "6e000000-0000-4000-8000-0000000000d1", "session_id": null, "compute_seconds": 1, "idempotency_key": "o-5"}]')$$,
    $$VALUES (1, 'recorded', (SELECT usage_event_id FROM first_ids WHERE idempotency_key = 'o-1')),
             (2, 'duplicate', NULL::uuid),
             (3, 'recorded', (SELECT usage_event_id FROM first_ids WHERE idempotency_key = 'o-3'))$$,
    'a later batch goes into the same open rows; a duplicate changes nothing');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM usage_events), 2, 'no new usage_events row');
SELECT is((SELECT compute_seconds || '/' || input_tokens || '/' || output_tokens || '/' || cost_usd FROM usage_events
            WHERE session_id = '6e000000-0000-4000-8000-0000000000f1'),
          '30/111/222/0.000022', 'the session''s row holds both batches: 0.000007 + 0.000015 USD (each batch''s seconds costed)');
SELECT is((SELECT compute_seconds || '/' || cost_usd FROM usage_events WHERE session_id IS NULL),
          '6/0.000005', 'the instance''s own row too: 0.000004 + 0.000001 USD');
SELECT is((SELECT count(DISTINCT usage_event_id)::int FROM agentmarket_private.usage_keys WHERE idempotency_key IN ('o-1', 'o-2', 'o-4')), 1,
    'the keys of both batches name the one row');
SELECT is_empty('SELECT * FROM verify_metering()', 'open rows are consistent: the session has folded nothing yet');

-- The rollup folds an open row whole; the next batch opens another.
SET LOCAL ROLE service_role;
SELECT is((SELECT row(r.*)::text FROM run_billing_rollup() r), '(2,1,1,0)', 'the rollup folds the two open rows');
SELECT is((SELECT compute_seconds || '/' || total_input_tokens || '/' || total_output_tokens FROM sessions
            WHERE id = '6e000000-0000-4000-8000-0000000000f1'), '30/111/222', 'the session counts both batches');
SELECT is((SELECT count(*)::int FROM record_usage('[{"instance_id": "6e000000-0000-4000-8000-0000000000d1",
    "session_id": "6e000000-0000-4000-8000-0000000000f1", "compute_seconds": 7, "idempotency_key": "o-6"}]') WHERE outcome = 'recorded'), 1,
    'usage after the rollup is recorded');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM usage_events), 3, 'into a new row: a folded row takes nothing more');
SELECT is((SELECT compute_seconds FROM usage_events WHERE id = (SELECT usage_event_id FROM first_ids WHERE idempotency_key = 'o-1')), 30,
    'the folded row keeps what was folded');
SET LOCAL ROLE service_role;
SELECT is((SELECT count(*)::int FROM record_usage('[{"instance_id": "6e000000-0000-4000-8000-0000000000d1",
    "session_id": "6e000000-0000-4000-8000-0000000000f1", "compute_seconds": 7, "idempotency_key": "o-6"}]') WHERE outcome = 'duplicate'), 1,
    'a replay is a duplicate');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM usage_events), 3, 'and opens nothing');
SET LOCAL ROLE service_role;
SELECT is((SELECT row(r.*)::text FROM run_billing_rollup() r), '(1,1,1,0)', 'the new row is folded');
SELECT is((SELECT compute_seconds FROM sessions WHERE id = '6e000000-0000-4000-8000-0000000000f1'), 37, 'once');
SELECT is_empty('SELECT * FROM verify_metering()', 'totals equal the folded usage');

-- A row that could not take a batch without overflowing is closed, and a new one opened.
SELECT is((SELECT count(*)::int FROM record_usage('[{"instance_id": "6e000000-0000-4000-8000-0000000000d1",
    "input_tokens": 1000000, "idempotency_key": "o-big-1"}]') WHERE outcome = 'recorded'), 1, 'a batch opens the instance''s row');
RESET ROLE;
UPDATE usage_events SET input_tokens = 2147000000
 WHERE id = (SELECT usage_event_id FROM agentmarket_private.usage_pending WHERE instance_id IS NOT NULL);
SET LOCAL ROLE service_role;
SELECT is((SELECT count(*)::int FROM record_usage('[{"instance_id": "6e000000-0000-4000-8000-0000000000d1",
    "input_tokens": 1000000, "idempotency_key": "o-big-2"}]') WHERE outcome = 'recorded'), 1,
    'a batch the open row cannot take is recorded');
RESET ROLE;
SELECT is((SELECT array_agg(u.input_tokens || '/' || (p.instance_id IS NOT NULL) ORDER BY u.input_tokens)::text
             FROM agentmarket_private.usage_pending p JOIN usage_events u ON u.id = p.usage_event_id),
          '{1000000/true,2147000000/false}', 'in a new open row; the full one is closed and still waits for the rollup');
SELECT is((SELECT u.input_tokens FROM agentmarket_private.usage_keys k JOIN usage_events u ON u.id = k.usage_event_id
            WHERE k.idempotency_key = 'o-big-2'), 1000000, 'its key names the new row');

SELECT * FROM finish();
ROLLBACK;
