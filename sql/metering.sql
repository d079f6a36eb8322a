-- metering: compute cost from the price table (never from the caller), and
-- record_usage(events): batches of usage events, each key recorded once,
-- folded per instance and session, all or nothing.  Calls are made as
-- PostgREST makes them.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(58);

-- Fixture.
SELECT agentmarket.configure('free_trial_credits', '0') \g /dev/null
INSERT INTO users (id, email, role) VALUES
  ('60000000-0000-4000-8000-00000000c001', 'creator@meter.example', 'creator'),
  ('60000000-0000-4000-8000-00000000e001', 'user@meter.example', 'user'),
  ('60000000-0000-4000-8000-00000000e002', 'other@meter.example', 'user');
-- meter-odd has a size nobody prices, which agents accept no more
-- (hardening.sql): a row from before that check, written with it off.
ALTER TABLE agents DISABLE TRIGGER agents_check_machine;
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, fly_machine_size, fly_machine_memory_mb, published_at) VALUES
  ('60000000-0000-4000-8000-0000000000a1', '60000000-0000-4000-8000-00000000c001', 'meter-small', 'Small',
   't', 'd', 'research', 'published', 'free', NULL, 'https://x/1', 'shared-cpu-1x', 256, now()),
  ('60000000-0000-4000-8000-0000000000a2', '60000000-0000-4000-8000-00000000c001', 'meter-big', 'Big',
   't', 'd', 'research', 'published', 'free', NULL, 'https://x/2', 'performance-1x', 2048, now()),
  ('60000000-0000-4000-8000-0000000000a3', '60000000-0000-4000-8000-00000000c001', 'meter-odd', 'Odd',
   't', 'd', 'research', 'published', 'free', NULL, 'https://x/3', 'shared-cpu-3x', 768, now());
ALTER TABLE agents ENABLE TRIGGER agents_check_machine;
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('60000000-0000-4000-8000-0000000000d1', '60000000-0000-4000-8000-00000000e001', '60000000-0000-4000-8000-0000000000a1', 'am-m1', 'm1', 'running'),
  ('60000000-0000-4000-8000-0000000000d2', '60000000-0000-4000-8000-00000000e001', '60000000-0000-4000-8000-0000000000a2', 'am-m2', 'm2', 'suspended'),
  ('60000000-0000-4000-8000-0000000000d3', '60000000-0000-4000-8000-00000000e001', '60000000-0000-4000-8000-0000000000a3', 'am-m3', 'm3', 'running'),
  ('60000000-0000-4000-8000-0000000000d4', '60000000-0000-4000-8000-00000000e002', '60000000-0000-4000-8000-0000000000a2', 'am-m4', 'm4', 'running');
INSERT INTO sessions (id, instance_id, user_id) VALUES
  ('60000000-0000-4000-8000-0000000000f1', '60000000-0000-4000-8000-0000000000d1', '60000000-0000-4000-8000-00000000e001'),
  ('60000000-0000-4000-8000-0000000000f4', '60000000-0000-4000-8000-0000000000d4', '60000000-0000-4000-8000-00000000e002');

-- The price table.
SELECT is((SELECT usd_per_second FROM machine_prices() WHERE machine_size = 'shared-cpu-1x' AND memory_mb = 256),
          0.0000007485::numeric, 'shared-cpu-1x with 256 MB: Fly''s 1.94 USD a month, per second');
SELECT is((SELECT usd_per_second FROM machine_prices() WHERE machine_size = 'shared-cpu-1x' AND memory_mb = 512),
          0.0000012307::numeric, 'shared-cpu-1x with 512 MB: 3.19 USD a month');
SELECT is((SELECT usd_per_second FROM machine_prices() WHERE machine_size = 'performance-1x' AND memory_mb = 2048),
          0.0000124190::numeric, 'performance-1x with 2 GB: 32.19 USD a month');
SELECT is((SELECT count(*)::int FROM machine_prices() WHERE source = 'published'), 31, 'every published size is listed');
SELECT is(compute_cost_usd('performance-1x', 2048, 3600), 0.044708::numeric,
    'an hour of performance-1x costs 3600 x 0.000012419, rounded to the micro-dollar');
