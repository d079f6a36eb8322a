-- secrets.sql: secrets encrypted at rest, and the SSH access of an instance.
--
-- agentmarket_private.secrets never holds a value in clear.  With Supabase
-- Vault installed (schema vault), the value goes into Vault and the row keeps
-- its Vault id; otherwise pgcrypto encrypts it (OpenPGP, AES-256) under the key
-- in the file named by the server setting agentmarket.secret_key_file
-- (secrets.c), which is in no table and no dump.  With neither, storing a
-- secret is refused.  A CHECK makes a row without ciphertext impossible.

------------------------------------------------------------------------------
-- pgcrypto, bound directly: the functions of contrib's pgcrypto library,
-- declared here so that no pgcrypto extension (and no schema of it) is needed.
------------------------------------------------------------------------------
CREATE FUNCTION agentmarket_private.pgp_sym_encrypt(data text, key text, options text) RETURNS bytea
AS '$libdir/pgcrypto', 'pgp_sym_encrypt_text' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.pgp_sym_encrypt(text, text, text) IS
    'pgcrypto''s pgp_sym_encrypt(text, text, text): OpenPGP symmetric encryption.';
CREATE FUNCTION agentmarket_private.pgp_sym_decrypt(data bytea, key text) RETURNS text
AS '$libdir/pgcrypto', 'pgp_sym_decrypt_text' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.pgp_sym_decrypt(bytea, text) IS
    'pgcrypto''s pgp_sym_decrypt(bytea, text).';
CREATE FUNCTION agentmarket_private.pgp_armor(data bytea) RETURNS text
AS '$libdir/pgcrypto', 'pg_armor' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.pgp_armor(bytea) IS 'pgcrypto''s armor(bytea): ASCII-armored OpenPGP.';
CREATE FUNCTION agentmarket_private.pgp_dearmor(data text) RETURNS bytea
AS '$libdir/pgcrypto', 'pg_dearmor' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.pgp_dearmor(text) IS 'pgcrypto''s dearmor(text).';

-- The key (secrets.c).  Nobody but the extension owner may call these.
CREATE FUNCTION agentmarket_private.secret_key(path text DEFAULT NULL) RETURNS text
AS 'MODULE_PATHNAME', 'secret_key' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmarket_private.secret_key(text) IS
    'The key in agentmarket.secret_key_file (or in the file path names); 55000 when unset or unusable. Extension owner only.';
CREATE FUNCTION agentmarket_private.secret_key_configured() RETURNS boolean
AS 'MODULE_PATHNAME', 'secret_key_configured' LANGUAGE C STABLE;
COMMENT ON FUNCTION agentmarket_private.secret_key_configured() IS
    'Whether agentmarket.secret_key_file is set.';

-- A short fingerprint of a key, stored with each ciphertext so that a secret
-- encrypted under another key is recognised (and re-encrypted on rotation).
CREATE FUNCTION agentmarket_private.secret_key_id(key text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(
        pg_catalog.convert_to('agentmarket secret key id:' OPERATOR(pg_catalog.||) key, 'UTF8')), 'hex'), 16)
$$;
COMMENT ON FUNCTION agentmarket_private.secret_key_id(text) IS
    'Fingerprint of a key (16 hex digits of a SHA-256): tells which key a ciphertext needs, reveals nothing of it.';

CREATE FUNCTION agentmarket_private.vault_available() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.to_regprocedure('vault.create_secret(text,text,text)') IS NOT NULL
       AND pg_catalog.to_regclass('vault.decrypted_secrets') IS NOT NULL
$$;
COMMENT ON FUNCTION agentmarket_private.vault_available() IS
    'True when Supabase Vault (vault.create_secret, vault.decrypted_secrets) is installed: secrets then go there.';

------------------------------------------------------------------------------
-- The table: ciphertext or a Vault reference, never the value
------------------------------------------------------------------------------
ALTER TABLE agentmarket_private.secrets
  ADD COLUMN storage TEXT NOT NULL DEFAULT 'pgcrypto'
    CONSTRAINT secrets_storage_check CHECK (storage IN ('pgcrypto', 'vault')),
  ADD COLUMN key_id TEXT,
  ADD CONSTRAINT secrets_never_plaintext CHECK (
    CASE storage
      WHEN 'pgcrypto' THEN secret LIKE '-----BEGIN PGP MESSAGE-----%' AND key_id ~ '^[0-9a-f]{16}$'
      ELSE secret ~ '^vault:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' AND key_id IS NULL
    END);
