-- reconcile.sql: what Stripe says happened to the money after Checkout.
--
--   purchase_payments   every payment received for a purchase: the Checkout
--                       payment, then each paid renewal invoice
--   creator_clawbacks   earnings already paid out that a refund took back:
--                       carried as a negative amount into the creator's next
--                       payout

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('stripe_api_version', 'text', '2024-06-20', NULL, NULL, '^20[0-9]{2}-[01][0-9]-[0-3][0-9](\.[a-z]+)?$',
   'The Stripe API version every request pins (Stripe-Version header) and every event is read in; the requests and the webhook handlers follow this version''s shapes, so change it only with them.');

CREATE TABLE agentmarket_private.purchase_payments (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  purchase_id UUID NOT NULL REFERENCES agentmarket.purchases(id),
  -- The Stripe object that paid: the Checkout session, or the invoice.
  stripe_ref TEXT NOT NULL CONSTRAINT purchase_payments_ref_unique UNIQUE,
  amount_cents BIGINT NOT NULL CONSTRAINT purchase_payments_amount_check CHECK (amount_cents >= 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.purchase_payments IS
    'Every payment received for a purchase (its Checkout session, then each renewal invoice), once per Stripe object.';
CREATE INDEX purchase_payments_purchase ON agentmarket_private.purchase_payments (purchase_id);
REVOKE ALL ON TABLE agentmarket_private.purchase_payments FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.purchase_payments', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.purchase_payments_id_seq', '');

CREATE TABLE agentmarket_private.creator_clawbacks (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  creator_id UUID NOT NULL REFERENCES agentmarket.users(id),
  session_id UUID REFERENCES agentmarket.sessions(id),
  -- Earnings a dead payout released and a refund then deleted take their clawback along.
  earnings_id UUID NOT NULL REFERENCES agentmarket.creator_earnings(id) ON DELETE CASCADE,
  -- The revenue taken back (creator + platform), and the creator's part of it.
  gross_usd NUMERIC(10,4) NOT NULL CONSTRAINT creator_clawbacks_gross_check CHECK (gross_usd >= 0),
  creator_amount NUMERIC(10,4) NOT NULL
    CONSTRAINT creator_clawbacks_creator_check CHECK (creator_amount >= 0 AND creator_amount <= gross_usd),
  reason TEXT NOT NULL,
  -- The payout that netted it (set by run_payouts); settled once that payout is paid.
  payout_id UUID REFERENCES agentmarket.payouts(id),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.creator_clawbacks IS
    'Revenue a refund took back from earnings already paid out: creator_amount is subtracted from the creator''s next payout.';
CREATE INDEX creator_clawbacks_creator ON agentmarket_private.creator_clawbacks (creator_id) WHERE payout_id IS NULL;
CREATE INDEX creator_clawbacks_session ON agentmarket_private.creator_clawbacks (session_id);
CREATE INDEX creator_clawbacks_payout ON agentmarket_private.creator_clawbacks (payout_id) WHERE payout_id IS NOT NULL;
REVOKE ALL ON TABLE agentmarket_private.creator_clawbacks FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.creator_clawbacks', '');

-- What a purchase has been paid, USD.
CREATE FUNCTION agentmarket_private.purchase_paid_usd(p_purchase uuid)
RETURNS numeric
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(pg_catalog.sum(p.amount_cents), 0) OPERATOR(pg_catalog./) 100::numeric
      FROM agentmarket_private.purchase_payments p
     WHERE p.purchase_id OPERATOR(pg_catalog.=) p_purchase
$$;
COMMENT ON FUNCTION agentmarket_private.purchase_paid_usd(uuid) IS
    'The sum of the payments received for a purchase (Checkout, renewals), USD.';

-- Revenue of a session taken back from paid-out earnings.
CREATE FUNCTION agentmarket_private.session_clawed_back_usd(p_session uuid)
RETURNS numeric
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(pg_catalog.sum(c.gross_usd), 0) FROM agentmarket_private.creator_clawbacks c
     WHERE c.session_id OPERATOR(pg_catalog.=) p_session
$$;
COMMENT ON FUNCTION agentmarket_private.session_clawed_back_usd(uuid) IS
    'The revenue of a session that refunds took back from its paid-out earnings, USD.';

-- The creator's clawbacks netted by paid payouts.
CREATE FUNCTION agentmarket_private.creator_clawbacks_settled_usd(p_creator uuid)
RETURNS numeric
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(pg_catalog.sum(c.creator_amount), 0) FROM agentmarket_private.creator_clawbacks c
      JOIN agentmarket.payouts p ON p.id OPERATOR(pg_catalog.=) c.payout_id
     WHERE c.creator_id OPERATOR(pg_catalog.=) p_creator AND p.status OPERATOR(pg_catalog.=) 'paid'
$$;
COMMENT ON FUNCTION agentmarket_private.creator_clawbacks_settled_usd(uuid) IS
    'The creator''s share of clawbacks netted by paid payouts, USD.';
