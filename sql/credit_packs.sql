-- credit_packs: the operator manages the packs on sale through functions
-- (create, change price, withdraw), only the platform may, every input is
-- checked, every change is audited, and a real pg_dump | pg_restore keeps
-- exactly what the operator set (packs and machine prices) without
-- duplicating the packs that ship with the extension.
\ir test/fixture.sql
DROP DATABASE IF EXISTS am_packs_src;
DROP DATABASE IF EXISTS am_packs_dst;
CREATE DATABASE am_packs_src;
CREATE DATABASE am_packs_dst;
\c am_packs_src
SET client_min_messages = warning;
CREATE EXTENSION agentmarket CASCADE;
CREATE EXTENSION pgtap;
SET search_path = agentmarket, public;
SELECT plan(31);

-- pg_temp.as_role(role, sql): runs sql as PostgREST would for that role.
CREATE FUNCTION pg_temp.as_role(r text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE res text;
BEGIN
    PERFORM set_config('request.jwt.claims', json_build_object('role', r, 'sub', '00000000-0000-4000-8000-0000000a0c01')::text, true);
    EXECUTE format('SET LOCAL ROLE %I', r);
    EXECUTE q INTO res;
    RESET ROLE;
    RETURN res;
EXCEPTION WHEN OTHERS THEN
    RESET ROLE;
    RETURN 'error ' || SQLSTATE;
END $$;
CREATE TEMP TABLE shipped AS SELECT code, name, kind, credits, amount_cents, currency, active FROM agentmarket_private.credit_packs;

------------------------------------------------------------------------------
-- Who may
------------------------------------------------------------------------------
SELECT is(pg_temp.as_role('anon', $$SELECT agentmarket.create_credit_pack('free_money', 'x', 'topup', 1000000, 1)$$),
    'error 42501', 'anon cannot create a pack');
SELECT is(pg_temp.as_role('authenticated', $$SELECT agentmarket.change_credit_pack_price('topup_s', 1000000, 1)$$),
    'error 42501', 'a signed-in user cannot reprice a pack');
SELECT is(pg_temp.as_role('authenticated', $$SELECT agentmarket.withdraw_credit_pack('topup_s')$$),
    'error 42501', 'a signed-in user cannot withdraw a pack');
SELECT is(pg_temp.as_role('agentmarket_analyst', $$SELECT agentmarket.create_credit_pack('x', 'x', 'topup', 1, 1)$$),
    'error 42501', 'the analyst cannot create a pack');
SELECT set_eq('SELECT code, name, kind, credits, amount_cents, currency, active FROM agentmarket_private.credit_packs',
              'SELECT * FROM shipped', 'the refused calls changed nothing');
SELECT is(pg_temp.as_role('service_role', $$SELECT agentmarket.create_credit_pack('team', 'Team: 10,000 credits a month', 'subscription', 10000, 7900)::text$$),
    '{"code": "team", "kind": "subscription", "name": "Team: 10,000 credits a month", "active": true, "credits": 10000, "currency": "usd", "amount_cents": 7900}',
    'service_role creates a pack and gets it back');
SELECT is((SELECT code FROM agentmarket.credit_packs() WHERE code = 'team'), 'team', 'the new pack is on sale');

------------------------------------------------------------------------------
-- Bad input
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT agentmarket.create_credit_pack('Bad Code', 'x', 'topup', 10, 100)$$, '22023', NULL, 'a code with spaces and capitals is refused');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack(repeat('a', 41), 'x', 'topup', 10, 100)$$, '22023', NULL, 'a code over 40 characters is refused');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack(NULL, 'x', 'topup', 10, 100)$$, '22023', NULL, 'a null code is refused');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack('x', '', 'topup', 10, 100)$$, '22023', NULL, 'an empty name is refused');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack('x', repeat('n', 101), 'topup', 10, 100)$$, '22023', NULL, 'a name over 100 characters is refused');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack('x', 'x', 'gift', 10, 100)$$, '22023', NULL, 'an unknown kind is refused');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack('x', 'x', 'topup', 0, 100)$$, '22023', NULL, 'a pack of no credits is refused');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack('x', 'x', 'topup', -5, 100)$$, '22023', NULL, 'a pack of negative credits is refused');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack('x', 'x', 'topup', 10, 0)$$, '22023', NULL, 'a free pack is refused (credits for nothing are grants, not packs)');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack('x', 'x', 'topup', 10, 100000000)$$, '22023', NULL, 'a price above Stripe''s maximum is refused');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack('x', 'x', 'topup', 10, 100, 'US$')$$, '22023', NULL, 'a bad currency is refused');
SELECT throws_ok($$SELECT agentmarket.create_credit_pack('topup_s', 'again', 'topup', 10, 100)$$, '23505', NULL, 'a second pack with the code of one on sale is refused');
SELECT throws_ok($$SELECT agentmarket.change_credit_pack_price('nope', 10, 100)$$, 'P0002', NULL, 'repricing an unknown pack: P0002');
SELECT throws_ok($$SELECT agentmarket.change_credit_pack_price('topup_s', 10, -1)$$, '22023', NULL, 'a negative price is refused');
SELECT throws_ok($$SELECT agentmarket.withdraw_credit_pack('nope')$$, 'P0002', NULL, 'withdrawing an unknown pack: P0002');

