-- billing_portal: a signed-in user manages their plan and payment method in
-- Stripe's billing portal.  open_billing_portal() enqueues one
-- stripe.create_billing_portal_session job for the caller's own customer (one
-- in flight, at most one a minute), its handler stores the url,
-- my_billing_portal() shows it; anon, a caller without a user, a user without
-- a customer and other users are refused or see nothing of it.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(26);

INSERT INTO users (id, email, stripe_customer_id) VALUES
  ('b0000000-0000-4000-8000-0000000000a1', 'ada@portal.example', 'cus_ada'),
  ('b0000000-0000-4000-8000-0000000000b1', 'bob@portal.example', 'cus_bob'),
  ('b0000000-0000-4000-8000-0000000000c1', 'new@portal.example', NULL);
CREATE FUNCTION pg_temp.as_user(u text) RETURNS void LANGUAGE sql AS $$
    SELECT set_config('role', 'authenticated', true),
           set_config('request.jwt.claims', CASE WHEN u IS NULL THEN '{"role": "authenticated"}'
                      ELSE json_build_object('sub', u, 'role', 'authenticated')::text END, true);
$$;
GRANT EXECUTE ON FUNCTION pg_temp.as_user(text) TO PUBLIC;
CREATE TEMP TABLE j (name text PRIMARY KEY, id bigint);
GRANT SELECT, INSERT ON j TO PUBLIC;

------------------------------------------------------------------------------
-- Who may ask
------------------------------------------------------------------------------
SELECT set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role": "anon"}', true);
SELECT throws_ok('SELECT open_billing_portal()', '42501', NULL, 'anon cannot open a billing portal');
SELECT throws_ok('SELECT my_billing_portal()', '42501', NULL, 'anon cannot read one');
RESET ROLE;
SELECT set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role": "service_role"}', true);
SELECT throws_ok('SELECT open_billing_portal()', '42501', NULL, 'service_role (no user) cannot open one');
RESET ROLE;
SELECT pg_temp.as_user(NULL);
SELECT throws_ok('SELECT open_billing_portal()', '42501', 'not signed in', 'authenticated without a user id is refused');
SELECT pg_temp.as_user('b0000000-0000-4000-8000-0000000000c1');
SELECT throws_ok('SELECT open_billing_portal()', 'P0002', 'no billing account',
    'a user who never paid has no Stripe customer to manage');
SELECT pg_temp.as_user('b0000000-0000-4000-8000-0000000000ff');
SELECT throws_ok('SELECT open_billing_portal()', '42501', 'not signed in', 'a token for a user who does not exist is refused');
SELECT throws_ok('SELECT count(*) FROM agentmarket_private.billing_portal_sessions', '42501', NULL,
    'clients cannot read the portal sessions table');

------------------------------------------------------------------------------
-- Asking, once at a time
------------------------------------------------------------------------------
SELECT pg_temp.as_user('b0000000-0000-4000-8000-0000000000a1');
SELECT is((SELECT status FROM my_billing_portal()), 'none', 'before asking there is nothing to show');
INSERT INTO j VALUES ('ada', open_billing_portal());
SELECT is(open_billing_portal(), (SELECT id FROM j WHERE name = 'ada'),
    'asking again while the session is being made returns the same job');
SELECT is((SELECT status || ' ' || coalesce(url, '-') FROM my_billing_portal()), 'pending -', 'the user sees it pending');
SELECT pg_temp.as_user('b0000000-0000-4000-8000-0000000000b1');
SELECT is((SELECT status FROM my_billing_portal()), 'none', 'another user sees nothing of it');
INSERT INTO j VALUES ('bob', open_billing_portal());
RESET ROLE;
SELECT is((SELECT payload FROM agentmarket_private.jobs WHERE id = (SELECT id FROM j WHERE name = 'ada')),
    '{"user_id": "b0000000-0000-4000-8000-0000000000a1",
      "params": {"customer": "cus_ada", "return_url": "https://agentmarket.example/billing"}}'::jsonb,
    'the job asks for a session of the caller''s own customer, returning to billing_portal_return_url');
