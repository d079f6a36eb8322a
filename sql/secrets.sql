-- secrets: SSH private keys are stored encrypted only (pgcrypto under the key
-- of agentmarket.secret_key_file, or Supabase Vault when installed), read back
-- by the instance's owner and the platform only, re-encrypted on rotation and
-- deleted with their config and instance; without a key nothing is stored.
-- (test/suites/secrets_at_rest checks pg_dump output and the server log.)
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(54);

INSERT INTO users (id, email, role) VALUES
  ('70000000-0000-4000-8000-00000000c001', 'creator@secrets.example', 'creator'),
  ('70000000-0000-4000-8000-00000000e001', 'owner@secrets.example', 'user'),
  ('70000000-0000-4000-8000-00000000e002', 'other@secrets.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, github_repo_url) VALUES
  ('70000000-0000-4000-8000-0000000000a1', '70000000-0000-4000-8000-00000000c001', 'secrets-agent', 'S', 't', 'd',
   'research', 'published', 'https://x/s'),
  ('70000000-0000-4000-8000-0000000000a2', '70000000-0000-4000-8000-00000000c001', 'secrets-agent-2', 'S2', 't', 'd',
   'research', 'published', 'https://x/s2');
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('70000000-0000-4000-8000-0000000000d1', '70000000-0000-4000-8000-00000000e001', '70000000-0000-4000-8000-0000000000a1', 'am-s1', 'm1', 'running'),
  ('70000000-0000-4000-8000-0000000000d2', '70000000-0000-4000-8000-00000000e001', '70000000-0000-4000-8000-0000000000a2', 'am-s2', 'm2', 'running'),
  ('70000000-0000-4000-8000-0000000000d3', '70000000-0000-4000-8000-00000000e002', '70000000-0000-4000-8000-0000000000a1', 'am-s3', 'm3', 'running');

CREATE FUNCTION pg_temp.pem(body text) RETURNS text LANGUAGE sql AS $$
    SELECT E'-----BEGIN OPENSSH PRIVATE KEY-----\n' || body || E'\n-----END OPENSSH PRIVATE KEY-----\n'
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;
CREATE TEMP TABLE saved (name text PRIMARY KEY, value text);
GRANT ALL ON saved TO PUBLIC;

-- The owner stores a key.
SELECT pg_temp.act('authenticated', '70000000-0000-4000-8000-00000000e001');
SELECT lives_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d1', 's1.internal', 2222, 'agent',
                                        pg_temp.pem('T1BFTlNTSC1tYXJrZXItb25l'), 'SHA256:' || repeat('A', 43))$$,
    'the owner sets the SSH config of their instance');
SELECT is(get_ssh_private_key('70000000-0000-4000-8000-0000000000d1'), pg_temp.pem('T1BFTlNTSC1tYXJrZXItb25l'),
    'the owner reads the private key back exactly');
SELECT is((SELECT port || ' ' || username FROM ssh_configs WHERE instance_id = '70000000-0000-4000-8000-0000000000d1'),
    '2222 agent', 'the owner sees the config (without the key)');
RESET role;
SELECT is(pg_temp.rows_containing('T1BFTlNTSC1tYXJrZXItb25l'), 0::bigint,
    'the private key is in no row of any table of the extension');
SELECT ok((SELECT s.secret LIKE '-----BEGIN PGP MESSAGE-----%' AND s.storage = 'pgcrypto' AND s.key_id ~ '^[0-9a-f]{16}$'
             FROM ssh_configs c JOIN agentmarket_private.secrets s ON s.id = c.private_key_secret_id
            WHERE c.instance_id = '70000000-0000-4000-8000-0000000000d1'),
    'the secrets row holds OpenPGP ciphertext and the id of its key');
SELECT throws_ok($$INSERT INTO agentmarket_private.secrets (name, secret) VALUES ('clear', 'hunter2')$$, '23514', NULL,
    'a secret in clear cannot be stored, not even by hand');
INSERT INTO saved SELECT 'secret_id', private_key_secret_id::text FROM ssh_configs WHERE instance_id = '70000000-0000-4000-8000-0000000000d1';
INSERT INTO saved SELECT 'ciphertext', s.secret FROM agentmarket_private.secrets s WHERE s.id = (SELECT value::uuid FROM saved WHERE name = 'secret_id');

-- Others.
SELECT pg_temp.act('authenticated', '70000000-0000-4000-8000-00000000e002');
SELECT throws_ok($$SELECT get_ssh_private_key('70000000-0000-4000-8000-0000000000d1')$$, 'P0002',
    'instance 70000000-0000-4000-8000-0000000000d1 not found', 'another user cannot read the key');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d1', 'evil.example', 22, 'agent',
                                         pg_temp.pem('ZXZpbA=='), 'SHA256:' || repeat('E', 43))$$, 'P0002', NULL,
    'another user cannot replace the config');
