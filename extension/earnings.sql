-- earnings.sql: the creator's share of revenue (shared/DESIGN.md, Money).
-- The split itself is C (earnings.c): exact integer arithmetic, so
-- creator_amount + platform_amount = gross_revenue always.

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, scale, pattern, description) VALUES
  ('creator_rate', 'numeric', '0.85', 0, 1, 2, NULL,
   'Share of (gross - compute cost) paid to the creator, 0 to 1 with two decimals.');

CREATE FUNCTION agentmarket.split_earnings(
    credits integer, compute_cost numeric, creator_rate numeric,
    OUT gross_revenue numeric, OUT creator_amount numeric, OUT platform_amount numeric)
RETURNS record
AS 'MODULE_PATHNAME', 'split_earnings'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket.split_earnings(integer, numeric, numeric) IS
    'Earnings split: gross = credits x 0.01 USD; creator = (gross - compute_cost) x rate rounded down to 4 decimals, never below 0; platform = gross - creator. Bad input raises 22023.';
GRANT EXECUTE ON FUNCTION agentmarket.split_earnings(integer, numeric, numeric) TO service_role;

-- Every earnings row adds up, whoever writes it.
ALTER TABLE agentmarket.creator_earnings
  ADD CONSTRAINT creator_earnings_split_adds_up CHECK (creator_amount + platform_amount = gross_revenue),
  ADD CONSTRAINT creator_earnings_amounts_not_negative
    CHECK (gross_revenue >= 0 AND compute_cost >= 0 AND creator_amount >= 0 AND platform_amount >= 0),
  ADD CONSTRAINT creator_earnings_rate_range CHECK (creator_rate BETWEEN 0 AND 1),
  ADD CONSTRAINT creator_earnings_paid_out_at CHECK (paid_out = (paid_out_at IS NOT NULL));

CREATE FUNCTION agentmarket.split_revenue(
    gross_revenue numeric, compute_cost numeric, creator_rate numeric,
    OUT gross_revenue numeric, OUT creator_amount numeric, OUT platform_amount numeric)
RETURNS record
AS 'MODULE_PATHNAME', 'split_revenue'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket.split_revenue(numeric, numeric, numeric) IS
    'Earnings split of a session''s recognized revenue (the value of the credits it consumed, USD, at most 4 decimals): creator = (gross - compute_cost) x rate rounded down to 4 decimals, never below 0; platform = gross - creator. Bad input raises 22023.';
GRANT EXECUTE ON FUNCTION agentmarket.split_revenue(numeric, numeric, numeric) TO service_role;
