-- pricing.sql: a price increase on a published listing never surprises its
-- hirers.  A creator edits pricing_model and credits_per_session like any
-- listing column (PostgREST PATCH); on a published listing a change that
-- makes a session or task cost more is not applied but scheduled in
-- agentmarket.agent_price_changes, visible to everyone who can see the
-- listing, and takes effect after price_notice_days (default 14, as Apify
-- requires) through apply_due_price_changes() (pg_cron), or at once when an
-- admin approves it after review (approve_price_change).  A decrease, or any
-- change before the first publication, applies at once and withdraws a
-- scheduled increase.

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('price_notice_days', 'integer', '14', 0, 365, NULL,
   'A price increase on a published listing takes effect this many days after the creator makes it (0: at once).');

CREATE TABLE agentmarket.agent_price_changes (
  agent_id UUID PRIMARY KEY REFERENCES agentmarket.agents(id) ON DELETE CASCADE,
  pricing_model TEXT NOT NULL
    CONSTRAINT agent_price_changes_pricing_model_check CHECK (pricing_model IN ('per_session', 'per_task', 'free')),
  credits_per_session INTEGER
    CONSTRAINT agent_price_changes_credits_check CHECK (credits_per_session IS NULL OR credits_per_session >= 0),
  requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  effective_at TIMESTAMPTZ NOT NULL,
  CONSTRAINT agent_price_changes_notice CHECK (effective_at >= requested_at)
);
COMMENT ON TABLE agentmarket.agent_price_changes IS
    'Scheduled price increases of published listings: the price that applies from effective_at (one per agent).';
CREATE INDEX agent_price_changes_effective_at_idx ON agentmarket.agent_price_changes (effective_at);
SELECT pg_catalog.pg_extension_config_dump('agentmarket.agent_price_changes', '');

ALTER TABLE agentmarket.agent_price_changes ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE agentmarket.agent_price_changes FROM PUBLIC, anon, authenticated, service_role, agentmarket_analyst;
GRANT SELECT ON TABLE agentmarket.agent_price_changes TO anon, authenticated;
GRANT ALL ON TABLE agentmarket.agent_price_changes TO service_role;
CREATE POLICY service_role_all ON agentmarket.agent_price_changes TO service_role USING (true) WITH CHECK (true);
-- Whoever sees the listing sees its upcoming price.
CREATE POLICY agent_price_changes_select ON agentmarket.agent_price_changes FOR SELECT TO anon, authenticated
    USING (EXISTS (SELECT FROM agentmarket.agents a
                   WHERE a.id OPERATOR(pg_catalog.=) agent_price_changes.agent_id
                     AND (a.status OPERATOR(pg_catalog.=) 'published'
                          OR a.creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
                          OR (SELECT agentmarket.current_user_is_admin()))));

-- What one session (per_session) or one task (per_task) costs.
CREATE FUNCTION agentmarket_private.listing_price(p_pricing_model text, p_credits integer)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_pricing_model OPERATOR(pg_catalog.=) 'free' THEN 0 ELSE COALESCE(p_credits, 0) END
$$;
COMMENT ON FUNCTION agentmarket_private.listing_price(text, integer) IS
    'Credits a hirer pays per session or task under a pricing model (free: 0).';

-- The rule, for every writer of a published listing's price.  A definer: it
-- runs on the creator's PATCH and keeps agent_price_changes, which clients
-- cannot write.
CREATE FUNCTION agentmarket_private.agents_price_notice() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    due agentmarket.agent_price_changes;
    notice integer;