SELECT throws_ok($$SELECT delete_ssh_config('70000000-0000-4000-8000-0000000000d1')$$, 'P0002', NULL,
    'another user cannot delete the config');
SELECT is((SELECT count(*)::int FROM ssh_configs), 0, 'another user sees no SSH config of others');
SELECT throws_ok($$SELECT get_ssh_private_key(gen_random_uuid())$$, 'P0002', NULL, 'an unknown instance is not found');
SELECT throws_ok($$SELECT get_ssh_private_key(NULL)$$, '22023', NULL, 'a NULL instance is a bad argument');
SELECT throws_ok($$SELECT agentmarket_private.get_secret((SELECT value::uuid FROM saved WHERE name = 'secret_id'))$$, '42501', NULL,
    'a user cannot call the private secret functions');
SELECT throws_ok($$SELECT secret FROM agentmarket_private.secrets$$, '42501', NULL, 'a user cannot read the secrets table');
SELECT pg_temp.act('anon');
SELECT throws_ok($$SELECT get_ssh_private_key('70000000-0000-4000-8000-0000000000d1')$$, '42501', NULL,
    'anon cannot read a key');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d1', 'h', 22, 'agent',
                                         pg_temp.pem('YQ=='), 'SHA256:' || repeat('A', 43))$$, '42501', NULL,
    'anon cannot set a config');
SELECT pg_temp.act('service_role');
SELECT is(get_ssh_private_key('70000000-0000-4000-8000-0000000000d1'), pg_temp.pem('T1BFTlNTSC1tYXJrZXItb25l'),
    'the platform (service_role) reads the key');
SELECT throws_ok($$SELECT agentmarket_private.secret_key()$$, '42501', NULL, 'service_role cannot read the encryption key');
SELECT throws_ok($$SELECT agentmarket_private.get_secret((SELECT value::uuid FROM saved WHERE name = 'secret_id'))$$, '42501', NULL,
    'service_role reads secrets only through the functions that check ownership');
SELECT throws_ok($$SELECT secret FROM agentmarket_private.secrets$$, '42501', NULL, 'service_role cannot read the secrets table');
SELECT throws_ok($$SHOW agentmarket.secret_key_file$$, '42501', NULL, 'where the key is is for superusers only');
RESET role;

-- Bad input: 22023, nothing written, the key never echoed.
SELECT pg_temp.act('authenticated', '70000000-0000-4000-8000-00000000e001');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 'bad host!', 22, 'agent',
                   pg_temp.pem('YQ=='), 'SHA256:' || repeat('A', 43))$$, '22023', 'invalid SSH host', 'a bad host is refused');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 'h', 0, 'agent',
                   pg_temp.pem('YQ=='), 'SHA256:' || repeat('A', 43))$$, '22023', NULL, 'port 0 is refused');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 'h', 65536, 'agent',
                   pg_temp.pem('YQ=='), 'SHA256:' || repeat('A', 43))$$, '22023', NULL, 'port 65536 is refused');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 'h', 22, 'Root; rm',
                   pg_temp.pem('YQ=='), 'SHA256:' || repeat('A', 43))$$, '22023', 'invalid SSH user name', 'a bad user name is refused');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 'h', 22, 'agent',
                   pg_temp.pem('YQ=='), 'MD5:aa:bb')$$, '22023', 'invalid host key fingerprint', 'a bad fingerprint is refused');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 'h', 22, 'agent',
                   'hunter2-not-a-key', 'SHA256:' || repeat('A', 43))$$, '22023', 'invalid SSH private key',
    'a value that is not a private key is refused, and not echoed');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 'h', 22, 'agent',
                   pg_temp.pem(repeat('A', 17000)), 'SHA256:' || repeat('A', 43))$$, '22023', NULL, 'a key over 16 kB is refused');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 'h', 22, 'agent',
                   NULL, 'SHA256:' || repeat('A', 43))$$, '22023', NULL, 'a NULL key is refused');
SELECT is((SELECT count(*)::int FROM ssh_configs WHERE instance_id = '70000000-0000-4000-8000-0000000000d2'), 0,
    'refused calls wrote nothing');

-- Rotation: the same secret, a fresh ciphertext, the new key.
SELECT lives_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d1', 's1.internal', 22, 'agent',
                                        pg_temp.pem('cm90YXRlZC1rZXktdHdv'), 'SHA256:' || repeat('B', 43))$$,
    'the owner rotates the key');
SELECT is(get_ssh_private_key('70000000-0000-4000-8000-0000000000d1'), pg_temp.pem('cm90YXRlZC1rZXktdHdv'),
    'the new key is read back');
