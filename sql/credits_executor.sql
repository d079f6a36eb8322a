-- credits_executor: every ledger operation runs through one idempotency
-- executor (credits_idempotency.c).  Without a key it claims nothing and opens
-- no subtransaction; with one, the rows it writes still belong to the
-- caller's transaction.  One rule for keys (1 to 255 characters) in C and SQL
-- alike; a repeat returns the first outcome; errors recorded by 0.1.0 are
-- raised again; the executor runs only credit operations its caller may run.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(22);
SELECT configure('free_trial_credits', '0') AS no_free_trial \gset

INSERT INTO users (id, email) VALUES
  ('61000000-0000-4000-8000-000000000001', 'exec-ann@credits.example'),
  ('61000000-0000-4000-8000-000000000002', 'exec-bob@credits.example');
\set ann '''61000000-0000-4000-8000-000000000001'''
\set bob '''61000000-0000-4000-8000-000000000002'''
SELECT (grant_credits(:ann, 1000, 'topup', 'topup_purchase')).topup_credits AS funded \gset

-- Whether every row the user's last call wrote (the balance row, its newest
-- ledger rows and holds) carries this transaction's own id: a subtransaction
-- would have given them one of its own.
CREATE FUNCTION pg_temp.written_by_top(u uuid) RETURNS boolean LANGUAGE sql AS $$
  SELECT bool_and(x::text = (pg_current_xact_id()::text::bigint % 4294967296)::text)
    FROM (SELECT xmin AS x FROM agentmarket.credit_balances WHERE user_id = u
          UNION ALL SELECT xmin FROM agentmarket.credit_transactions WHERE user_id = u
          UNION ALL SELECT xmin FROM agentmarket_private.credit_holds WHERE user_id = u
          UNION ALL SELECT xmin FROM agentmarket_private.credit_idempotency WHERE user_id = u) w
$$;

-- 1. No subtransaction, with or without a key.
DO $$ BEGIN
  BEGIN
    UPDATE agentmarket.credit_balances SET updated_at = updated_at WHERE user_id = '61000000-0000-4000-8000-000000000001';
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
END $$;
SELECT ok(NOT pg_temp.written_by_top(:ann), 'the check sees a write made in a subtransaction');
SELECT (deduct_credits(:ann, 5)).topup_credits AS left \gset
SELECT ok(pg_temp.written_by_top(:ann), 'deduct_credits without a key writes in the caller''s transaction (no subtransaction)');
SELECT (deduct_credits(:ann, 5, NULL, 'exec-d1')).topup_credits AS left \gset
SELECT ok(pg_temp.written_by_top(:ann), 'deduct_credits with a key: claim, deduction and outcome in the caller''s transaction');
SELECT reserve_credits(:ann, 50) AS hold1 \gset
SELECT reserve_credits(:ann, 50, idempotency_key => 'exec-r2') AS hold2 \gset
SELECT ok(pg_temp.written_by_top(:ann), 'reserve_credits with and without a key: no subtransaction');
SELECT (capture_hold(:'hold1', 20)).held_credits AS held \gset
SELECT (release_hold(:'hold2', 'exec-rel2')).held_credits AS held \gset
SELECT ok(pg_temp.written_by_top(:ann), 'capture_hold and release_hold: no subtransaction');
SELECT (refund_credits(:ann, 10, NULL, 'exec-ref1')).topup_credits AS left \gset
SELECT ok(pg_temp.written_by_top(:ann), 'refund_credits: no subtransaction');
SELECT is(:left, 1000 - 5 - 5 - 20 + 10, 'the calls above moved exactly their amounts');

-- 2. A repeat returns the first outcome and changes nothing, for each operation.
SELECT is((deduct_credits(:ann, 5, NULL, 'exec-d1')).topup_credits, 990, 'a repeated keyed deduction returns the first outcome');
SELECT is(reserve_credits(:ann, 50, idempotency_key => 'exec-r2'), :'hold2'::uuid, 'a repeated keyed reserve returns the same hold');
SELECT is((release_hold(:'hold2', 'exec-rel2')).held_credits, 0, 'a repeated keyed release returns its first outcome, not "already resolved"');
SELECT is((SELECT array_agg(operation ORDER BY idempotency_key) FROM agentmarket_private.credit_idempotency WHERE user_id = :ann),
          ARRAY['deduct_credits', 'reserve_credits', 'refund_credits', 'release_hold'],
          'one record per keyed call, named by its operation');
