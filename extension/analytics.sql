-- analytics.sql: the analyst's read-only views (role agentmarket_analyst,
-- created in security.sql).  They read every row as the extension owner and
-- leave out what identifies or quotes a person: emails, names, message and
-- review text, tool payloads, relay credentials and external ids, Stripe ids.

------------------------------------------------------------------------------
-- Analysts
------------------------------------------------------------------------------
-- Schema agentmarket_analytics is not exposed by PostgREST.  Its views read
-- the tables as the extension owner (all rows) and leave out emails, names,
-- message and review text, tool payloads, relay credentials and external
-- ids, and Stripe ids.
CREATE SCHEMA agentmarket_analytics;
COMMENT ON SCHEMA agentmarket_analytics IS
    'Read-only views for agentmarket_analyst: every row, no emails, message text or secrets.';
REVOKE ALL ON SCHEMA agentmarket_analytics FROM PUBLIC;
GRANT USAGE ON SCHEMA agentmarket_analytics TO agentmarket_analyst;

CREATE VIEW agentmarket_analytics.users AS
SELECT u.id, u.role, u.stripe_customer_id IS NOT NULL AS has_stripe_customer,
       u.stripe_connect_account_id IS NOT NULL AS has_connect_account, u.created_at
  FROM agentmarket.users u;
COMMENT ON VIEW agentmarket_analytics.users IS 'Users without email, name or Stripe ids.';

CREATE VIEW agentmarket_analytics.agents AS
SELECT a.id, a.creator_id, a.slug, a.name, a.category, a.status, a.pricing_model,
       a.credits_per_session, a.fly_machine_size, a.fly_machine_memory_mb, a.total_hires,
       a.avg_rating, a.total_reviews, a.supported_relays, a.supported_models, a.tags,
       a.created_at, a.published_at
  FROM agentmarket.agents a;
COMMENT ON VIEW agentmarket_analytics.agents IS 'Listings with their statistics.';

CREATE VIEW agentmarket_analytics.agent_instances AS
SELECT i.id, i.user_id, i.agent_id, i.agent_version_id, i.team_id, i.region, i.status,
       i.last_active_at, i.created_at
  FROM agentmarket.agent_instances i;
COMMENT ON VIEW agentmarket_analytics.agent_instances IS 'Hires: who runs which agent, where, in which state.';

CREATE VIEW agentmarket_analytics.sessions AS
SELECT s.id, s.instance_id, s.user_id, s.relay, s.started_at, s.ended_at,
       s.total_credits_consumed, s.total_input_tokens, s.total_output_tokens, s.compute_seconds
  FROM agentmarket.sessions s;
COMMENT ON VIEW agentmarket_analytics.sessions IS 'Sessions with their totals.';

CREATE VIEW agentmarket_analytics.messages AS
SELECT m.id, m.session_id, m.role, m.tool_use OPERATOR(pg_catalog.->>) 'name' AS tool_name,
       m.tokens_used, pg_catalog.char_length(m.content) AS content_chars, m.created_at
  FROM agentmarket.messages m;
COMMENT ON VIEW agentmarket_analytics.messages IS
    'Messages without their text: role, tool name, tokens, length.';

CREATE VIEW agentmarket_analytics.credit_transactions AS
SELECT t.id, t.user_id, t.type, t.amount, t.credit_type, t.session_id, t.created_at
  FROM agentmarket.credit_transactions t;
COMMENT ON VIEW agentmarket_analytics.credit_transactions IS 'The credit ledger without descriptions or Stripe ids.';

CREATE VIEW agentmarket_analytics.usage_events AS
SELECT e.id, e.user_id, e.instance_id, e.session_id, e.compute_seconds, e.input_tokens,
       e.output_tokens, e.credits_consumed, e.cost_usd, e.created_at
  FROM agentmarket.usage_events e;
COMMENT ON VIEW agentmarket_analytics.usage_events IS 'Metered usage: compute, tokens, credits, cost.';

CREATE VIEW agentmarket_analytics.creator_earnings AS
SELECT e.id, e.creator_id, e.agent_id, e.session_id, e.gross_revenue, e.compute_cost,
       e.creator_amount, e.platform_amount, e.creator_rate, e.paid_out, e.paid_out_at, e.created_at
  FROM agentmarket.creator_earnings e;
COMMENT ON VIEW agentmarket_analytics.creator_earnings IS 'Revenue split per session, without Stripe ids.';

CREATE VIEW agentmarket_analytics.purchases AS
SELECT p.id, p.user_id, p.kind, p.product, p.credits, p.amount_cents, p.currency, p.status,
       p.refunded_cents, p.created_at, p.paid_at, p.refunded_at
  FROM agentmarket.purchases p;
COMMENT ON VIEW agentmarket_analytics.purchases IS 'Purchases of credits without Stripe ids.';

CREATE VIEW agentmarket_analytics.agent_reviews AS
SELECT r.id, r.agent_id, r.user_id, r.rating, r.created_at
  FROM agentmarket.agent_reviews r;
COMMENT ON VIEW agentmarket_analytics.agent_reviews IS 'Ratings without review text.';

CREATE VIEW agentmarket_analytics.relay_connections AS
SELECT c.id, c.instance_id, c.relay, c.status, c.created_at
  FROM agentmarket.relay_connections c;
COMMENT ON VIEW agentmarket_analytics.relay_connections IS 'Relays in use, without external ids or config.';

-- Daily revenue and usage per agent, the figure analysts ask for first.
CREATE VIEW agentmarket_analytics.agent_daily_usage AS
SELECT i.agent_id, (e.created_at AT TIME ZONE 'UTC')::date AS day,
       pg_catalog.count(DISTINCT e.user_id) AS users,
       pg_catalog.sum(e.credits_consumed) AS credits,
       pg_catalog.sum(e.compute_seconds) AS compute_seconds,
       pg_catalog.sum(e.input_tokens) AS input_tokens,
       pg_catalog.sum(e.output_tokens) AS output_tokens,
       pg_catalog.sum(e.cost_usd) AS cost_usd
  FROM agentmarket.usage_events e
  JOIN agentmarket.agent_instances i ON i.id OPERATOR(pg_catalog.=) e.instance_id
 GROUP BY i.agent_id, (e.created_at AT TIME ZONE 'UTC')::date;
COMMENT ON VIEW agentmarket_analytics.agent_daily_usage IS
    'Per agent and UTC day: distinct users, credits, compute, tokens and cost.';

DO $views$
DECLARE
    v regclass;
BEGIN
    FOR v IN SELECT c.oid FROM pg_catalog.pg_class c
             WHERE c.relnamespace OPERATOR(pg_catalog.=) 'agentmarket_analytics'::regnamespace
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC', v);
        EXECUTE pg_catalog.format('GRANT SELECT ON TABLE %s TO agentmarket_analyst', v);
    END LOOP;
END
$views$;
