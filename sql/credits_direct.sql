-- credits_direct: deduct_credits writes a head-lot deduction without
-- statements (credit_direct.c) and gets exactly what its saved statements
-- get: the same balance row, the same ledger rows and values, the same
-- triggers and constraints, every index entry.  The switch
-- agentmarket.credit_direct_path (default on) turns the path off; the number
-- of scans of credit_balances tells which way a deduction went (one:
-- the lock, then the row is written by its address; two: the locking
-- statement and the update).  Changing the tables (a statement trigger, a
-- trigger that is not a foreign key check, a new column) sends deductions
-- back to the statements; a new check constraint is compiled again.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(30);

SELECT configure('free_trial_credits', '0') \g /dev/null
INSERT INTO users (id, email) VALUES ('64000000-0000-4000-8000-00000000000a', 'direct@credits.example'),
                                     ('64000000-0000-4000-8000-00000000000b', 'statements@credits.example');
\set a '''64000000-0000-4000-8000-00000000000a'''
\set b '''64000000-0000-4000-8000-00000000000b'''
-- The same lots for both: 30 subscription credits worth 0.3000, 100 top-up
-- credits worth 12.3457, 1,000 worth 1.0000.
SELECT count(*) FROM (VALUES (:a::uuid), (:b::uuid)) u(id),
       agentmarket_private.credit_lock_balance(u.id) l,
       agentmarket_private.credit_lot_grant(u.id, 'subscription', 30, 'subscription_refresh', 0.3) g1,
       agentmarket_private.credit_lot_grant(u.id, 'topup', 100, 'topup_purchase', 12.3457) g2,
       agentmarket_private.credit_lot_grant(u.id, 'topup', 1000, 'topup_purchase', 1.0) g3 \g /dev/null

