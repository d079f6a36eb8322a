-- metering.sql: what compute costs, and recording usage at scale.
--
-- Compute cost comes from a price table keyed by Fly machine size and memory
-- (USD per second), never from the caller.  The published prices ship with
-- the extension (machine_price_list, not dumped: a new version may bring new
-- ones); an operator's own prices go in machine_prices (dumped) and win.  A
-- suspended, stopped or destroyed machine costs no compute.
--
-- record_usage(events) takes the platform's usage reports in batches.  Each
-- event's idempotency key is kept (usage_keys: one narrow row per event, no
-- foreign key), and the new events are folded per (instance, session) before
-- they touch the foreign-keyed, indexed usage_events: into the group's OPEN
-- row when it has one (a row of earlier batches the rollup has not folded
-- yet), or into one new row, which then stays open for later batches.  A
-- usage_events row therefore means "what was reported for one instance and
-- session between two rollups" (one row per instance and session per minute
-- with the rollup scheduled); usage_keys says which row each event went into.
-- Adding to an open row changes no key and no indexed column: no foreign-key
-- check, no index entry.  Rows wait in usage_pending until
-- run_billing_rollup() folds them into session totals and instance costs
-- (billing.sql); a pending row is open while its instance_id is set.

-- Fly's published prices (https://fly.io/docs/about/pricing/), per month of
-- 30 days, turned into USD per second (month / 2,592,000 s, 10 decimals).
CREATE TABLE agentmarket_private.machine_price_list (
  machine_size TEXT NOT NULL,
  memory_mb INTEGER NOT NULL,
  usd_per_month NUMERIC(10,2) NOT NULL,
  usd_per_second NUMERIC(16,12) NOT NULL,
  PRIMARY KEY (machine_size, memory_mb)
);
COMMENT ON TABLE agentmarket_private.machine_price_list IS
    'Fly.io''s published machine prices as shipped with this version (USD per second); machine_prices overrides them.';
REVOKE ALL ON TABLE agentmarket_private.machine_price_list FROM PUBLIC;
-- Shipped with the extension: recreated by CREATE EXTENSION, dumped without rows.
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.machine_price_list', 'WHERE false');
INSERT INTO agentmarket_private.machine_price_list (machine_size, memory_mb, usd_per_month, usd_per_second)
SELECT p.size, p.mb, p.month, round(p.month / 2592000, 10)
  FROM (VALUES ('shared-cpu-1x', 256, 1.94), ('shared-cpu-1x', 512, 3.19), ('shared-cpu-1x', 1024, 5.70),
               ('shared-cpu-1x', 2048, 10.70),
               ('shared-cpu-2x', 512, 3.89), ('shared-cpu-2x', 1024, 6.39), ('shared-cpu-2x', 2048, 11.39),
               ('shared-cpu-2x', 4096, 21.40),
               ('shared-cpu-4x', 1024, 7.78), ('shared-cpu-4x', 2048, 12.78), ('shared-cpu-4x', 4096, 22.78),
               ('shared-cpu-4x', 8192, 42.79),
               ('shared-cpu-8x', 2048, 15.55), ('shared-cpu-8x', 4096, 25.55), ('shared-cpu-8x', 8192, 45.56),
               ('shared-cpu-8x', 16384, 85.57),
               ('performance-1x', 2048, 32.19), ('performance-1x', 4096, 42.79), ('performance-1x', 8192, 63.99),
               ('performance-2x', 4096, 64.39), ('performance-2x', 8192, 85.59), ('performance-2x', 16384, 128.18),
               ('performance-4x', 8192, 128.77), ('performance-4x', 16384, 171.17), ('performance-4x', 32768, 256.35),
               ('performance-8x', 16384, 257.54), ('performance-8x', 32768, 342.71), ('performance-8x', 65536, 513.07),
               ('performance-16x', 32768, 515.08), ('performance-16x', 65536, 685.43),
               ('performance-16x', 131072, 1026.14)) AS p(size, mb, month);

CREATE TABLE agentmarket_private.machine_prices (
  machine_size TEXT NOT NULL
    CONSTRAINT machine_prices_size_format CHECK (machine_size ~ '^(shared-cpu|performance)-[0-9]{1,3}x$'),
  memory_mb INTEGER NOT NULL CONSTRAINT machine_prices_memory_range CHECK (memory_mb BETWEEN 128 AND 1048576),
  usd_per_second NUMERIC(16,12) NOT NULL
    CONSTRAINT machine_prices_price_range CHECK (usd_per_second >= 0 AND usd_per_second < 1),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_by NAME NOT NULL DEFAULT session_user,
  PRIMARY KEY (machine_size, memory_mb)
);
COMMENT ON TABLE agentmarket_private.machine_prices IS
    'The operator''s machine prices (USD per second); they win over the published list. Set with agentmarket.set_machine_price().';
REVOKE ALL ON TABLE agentmarket_private.machine_prices FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.machine_prices', '');

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('volume_usd_per_gb_month', 'numeric', '0.15', 0, 100, NULL,
   'Price of Fly volume storage in USD per GB and month of 30 days (kept whatever the machine''s state).');