SELECT is((SELECT payload #>> '{params,customer}' FROM agentmarket_private.jobs WHERE id = (SELECT id FROM j WHERE name = 'bob')),
    'cus_bob', 'the other user''s job is for their customer');
SELECT is((SELECT kind || ' ' || k.endpoint || ' ' || (idempotency_key LIKE 'billing_portal:b0000000-0000-4000-8000-0000000000a1:%')
             FROM agentmarket_private.jobs x JOIN agentmarket_private.job_kinds k USING (kind)
            WHERE x.id = (SELECT id FROM j WHERE name = 'ada')),
    'stripe.create_billing_portal_session /v1/billing_portal/sessions true', 'the job POSTs to /v1/billing_portal/sessions with its own Idempotency-Key');

------------------------------------------------------------------------------
-- The answer
------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.finish(name text, answer jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM agentmarket_private.finish_billing_portal_session(x, answer)
       FROM agentmarket_private.jobs x WHERE x.id = (SELECT id FROM j WHERE j.name = finish.name);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT is(pg_temp.finish('ada', '{"id": "bps_1", "object": "billing_portal.session", "customer": "cus_bob",
                                  "url": "https://billing.stripe.com/p/session/test_1"}'),
    '22023: billing portal result of job ' || (SELECT id FROM j WHERE name = 'ada') || ' is for another customer',
    'an answer for another customer is refused');
SELECT is(pg_temp.finish('ada', '{"id": "bps_1", "object": "billing_portal.session", "customer": "cus_ada",
                                  "url": "javascript:alert(1)"}'),
    '22023: billing portal result of job ' || (SELECT id FROM j WHERE name = 'ada') || ' has no session',
    'an answer without an https url is refused');
SELECT is(pg_temp.finish('ada', '{"id": "bps_1", "object": "billing_portal.session", "customer": "cus_ada",
                                  "url": "https://billing.stripe.com/p/session/test_1"}'), 'ok', 'the session''s answer is stored');
SELECT pg_temp.as_user('b0000000-0000-4000-8000-0000000000a1');
SELECT is((SELECT status || ' ' || url || ' ' || (expires_at > now()) FROM my_billing_portal()),
    'ready https://billing.stripe.com/p/session/test_1 true', 'the user gets the url to open');
SELECT is(open_billing_portal(), (SELECT id FROM j WHERE name = 'ada'),
    'asking again within a minute returns the same session, no call to Stripe');
SELECT pg_temp.as_user('b0000000-0000-4000-8000-0000000000b1');
SELECT is((SELECT status || ' ' || coalesce(url, '-') FROM my_billing_portal()), 'pending -',
    'the other user still sees only their own session');
RESET ROLE;
UPDATE agentmarket_private.billing_portal_sessions SET ready_at = now() - interval '10 minutes'
 WHERE job_id = (SELECT id FROM j WHERE name = 'ada');
SELECT pg_temp.as_user('b0000000-0000-4000-8000-0000000000a1');
SELECT is((SELECT status FROM my_billing_portal()), 'expired', 'a portal url is short-lived: after five minutes it has expired');
SELECT isnt(open_billing_portal(), (SELECT id FROM j WHERE name = 'ada'), 'asking then makes a new session');
RESET ROLE;

-- A job that dies: the user is told why.
UPDATE agentmarket_private.jobs SET status = 'dead', finished_at = now(),
       last_error = 'stripe 400 resource_missing: No such customer: ''cus_bob'''
 WHERE id = (SELECT id FROM j WHERE name = 'bob');
SELECT agentmarket_private.billing_portal_session_dead(x) FROM agentmarket_private.jobs x
 WHERE x.id = (SELECT id FROM j WHERE name = 'bob') \g /dev/null
SELECT pg_temp.as_user('b0000000-0000-4000-8000-0000000000b1');
SELECT is((SELECT status || ': ' || error FROM my_billing_portal()),
    'failed: stripe 400 resource_missing: No such customer: ''cus_bob''', 'a session that could not be made is failed, with why');
SELECT isnt(open_billing_portal(), (SELECT id FROM j WHERE name = 'bob'), 'the user can ask again');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM agentmarket_private.jobs WHERE kind = 'stripe.create_billing_portal_session'), 4,
    'four sessions asked of Stripe in all');

-- Hand-made jobs keep their result only.
SELECT is(agentmarket_private.finish_billing_portal_session(
    (SELECT x FROM agentmarket_private.jobs x WHERE x.id = agentmarket_private.enqueue_stripe_job(
        'stripe.create_billing_portal_session', '{"customer": "cus_ada"}', 'billing_portal:by-hand'))::agentmarket_private.jobs,
    '{"id": "bps_2", "customer": "cus_ada", "url": "https://billing.stripe.com/p/session/test_2"}')::text, '',
    'a job enqueued by hand changes no user''s session');

SELECT * FROM finish();
ROLLBACK;