COMMENT ON COLUMN agentmarket_private.secrets.secret IS
    'Never the value: its ASCII-armored pgcrypto ciphertext, or vault:<id> of the Supabase Vault secret that holds it.';
COMMENT ON COLUMN agentmarket_private.secrets.storage IS 'pgcrypto (under agentmarket.secret_key_file) or vault.';
COMMENT ON COLUMN agentmarket_private.secrets.key_id IS
    'pgcrypto: fingerprint of the key the ciphertext was made with (agentmarket_private.secret_key_id).';

-- Stores (p_id NULL) or replaces (p_id given: rotation, a fresh ciphertext)
-- a secret's value; returns its id.
CREATE FUNCTION agentmarket_private.put_secret(p_name text, p_value text, p_description text DEFAULT NULL,
                                               p_id uuid DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old agentmarket_private.secrets;
    key text;
    stored text;
    vault_id uuid;
    new_id uuid;
BEGIN
    IF p_value IS NULL OR p_value OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a secret must not be empty' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.octet_length(p_value) OPERATOR(pg_catalog.>) 65536 THEN
        RAISE EXCEPTION 'a secret must not exceed 64 kB' USING ERRCODE = '22023';
    END IF;
    IF p_id IS NOT NULL THEN
        SELECT * INTO old FROM agentmarket_private.secrets s WHERE s.id OPERATOR(pg_catalog.=) p_id FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'secret % not found', p_id USING ERRCODE = 'P0002';
        END IF;
    END IF;

    IF old.storage OPERATOR(pg_catalog.=) 'vault'
       OR (old.id IS NULL AND agentmarket_private.vault_available()) THEN
        IF old.id IS NOT NULL THEN
            vault_id := pg_catalog.substr(old.secret, 7)::uuid;
            PERFORM vault.update_secret(vault_id, p_value);
            RETURN old.id;
        END IF;
        vault_id := vault.create_secret(p_value, 'agentmarket/' || p_name OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) pg_catalog.gen_random_uuid()::text, p_description);
        INSERT INTO agentmarket_private.secrets (name, secret, description, storage)
        VALUES (p_name, 'vault:' OPERATOR(pg_catalog.||) vault_id::text, p_description, 'vault')
        RETURNING id INTO new_id;
        RETURN new_id;
    END IF;

    key := agentmarket_private.secret_key();
    stored := agentmarket_private.pgp_armor(
        agentmarket_private.pgp_sym_encrypt(p_value, key, 'cipher-algo=aes256, compress-algo=0'));
    IF old.id IS NOT NULL THEN
        UPDATE agentmarket_private.secrets s
           SET secret = stored, storage = 'pgcrypto', key_id = agentmarket_private.secret_key_id(key)
         WHERE s.id OPERATOR(pg_catalog.=) old.id;
        RETURN old.id;
    END IF;
    INSERT INTO agentmarket_private.secrets (name, secret, description, storage, key_id)
    VALUES (p_name, stored, p_description, 'pgcrypto', agentmarket_private.secret_key_id(key))
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION agentmarket_private.put_secret(text, text, text, uuid) IS
    'Stores a secret encrypted (Supabase Vault when installed, else pgcrypto under agentmarket.secret_key_file) and returns its id; with an id, replaces that secret''s value. 55000 when no key is configured.';

-- The value of a secret.
CREATE FUNCTION agentmarket_private.get_secret(p_id uuid)
RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s agentmarket_private.secrets;
    key text;
    value text;