SELECT throws_ok($$SELECT compute_cost_usd('shared-cpu-3x', 768, 60)$$, '22023', 'no price for machine shared-cpu-3x with 768 MB',
    'a machine without a price is refused, not costed at zero');
SELECT throws_ok($$SELECT compute_cost_usd('shared-cpu-1x', 256, -1)$$, '22023', NULL, 'negative seconds are refused');
SELECT lives_ok($$SELECT set_machine_price('shared-cpu-3x', 768, 0.000002)$$, 'the operator prices a new size');
SELECT lives_ok($$SELECT set_machine_price('shared-cpu-1x', 256, 0.000001)$$, 'and overrides a published one');
SELECT is((SELECT usd_per_second || '/' || source FROM machine_prices() WHERE machine_size = 'shared-cpu-1x' AND memory_mb = 256),
          '0.000001000000/operator', 'the operator''s price wins');
SELECT is(compute_cost_usd('shared-cpu-3x', 768, 60), 0.000120::numeric, 'and costs come from it');
SELECT throws_ok($$SELECT set_machine_price('gpu-a100', 1024, 0.1)$$, '22023', NULL, 'an unknown size is refused');
SELECT throws_ok($$SELECT set_machine_price('shared-cpu-1x', 64, 0.1)$$, '22023', NULL, 'an absurd memory is refused');
SELECT throws_ok($$SELECT set_machine_price('shared-cpu-1x', 512, -0.1)$$, '22023', NULL, 'a negative price is refused');
SELECT throws_ok($$SELECT set_machine_price('shared-cpu-1x', 512, 0.0000000000001)$$, '22023', NULL,
    'a price finer than 12 decimals is refused');
SELECT lives_ok($$SELECT set_machine_price('shared-cpu-1x', 256, NULL)$$, 'NULL goes back to the published price');
SELECT is((SELECT source FROM machine_prices() WHERE machine_size = 'shared-cpu-1x' AND memory_mb = 256), 'published',
    'the published price is back');
SELECT is((SELECT count(*)::int FROM agentmarket_private.machine_prices), 1, 'the operator''s table keeps only their prices');

-- Who may touch prices and usage.
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "60000000-0000-4000-8000-00000000e001", "role": "authenticated"}', true) \g /dev/null
SELECT throws_ok($$SELECT set_machine_price('shared-cpu-1x', 256, 0)$$, '42501', NULL, 'a user cannot set prices');
SELECT throws_ok($$SELECT * FROM record_usage('[]')$$, '42501', NULL, 'a user cannot record usage');
SELECT throws_ok($$SELECT * FROM machine_prices()$$, '42501', NULL, 'nor read the operator''s price list');
RESET ROLE;
SELECT set_config('role', 'anon', true), set_config('request.jwt.claims', '', true) \g /dev/null
SELECT throws_ok($$SELECT * FROM record_usage('[]')$$, '42501', NULL, 'anon cannot record usage');
RESET ROLE;
-- The function's own check (the caller's role, from SET ROLE or the login):
-- a role an operator granted EXECUTE is still refused unless it is a member
-- of service_role, as agentmarket_private.caller_is_service() answers.
CREATE ROLE metering_exec NOLOGIN;
CREATE ROLE metering_ops NOLOGIN NOINHERIT IN ROLE service_role;
GRANT EXECUTE ON FUNCTION record_usage(jsonb), agentmarket_private.caller_is_service() TO metering_exec, metering_ops;
GRANT USAGE ON SCHEMA agentmarket, agentmarket_private TO metering_exec, metering_ops;
SET LOCAL ROLE metering_exec;
SELECT throws_ok($$SELECT * FROM record_usage('[]')$$, '42501', 'only the platform records usage',
    'a role granted EXECUTE but not in service_role is refused by the function itself');
SELECT is(agentmarket_private.caller_is_service(), false, 'as caller_is_service() says');
SET LOCAL ROLE metering_ops;
SELECT lives_ok($$SELECT * FROM record_usage('[]')$$, 'a member of service_role (even NOINHERIT) may record');
SELECT is(agentmarket_private.caller_is_service(), true, 'as caller_is_service() says');
RESET ROLE;
SELECT lives_ok($$SELECT * FROM record_usage('[]')$$, 'the login role, a superuser, may record');