BEGIN
    IF (NEW.pricing_model, NEW.credits_per_session) IS NOT DISTINCT FROM (OLD.pricing_model, OLD.credits_per_session) THEN
        RETURN NEW;
    END IF;
    IF OLD.status OPERATOR(pg_catalog.<>) 'published'
       OR NOT (agentmarket_private.listing_price(NEW.pricing_model, NEW.credits_per_session)
                   OPERATOR(pg_catalog.>) agentmarket_private.listing_price(OLD.pricing_model, OLD.credits_per_session)
               OR (NEW.pricing_model OPERATOR(pg_catalog.<>) OLD.pricing_model
                   AND NEW.pricing_model OPERATOR(pg_catalog.<>) 'free')) THEN
        -- Not an increase for anyone who hired it: at once; a scheduled
        -- increase is withdrawn.
        DELETE FROM agentmarket.agent_price_changes c WHERE c.agent_id OPERATOR(pg_catalog.=) NEW.id;
        RETURN NEW;
    END IF;
    -- The scheduled change itself, now due (apply_due_price_changes,
    -- approve_price_change): it applies.
    SELECT * INTO due FROM agentmarket.agent_price_changes c
     WHERE c.agent_id OPERATOR(pg_catalog.=) NEW.id
       AND c.pricing_model OPERATOR(pg_catalog.=) NEW.pricing_model
       AND c.credits_per_session IS NOT DISTINCT FROM NEW.credits_per_session
       AND c.effective_at OPERATOR(pg_catalog.<=) pg_catalog.now();
    IF FOUND THEN
        DELETE FROM agentmarket.agent_price_changes c WHERE c.agent_id OPERATOR(pg_catalog.=) NEW.id;
        RETURN NEW;
    END IF;
    notice := agentmarket_private.setting('price_notice_days')::integer;
    IF notice OPERATOR(pg_catalog.=) 0 THEN
        DELETE FROM agentmarket.agent_price_changes c WHERE c.agent_id OPERATOR(pg_catalog.=) NEW.id;
        RETURN NEW;
    END IF;
    -- An increase: scheduled (a new request restarts the notice); the
    -- listing keeps charging its current price until then.
    INSERT INTO agentmarket.agent_price_changes AS c (agent_id, pricing_model, credits_per_session, requested_at, effective_at)
    VALUES (NEW.id, NEW.pricing_model, NEW.credits_per_session, pg_catalog.now(),
            pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(days => notice))
    ON CONFLICT (agent_id) DO UPDATE
       SET pricing_model = EXCLUDED.pricing_model, credits_per_session = EXCLUDED.credits_per_session,
           requested_at = EXCLUDED.requested_at, effective_at = EXCLUDED.effective_at;
    NEW.pricing_model := OLD.pricing_model;
    NEW.credits_per_session := OLD.credits_per_session;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION agentmarket_private.agents_price_notice() IS
    'Trigger: on a published listing, a price increase is scheduled in agent_price_changes (price_notice_days) instead of applied; decreases apply at once and withdraw a scheduled increase.';
CREATE TRIGGER agents_price_notice BEFORE UPDATE OF pricing_model, credits_per_session ON agentmarket.agents
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.agents_price_notice();

-- Applies a scheduled change through the trigger above (which sees it due).
CREATE FUNCTION agentmarket_private.apply_price_change(p_change agentmarket.agent_price_changes)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE agentmarket.agents a
       SET pricing_model = p_change.pricing_model, credits_per_session = p_change.credits_per_session
     WHERE a.id OPERATOR(pg_catalog.=) p_change.agent_id;
    DELETE FROM agentmarket.agent_price_changes c WHERE c.agent_id OPERATOR(pg_catalog.=) p_change.agent_id;
END
$$;
COMMENT ON FUNCTION agentmarket_private.apply_price_change(agentmarket.agent_price_changes) IS
    'Applies one due scheduled price change to its listing.';

CREATE FUNCTION agentmarket.apply_due_price_changes()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c agentmarket.agent_price_changes;
    n integer := 0;
BEGIN
    FOR c IN SELECT * FROM agentmarket.agent_price_changes x
              WHERE x.effective_at OPERATOR(pg_catalog.<=) pg_catalog.now()
              ORDER BY x.effective_at FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM agentmarket_private.apply_price_change(c);
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket.apply_due_price_changes() IS
    'service_role / pg_cron: applies every scheduled price change whose notice has passed; returns how many.';
GRANT EXECUTE ON FUNCTION agentmarket.apply_due_price_changes() TO service_role;
-- Periodic (schedules.sql): job agentmarket.apply_due_price_changes, setting schedule_apply_due_price_changes.
SELECT agentmarket_private.declare_scheduled_task('apply_due_price_changes', 'SELECT agentmarket.apply_due_price_changes()', '7 * * * *');

CREATE FUNCTION agentmarket.approve_price_change(agent_id uuid)
RETURNS agentmarket.agents
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c agentmarket.agent_price_changes;
    a agentmarket.agents;
