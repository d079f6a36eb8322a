-- payouts: creators are paid through Stripe Connect.  Onboarding (who may,
-- the account job, the link job its handler enqueues, the link the creator
-- reads), payout runs (holding days, minimum, no account, claimed once, the
-- exact amount and the carried sub-cent remainder), the transfer job and its
-- idempotency key, the finish and dead handlers, refunds while a payout is in
-- flight, and who reads payouts.  Calls are made as PostgREST makes them.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(57);

INSERT INTO users (id, email, role, stripe_connect_account_id) VALUES
  ('70000000-0000-4000-8000-0000000000a1', 'ada@payouts.example', 'creator', 'acct_ada'),
  ('70000000-0000-4000-8000-0000000000b1', 'bob@payouts.example', 'creator', NULL),
  ('70000000-0000-4000-8000-0000000000c1', 'cy@payouts.example', 'creator', 'acct_cy'),
  ('70000000-0000-4000-8000-0000000000d1', 'di@payouts.example', 'creator', NULL),
  ('70000000-0000-4000-8000-0000000000e1', 'user@payouts.example', 'user', NULL);
-- Both accounts finished onboarding (account.updated said so; webhooks.sql).
INSERT INTO agentmarket_private.connect_accounts (account_id, charges_enabled, payouts_enabled, transfers_active,
                                                  details_submitted, event_created)
VALUES ('acct_ada', true, true, true, true, 1), ('acct_cy', true, true, true, true, 1);
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, github_repo_url)
SELECT ('70000000-0000-4000-8000-0000000001' || s)::uuid, ('70000000-0000-4000-8000-0000000000' || s)::uuid,
       'payout-agent-' || s, 'Agent ' || s, 'tagline', 'description', 'research', 'https://github.com/x/' || s
  FROM unnest(ARRAY['a1', 'c1', 'd1']) s;
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status)
VALUES ('70000000-0000-4000-8000-000000000201', '70000000-0000-4000-8000-0000000000e1',
        '70000000-0000-4000-8000-0000000001a1', 'am-payouts', 'm-1', 'running');
INSERT INTO sessions (id, instance_id, user_id, started_at, ended_at)
SELECT ('70000000-0000-4000-8000-00000000030' || i)::uuid, '70000000-0000-4000-8000-000000000201',
       '70000000-0000-4000-8000-0000000000e1', now() - interval '21 days', now() - interval '20 days'
  FROM generate_series(1, 3) i;

-- pg_temp.earn(name, creator, amount, age, session): an earnings row.
CREATE TEMP TABLE e (name text PRIMARY KEY, id uuid);
CREATE FUNCTION pg_temp.earn(n text, who text, amount numeric, age interval, sess uuid DEFAULT NULL) RETURNS void
LANGUAGE sql AS $$
    WITH x AS (
        INSERT INTO agentmarket.creator_earnings (creator_id, agent_id, session_id, gross_revenue, compute_cost,
                                                  creator_amount, platform_amount, created_at)
        VALUES (('70000000-0000-4000-8000-0000000000' || who)::uuid, ('70000000-0000-4000-8000-0000000001' || who)::uuid,
                sess, amount + 1, 0, amount, 1, now() - age)
        RETURNING id)
    INSERT INTO e SELECT n, x.id FROM x
$$;
CREATE FUNCTION pg_temp.eid(n text) RETURNS uuid LANGUAGE sql AS $$ SELECT id FROM e WHERE name = n $$;
CREATE FUNCTION pg_temp.job(k text, uid text) RETURNS agentmarket_private.jobs LANGUAGE sql AS $$
    SELECT * FROM agentmarket_private.jobs WHERE kind = k AND payload ->> 'user_id' = uid ORDER BY id DESC LIMIT 1
$$;
CREATE FUNCTION pg_temp.transfer(pid uuid) RETURNS agentmarket_private.jobs LANGUAGE sql AS $$
    SELECT * FROM agentmarket_private.jobs WHERE kind = 'stripe.create_transfer' AND payload ->> 'payout_id' = pid::text
$$;
CREATE TEMP TABLE po (name text PRIMARY KEY, id uuid);
GRANT SELECT ON e TO PUBLIC;
GRANT SELECT, INSERT ON po TO PUBLIC;
GRANT EXECUTE ON FUNCTION pg_temp.eid(text) TO PUBLIC;