-- Scans of credit_balances so far in this transaction (by index or not: a
-- statement's plan may read a small table whole).
CREATE FUNCTION pg_temp.balance_scans() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_catalog.pg_stat_xact_all_tables WHERE relid = 'agentmarket.credit_balances'::regclass
$$;
-- How many scans of credit_balances one deduction of amount makes.
CREATE FUNCTION pg_temp.scans_of(u uuid, amount integer, description text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE before bigint := pg_temp.balance_scans();
BEGIN
  PERFORM agentmarket.deduct_credits(u, amount, description => description);
  RETURN pg_temp.balance_scans() - before;
END $$;
-- The same deductions, with the path on or off: within a lot, emptying it,
-- after the head moved, across lots and pots.
CREATE FUNCTION pg_temp.spend(u uuid, direct text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE amount integer;
BEGIN
  PERFORM set_config('agentmarket.credit_direct_path', direct, true);
  FOREACH amount IN ARRAY ARRAY[7, 7, 16, 5, 5, 50, 60, 1, 3, 900, 7] LOOP
    PERFORM agentmarket.deduct_credits(u, amount, description => 'spend ' || amount);
  END LOOP;
  PERFORM set_config('agentmarket.credit_direct_path', 'on', true);
END $$;

SELECT is(current_setting('agentmarket.credit_direct_path'), 'on', 'the path is on by default');
-- The grants leave no head lot on the row: the first deduction loads it (statements).
SELECT deduct_credits(:a, 1), deduct_credits(:b, 1) \g /dev/null
SELECT is(pg_temp.scans_of(:a, 1), 1::bigint, 'a deduction from the head lot reads credit_balances once (its index): no statements');
SET LOCAL agentmarket.credit_direct_path = off;
SELECT is(pg_temp.scans_of(:b, 1), 2::bigint, 'with the path off it runs the locking statement and the update');
SET LOCAL agentmarket.credit_direct_path = on;

SELECT pg_temp.spend(:a, 'on'), pg_temp.spend(:b, 'off') \g /dev/null
SELECT results_eq(
  format($$SELECT subscription_credits, topup_credits, held_credits, head_remaining, head_value_units, head_subscription,
                  (SELECT credits FROM agentmarket_private.credit_lots WHERE id = head_lot_id)
             FROM credit_balances WHERE user_id = %L$$, :a),
  format($$SELECT subscription_credits, topup_credits, held_credits, head_remaining, head_value_units, head_subscription,
                  (SELECT credits FROM agentmarket_private.credit_lots WHERE id = head_lot_id)
             FROM credit_balances WHERE user_id = %L$$, :b),
  'the balance row, head lot included, is the same both ways');
SELECT results_eq(
  format($$SELECT type, amount, credit_type, description, session_id, stripe_payment_id, value_usd, created_at,
                  (SELECT credits FROM agentmarket_private.credit_lots WHERE id = lot_id)
             FROM credit_transactions WHERE user_id = %L ORDER BY 1, 2, 3, 4, 7, 9$$, :a),
  format($$SELECT type, amount, credit_type, description, session_id, stripe_payment_id, value_usd, created_at,
                  (SELECT credits FROM agentmarket_private.credit_lots WHERE id = lot_id)
             FROM credit_transactions WHERE user_id = %L ORDER BY 1, 2, 3, 4, 7, 9$$, :b),
  'the ledger rows (type, amounts, pot, description, value, time, lot) are the same both ways');
SELECT is((SELECT count(*) FROM credit_transactions WHERE user_id = :a AND type = 'session_deduct'), 15::bigint,
          'one row per lot touched: 13 deductions, two of them across two lots');
SELECT is((SELECT updated_at FROM credit_balances WHERE user_id = :a), now(),
          'the row trigger touch_updated_at fired on the direct update');
SELECT is_empty($$SELECT * FROM agentmarket.verify_ledger()$$, 'verify_ledger() is empty');
SELECT is_empty($$SELECT * FROM agentmarket.verify_books()$$, 'verify_books() is empty');

-- Every index entry is there (amcheck reads each heap row and finds it in each index).
CREATE EXTENSION IF NOT EXISTS amcheck;
SELECT is((SELECT count(*) FROM pg_index i, LATERAL bt_index_check(i.indexrelid, true)
            WHERE i.indrelid IN ('agentmarket.credit_balances'::regclass, 'agentmarket.credit_transactions'::regclass)),
          6::bigint, 'the six indexes of the two tables hold every row');

-- Triggers: a before-row trigger fires on the direct path ...
CREATE FUNCTION public.credits_direct_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_LEVEL = 'ROW' AND TG_WHEN = 'BEFORE' THEN
    NEW.description := NEW.description || ' (seen)';
    RETURN NEW;
  END IF;
  INSERT INTO credits_direct_fired VALUES (TG_NAME);
  RETURN NULL;
END $$ SECURITY DEFINER;
CREATE TEMP TABLE credits_direct_fired (name text);
CREATE TRIGGER note_before BEFORE INSERT ON credit_transactions FOR EACH ROW EXECUTE FUNCTION public.credits_direct_note();
SELECT is(pg_temp.scans_of(:a, 1, 'before-row'), 1::bigint, 'a before-row trigger keeps the direct path ...');
SELECT is((SELECT description FROM credit_transactions WHERE user_id = :a AND description LIKE 'before-row%'),
          'before-row (seen)', '... and fires on it');
DROP TRIGGER note_before ON credit_transactions;
-- ... a statement trigger or an after-row trigger that is not a foreign key check sends it to the statements.
CREATE TRIGGER note_statement AFTER INSERT ON credit_transactions FOR EACH STATEMENT EXECUTE FUNCTION public.credits_direct_note();
SELECT is(pg_temp.scans_of(:a, 1), 2::bigint, 'a statement trigger on the ledger: the statements ...');
SELECT is((SELECT string_agg(name, ' ') FROM credits_direct_fired), 'note_statement', '... and it fired');
DROP TRIGGER note_statement ON credit_transactions;
CREATE TRIGGER note_after AFTER INSERT ON credit_transactions FOR EACH ROW EXECUTE FUNCTION public.credits_direct_note();
SELECT is(pg_temp.scans_of(:a, 1), 2::bigint, 'an after-row trigger that is not a foreign key check: the statements');
DROP TRIGGER note_after ON credit_transactions;
SELECT is(pg_temp.scans_of(:a, 1), 1::bigint, 'the trigger gone, the direct path again');

-- A check constraint added while the path's compiled checks are cached: enforced at once.
ALTER TABLE credit_transactions ADD CONSTRAINT credits_direct_small CHECK (amount >= -20) NOT VALID;
SELECT matches(pg_temp.error_of($$SELECT agentmarket.deduct_credits('64000000-0000-4000-8000-00000000000a', 21)$$),
               '^23514: new row for relation "credit_transactions" violates check constraint "credits_direct_small"',
               'a check constraint added after the path compiled the old ones is enforced (23514)');
SELECT is(pg_temp.scans_of(:a, 20), 1::bigint, 'and within it the direct path still writes');
ALTER TABLE credit_transactions DROP CONSTRAINT credits_direct_small;

-- A new column the path does not know: the statements fill it with its default.
ALTER TABLE credit_transactions ADD COLUMN credits_direct_extra text DEFAULT 'default';
SELECT is(pg_temp.scans_of(:a, 1, 'extra'), 2::bigint, 'a column the path does not know: the statements');
SELECT is((SELECT credits_direct_extra FROM credit_transactions WHERE description = 'extra'), 'default',
          'and the new column has its default');
ALTER TABLE credit_transactions DROP COLUMN credits_direct_extra;

-- A foreign key of its own (any single-column immediate one) is checked by the path as the
-- statements' check does: the same 23503, the same words; null references nothing.
CREATE TABLE public.credits_direct_words (word text PRIMARY KEY);
INSERT INTO public.credits_direct_words VALUES ('known');
ALTER TABLE credit_transactions ADD CONSTRAINT credits_direct_word FOREIGN KEY (description)
  REFERENCES public.credits_direct_words (word) NOT VALID;
SELECT is(pg_temp.error_of($$SELECT agentmarket.deduct_credits('64000000-0000-4000-8000-00000000000a', 1, description => 'unknown')$$),
          '23503: insert or update on table "credit_transactions" violates foreign key constraint "credits_direct_word" / '
          'Key (description)=(unknown) is not present in table "credits_direct_words".',
          'a missing referenced row: 23503 from the direct path ...');
SET LOCAL agentmarket.credit_direct_path = off;
SELECT is(pg_temp.error_of($$SELECT agentmarket.deduct_credits('64000000-0000-4000-8000-00000000000a', 1, description => 'unknown')$$),
          '23503: insert or update on table "credit_transactions" violates foreign key constraint "credits_direct_word" / '
          'Key (description)=(unknown) is not present in table "credits_direct_words".',
          '... exactly as from the statements');
SET LOCAL agentmarket.credit_direct_path = on;
SELECT is(pg_temp.scans_of(:a, 1, 'known'), 1::bigint, 'a row that is there: the direct path writes');
SELECT is(pg_temp.scans_of(:a, 1), 1::bigint, 'a null key references nothing');
ALTER TABLE credit_transactions DROP CONSTRAINT credits_direct_word;

-- An index on a column the deduction changes: the update cannot be HOT, and the new version
-- gets its entries in every index of the balance row (opened only then).
CREATE INDEX credits_direct_topup ON credit_balances (head_remaining);
SELECT is(pg_temp.scans_of(:a, 1), 1::bigint, 'an index on a changed column keeps the direct path');
SELECT is((SELECT count(*) FROM pg_index i, LATERAL bt_index_check(i.indexrelid, true)
            WHERE i.indrelid = 'agentmarket.credit_balances'::regclass), 3::bigint,
          'and the three indexes of credit_balances hold the new version');
DROP INDEX credits_direct_topup;

-- The ledger rows' ids (am_random_uuid: random bytes taken 4 kB at a time):
-- version 4 UUIDs, as gen_random_uuid() makes them, none twice, over more
-- than one buffer's worth.
SELECT agentmarket_private.credit_lot_grant(:a, 'topup', 1000, 'topup_purchase', 1.0) \g /dev/null
SELECT count(*) FROM generate_series(1, 600) g, LATERAL agentmarket.deduct_credits(:a, 1, description => 'uuid ' || g) d \g /dev/null
SELECT is(pg_temp.scans_of(:a, 1), 1::bigint, 'these deductions take the direct path');
SELECT results_eq(
    $$SELECT count(*)::int, count(DISTINCT id)::int,
             bool_and(substr(id::text, 15, 1) = '4' AND substr(id::text, 20, 1) IN ('8', '9', 'a', 'b'))
        FROM credit_transactions WHERE user_id = '64000000-0000-4000-8000-00000000000a' AND type = 'session_deduct'$$,
    $$SELECT count(*)::int, count(*)::int, true FROM credit_transactions
       WHERE user_id = '64000000-0000-4000-8000-00000000000a' AND type = 'session_deduct'$$,
    'the direct path''s ledger ids are distinct version 4 UUIDs');
SELECT cmp_ok((SELECT count(DISTINCT substr(id::text, 1, 2))::int FROM credit_transactions
                WHERE user_id = '64000000-0000-4000-8000-00000000000a' AND type = 'session_deduct'), '>', 200,
              'and their first byte takes most of its 256 values (random, not a counter)');

-- A read-only transaction is refused as the statements refuse it.
SET LOCAL transaction_read_only = on;
SELECT is(pg_temp.error_of($$SELECT agentmarket.deduct_credits('64000000-0000-4000-8000-00000000000a', 1)$$),
          '25006: cannot execute SELECT FOR UPDATE in a read-only transaction / ',
          'a read-only transaction: 25006, as before');

SELECT * FROM finish();
ROLLBACK;
