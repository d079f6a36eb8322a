-- config.sql: the settings store (shared/DESIGN.md, Configuration).
--
-- Every key is declared in agentmarket_private.setting_definitions with its
-- kind, bounds and default; agentmarket.configure(key, value) refuses unknown
-- keys and bad values.  A capability declares its own keys by inserting
-- definition rows in its own part of the install script; this part names
-- none of them.

CREATE TABLE agentmarket_private.setting_definitions (
  key TEXT PRIMARY KEY CONSTRAINT setting_definitions_key_format CHECK (key ~ '^[a-z][a-z0-9_]*$'),
  kind TEXT NOT NULL
    CONSTRAINT setting_definitions_kind_check
    CHECK (kind IN ('integer', 'numeric', 'boolean', 'interval', 'text', 'secret')),
  default_value TEXT, -- NULL: no default (the setting is unset until configured)
  min_value NUMERIC, -- integer and numeric kinds
  max_value NUMERIC,
  scale INTEGER CONSTRAINT setting_definitions_scale_check CHECK (scale BETWEEN 0 AND 20), -- numeric kind: at most this many decimals
  pattern TEXT, -- text and secret kinds: the value must match
  description TEXT NOT NULL
);
COMMENT ON TABLE agentmarket_private.setting_definitions IS
    'Every configuration key: kind, bounds, default and meaning.';

CREATE TABLE agentmarket_private.settings (
  key TEXT PRIMARY KEY REFERENCES agentmarket_private.setting_definitions(key) ON DELETE CASCADE,
  value TEXT NOT NULL, -- kind secret: the id of its agentmarket_private.secrets row, never the value
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_by NAME NOT NULL DEFAULT session_user
);
COMMENT ON TABLE agentmarket_private.settings IS
    'Configured values; a key without a row has its default. A secret is stored encrypted in agentmarket_private.secrets; its row here holds that secret''s id.';
REVOKE ALL ON TABLE agentmarket_private.setting_definitions, agentmarket_private.settings FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.settings', '');
-- Definitions are part of the extension's code: recreated by CREATE
-- EXTENSION, dumped without rows.
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.setting_definitions', 'WHERE false');