-- The price in effect for a machine: the operator's, else the published one;
-- NULL when neither knows it.
CREATE FUNCTION agentmarket_private.machine_usd_per_second(p_size text, p_memory_mb integer)
RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(
        (SELECT m.usd_per_second FROM agentmarket_private.machine_prices m
          WHERE m.machine_size OPERATOR(pg_catalog.=) p_size AND m.memory_mb OPERATOR(pg_catalog.=) p_memory_mb),
        (SELECT l.usd_per_second FROM agentmarket_private.machine_price_list l
          WHERE l.machine_size OPERATOR(pg_catalog.=) p_size AND l.memory_mb OPERATOR(pg_catalog.=) p_memory_mb))
$$;
COMMENT ON FUNCTION agentmarket_private.machine_usd_per_second(text, integer) IS
    'USD per second of a machine size and memory: the operator''s price, else Fly''s published one; NULL if unknown.';

-- What one second of an instance's compute costs now: its agent's machine
-- price while the machine can run, 0 once it is suspended, stopped or gone.
-- 22023 when no price is known for its machine.
CREATE FUNCTION agentmarket_private.instance_usd_per_second(p_instance_id uuid)
RETURNS numeric
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    price numeric;
BEGIN
    SELECT i.status, a.fly_machine_size AS size, a.fly_machine_memory_mb AS mb INTO r
      FROM agentmarket.agent_instances i JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) i.agent_id
     WHERE i.id OPERATOR(pg_catalog.=) p_instance_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'instance % not found', p_instance_id USING ERRCODE = 'P0002';
    END IF;
    IF r.status IN ('suspended', 'stopped', 'destroyed') THEN
        RETURN 0;
    END IF;
    price := agentmarket_private.machine_usd_per_second(r.size, r.mb);
    IF price IS NULL THEN
        RAISE EXCEPTION 'no price for machine % with % MB', r.size, r.mb
            USING ERRCODE = '22023', HINT = 'Set one with agentmarket.set_machine_price().';
    END IF;
    RETURN price;
END
$$;
COMMENT ON FUNCTION agentmarket_private.instance_usd_per_second(uuid) IS
    'USD per compute second of an instance now (0 while suspended, stopped or destroyed); 22023 when its machine has no price.';

CREATE FUNCTION agentmarket.compute_cost_usd(machine_size text, memory_mb integer, seconds bigint)
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    price numeric;
BEGIN
    IF compute_cost_usd.seconds IS NULL OR compute_cost_usd.seconds < 0 THEN
        RAISE EXCEPTION 'seconds must be zero or more' USING ERRCODE = '22023';
    END IF;
    price := agentmarket_private.machine_usd_per_second(compute_cost_usd.machine_size, compute_cost_usd.memory_mb);
    IF price IS NULL THEN
        RAISE EXCEPTION 'no price for machine % with % MB', compute_cost_usd.machine_size, compute_cost_usd.memory_mb
            USING ERRCODE = '22023', HINT = 'Set one with agentmarket.set_machine_price().';
    END IF;
    RETURN round(price * compute_cost_usd.seconds, 6);
END
$$;
COMMENT ON FUNCTION agentmarket.compute_cost_usd(text, integer, bigint) IS
    'USD cost of running a machine size and memory for so many seconds, from the price table, rounded half up to 6 decimals (the precision of usage_events.cost_usd). 22023 for an unknown machine.';

CREATE FUNCTION agentmarket.set_machine_price(machine_size text, memory_mb integer, usd_per_second numeric)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform sets prices' USING ERRCODE = '42501';
    END IF;
    IF set_machine_price.machine_size IS NULL OR set_machine_price.machine_size !~ '^(shared-cpu|performance)-[0-9]{1,3}x$' THEN
        RAISE EXCEPTION 'unknown machine size "%"', set_machine_price.machine_size
            USING ERRCODE = '22023', HINT = 'Fly sizes look like shared-cpu-1x or performance-2x.';
    END IF;
    IF set_machine_price.memory_mb IS NULL OR set_machine_price.memory_mb NOT BETWEEN 128 AND 1048576 THEN
        RAISE EXCEPTION 'memory must be between 128 and 1048576 MB' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.audit_machine_price(set_machine_price.machine_size, set_machine_price.memory_mb,
                                                    set_machine_price.usd_per_second);
    IF set_machine_price.usd_per_second IS NULL THEN
        DELETE FROM agentmarket_private.machine_prices m
         WHERE m.machine_size OPERATOR(pg_catalog.=) set_machine_price.machine_size
           AND m.memory_mb OPERATOR(pg_catalog.=) set_machine_price.memory_mb;
        RETURN;
    END IF;
    IF set_machine_price.usd_per_second < 0 OR set_machine_price.usd_per_second >= 1
       OR set_machine_price.usd_per_second <> round(set_machine_price.usd_per_second, 12) THEN
        RAISE EXCEPTION 'a price must be at least 0 and below 1 USD per second, with at most 12 decimals'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', set_machine_price.usd_per_second);
    END IF;
    INSERT INTO agentmarket_private.machine_prices (machine_size, memory_mb, usd_per_second)
    VALUES (set_machine_price.machine_size, set_machine_price.memory_mb, set_machine_price.usd_per_second)
    ON CONFLICT ON CONSTRAINT machine_prices_pkey
    DO UPDATE SET usd_per_second = excluded.usd_per_second, updated_at = now(), updated_by = session_user;