BEGIN
    SELECT * INTO s FROM agentmarket_private.secrets x WHERE x.id OPERATOR(pg_catalog.=) p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'secret % not found', p_id USING ERRCODE = 'P0002';
    END IF;
    IF s.storage OPERATOR(pg_catalog.=) 'vault' THEN
        IF NOT agentmarket_private.vault_available() THEN
            RAISE EXCEPTION 'secret % is kept in Supabase Vault, which is not installed', p_id USING ERRCODE = '55000';
        END IF;
        SELECT d.decrypted_secret INTO value FROM vault.decrypted_secrets d
         WHERE d.id OPERATOR(pg_catalog.=) pg_catalog.substr(s.secret, 7)::uuid;
        IF value IS NULL THEN
            RAISE EXCEPTION 'secret % is missing from Supabase Vault', p_id USING ERRCODE = 'P0002';
        END IF;
        RETURN value;
    END IF;
    key := agentmarket_private.secret_key();
    IF agentmarket_private.secret_key_id(key) OPERATOR(pg_catalog.<>) s.key_id THEN
        RAISE EXCEPTION 'secret % was encrypted under another key', p_id
            USING ERRCODE = '55000',
                  DETAIL = pg_catalog.format('It needs the key with id %s; agentmarket.secret_key_file holds key %s.',
                                             s.key_id, agentmarket_private.secret_key_id(key)),
                  HINT = 'Restore with the key the secrets were made with, or re-encrypt them with agentmarket.rotate_secret_key(old_key_file).';
    END IF;
    RETURN agentmarket_private.pgp_sym_decrypt(agentmarket_private.pgp_dearmor(s.secret), key);
END
$$;
COMMENT ON FUNCTION agentmarket_private.get_secret(uuid) IS
    'Decrypts a secret (from Vault or pgcrypto); 55000 when it needs a key the server does not have.';

-- A deleted row takes its Vault secret along.
CREATE FUNCTION agentmarket_private.drop_vault_secret() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF OLD.storage OPERATOR(pg_catalog.=) 'vault' AND agentmarket_private.vault_available() THEN
        DELETE FROM vault.secrets v WHERE v.id OPERATOR(pg_catalog.=) pg_catalog.substr(OLD.secret, 7)::uuid;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.drop_vault_secret() IS
    'Trigger: deleting a secrets row deletes the Vault secret it refers to.';
CREATE TRIGGER secrets_drop_vault_secret AFTER DELETE ON agentmarket_private.secrets
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.drop_vault_secret();

-- Operators: re-encrypt every pgcrypto secret made under the key in
-- old_key_file with the key now in agentmarket.secret_key_file.
CREATE FUNCTION agentmarket.rotate_secret_key(old_key_file text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_key text;
    new_key text := agentmarket_private.secret_key();
    old_id text;
    new_id text := agentmarket_private.secret_key_id(new_key);
    n integer;
BEGIN
    IF old_key_file IS NULL OR old_key_file OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'old key file must be given' USING ERRCODE = '22023';
    END IF;
    old_key := agentmarket_private.secret_key(old_key_file);
    old_id := agentmarket_private.secret_key_id(old_key);
    UPDATE agentmarket_private.secrets s
       SET secret = agentmarket_private.pgp_armor(agentmarket_private.pgp_sym_encrypt(
               agentmarket_private.pgp_sym_decrypt(agentmarket_private.pgp_dearmor(s.secret), old_key),
               new_key, 'cipher-algo=aes256, compress-algo=0')),
           key_id = new_id
     WHERE s.storage OPERATOR(pg_catalog.=) 'pgcrypto' AND s.key_id OPERATOR(pg_catalog.=) old_id
       AND old_id OPERATOR(pg_catalog.<>) new_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket.rotate_secret_key(text) IS
    'Superuser: re-encrypts every secret made under the key in old_key_file with the key of agentmarket.secret_key_file; returns how many.';

------------------------------------------------------------------------------
-- The caller's instance
------------------------------------------------------------------------------

-- The owner check of every RPC that acts on a user's row (an instance, its
-- relay connections, SSH access, team): the caller is the owner, or the
-- platform (service_role) where p_platform_ok.  A row that fails it is
-- reported as not found (P0002), so other users' rows do not exist for them.
CREATE FUNCTION agentmarket_private.caller_owns(p_owner uuid, p_platform_ok boolean DEFAULT true)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (p_platform_ok AND agentmarket_private.caller_is_service())
        OR COALESCE(p_owner OPERATOR(pg_catalog.=) agentmarket.current_user_id(), false)
$$;
COMMENT ON FUNCTION agentmarket_private.caller_owns(uuid, boolean) IS
    'True when the caller is the user p_owner, or service_role when p_platform_ok: the owner check of the instance, relay, SSH and team RPCs.';

