# 70_operations: what runs on its own, and what operators and analysts see.
# The ledger proves itself; an analyst reads the marketplace without emails
# or message text, and money and queue health by day, agent and creator;
# last, agentmarket.schedule_jobs() registers every periodic
# task with pg_cron (preloaded, cron.database_name = this database).
set -euo pipefail
psql -X -q -v ON_ERROR_STOP=1 -P pager=off <<'SQL'
\echo
\echo 'The ledger proves itself: verify_ledger() lists every inconsistency (none):'
SELECT count(*) AS problems FROM agentmarket.verify_ledger();
\echo 'Balance = sum of ledger, per user and pot:'
SELECT u.display_name, b.subscription_credits, b.topup_credits,
       (SELECT coalesce(sum(t.amount), 0) FROM agentmarket.credit_transactions t
         WHERE t.user_id = u.id AND t.credit_type = 'subscription') AS subscription_ledger,
       (SELECT coalesce(sum(t.amount), 0) FROM agentmarket.credit_transactions t
         WHERE t.user_id = u.id AND t.credit_type = 'topup') AS topup_ledger
  FROM agentmarket.users u JOIN agentmarket.credit_balances b ON b.user_id = u.id ORDER BY u.display_name;
\echo 'Every earnings row adds up: creator + platform = gross:'
SELECT count(*) AS earnings_rows, count(*) FILTER (WHERE creator_amount + platform_amount <> gross_revenue) AS not_adding_up
  FROM agentmarket.creator_earnings;

\echo
\echo 'An analyst (role agentmarket_analyst) reads the marketplace without emails or message text:'
SET role agentmarket_analyst;
SELECT a.name, a.status, a.total_hires, a.avg_rating, coalesce(sum(e.creator_amount), 0) AS creator_earned
  FROM agentmarket_analytics.agents a LEFT JOIN agentmarket_analytics.creator_earnings e ON e.agent_id = a.id
 GROUP BY a.name, a.status, a.total_hires, a.avg_rating ORDER BY a.name;
SELECT agent_id IS NOT NULL AS agent, users, credits, compute_seconds, cost_usd FROM agentmarket_analytics.agent_daily_usage;
\echo 'Money by day: sold, recognized, expired, and what is still owed to users as credits (deferred):'
SELECT day, sold_usd, promotional_usd, recognized_usd, expired_usd, taken_back_usd, deferred_usd
  FROM agentmarket_analytics.daily_revenue ORDER BY day;
SELECT day, sold, given, consumed, expired, spending_users FROM agentmarket_analytics.daily_credits ORDER BY day;
\echo 'Margin per agent (revenue - compute - creator share), and what creators are owed and were paid:'
SELECT a.name, m.sessions, m.revenue_usd, m.compute_usd, m.creator_share_usd, m.margin_usd
  FROM agentmarket_analytics.agent_margin m JOIN agentmarket_analytics.agents a ON a.id = m.agent_id ORDER BY a.name;
SELECT earned_usd, paid_usd, owed_usd, clawed_back_usd, transferred_usd FROM agentmarket_analytics.creator_balances;
\echo 'Queue health: jobs by kind and status, the longest overdue, expired leases:'
SELECT kind, status, jobs, max_overdue, expired_leases, max_attempts FROM agentmarket_analytics.queue_health ORDER BY kind, status;
\echo '... and cannot read the tables themselves:'
SET client_min_messages = notice;
DO $$ BEGIN PERFORM email FROM agentmarket.users LIMIT 1;
EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'refused (%): %', SQLSTATE, SQLERRM; END $$;
RESET role;
\echo
\echo 'Operators: the outbox by kind and status, and the dead letters:'
SELECT kind, status, jobs FROM agentmarket_private.queue_depth ORDER BY kind, status;
SELECT count(*) AS dead_jobs FROM agentmarket_private.dead_jobs;
SQL
psql -X -q -v ON_ERROR_STOP=1 -P pager=off <<'SQL'
\echo
\echo 'Last: every periodic task, registered with pg_cron at its configured cadence:'
CREATE EXTENSION IF NOT EXISTS pg_cron;
SELECT * FROM agentmarket.schedule_jobs();
SELECT jobname, schedule, command, database FROM cron.job ORDER BY jobname;
SQL