-- Validate one value for a key; raises 22023 with a reason, returns nothing.
CREATE FUNCTION agentmarket_private.check_setting(p_key text, p_value text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, agentmarket_private, pg_temp
AS $$
DECLARE
    d agentmarket_private.setting_definitions;
    n numeric;
BEGIN
    SELECT * INTO d FROM agentmarket_private.setting_definitions WHERE key OPERATOR(pg_catalog.=) p_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting "%"', p_key
            USING ERRCODE = '22023',
                  HINT = 'The keys are listed in agentmarket_private.setting_definitions and in the README.';
    END IF;
    IF d.kind IN ('integer', 'numeric') THEN
        BEGIN
            n := p_value::numeric;
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'invalid value for setting "%"', p_key
                USING ERRCODE = '22023', DETAIL = format('"%s" is not a number.', p_value);
        END;
        IF n = 'NaN'::numeric OR (d.kind = 'integer' AND n <> trunc(n)) THEN
            RAISE EXCEPTION 'invalid value for setting "%"', p_key
                USING ERRCODE = '22023', DETAIL = format('"%s" is not %s.', p_value,
                    CASE d.kind WHEN 'integer' THEN 'a whole number' ELSE 'a number' END);
        END IF;
        IF (d.min_value IS NOT NULL AND n < d.min_value) OR (d.max_value IS NOT NULL AND n > d.max_value) THEN
            RAISE EXCEPTION 'value out of range for setting "%"', p_key
                USING ERRCODE = '22023',
                      DETAIL = format('The value must be between %s and %s.', d.min_value, d.max_value);
        END IF;
        IF d.scale IS NOT NULL AND n <> round(n, d.scale) THEN
            RAISE EXCEPTION 'invalid value for setting "%"', p_key
                USING ERRCODE = '22023', DETAIL = format('The value has at most %s decimals.', d.scale);
        END IF;
    ELSIF d.kind = 'boolean' THEN
        IF lower(p_value) NOT IN ('true', 'false', 'on', 'off', 'yes', 'no', '1', '0') THEN
            RAISE EXCEPTION 'invalid value for setting "%"', p_key
                USING ERRCODE = '22023', DETAIL = format('"%s" is not a boolean.', p_value);
        END IF;
    ELSIF d.kind = 'interval' THEN
        BEGIN
            PERFORM p_value::interval;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            RAISE EXCEPTION 'invalid value for setting "%"', p_key
                USING ERRCODE = '22023', DETAIL = format('"%s" is not an interval.', p_value);
        END;
    ELSIF d.pattern IS NOT NULL AND p_value !~ d.pattern THEN
        RAISE EXCEPTION 'invalid value for setting "%"', p_key
            USING ERRCODE = '22023',
                  DETAIL = CASE d.kind WHEN 'secret' THEN 'The value does not have the expected format.'
                           ELSE format('"%s" does not match %s.', p_value, d.pattern) END;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.check_setting(text, text) IS
    'Raises 22023 unless value is valid for the setting key.';

CREATE FUNCTION agentmarket.configure(key text, value text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket_private, pg_temp
AS $$
DECLARE
    is_secret boolean;
    stored text;
BEGIN
    IF key IS NULL THEN
        RAISE EXCEPTION 'setting key must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT d.kind OPERATOR(pg_catalog.=) 'secret' INTO is_secret
      FROM agentmarket_private.setting_definitions d WHERE d.key OPERATOR(pg_catalog.=) configure.key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting "%"', key
            USING ERRCODE = '22023',
                  HINT = 'The keys are listed by agentmarket.configuration() and in the README.';
    END IF;
    IF value IS NULL THEN
        -- NULL resets the key to its default; a secret's ciphertext goes too.
        DELETE FROM agentmarket_private.settings s WHERE s.key OPERATOR(pg_catalog.=) configure.key
        RETURNING s.value INTO stored;
        IF is_secret AND stored IS NOT NULL THEN
            DELETE FROM agentmarket_private.secrets x WHERE x.id OPERATOR(pg_catalog.=) stored::uuid;
        END IF;
        RETURN;
    END IF;
    PERFORM agentmarket_private.check_setting(key, value);
    stored := value;
    IF is_secret THEN
        -- Encrypted at rest (secrets.sql: Vault, or pgcrypto under a key kept
        -- outside every table and dump); the settings row keeps the secret's
        -- id, and a new value replaces the ciphertext under the same id.
        SELECT s.value INTO stored FROM agentmarket_private.settings s
         WHERE s.key OPERATOR(pg_catalog.=) configure.key FOR UPDATE;
        stored := agentmarket_private.put_secret(
            'setting/' OPERATOR(pg_catalog.||) configure.key, configure.value,
            'Setting ' OPERATOR(pg_catalog.||) configure.key OPERATOR(pg_catalog.||) ' (agentmarket.configure).',
            stored::uuid)::text;
    END IF;
    INSERT INTO agentmarket_private.settings AS s (key, value)
        VALUES (configure.key, stored)
        ON CONFLICT ON CONSTRAINT settings_pkey
        DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = session_user;
END
$$;
COMMENT ON FUNCTION agentmarket.configure(text, text) IS
    'Sets a configuration key (NULL resets it to its default); unknown keys and bad values raise 22023. A secret is stored encrypted (Vault, or pgcrypto under agentmarket.secret_key_file; 55000 with neither). Superuser and service_role only.';
GRANT EXECUTE ON FUNCTION agentmarket.configure(text, text) TO service_role;

-- A secret setting's value, decrypted.  PL/pgSQL, so that the call to
-- get_secret (secrets.sql, later in the install script) is resolved when it
-- runs.
CREATE FUNCTION agentmarket_private.secret_setting_value(p_secret_id text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN agentmarket_private.get_secret(p_secret_id::uuid);
END
$$;
COMMENT ON FUNCTION agentmarket_private.secret_setting_value(text) IS
    'The decrypted value of a setting of kind secret, from the secret id its settings row holds.';

-- The value of a key, or its default; NULL when unset without default.
CREATE FUNCTION agentmarket_private.setting(p_key text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN d.kind OPERATOR(pg_catalog.=) 'secret' AND s.value IS NOT NULL
                THEN agentmarket_private.secret_setting_value(s.value)
                ELSE COALESCE(s.value, d.default_value) END
      FROM agentmarket_private.setting_definitions d
      LEFT JOIN agentmarket_private.settings s ON s.key OPERATOR(pg_catalog.=) d.key
     WHERE d.key OPERATOR(pg_catalog.=) p_key
$$;
COMMENT ON FUNCTION agentmarket_private.setting(text) IS
    'Current value of a configuration key (its default when not configured); a secret decrypted.';

-- Operators' view of the configuration; secrets are shown as set or not.
CREATE FUNCTION agentmarket.configuration()
RETURNS TABLE (key text, value text, default_value text, is_default boolean, description text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.key,
           CASE WHEN d.kind = 'secret' THEN CASE WHEN s.value IS NULL THEN NULL ELSE '(set)' END
                ELSE COALESCE(s.value, d.default_value) END,
           d.default_value,
           s.value IS NULL,
           d.description
      FROM agentmarket_private.setting_definitions d
      LEFT JOIN agentmarket_private.settings s ON s.key OPERATOR(pg_catalog.=) d.key
     ORDER BY d.key
$$;
COMMENT ON FUNCTION agentmarket.configuration() IS
    'Every configuration key with its current value (secrets masked), default and meaning. Superuser and service_role only.';
GRANT EXECUTE ON FUNCTION agentmarket.configuration() TO service_role;