-- Recording usage, as the platform.
SET LOCAL ROLE service_role;
SELECT results_eq(
    $$SELECT event_position, idempotency_key, outcome, usage_event_id IS NOT NULL FROM record_usage('[
        {"instance_id": "60000000-0000-4000-8000-0000000000d1", "session_id": "60000000-0000-4000-8000-0000000000f1",
         "compute_seconds": 60, "input_tokens": 100, "output_tokens": 200, "idempotency_key": "e1"},
        {"instance_id": "60000000-0000-4000-8000-0000000000d1", "session_id": "60000000-0000-4000-8000-0000000000f1",
         "compute_seconds": 40, "input_tokens": 10, "output_tokens": 20, "idempotency_key": "e2"},
        {"instance_id": "60000000-0000-4000-8000-0000000000d1", "compute_seconds": 5, "idempotency_key": "e3"},
        {"instance_id": "60000000-0000-4000-8000-0000000000d1", "session_id": "60000000-0000-4000-8000-0000000000f1",
         "compute_seconds": 999, "idempotency_key": "e1"},
        {"instance_id": "60000000-0000-4000-8000-0000000000d2", "session_id": null, "compute_seconds": 500,
         "input_tokens": 7, "idempotency_key": "e5"}]')$$,
    $$VALUES (1, 'e1', 'recorded', true), (2, 'e2', 'recorded', true), (3, 'e3', 'recorded', true),
             (4, 'e1', 'duplicate', false), (5, 'e5', 'recorded', true)$$,
    'every event is reported in order: recorded, or duplicate for a key seen earlier in the batch');
SELECT is((SELECT count(*)::int FROM usage_events), 3,
    'one usage_events row per instance and session of the batch, not one per event');
SELECT is((SELECT compute_seconds || '/' || input_tokens || '/' || output_tokens || '/' || cost_usd FROM usage_events
            WHERE session_id = '60000000-0000-4000-8000-0000000000f1'),
          '100/110/220/0.000075', 'the session''s events are folded: 100 s x 0.0000007485 = 0.000075 USD');
SELECT is((SELECT user_id FROM usage_events WHERE session_id = '60000000-0000-4000-8000-0000000000f1'),
          '60000000-0000-4000-8000-00000000e001'::uuid, 'the row belongs to the instance''s user');
SELECT is((SELECT compute_seconds || '/' || cost_usd FROM usage_events
            WHERE instance_id = '60000000-0000-4000-8000-0000000000d2'),
          '500/0.000000', 'a suspended machine costs no compute');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM agentmarket_private.usage_keys WHERE idempotency_key IN ('e1', 'e2', 'e3', 'e5')), 4,
    'each event''s key is kept');
SELECT is((SELECT count(*)::int FROM agentmarket_private.usage_keys k JOIN usage_events u ON u.id = k.usage_event_id), 4,
    'and says which usage row it went into');
SELECT is((SELECT count(*)::int FROM agentmarket_private.usage_pending), 3, 'the new rows wait for the rollup');
SET LOCAL ROLE service_role;
SELECT results_eq(
    $$SELECT outcome, count(*)::int FROM record_usage('[
        {"instance_id": "60000000-0000-4000-8000-0000000000d1", "session_id": "60000000-0000-4000-8000-0000000000f1",
         "compute_seconds": 60, "input_tokens": 100, "output_tokens": 200, "idempotency_key": "e1"},
        {"instance_id": "60000000-0000-4000-8000-0000000000d1", "compute_seconds": 1, "idempotency_key": "e3"},
        {"instance_id": "60000000-0000-4000-8000-0000000000d3", "compute_seconds": 30, "idempotency_key": "e6"}]')
      GROUP BY 1 ORDER BY 1$$,
    $$VALUES ('duplicate', 2), ('recorded', 1)$$, 'a replayed batch: the known keys are duplicates');
SELECT is((SELECT sum(compute_seconds)::int FROM usage_events WHERE instance_id = '60000000-0000-4000-8000-0000000000d1'), 105,
    'and change nothing, whatever amounts they carry');
