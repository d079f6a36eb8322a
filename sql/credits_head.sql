-- credits_head: deduct_credits takes the same value from a lot whichever way
-- it goes: from the head lot (it covers the amount; in int128 arithmetic,
-- also for a lot worth 2^32 units of 1e-4 USD or more), the
-- step-by-step form after loading the head, and the lot-by-lot form.  Pro
-- rata, rounded down to 1e-4 USD; the credit that empties a lot takes what is
-- left.  The head lot rides on the balance row; the books stay exact.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(9);

SELECT configure('free_trial_credits', '0') \g /dev/null
INSERT INTO users (id, email) VALUES ('63000000-0000-4000-8000-000000000001', 'head@credits.example');
\set u '''63000000-0000-4000-8000-000000000001'''
-- Lots of chosen values (as purchases make them): 3 subscription credits
-- worth 0.0001 USD, 1,000 top-up credits worth 333.3333, and 10^9 top-up
-- credits worth 9,999,999.9999 (past 2^32 units).
SELECT agentmarket_private.credit_lock_balance(:u) IS NOT NULL AS locked \gset
SELECT agentmarket_private.credit_lot_grant(:u, 'subscription', 3, 'subscription_refresh', 0.0001) IS NOT NULL AS g1 \gset
SELECT agentmarket_private.credit_lot_grant(:u, 'topup', 1000, 'topup_purchase', 333.3333) IS NOT NULL AS g2 \gset
SELECT agentmarket_private.credit_lot_grant(:u, 'topup', 1000000000, 'topup_purchase', 9999999.9999) IS NOT NULL AS g3 \gset

SELECT count(deduct_credits(:u, 1)) FROM generate_series(1, 3) \g /dev/null
SELECT is((SELECT string_agg(-value_usd || '', ' ' ORDER BY value_usd DESC) FROM credit_transactions
            WHERE user_id = :u AND type = 'session_deduct'), '0.0000 0.0000 0.0001',
          'three credits worth 0.0001 in all: 0, 0, and the last takes the rest');
SELECT count(deduct_credits(:u, 7)) FROM generate_series(1, 3) \g /dev/null
SELECT is((SELECT array_agg(-value_usd ORDER BY value_usd) FROM credit_transactions
            WHERE user_id = :u AND type = 'session_deduct' AND amount = -7), ARRAY[2.3333, 2.3333, 2.3333]::numeric[],
          'lot by lot, after loading the head, and from the loaded head: 7 credits of the 333.3333 lot are worth 2.3333 each time');
SELECT is((SELECT remaining || ' ' || remaining_value_usd FROM agentmarket_private.credit_lots_now
            WHERE user_id = :u AND credits = 1000), '979 326.3334', 'the lot keeps the rest of its credits and value');
SELECT is((SELECT l.remaining || ' ' || n.is_head FROM agentmarket_private.credit_lots l
             JOIN agentmarket_private.credit_lots_now n USING (id) WHERE l.user_id = :u AND l.credits = 1000), '993 true',
          'the lot row was written by the lot-by-lot deduction only: the two after it wrote the balance row, which carries the head');
SELECT is((deduct_credits(:u, 979)).topup_credits, 1000000000, 'the credit that empties the lot ...');
SELECT is((SELECT -value_usd FROM credit_transactions WHERE user_id = :u AND amount = -979), 326.3334::numeric(14,4),
          '... takes all of its value');
SELECT count(deduct_credits(:u, 7)) FROM generate_series(1, 3) \g /dev/null
SELECT is((SELECT array_agg(-value_usd ORDER BY value_usd) FROM credit_transactions
            WHERE user_id = :u AND type = 'session_deduct' AND amount = -7 AND lot_id = (SELECT id FROM agentmarket_private.credit_lots
                                                                                         WHERE user_id = :u AND credits = 1000000000)),
          ARRAY[0.0700, 0.0700, 0.0699]::numeric[],
          'a lot worth 99,999,999,999 units (numeric, not int8): 7 credits are worth 0.0699 (699.99 units), then exactly 0.0700 of what is left, twice');
SELECT is_empty($$SELECT * FROM agentmarket.verify_ledger()$$, 'verify_ledger() is empty');
SELECT is_empty($$SELECT * FROM agentmarket.verify_books()$$, 'verify_books() is empty');

SELECT * FROM finish();
ROLLBACK;
