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
