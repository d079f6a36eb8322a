-- A marketplace in agentmarket 0.1.0, written through 0.1.0's own functions
-- where it has them: rows in every table 0.1.0 dumps, a balanced ledger,
-- a settled and paid session, a plaintext secret, queued jobs.
SET client_min_messages = warning;
SET search_path = agentmarket, public;
SELECT agentmarket.configure('creator_rate', '0.80');
SELECT agentmarket.configure('free_trial_credits', '50');
INSERT INTO users (id, email, display_name, role, stripe_connect_account_id) VALUES
  ('30000000-0000-4000-8000-000000000001', 'c@upgrade.example', 'Creator', 'creator', 'acct_upgrade'),
  ('30000000-0000-4000-8000-000000000002', 'u@upgrade.example', 'User', 'user', NULL),
  ('30000000-0000-4000-8000-000000000003', 'v@upgrade.example', 'Other user', 'user', NULL);
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, github_repo_url, tags,
                    pricing_model, credits_per_session)
VALUES ('30000000-0000-4000-8000-0000000000a1', '30000000-0000-4000-8000-000000000001',
        'upgrade-agent', 'Upgrade helper', 'moves your data', 'a description with ''quotes'' and
a newline, some words: research assistant summarizes papers', 'research', 'https://github.com/x/y', '{a,b}',
        'per_session', 25);
UPDATE agents SET status = 'published', published_at = now() WHERE id = '30000000-0000-4000-8000-0000000000a1';
INSERT INTO agent_versions (id, agent_id, version, status, is_current, docker_image, openclaw_version)
VALUES ('30000000-0000-4000-8000-0000000000e1', '30000000-0000-4000-8000-0000000000a1', '1.0.0', 'published', true, 'img:1', '2026.11.1');
INSERT INTO agent_skills (agent_id, agent_version_id, skill_slug, required_env)
VALUES ('30000000-0000-4000-8000-0000000000a1', '30000000-0000-4000-8000-0000000000e1', 'web', '{KEY}');
INSERT INTO projects (id, user_id, name) VALUES ('30000000-0000-4000-8000-0000000000b1', '30000000-0000-4000-8000-000000000002', 'p');
INSERT INTO teams (id, project_id, name) VALUES ('30000000-0000-4000-8000-0000000000c1', '30000000-0000-4000-8000-0000000000b1', 't');
INSERT INTO agent_instances (id, user_id, agent_id, team_id, agent_version_id, fly_app_name, fly_machine_id, status)
VALUES ('30000000-0000-4000-8000-0000000000d1', '30000000-0000-4000-8000-000000000002', '30000000-0000-4000-8000-0000000000a1',
        '30000000-0000-4000-8000-0000000000c1', '30000000-0000-4000-8000-0000000000e1', 'am-d1', 'm-1', 'running');
INSERT INTO team_agents (team_id, instance_id) VALUES ('30000000-0000-4000-8000-0000000000c1', '30000000-0000-4000-8000-0000000000d1');
-- Credits through the ledger: a top-up, a plan refresh, a session paid and
-- settled, a hold captured and one still active.
SELECT (agentmarket.grant_credits('30000000-0000-4000-8000-000000000002', 100, 'topup', 'topup_purchase', 'pack topup_s',
                                  'upgrade-topup-1', 'cs_upgrade')).topup_credits AS topped_up;
SELECT (agentmarket.refresh_subscription_credits('30000000-0000-4000-8000-000000000002', 40, 'upgrade-refresh-1')).subscription_credits AS refreshed;
-- A session started by 0.1.0's start_session, charged by 0.1.0's
-- deduct_credits: C, served by the current module on 0.1.0's pots.
SELECT (agentmarket.start_session('30000000-0000-4000-8000-0000000000d1')).id IS NOT NULL AS started;
SELECT agentmarket.add_message(s.id, 'user', 'hello', NULL, 3) IS NOT NULL AS said FROM sessions s;
SELECT agentmarket.add_message(s.id, 'tool', 'result', '{"name": "web", "input": {"q": "x"}}', 5) IS NOT NULL AS said FROM sessions s;
SELECT (agentmarket.end_session(s.id, 60, 100, 200, 0.012345)).ended_at IS NOT NULL AS ended FROM sessions s;
SELECT agentmarket.capture_hold(agentmarket.reserve_credits('30000000-0000-4000-8000-000000000002', 10, NULL,
                                interval '1 hour', 'upgrade-hold-1'), 7, 'upgrade-capture-1') IS NOT NULL AS captured;
SELECT agentmarket.reserve_credits('30000000-0000-4000-8000-000000000002', 5, NULL, interval '1 hour', 'upgrade-hold-2') IS NOT NULL AS held;
INSERT INTO usage_events (user_id, instance_id, session_id, compute_seconds, credits_consumed, cost_usd)
SELECT s.user_id, s.instance_id, s.id, 60, 25, 0.012345 FROM sessions s;
INSERT INTO payouts (id, creator_id, stripe_connect_account_id, amount_usd, transfer_cents, status, stripe_transfer_id, paid_at)
SELECT '30000000-0000-4000-8000-0000000000f9', e.creator_id, 'acct_upgrade', e.creator_amount,
       floor(e.creator_amount * 100), 'paid', 'tr_upgrade', now()
  FROM creator_earnings e;
UPDATE creator_earnings SET payout_id = '30000000-0000-4000-8000-0000000000f9', paid_out = true, paid_out_at = now(),
       stripe_transfer_id = 'tr_upgrade';
INSERT INTO agent_reviews (agent_id, user_id, rating, content) VALUES
  ('30000000-0000-4000-8000-0000000000a1', '30000000-0000-4000-8000-000000000002', 5, 'great');
INSERT INTO relay_connections (instance_id, relay, external_user_id, config) VALUES
  ('30000000-0000-4000-8000-0000000000d1', 'telegram', 'tg-1', '{"bot": "x"}');
INSERT INTO purchases (user_id, kind, product, credits, amount_cents, status, stripe_checkout_session_id, paid_at)
VALUES ('30000000-0000-4000-8000-000000000002', 'topup', 'topup_s', 100, 100, 'paid', 'cs_upgrade', now());
INSERT INTO agentmarket_private.processed_webhook_events (event_id, type, outcome, result)
VALUES ('evt_upgrade', 'invoice.paid', 'ignored', '{"outcome": "ignored"}');
-- 0.1.0 kept secrets in clear.
INSERT INTO agentmarket_private.secrets (id, name, secret) VALUES
  ('30000000-0000-4000-8000-000000000099', 'ssh/d1', E'-----BEGIN OPENSSH PRIVATE KEY-----\nVVBHUkFERS1LRVk=\n-----END OPENSSH PRIVATE KEY-----');
INSERT INTO ssh_configs (instance_id, host, username, host_key_fingerprint, private_key_secret_id)
VALUES ('30000000-0000-4000-8000-0000000000d1', 'h.internal', 'agent', 'SHA256:' || repeat('B', 43), '30000000-0000-4000-8000-000000000099');
INSERT INTO agentmarket_private.session_task_charges (session_id, task_key, credits)
SELECT s.id, 'task-1', 10 FROM sessions s;
SELECT agentmarket_private.enqueue_job('fly.stop_machine', '{"instance_id": "30000000-0000-4000-8000-0000000000d1"}', 'upgrade-job-1') > 0 AS enqueued;