SELECT is((SELECT sum(amount)::int FROM credit_transactions WHERE user_id = :ann), 980,
          'the ledger holds each keyed call once');

-- 3. One rule for keys, in C (deduct_credits) and SQL (the others): 1 to 255 characters.
SELECT is((deduct_credits(:ann, 1, NULL, repeat('é', 255))).topup_credits, 979,
          'deduct_credits takes a key of 255 two-byte characters (510 bytes)');
SELECT is(pg_temp.error_of(format($$SELECT deduct_credits(%L, 1, NULL, %L)$$, :ann, repeat('é', 256))),
          '22023: invalid idempotency key / An idempotency key is 1 to 255 characters long.',
          'deduct_credits refuses 256 characters');
SELECT is(pg_temp.error_of(format($$SELECT grant_credits(%L, 1, 'topup', 'topup_purchase', NULL, %L)$$, :ann, repeat('é', 256))),
          '22023: invalid idempotency key / An idempotency key is 1 to 255 characters long.',
          'grant_credits refuses 256 characters, with the same error');
SELECT is(pg_temp.error_of(format($$SELECT reserve_credits(%L, 1, idempotency_key => '')$$, :ann)),
          '22023: invalid idempotency key / An idempotency key is 1 to 255 characters long.',
          'an empty key is refused');

-- 4. An error 0.1.0 recorded as a key's outcome is raised again, from C and from SQL.
INSERT INTO agentmarket_private.credit_idempotency (user_id, idempotency_key, operation, arguments, outcome, failed) VALUES
  (:bob, 'old-1', 'deduct_credits', '{"amount": 7, "session_id": null, "description": null}',
   '{"sqlstate": "PT402", "message": "insufficient credits", "detail": "available 0, required 7"}', true),
  (:bob, 'old-2', 'refund_credits', '{"amount": 3, "session_id": null, "description": null}',
   '{"sqlstate": "22023", "message": "refund exceeds what was taken", "detail": ""}', true);
SELECT is(pg_temp.error_of(format($$SELECT deduct_credits(%L, 7, NULL, 'old-1')$$, :bob)),
          'PT402: insufficient credits / available 0, required 7', 'a recorded refusal is raised again by deduct_credits');
SELECT is(pg_temp.error_of(format($$SELECT refund_credits(%L, 3, NULL, 'old-2')$$, :bob)),
          '22023: refund exceeds what was taken / ', 'and by refund_credits (no DETAIL recorded, none raised)');

-- 5. The executor runs only credit operations, and only those its caller may run.
SELECT ok(NOT has_function_privilege('service_role', 'agentmarket_private.credit_execute(regprocedure,uuid,text,jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'agentmarket_private.credit_execute(regprocedure,uuid,text,jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('service_role', 'agentmarket_private.grant_credits(uuid,jsonb)', 'EXECUTE'),
          'no client role may call the executor or an operation body');
SELECT is(pg_temp.error_of(format($$SELECT agentmarket_private.credit_execute('pg_catalog.jsonb_set(jsonb,text[],jsonb,boolean)', %L, NULL, '{}')$$, :ann)),
          '22023: jsonb_set is not a credit operation / A credit operation takes (user_id uuid, arguments jsonb) and returns jsonb.',
          'a function that is not shaped as an operation is refused');
GRANT EXECUTE ON FUNCTION agentmarket_private.credit_execute(regprocedure, uuid, text, jsonb) TO service_role;
SET LOCAL ROLE service_role;
SELECT is(pg_temp.error_of(format($$SELECT agentmarket_private.credit_execute('agentmarket_private.grant_credits(uuid,jsonb)', %L, NULL,
                                     '{"amount": 100, "credit_type": "topup", "type": "free_trial"}')$$, :bob)),
          '42501: permission denied for credit operation grant_credits / ',
          'a caller of the executor without EXECUTE on the body is refused (called from C, it would skip the check)');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM credit_transactions WHERE user_id = :bob), 0, 'and nothing was granted');

SELECT * FROM finish();
ROLLBACK;