-- The instance, locked as asked, if the caller passes the owner check (the
-- platform too unless p_platform_ok is false); P0002 otherwise.  Another
-- user's instance is never locked.
CREATE FUNCTION agentmarket_private.instance_for_caller(p_instance_id uuid, p_lock boolean DEFAULT true,
                                                        p_platform_ok boolean DEFAULT true)
RETURNS agentmarket.agent_instances
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inst agentmarket.agent_instances;
BEGIN
    IF p_instance_id IS NULL THEN
        RAISE EXCEPTION 'instance id must not be null' USING ERRCODE = '22023';
    END IF;
    IF p_lock THEN
        SELECT * INTO inst FROM agentmarket.agent_instances i
         WHERE i.id OPERATOR(pg_catalog.=) p_instance_id AND agentmarket_private.caller_owns(i.user_id, p_platform_ok)
           FOR UPDATE;
    ELSE
        SELECT * INTO inst FROM agentmarket.agent_instances i
         WHERE i.id OPERATOR(pg_catalog.=) p_instance_id AND agentmarket_private.caller_owns(i.user_id, p_platform_ok);
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'instance % not found', p_instance_id USING ERRCODE = 'P0002';
    END IF;
    RETURN inst;
END
$$;
COMMENT ON FUNCTION agentmarket_private.instance_for_caller(uuid, boolean, boolean) IS
    'The instance (locked FOR UPDATE unless asked not to) if the caller owns it or, unless p_platform_ok is false, is service_role; 22023 for a NULL id, P0002 otherwise.';

------------------------------------------------------------------------------
-- SSH access
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.set_ssh_config(instance_id uuid, host text, port integer, username text,
                                           private_key text, host_key_fingerprint text)
RETURNS agentmarket.ssh_configs
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    inst agentmarket.agent_instances := agentmarket_private.instance_for_caller(set_ssh_config.instance_id);
    cfg agentmarket.ssh_configs;
    secret_id uuid;
BEGIN
    IF inst.status OPERATOR(pg_catalog.=) 'destroyed' THEN
        RAISE EXCEPTION 'instance % is destroyed', inst.id USING ERRCODE = '22023';
    END IF;
    IF set_ssh_config.host IS NULL OR set_ssh_config.host !~ '^[A-Za-z0-9.:_-]{1,253}$' THEN
        RAISE EXCEPTION 'invalid SSH host' USING ERRCODE = '22023',
            DETAIL = 'A host is a name or address of 1 to 253 letters, digits and .:_- characters.';
    END IF;
    IF COALESCE(set_ssh_config.port, 22) NOT BETWEEN 1 AND 65535 THEN
        RAISE EXCEPTION 'SSH port must be between 1 and 65535' USING ERRCODE = '22023';
    END IF;
    IF set_ssh_config.username IS NULL OR set_ssh_config.username !~ '^[a-z_][a-z0-9_-]{0,31}$' THEN
        RAISE EXCEPTION 'invalid SSH user name' USING ERRCODE = '22023',
            DETAIL = 'A user name starts with a lower-case letter or _ and has at most 32 of a-z, 0-9, _ and -.';
    END IF;
    IF set_ssh_config.host_key_fingerprint IS NULL
       OR set_ssh_config.host_key_fingerprint !~ '^SHA256:[A-Za-z0-9+/]{43}=?$' THEN
        RAISE EXCEPTION 'invalid host key fingerprint' USING ERRCODE = '22023',
            DETAIL = 'Give the SHA256 fingerprint as ssh-keygen -lf prints it: SHA256: and 43 base64 characters.';
    END IF;
    -- Never echo the key: the messages say what is wrong, not what was sent.
    IF set_ssh_config.private_key IS NULL
       OR pg_catalog.octet_length(set_ssh_config.private_key) NOT BETWEEN 1 AND 16384
       OR set_ssh_config.private_key !~ '^\s*-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----'
       OR set_ssh_config.private_key !~ '-----END ([A-Z0-9]+ )*PRIVATE KEY-----\s*$' THEN
        RAISE EXCEPTION 'invalid SSH private key' USING ERRCODE = '22023',
            DETAIL = 'The key must be one PEM or OpenSSH private key (-----BEGIN ... PRIVATE KEY----- to -----END ... PRIVATE KEY-----) of at most 16 kB.';
    END IF;

    SELECT * INTO cfg FROM agentmarket.ssh_configs c WHERE c.instance_id OPERATOR(pg_catalog.=) inst.id;
    IF FOUND THEN
        -- Rotation: the same secret gets a fresh ciphertext of the new key.
        PERFORM agentmarket_private.put_secret('ssh/' || inst.id::text, set_ssh_config.private_key,
                                               NULL, cfg.private_key_secret_id);
        UPDATE agentmarket.ssh_configs c
           SET host = set_ssh_config.host, port = COALESCE(set_ssh_config.port, 22),
               username = set_ssh_config.username, host_key_fingerprint = set_ssh_config.host_key_fingerprint
         WHERE c.id OPERATOR(pg_catalog.=) cfg.id
        RETURNING * INTO cfg;
    ELSE
        secret_id := agentmarket_private.put_secret('ssh/' || inst.id::text, set_ssh_config.private_key,
                                                    'SSH private key of instance ' || inst.id::text);
        INSERT INTO agentmarket.ssh_configs (instance_id, host, port, username, host_key_fingerprint, private_key_secret_id)
        VALUES (inst.id, set_ssh_config.host, COALESCE(set_ssh_config.port, 22), set_ssh_config.username,
                set_ssh_config.host_key_fingerprint, secret_id)
        RETURNING * INTO cfg;
    END IF;
    RETURN cfg;
