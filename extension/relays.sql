-- relays.sql: chat relays (Telegram, WhatsApp, Slack, Discord), verified and
-- routed.
--
--   1. The owner calls connect_relay(instance, relay, config): a pending
--      connection and a one-time code that expires (relay_code_minutes).
--   2. The user sends the code to the platform's bot from their chat account;
--      the chat gateway (service_role) calls confirm_relay(relay, sender id,
--      chat id, code).  Only then does the connection hold that external id,
--      so nobody claims someone else's account by typing its id.
--   3. For every inbound chat message the gateway calls
--      route_relay_message(relay, sender id, chat id, content): the active
--      connection's open session (one is opened under the agent's pricing
--      when none is, the instance woken when suspended) gets the message, and
--      the gateway learns where to deliver it.
-- A pending connection holds the placeholder external id pending:<its id>, so
-- pending connections never occupy a real account's slot of the seed's
-- UNIQUE (relay, external_user_id).  Tokens in a relay's configuration go to
-- agentmarket_private.secrets (encrypted, secrets.sql), never to config.

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('relay_code_minutes', 'integer', '15', 1, 1440, NULL,
   'A relay connection''s one-time verification code expires after this many minutes.'),
  ('relay_pending_per_instance', 'integer', '5', 1, 100, NULL,
   'At most this many unverified relay connections per instance (expired ones are dropped first).');

ALTER TABLE agentmarket.relay_connections
  ADD CONSTRAINT relay_connections_relay_check CHECK (relay IN ('telegram', 'whatsapp', 'slack', 'discord')),
  ADD CONSTRAINT relay_connections_status_check CHECK (status IN ('pending', 'active', 'disconnected')),
  ADD CONSTRAINT relay_connections_pending_placeholder
    CHECK ((status = 'pending') = (external_user_id = 'pending:' || id::text)),
  ADD COLUMN verified_at TIMESTAMPTZ,
  ADD COLUMN disconnected_at TIMESTAMPTZ;
COMMENT ON COLUMN agentmarket.relay_connections.status IS
    'pending (waiting for its code from the external account), active, or disconnected.';
COMMENT ON COLUMN agentmarket.relay_connections.config IS
    'The relay''s non-secret settings (ids, names); its tokens are in agentmarket_private.secrets.';

-- The session a connection's chat is in: messages go there while it is open.
-- Kept on the connection, not on sessions, so that routing locks one row.
ALTER TABLE agentmarket.relay_connections
  ADD COLUMN current_session_id UUID REFERENCES agentmarket.sessions(id) ON DELETE SET NULL;
COMMENT ON COLUMN agentmarket.relay_connections.current_session_id IS
    'The session the chat was last routed to; a new one is opened when it has ended.';
CREATE INDEX idx_relay_current_session ON agentmarket.relay_connections (current_session_id)
    WHERE current_session_id IS NOT NULL;

-- What each relay's configuration holds.
CREATE TABLE agentmarket_private.relay_kinds (
  relay TEXT PRIMARY KEY,
  required_keys TEXT[] NOT NULL,
  optional_keys TEXT[] NOT NULL,
  secret_keys TEXT[] NOT NULL, -- of the keys above, those stored as secrets
  description TEXT NOT NULL,
  CONSTRAINT relay_kinds_secret_keys_known CHECK (secret_keys <@ (required_keys || optional_keys))
);
COMMENT ON TABLE agentmarket_private.relay_kinds IS
    'Per relay: the configuration keys connect_relay requires and accepts, and which of them are secrets.';
REVOKE ALL ON TABLE agentmarket_private.relay_kinds FROM PUBLIC;
-- Part of the extension's code: recreated by CREATE EXTENSION, dumped without rows.
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.relay_kinds', 'WHERE false');
INSERT INTO agentmarket_private.relay_kinds (relay, required_keys, optional_keys, secret_keys, description) VALUES
  ('telegram', '{}', '{bot_username,bot_token}', '{bot_token}',
   'Telegram: the platform''s bot, or the user''s own (bot_username and bot_token from @BotFather).'),
  ('whatsapp', '{phone_number_id,access_token}', '{business_account_id}', '{access_token}',
   'WhatsApp Cloud API: the business phone number id and its access token.'),
  ('slack', '{team_id,bot_token}', '{channel_id,signing_secret}', '{bot_token,signing_secret}',
   'Slack: the workspace (team) id and the app''s bot token (xoxb-...).'),
  ('discord', '{guild_id,bot_token}', '{channel_id}', '{bot_token}',
   'Discord: the server (guild) id and the bot token.');