BEGIN
    IF NOT agentmarket.current_user_is_admin() THEN
        RAISE EXCEPTION 'only admins approve price changes' USING ERRCODE = '42501';
    END IF;
    SELECT * INTO c FROM agentmarket.agent_price_changes x
     WHERE x.agent_id OPERATOR(pg_catalog.=) approve_price_change.agent_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no price change scheduled for agent %', approve_price_change.agent_id USING ERRCODE = 'P0002';
    END IF;
    -- Reviewed: due now.
    UPDATE agentmarket.agent_price_changes x SET effective_at = pg_catalog.now(), requested_at = pg_catalog.now()
     WHERE x.agent_id OPERATOR(pg_catalog.=) c.agent_id RETURNING * INTO c;
    PERFORM agentmarket_private.apply_price_change(c);
    SELECT * INTO a FROM agentmarket.agents x WHERE x.id OPERATOR(pg_catalog.=) c.agent_id;
    RETURN a;
END
$$;
COMMENT ON FUNCTION agentmarket.approve_price_change(uuid) IS
    'Admin: approves a scheduled price increase after review, so it applies at once. 42501 for anyone else, P0002 when none is scheduled.';
GRANT EXECUTE ON FUNCTION agentmarket.approve_price_change(uuid) TO authenticated;

------------------------------------------------------------------------------
-- Credit packs, managed by the operator
------------------------------------------------------------------------------
-- The packs that ship with the extension are install-time rows
-- (operator_set false): a restore gets them from CREATE EXTENSION, and a new
-- version may change them.  Every pack the operator creates, reprices or
-- withdraws through the functions below is operator_set, and only those rows
-- are dumped.  On restore a dumped row whose code is an install-time pack
-- replaces that pack (credit_packs_restore), so what the operator set comes
-- back exactly and no pack is there twice.  Each change is audited in
-- price_audit (dumped whole).
ALTER TABLE agentmarket_private.credit_packs
  ADD COLUMN operator_set BOOLEAN NOT NULL DEFAULT false,
  -- When the operator last changed it (NULL: as shipped).
  ADD COLUMN updated_at TIMESTAMPTZ,
  ADD CONSTRAINT credit_packs_amount_range CHECK (amount_cents <= 99999999);
-- The rows above came with the extension; every later row is the operator's.
ALTER TABLE agentmarket_private.credit_packs ALTER COLUMN operator_set SET DEFAULT true;
COMMENT ON COLUMN agentmarket_private.credit_packs.operator_set IS
    'Created or changed by the operator (dumped); false for a pack as it shipped with the extension (recreated by CREATE EXTENSION, not dumped).';
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.credit_packs', 'WHERE operator_set');