END
$$;
COMMENT ON FUNCTION agentmarket.set_machine_price(text, integer, numeric) IS
    'Platform only: sets the USD-per-second price of a machine size and memory (NULL goes back to Fly''s published price). 22023 for a bad size, memory or price.';

CREATE FUNCTION agentmarket.machine_prices()
RETURNS TABLE (machine_size text, memory_mb integer, usd_per_second numeric, usd_per_month numeric, source text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(m.machine_size, l.machine_size), COALESCE(m.memory_mb, l.memory_mb),
           COALESCE(m.usd_per_second, l.usd_per_second),
           round(COALESCE(m.usd_per_second, l.usd_per_second) * 2592000, 2),
           CASE WHEN m.machine_size IS NULL THEN 'published' ELSE 'operator' END
      FROM agentmarket_private.machine_price_list l
      FULL JOIN agentmarket_private.machine_prices m
        ON m.machine_size OPERATOR(pg_catalog.=) l.machine_size AND m.memory_mb OPERATOR(pg_catalog.=) l.memory_mb
     ORDER BY 1, 2
$$;
COMMENT ON FUNCTION agentmarket.machine_prices() IS
    'Every machine price in effect: size, memory, USD per second and per 30-day month, and whether it is Fly''s published price or the operator''s.';

-- One row per recorded usage event: its key and the usage_events row it was
-- folded into.  No foreign key, so keeping it costs one narrow index entry.
CREATE TABLE agentmarket_private.usage_keys (
  idempotency_key TEXT COLLATE "C" PRIMARY KEY, -- byte order: the cheapest comparison
  usage_event_id UUID NOT NULL,
  recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.usage_keys IS
    'Idempotency key of every usage event recorded by record_usage() and the usage_events row it was folded into.';
REVOKE ALL ON TABLE agentmarket_private.usage_keys FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.usage_keys', '');

-- An open usage_events row is updated by every batch of its instance and
-- session until the rollup folds it: half of each page is left free so that
-- those updates stay HOT (the new version on the same page, no index entry;
-- pruning makes room again once free space falls below half), however many
-- open rows share a page.  Rows are few (one per instance and session per
-- rollup), so the room costs little.
ALTER TABLE agentmarket.usage_events SET (fillfactor = 50);

-- usage_events rows recorded by record_usage() that the rollup has not
-- folded yet.
CREATE TABLE agentmarket_private.usage_pending (
  usage_event_id UUID PRIMARY KEY, -- no foreign key: the row is inserted beside it, and checking costs
  session_id UUID,
  fold_session BOOLEAN NOT NULL DEFAULT true, -- false: the session's totals already count it (end_session)
  instance_id UUID -- set while the row is open: record_usage() adds its instance and session's later batches to it
);
CREATE INDEX usage_pending_session ON agentmarket_private.usage_pending (session_id) WHERE session_id IS NOT NULL;
-- At most one open row per instance and session (no session spelled as the
-- all-zero uuid): how record_usage() finds it, and what stops two batches
-- opening two.
CREATE UNIQUE INDEX usage_pending_open ON agentmarket_private.usage_pending
    (instance_id, COALESCE(session_id, '00000000-0000-0000-0000-000000000000'::pg_catalog.uuid))
    WHERE instance_id IS NOT NULL;
COMMENT ON TABLE agentmarket_private.usage_pending IS
    'Usage rows not yet folded into session totals and instance costs by run_billing_rollup().';
REVOKE ALL ON TABLE agentmarket_private.usage_pending FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.usage_pending', '');

CREATE FUNCTION agentmarket.record_usage(events jsonb)
RETURNS TABLE (event_position integer, idempotency_key text, outcome text, usage_event_id uuid)
AS 'MODULE_PATHNAME', 'record_usage'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION agentmarket.record_usage(jsonb) IS
    'Platform only: records a JSON array of up to 2,000 usage events ({instance_id, session_id?, compute_seconds, input_tokens, output_tokens, idempotency_key}); returns per event (1-based position) "recorded" with the usage_events row it was folded into, or "duplicate" for a key seen before. A malformed event raises 22023 naming its position and nothing is recorded.';

GRANT EXECUTE ON FUNCTION agentmarket.compute_cost_usd(text, integer, bigint),
    agentmarket.set_machine_price(text, integer, numeric),
    agentmarket.machine_prices(),
    agentmarket.record_usage(jsonb) TO service_role;