RESET role;
SELECT is((SELECT private_key_secret_id::text FROM ssh_configs WHERE instance_id = '70000000-0000-4000-8000-0000000000d1'),
    (SELECT value FROM saved WHERE name = 'secret_id'), 'rotation keeps the secret''s id');
SELECT isnt((SELECT secret FROM agentmarket_private.secrets WHERE id = (SELECT value::uuid FROM saved WHERE name = 'secret_id')),
    (SELECT value FROM saved WHERE name = 'ciphertext'), 'rotation re-encrypts: the ciphertext changed');
SELECT is(pg_temp.rows_containing('T1BFTlNTSC1tYXJrZXItb25l') + pg_temp.rows_containing('cm90YXRlZC1rZXktdHdv'), 0::bigint,
    'neither the old nor the new key is in any table');
SELECT is((SELECT count(*)::int FROM agentmarket_private.secrets), 1, 'rotation leaves one secret, not two');

-- Without a key nothing is stored.
SET agentmarket.secret_key_file = '';
SELECT pg_temp.act('authenticated', '70000000-0000-4000-8000-00000000e001');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 'h', 22, 'agent',
                   pg_temp.pem('bm8ta2V5'), 'SHA256:' || repeat('A', 43))$$, '55000', 'no secret key is configured',
    'without a key, storing a secret is refused');
RESET role;
SELECT is((SELECT count(*)::int FROM ssh_configs WHERE instance_id = '70000000-0000-4000-8000-0000000000d2'), 0,
    '... and nothing was written');
SET agentmarket.secret_key_file = '/nonexistent/agentmarket.key';
SELECT throws_ok($$SELECT agentmarket_private.secret_key()$$, '55000', NULL, 'a missing key file is refused');
RESET agentmarket.secret_key_file;
INSERT INTO saved VALUES ('key_file', current_setting('agentmarket.secret_key_file'));
-- Key files beside the cluster's own (scripts/with-cluster), readable by the server only ...
\! sh -c 'umask 077; d=$(dirname "$AGENTMARKET_SECRET_KEY_FILE"); printf %s too-short-key > "$d/short.key"; printf "%s\n" another-key-of-forty-characters-xxxxxxxx > "$d/other.key"; if [ "$(id -u)" = 0 ]; then chown postgres "$d/short.key" "$d/other.key"; fi'
SELECT set_config('agentmarket.secret_key_file', regexp_replace((SELECT value FROM saved WHERE name = 'key_file'), '[^/]*$', 'short.key'), false) \gset ignored_
SELECT throws_ok($$SELECT agentmarket_private.secret_key()$$, '55000', NULL, 'a key under 32 characters is refused');
-- ... and one the server writes with COPY (mode 644).
DO $$ BEGIN
    EXECUTE format($f$COPY (SELECT 'another-key-of-forty-characters-xxxxxxxx') TO %L$f$,
                   current_setting('data_directory') || '/am_test_world.key');
END $$;
SELECT set_config('agentmarket.secret_key_file', current_setting('data_directory') || '/am_test_world.key', false) \gset ignored_
SELECT throws_ok($$SELECT agentmarket_private.secret_key()$$, '55000',
    'secret key file "' || current_setting('data_directory') || '/am_test_world.key" is accessible to other users',
    'a key file other users may read is refused');

-- Another key: what was stored under the old one is refused, then rotated.
SELECT set_config('agentmarket.secret_key_file', regexp_replace((SELECT value FROM saved WHERE name = 'key_file'), '[^/]*$', 'other.key'), false) \gset ignored_
SELECT throws_ok($$SELECT get_ssh_private_key('70000000-0000-4000-8000-0000000000d1')$$, '55000',
    'secret ' || (SELECT value FROM saved WHERE name = 'secret_id') || ' was encrypted under another key',
    'a secret made under another key is refused with a clear error');
SELECT is(rotate_secret_key((SELECT value FROM saved WHERE name = 'key_file')), 1,
    'rotate_secret_key re-encrypts every secret made under the old key');
SELECT is(get_ssh_private_key('70000000-0000-4000-8000-0000000000d1'), pg_temp.pem('cm90YXRlZC1rZXktdHdv'),
    'after rotation the new key reads it');
SELECT is(rotate_secret_key((SELECT value FROM saved WHERE name = 'key_file')), 0, 'a second rotation has nothing to do');
SELECT pg_temp.act('service_role');
SELECT throws_ok($$SELECT rotate_secret_key('/tmp/x')$$, '42501', NULL, 'only a superuser rotates the key');
RESET role;
SELECT set_config('agentmarket.secret_key_file', (SELECT value FROM saved WHERE name = 'key_file'), false) \gset ignored_
SELECT is(rotate_secret_key(regexp_replace((SELECT value FROM saved WHERE name = 'key_file'), '[^/]*$', 'other.key')), 1,
    'rotating back to the first key');

