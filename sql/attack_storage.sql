-- attack_storage: what PostgreSQL cannot keep is refused cleanly.
--   * A correctly signed Stripe webhook whose JSON jsonb cannot hold
--     (\u0000) is answered (HTTP 200, so Stripe does not retry it for three
--     days) and recorded as rejected with its reason; nothing is applied.
--   * No table of the extension has a reg* column (pg_upgrade refuses
--     them): job kinds name their handlers by qualified signature (text),
--     resolved when called, and a handler that does not exist is refused
--     when it is written.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(9);

-- Signed as Stripe signs (agentmarket's own HMAC, checked against Stripe's
-- algorithm by the payments suite).
CREATE FUNCTION pg_temp.signed(p text) RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT 't=' || floor(extract(epoch FROM now()))::bigint || ',v1=' ||
           agentmarket_private.hmac_sha256_hex(convert_to('whsec_storage1', 'UTF8'),
               convert_to(floor(extract(epoch FROM now()))::bigint || '.' || p, 'UTF8'))
$$;
SELECT agentmarket.configure('stripe_webhook_secret', 'whsec_storage1') IS NULL AS configured;

SET LOCAL ROLE service_role;
SELECT is(agentmarket.handle_stripe_webhook(
              '{"id": "evt_nul1", "object": "event", "type": "checkout.session.completed", "data": {"object": {"id": "cs_x", "metadata": {"note": "a\u0000b"}}}}',
              pg_temp.signed('{"id": "evt_nul1", "object": "event", "type": "checkout.session.completed", "data": {"object": {"id": "cs_x", "metadata": {"note": "a\u0000b"}}}}'))
          - 'reason',
          '{"event": "evt_nul1", "type": "checkout.session.completed", "outcome": "rejected"}'::jsonb,
          'a signed event holding \u0000 is answered as rejected, not with an internal error');
RESET ROLE;
SELECT is((SELECT outcome || ': ' || reason FROM agentmarket_private.processed_webhook_events WHERE event_id = 'evt_nul1'),
          'rejected: the event holds \u0000, which PostgreSQL cannot store', 'and recorded with its reason');
SET LOCAL ROLE service_role;
SELECT is(agentmarket.handle_stripe_webhook(
              '{"id": "evt_nul1", "object": "event", "type": "checkout.session.completed", "data": {"object": {"id": "cs_x", "metadata": {"note": "a\u0000b"}}}}',
              pg_temp.signed('{"id": "evt_nul1", "object": "event", "type": "checkout.session.completed", "data": {"object": {"id": "cs_x", "metadata": {"note": "a\u0000b"}}}}'))
          ->> 'outcome', 'duplicate', 'Stripe''s retry of it is a duplicate');
SELECT throws_ok($$SELECT agentmarket.handle_stripe_webhook('{"id": "evt_nul2", "type": "x", "a": "\u0000"}', 't=1,v1=00')$$,
                 'PT401', NULL, 'an unsigned one is still refused as unsigned');
RESET ROLE;

-- reg* columns.
SELECT is_empty($$SELECT c.oid::regclass::text || '.' || a.attname
                    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                   WHERE c.relnamespace IN ('agentmarket'::regnamespace, 'agentmarket_private'::regnamespace)
                     AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
                     AND a.atttypid IN ('regproc'::regtype, 'regprocedure'::regtype, 'regoper'::regtype,
                                        'regoperator'::regtype, 'regclass'::regtype, 'regtype'::regtype,
                                        'regconfig'::regtype, 'regdictionary'::regtype, 'regnamespace'::regtype,
                                        'regrole'::regtype, 'regcollation'::regtype)$$,
                'no table of the extension has a reg* column');
SELECT is((SELECT handler FROM agentmarket_private.job_kinds WHERE kind = 'fly.provision_instance'),
          'agentmarket_private.finish_provision_instance(agentmarket_private.jobs,jsonb)',
          'a handler is its qualified signature');
SELECT is_empty($$SELECT kind FROM agentmarket_private.job_kinds
                   WHERE to_regprocedure(handler) IS NULL
                      OR (dead_handler IS NOT NULL AND to_regprocedure(dead_handler) IS NULL)$$,
                'every registered handler resolves');
SELECT throws_ok($$UPDATE agentmarket_private.job_kinds SET handler = 'agentmarket_private.no_such(agentmarket_private.jobs,jsonb)'
                   WHERE kind = 'fly.start_machine'$$, '22023', NULL, 'a handler that does not exist is refused');
-- finish_job still applies a handler through the text reference.
INSERT INTO agentmarket.users (id, email) VALUES ('00000000-0000-4000-8000-00005701a9e1', 'storage@example.test');
SELECT agentmarket_private.enqueue_stripe_job('stripe.create_customer', '{"email": "storage@example.test"}',
    'customer:storage', '{"user_id": "00000000-0000-4000-8000-00005701a9e1"}') AS job \gset
SELECT count(*) AS claimed FROM agentmarket_private.claim_jobs('storage-worker', 100, '1 minute') \gset
SELECT agentmarket_private.finish_job(:job, '{"id": "cus_storage1"}', 'storage-worker') AS finished;
SELECT is((SELECT stripe_customer_id FROM agentmarket.users WHERE id = '00000000-0000-4000-8000-00005701a9e1'),
          'cus_storage1', 'finish_job resolves the text reference and applies the handler');

SELECT * FROM finish();
ROLLBACK;
