-- credits_retention: idempotency records do not grow without bound.  Records
-- older than credit_idempotency_retention_days are pruned oldest first, in
-- batches; younger ones keep protecting retries.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(9);

INSERT INTO users (id, email) VALUES ('60000000-0000-4000-8000-000000000001', 'ret@credits.example');
SELECT count(*) AS granted FROM generate_series(1, 5) n,
       grant_credits('60000000-0000-4000-8000-000000000001', 10, 'topup', 'topup_purchase', NULL, 'pay-' || n);
-- Age three of the five records past the retention (90 days by default).
UPDATE agentmarket_private.credit_idempotency SET created_at = now() - interval '100 days' * (6 - substr(idempotency_key, 5)::int) / 3
 WHERE idempotency_key IN ('pay-1', 'pay-2', 'pay-3');

SELECT is(agentmarket_private.setting('credit_idempotency_retention_days'), '90', 'records are kept 90 days by default');
SET LOCAL ROLE service_role;
SELECT is(prune_credit_idempotency(2), 2, 'a batch removes at most max_rows records');
SELECT is(prune_credit_idempotency(), 1, 'the next run removes the rest of the old ones');
SELECT is(prune_credit_idempotency(), 0, 'nothing younger than the retention is removed');
RESET ROLE;
SELECT is((SELECT array_agg(idempotency_key ORDER BY idempotency_key) FROM agentmarket_private.credit_idempotency
            WHERE user_id = '60000000-0000-4000-8000-000000000001'), '{pay-4,pay-5}', 'the two young records remain');
SELECT is((SELECT topup_credits FROM grant_credits('60000000-0000-4000-8000-000000000001', 10, 'topup', 'topup_purchase', NULL, 'pay-5')), 50,
    'a retry within the retention still changes nothing');
SELECT throws_ok($$SELECT agentmarket.prune_credit_idempotency(0)$$, '22023', NULL, 'max_rows must be positive');
SELECT throws_ok($$SELECT agentmarket.configure('credit_idempotency_retention_days', '2')$$, '22023', NULL,
    'retention shorter than a week (Stripe retries for 3 days) is refused');
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT agentmarket.prune_credit_idempotency()$$, '42501', NULL, 'clients cannot prune');
RESET ROLE;
SELECT * FROM finish();
ROLLBACK;
