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

-- Money by UTC day, from the ledger: every row that moves a lot carries the
-- value it moved (lots.sql), so what was sold, given, consumed, expired or
-- taken back is a sum of amount (credits) and of value_usd (USD), and what is
-- still owed to users as credits (deferred revenue) is the running sum of all
-- values.  Each ledger row is classified once, here; daily_credits and
-- daily_revenue show its credits and its dollars.
CREATE VIEW agentmarket_private.ledger_daily AS
SELECT m.day,
       COALESCE(pg_catalog.sum(m.amount) FILTER (WHERE m.movement OPERATOR(pg_catalog.=) 'sold'), 0) AS sold,
       COALESCE(pg_catalog.sum(m.amount) FILTER (WHERE m.movement OPERATOR(pg_catalog.=) 'given'), 0) AS given,
       COALESCE(pg_catalog.sum(m.amount) FILTER (WHERE m.movement OPERATOR(pg_catalog.=) 'consumed'), 0) AS consumed,
       COALESCE(pg_catalog.sum(m.amount) FILTER (WHERE m.movement OPERATOR(pg_catalog.=) 'expired'), 0) AS expired,
       COALESCE(pg_catalog.sum(m.amount) FILTER (WHERE m.movement OPERATOR(pg_catalog.=) 'taken_back'), 0) AS taken_back,
       COALESCE(pg_catalog.sum(m.value_usd) FILTER (WHERE m.movement OPERATOR(pg_catalog.=) 'sold'), 0) AS sold_usd,
       COALESCE(pg_catalog.sum(m.value_usd) FILTER (WHERE m.movement OPERATOR(pg_catalog.=) 'given'), 0) AS promotional_usd,
       COALESCE(pg_catalog.sum(m.value_usd) FILTER (WHERE m.movement OPERATOR(pg_catalog.=) 'consumed'), 0) AS recognized_usd,
       COALESCE(pg_catalog.sum(m.value_usd) FILTER (WHERE m.movement OPERATOR(pg_catalog.=) 'expired'), 0) AS expired_usd,
       COALESCE(pg_catalog.sum(m.value_usd) FILTER (WHERE m.movement OPERATOR(pg_catalog.=) 'taken_back'), 0) AS taken_back_usd,
       pg_catalog.sum(m.net_usd) AS net_usd,
       pg_catalog.count(DISTINCT m.user_id) FILTER (WHERE m.type OPERATOR(pg_catalog.=) 'session_deduct') AS spending_users
  FROM (SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day, t.user_id, t.type, c.movement, t.value_usd AS net_usd,
               -- what leaves the users' pots counts positive
               CASE WHEN c.movement IN ('sold', 'given') THEN t.amount ELSE OPERATOR(pg_catalog.-) t.amount END AS amount,
               CASE WHEN c.movement IN ('sold', 'given') THEN t.value_usd ELSE OPERATOR(pg_catalog.-) t.value_usd END AS value_usd
          FROM agentmarket.credit_transactions t
          LEFT JOIN agentmarket_private.credit_lots l ON l.id OPERATOR(pg_catalog.=) t.lot_id
          CROSS JOIN LATERAL (SELECT CASE
                   WHEN t.type IN ('topup_purchase', 'subscription_refresh', 'free_trial')
                        THEN CASE WHEN l.paid THEN 'sold' ELSE 'given' END
                   WHEN t.type IN ('session_deduct', 'refund', 'refund_recovery') THEN 'consumed'
                   WHEN t.type OPERATOR(pg_catalog.=) 'subscription_expiry' THEN 'expired'
                   WHEN t.type IN ('purchase_refund', 'dispute_lost') THEN 'taken_back'
                 END AS movement) c) m
 GROUP BY m.day;
COMMENT ON VIEW agentmarket_private.ledger_daily IS
    'The ledger by UTC day, each row classified once as sold (paid lots), given (promotional), consumed (sessions, net of session refunds), expired or taken back (refunds, lost disputes): credits and USD, the day''s net value change, and how many users spent.';
REVOKE ALL ON agentmarket_private.ledger_daily FROM PUBLIC;

CREATE VIEW agentmarket_analytics.daily_revenue AS
SELECT d.day, d.sold_usd, d.promotional_usd, d.recognized_usd, d.expired_usd, d.taken_back_usd,
       pg_catalog.sum(d.net_usd) OVER (ORDER BY d.day) AS deferred_usd
  FROM agentmarket_private.ledger_daily d;
COMMENT ON VIEW agentmarket_analytics.daily_revenue IS
    'Per UTC day, USD: value of credits sold (paid lots) and given (promotional), revenue recognized (credits consumed by sessions, net of session refunds), value expired (the platform''s) and taken back (purchase refunds, lost disputes); deferred_usd is the value of unspent credits at the end of the day.';