SELECT is((SELECT cost_usd FROM usage_events WHERE instance_id = '60000000-0000-4000-8000-0000000000d3'), 0.000060::numeric,
    'a size priced by the operator is costed at their price');
SELECT is((SELECT count(*)::int FROM record_usage('[]')), 0, 'an empty batch records nothing');

-- Malformed batches: 22023 naming the event, and nothing recorded.
RESET ROLE;
CREATE TEMP TABLE before_bad AS SELECT (SELECT count(*) FROM usage_events) AS rows, (SELECT count(*) FROM agentmarket_private.usage_keys) AS keys;
SET LOCAL ROLE service_role;
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "60000000-0000-4000-8000-0000000000d1", "idempotency_key": "ok-1"},
                                                {"instance_id": "60000000-0000-4000-8000-0000000000d1", "compute_seconds": -5, "idempotency_key": "bad"}]')$$,
    '22023', 'usage event 2 is malformed: compute_seconds must be a whole number from 0 to 86400', 'negative seconds, named by position');
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "60000000-0000-4000-8000-0000000000d1", "compute_seconds": 1.5, "idempotency_key": "x"}]')$$,
    '22023', 'usage event 1 is malformed: compute_seconds must be a whole number from 0 to 86400', 'fractions are refused');
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "60000000-0000-4000-8000-0000000000d1", "input_tokens": "12", "idempotency_key": "x"}]')$$,
    '22023', 'usage event 1 is malformed: input_tokens must be a whole number from 0 to 1000000', 'numbers as strings are refused');
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "60000000-0000-4000-8000-0000000000d1", "output_tokens": 99999999999, "idempotency_key": "x"}]')$$,
    '22023', 'usage event 1 is malformed: output_tokens must be a whole number from 0 to 1000000', 'absurd amounts are refused');
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "60000000-0000-4000-8000-0000000000d1", "compute_seconds": 1}]')$$,
    '22023', 'usage event 1 is malformed: idempotency_key must be a string of 1 to 200 characters', 'an event needs its key');
SELECT throws_ok(format($$SELECT * FROM record_usage('[{"instance_id": "60000000-0000-4000-8000-0000000000d1", "idempotency_key": "%s"}]')$$, repeat('k', 201)),
    '22023', 'usage event 1 is malformed: idempotency_key must be a string of 1 to 200 characters', 'a key of 201 characters is refused');
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "not-a-uuid", "idempotency_key": "x"}]')$$,
    '22023', 'usage event 1 is malformed: instance_id must be a UUID', 'a bad instance id');
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "600000000000400080000000000000FF", "idempotency_key": "x"}]')$$,
    '22023', 'usage event 1 is malformed: instance 60000000-0000-4000-8000-0000000000ff not found',
    'a UUID as 32 upper-case hex digits is read as the same UUID');
SELECT is(array_agg(pg_temp.error_of(format($$SELECT * FROM record_usage('[{"instance_id": "%s", "idempotency_key": "x"}]')$$, u)) ORDER BY u),
          array_fill('22023: usage event 1 is malformed: instance_id must be a UUID / Nothing of the batch was recorded.'::text, ARRAY[6]),
          'misplaced hyphens, a non-hex digit first or last, 35 or 37 characters, 36 without hyphens: not a UUID')
  FROM unnest(ARRAY['6000000-00000-4000-8000-0000000000d1', '60000000-0000-4000-8000-0000000000dg', 'g0000000-0000-4000-8000-0000000000d1',
                    '60000000-0000-4000-8000-0000000000d', '60000000-0000-4000-8000-0000000000d11', '600000000000400080000000000000d1abcd']) u;
-- Fields are read in one pass over the object, then checked in a fixed order.
SELECT is(pg_temp.error_of(format('SELECT * FROM record_usage(%L)', jsonb_build_array(
              (SELECT jsonb_object_agg('f' || g, g) FROM generate_series(1, 40) g)
              || '{"instance_id": "60000000-0000-4000-8000-0000000000d1", "session_id": null, "idempotency_key": "wide"}'))),
          '22023: usage event 1 is malformed: it has a field other than instance_id, session_id, compute_seconds, input_tokens, output_tokens and idempotency_key / Nothing of the batch was recorded.',
          'an event of 43 fields: its known ones are read past the 40 others (the instance id parsed), then the others refused');