END
$$;
COMMENT ON FUNCTION agentmarket.set_ssh_config(uuid, text, integer, text, text, text) IS
    'Owner or service_role: sets (or replaces, re-encrypting the key) the SSH access of an instance; the private key is stored encrypted only. 22023 for bad input or a destroyed instance, P0002 for an instance not the caller''s, 55000 when no encryption key is configured.';

CREATE FUNCTION agentmarket.get_ssh_private_key(instance_id uuid)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    inst agentmarket.agent_instances := agentmarket_private.instance_for_caller(get_ssh_private_key.instance_id, false);
    secret_id uuid;
BEGIN
    SELECT c.private_key_secret_id INTO secret_id FROM agentmarket.ssh_configs c
     WHERE c.instance_id OPERATOR(pg_catalog.=) inst.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'instance % has no SSH config', inst.id USING ERRCODE = 'P0002';
    END IF;
    RETURN agentmarket_private.get_secret(secret_id);
END
$$;
COMMENT ON FUNCTION agentmarket.get_ssh_private_key(uuid) IS
    'Owner or service_role: the decrypted SSH private key of an instance. P0002 for an instance not the caller''s or without SSH config.';

CREATE FUNCTION agentmarket.delete_ssh_config(instance_id uuid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    inst agentmarket.agent_instances := agentmarket_private.instance_for_caller(delete_ssh_config.instance_id);
BEGIN
    -- The trigger ssh_configs_drop_secret deletes the key.
    DELETE FROM agentmarket.ssh_configs c WHERE c.instance_id OPERATOR(pg_catalog.=) inst.id;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION agentmarket.delete_ssh_config(uuid) IS
    'Owner or service_role: removes the SSH access of an instance and its encrypted key; false when it had none.';

-- A destroyed instance keeps no SSH access: its machine is gone.
CREATE FUNCTION agentmarket_private.forget_destroyed_instance_secrets() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM agentmarket.ssh_configs c WHERE c.instance_id OPERATOR(pg_catalog.=) NEW.id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.forget_destroyed_instance_secrets() IS
    'Trigger: an instance that becomes destroyed loses its SSH config and key.';
CREATE TRIGGER agent_instances_forget_secrets AFTER UPDATE OF status ON agentmarket.agent_instances
    FOR EACH ROW WHEN (NEW.status = 'destroyed' AND OLD.status IS DISTINCT FROM 'destroyed')
    EXECUTE FUNCTION agentmarket_private.forget_destroyed_instance_secrets();

GRANT EXECUTE ON FUNCTION agentmarket.set_ssh_config(uuid, text, integer, text, text, text),
    agentmarket.get_ssh_private_key(uuid), agentmarket.delete_ssh_config(uuid) TO authenticated, service_role;