------------------------------------------------------------------------------
-- Onboarding
------------------------------------------------------------------------------
SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"role": "authenticated"}', true);
SELECT throws_ok('SELECT start_creator_onboarding()', '42501', NULL, 'nobody signed in cannot onboard');
SELECT set_config('request.jwt.claims', '{"sub": "70000000-0000-4000-8000-0000000000e1", "role": "authenticated"}', true);
SELECT throws_ok('SELECT start_creator_onboarding()', '42501', NULL, 'a user who is not a creator cannot onboard');
SELECT set_config('request.jwt.claims', '{"sub": "70000000-0000-4000-8000-0000000000b1", "role": "authenticated"}', true);
SELECT is((SELECT status FROM my_onboarding_link()), 'none', 'before onboarding there is nothing to show');
SELECT set_config('demo.j1', start_creator_onboarding()::text, true) IS NOT NULL AS started;
SELECT is(start_creator_onboarding(), current_setting('demo.j1')::bigint,
    'asking again while the account is being made returns the same job (one account)');
SELECT is((SELECT status || ' ' || coalesce(stripe_connect_account_id, '-') FROM my_onboarding_link()), 'pending -',
    'the creator sees onboarding pending');
RESET ROLE;
SELECT is((pg_temp.job('stripe.create_account', '70000000-0000-4000-8000-0000000000b1')).payload -> 'params',
    '{"controller": {"fees": {"payer": "application"}, "losses": {"payments": "application"},
                     "requirement_collection": "stripe", "stripe_dashboard": {"type": "express"}},
      "email": "bob@payouts.example", "metadata": {"user_id": "70000000-0000-4000-8000-0000000000b1"},
      "capabilities": {"transfers": {"requested": true}}}'::jsonb,
    'a creator without an account gets an account job with controller properties (platform pays fees and losses, Stripe collects requirements, Express dashboard), email, transfers and metadata[user_id]');
SELECT is((SELECT count(*)::int FROM agentmarket_private.jobs WHERE kind = 'stripe.create_account_link'), 0,
    'no link is asked for before the account exists');
SELECT is((SELECT count(*)::int FROM agentmarket_private.claim_jobs('w1', 100, '1 minute')), 1, 'the sidecar claims the account job');
SELECT ok(agentmarket_private.finish_job(current_setting('demo.j1')::bigint, '{"id": "acct_bob1", "object": "account"}', 'w1'),
    'the sidecar reports the account');
SELECT is((SELECT stripe_connect_account_id FROM users WHERE id = '70000000-0000-4000-8000-0000000000b1'), 'acct_bob1',
    'the creator has the account id');
SELECT is((pg_temp.job('stripe.create_account_link', '70000000-0000-4000-8000-0000000000b1')).payload -> 'params',
    '{"account": "acct_bob1", "type": "account_onboarding",
      "refresh_url": "https://agentmarket.example/creator/payouts/refresh",
      "return_url": "https://agentmarket.example/creator/payouts/return"}'::jsonb,
    'the account job''s handler enqueues the onboarding link for that account');
SELECT is((SELECT count(*)::int FROM agentmarket_private.claim_jobs('w1', 100, '1 minute')), 1, 'the sidecar claims the link job');
SELECT ok(agentmarket_private.finish_job((pg_temp.job('stripe.create_account_link', '70000000-0000-4000-8000-0000000000b1')).id,
          jsonb_build_object('object', 'account_link', 'url', 'https://connect.stripe.com/setup/e/acct_bob1/xyz',
                             'expires_at', extract(epoch FROM now() + interval '5 minutes')::bigint), 'w1'),
    'the sidecar reports the link');
SELECT set_config('role', 'authenticated', true);
SELECT is((SELECT status || ' ' || stripe_connect_account_id || ' ' || url FROM my_onboarding_link()),
    'ready acct_bob1 https://connect.stripe.com/setup/e/acct_bob1/xyz', 'the creator reads the link to open');