CREATE VIEW agentmarket_analytics.daily_credits AS
SELECT d.day, d.sold, d.given, d.consumed, d.expired, d.taken_back, d.spending_users
  FROM agentmarket_private.ledger_daily d;
COMMENT ON VIEW agentmarket_analytics.daily_credits IS
    'Per UTC day, credits: sold (paid lots), given (free trial, promotional), consumed by sessions (net of session refunds), expired, taken back by refunds and lost disputes, and how many users spent.';

-- Margin per agent: what its sessions earned less compute and the creator's
-- share, over the earnings rows (one per settled session).
CREATE VIEW agentmarket_analytics.agent_margin AS
SELECT e.agent_id,
       pg_catalog.count(*) AS sessions,
       pg_catalog.sum(e.gross_revenue) AS revenue_usd,
       pg_catalog.sum(e.compute_cost) AS compute_usd,
       pg_catalog.sum(e.creator_amount) AS creator_share_usd,
       pg_catalog.sum(e.gross_revenue) OPERATOR(pg_catalog.-) pg_catalog.sum(e.compute_cost)
           OPERATOR(pg_catalog.-) pg_catalog.sum(e.creator_amount) AS margin_usd
  FROM agentmarket.creator_earnings e
 GROUP BY e.agent_id;
COMMENT ON VIEW agentmarket_analytics.agent_margin IS
    'Per agent: settled sessions, revenue, compute cost, the creator''s share and the platform''s margin (revenue - compute - creator share), USD.';

CREATE VIEW agentmarket_analytics.creator_balances AS
SELECT c.creator_id,
       c.earned_usd, c.paid_usd, c.earned_usd OPERATOR(pg_catalog.-) c.paid_usd AS owed_usd,
       COALESCE(k.clawed_back_usd, 0) AS clawed_back_usd,
       COALESCE(k.clawback_unsettled_usd, 0) AS clawback_unsettled_usd,
       COALESCE(p.transferred_usd, 0) AS transferred_usd, p.last_paid_at
  FROM (SELECT e.creator_id, pg_catalog.sum(e.creator_amount) AS earned_usd,
               COALESCE(pg_catalog.sum(e.creator_amount) FILTER (WHERE e.paid_out), 0) AS paid_usd
          FROM agentmarket.creator_earnings e GROUP BY e.creator_id) c
  LEFT JOIN (SELECT x.creator_id, pg_catalog.sum(x.creator_amount) AS clawed_back_usd,
                    COALESCE(pg_catalog.sum(x.creator_amount) FILTER (WHERE x.payout_id IS NULL), 0) AS clawback_unsettled_usd
               FROM agentmarket_private.creator_clawbacks x GROUP BY x.creator_id) k
         ON k.creator_id OPERATOR(pg_catalog.=) c.creator_id
  LEFT JOIN (SELECT y.creator_id, (pg_catalog.sum(y.transfer_cents) OPERATOR(pg_catalog./) 100)::numeric(14,2) AS transferred_usd,
                    pg_catalog.max(y.paid_at) AS last_paid_at
               FROM agentmarket.payouts y WHERE y.status OPERATOR(pg_catalog.=) 'paid' GROUP BY y.creator_id) p
         ON p.creator_id OPERATOR(pg_catalog.=) c.creator_id;
COMMENT ON VIEW agentmarket_analytics.creator_balances IS
    'Per creator, USD: earnings, paid out, still owed (earned - paid), clawed back by refunds (and not yet netted by a payout), transferred through Stripe, last payout.';

-- Queue health: per job kind and state, how many, how old the oldest, how
-- late the most overdue, how many attempts; dead jobs need an operator.
CREATE VIEW agentmarket_analytics.queue_health AS
SELECT j.kind, j.status,
       pg_catalog.count(*) AS jobs,
       pg_catalog.min(j.created_at) AS oldest_created_at,
       pg_catalog.max(pg_catalog.now() OPERATOR(pg_catalog.-) j.run_at)
           FILTER (WHERE j.status OPERATOR(pg_catalog.=) 'queued' AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()) AS max_overdue,
       pg_catalog.count(*) FILTER (WHERE j.status OPERATOR(pg_catalog.=) 'running'
                                     AND j.lease_expires_at OPERATOR(pg_catalog.<) pg_catalog.now()) AS expired_leases,
       pg_catalog.max(j.attempts) AS max_attempts,
       pg_catalog.count(*) FILTER (WHERE j.attempts OPERATOR(pg_catalog.>) 1) AS retried,
       pg_catalog.max(j.finished_at) AS last_finished_at
  FROM agentmarket_private.jobs j
 GROUP BY j.kind, j.status;
COMMENT ON VIEW agentmarket_analytics.queue_health IS
    'Per job kind and status: jobs, oldest, the longest a due queued job has waited, running jobs whose lease expired, attempts, retried jobs, last finish. No payloads or errors (they may name people).';

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
