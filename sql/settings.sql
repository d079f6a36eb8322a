-- settings: the settings store behind agentmarket.configure() (config.sql):
-- defaults, validation by kind and bounds, reset, who may configure and read,
-- and secrets stored encrypted (the settings row holds the secret's id).
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(29);

-- Settings store.
SELECT is(agentmarket_private.setting('creator_rate'), '0.85', 'creator_rate defaults to 0.85');
SELECT lives_ok($$SELECT agentmarket.configure('creator_rate', '0.80')$$, 'a valid value is accepted');
SELECT is(agentmarket_private.setting('creator_rate'), '0.80', 'the configured value is read back');
SELECT is((SELECT is_default FROM agentmarket.configuration() WHERE key = 'creator_rate'), false,
    'configuration() shows the key as changed');
SELECT lives_ok($$SELECT agentmarket.configure('creator_rate', NULL)$$, 'NULL resets a key');
SELECT is(agentmarket_private.setting('creator_rate'), '0.85', 'a reset key has its default again');
SELECT throws_ok($$SELECT agentmarket.configure('no_such_key', '1')$$, '22023', 'unknown setting "no_such_key"',
    'unknown keys are refused');
SELECT throws_ok($$SELECT agentmarket.configure('no_such_key', NULL)$$, '22023', 'unknown setting "no_such_key"',
    'unknown keys are refused on reset too');
SELECT throws_ok($$SELECT agentmarket.configure(NULL, '1')$$, '22023', NULL, 'a NULL key is refused');
SELECT throws_ok($$SELECT agentmarket.configure('creator_rate', 'lots')$$, '22023', NULL, 'a number must be a number');
SELECT throws_ok($$SELECT agentmarket.configure('creator_rate', '1.5')$$, '22023', NULL, 'creator_rate is at most 1');
SELECT throws_ok($$SELECT agentmarket.configure('creator_rate', '0.855')$$, '22023', NULL, 'creator_rate has two decimals (NUMERIC(3,2))');
SELECT throws_ok($$SELECT agentmarket.configure('free_trial_credits', '2.5')$$, '22023', NULL, 'an integer key takes whole numbers');
SELECT throws_ok($$SELECT agentmarket.configure('free_trial_credits', '-1')$$, '22023', NULL, 'free_trial_credits is not negative');
SELECT throws_ok($$SELECT agentmarket.configure('payout_minimum_usd', 'NaN')$$, '22023', NULL, 'NaN is not a number here');
SELECT throws_ok($$SELECT agentmarket.configure('stripe_webhook_secret', 'hunter2')$$, '22023', NULL, 'a webhook secret must look like whsec_...');
SELECT lives_ok($$SELECT agentmarket.configure('stripe_webhook_secret', 'whsec_abc123')$$, 'a webhook secret is stored');
SELECT is((SELECT value FROM agentmarket.configuration() WHERE key = 'stripe_webhook_secret'), '(set)',
    'configuration() never shows a secret');
SELECT is((SELECT count(*)::int FROM agentmarket_private.settings WHERE key = 'stripe_webhook_secret'), 1,
    'the secret is in the private settings table');

SET LOCAL ROLE service_role;
SELECT lives_ok($$SELECT agentmarket.configure('idle_suspend_minutes', '30')$$, 'service_role may configure');
RESET ROLE;
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT agentmarket.configure('idle_suspend_minutes', '30')$$, '42501', NULL,
    'authenticated may not configure');
SELECT throws_ok($$SELECT * FROM agentmarket_private.settings$$, '42501', NULL,
    'authenticated cannot read the settings table');
RESET ROLE;
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT * FROM agentmarket.configuration()$$, '42501', NULL,
    'anon cannot list the configuration');
RESET ROLE;

-- A secret setting is stored encrypted (secrets.sql): its row holds the id of
-- its ciphertext, the webhook handler reads the value decrypted.
SELECT is((SELECT x.secret LIKE '-----BEGIN PGP MESSAGE-----%' FROM agentmarket_private.settings s
             JOIN agentmarket_private.secrets x ON x.id::text = s.value WHERE s.key = 'stripe_webhook_secret'), true,
    'the settings row holds the id of the secret''s ciphertext, not the value');
SELECT is(agentmarket_private.setting('stripe_webhook_secret'), 'whsec_abc123', 'setting() reads the secret decrypted');
SELECT is(pg_temp.rows_containing('whsec_abc123'), 0::bigint, 'the secret''s value is in no row of the extension''s tables');
SELECT is((SELECT value FROM agentmarket_private.settings WHERE key = 'stripe_webhook_secret') ||
          (SELECT count(*)::text FROM agentmarket_private.secrets WHERE name = 'setting/stripe_webhook_secret'),
          (SELECT value FROM agentmarket_private.settings WHERE key = 'stripe_webhook_secret') || '1',
    'one secret per key');
SELECT agentmarket.configure('stripe_webhook_secret', 'whsec_def456');
SELECT is(agentmarket_private.setting('stripe_webhook_secret'), 'whsec_def456',
    'a new value replaces the old one under the same id');
SELECT agentmarket.configure('stripe_webhook_secret', NULL);
SELECT is((SELECT count(*)::int FROM agentmarket_private.secrets WHERE name = 'setting/stripe_webhook_secret'), 0,
    'a reset secret leaves no ciphertext behind');

SELECT * FROM finish();
ROLLBACK;