CREATE TABLE agentmarket_private.price_audit (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subject TEXT NOT NULL CONSTRAINT price_audit_subject_check CHECK (subject IN ('credit_pack', 'machine_price')),
  key TEXT NOT NULL,
  action TEXT NOT NULL CONSTRAINT price_audit_action_check CHECK (action IN ('create', 'change_price', 'withdraw', 'set', 'remove')),
  old_value JSONB,
  new_value JSONB,
  changed_by NAME NOT NULL DEFAULT session_user,
  -- The PostgREST caller when there is one (the JWT's role and sub).
  jwt_role TEXT,
  jwt_sub TEXT,
  changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.price_audit IS
    'Every change the operator made to credit packs and machine prices: what, before and after, by whom, when.';
CREATE INDEX price_audit_subject_key ON agentmarket_private.price_audit (subject, key, changed_at);
REVOKE ALL ON TABLE agentmarket_private.price_audit FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.price_audit', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.price_audit_id_seq', '');

CREATE FUNCTION agentmarket_private.audit_price(p_subject text, p_key text, p_action text, p_old jsonb, p_new jsonb)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO agentmarket_private.price_audit (subject, key, action, old_value, new_value, jwt_role, jwt_sub)
    VALUES (p_subject, p_key, p_action, p_old, p_new,
            pg_catalog.left(NULLIF(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb OPERATOR(pg_catalog.->>) 'role', 100),
            pg_catalog.left(NULLIF(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb OPERATOR(pg_catalog.->>) 'sub', 100))
$$;
COMMENT ON FUNCTION agentmarket_private.audit_price(text, text, text, jsonb, jsonb) IS
    'Records one operator change of a price (credit pack or machine price) in price_audit.';

-- A restore loads the dumped (operator_set) packs into a table that already
-- holds the install-time ones: a dumped pack with an install-time pack's code
-- takes its place instead of colliding with it.
CREATE FUNCTION agentmarket_private.credit_packs_restore() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.operator_set THEN
        UPDATE agentmarket_private.credit_packs p
           SET name = NEW.name, kind = NEW.kind, credits = NEW.credits, amount_cents = NEW.amount_cents,
               currency = NEW.currency, active = NEW.active, operator_set = true, updated_at = NEW.updated_at
         WHERE p.code OPERATOR(pg_catalog.=) NEW.code AND NOT p.operator_set;
        IF FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_packs_restore() IS
    'Trigger: an operator_set pack inserted with the code of an install-time pack replaces it (what a restore of the dumped packs needs).';
CREATE TRIGGER credit_packs_restore BEFORE INSERT ON agentmarket_private.credit_packs
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.credit_packs_restore();

-- Checks a pack's terms; 22023 naming the first bad one.
CREATE FUNCTION agentmarket_private.check_credit_pack(p_code text, p_name text, p_kind text, p_credits integer,
                                                      p_amount_cents bigint, p_currency text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_code IS NULL OR p_code !~ '^[a-z][a-z0-9_]{0,39}$' THEN
        RAISE EXCEPTION 'bad credit pack code %', COALESCE(pg_catalog.quote_literal(pg_catalog.left(p_code, 50)), 'null')
            USING ERRCODE = '22023', HINT = 'A code is 1 to 40 of a-z, 0-9 and _, starting with a letter.';
    END IF;
    IF p_name IS NULL OR pg_catalog.length(p_name) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'a credit pack name must have 1 to 100 characters' USING ERRCODE = '22023';
    END IF;
    IF p_kind IS NULL OR p_kind NOT IN ('topup', 'subscription') THEN
        RAISE EXCEPTION 'bad credit pack kind %', COALESCE(pg_catalog.quote_literal(pg_catalog.left(p_kind, 50)), 'null')
            USING ERRCODE = '22023', HINT = 'A pack is a topup (paid once) or a subscription (paid monthly).';
    END IF;
    IF p_credits IS NULL OR p_credits OPERATOR(pg_catalog.<=) 0 THEN
        RAISE EXCEPTION 'a credit pack must grant a positive number of credits' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('Got %s.', COALESCE(p_credits::text, 'null'));
    END IF;
    IF p_amount_cents IS NULL OR p_amount_cents NOT BETWEEN 1 AND 99999999 THEN
        RAISE EXCEPTION 'a credit pack must cost between 1 and 99999999 cents' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('Got %s; Stripe takes at most 99999999 in the smallest currency unit.', COALESCE(p_amount_cents::text, 'null'));
    END IF;
    IF p_currency IS NULL OR p_currency !~ '^[a-z]{3}$' THEN
        RAISE EXCEPTION 'bad currency %', COALESCE(pg_catalog.quote_literal(pg_catalog.left(p_currency, 50)), 'null')
            USING ERRCODE = '22023', HINT = 'A currency is an ISO 4217 code in lower case, such as usd.';
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.check_credit_pack(text, text, text, integer, bigint, text) IS
    'Validates the terms of a credit pack; 22023 naming the first bad one.';

CREATE FUNCTION agentmarket_private.require_operator(p_what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform %', p_what USING ERRCODE = '42501',
            DETAIL = 'Prices are set by service_role or a superuser.';
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.require_operator(text) IS
    '42501 unless the caller is service_role or a superuser.';

-- What the pack functions return: the pack as credit_packs() shows it, and
-- whether it is on sale.
CREATE FUNCTION agentmarket_private.credit_pack_json(p agentmarket_private.credit_packs)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object('code', p.code, 'name', p.name, 'kind', p.kind, 'credits', p.credits,
                                         'amount_cents', p.amount_cents, 'currency', p.currency, 'active', p.active)
$$;
COMMENT ON FUNCTION agentmarket_private.credit_pack_json(agentmarket_private.credit_packs) IS
    'A credit pack as the pack functions return it: code, name, kind, credits, amount_cents, currency, active.';

-- The pack of a code, locked for a change; P0002 when there is none.
CREATE FUNCTION agentmarket_private.lock_credit_pack(p_code text)
RETURNS agentmarket_private.credit_packs
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p agentmarket_private.credit_packs;
BEGIN
    SELECT * INTO p FROM agentmarket_private.credit_packs c
     WHERE c.code OPERATOR(pg_catalog.=) pg_catalog.left(p_code, 100) FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown credit pack %', COALESCE(pg_catalog.quote_literal(pg_catalog.left(p_code, 50)), 'null')
            USING ERRCODE = 'P0002', HINT = 'agentmarket.credit_packs() lists the packs on sale.';
    END IF;
    RETURN p;
END
$$;
COMMENT ON FUNCTION agentmarket_private.lock_credit_pack(text) IS
    'The credit pack of a code, locked FOR UPDATE; P0002 when unknown.';

CREATE FUNCTION agentmarket.create_credit_pack(code text, name text, kind text, credits integer, amount_cents bigint,
                                               currency text DEFAULT 'usd')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old agentmarket_private.credit_packs;
    new agentmarket_private.credit_packs;
BEGIN
    PERFORM agentmarket_private.require_operator('creates credit packs');
    PERFORM agentmarket_private.check_credit_pack(create_credit_pack.code, create_credit_pack.name, create_credit_pack.kind,
        create_credit_pack.credits, create_credit_pack.amount_cents, create_credit_pack.currency);
    SELECT * INTO old FROM agentmarket_private.credit_packs p
     WHERE p.code OPERATOR(pg_catalog.=) create_credit_pack.code FOR UPDATE;
    IF FOUND AND old.active THEN
        RAISE EXCEPTION 'credit pack % already exists', create_credit_pack.code USING ERRCODE = '23505',
            HINT = 'Change its price with agentmarket.change_credit_pack_price(), or withdraw it first.';
    END IF;
    -- A withdrawn pack's code may be offered again, on new terms (purchases
    -- copied the old ones).
    INSERT INTO agentmarket_private.credit_packs AS p (code, name, kind, credits, amount_cents, currency, active, operator_set, updated_at)
    VALUES (create_credit_pack.code, create_credit_pack.name, create_credit_pack.kind, create_credit_pack.credits,
            create_credit_pack.amount_cents, create_credit_pack.currency, true, true, pg_catalog.now())
    ON CONFLICT ON CONSTRAINT credit_packs_pkey DO UPDATE
       SET name = EXCLUDED.name, kind = EXCLUDED.kind, credits = EXCLUDED.credits, amount_cents = EXCLUDED.amount_cents,
           currency = EXCLUDED.currency, active = true, operator_set = true, updated_at = EXCLUDED.updated_at
     -- A pack on sale is never overwritten, even one another transaction
     -- created since the check above.
     WHERE NOT p.active
    RETURNING * INTO new;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credit pack % already exists', create_credit_pack.code USING ERRCODE = '23505',
            HINT = 'Change its price with agentmarket.change_credit_pack_price(), or withdraw it first.';
    END IF;
    PERFORM agentmarket_private.audit_price('credit_pack', new.code, 'create',
        CASE WHEN old.code IS NOT NULL THEN pg_catalog.to_jsonb(old) OPERATOR(pg_catalog.-) 'updated_at' END,
        pg_catalog.to_jsonb(new) OPERATOR(pg_catalog.-) 'updated_at');
    RETURN agentmarket_private.credit_pack_json(new);
END
$$;
COMMENT ON FUNCTION agentmarket.create_credit_pack(text, text, text, integer, bigint, text) IS
    'Platform only (service_role, superuser): puts a credit pack on sale (kind topup or subscription, credits granted, price in cents of currency); a withdrawn pack''s code may be reused. 23505 when a pack with the code is on sale, 22023 for bad terms, 42501 for anyone else. Audited; survives pg_dump/pg_restore.';
GRANT EXECUTE ON FUNCTION agentmarket.create_credit_pack(text, text, text, integer, bigint, text) TO service_role;

CREATE FUNCTION agentmarket.change_credit_pack_price(code text, credits integer, amount_cents bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old agentmarket_private.credit_packs;
    new agentmarket_private.credit_packs;
BEGIN
    PERFORM agentmarket_private.require_operator('changes prices');
    old := agentmarket_private.lock_credit_pack(change_credit_pack_price.code);
    PERFORM agentmarket_private.check_credit_pack(old.code, old.name, old.kind,
        change_credit_pack_price.credits, change_credit_pack_price.amount_cents, old.currency);
    -- Purchases already made keep the terms they copied.
    UPDATE agentmarket_private.credit_packs p
       SET credits = change_credit_pack_price.credits, amount_cents = change_credit_pack_price.amount_cents,
           operator_set = true, updated_at = pg_catalog.now()
     WHERE p.code OPERATOR(pg_catalog.=) old.code
    RETURNING * INTO new;
    PERFORM agentmarket_private.audit_price('credit_pack', new.code, 'change_price',
        pg_catalog.to_jsonb(old) OPERATOR(pg_catalog.-) 'updated_at', pg_catalog.to_jsonb(new) OPERATOR(pg_catalog.-) 'updated_at');
    RETURN agentmarket_private.credit_pack_json(new);
END
$$;
COMMENT ON FUNCTION agentmarket.change_credit_pack_price(text, integer, bigint) IS
    'Platform only (service_role, superuser): the credits a pack grants and its price in cents from now on (purchases already made keep theirs). P0002 for an unknown pack, 22023 for bad terms, 42501 for anyone else. Audited; survives pg_dump/pg_restore.';
GRANT EXECUTE ON FUNCTION agentmarket.change_credit_pack_price(text, integer, bigint) TO service_role;

CREATE FUNCTION agentmarket.withdraw_credit_pack(code text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old agentmarket_private.credit_packs;
    new agentmarket_private.credit_packs;
BEGIN
    PERFORM agentmarket_private.require_operator('withdraws credit packs');
    old := agentmarket_private.lock_credit_pack(withdraw_credit_pack.code);
    new := old;
    -- Withdrawing twice is the same withdrawal.
    IF old.active THEN
        UPDATE agentmarket_private.credit_packs p
           SET active = false, operator_set = true, updated_at = pg_catalog.now()
         WHERE p.code OPERATOR(pg_catalog.=) old.code
        RETURNING * INTO new;
        PERFORM agentmarket_private.audit_price('credit_pack', new.code, 'withdraw',
            pg_catalog.to_jsonb(old) OPERATOR(pg_catalog.-) 'updated_at', pg_catalog.to_jsonb(new) OPERATOR(pg_catalog.-) 'updated_at');
    END IF;
    RETURN agentmarket_private.credit_pack_json(new);
END
$$;
COMMENT ON FUNCTION agentmarket.withdraw_credit_pack(text) IS
    'Platform only (service_role, superuser): takes a pack off sale (credit_packs() no longer lists it, buy_credits refuses it; purchases made and subscriptions running keep their terms). Idempotent. P0002 for an unknown pack, 42501 for anyone else. Audited; survives pg_dump/pg_restore.';
GRANT EXECUTE ON FUNCTION agentmarket.withdraw_credit_pack(text) TO service_role;

-- Machine prices are set with agentmarket.set_machine_price() (metering.sql),
-- which audits each change here.
CREATE FUNCTION agentmarket_private.audit_machine_price(p_size text, p_memory_mb integer, p_usd_per_second numeric)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT agentmarket_private.audit_price('machine_price', p_size OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) p_memory_mb::text,
        CASE WHEN p_usd_per_second IS NULL THEN 'remove' ELSE 'set' END,
        (SELECT pg_catalog.jsonb_build_object('usd_per_second', m.usd_per_second)
           FROM agentmarket_private.machine_prices m
          WHERE m.machine_size OPERATOR(pg_catalog.=) p_size AND m.memory_mb OPERATOR(pg_catalog.=) p_memory_mb),
        CASE WHEN p_usd_per_second IS NOT NULL THEN pg_catalog.jsonb_build_object('usd_per_second', p_usd_per_second) END)
$$;
COMMENT ON FUNCTION agentmarket_private.audit_machine_price(text, integer, numeric) IS
    'Records a change of the operator''s price of a machine size and memory (NULL: back to the published price) in price_audit.';