-- One-time codes of pending connections, kept as hashes.
CREATE TABLE agentmarket_private.relay_verifications (
  connection_id UUID PRIMARY KEY REFERENCES agentmarket.relay_connections(id) ON DELETE CASCADE,
  code_hash BYTEA NOT NULL CONSTRAINT relay_verifications_code_hash_key UNIQUE,
  expires_at TIMESTAMPTZ NOT NULL,
  -- The account the owner said they will send the code from, if they did:
  -- only that account may confirm, and its messages learn that the
  -- connection waits for its code.  Not the seed's external_user_id, so an
  -- unverified claim never takes an account's slot.
  expected_external_user_id TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX relay_verifications_expected ON agentmarket_private.relay_verifications (expected_external_user_id)
    WHERE expected_external_user_id IS NOT NULL;
COMMENT ON TABLE agentmarket_private.relay_verifications IS
    'The one-time code (SHA-256 of relay:code) that confirms a pending relay connection, and when it expires.';
REVOKE ALL ON TABLE agentmarket_private.relay_verifications FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.relay_verifications', '');

-- A connection's tokens, each an encrypted secret.
CREATE TABLE agentmarket_private.relay_connection_secrets (
  connection_id UUID NOT NULL REFERENCES agentmarket.relay_connections(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  secret_id UUID NOT NULL UNIQUE REFERENCES agentmarket_private.secrets(id),
  PRIMARY KEY (connection_id, key)
);
COMMENT ON TABLE agentmarket_private.relay_connection_secrets IS
    'The secret configuration values (tokens) of a relay connection, by key; the values are encrypted secrets.';
REVOKE ALL ON TABLE agentmarket_private.relay_connection_secrets FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.relay_connection_secrets', '');

-- The secret goes when its reference goes (disconnect, deleted connection or
-- instance).
CREATE TRIGGER relay_connection_secrets_drop AFTER DELETE ON agentmarket_private.relay_connection_secrets
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.drop_referenced_secret('secret_id');

------------------------------------------------------------------------------
-- Checks
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket_private.check_relay(p_relay text)
RETURNS agentmarket_private.relay_kinds
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k agentmarket_private.relay_kinds;
BEGIN
    SELECT * INTO k FROM agentmarket_private.relay_kinds r WHERE r.relay OPERATOR(pg_catalog.=) p_relay;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown relay "%"', p_relay
            USING ERRCODE = '22023', HINT = 'Relays are telegram, whatsapp, slack and discord.';
    END IF;
    RETURN k;
END
$$;
COMMENT ON FUNCTION agentmarket_private.check_relay(text) IS 'The relay''s definition; 22023 for an unknown relay.';

-- External user and chat ids: what the chat platforms use (digits, letters,
-- and a few separators), never anything a log or a URL would choke on.
CREATE FUNCTION agentmarket_private.check_external_id(p_value text, p_what text, p_nullable boolean)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL AND p_nullable THEN
        RETURN;
    END IF;
    IF p_value IS NULL OR p_value !~ '^[A-Za-z0-9_.:@+=-]{1,128}$' OR p_value LIKE 'pending:%' THEN
        RAISE EXCEPTION 'invalid external % id', p_what USING ERRCODE = '22023',
            DETAIL = 'An external id has 1 to 128 letters, digits and _.:@+=- characters.';
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.check_external_id(text, text, boolean) IS
    'Raises 22023 unless the value is a plausible chat platform id (user or chat).';

CREATE FUNCTION agentmarket_private.relay_code_hash(p_relay text, p_code text)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.sha256(pg_catalog.convert_to(p_relay OPERATOR(pg_catalog.||) ':'
        OPERATOR(pg_catalog.||) pg_catalog.upper(pg_catalog.btrim(p_code)), 'UTF8'))
$$;
COMMENT ON FUNCTION agentmarket_private.relay_code_hash(text, text) IS
    'SHA-256 of relay:CODE (trimmed, upper case): what relay_verifications keeps instead of the code.';

-- A one-time code: 10 characters of an alphabet without look-alikes (0/O,
-- 1/I), 50 random bits from gen_random_uuid's CSPRNG.
CREATE FUNCTION agentmarket_private.new_relay_code()
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.string_agg(pg_catalog.substr('ABCDEFGHJKLMNPQRSTUVWXYZ23456789',
               (pg_catalog.get_byte(b.bytes, i) OPERATOR(pg_catalog.%) 32) OPERATOR(pg_catalog.+) 1, 1), '' ORDER BY i)
      FROM (SELECT pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                   OPERATOR(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid()) AS bytes) b,
           pg_catalog.unnest(ARRAY[0, 1, 2, 3, 4, 5, 9, 10, 11, 12]) i
$$;
COMMENT ON FUNCTION agentmarket_private.new_relay_code() IS
    'A fresh one-time relay code: 10 characters, 50 random bits.';

------------------------------------------------------------------------------
-- Connecting
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.connect_relay(instance_id uuid, relay text, config jsonb DEFAULT '{}',
                                          external_user_id text DEFAULT NULL)
RETURNS TABLE (connection_id uuid, code text, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    inst agentmarket.agent_instances := agentmarket_private.instance_for_caller(connect_relay.instance_id);
    k agentmarket_private.relay_kinds := agentmarket_private.check_relay(connect_relay.relay);
    ag agentmarket.agents;
    cfg jsonb := COALESCE(connect_relay.config, '{}');
    plain jsonb := '{}';
    e record;
    missing text[];
    conn_id uuid := pg_catalog.gen_random_uuid();
    new_code text := agentmarket_private.new_relay_code();
    expiry timestamptz := pg_catalog.now() OPERATOR(pg_catalog.+)
        pg_catalog.make_interval(mins => agentmarket_private.setting('relay_code_minutes')::integer);
BEGIN
    IF inst.status IN ('destroyed', 'error') THEN
        RAISE EXCEPTION 'instance % is %', inst.id, inst.status USING ERRCODE = '22023',
            DETAIL = 'Relays connect to instances that are provisioning, running, suspended or stopped.';
    END IF;
    SELECT * INTO ag FROM agentmarket.agents a WHERE a.id OPERATOR(pg_catalog.=) inst.agent_id;
    IF NOT k.relay OPERATOR(pg_catalog.=) ANY (COALESCE(ag.supported_relays, '{}')) THEN
        RAISE EXCEPTION 'agent "%" does not support relay "%"', ag.slug, k.relay USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('Its relays are: %s.',
                COALESCE(NULLIF(pg_catalog.array_to_string(ag.supported_relays, ', '), ''), 'web only'));
    END IF;
    PERFORM agentmarket_private.check_external_id(connect_relay.external_user_id, 'user', true);
    IF pg_catalog.jsonb_typeof(cfg) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'relay config must be a JSON object' USING ERRCODE = '22023';
    END IF;
    SELECT pg_catalog.array_agg(r ORDER BY r) INTO missing
      FROM pg_catalog.unnest(k.required_keys) r WHERE NOT cfg ? r;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '% config lacks %', k.relay, pg_catalog.array_to_string(missing, ', ') USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('A %s connection needs: %s.', k.relay, pg_catalog.array_to_string(k.required_keys, ', '));
    END IF;
    FOR e IN SELECT x.key, x.value FROM pg_catalog.jsonb_each(cfg) x ORDER BY x.key LOOP
        IF NOT e.key OPERATOR(pg_catalog.=) ANY (k.required_keys OPERATOR(pg_catalog.||) k.optional_keys) THEN
            RAISE EXCEPTION 'unknown % config key "%"', k.relay, pg_catalog.left(e.key, 64) USING ERRCODE = '22023',
                DETAIL = pg_catalog.format('A %s connection takes: %s.', k.relay,
                    pg_catalog.array_to_string(k.required_keys OPERATOR(pg_catalog.||) k.optional_keys, ', '));
        END IF;
        IF pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.<>) 'string' OR (e.value OPERATOR(pg_catalog.#>>) '{}') = '' THEN
            RAISE EXCEPTION '% config "%" must be a non-empty string', k.relay, e.key USING ERRCODE = '22023';
        END IF;
        IF e.key OPERATOR(pg_catalog.=) ANY (k.secret_keys) THEN
            -- Never echoed: the message names the key, not the value.
            IF pg_catalog.length(e.value OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.>) 4096
               OR (e.value OPERATOR(pg_catalog.#>>) '{}') ~ '[[:space:][:cntrl:]]' THEN
                RAISE EXCEPTION 'invalid % %', k.relay, e.key USING ERRCODE = '22023',
                    DETAIL = 'A token has at most 4096 characters and no spaces or control characters.';
            END IF;
        ELSIF (e.value OPERATOR(pg_catalog.#>>) '{}') !~ '^[A-Za-z0-9_.:@+=/-]{1,200}$' THEN
            RAISE EXCEPTION 'invalid % %', k.relay, e.key USING ERRCODE = '22023',
                DETAIL = 'A relay setting has 1 to 200 letters, digits and _.:@+=/- characters.';
        ELSE
            plain := plain OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(e.key, e.value);
        END IF;
    END LOOP;

    -- Expired codes are dropped with their connections; a few live ones at most.
    DELETE FROM agentmarket.relay_connections c
     USING agentmarket_private.relay_verifications v
     WHERE v.connection_id OPERATOR(pg_catalog.=) c.id AND c.instance_id OPERATOR(pg_catalog.=) inst.id
       AND v.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now();
    IF (SELECT pg_catalog.count(*) FROM agentmarket.relay_connections c
         WHERE c.instance_id OPERATOR(pg_catalog.=) inst.id AND c.status OPERATOR(pg_catalog.=) 'pending')
       OPERATOR(pg_catalog.>=) agentmarket_private.setting('relay_pending_per_instance')::integer THEN
        RAISE EXCEPTION 'too many relay connections waiting for their code' USING ERRCODE = '22023',
            HINT = 'Use one of the codes already issued, disconnect a pending connection, or wait until the codes expire.';
    END IF;

    INSERT INTO agentmarket.relay_connections (id, instance_id, relay, external_user_id, config, status)
    VALUES (conn_id, inst.id, k.relay, 'pending:' || conn_id::text, plain, 'pending');
    INSERT INTO agentmarket_private.relay_connection_secrets (connection_id, key, secret_id)
    SELECT conn_id, x.key,
           agentmarket_private.put_secret('relay/' || conn_id::text || '/' || x.key, x.value OPERATOR(pg_catalog.#>>) '{}',
                                          pg_catalog.format('%s %s of relay connection %s', k.relay, x.key, conn_id))
      FROM pg_catalog.jsonb_each(cfg) x
     WHERE x.key OPERATOR(pg_catalog.=) ANY (k.secret_keys);
    INSERT INTO agentmarket_private.relay_verifications (connection_id, code_hash, expires_at, expected_external_user_id)
    VALUES (conn_id, agentmarket_private.relay_code_hash(k.relay, new_code), expiry, connect_relay.external_user_id);

    connection_id := conn_id;
    code := new_code;
    expires_at := expiry;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION agentmarket.connect_relay(uuid, text, jsonb, text) IS
    'Owner (or service_role): starts connecting a chat relay to an instance. Returns a pending connection and a one-time code that the user sends to the platform''s bot from their chat account before expires_at (from external_user_id only, when given). config holds the relay''s keys (relay_kinds); tokens are stored encrypted. 22023 for a bad relay or config, P0002 for an instance not the caller''s.';

CREATE FUNCTION agentmarket.confirm_relay(relay text, external_user_id text, external_chat_id text, code text)
RETURNS agentmarket.relay_connections
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    k agentmarket_private.relay_kinds;
    v agentmarket_private.relay_verifications;
    conn agentmarket.relay_connections;
    holder agentmarket.relay_connections;
    inst_status text;
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the chat gateway confirms relay connections' USING ERRCODE = '42501';
    END IF;
    k := agentmarket_private.check_relay(confirm_relay.relay);
    PERFORM agentmarket_private.check_external_id(confirm_relay.external_user_id, 'user', false);
    PERFORM agentmarket_private.check_external_id(confirm_relay.external_chat_id, 'chat', true);
    IF confirm_relay.code IS NULL OR pg_catalog.length(confirm_relay.code) NOT BETWEEN 1 AND 64 THEN
        RAISE EXCEPTION 'invalid relay code' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v FROM agentmarket_private.relay_verifications x
     WHERE x.code_hash OPERATOR(pg_catalog.=) agentmarket_private.relay_code_hash(k.relay, confirm_relay.code);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invalid relay code' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('No %s connection waits for this code.', k.relay),
            HINT = 'The owner gets a code from agentmarket.connect_relay(); each code works once.';
    END IF;
    SELECT * INTO conn FROM agentmarket.relay_connections c WHERE c.id OPERATOR(pg_catalog.=) v.connection_id FOR UPDATE;
    -- Locked: a concurrent confirm of the same code finds it gone.
    IF NOT FOUND OR conn.status OPERATOR(pg_catalog.<>) 'pending'
       OR NOT EXISTS (SELECT FROM agentmarket_private.relay_verifications x
                       WHERE x.connection_id OPERATOR(pg_catalog.=) conn.id) THEN
        RAISE EXCEPTION 'invalid relay code' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('No %s connection waits for this code.', k.relay);
    END IF;
    IF v.expected_external_user_id IS NOT NULL
       AND v.expected_external_user_id OPERATOR(pg_catalog.<>) confirm_relay.external_user_id THEN
        RAISE EXCEPTION 'invalid relay code' USING ERRCODE = '22023',
            DETAIL = 'This code was issued for another account.';
    END IF;
    IF v.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN
        RAISE EXCEPTION 'relay code has expired' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('It expired at %s.', v.expires_at),
            HINT = 'The owner asks for a new code with agentmarket.connect_relay().';
    END IF;
    SELECT i.status INTO inst_status FROM agentmarket.agent_instances i
     WHERE i.id OPERATOR(pg_catalog.=) conn.instance_id FOR SHARE;
    IF inst_status IN ('destroyed', 'error') THEN
        RAISE EXCEPTION 'instance % is %', conn.instance_id, inst_status USING ERRCODE = '22023';
    END IF;

    -- The account's slot: a disconnected connection gives it up to whoever
    -- proves the account now; an active one keeps it.
    SELECT * INTO holder FROM agentmarket.relay_connections c
     WHERE c.relay OPERATOR(pg_catalog.=) k.relay
       AND c.external_user_id OPERATOR(pg_catalog.=) confirm_relay.external_user_id
     FOR UPDATE;
    IF FOUND AND holder.status OPERATOR(pg_catalog.=) 'disconnected' THEN
        DELETE FROM agentmarket.relay_connections c WHERE c.id OPERATOR(pg_catalog.=) holder.id;
    ELSIF FOUND THEN
        RAISE EXCEPTION '% account % is already connected', k.relay, confirm_relay.external_user_id
            USING ERRCODE = '23505',
                  DETAIL = 'One chat account connects to one instance.',
                  HINT = 'Disconnect it from the other instance first (agentmarket.disconnect_relay()).';
    END IF;
    BEGIN
        UPDATE agentmarket.relay_connections c
           SET external_user_id = confirm_relay.external_user_id,
               external_chat_id = COALESCE(confirm_relay.external_chat_id, confirm_relay.external_user_id),
               status = 'active', verified_at = pg_catalog.now()
         WHERE c.id OPERATOR(pg_catalog.=) conn.id
        RETURNING * INTO conn;
    EXCEPTION WHEN unique_violation THEN
        -- A concurrent confirm took the account between our check and now.
        RAISE EXCEPTION '% account % is already connected', k.relay, confirm_relay.external_user_id
            USING ERRCODE = '23505', DETAIL = 'One chat account connects to one instance.';
    END;
    DELETE FROM agentmarket_private.relay_verifications x WHERE x.connection_id OPERATOR(pg_catalog.=) conn.id;
    -- The machine learns of the relay and gets its tokens (runtime.sql).
    PERFORM agentmarket_private.request_runtime_update(conn.instance_id);
    RETURN conn;
END
$$;
COMMENT ON FUNCTION agentmarket.confirm_relay(text, text, text, text) IS
    'Chat gateway (service_role): the one-time code arrived from external_user_id on relay; the pending connection becomes active for that account. 22023 for an unknown, used or expired code; 23505 when the account is already connected.';

CREATE FUNCTION agentmarket.disconnect_relay(connection_id uuid)
RETURNS agentmarket.relay_connections
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    conn agentmarket.relay_connections;
BEGIN
    IF disconnect_relay.connection_id IS NULL THEN
        RAISE EXCEPTION 'connection id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT c.* INTO conn FROM agentmarket.relay_connections c
      JOIN agentmarket.agent_instances i ON i.id OPERATOR(pg_catalog.=) c.instance_id
     WHERE c.id OPERATOR(pg_catalog.=) disconnect_relay.connection_id
       AND agentmarket_private.caller_owns(i.user_id)
     FOR UPDATE OF c;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relay connection % not found', disconnect_relay.connection_id USING ERRCODE = 'P0002';
    END IF;
    IF conn.status OPERATOR(pg_catalog.=) 'disconnected' THEN
        RETURN conn;
    END IF;
    -- The tokens and the code go now; the row stays so that the gateway can
    -- tell the sender the connection was closed.
    DELETE FROM agentmarket_private.relay_connection_secrets s WHERE s.connection_id OPERATOR(pg_catalog.=) conn.id;
    DELETE FROM agentmarket_private.relay_verifications v WHERE v.connection_id OPERATOR(pg_catalog.=) conn.id;
    IF conn.status OPERATOR(pg_catalog.=) 'pending' THEN
        -- Never verified: nothing to remember.
        DELETE FROM agentmarket.relay_connections c WHERE c.id OPERATOR(pg_catalog.=) conn.id;
        conn.status := 'disconnected';
        conn.disconnected_at := pg_catalog.now();
        RETURN conn;
    END IF;
    UPDATE agentmarket.relay_connections c SET status = 'disconnected', disconnected_at = pg_catalog.now()
     WHERE c.id OPERATOR(pg_catalog.=) conn.id
    RETURNING * INTO conn;
    PERFORM agentmarket_private.request_runtime_update(conn.instance_id);
    RETURN conn;
END
$$;
COMMENT ON FUNCTION agentmarket.disconnect_relay(uuid) IS
    'Owner (or service_role): closes a relay connection; its tokens are deleted, the account may be connected again (to any instance) with a new code. P0002 for a connection not the caller''s.';

-- A destroyed instance keeps no relay: its connections are closed, their
-- tokens deleted.
CREATE FUNCTION agentmarket_private.disconnect_destroyed_instance_relays() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM agentmarket_private.relay_connection_secrets s
     USING agentmarket.relay_connections c
     WHERE s.connection_id OPERATOR(pg_catalog.=) c.id AND c.instance_id OPERATOR(pg_catalog.=) NEW.id;
    DELETE FROM agentmarket.relay_connections c
     WHERE c.instance_id OPERATOR(pg_catalog.=) NEW.id AND c.status OPERATOR(pg_catalog.=) 'pending';
    UPDATE agentmarket.relay_connections c SET status = 'disconnected', disconnected_at = pg_catalog.now()
     WHERE c.instance_id OPERATOR(pg_catalog.=) NEW.id AND c.status OPERATOR(pg_catalog.=) 'active';
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.disconnect_destroyed_instance_relays() IS
    'Trigger: an instance that becomes destroyed has its relay connections disconnected and their tokens deleted.';
CREATE TRIGGER agent_instances_disconnect_relays AFTER UPDATE OF status ON agentmarket.agent_instances
    FOR EACH ROW WHEN (NEW.status = 'destroyed' AND OLD.status IS DISTINCT FROM 'destroyed')
    EXECUTE FUNCTION agentmarket_private.disconnect_destroyed_instance_relays();

------------------------------------------------------------------------------
-- Routing an inbound chat message
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.route_relay_message(relay text, external_user_id text, external_chat_id text, content text)
RETURNS TABLE (session_id uuid, message_id uuid, instance_id uuid, instance_status text,
               fly_app_name text, fly_machine_id text, new_session boolean, waking boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    k agentmarket_private.relay_kinds;
    conn agentmarket.relay_connections;
    inst agentmarket.agent_instances;
    ag agentmarket.agents;
    s agentmarket.sessions;
    pending text;
    effective text;
    is_new boolean := false;
    wake boolean := false;
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the chat gateway routes relay messages' USING ERRCODE = '42501';
    END IF;
    k := agentmarket_private.check_relay(route_relay_message.relay);
    PERFORM agentmarket_private.check_external_id(route_relay_message.external_user_id, 'user', false);
    PERFORM agentmarket_private.check_external_id(route_relay_message.external_chat_id, 'chat', true);
    IF route_relay_message.content IS NULL OR route_relay_message.content OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'message content must not be empty' USING ERRCODE = '22023';
    END IF;

    -- Locked: messages of one chat are routed one at a time, so two arriving
    -- together open one session.
    SELECT * INTO conn FROM agentmarket.relay_connections c
     WHERE c.relay OPERATOR(pg_catalog.=) k.relay
       AND c.external_user_id OPERATOR(pg_catalog.=) route_relay_message.external_user_id
     FOR UPDATE;
    IF NOT FOUND AND EXISTS (
           SELECT FROM agentmarket_private.relay_verifications v
             JOIN agentmarket.relay_connections c ON c.id OPERATOR(pg_catalog.=) v.connection_id
            WHERE v.expected_external_user_id OPERATOR(pg_catalog.=) route_relay_message.external_user_id
              AND c.relay OPERATOR(pg_catalog.=) k.relay
              AND v.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()) THEN
        RAISE EXCEPTION '% connection of % is waiting for its code', k.relay, route_relay_message.external_user_id
            USING ERRCODE = '22023',
                  DETAIL = 'The connection is pending: the code has not arrived from this account yet.',
                  HINT = 'Send the code shown when the relay was connected.';
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown % sender %', k.relay, route_relay_message.external_user_id USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No agent is connected to %s account %s.', k.relay, route_relay_message.external_user_id),
            HINT = 'Its owner connects an agent with agentmarket.connect_relay() and sends the code from this account.';
    END IF;
    SELECT * INTO inst FROM agentmarket.agent_instances i WHERE i.id OPERATOR(pg_catalog.=) conn.instance_id FOR UPDATE;
    -- A destroyed instance's connections were disconnected with it; say why.
    IF inst.status OPERATOR(pg_catalog.=) 'destroyed' THEN
        RAISE EXCEPTION 'instance % is destroyed', inst.id USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The %s account %s was connected to an instance that no longer exists.',
                                       k.relay, route_relay_message.external_user_id),
            HINT = 'Its owner hires the agent again and connects the account anew.';
    END IF;
    IF conn.status OPERATOR(pg_catalog.=) 'disconnected' THEN
        RAISE EXCEPTION '% connection of % is disconnected', k.relay, route_relay_message.external_user_id
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('Relay connection %s was disconnected at %s.', conn.id, conn.disconnected_at),
                  HINT = 'Its owner connects an agent again with agentmarket.connect_relay().';
    END IF;
    IF inst.status OPERATOR(pg_catalog.=) 'error' THEN
        RAISE EXCEPTION 'instance % has failed', inst.id USING ERRCODE = '22023',
            DETAIL = COALESCE(inst.error_message, 'Its machine could not be provisioned.');
    END IF;
    SELECT * INTO ag FROM agentmarket.agents a WHERE a.id OPERATOR(pg_catalog.=) inst.agent_id;
    IF NOT k.relay OPERATOR(pg_catalog.=) ANY (COALESCE(ag.supported_relays, '{}')) THEN
        RAISE EXCEPTION 'agent "%" no longer supports relay "%"', ag.slug, k.relay USING ERRCODE = '22023';
    END IF;

    IF route_relay_message.external_chat_id IS NOT NULL
       AND conn.external_chat_id IS DISTINCT FROM route_relay_message.external_chat_id THEN
        -- Replies go where the user last wrote from.
        UPDATE agentmarket.relay_connections c SET external_chat_id = route_relay_message.external_chat_id
         WHERE c.id OPERATOR(pg_catalog.=) conn.id;
    END IF;

    SELECT * INTO s FROM agentmarket.sessions x
     WHERE x.id OPERATOR(pg_catalog.=) conn.current_session_id AND x.ended_at IS NULL;
    IF NOT FOUND THEN
        -- A new session, paid as start_session pays: per_session now (PT402
        -- without the credits, and nothing is written); per_task needs the
        -- price of one task available.
        IF ag.pricing_model OPERATOR(pg_catalog.=) 'per_task' AND COALESCE(ag.credits_per_session, 0) OPERATOR(pg_catalog.>) 0
           AND (agentmarket_private.credit_state_of(inst.user_id)).available_credits OPERATOR(pg_catalog.<) ag.credits_per_session THEN
            RAISE EXCEPTION 'not enough credits' USING ERRCODE = 'PT402',
                DETAIL = pg_catalog.format('A task of agent "%s" costs %s credits.', ag.slug, ag.credits_per_session),
                HINT = 'The user buys credits before talking to the agent.';
        END IF;
        INSERT INTO agentmarket.sessions (instance_id, user_id, relay)
        VALUES (inst.id, inst.user_id, k.relay)
        RETURNING * INTO s;
        UPDATE agentmarket.relay_connections c SET current_session_id = s.id WHERE c.id OPERATOR(pg_catalog.=) conn.id;
        IF ag.pricing_model OPERATOR(pg_catalog.=) 'per_session' AND COALESCE(ag.credits_per_session, 0) OPERATOR(pg_catalog.>) 0 THEN
            PERFORM agentmarket_private.spend_charge(inst.user_id, ag.credits_per_session, s.id,
                                               'session:' || s.id::text, pg_catalog.format('Session with %s', ag.name), true);
            UPDATE agentmarket.sessions x SET total_credits_consumed = ag.credits_per_session
             WHERE x.id OPERATOR(pg_catalog.=) s.id RETURNING * INTO s;
        END IF;
        is_new := true;
    END IF;

    -- Wake the machine unless it runs or is about to.
    SELECT jk.instance_status INTO pending
      FROM agentmarket_private.jobs j JOIN agentmarket_private.job_kinds jk ON jk.kind OPERATOR(pg_catalog.=) j.kind
     WHERE j.serial_key OPERATOR(pg_catalog.=) inst.id::text AND j.status IN ('queued', 'running')
       AND jk.instance_status IS NOT NULL
     ORDER BY j.id DESC LIMIT 1;
    effective := COALESCE(pending, inst.status);
    IF effective IN ('suspended', 'stopped') THEN
        PERFORM agentmarket_private.enqueue_instance_job(inst.id, 'fly.start_machine');
        wake := true;
    END IF;

    session_id := s.id;
    message_id := agentmarket.add_message(s.id, 'user', route_relay_message.content);
    instance_id := inst.id;
    instance_status := inst.status;
    fly_app_name := inst.fly_app_name;
    fly_machine_id := NULLIF(inst.fly_machine_id, '');
    new_session := is_new;
    waking := wake;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION agentmarket.route_relay_message(text, text, text, text) IS
    'Chat gateway (service_role): appends an inbound chat message to the open session of the sender''s active relay connection (opening one under the agent''s pricing, and waking a suspended instance, when needed); returns the session, the message and where the instance runs. P0002 unknown sender; 22023 pending or disconnected connection, destroyed or failed instance; PT402 not enough credits.';

GRANT EXECUTE ON FUNCTION agentmarket.connect_relay(uuid, text, jsonb, text), agentmarket.disconnect_relay(uuid)
    TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION agentmarket.confirm_relay(text, text, text, text),
    agentmarket.route_relay_message(text, text, text, text) TO service_role;
