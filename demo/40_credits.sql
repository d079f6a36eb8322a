-- Credits: Linus's free trial, a top-up, a deduction spanning both pots, a
-- hold captured for less than it held, his own view of his balance, and the
-- ledger's proof of health.
\set linus '''00000000-0000-4000-8000-0000000e0001'''
\echo 'Credits. Linus signed up and received the free trial (free_trial_credits, subscription pot):'
SELECT subscription_credits, topup_credits, held_credits
  FROM agentmarket.credit_balances WHERE user_id = :linus;

\echo 'Support grants him 80 top-up credits by hand (no Stripe purchase behind them, so a promotional lot:'
\echo 'worth promotional_credit_value_usd each, 0 by default; the key makes a retry harmless):'
SELECT * FROM agentmarket.grant_credits(:linus, 80, 'topup', 'topup_purchase', 'Goodwill credits from support',
                                        'demo-topup-1');
\echo '... the call is retried; the same key returns the first outcome and adds nothing:'
SELECT * FROM agentmarket.grant_credits(:linus, 80, 'topup', 'topup_purchase', 'Goodwill credits from support',
                                        'demo-topup-1');

\echo 'A 130-credit session: subscription credits go first (100), the rest comes from top-up (30):'
SELECT * FROM agentmarket.deduct_credits(:linus, 130, NULL, 'demo-session-1', 'Inbox Zero session');

\echo 'Metered work: a hold of 50 credits, then captured for 45 (the other 5 are released):'
SELECT agentmarket.reserve_credits(:linus, 50, NULL, interval '30 minutes', 'demo-hold-1', 'Paper Scout digest') AS hold \gset
SELECT subscription_credits, topup_credits, held_credits, available_credits
  FROM agentmarket_private.credit_state_of(:linus);
SELECT * FROM agentmarket.capture_hold(:'hold', 45);

\echo 'Asking for more than is available is refused with PT402 (HTTP 402 through PostgREST):'
CREATE FUNCTION pg_temp.outcome(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE detail text;
BEGIN
    EXECUTE stmt;
    RETURN 'allowed';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN 'refused: SQLSTATE ' || SQLSTATE || ', ' || SQLERRM || ' (' || detail || ')';
END $$;
SELECT pg_temp.outcome(format('SELECT agentmarket.deduct_credits(%L, 10000)', :linus)) AS deduct_10000;

\echo 'Linus, signed in (role authenticated, JWT sub = his id), asks for his balance:'
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-0000000e0001","role":"authenticated"}', true) IS NOT NULL AS signed_in;
SET LOCAL ROLE authenticated;
SELECT * FROM agentmarket.my_balance();
COMMIT;

\echo 'His ledger: one row per change to a pot, never updated or deleted:'
SELECT type, credit_type, amount, description, stripe_payment_id
  FROM agentmarket.credit_transactions WHERE user_id = :linus
 ORDER BY created_at, credit_type;

\echo 'verify_ledger(): every balance equals its ledger, no pot below zero, holds consistent (no rows = healthy):'
SELECT * FROM agentmarket.verify_ledger();
