-- attack_refusals: a refused credit call leaves nothing behind.  Refusals
-- (PT402 not enough credits, 22023 a bad state change) roll back with their
-- caller's transaction, idempotency claim included: no record survives a
-- rollback, no background worker is started per refusal (thousands of
-- refusals cost nothing but their own statements), and a retry of the key is
-- decided afresh.  A request that fails runs in a savepoint that is rolled
-- back, as a client's failing transaction is (the old recorder committed its
-- record in a worker, past any rollback).
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(8);

SELECT agentmarket.configure('free_trial_credits', '0') IS NULL AS no_trial;
INSERT INTO agentmarket.users (id, email, role) VALUES
  ('00000000-0000-4000-8000-0000ef05ec01', 'ada@refusals.test', 'creator'),
  ('00000000-0000-4000-8000-0000ef05e001', 'linus@refusals.test', 'user');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category, github_repo_url,
                                status, published_at, pricing_model, credits_per_session) VALUES
  ('00000000-0000-4000-8000-0000ef05ea01', '00000000-0000-4000-8000-0000ef05ec01', 'refusals-agent', 'R', 'r', 'r',
   'research', 'https://github.com/ada/r', 'published', now(), 'per_session', 30);
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('00000000-0000-4000-8000-0000ef05e1f1', '00000000-0000-4000-8000-0000ef05e001', '00000000-0000-4000-8000-0000ef05ea01',
   'am-refusals', 'm0123456789abc', 'running');
SELECT (agentmarket.grant_credits('00000000-0000-4000-8000-0000ef05e001', 10, 'topup', 'topup_purchase')).topup_credits AS funded;

-- POST /rpc/start_session as the user, who has 10 credits for a 30-credit session.
SAVEPOINT request;
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-0000ef05e001","role":"authenticated"}', true) IS NOT NULL AS claims,
       set_config('role', 'authenticated', true) IS NOT NULL AS role;
SELECT id FROM agentmarket.start_session('00000000-0000-4000-8000-0000ef05e1f1');
ROLLBACK TO SAVEPOINT request;
SELECT is((SELECT count(*) FROM agentmarket_private.credit_idempotency
            WHERE user_id = '00000000-0000-4000-8000-0000ef05e001'), 0::bigint,
          'a session refused for lack of credits (PT402, rolled back) leaves no idempotency record');
SELECT is((SELECT count(*) FROM agentmarket.sessions WHERE user_id = '00000000-0000-4000-8000-0000ef05e001'), 0::bigint,
          'and no session');

-- The platform's keyed deduction, refused inside a transaction that rolls back.
SAVEPOINT request;
SET LOCAL ROLE service_role;
SELECT agentmarket.deduct_credits('00000000-0000-4000-8000-0000ef05e001', 50, NULL, 'refusals-k1');
ROLLBACK TO SAVEPOINT request;
SELECT is((SELECT count(*) FROM agentmarket_private.credit_idempotency
            WHERE user_id = '00000000-0000-4000-8000-0000ef05e001'), 0::bigint,
          'a refused keyed deduction (rolled back) leaves no record');

-- Many refusals at once cost no worker each: 500 refused keyed calls of every
-- kind in one transaction, each caught.
CREATE FUNCTION pg_temp.refuse_many(n integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    refused integer := 0;
    i integer;
BEGIN
    FOR i IN 1 .. n LOOP
        BEGIN
            CASE i % 3
            WHEN 0 THEN PERFORM agentmarket.deduct_credits('00000000-0000-4000-8000-0000ef05e001', 50, NULL, 'many-' || i);
            WHEN 1 THEN PERFORM agentmarket.reserve_credits('00000000-0000-4000-8000-0000ef05e001', 50,
                                                           idempotency_key => 'many-' || i);
            ELSE PERFORM agentmarket.refund_credits('00000000-0000-4000-8000-0000ef05e001', 50, NULL, 'many-' || i);
            END CASE;
        EXCEPTION WHEN SQLSTATE 'PT402' OR SQLSTATE '22023' THEN
            refused := refused + 1;
        END;
    END LOOP;
    RETURN refused || ' refused, ' || (SELECT count(*) FROM agentmarket_private.credit_idempotency
                                        WHERE user_id = '00000000-0000-4000-8000-0000ef05e001') || ' recorded, '
           || (SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'agentmarket%') || ' workers';
END
$$;
SELECT is(pg_temp.refuse_many(500), '500 refused, 0 recorded, 0 workers',
          '500 refused keyed calls: each refused, none recorded, no worker');
SELECT is((SELECT count(*) FROM pg_proc WHERE prosrc = 'credit_idempotency_record_failure'
             AND pronamespace = 'agentmarket_private'::regnamespace), 0::bigint,
          'the worker-backed recorder is not part of the extension any more');

-- A retry of a refused key is decided afresh: after a top-up it applies, once.
SELECT (agentmarket.grant_credits('00000000-0000-4000-8000-0000ef05e001', 100, 'topup', 'topup_purchase')).topup_credits AS topped_up;
SELECT is((agentmarket.deduct_credits('00000000-0000-4000-8000-0000ef05e001', 50, NULL, 'refusals-k1')).topup_credits, 60,
          'the refused key, retried after a top-up, applies');
SELECT is((agentmarket.deduct_credits('00000000-0000-4000-8000-0000ef05e001', 50, NULL, 'refusals-k1')).topup_credits, 60,
          'once: its repeat returns that outcome');
SELECT is_empty($$SELECT * FROM agentmarket.verify_ledger() WHERE user_id = '00000000-0000-4000-8000-0000ef05e001'$$,
                'the ledger is consistent');

SELECT * FROM finish();

ROLLBACK;