-- Supabase Vault, when present, holds the value instead (a stand-in with its API).
CREATE SCHEMA vault;
CREATE TABLE vault.secrets (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text UNIQUE, description text,
                            secret text NOT NULL);
CREATE FUNCTION vault.create_secret(new_secret text, new_name text DEFAULT NULL, new_description text DEFAULT '')
RETURNS uuid LANGUAGE sql AS $$
    INSERT INTO vault.secrets (name, description, secret) VALUES (new_name, new_description, reverse(new_secret)) RETURNING id
$$;
CREATE FUNCTION vault.update_secret(secret_id uuid, new_secret text DEFAULT NULL, new_name text DEFAULT NULL,
                                    new_description text DEFAULT NULL, new_key_id uuid DEFAULT NULL)
RETURNS void LANGUAGE sql AS $$
    UPDATE vault.secrets SET secret = COALESCE(reverse(new_secret), secret) WHERE id = secret_id
$$;
CREATE VIEW vault.decrypted_secrets AS SELECT id, name, description, reverse(secret) AS decrypted_secret FROM vault.secrets;
-- The role that runs the extension's definer functions manages its secrets
-- there, as a Supabase operator grants it (footer.sql, README).
GRANT USAGE ON SCHEMA vault TO agentmarket_definer;
GRANT ALL ON ALL TABLES IN SCHEMA vault TO agentmarket_definer;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA vault TO agentmarket_definer;
SELECT pg_temp.act('authenticated', '70000000-0000-4000-8000-00000000e001');
SELECT lives_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 's2.internal', 22, 'agent',
                                        pg_temp.pem('dmF1bHQta2V5'), 'SHA256:' || repeat('C', 43))$$,
    'with Vault installed the owner sets a config');
SELECT is(get_ssh_private_key('70000000-0000-4000-8000-0000000000d2'), pg_temp.pem('dmF1bHQta2V5'),
    'the key is read back through vault.decrypted_secrets');
RESET role;
SELECT ok((SELECT s.storage = 'vault' AND s.secret = 'vault:' || v.id AND v.secret = reverse(pg_temp.pem('dmF1bHQta2V5'))
             FROM ssh_configs c JOIN agentmarket_private.secrets s ON s.id = c.private_key_secret_id
             JOIN vault.secrets v ON 'vault:' || v.id = s.secret
            WHERE c.instance_id = '70000000-0000-4000-8000-0000000000d2'),
    'the value went into Vault; the row keeps only the Vault id');
SELECT pg_temp.act('authenticated', '70000000-0000-4000-8000-00000000e001');
SELECT is(get_ssh_private_key('70000000-0000-4000-8000-0000000000d1'), pg_temp.pem('cm90YXRlZC1rZXktdHdv'),
    'a pgcrypto secret made before Vault was installed still reads');
SELECT lives_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d2', 's2.internal', 22, 'agent',
                                        pg_temp.pem('dmF1bHQtcm90YXRlZA=='), 'SHA256:' || repeat('C', 43))$$,
    'rotation of a Vault secret');
SELECT is(get_ssh_private_key('70000000-0000-4000-8000-0000000000d2'), pg_temp.pem('dmF1bHQtcm90YXRlZA=='),
    '... updates it in Vault');
SELECT is(delete_ssh_config('70000000-0000-4000-8000-0000000000d2'), true, 'the owner deletes the config');
RESET role;
SELECT is((SELECT count(*)::int FROM vault.secrets), 0, 'deleting the config deletes the Vault secret');
DROP SCHEMA vault CASCADE;

-- Deletion with the config and with the instance.
SELECT is((SELECT count(*)::int FROM agentmarket_private.secrets), 1, 'one secret is left (instance d1)');
UPDATE agent_instances SET status = 'destroyed' WHERE id = '70000000-0000-4000-8000-0000000000d1';
SELECT is((SELECT count(*)::int FROM ssh_configs) + (SELECT count(*)::int FROM agentmarket_private.secrets), 0,
    'a destroyed instance loses its SSH config and key');
SELECT pg_temp.act('service_role');
SELECT throws_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d1', 'h', 22, 'agent',
                   pg_temp.pem('YQ=='), 'SHA256:' || repeat('A', 43))$$, '22023', NULL,
    'a destroyed instance takes no new SSH config');
SELECT lives_ok($$SELECT set_ssh_config('70000000-0000-4000-8000-0000000000d3', 'h', 22, 'agent',
                   pg_temp.pem('YQ=='), 'SHA256:' || repeat('A', 43))$$, 'the platform sets a config on any instance');
RESET role;
DELETE FROM agent_instances WHERE id = '70000000-0000-4000-8000-0000000000d3';
SELECT is((SELECT count(*)::int FROM agentmarket_private.secrets), 0, 'a deleted instance takes its key along');

SELECT * FROM finish();
ROLLBACK;