------------------------------------------------------------------------------
-- Changing and withdrawing; purchases keep their terms
------------------------------------------------------------------------------
INSERT INTO users (id, email) VALUES ('00000000-0000-4000-8000-0000000a0c02', 'buyer@packs.example');
SELECT set_config('request.jwt.claims', '{"role": "authenticated", "sub": "00000000-0000-4000-8000-0000000a0c02"}', false) IS NOT NULL;
SET ROLE authenticated;
CREATE TEMP TABLE bought AS SELECT (agentmarket.buy_credits('topup_s')).*;
RESET ROLE;
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL;
SELECT is(agentmarket.change_credit_pack_price('topup_s', 600, 500) ->> 'credits', '600', 'the operator gives 600 credits for USD 5.00 from now on');
SELECT is((SELECT credits || ' ' || amount_cents FROM purchases WHERE id = (SELECT id FROM bought)), '500 500',
    'a purchase already made keeps the credits and price it was made at');
SELECT is(agentmarket.withdraw_credit_pack('topup_l') ->> 'active', 'false', 'the operator withdraws the large top-up');
SELECT is(agentmarket.withdraw_credit_pack('topup_l') ->> 'active', 'false', 'withdrawing it again is harmless');
SELECT ok(NOT EXISTS (SELECT FROM agentmarket.credit_packs() WHERE code = 'topup_l'), 'a withdrawn pack is not listed for sale');
SELECT set_config('request.jwt.claims', '{"role": "authenticated", "sub": "00000000-0000-4000-8000-0000000a0c02"}', false) IS NOT NULL;
SET ROLE authenticated;
SELECT throws_ok($$SELECT agentmarket.buy_credits('topup_l')$$, '22023', NULL, 'a withdrawn pack cannot be bought');
RESET ROLE;
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL;
SELECT agentmarket.set_machine_price('shared-cpu-2x', 1024, 0.0000025) IS NULL;
SELECT is((SELECT string_agg(format('%s %s %s %s', subject, key, action, changed_by), '; ' ORDER BY id) FROM agentmarket_private.price_audit),
    'credit_pack team create postgres; credit_pack topup_s change_price postgres; credit_pack topup_l withdraw postgres; machine_price shared-cpu-2x/1024 set postgres',
    'every change is audited once, in order, with who made it (the second withdrawal changed nothing)');
SELECT is((SELECT format('%s %s %s', old_value ->> 'credits', new_value ->> 'credits', jwt_role) FROM agentmarket_private.price_audit WHERE action = 'change_price'),
    '500 600 ', 'the audit keeps the terms before and after');
SELECT is((SELECT jwt_role || ' ' || jwt_sub FROM agentmarket_private.price_audit WHERE key = 'team'),
    'service_role 00000000-0000-4000-8000-0000000a0c01', 'a change through PostgREST records the JWT''s role and subject');

------------------------------------------------------------------------------
-- pg_dump | pg_restore
------------------------------------------------------------------------------
CREATE TABLE public.source_packs AS SELECT * FROM agentmarket_private.credit_packs;
CREATE TABLE public.source_audit AS SELECT * FROM agentmarket_private.price_audit;
CREATE TABLE public.source_prices AS SELECT * FROM agentmarket.machine_prices();
SELECT * FROM finish();
\! pg_dump -Fc -d am_packs_src | pg_restore --exit-on-error -d am_packs_dst && echo 'dump and restore ran'
\c am_packs_dst
SET client_min_messages = warning;
SET search_path = agentmarket, public;
SELECT plan(4);
SELECT set_eq('SELECT * FROM agentmarket_private.credit_packs', 'SELECT * FROM public.source_packs',
    'after the restore the packs are exactly the operator''s: the new one, the repriced and the withdrawn shipped ones, the rest as shipped');
SELECT is((SELECT count(*) FROM agentmarket_private.credit_packs), (SELECT count(*) FROM public.source_packs),
    'no pack is there twice');
SELECT set_eq('SELECT * FROM agentmarket_private.price_audit', 'SELECT * FROM public.source_audit', 'the audit comes back whole');
SELECT set_eq('SELECT * FROM agentmarket.machine_prices()', 'SELECT * FROM public.source_prices', 'the machine prices in effect are the same');
SELECT * FROM finish();
\c contrib_regression
DROP DATABASE am_packs_src;
DROP DATABASE am_packs_dst;