SELECT set_config('request.jwt.claims', '{"sub": "70000000-0000-4000-8000-0000000000a1", "role": "authenticated"}', true);
SELECT set_config('demo.j2', start_creator_onboarding()::text, true) IS NOT NULL AS started;
RESET ROLE;
SELECT is((SELECT kind || ' ' || (payload #>> '{params,account}') FROM agentmarket_private.jobs WHERE id = current_setting('demo.j2')::bigint),
    'stripe.create_account_link acct_ada', 'a creator who has an account gets a new link directly');
SELECT throws_ok($$SELECT agentmarket.configure('connect_return_url', 'http://insecure.example/back')$$, '22023', NULL,
    'the return URL must be https');
SELECT is(agentmarket_private.fail_job(current_setting('demo.j2')::bigint, 'Stripe: account_invalid', NULL, true, 'w1'), NULL,
    'a job not leased by the worker cannot be failed by it');

------------------------------------------------------------------------------
-- Payout runs
------------------------------------------------------------------------------
DELETE FROM agentmarket_private.jobs;
SELECT agentmarket.configure('payout_minimum_usd', '1.00');
SELECT pg_temp.earn('a1', 'a1', 0.4567, '20 days', '70000000-0000-4000-8000-000000000301');
SELECT pg_temp.earn('a2', 'a1', 0.6789, '15 days');
SELECT pg_temp.earn('a3', 'a1', 5.0000, '3 days');
SELECT pg_temp.earn('c1', 'c1', 0.5000, '20 days');
SELECT pg_temp.earn('d1', 'd1', 10.0000, '20 days');

SELECT set_config('role', 'authenticated', true);
SELECT throws_ok('SELECT run_payouts()', '42501', NULL, 'a creator cannot run payouts');
SELECT set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role": "service_role"}', true);
INSERT INTO po SELECT 'p1', id FROM run_payouts();
RESET ROLE;
SELECT is((SELECT count(*)::int FROM po), 1, 'one payout is made: only Ada is payable');
SELECT is((SELECT creator_id::text || ' ' || amount_usd || ' ' || carried_in_usd || ' ' || transfer_cents || ' ' || remainder_usd || ' ' || status
             FROM payouts WHERE id = (SELECT id FROM po WHERE name = 'p1')),
    '70000000-0000-4000-8000-0000000000a1 1.1356 0.0000 113 0.0056 pending',
    'the payout is the exact sum of the earnings past the holding days (0.4567 + 0.6789), 113 whole cents, 0.0056 left');
SELECT is((SELECT string_agg(name, ',' ORDER BY name) FROM e JOIN creator_earnings c USING (id)
            WHERE c.payout_id = (SELECT id FROM po WHERE name = 'p1')), 'a1,a2',
    'the two old earnings rows are claimed by the payout; the 3-day-old one waits');
SELECT is((SELECT count(*)::int FROM payouts WHERE creator_id = '70000000-0000-4000-8000-0000000000c1'), 0,
    'earnings below payout_minimum_usd wait');
SELECT is((SELECT count(*)::int FROM payouts WHERE creator_id = '70000000-0000-4000-8000-0000000000d1'), 0,
    'a creator without a Connect account is not paid');
SELECT is((pg_temp.transfer((SELECT id FROM po WHERE name = 'p1'))).idempotency_key, 'transfer:' || (SELECT id FROM po WHERE name = 'p1'),
    'the transfer''s idempotency key is derived from the payout id: a retried job transfers once');
SELECT is((pg_temp.transfer((SELECT id FROM po WHERE name = 'p1'))).payload,
    jsonb_build_object('payout_id', (SELECT id FROM po WHERE name = 'p1'), 'params', jsonb_build_object(
        'amount', 113, 'currency', 'usd', 'destination', 'acct_ada',
        'transfer_group', 'payout:' || (SELECT id FROM po WHERE name = 'p1'),
        'metadata', jsonb_build_object('payout_id', (SELECT id FROM po WHERE name = 'p1'),
                                       'creator_id', '70000000-0000-4000-8000-0000000000a1'))),
    'the transfer moves the whole cents in usd to the creator''s account, grouped and tagged by payout');
SELECT is((SELECT count(*)::int FROM run_payouts()), 0, 'a second run claims nothing: every row is in one payout at most');

-- A refund while the payout is in flight leaves the claimed row alone.
SELECT refund_session('70000000-0000-4000-8000-000000000301', 'changed mind') IS NOT NULL;
SELECT is((SELECT payout_id FROM creator_earnings WHERE id = pg_temp.eid('a1')), (SELECT id FROM po WHERE name = 'p1'),
    'refund_session does not claw back earnings a payout has claimed (the money is being transferred)');
SELECT throws_ok(format('UPDATE agentmarket.payouts SET amount_usd = 1 WHERE id = %L', (SELECT id FROM po WHERE name = 'p1')),
    '23514', NULL, 'a payout''s amounts must agree: whole cents of amount + carry');

-- The transfer succeeds.
SELECT is((SELECT count(*)::int FROM agentmarket_private.claim_jobs('w1', 100, '1 minute')), 1, 'the sidecar claims the transfer');
SELECT ok(agentmarket_private.finish_job((pg_temp.transfer((SELECT id FROM po WHERE name = 'p1'))).id,
          '{"id": "tr_one", "object": "transfer", "amount": 113}', 'w1'), 'the sidecar reports the transfer');
SELECT is((SELECT status || ' ' || stripe_transfer_id || ' ' || (paid_at IS NOT NULL) FROM payouts WHERE id = (SELECT id FROM po WHERE name = 'p1')),
    'paid tr_one true', 'the payout is paid with the transfer id');
SELECT is((SELECT string_agg(name || ':' || paid_out || ':' || (paid_out_at IS NOT NULL) || ':' || coalesce(stripe_transfer_id, '-'), ',' ORDER BY name)
             FROM e JOIN creator_earnings USING (id) WHERE name LIKE 'a%'),
    'a1:true:true:tr_one,a2:true:true:tr_one,a3:false:false:-', 'its earnings are paid out with the transfer id; the young row is not');
SELECT lives_ok(format('SELECT agentmarket_private.finish_payout_transfer(%L::agentmarket_private.jobs, %L)',
                       pg_temp.transfer((SELECT id FROM po WHERE name = 'p1')), '{"id": "tr_one"}'),
    'the same success reported again changes nothing');
SELECT throws_ok(format('SELECT agentmarket_private.finish_payout_transfer(%L::agentmarket_private.jobs, %L)',
                        pg_temp.transfer((SELECT id FROM po WHERE name = 'p1')), '{"id": "tr_other"}'),
    '22023', NULL, 'another transfer for a settled payout is refused');
SELECT throws_ok(format('SELECT agentmarket_private.finish_payout_transfer(%L::agentmarket_private.jobs, %L)',
                        pg_temp.transfer((SELECT id FROM po WHERE name = 'p1')), '{"object": "transfer"}'),
    '22023', NULL, 'a result without a transfer id is refused');
SELECT is(payout_carry_usd('70000000-0000-4000-8000-0000000000a1'), 0.0056, 'the 0.0056 not transferred is carried');

-- The next payout: one row of a session that will be refunded, one plain; the transfer dies.
SELECT pg_temp.earn('a4', 'a1', 1.2345, '16 days');
SELECT pg_temp.earn('a5', 'a1', 0.3000, '16 days', '70000000-0000-4000-8000-000000000302');
INSERT INTO po SELECT 'p2', id FROM run_payouts();
SELECT is((SELECT amount_usd || ' ' || carried_in_usd || ' ' || transfer_cents || ' ' || remainder_usd FROM payouts WHERE id = (SELECT id FROM po WHERE name = 'p2')),
    '1.0778 0.0056 108 0.0034', 'the next payout nets the clawback of a1 (paid, then its session refunded) and adds the carry: 1.5345 - 0.4567 + 0.0056 = 108 cents and 0.0034');
SELECT is(payout_carry_usd('70000000-0000-4000-8000-0000000000a1'), 0.0000, 'a carry is used by one payout only');
SELECT refund_session('70000000-0000-4000-8000-000000000302') IS NOT NULL;
SELECT is((SELECT count(*)::int FROM agentmarket_private.claim_jobs('w1', 100, '1 minute')), 1, 'the sidecar claims the second transfer');
SELECT is(agentmarket_private.fail_job((pg_temp.transfer((SELECT id FROM po WHERE name = 'p2'))).id,
          'Stripe: balance_insufficient', NULL, true, 'w1'), 'dead', 'the transfer gives up');
SELECT is((SELECT status || ' ' || failure_reason || ' ' || (failed_at IS NOT NULL) FROM payouts WHERE id = (SELECT id FROM po WHERE name = 'p2')),
    'failed Stripe: balance_insufficient true', 'the payout has failed, with the reason');
SELECT is((SELECT payout_id IS NULL AND NOT paid_out FROM creator_earnings WHERE id = pg_temp.eid('a4')), true,
    'its earnings are released for the next run');
SELECT is((SELECT count(*)::int FROM creator_earnings WHERE id = pg_temp.eid('a5')), 0,
    'the earnings of the session refunded meanwhile are clawed back now');
SELECT is(payout_carry_usd('70000000-0000-4000-8000-0000000000a1'), 0.0056, 'the carry is back for the next payout');

SELECT is((SELECT count(*)::int FROM run_payouts()), 0,
    'the net after the clawback (1.2345 - 0.4567 = 0.7778) is below payout_minimum_usd (1.00): it waits');
SELECT agentmarket.configure('payout_minimum_usd', '0.60');
INSERT INTO po SELECT 'p3', id FROM run_payouts();
SELECT is((SELECT amount_usd || ' ' || carried_in_usd || ' ' || transfer_cents FROM payouts WHERE id = (SELECT id FROM po WHERE name = 'p3')),
    '0.7778 0.0056 78', 'the next run pays the released row less the clawback, with the carry');
SELECT is((SELECT count(*)::int FROM agentmarket_private.claim_jobs('w1', 100, '1 minute')), 1, 'the sidecar claims the third transfer');
SELECT is((SELECT outcome FROM agentmarket_private.report_jobs('w1', jsonb_build_array(jsonb_build_object(
              'id', (pg_temp.transfer((SELECT id FROM po WHERE name = 'p3'))).id, 'ok', true, 'result', '{"id": "tr_three"}'::jsonb)))),
    'succeeded', 'the third transfer succeeds');
SELECT is((SELECT sum(transfer_cents) / 100.0 + payout_carry_usd('70000000-0000-4000-8000-0000000000a1')
             FROM payouts WHERE creator_id = '70000000-0000-4000-8000-0000000000a1' AND status = 'paid'),
          (SELECT sum(creator_amount) FROM creator_earnings WHERE creator_id = '70000000-0000-4000-8000-0000000000a1' AND paid_out)
          - agentmarket_private.creator_clawbacks_settled_usd('70000000-0000-4000-8000-0000000000a1'),
    'money stays exact: paid transfers + carried remainder = the earnings paid out (2.3701) - the clawback settled (0.4567)');
SELECT is((SELECT sum(creator_amount) FROM creator_earnings WHERE creator_id = '70000000-0000-4000-8000-0000000000a1' AND paid_out),
    2.3701, 'those earnings are 0.4567 + 0.6789 + 1.2345');
SELECT is_empty($$SELECT e.id FROM agentmarket.creator_earnings e JOIN agentmarket.payouts p ON p.id = e.payout_id
                   WHERE e.paid_out <> (p.status = 'paid') OR p.status = 'failed'$$,
    'every claimed row belongs to one live payout and is paid exactly when it is');

-- With no holding and a higher minimum, the young 5.0000 row still waits.
SELECT agentmarket.configure('payout_holding_days', '0');
SELECT agentmarket.configure('payout_minimum_usd', '25');
SELECT is((SELECT count(*)::int FROM run_payouts()), 0, 'below the minimum nothing is paid, however old');
SELECT agentmarket.configure('payout_minimum_usd', '5');
SELECT is((SELECT amount_usd || ' ' || carried_in_usd || ' ' || transfer_cents FROM run_payouts()),
    '5.0000 0.0034 500', 'once the holding days are 0 the young row is payable');

------------------------------------------------------------------------------
-- Who reads payouts
------------------------------------------------------------------------------
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "70000000-0000-4000-8000-0000000000a1", "role": "authenticated"}', true);
SELECT is((SELECT count(*)::int FROM payouts), 4, 'a creator reads their own payouts');
SELECT throws_ok('UPDATE agentmarket.payouts SET status = ''paid''', '42501', NULL, 'a creator cannot change a payout');
SELECT set_config('request.jwt.claims', '{"sub": "70000000-0000-4000-8000-0000000000c1", "role": "authenticated"}', true);
SELECT is((SELECT count(*)::int FROM payouts), 0, 'another creator reads none of them');
SELECT throws_ok('INSERT INTO agentmarket.payouts (creator_id, stripe_connect_account_id, amount_usd, transfer_cents)
                  VALUES (''70000000-0000-4000-8000-0000000000c1'', ''acct_cy'', 100, 10000)', '42501', NULL,
    'a creator cannot write a payout for themselves');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