SELECT is(pg_temp.error_of(format('SELECT * FROM record_usage(%L)', jsonb_build_array(
              (SELECT jsonb_object_agg('f' || g, g) FROM generate_series(1, 40) g)
              || '{"instance_id": "60000000-0000-4000-8000-0000000000d1", "compute_seconds": -1, "idempotency_key": "wide"}'))),
          '22023: usage event 1 is malformed: compute_seconds must be a whole number from 0 to 86400 / Nothing of the batch was recorded.',
          'with other fields beside, a bad known field is the error, as it is without them');
SELECT is(array_agg(pg_temp.error_of(format('SELECT * FROM record_usage(%L)', jsonb_build_array(e))) ORDER BY e::text),
          ARRAY['22023: usage event 1 is malformed: compute_seconds must be a whole number from 0 to 86400 / Nothing of the batch was recorded.',
                '22023: usage event 1 is malformed: idempotency_key must be a string of 1 to 200 characters / Nothing of the batch was recorded.',
                '22023: usage event 1 is malformed: instance_id must be a UUID / Nothing of the batch was recorded.',
                '22023: usage event 1 is malformed: session_id must be a UUID or null / Nothing of the batch was recorded.'],
          'a container, a boolean or a number where a field wants something else is refused, naming the field')
  FROM unnest(ARRAY['{"instance_id": "60000000-0000-4000-8000-0000000000d1", "compute_seconds": [1], "idempotency_key": "x"}',
                    '{"instance_id": "60000000-0000-4000-8000-0000000000d1", "idempotency_key": true}',
                    '{"instance_id": {"id": "60000000-0000-4000-8000-0000000000d1"}, "idempotency_key": "x"}',
                    '{"instance_id": "60000000-0000-4000-8000-0000000000d1", "session_id": 7, "idempotency_key": "x"}']::jsonb[]) e;
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "60000000-0000-4000-8000-0000000000d1", "cost_usd": 0, "idempotency_key": "x"}]')$$,
    '22023', NULL, 'a cost sent by the caller is refused: cost comes from the price table');
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "60000000-0000-4000-8000-0000000000d1", "idempotency_key": "x"}, 7]')$$,
    '22023', 'usage event 2 is malformed: it is not a JSON object', 'an event that is not an object');
SELECT throws_ok($$SELECT * FROM record_usage('{"instance_id": "60000000-0000-4000-8000-0000000000d1"}')$$,
    '22023', 'usage events must be a JSON array', 'a batch that is not an array');
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "60000000-0000-4000-8000-0000000000d1", "idempotency_key": "ok-2"},
                                                {"instance_id": "60000000-0000-4000-8000-0000000000ff", "idempotency_key": "y"}]')$$,
    '22023', 'usage event 2 is malformed: instance 60000000-0000-4000-8000-0000000000ff not found', 'an unknown instance');
SELECT throws_ok($$SELECT * FROM record_usage('[{"instance_id": "60000000-0000-4000-8000-0000000000d1", "session_id": "60000000-0000-4000-8000-0000000000f4", "idempotency_key": "y"}]')$$,
    '22023', 'usage event 1 is malformed: session 60000000-0000-4000-8000-0000000000f4 is not a session of instance 60000000-0000-4000-8000-0000000000d1',
    'another instance''s session');
SELECT throws_ok(format('SELECT * FROM record_usage(%L)', (SELECT jsonb_agg(jsonb_build_object('instance_id', '60000000-0000-4000-8000-0000000000d1', 'idempotency_key', 'n' || g))
                                                         FROM generate_series(1, 2001) g)),
    '22023', 'at most 2000 usage events per call', 'a batch is bounded');
RESET ROLE;
SELECT is((SELECT (SELECT count(*) FROM usage_events) || '/' || (SELECT count(*) FROM agentmarket_private.usage_keys)),
          (SELECT rows || '/' || keys FROM before_bad), 'no malformed batch recorded anything');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
