-- earnings: the split of shared/DESIGN.md is exact.  gross = credits x 0.01;
-- creator = (gross - compute) x rate rounded down to 4 decimals, never below
-- 0; platform = gross - creator; creator + platform = gross always.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(21);

SELECT is((SELECT row(s.*)::text FROM split_earnings(100, 0.25, 0.85) s), '(1.0000,0.6375,0.3625)',
    '100 credits, $0.25 compute, 85 %: creator 0.6375, platform 0.3625');
SELECT is((SELECT row(s.*)::text FROM split_earnings(25, 0.012345, 0.85) s), '(0.2500,0.2020,0.0480)',
    'rounding is down to 4 decimals: 0.2020067... becomes 0.2020');
SELECT is((SELECT row(s.*)::text FROM split_earnings(1, 0.000001, 0.85) s), '(0.0100,0.0084,0.0016)',
    'one credit with a tiny cost');
SELECT is((SELECT row(s.*)::text FROM split_earnings(10, 0.5, 0.85) s), '(0.1000,0.0000,0.1000)',
    'compute above gross: the creator gets 0, never a negative amount');
SELECT is((SELECT row(s.*)::text FROM split_earnings(10, 0.1, 0.85) s), '(0.1000,0.0000,0.1000)',
    'compute equal to gross: the creator gets 0');
SELECT is((SELECT row(s.*)::text FROM split_earnings(0, 0, 0.85) s), '(0.0000,0.0000,0.0000)',
    'a free session earns nothing');
SELECT is((SELECT row(s.*)::text FROM split_earnings(333, 0, 1) s), '(3.3300,3.3300,0.0000)', 'rate 1 gives the creator all of the net');
SELECT is((SELECT row(s.*)::text FROM split_earnings(333, 0, 0) s), '(3.3300,0.0000,3.3300)', 'rate 0 gives the platform all');
SELECT is((SELECT row(s.*)::text FROM split_earnings(99999999, 9999.999999, 0.85) s), '(999999.9900,841499.9915,158499.9985)',
    'the largest values the columns hold are exact');
SELECT is((SELECT row(s.*)::text FROM split_earnings(7, 0.010000000, 0.850) s), '(0.0700,0.0510,0.0190)',
    'trailing zeros are not extra decimals');

-- An independent model in numeric arithmetic, over many random inputs.
SELECT setseed(0.4242);
CREATE TEMP TABLE cases AS
SELECT (random() * 100000)::int AS credits,
       round((random() * random() * 500)::numeric, 6) AS cost,
       round(random()::numeric, 2) AS rate
  FROM generate_series(1, 20000);
CREATE TEMP TABLE outcomes AS
SELECT c.*, s.*,
       c.credits * 0.01 AS model_gross,
       greatest(0, floor((c.credits * 0.01 - c.cost) * c.rate * 10000) / 10000) AS model_creator
  FROM cases c, split_earnings(c.credits, c.cost, c.rate) s;
SELECT is((SELECT count(*)::int FROM outcomes WHERE creator_amount + platform_amount <> gross_revenue), 0,
    'creator + platform = gross for 20,000 random splits');
SELECT is((SELECT count(*)::int FROM outcomes WHERE gross_revenue <> model_gross OR creator_amount <> model_creator), 0,
    'every random split equals the numeric model');
SELECT is((SELECT count(*)::int FROM outcomes WHERE creator_amount < 0 OR platform_amount < 0), 0,
    'no amount is ever negative');

-- Bad input: 22023, with the reason.
SELECT throws_ok($$SELECT split_earnings(-1, 0, 0.85)$$, '22023', 'credits must not be negative', 'negative credits are refused');
SELECT throws_ok($$SELECT split_earnings(1, -0.01, 0.85)$$, '22023', 'compute cost must not be negative', 'a negative cost is refused');
SELECT throws_ok($$SELECT split_earnings(1, 0.0000001, 0.85)$$, '22023', 'compute cost has more than 6 decimals', 'a cost finer than NUMERIC(10,6) is refused');
SELECT throws_ok($$SELECT split_earnings(1, 'NaN', 0.85)$$, '22023', 'compute cost must be a finite number', 'NaN is refused');
SELECT throws_ok($$SELECT split_earnings(1, 0, 1.01)$$, '22023', 'creator rate is out of range', 'a rate above 1 is refused');
SELECT throws_ok($$SELECT split_earnings(1, 0, 0.855)$$, '22023', 'creator rate has more than 2 decimals', 'a rate finer than NUMERIC(3,2) is refused');
SELECT throws_ok($$SELECT split_earnings(100000000, 0, 0.85)$$, '22023', 'credits are out of range', 'gross beyond NUMERIC(10,4) is refused');

-- The table itself refuses rows that do not add up.
INSERT INTO users (id, email) VALUES ('40000000-0000-4000-8000-000000000001', 'c@earn.example');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, github_repo_url, credits_per_session)
VALUES ('40000000-0000-4000-8000-0000000000a1', '40000000-0000-4000-8000-000000000001', 'earn', 'E', 't', 'd', 'research', 'https://x', 10);
SELECT throws_ok($$INSERT INTO creator_earnings (creator_id, agent_id, gross_revenue, compute_cost, creator_amount, platform_amount)
                   VALUES ('40000000-0000-4000-8000-000000000001', '40000000-0000-4000-8000-0000000000a1', 1, 0, 0.85, 0.16)$$,
    '23514', NULL, 'creator_earnings refuses a split that does not add up to gross');

SELECT * FROM finish();
ROLLBACK;
