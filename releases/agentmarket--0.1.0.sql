-- agentmarket install script, built by the Makefile from extension/*.sql.
-- Do not edit the built file; edit the parts.

\echo Use "CREATE EXTENSION agentmarket CASCADE" to load this file. \quit
-- schema.sql: roles, schemas, the data model of shared/seed/data-model.md
-- (exactly as written there), the five tables it names without DDL, extra
-- indexes, updated_at triggers and pg_dump registration.
--
-- The seed tables keep their inline constraints so that the constraint names
-- are PostgreSQL's defaults (users_email_key, agent_reviews_rating_check, ...):
-- tests and clients may rely on them.

-- Roles as in Supabase/PostgREST.  They are cluster-wide and may be shared
-- with other databases, so the extension creates them when missing and never
-- drops them.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
END
$roles$;

-- Both schemas are made here, so they are members of the extension and
-- DROP EXTENSION takes them along (see agentmarket.control).
CREATE SCHEMA agentmarket;
COMMENT ON SCHEMA agentmarket IS
    'agentmarket: the marketplace tables, views and the functions clients call (exposed by PostgREST).';
CREATE SCHEMA agentmarket_private;
COMMENT ON SCHEMA agentmarket_private IS
    'agentmarket internals: job queue, configuration, secrets, helpers. No client role has access.';
REVOKE ALL ON SCHEMA agentmarket_private FROM PUBLIC;
REVOKE ALL ON SCHEMA agentmarket FROM PUBLIC;
GRANT USAGE ON SCHEMA agentmarket TO anon, authenticated, service_role;

-- Every function is created executable by PUBLIC (per-schema default
-- privileges cannot take that away), so each one is followed by REVOKE ALL ...
-- FROM PUBLIC and explicit grants; sql/foundation.sql checks that none is left.

-- updated_at maintenance, shared by every table that has the column.
-- In C (agentmarket.c): it runs on every balance update of the hot ledger
-- path, where a PL/pgSQL trigger call costs more than the rest of the row.
CREATE FUNCTION agentmarket_private.touch_updated_at() RETURNS trigger
AS 'MODULE_PATHNAME', 'touch_updated_at'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmarket_private.touch_updated_at() IS
    'Trigger: sets updated_at to the transaction time on every UPDATE.';
REVOKE ALL ON FUNCTION agentmarket_private.touch_updated_at() FROM PUBLIC;

------------------------------------------------------------------------------
-- The seed data model
------------------------------------------------------------------------------

CREATE TABLE agentmarket.users (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  email TEXT NOT NULL UNIQUE,
  display_name TEXT,
  avatar_url TEXT,
  role TEXT NOT NULL DEFAULT 'user', -- 'user' | 'creator' | 'admin'
  stripe_customer_id TEXT,
  stripe_connect_account_id TEXT, -- for creators
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket.users IS 'Marketplace users: hirers, creators and admins.';

CREATE TABLE agentmarket.projects (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES agentmarket.users(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  description TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket.projects IS 'A user''s projects; each groups teams of hired agents.';

CREATE TABLE agentmarket.teams (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id UUID NOT NULL REFERENCES agentmarket.projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket.teams IS 'Teams of agent instances inside a project.';

CREATE TABLE agentmarket.agents (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  creator_id UUID NOT NULL REFERENCES agentmarket.users(id),
  slug TEXT NOT NULL UNIQUE, -- URL-friendly identifier
  name TEXT NOT NULL,
  tagline TEXT NOT NULL, -- one-liner for card
  description TEXT NOT NULL, -- full markdown description
  icon_url TEXT,
  category TEXT NOT NULL, -- 'productivity' | 'research' | 'writing' | ...
  status TEXT NOT NULL DEFAULT 'draft', -- 'draft' | 'review' | 'published' | 'rejected' | 'archived'

  -- Pricing
  pricing_model TEXT NOT NULL DEFAULT 'per_session', -- 'per_session' | 'per_task' | 'free'
  credits_per_session INTEGER, -- null if free

  -- Technical
  github_repo_url TEXT NOT NULL,
  docker_image TEXT, -- built image ref on Fly.io registry
  openclaw_version TEXT, -- pinned OpenClaw version
  fly_machine_size TEXT NOT NULL DEFAULT 'shared-cpu-1x',
  fly_machine_memory_mb INTEGER NOT NULL DEFAULT 512,

  -- Stats (denormalized for performance)
  total_hires INTEGER NOT NULL DEFAULT 0,
  avg_rating NUMERIC(2,1) DEFAULT 0,
  total_reviews INTEGER NOT NULL DEFAULT 0,

  -- Metadata
  supported_relays TEXT[] DEFAULT '{}', -- ['telegram', 'whatsapp', 'slack', 'discord']
  supported_models TEXT[] DEFAULT '{}', -- ['claude', 'gpt', 'gemini']
  tags TEXT[] DEFAULT '{}',

  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  published_at TIMESTAMPTZ
);
COMMENT ON TABLE agentmarket.agents IS 'Marketplace listings: one OpenClaw-based agent each.';

CREATE TABLE agentmarket.agent_instances (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES agentmarket.users(id) ON DELETE CASCADE,
  agent_id UUID NOT NULL REFERENCES agentmarket.agents(id),
  team_id UUID REFERENCES agentmarket.teams(id),

  -- Fly.io Machine info
  fly_app_name TEXT NOT NULL,
  fly_machine_id TEXT NOT NULL,
  fly_volume_id TEXT,
  region TEXT NOT NULL DEFAULT 'iad',

  -- Status
  status TEXT NOT NULL DEFAULT 'provisioning',
    -- 'provisioning' | 'running' | 'suspended' | 'stopped' | 'error' | 'destroyed'
  last_active_at TIMESTAMPTZ,
  error_message TEXT,

  -- User customization
  display_name TEXT, -- override Agent name
  model_preference TEXT, -- override default model

  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),

  UNIQUE(user_id, agent_id) -- one instance per user per agent
);
COMMENT ON TABLE agentmarket.agent_instances IS
    'A user''s hired agent, running on its own Fly.io Machine.';

CREATE TABLE agentmarket.sessions (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  instance_id UUID NOT NULL REFERENCES agentmarket.agent_instances(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES agentmarket.users(id),
  relay TEXT NOT NULL DEFAULT 'web', -- 'web' | 'telegram' | 'whatsapp' | 'slack' | 'discord'
  started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  ended_at TIMESTAMPTZ,
  total_credits_consumed INTEGER NOT NULL DEFAULT 0,
  total_input_tokens INTEGER NOT NULL DEFAULT 0,
  total_output_tokens INTEGER NOT NULL DEFAULT 0,
  compute_seconds INTEGER NOT NULL DEFAULT 0
);
COMMENT ON TABLE agentmarket.sessions IS 'Conversations with a hired agent, over the web or a relay.';

CREATE TABLE agentmarket.messages (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id UUID NOT NULL REFERENCES agentmarket.sessions(id) ON DELETE CASCADE,
  role TEXT NOT NULL, -- 'user' | 'assistant' | 'system' | 'tool'
  content TEXT NOT NULL,
  tool_use JSONB, -- {name, input, output} if role=tool
  tokens_used INTEGER NOT NULL DEFAULT 0,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket.messages IS 'Messages of a session.';
CREATE INDEX idx_messages_session_created ON agentmarket.messages(session_id, created_at);

CREATE TABLE agentmarket.credit_balances (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES agentmarket.users(id) ON DELETE CASCADE UNIQUE,
  subscription_credits INTEGER NOT NULL DEFAULT 0, -- refresh monthly, expire
  topup_credits INTEGER NOT NULL DEFAULT 0, -- never expire
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket.credit_balances IS
    'A user''s two credit pots; each equals the sum of its credit_transactions.';

CREATE TABLE agentmarket.credit_transactions (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES agentmarket.users(id),
  type TEXT NOT NULL, -- 'subscription_refresh' | 'topup_purchase' | 'session_deduct' | 'free_trial' | 'refund'
  amount INTEGER NOT NULL, -- positive = credit, negative = debit
  credit_type TEXT NOT NULL, -- 'subscription' | 'topup'
  description TEXT,
  session_id UUID REFERENCES agentmarket.sessions(id),
  stripe_payment_id TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket.credit_transactions IS
    'The credit ledger: one row per change to a pot; rows are never updated or deleted.';

CREATE TABLE agentmarket.usage_events (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES agentmarket.users(id),
  instance_id UUID NOT NULL REFERENCES agentmarket.agent_instances(id),
  session_id UUID REFERENCES agentmarket.sessions(id),
  compute_seconds INTEGER NOT NULL DEFAULT 0,
  input_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  credits_consumed INTEGER NOT NULL DEFAULT 0,
  cost_usd NUMERIC(10,6) NOT NULL DEFAULT 0, -- actual infra cost
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket.usage_events IS 'Metered usage of an instance: compute, tokens, credits, cost.';

CREATE TABLE agentmarket.creator_earnings (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  creator_id UUID NOT NULL REFERENCES agentmarket.users(id),
  agent_id UUID NOT NULL REFERENCES agentmarket.agents(id),
  session_id UUID REFERENCES agentmarket.sessions(id),
  gross_revenue NUMERIC(10,4) NOT NULL, -- total credits × $0.01
  compute_cost NUMERIC(10,6) NOT NULL, -- actual infra cost
  creator_amount NUMERIC(10,4) NOT NULL, -- (gross - compute) × creator_rate
  platform_amount NUMERIC(10,4) NOT NULL, -- remainder
  creator_rate NUMERIC(3,2) NOT NULL DEFAULT 0.85, -- 85% at launch
  paid_out BOOLEAN NOT NULL DEFAULT false,
  paid_out_at TIMESTAMPTZ,
  stripe_transfer_id TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket.creator_earnings IS
    'A creator''s share of a session''s revenue; creator_amount + platform_amount = gross_revenue.';

CREATE TABLE agentmarket.agent_reviews (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  agent_id UUID NOT NULL REFERENCES agentmarket.agents(id),
  user_id UUID NOT NULL REFERENCES agentmarket.users(id),
  rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
  content TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE(agent_id, user_id) -- one review per user per agent
);
COMMENT ON TABLE agentmarket.agent_reviews IS 'Verified reviews: one per user per hired agent.';

CREATE TABLE agentmarket.relay_connections (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  instance_id UUID NOT NULL REFERENCES agentmarket.agent_instances(id) ON DELETE CASCADE,
  relay TEXT NOT NULL, -- 'telegram' | 'whatsapp' | 'slack' | 'discord'
  external_user_id TEXT NOT NULL, -- platform-specific user ID
  external_chat_id TEXT, -- platform-specific chat/channel ID
  config JSONB, -- platform-specific config
  status TEXT NOT NULL DEFAULT 'active',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE(relay, external_user_id) -- one connection per relay user
);
COMMENT ON TABLE agentmarket.relay_connections IS
    'Chat relays (Telegram, WhatsApp, Slack, Discord) connected to an instance.';

-- The seed's indexes, exactly.
CREATE INDEX idx_agents_status_category ON agentmarket.agents(status, category);
CREATE INDEX idx_agents_slug ON agentmarket.agents(slug);
CREATE INDEX idx_agents_creator ON agentmarket.agents(creator_id);
CREATE INDEX idx_instances_user ON agentmarket.agent_instances(user_id);
CREATE INDEX idx_instances_status ON agentmarket.agent_instances(status);
CREATE INDEX idx_instances_fly ON agentmarket.agent_instances(fly_machine_id);
CREATE INDEX idx_sessions_instance ON agentmarket.sessions(instance_id);
CREATE INDEX idx_sessions_user ON agentmarket.sessions(user_id);
CREATE INDEX idx_usage_user_created ON agentmarket.usage_events(user_id, created_at);
CREATE INDEX idx_earnings_creator_paid ON agentmarket.creator_earnings(creator_id, paid_out);
CREATE INDEX idx_relay_external ON agentmarket.relay_connections(relay, external_user_id);
CREATE INDEX idx_reviews_agent ON agentmarket.agent_reviews(agent_id);
CREATE INDEX idx_agents_search ON agentmarket.agents USING gin(
  to_tsvector('english', name || ' ' || tagline || ' ' || description)
);

------------------------------------------------------------------------------
-- The five tables the seed's diagram names without DDL
------------------------------------------------------------------------------

-- Released versions of an agent.  The current one (what new hires run) is the
-- single row with is_current; a flag rather than a pointer from agents keeps
-- the foreign keys acyclic, so pg_dump can restore the rows in order.
CREATE TABLE agentmarket.agent_versions (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  agent_id UUID NOT NULL REFERENCES agentmarket.agents(id) ON DELETE CASCADE,
  version TEXT NOT NULL
    CONSTRAINT agent_versions_version_semver CHECK (version ~
      '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'),
  git_ref TEXT,
  git_commit TEXT CONSTRAINT agent_versions_git_commit_hex CHECK (git_commit ~ '^[0-9a-f]{7,64}$'),
  docker_image TEXT,
  openclaw_version TEXT,
  changelog TEXT,
  status TEXT NOT NULL DEFAULT 'draft'
    CONSTRAINT agent_versions_status_check CHECK (status IN ('draft', 'published', 'deprecated', 'yanked')),
  is_current BOOLEAN NOT NULL DEFAULT false,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  published_at TIMESTAMPTZ,
  UNIQUE (agent_id, version),
  CONSTRAINT agent_versions_current_is_published CHECK (NOT is_current OR status = 'published')
);
CREATE UNIQUE INDEX agent_versions_one_current ON agentmarket.agent_versions(agent_id) WHERE is_current;
COMMENT ON TABLE agentmarket.agent_versions IS
    'Released versions of an agent; the is_current row is what new hires run.';

-- Which version an instance runs: existing instances keep theirs when a new
-- version becomes current.
ALTER TABLE agentmarket.agent_instances
  ADD COLUMN agent_version_id UUID REFERENCES agentmarket.agent_versions(id);

-- OpenClaw skills an agent ships, for the whole agent (agent_version_id NULL)
-- or for one version.
CREATE TABLE agentmarket.agent_skills (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  agent_id UUID NOT NULL REFERENCES agentmarket.agents(id) ON DELETE CASCADE,
  agent_version_id UUID REFERENCES agentmarket.agent_versions(id) ON DELETE CASCADE,
  skill_slug TEXT NOT NULL
    CONSTRAINT agent_skills_slug_format CHECK (skill_slug ~ '^[a-z0-9][a-z0-9._/-]{0,127}$'),
  name TEXT,
  description TEXT,
  source TEXT NOT NULL DEFAULT 'clawhub'
    CONSTRAINT agent_skills_source_check CHECK (source IN ('clawhub', 'bundled', 'workspace', 'git')),
  version TEXT, -- version or tag
  revision_hash TEXT,
  required_env TEXT[] NOT NULL DEFAULT '{}',
  required_bins TEXT[] NOT NULL DEFAULT '{}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT agent_skills_unique UNIQUE NULLS NOT DISTINCT (agent_id, agent_version_id, skill_slug)
);
COMMENT ON TABLE agentmarket.agent_skills IS
    'OpenClaw skills an agent ships (per agent, or per version when agent_version_id is set).';

-- Membership of instances in teams.
CREATE TABLE agentmarket.team_agents (
  team_id UUID NOT NULL REFERENCES agentmarket.teams(id) ON DELETE CASCADE,
  instance_id UUID NOT NULL REFERENCES agentmarket.agent_instances(id) ON DELETE CASCADE,
  added_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (team_id, instance_id)
);
COMMENT ON TABLE agentmarket.team_agents IS 'Which agent instances belong to which team.';

-- A user's Stripe purchases: top-up packs and subscriptions.  A purchase is
-- a financial record: deleting a user who has one is refused, like the ledger.
CREATE TABLE agentmarket.purchases (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES agentmarket.users(id),
  kind TEXT NOT NULL CONSTRAINT purchases_kind_check CHECK (kind IN ('topup', 'subscription')),
  product TEXT, -- pack or plan code
  credits INTEGER NOT NULL CONSTRAINT purchases_credits_check CHECK (credits > 0),
  amount_cents BIGINT NOT NULL CONSTRAINT purchases_amount_check CHECK (amount_cents >= 0),
  currency TEXT NOT NULL DEFAULT 'usd' CONSTRAINT purchases_currency_check CHECK (currency ~ '^[a-z]{3}$'),
  status TEXT NOT NULL DEFAULT 'pending'
    CONSTRAINT purchases_status_check CHECK (status IN ('pending', 'paid', 'refunded', 'failed', 'expired')),
  stripe_checkout_session_id TEXT UNIQUE,
  stripe_payment_intent_id TEXT UNIQUE,
  stripe_subscription_id TEXT, -- one subscription is paid by many monthly invoices
  stripe_invoice_id TEXT UNIQUE,
  refunded_cents BIGINT NOT NULL DEFAULT 0
    CONSTRAINT purchases_refunded_check CHECK (refunded_cents BETWEEN 0 AND amount_cents),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  paid_at TIMESTAMPTZ,
  refunded_at TIMESTAMPTZ,
  expires_at TIMESTAMPTZ
);
COMMENT ON TABLE agentmarket.purchases IS
    'Stripe purchases of credits: top-up packs (mode=payment) and subscriptions.';

-- Secrets (the seed's "Vault"): values no client role can read.
CREATE TABLE agentmarket_private.secrets (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name TEXT NOT NULL UNIQUE,
  secret TEXT NOT NULL,
  description TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.secrets IS
    'Secret values (SSH private keys, tokens) referenced by id from client-visible tables.';

-- SSH access to an instance.  The private key is a reference to a secret.
CREATE TABLE agentmarket.ssh_configs (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  instance_id UUID NOT NULL UNIQUE REFERENCES agentmarket.agent_instances(id) ON DELETE CASCADE,
  host TEXT NOT NULL CONSTRAINT ssh_configs_host_check CHECK (host ~ '^[A-Za-z0-9.:_-]{1,253}$'),
  port INTEGER NOT NULL DEFAULT 22 CONSTRAINT ssh_configs_port_check CHECK (port BETWEEN 1 AND 65535),
  username TEXT NOT NULL CONSTRAINT ssh_configs_username_check CHECK (username ~ '^[a-z_][a-z0-9_-]{0,31}$'),
  host_key_fingerprint TEXT NOT NULL
    CONSTRAINT ssh_configs_fingerprint_check CHECK (host_key_fingerprint ~ '^SHA256:[A-Za-z0-9+/]{43}=?$'),
  private_key_secret_id UUID NOT NULL REFERENCES agentmarket_private.secrets(id),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket.ssh_configs IS
    'SSH access to an instance; the private key lives in agentmarket_private.secrets.';
COMMENT ON COLUMN agentmarket.ssh_configs.private_key_secret_id IS
    'Reference to the private key in agentmarket_private.secrets; the key itself is never stored here.';

-- A deleted SSH config takes its private key with it.
CREATE FUNCTION agentmarket_private.drop_ssh_secret() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    DELETE FROM agentmarket_private.secrets s WHERE s.id OPERATOR(pg_catalog.=) OLD.private_key_secret_id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.drop_ssh_secret() IS
    'Trigger: deletes the private key secret of a deleted ssh_configs row.';
REVOKE ALL ON FUNCTION agentmarket_private.drop_ssh_secret() FROM PUBLIC;
CREATE TRIGGER ssh_configs_drop_secret AFTER DELETE ON agentmarket.ssh_configs
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.drop_ssh_secret();

------------------------------------------------------------------------------
-- Indexes on foreign keys the seed leaves without one
------------------------------------------------------------------------------
CREATE INDEX idx_projects_user ON agentmarket.projects(user_id);
CREATE INDEX idx_teams_project ON agentmarket.teams(project_id);
CREATE INDEX idx_instances_agent ON agentmarket.agent_instances(agent_id);
CREATE INDEX idx_instances_team ON agentmarket.agent_instances(team_id);
CREATE INDEX idx_instances_version ON agentmarket.agent_instances(agent_version_id);
CREATE INDEX idx_credit_tx_user_created ON agentmarket.credit_transactions(user_id, created_at);
-- Partial: most ledger rows (grants, refreshes) have no session, and the hot
-- deduction path should not pay for indexing NULLs.
CREATE INDEX idx_credit_tx_session ON agentmarket.credit_transactions(session_id) WHERE session_id IS NOT NULL;
CREATE INDEX idx_usage_instance ON agentmarket.usage_events(instance_id);
CREATE INDEX idx_usage_session ON agentmarket.usage_events(session_id) WHERE session_id IS NOT NULL;
CREATE INDEX idx_earnings_agent ON agentmarket.creator_earnings(agent_id);
CREATE INDEX idx_earnings_session ON agentmarket.creator_earnings(session_id);
CREATE INDEX idx_reviews_user ON agentmarket.agent_reviews(user_id);
CREATE INDEX idx_relay_instance ON agentmarket.relay_connections(instance_id);
CREATE INDEX idx_skills_version ON agentmarket.agent_skills(agent_version_id);
CREATE INDEX idx_team_agents_instance ON agentmarket.team_agents(instance_id);
CREATE INDEX idx_purchases_user_created ON agentmarket.purchases(user_id, created_at);
CREATE INDEX idx_purchases_subscription ON agentmarket.purchases(stripe_subscription_id);
CREATE INDEX idx_ssh_configs_secret ON agentmarket.ssh_configs(private_key_secret_id);

------------------------------------------------------------------------------
-- updated_at triggers, RLS, pg_dump registration
------------------------------------------------------------------------------
DO $tables$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'projects', 'agents', 'agent_instances',
                             'credit_balances', 'purchases', 'ssh_configs']
    LOOP
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER %I BEFORE UPDATE ON agentmarket.%I FOR EACH ROW '
            'EXECUTE FUNCTION agentmarket_private.touch_updated_at()',
            t || '_touch_updated_at', t);
    END LOOP;
END
$tables$;
CREATE TRIGGER secrets_touch_updated_at BEFORE UPDATE ON agentmarket_private.secrets
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.touch_updated_at();

-- Row-level security on every table of the exposed schema: without a policy
-- that means no rows for anon and authenticated (service_role bypasses RLS).
DO $rls$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT c.oid FROM pg_catalog.pg_class c
             WHERE c.relnamespace OPERATOR(pg_catalog.=) 'agentmarket'::regnamespace
               AND c.relkind OPERATOR(pg_catalog.=) 'r'
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC', t);
    END LOOP;
END
$rls$;
ALTER TABLE agentmarket_private.secrets ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE agentmarket_private.secrets FROM PUBLIC;

-- Extension tables hold user data: without this pg_dump drops their rows.
SELECT pg_catalog.pg_extension_config_dump('agentmarket.users', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.projects', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.teams', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.agents', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.agent_versions', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.agent_skills', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.agent_instances', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.team_agents', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.messages', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.credit_balances', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.credit_transactions', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.usage_events', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.creator_earnings', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.agent_reviews', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.relay_connections', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.purchases', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket.ssh_configs', '');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.secrets', '');
-- config.sql: the settings store (shared/DESIGN.md, Configuration).
--
-- Every key is declared in agentmarket_private.setting_definitions with its
-- kind, bounds and default; agentmarket.configure(key, value) refuses unknown
-- keys and bad values.  A capability adds its keys by inserting definition
-- rows in its own part of the install script.

CREATE TABLE agentmarket_private.setting_definitions (
  key TEXT PRIMARY KEY CONSTRAINT setting_definitions_key_format CHECK (key ~ '^[a-z][a-z0-9_]*$'),
  kind TEXT NOT NULL
    CONSTRAINT setting_definitions_kind_check
    CHECK (kind IN ('integer', 'numeric', 'boolean', 'interval', 'text', 'secret')),
  default_value TEXT, -- NULL: no default (the setting is unset until configured)
  min_value NUMERIC, -- integer and numeric kinds
  max_value NUMERIC,
  pattern TEXT, -- text and secret kinds: the value must match
  description TEXT NOT NULL
);
COMMENT ON TABLE agentmarket_private.setting_definitions IS
    'Every configuration key: kind, bounds, default and meaning.';

CREATE TABLE agentmarket_private.settings (
  key TEXT PRIMARY KEY REFERENCES agentmarket_private.setting_definitions(key) ON DELETE CASCADE,
  value TEXT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_by NAME NOT NULL DEFAULT session_user
);
COMMENT ON TABLE agentmarket_private.settings IS
    'Configured values; a key without a row has its default.';
REVOKE ALL ON TABLE agentmarket_private.setting_definitions, agentmarket_private.settings FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.settings', '');

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('creator_rate', 'numeric', '0.85', 0, 1, NULL,
   'Share of (gross - compute cost) paid to the creator, 0 to 1 with two decimals.'),
  ('free_trial_credits', 'integer', '100', 0, 1000000, NULL,
   'Credits granted once to every new user.'),
  ('payout_minimum_usd', 'numeric', '25.00', 0, 1000000, NULL,
   'Unpaid earnings below this amount (USD) wait for the next payout run.'),
  ('payout_holding_days', 'integer', '14', 0, 365, NULL,
   'Earnings become payable this many days after the session that produced them.'),
  ('hold_expiry_minutes', 'integer', '60', 1, 10080, NULL,
   'A credit hold that is neither captured nor released expires after this many minutes.'),
  ('idle_suspend_minutes', 'integer', '15', 1, 10080, NULL,
   'A running instance with no activity for this long is suspended.'),
  ('stripe_webhook_secret', 'secret', NULL, NULL, NULL, '^whsec_[A-Za-z0-9]+$',
   'Signing secret of the Stripe webhook endpoint (whsec_...).'),
  ('stripe_connect_webhook_secret', 'secret', NULL, NULL, NULL, '^whsec_[A-Za-z0-9]+$',
   'Signing secret of the Stripe Connect webhook endpoint (whsec_...).'),
  ('webhook_tolerance_seconds', 'integer', '300', 1, 3600, NULL,
   'Webhook signatures older or newer than this many seconds are refused.');

-- Validate one value for a key; raises 22023 with a reason, returns nothing.
CREATE FUNCTION agentmarket_private.check_setting(p_key text, p_value text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, agentmarket_private
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
        IF p_key = 'creator_rate' AND n <> round(n, 2) THEN
            RAISE EXCEPTION 'invalid value for setting "%"', p_key
                USING ERRCODE = '22023', DETAIL = 'The creator rate has at most two decimals.';
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
REVOKE ALL ON FUNCTION agentmarket_private.check_setting(text, text) FROM PUBLIC;

CREATE FUNCTION agentmarket.configure(key text, value text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket_private
AS $$
BEGIN
    IF key IS NULL THEN
        RAISE EXCEPTION 'setting key must not be null' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT FROM agentmarket_private.setting_definitions d
                   WHERE d.key OPERATOR(pg_catalog.=) configure.key) THEN
        RAISE EXCEPTION 'unknown setting "%"', key
            USING ERRCODE = '22023',
                  HINT = 'The keys are listed by agentmarket.configuration() and in the README.';
    END IF;
    IF value IS NULL THEN
        -- NULL resets the key to its default.
        DELETE FROM agentmarket_private.settings s WHERE s.key OPERATOR(pg_catalog.=) configure.key;
        RETURN;
    END IF;
    PERFORM agentmarket_private.check_setting(key, value);
    INSERT INTO agentmarket_private.settings AS s (key, value)
        VALUES (configure.key, configure.value)
        ON CONFLICT ON CONSTRAINT settings_pkey
        DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = session_user;
END
$$;
COMMENT ON FUNCTION agentmarket.configure(text, text) IS
    'Sets a configuration key (NULL resets it to its default); unknown keys and bad values raise 22023. Superuser and service_role only.';
REVOKE ALL ON FUNCTION agentmarket.configure(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.configure(text, text) TO service_role;

-- The value of a key, or its default; NULL when unset without default.
CREATE FUNCTION agentmarket_private.setting(p_key text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT COALESCE(s.value, d.default_value)
      FROM agentmarket_private.setting_definitions d
      LEFT JOIN agentmarket_private.settings s ON s.key OPERATOR(pg_catalog.=) d.key
     WHERE d.key OPERATOR(pg_catalog.=) p_key
$$;
COMMENT ON FUNCTION agentmarket_private.setting(text) IS
    'Current value of a configuration key (its default when not configured).';
REVOKE ALL ON FUNCTION agentmarket_private.setting(text) FROM PUBLIC;

-- Operators' view of the configuration; secrets are shown as set or not.
CREATE FUNCTION agentmarket.configuration()
RETURNS TABLE (key text, value text, default_value text, is_default boolean, description text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog
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
REVOKE ALL ON FUNCTION agentmarket.configuration() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.configuration() TO service_role;
-- identity.sql: who is calling.  PostgREST runs each request as anon,
-- authenticated or service_role with the JWT claims in request.jwt.claims;
-- these read them exactly as Supabase's auth.uid() does.

CREATE FUNCTION agentmarket.current_user_id()
RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    -- One qualified expression, no SET clause: the planner inlines it, so a
    -- policy's (SELECT agentmarket.current_user_id()) costs an expression,
    -- not a SQL function call.  CASE, not NULLIF: NULLIF cannot name its
    -- operator's schema.  An empty sub is no user too (auth.uid() would fail
    -- to cast it).
    SELECT CASE
        WHEN pg_catalog.current_setting('request.jwt.claim.sub', true) OPERATOR(pg_catalog.<>) ''
        THEN pg_catalog.current_setting('request.jwt.claim.sub', true)::pg_catalog.uuid
        WHEN pg_catalog.current_setting('request.jwt.claims', true) OPERATOR(pg_catalog.<>) ''
        THEN CASE
            WHEN (pg_catalog.current_setting('request.jwt.claims', true)::pg_catalog.jsonb
                  OPERATOR(pg_catalog.->>) 'sub') OPERATOR(pg_catalog.<>) ''
            THEN (pg_catalog.current_setting('request.jwt.claims', true)::pg_catalog.jsonb
                  OPERATOR(pg_catalog.->>) 'sub')::pg_catalog.uuid
        END
    END
$$;
COMMENT ON FUNCTION agentmarket.current_user_id() IS
    'The caller''s user id: the sub claim of the PostgREST JWT (legacy request.jwt.claim.sub first), NULL without one. Same semantics as Supabase auth.uid().';
REVOKE ALL ON FUNCTION agentmarket.current_user_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.current_user_id() TO anon, authenticated, service_role;

CREATE FUNCTION agentmarket.current_user_is_admin()
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT COALESCE(
        (SELECT u.role OPERATOR(pg_catalog.=) 'admin'
           FROM agentmarket.users u
          WHERE u.id OPERATOR(pg_catalog.=) agentmarket.current_user_id()),
        false)
$$;
COMMENT ON FUNCTION agentmarket.current_user_is_admin() IS
    'True when the caller''s users row has role admin.';
REVOKE ALL ON FUNCTION agentmarket.current_user_is_admin() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.current_user_is_admin() TO anon, authenticated, service_role;
-- queue.sql: the outbox.  A job is enqueued in the transaction that decides
-- it (commit makes both visible, rollback neither); NOTIFY on commit wakes the
-- sidecars, which claim, call Fly.io or Stripe outside any transaction, and
-- report back.  What an answer means is decided here, by one handler per job
-- kind (agentmarket_private.job_kinds).

-- The sidecar's role reaches the queue through SECURITY DEFINER functions only.
GRANT USAGE ON SCHEMA agentmarket_private TO service_role;

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('job_backoff_base_seconds', 'integer', '2', 1, 3600, NULL,
   'First retry delay of a failed job (seconds); doubled at every further attempt, with jitter.'),
  ('job_backoff_max_seconds', 'integer', '900', 1, 86400, NULL,
   'Longest retry delay of a failed job (seconds), before jitter.'),
  ('job_retention_days', 'integer', '7', 0, 3650, NULL,
   'Succeeded jobs older than this many days are removed by agentmarket_private.prune_jobs().'),
  ('dead_job_retention_days', 'integer', '30', 0, 3650, NULL,
   'Dead jobs older than this many days are removed by agentmarket_private.prune_jobs().'),
  ('fly_volume_size_gb', 'integer', '1', 0, 500, NULL,
   'Size of the Fly volume created for every new instance (GB); 0 means instances get no volume.'),
  ('fly_volume_path', 'text', '/data', NULL, NULL, '^/[A-Za-z0-9._/-]*$',
   'Where an instance''s Fly volume is mounted in its machine.');

-- The registry of job kinds.  Adding a kind means adding one row here and its
-- handler function; nothing in the sidecar or the queue functions changes.
CREATE TABLE agentmarket_private.job_kinds (
  kind TEXT PRIMARY KEY CONSTRAINT job_kinds_kind_format CHECK (kind ~ '^[a-z]+\.[a-z_]+$'),
  provider TEXT NOT NULL CONSTRAINT job_kinds_provider_check CHECK (provider IN ('fly', 'stripe')),
  -- Stripe: the endpoint the job POSTs to.
  endpoint TEXT CONSTRAINT job_kinds_endpoint_format CHECK (endpoint ~ '^/v1/[a-z_/]+$'),
  -- Fly: the instance status the job leads to.
  instance_status TEXT
    CONSTRAINT job_kinds_instance_status_check CHECK (instance_status IN ('running', 'suspended', 'stopped', 'destroyed')),
  -- Jobs with the same value of this payload field run one after another, in
  -- enqueue order (instance jobs: one instance's jobs never overlap).
  serialize_on TEXT,
  -- handler(job agentmarket_private.jobs, result jsonb): applies a success.
  handler REGPROCEDURE NOT NULL,
  -- dead_handler(job agentmarket_private.jobs): applies a final failure.
  dead_handler REGPROCEDURE,
  max_attempts INTEGER NOT NULL DEFAULT 10 CONSTRAINT job_kinds_max_attempts_check CHECK (max_attempts BETWEEN 1 AND 100),
  description TEXT NOT NULL,
  CONSTRAINT job_kinds_stripe_endpoint CHECK ((provider = 'stripe') = (endpoint IS NOT NULL))
);
COMMENT ON TABLE agentmarket_private.job_kinds IS
    'Every job kind: provider, Stripe endpoint or Fly target status, and the handlers that apply its outcome.';
REVOKE ALL ON TABLE agentmarket_private.job_kinds FROM PUBLIC;
-- Kinds are part of the extension's code (each names its handler functions),
-- so a restore gets them from CREATE EXTENSION: registered, with a filter that
-- dumps no row (dumped rows would collide with the script's on restore).
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.job_kinds', 'WHERE false');

CREATE TABLE agentmarket_private.jobs (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind TEXT NOT NULL CONSTRAINT jobs_kind_format CHECK (kind ~ '^[a-z]+\.[a-z_]+$')
    CONSTRAINT jobs_kind_fkey REFERENCES agentmarket_private.job_kinds(kind),
  payload JSONB NOT NULL DEFAULT '{}' CONSTRAINT jobs_payload_object CHECK (jsonb_typeof(payload) = 'object'),
  status TEXT NOT NULL DEFAULT 'queued'
    CONSTRAINT jobs_status_check CHECK (status IN ('queued', 'running', 'succeeded', 'dead')),
  attempts INTEGER NOT NULL DEFAULT 0 CONSTRAINT jobs_attempts_check CHECK (attempts >= 0),
  max_attempts INTEGER NOT NULL DEFAULT 10 CONSTRAINT jobs_max_attempts_check CHECK (max_attempts > 0),
  run_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  lease_owner TEXT,
  lease_expires_at TIMESTAMPTZ,
  last_error TEXT,
  result JSONB,
  idempotency_key TEXT NOT NULL
    CONSTRAINT jobs_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255),
  serial_key TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at TIMESTAMPTZ,
  CONSTRAINT jobs_idempotency_key_unique UNIQUE (idempotency_key),
  CONSTRAINT jobs_lease_consistent CHECK ((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
  CONSTRAINT jobs_finished_consistent CHECK ((status IN ('succeeded', 'dead')) = (finished_at IS NOT NULL))
);
COMMENT ON TABLE agentmarket_private.jobs IS
    'Outbox of calls to Fly.io and Stripe, claimed by agentmarket-sidecar.';
COMMENT ON COLUMN agentmarket_private.jobs.idempotency_key IS
    'Names the effect: enqueuing the same key again returns this job; Stripe calls carry it as Idempotency-Key.';
COMMENT ON COLUMN agentmarket_private.jobs.serial_key IS
    'Jobs sharing it run one at a time in id order (the instance id for Fly jobs).';
-- "Next due": queued jobs by run_at, running jobs by lease expiry.
CREATE INDEX jobs_due_queued ON agentmarket_private.jobs (run_at) WHERE status = 'queued';
CREATE INDEX jobs_due_lease ON agentmarket_private.jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_kind_status ON agentmarket_private.jobs (kind, status);
CREATE INDEX jobs_serial_pending ON agentmarket_private.jobs (serial_key, id)
    WHERE status IN ('queued', 'running');
CREATE INDEX jobs_finished ON agentmarket_private.jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TRIGGER jobs_touch_updated_at BEFORE UPDATE ON agentmarket_private.jobs
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.touch_updated_at();
REVOKE ALL ON TABLE agentmarket_private.jobs FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.jobs', '');
-- The id sequence too, or a restored database hands out ids that exist.
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.jobs_id_seq', '');

------------------------------------------------------------------------------
-- Handlers: what a success (or a final failure) means in the database
------------------------------------------------------------------------------

-- The instance id of an instance job, checked.
CREATE FUNCTION agentmarket_private.job_instance_id(p_job agentmarket_private.jobs)
RETURNS uuid
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
BEGIN
    IF (p_job).payload OPERATOR(pg_catalog.->>) 'instance_id' IS NULL THEN
        RAISE EXCEPTION 'job % has no instance_id', (p_job).id USING ERRCODE = '22023';
    END IF;
    RETURN ((p_job).payload OPERATOR(pg_catalog.->>) 'instance_id')::uuid;
END
$$;
COMMENT ON FUNCTION agentmarket_private.job_instance_id(agentmarket_private.jobs) IS
    'The instance_id of an instance job''s payload; 22023 when missing.';

-- fly.provision_instance succeeded: the machine exists and runs.
CREATE FUNCTION agentmarket_private.finish_provision_instance(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    machine_id text := p_result OPERATOR(pg_catalog.->>) 'machine_id';
BEGIN
    IF machine_id IS NULL OR machine_id !~ '^[A-Za-z0-9]{1,64}$' THEN
        RAISE EXCEPTION 'provision result of job % has no valid machine_id', (p_job).id
            USING ERRCODE = '22023', DETAIL = 'The result must hold the id of the created Fly machine.';
    END IF;
    UPDATE agentmarket.agent_instances i
       SET status = 'running',
           fly_machine_id = machine_id,
           fly_volume_id = COALESCE(p_result OPERATOR(pg_catalog.->>) 'volume_id', i.fly_volume_id),
           error_message = NULL
     WHERE i.id OPERATOR(pg_catalog.=) agentmarket_private.job_instance_id(p_job)
       AND i.status OPERATOR(pg_catalog.<>) 'destroyed';
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_provision_instance(agentmarket_private.jobs, jsonb) IS
    'Handler of fly.provision_instance: the instance becomes running with its machine id (and volume id).';

-- start/suspend/stop/destroy succeeded: the instance has the kind's status.
CREATE FUNCTION agentmarket_private.finish_instance_transition(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    target text;
BEGIN
    SELECT k.instance_status INTO STRICT target
      FROM agentmarket_private.job_kinds k WHERE k.kind OPERATOR(pg_catalog.=) (p_job).kind;
    UPDATE agentmarket.agent_instances i
       SET status = target, error_message = NULL
     WHERE i.id OPERATOR(pg_catalog.=) agentmarket_private.job_instance_id(p_job)
       AND i.status OPERATOR(pg_catalog.<>) 'destroyed';
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_instance_transition(agentmarket_private.jobs, jsonb) IS
    'Handler of fly.start_machine, fly.suspend_machine, fly.stop_machine, fly.destroy_instance: the instance takes the kind''s status.';

-- An instance job is dead: the owner sees why; a failed provision is an error.
CREATE FUNCTION agentmarket_private.instance_job_dead(p_job agentmarket_private.jobs)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    UPDATE agentmarket.agent_instances i
       SET status = CASE WHEN (p_job).kind OPERATOR(pg_catalog.=) 'fly.provision_instance' THEN 'error' ELSE i.status END,
           error_message = pg_catalog.left((p_job).kind || ' failed: ' || COALESCE((p_job).last_error, 'unknown error'), 1000)
     WHERE i.id OPERATOR(pg_catalog.=) agentmarket_private.job_instance_id(p_job)
       AND i.status OPERATOR(pg_catalog.<>) 'destroyed';
END
$$;
COMMENT ON FUNCTION agentmarket_private.instance_job_dead(agentmarket_private.jobs) IS
    'Dead handler of instance jobs: error_message gets the last error; a dead provision makes the instance error.';

-- Stripe kinds without an effect of their own yet: the result stays on the job.
CREATE FUNCTION agentmarket_private.finish_store_result(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
BEGIN
    -- finish_job stores the result on the job; nothing else to apply.
    RETURN;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_store_result(agentmarket_private.jobs, jsonb) IS
    'Handler of kinds whose result is only recorded on the job (until a capability gives them a handler).';

-- stripe.create_customer succeeded: the user's customer id, when not set yet.
CREATE FUNCTION agentmarket_private.finish_stripe_customer(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    IF (p_job).payload ? 'user_id' AND p_result OPERATOR(pg_catalog.->>) 'id' LIKE 'cus\_%' THEN
        UPDATE agentmarket.users u SET stripe_customer_id = p_result OPERATOR(pg_catalog.->>) 'id'
         WHERE u.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'user_id')::uuid
           AND u.stripe_customer_id IS NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_stripe_customer(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_customer: sets users.stripe_customer_id of payload.user_id when it has none.';

-- stripe.create_account succeeded: the creator's Connect account id.
CREATE FUNCTION agentmarket_private.finish_stripe_account(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    IF (p_job).payload ? 'user_id' AND p_result OPERATOR(pg_catalog.->>) 'id' LIKE 'acct\_%' THEN
        UPDATE agentmarket.users u SET stripe_connect_account_id = p_result OPERATOR(pg_catalog.->>) 'id'
         WHERE u.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'user_id')::uuid
           AND u.stripe_connect_account_id IS NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_stripe_account(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_account: sets users.stripe_connect_account_id of payload.user_id when it has none.';

REVOKE ALL ON FUNCTION agentmarket_private.job_instance_id(agentmarket_private.jobs),
    agentmarket_private.finish_provision_instance(agentmarket_private.jobs, jsonb),
    agentmarket_private.finish_instance_transition(agentmarket_private.jobs, jsonb),
    agentmarket_private.instance_job_dead(agentmarket_private.jobs),
    agentmarket_private.finish_store_result(agentmarket_private.jobs, jsonb),
    agentmarket_private.finish_stripe_customer(agentmarket_private.jobs, jsonb),
    agentmarket_private.finish_stripe_account(agentmarket_private.jobs, jsonb) FROM PUBLIC;

INSERT INTO agentmarket_private.job_kinds
    (kind, provider, endpoint, instance_status, serialize_on, handler, dead_handler, max_attempts, description) VALUES
  ('fly.provision_instance', 'fly', NULL, 'running', 'instance_id',
   'agentmarket_private.finish_provision_instance(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Create the instance''s Fly app, volume and machine, and wait until it has started.'),
  ('fly.start_machine', 'fly', NULL, 'running', 'instance_id',
   'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Start (resume) the instance''s machine and wait until it has started.'),
  ('fly.suspend_machine', 'fly', NULL, 'suspended', 'instance_id',
   'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Suspend the instance''s machine and wait until it is suspended.'),
  ('fly.stop_machine', 'fly', NULL, 'stopped', 'instance_id',
   'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Stop the instance''s machine and wait until it is stopped.'),
  ('fly.destroy_instance', 'fly', NULL, 'destroyed', 'instance_id',
   'agentmarket_private.finish_instance_transition(agentmarket_private.jobs,jsonb)',
   'agentmarket_private.instance_job_dead(agentmarket_private.jobs)', 10,
   'Destroy the instance''s machine (force), its volume and its app.'),
  ('stripe.create_customer', 'stripe', '/v1/customers', NULL, NULL,
   'agentmarket_private.finish_stripe_customer(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create a Stripe customer; sets users.stripe_customer_id of payload.user_id.'),
  ('stripe.create_checkout_session', 'stripe', '/v1/checkout/sessions', NULL, NULL,
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create a Checkout session (mode=payment for top-up packs, mode=subscription for plans).'),
  ('stripe.create_refund', 'stripe', '/v1/refunds', NULL, NULL,
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Refund a payment intent, fully or partly.'),
  ('stripe.create_account', 'stripe', '/v1/accounts', NULL, NULL,
   'agentmarket_private.finish_stripe_account(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create an Express connected account for a creator; sets users.stripe_connect_account_id.'),
  ('stripe.create_account_link', 'stripe', '/v1/account_links', NULL, NULL,
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Create an onboarding link for a creator''s connected account.'),
  ('stripe.create_transfer', 'stripe', '/v1/transfers', NULL, NULL,
   'agentmarket_private.finish_store_result(agentmarket_private.jobs,jsonb)', NULL, 8,
   'Transfer a creator''s payout to their connected account.');

------------------------------------------------------------------------------
-- Enqueue
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket_private.enqueue_job(
    p_kind text, p_payload jsonb, p_idempotency_key text DEFAULT NULL, p_run_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    k agentmarket_private.job_kinds;
    job_id bigint;
BEGIN
    IF p_kind IS NULL OR p_payload IS NULL THEN
        RAISE EXCEPTION 'job kind and payload must not be null' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.jsonb_typeof(p_payload) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'job payload must be a JSON object' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO k FROM agentmarket_private.job_kinds jk WHERE jk.kind OPERATOR(pg_catalog.=) p_kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown job kind "%"', p_kind
            USING ERRCODE = '22023', HINT = 'The kinds are listed in agentmarket_private.job_kinds.';
    END IF;
    IF k.serialize_on IS NOT NULL AND NOT p_payload ? k.serialize_on THEN
        RAISE EXCEPTION 'job payload of kind "%" needs "%"', p_kind, k.serialize_on USING ERRCODE = '22023';
    END IF;
    IF p_idempotency_key IS NOT NULL AND pg_catalog.length(p_idempotency_key) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'idempotency key must have 1 to 255 characters' USING ERRCODE = '22023';
    END IF;
    -- A key names one effect: enqueuing it again returns the existing job.
    INSERT INTO agentmarket_private.jobs (kind, payload, idempotency_key, run_at, max_attempts, serial_key)
    VALUES (p_kind, p_payload,
            COALESCE(p_idempotency_key, p_kind || ':' || pg_catalog.gen_random_uuid()::text),
            COALESCE(p_run_at, pg_catalog.now()), k.max_attempts,
            p_payload OPERATOR(pg_catalog.->>) k.serialize_on)
    ON CONFLICT ON CONSTRAINT jobs_idempotency_key_unique DO NOTHING
    RETURNING id INTO job_id;
    IF job_id IS NULL THEN
        SELECT j.id INTO job_id FROM agentmarket_private.jobs j
         WHERE j.idempotency_key OPERATOR(pg_catalog.=) p_idempotency_key;
        RETURN job_id;
    END IF;
    PERFORM pg_catalog.pg_notify('agentmarket_jobs', p_kind);
    RETURN job_id;
END
$$;
COMMENT ON FUNCTION agentmarket_private.enqueue_job(text, jsonb, text, timestamptz) IS
    'Adds a job to the outbox in the caller''s transaction and wakes the sidecars on commit; the same idempotency key returns the existing job.';
REVOKE ALL ON FUNCTION agentmarket_private.enqueue_job(text, jsonb, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.enqueue_job(text, jsonb, text, timestamptz) TO service_role;

-- The Fly app of an instance has a name derived from the instance id alone, so
-- a replayed create finds the app it made before (Fly answers 422 name_taken).
CREATE FUNCTION agentmarket_private.fly_app_name(p_instance_id uuid)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT 'am-' || replace(p_instance_id::text, '-', '')
$$;
COMMENT ON FUNCTION agentmarket_private.fly_app_name(uuid) IS
    'Deterministic Fly app name of an instance: am- followed by the instance id''s 32 hex digits.';
REVOKE ALL ON FUNCTION agentmarket_private.fly_app_name(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.fly_app_name(uuid) TO service_role;

-- Instance jobs carry only the instance id: what to create (image, size,
-- region) is read when the job is claimed, so it is never stale.  Asking for
-- the change that is already the instance's last pending job returns that job.
CREATE FUNCTION agentmarket_private.enqueue_instance_job(p_instance_id uuid, p_kind text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    last_pending agentmarket_private.jobs;
BEGIN
    IF p_instance_id IS NULL THEN
        RAISE EXCEPTION 'instance id must not be null' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT FROM agentmarket_private.job_kinds k
                    WHERE k.kind OPERATOR(pg_catalog.=) p_kind AND k.provider OPERATOR(pg_catalog.=) 'fly') THEN
        RAISE EXCEPTION 'unknown instance job kind "%"', p_kind USING ERRCODE = '22023';
    END IF;
    SELECT * INTO last_pending FROM agentmarket_private.jobs j
     WHERE j.serial_key OPERATOR(pg_catalog.=) p_instance_id::text
       AND j.status IN ('queued', 'running')
     ORDER BY j.id DESC LIMIT 1;
    IF FOUND AND last_pending.kind OPERATOR(pg_catalog.=) p_kind AND last_pending.status OPERATOR(pg_catalog.=) 'queued' THEN
        RETURN last_pending.id;
    END IF;
    RETURN agentmarket_private.enqueue_job(p_kind, pg_catalog.jsonb_build_object('instance_id', p_instance_id));
END
$$;
COMMENT ON FUNCTION agentmarket_private.enqueue_instance_job(uuid, text) IS
    'Enqueues a Fly job (provision, start, suspend, stop, destroy) for an instance in the caller''s transaction; a duplicate of its last queued job returns that job.';
REVOKE ALL ON FUNCTION agentmarket_private.enqueue_instance_job(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.enqueue_instance_job(uuid, text) TO service_role;

-- Stripe jobs: params is the API request's parameters as nested JSON (the
-- sidecar form-encodes it with bracket nesting); context is kept for handlers.
CREATE FUNCTION agentmarket_private.enqueue_stripe_job(
    p_kind text, p_params jsonb, p_idempotency_key text, p_context jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM agentmarket_private.job_kinds k
                    WHERE k.kind OPERATOR(pg_catalog.=) p_kind AND k.provider OPERATOR(pg_catalog.=) 'stripe') THEN
        RAISE EXCEPTION 'unknown Stripe job kind "%"', p_kind USING ERRCODE = '22023';
    END IF;
    IF p_params IS NULL OR pg_catalog.jsonb_typeof(p_params) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'Stripe parameters must be a JSON object' USING ERRCODE = '22023';
    END IF;
    IF p_idempotency_key IS NULL THEN
        RAISE EXCEPTION 'Stripe jobs need an idempotency key'
            USING ERRCODE = '22023', HINT = 'Derive it from the row the call is about, e.g. refund:<purchase id>.';
    END IF;
    IF p_context IS NULL OR pg_catalog.jsonb_typeof(p_context) OPERATOR(pg_catalog.<>) 'object' OR p_context ? 'params' THEN
        RAISE EXCEPTION 'Stripe job context must be a JSON object without "params"' USING ERRCODE = '22023';
    END IF;
    RETURN agentmarket_private.enqueue_job(p_kind,
        p_context OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('params', p_params), p_idempotency_key);
END
$$;
COMMENT ON FUNCTION agentmarket_private.enqueue_stripe_job(text, jsonb, text, jsonb) IS
    'Enqueues a Stripe call: kind names the endpoint, params its form parameters (nested JSON), the key its Idempotency-Key; context (e.g. user_id) is for the handler.';
REVOKE ALL ON FUNCTION agentmarket_private.enqueue_stripe_job(text, jsonb, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.enqueue_stripe_job(text, jsonb, text, jsonb) TO service_role;

------------------------------------------------------------------------------
-- Claim, finish, fail
------------------------------------------------------------------------------

-- What the sidecar needs to perform a job, decided here so that the sidecar
-- makes no business decision.  "refuse" set means: do not call, fail the job
-- permanently with that reason.
CREATE FUNCTION agentmarket_private.job_request(p_job agentmarket_private.jobs)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    k agentmarket_private.job_kinds;
    inst_id uuid;
    i record;
    image text;
    volume_gb integer;
    guest jsonb;
    machine_config jsonb;
    refuse text;
BEGIN
    SELECT * INTO STRICT k FROM agentmarket_private.job_kinds jk WHERE jk.kind OPERATOR(pg_catalog.=) (p_job).kind;
    IF k.provider OPERATOR(pg_catalog.=) 'stripe' THEN
        RETURN pg_catalog.jsonb_build_object(
            'method', 'POST', 'path', k.endpoint,
            'params', COALESCE((p_job).payload OPERATOR(pg_catalog.->) 'params', '{}'::jsonb),
            'idempotency_key', (p_job).idempotency_key);
    END IF;

    inst_id := agentmarket_private.job_instance_id(p_job);
    SELECT ai.region, ai.status, ai.fly_app_name, NULLIF(ai.fly_machine_id, '') AS machine_id,
           ai.fly_volume_id, a.fly_machine_size, a.fly_machine_memory_mb,
           COALESCE(own.docker_image, cur.docker_image, a.docker_image) AS image
      INTO i
      FROM agentmarket.agent_instances ai
      JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) ai.agent_id
      LEFT JOIN agentmarket.agent_versions own ON own.id OPERATOR(pg_catalog.=) ai.agent_version_id
      LEFT JOIN agentmarket.agent_versions cur ON cur.agent_id OPERATOR(pg_catalog.=) a.id AND cur.is_current
     WHERE ai.id OPERATOR(pg_catalog.=) inst_id;
    IF NOT FOUND THEN
        -- The row is gone (its user was deleted): only a destroy still makes sense.
        RETURN pg_catalog.jsonb_build_object(
            'instance_id', inst_id, 'app_name', agentmarket_private.fly_app_name(inst_id),
            'machine_id', NULL, 'volume_id', NULL,
            'refuse', CASE WHEN (p_job).kind OPERATOR(pg_catalog.=) 'fly.destroy_instance' THEN NULL
                           ELSE 'instance ' || inst_id || ' no longer exists' END);
    END IF;

    IF (p_job).kind OPERATOR(pg_catalog.=) 'fly.provision_instance' THEN
        IF i.status OPERATOR(pg_catalog.=) 'destroyed' THEN
            refuse := 'instance was destroyed before it was provisioned';
        ELSIF i.image IS NULL THEN
            refuse := 'agent has no docker image to run';
        END IF;
        volume_gb := agentmarket_private.setting('fly_volume_size_gb')::integer;
        guest := pg_catalog.jsonb_build_object(
            'cpu_kind', CASE WHEN i.fly_machine_size LIKE 'performance-%' THEN 'performance' ELSE 'shared' END,
            'cpus', COALESCE(pg_catalog.substring(i.fly_machine_size, '([0-9]+)x$')::integer, 1),
            'memory_mb', i.fly_machine_memory_mb);
        machine_config := pg_catalog.jsonb_build_object(
            'image', i.image, 'guest', guest,
            'metadata', pg_catalog.jsonb_build_object('agentmarket_instance', inst_id::text),
            'restart', pg_catalog.jsonb_build_object('policy', 'on-failure'));
        IF volume_gb > 0 THEN
            -- The sidecar puts the created volume's id into mounts[0].volume.
            machine_config := machine_config OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('mounts',
                pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                    'volume', i.fly_volume_id, 'path', agentmarket_private.setting('fly_volume_path'))));
        END IF;
        RETURN pg_catalog.jsonb_build_object(
            'instance_id', inst_id, 'app_name', i.fly_app_name, 'region', i.region,
            'machine_id', i.machine_id, 'volume_id', i.fly_volume_id,
            'volume', CASE WHEN volume_gb > 0 THEN pg_catalog.jsonb_build_object(
                          'name', 'data', 'region', i.region, 'size_gb', volume_gb, 'encrypted', true) END,
            'machine', pg_catalog.jsonb_build_object('region', i.region, 'config', machine_config),
            'refuse', refuse);
    END IF;

    IF (p_job).kind OPERATOR(pg_catalog.<>) 'fly.destroy_instance' THEN
        IF i.status OPERATOR(pg_catalog.=) 'destroyed' THEN
            refuse := 'instance is destroyed';
        ELSIF i.machine_id IS NULL THEN
            refuse := 'instance has no machine (it was never provisioned)';
        END IF;
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'instance_id', inst_id, 'app_name', i.fly_app_name, 'region', i.region,
        'machine_id', i.machine_id, 'volume_id', i.fly_volume_id, 'refuse', refuse);
END
$$;
COMMENT ON FUNCTION agentmarket_private.job_request(agentmarket_private.jobs) IS
    'The request a claimed job hands to the sidecar: Fly app/volume/machine bodies for instance jobs, method/path/params/idempotency key for Stripe jobs.';
REVOKE ALL ON FUNCTION agentmarket_private.job_request(agentmarket_private.jobs) FROM PUBLIC;

-- A job has reached its end: run the kind's dead handler.
CREATE FUNCTION agentmarket_private.run_dead_handler(p_job agentmarket_private.jobs)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    h regprocedure;
BEGIN
    SELECT k.dead_handler INTO h FROM agentmarket_private.job_kinds k WHERE k.kind OPERATOR(pg_catalog.=) (p_job).kind;
    IF h IS NOT NULL THEN
        EXECUTE pg_catalog.format('SELECT %s($1)', h::oid::regproc) USING p_job;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.run_dead_handler(agentmarket_private.jobs) IS
    'Applies the final failure of a job through its kind''s dead handler, if it has one.';
REVOKE ALL ON FUNCTION agentmarket_private.run_dead_handler(agentmarket_private.jobs) FROM PUBLIC;

CREATE FUNCTION agentmarket_private.claim_jobs(p_worker text, p_max integer, p_lease interval)
RETURNS TABLE (job_id bigint, kind text, provider text, attempt integer, idempotency_key text, request jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    expired agentmarket_private.jobs;
    ids bigint[];
    more bigint[];
BEGIN
    IF p_worker IS NULL OR p_worker !~ '^[A-Za-z0-9._:@/-]{1,200}$' THEN
        RAISE EXCEPTION 'invalid worker name' USING ERRCODE = '22023',
            DETAIL = 'A worker name has 1 to 200 letters, digits and ._:@/- characters.';
    END IF;
    IF p_max IS NULL OR p_max NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'claim size must be between 1 and 10000' USING ERRCODE = '22023';
    END IF;
    IF p_lease IS NULL OR p_lease < interval '1 second' OR p_lease > interval '1 day' THEN
        RAISE EXCEPTION 'lease must be between 1 second and 1 day' USING ERRCODE = '22023';
    END IF;

    -- A job whose last allowed attempt lost its lease (its worker died or hung)
    -- is dead rather than retried forever.
    FOR expired IN
        UPDATE agentmarket_private.jobs j
           SET status = 'dead', finished_at = pg_catalog.now(),
               last_error = pg_catalog.format('lease of worker %s expired on attempt %s of %s%s',
                   j.lease_owner, j.attempts, j.max_attempts,
                   COALESCE('; earlier: ' || j.last_error, '')),
               lease_owner = NULL, lease_expires_at = NULL
         WHERE j.id IN (SELECT e.id FROM agentmarket_private.jobs e
                         WHERE e.status OPERATOR(pg_catalog.=) 'running'
                           AND e.lease_expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
                           AND e.attempts OPERATOR(pg_catalog.>=) e.max_attempts
                         LIMIT 100 FOR UPDATE SKIP LOCKED)
        RETURNING j.*
    LOOP
        PERFORM agentmarket_private.run_dead_handler(expired);
    END LOOP;

    -- Expired leases first (they have waited longest), then queued jobs by due
    -- time.  A job waits while an earlier job with its serial key is pending.
    SELECT pg_catalog.array_agg(c.id) INTO ids FROM (
        SELECT e.id FROM agentmarket_private.jobs e
         WHERE e.status OPERATOR(pg_catalog.=) 'running'
           AND e.lease_expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
           AND e.attempts OPERATOR(pg_catalog.<) e.max_attempts
           AND (e.serial_key IS NULL OR NOT EXISTS (
                SELECT FROM agentmarket_private.jobs p
                 WHERE p.serial_key OPERATOR(pg_catalog.=) e.serial_key AND p.id OPERATOR(pg_catalog.<) e.id
                   AND p.status IN ('queued', 'running')))
         ORDER BY e.lease_expires_at
         LIMIT p_max FOR UPDATE SKIP LOCKED) c;
    IF COALESCE(pg_catalog.cardinality(ids), 0) OPERATOR(pg_catalog.<) p_max THEN
        SELECT pg_catalog.array_agg(c.id) INTO more FROM (
            SELECT q.id FROM agentmarket_private.jobs q
             WHERE q.status OPERATOR(pg_catalog.=) 'queued'
               AND q.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()
               AND (q.serial_key IS NULL OR NOT EXISTS (
                    SELECT FROM agentmarket_private.jobs p
                     WHERE p.serial_key OPERATOR(pg_catalog.=) q.serial_key AND p.id OPERATOR(pg_catalog.<) q.id
                       AND p.status IN ('queued', 'running')))
             ORDER BY q.run_at, q.id
             LIMIT p_max OPERATOR(pg_catalog.-) COALESCE(pg_catalog.cardinality(ids), 0)
             FOR UPDATE SKIP LOCKED) c;
        ids := COALESCE(ids, '{}') OPERATOR(pg_catalog.||) COALESCE(more, '{}');
    END IF;
    IF COALESCE(pg_catalog.cardinality(ids), 0) OPERATOR(pg_catalog.=) 0 THEN
        RETURN;
    END IF;

    RETURN QUERY
    WITH claimed AS (
        UPDATE agentmarket_private.jobs j
           SET status = 'running', attempts = j.attempts OPERATOR(pg_catalog.+) 1,
               lease_owner = p_worker, lease_expires_at = pg_catalog.now() OPERATOR(pg_catalog.+) p_lease
         WHERE j.id OPERATOR(pg_catalog.=) ANY (ids)
        RETURNING j.*
    )
    SELECT c.id, c.kind, k.provider, c.attempts, c.idempotency_key,
           agentmarket_private.job_request(c::agentmarket_private.jobs)
      FROM claimed c
      JOIN agentmarket_private.job_kinds k ON k.kind OPERATOR(pg_catalog.=) c.kind
     ORDER BY pg_catalog.array_position(ids, c.id);
END
$$;
COMMENT ON FUNCTION agentmarket_private.claim_jobs(text, integer, interval) IS
    'Leases up to max due jobs to worker (FOR UPDATE SKIP LOCKED, by due time; expired leases are claimable again) and returns what the sidecar needs to perform each.';
REVOKE ALL ON FUNCTION agentmarket_private.claim_jobs(text, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.claim_jobs(text, integer, interval) TO service_role;

-- The job locked, when worker still holds its lease; NULL otherwise.
CREATE FUNCTION agentmarket_private.lock_leased_job(p_job_id bigint, p_worker text)
RETURNS agentmarket_private.jobs
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    j agentmarket_private.jobs;
BEGIN
    IF p_job_id IS NULL OR p_worker IS NULL THEN
        RAISE EXCEPTION 'job id and worker must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO j FROM agentmarket_private.jobs WHERE id OPERATOR(pg_catalog.=) p_job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', p_job_id USING ERRCODE = 'P0002';
    END IF;
    -- Another worker reclaimed it after our lease expired, or it is over:
    -- that worker's outcome counts, not ours.
    IF j.status OPERATOR(pg_catalog.<>) 'running' OR j.lease_owner OPERATOR(pg_catalog.<>) p_worker THEN
        RETURN NULL;
    END IF;
    RETURN j;
END
$$;
COMMENT ON FUNCTION agentmarket_private.lock_leased_job(bigint, text) IS
    'Locks a job and returns it if worker holds its lease; NULL when the lease was lost or the job is over.';
REVOKE ALL ON FUNCTION agentmarket_private.lock_leased_job(bigint, text) FROM PUBLIC;

CREATE FUNCTION agentmarket_private.finish_job(p_job_id bigint, p_result jsonb, p_worker text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    j agentmarket_private.jobs;
    h regprocedure;
BEGIN
    IF p_result IS NULL OR pg_catalog.jsonb_typeof(p_result) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'job result must be a JSON object' USING ERRCODE = '22023';
    END IF;
    j := agentmarket_private.lock_leased_job(p_job_id, p_worker);
    IF j.id IS NULL THEN
        RETURN false;
    END IF;
    SELECT k.handler INTO STRICT h FROM agentmarket_private.job_kinds k WHERE k.kind OPERATOR(pg_catalog.=) j.kind;
    EXECUTE pg_catalog.format('SELECT %s($1, $2)', h::oid::regproc) USING j, p_result;
    UPDATE agentmarket_private.jobs
       SET status = 'succeeded', result = p_result, finished_at = pg_catalog.now(),
           lease_owner = NULL, lease_expires_at = NULL
     WHERE id OPERATOR(pg_catalog.=) p_job_id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_job(bigint, jsonb, text) IS
    'Records a job''s success and applies its effect through the kind''s handler, once: false (and nothing applied) when worker no longer holds the lease.';
REVOKE ALL ON FUNCTION agentmarket_private.finish_job(bigint, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.finish_job(bigint, jsonb, text) TO service_role;

-- Retry delay after attempt n: base * 2^(n-1) capped, with "equal jitter"
-- (half fixed, half random) so that failed jobs do not come back in a herd.
CREATE FUNCTION agentmarket_private.job_backoff(p_attempt integer)
RETURNS interval
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    base numeric := agentmarket_private.setting('job_backoff_base_seconds')::numeric;
    cap numeric := agentmarket_private.setting('job_backoff_max_seconds')::numeric;
    d numeric;
BEGIN
    d := LEAST(cap, base * pg_catalog.power(2::numeric, LEAST(GREATEST(p_attempt, 1) - 1, 30)));
    RETURN pg_catalog.make_interval(secs => (d / 2 + pg_catalog.random()::numeric * d / 2)::double precision);
END
$$;
COMMENT ON FUNCTION agentmarket_private.job_backoff(integer) IS
    'Delay before the next attempt after attempt n: exponential from job_backoff_base_seconds, capped at job_backoff_max_seconds, with jitter.';
REVOKE ALL ON FUNCTION agentmarket_private.job_backoff(integer) FROM PUBLIC;

CREATE FUNCTION agentmarket_private.fail_job(
    p_job_id bigint, p_error text, p_retry_after interval, p_permanent boolean, p_worker text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    j agentmarket_private.jobs;
    delay interval;
BEGIN
    IF p_error IS NULL OR p_error OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a failed job needs an error message' USING ERRCODE = '22023';
    END IF;
    IF p_retry_after < interval '0' THEN
        RAISE EXCEPTION 'retry_after must not be negative' USING ERRCODE = '22023';
    END IF;
    j := agentmarket_private.lock_leased_job(p_job_id, p_worker);
    IF j.id IS NULL THEN
        RETURN NULL;
    END IF;
    IF COALESCE(p_permanent, false) OR j.attempts OPERATOR(pg_catalog.>=) j.max_attempts THEN
        UPDATE agentmarket_private.jobs
           SET status = 'dead', finished_at = pg_catalog.now(), lease_owner = NULL, lease_expires_at = NULL,
               last_error = pg_catalog.left(p_error, 2000)
         WHERE id OPERATOR(pg_catalog.=) p_job_id
        RETURNING * INTO j;
        PERFORM agentmarket_private.run_dead_handler(j);
        RETURN 'dead';
    END IF;
    -- Retry-After is a floor: never earlier than the provider asked.
    delay := GREATEST(agentmarket_private.job_backoff(j.attempts), COALESCE(p_retry_after, interval '0'));
    UPDATE agentmarket_private.jobs
       SET status = 'queued', run_at = pg_catalog.now() OPERATOR(pg_catalog.+) delay,
           lease_owner = NULL, lease_expires_at = NULL, last_error = pg_catalog.left(p_error, 2000)
     WHERE id OPERATOR(pg_catalog.=) p_job_id;
    RETURN 'queued';
END
$$;
COMMENT ON FUNCTION agentmarket_private.fail_job(bigint, text, interval, boolean, text) IS
    'Records a failed attempt: requeued after exponential backoff with jitter (never before retry_after), or dead when permanent or out of attempts. Returns the new status, NULL when worker lost the lease.';
REVOKE ALL ON FUNCTION agentmarket_private.fail_job(bigint, text, interval, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.fail_job(bigint, text, interval, boolean, text) TO service_role;

-- Many outcomes in one round trip and one commit: each is applied in its own
-- subtransaction, so a result the database refuses (its handler raised)
-- becomes a retryable failure of that job alone.
CREATE FUNCTION agentmarket_private.report_jobs(p_worker text, p_outcomes jsonb)
RETURNS TABLE (job_id bigint, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    o jsonb;
    id bigint;
    st text;
BEGIN
    IF p_outcomes IS NULL OR pg_catalog.jsonb_typeof(p_outcomes) OPERATOR(pg_catalog.<>) 'array' THEN
        RAISE EXCEPTION 'outcomes must be a JSON array' USING ERRCODE = '22023';
    END IF;
    -- Job id order: concurrent reports lock rows in the same order.
    FOR o IN SELECT e.value FROM pg_catalog.jsonb_array_elements(p_outcomes) e
              ORDER BY (e.value OPERATOR(pg_catalog.->>) 'id')::bigint
    LOOP
        id := (o OPERATOR(pg_catalog.->>) 'id')::bigint;
        BEGIN
            IF (o OPERATOR(pg_catalog.->) 'ok') OPERATOR(pg_catalog.=) 'true'::jsonb THEN
                st := CASE WHEN agentmarket_private.finish_job(id, o OPERATOR(pg_catalog.->) 'result', p_worker)
                           THEN 'succeeded' ELSE 'lease_lost' END;
            ELSE
                st := COALESCE(agentmarket_private.fail_job(id, o OPERATOR(pg_catalog.->>) 'error',
                          pg_catalog.make_interval(secs => (o OPERATOR(pg_catalog.->>) 'retry_after')::double precision),
                          COALESCE((o OPERATOR(pg_catalog.->>) 'permanent')::boolean, false), p_worker),
                          'lease_lost');
            END IF;
        EXCEPTION WHEN OTHERS THEN
            st := COALESCE(agentmarket_private.fail_job(id, pg_catalog.left('database refused the result: ' || SQLERRM, 2000),
                                                        NULL, false, p_worker), 'lease_lost');
        END;
        job_id := id;
        outcome := st;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION agentmarket_private.report_jobs(text, jsonb) IS
    'Reports many outcomes at once ([{"id", "ok": true, "result"} | {"id", "ok": false, "error", "retry_after", "permanent"}]), each through finish_job/fail_job in its own subtransaction; returns each job''s new status (succeeded, queued, dead) or lease_lost.';
REVOKE ALL ON FUNCTION agentmarket_private.report_jobs(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.report_jobs(text, jsonb) TO service_role;

CREATE FUNCTION agentmarket_private.retry_job(p_job_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    j agentmarket_private.jobs;
BEGIN
    SELECT * INTO j FROM agentmarket_private.jobs WHERE id OPERATOR(pg_catalog.=) p_job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', p_job_id USING ERRCODE = 'P0002';
    END IF;
    IF j.status NOT IN ('dead', 'queued') THEN
        RAISE EXCEPTION 'job % is %', p_job_id, j.status
            USING ERRCODE = '22023', DETAIL = 'Only dead or waiting jobs can be retried.';
    END IF;
    UPDATE agentmarket_private.jobs
       SET status = 'queued', attempts = 0, run_at = pg_catalog.now(), finished_at = NULL
     WHERE id OPERATOR(pg_catalog.=) p_job_id;
    PERFORM pg_catalog.pg_notify('agentmarket_jobs', j.kind);
END
$$;
COMMENT ON FUNCTION agentmarket_private.retry_job(bigint) IS
    'Operators: runs a dead (or waiting) job again now with a fresh attempt budget; its last error is kept until it next fails or succeeds.';
REVOKE ALL ON FUNCTION agentmarket_private.retry_job(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.retry_job(bigint) TO service_role;

CREATE FUNCTION agentmarket_private.prune_jobs(p_limit integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    keep_ok interval := pg_catalog.make_interval(days => agentmarket_private.setting('job_retention_days')::integer);
    keep_dead interval := pg_catalog.make_interval(days => agentmarket_private.setting('dead_job_retention_days')::integer);
    n integer;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'prune limit must be positive' USING ERRCODE = '22023';
    END IF;
    DELETE FROM agentmarket_private.jobs j
     WHERE j.id IN (SELECT f.id FROM agentmarket_private.jobs f
                     WHERE f.finished_at IS NOT NULL
                       AND ((f.status OPERATOR(pg_catalog.=) 'succeeded'
                             AND f.finished_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) keep_ok))
                         OR (f.status OPERATOR(pg_catalog.=) 'dead'
                             AND f.finished_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) keep_dead)))
                     ORDER BY f.finished_at
                     LIMIT p_limit);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket_private.prune_jobs(integer) IS
    'Deletes up to limit succeeded jobs older than job_retention_days and dead jobs older than dead_job_retention_days; returns how many. For pg_cron.';
REVOKE ALL ON FUNCTION agentmarket_private.prune_jobs(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket_private.prune_jobs(integer) TO service_role;

------------------------------------------------------------------------------
-- Operations views
------------------------------------------------------------------------------

CREATE VIEW agentmarket_private.queue_depth AS
    SELECT j.kind, j.status, pg_catalog.count(*) AS jobs,
           pg_catalog.min(j.run_at) AS oldest_run_at,
           pg_catalog.count(*) FILTER (WHERE j.status OPERATOR(pg_catalog.=) 'queued'
                                       AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()) AS due
      FROM agentmarket_private.jobs j
     GROUP BY j.kind, j.status;
COMMENT ON VIEW agentmarket_private.queue_depth IS
    'Jobs per kind and status, with the earliest run_at and how many queued ones are due now.';

CREATE VIEW agentmarket_private.queue_oldest_due AS
    SELECT j.id, j.kind, j.run_at, pg_catalog.now() OPERATOR(pg_catalog.-) j.run_at AS waiting, j.attempts, j.last_error
      FROM agentmarket_private.jobs j
     WHERE j.status OPERATOR(pg_catalog.=) 'queued' AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()
     ORDER BY j.run_at
     LIMIT 1;
COMMENT ON VIEW agentmarket_private.queue_oldest_due IS
    'The queued job that has been due longest (empty when nothing is due): the sidecars'' lag.';

CREATE VIEW agentmarket_private.dead_jobs AS
    SELECT j.id, j.kind, j.payload, j.attempts, j.last_error, j.created_at, j.finished_at
      FROM agentmarket_private.jobs j
     WHERE j.status OPERATOR(pg_catalog.=) 'dead';
COMMENT ON VIEW agentmarket_private.dead_jobs IS
    'Jobs that gave up, with their last error; agentmarket_private.retry_job(id) runs one again.';
REVOKE ALL ON agentmarket_private.queue_depth, agentmarket_private.queue_oldest_due,
    agentmarket_private.dead_jobs FROM PUBLIC;
GRANT SELECT ON agentmarket_private.queue_depth, agentmarket_private.queue_oldest_due,
    agentmarket_private.dead_jobs TO service_role;

------------------------------------------------------------------------------
-- Owner-facing instance controls
------------------------------------------------------------------------------

-- True when the calling role (the one PostgREST switched to, or the login
-- role) acts as service_role; SECURITY DEFINER does not change the role GUC.
CREATE FUNCTION agentmarket_private.caller_is_service()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
    SELECT pg_catalog.pg_has_role(
        CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' THEN session_user
             ELSE pg_catalog.current_setting('role')::name END,
        'service_role', 'MEMBER')
$$;
COMMENT ON FUNCTION agentmarket_private.caller_is_service() IS
    'True when the caller''s role is (a member of) service_role or a superuser.';
REVOKE ALL ON FUNCTION agentmarket_private.caller_is_service() FROM PUBLIC;

-- Checks that the caller may change the instance and that the change is valid
-- from the status the instance will have once its pending jobs are done; then
-- enqueues the job.
CREATE FUNCTION agentmarket_private.request_instance_change(p_instance_id uuid, p_kind text, p_from text[], p_verb text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    inst agentmarket.agent_instances;
    uid uuid := agentmarket.current_user_id();
    pending text;
    effective text;
BEGIN
    IF p_instance_id IS NULL THEN
        RAISE EXCEPTION 'instance id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO inst FROM agentmarket.agent_instances i WHERE i.id OPERATOR(pg_catalog.=) p_instance_id FOR UPDATE;
    IF NOT FOUND OR NOT (agentmarket_private.caller_is_service()
                         OR (uid IS NOT NULL AND inst.user_id OPERATOR(pg_catalog.=) uid)) THEN
        RAISE EXCEPTION 'instance % not found', p_instance_id USING ERRCODE = 'P0002';
    END IF;
    SELECT k.instance_status INTO pending
      FROM agentmarket_private.jobs j JOIN agentmarket_private.job_kinds k ON k.kind OPERATOR(pg_catalog.=) j.kind
     WHERE j.serial_key OPERATOR(pg_catalog.=) p_instance_id::text AND j.status IN ('queued', 'running')
     ORDER BY j.id DESC LIMIT 1;
    effective := COALESCE(pending, inst.status);
    IF NOT effective OPERATOR(pg_catalog.=) ANY (p_from) THEN
        RAISE EXCEPTION 'cannot % an instance that is %', p_verb, effective
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('Only an instance that is %s can be %s.',
                      pg_catalog.array_to_string(p_from, ' or '),
                      CASE p_verb WHEN 'suspend' THEN 'suspended' WHEN 'resume' THEN 'resumed' ELSE 'destroyed' END);
    END IF;
    RETURN agentmarket_private.enqueue_instance_job(p_instance_id, p_kind);
END
$$;
COMMENT ON FUNCTION agentmarket_private.request_instance_change(uuid, text, text[], text) IS
    'Shared body of suspend/resume/destroy_instance: access check (own instance or service_role), state check, enqueue.';
REVOKE ALL ON FUNCTION agentmarket_private.request_instance_change(uuid, text, text[], text) FROM PUBLIC;

CREATE FUNCTION agentmarket.suspend_instance(instance_id uuid)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
    SELECT agentmarket_private.request_instance_change(instance_id, 'fly.suspend_machine', ARRAY['running'], 'suspend')
$$;
COMMENT ON FUNCTION agentmarket.suspend_instance(uuid) IS
    'Suspends the caller''s running instance (its machine keeps its memory, no compute billed); returns the job id. 22023 unless running, P0002 when unknown or not the caller''s.';

CREATE FUNCTION agentmarket.resume_instance(instance_id uuid)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
    SELECT agentmarket_private.request_instance_change(instance_id, 'fly.start_machine', ARRAY['suspended', 'stopped'], 'resume')
$$;
COMMENT ON FUNCTION agentmarket.resume_instance(uuid) IS
    'Starts the caller''s suspended or stopped instance again; returns the job id. 22023 from any other status, P0002 when unknown or not the caller''s.';

CREATE FUNCTION agentmarket.destroy_instance(instance_id uuid)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
    SELECT agentmarket_private.request_instance_change(instance_id, 'fly.destroy_instance',
        ARRAY['provisioning', 'running', 'suspended', 'stopped', 'error'], 'destroy')
$$;
COMMENT ON FUNCTION agentmarket.destroy_instance(uuid) IS
    'Destroys the caller''s instance (machine, volume and Fly app); returns the job id. 22023 when already destroyed, P0002 when unknown or not the caller''s.';

REVOKE ALL ON FUNCTION agentmarket.suspend_instance(uuid), agentmarket.resume_instance(uuid),
    agentmarket.destroy_instance(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.suspend_instance(uuid), agentmarket.resume_instance(uuid),
    agentmarket.destroy_instance(uuid) TO authenticated, service_role;
-- security.sql: who may touch what.  Privileges say which statements a role
-- may run on which columns; row-level security says which rows.  Together:
--
--   * anon reads the marketplace (published agents, their versions and
--     skills, reviews, creators' public profiles) and nothing else;
--   * authenticated reads its own rows, writes only the columns a person may
--     set by hand (profile, projects, teams, listings, reviews, the
--     customisation of a hired instance); everything that is money, status,
--     statistics or infrastructure changes only through SECURITY DEFINER
--     functions owned by the extension owner, which privileges do not stop;
--   * service_role (the platform's back end and the sidecar) has every table
--     privilege Supabase gives it and passes every policy;
--   * agentmarket_analyst reads the views of schema agentmarket_analytics,
--     which carry no emails, no message or review text and no secrets.
--
-- Policies call the identity functions as (SELECT ...) so each runs once per
-- statement (an InitPlan), not once per row, and compare indexed columns.
-- No trigger guards a column: a trigger would also stop the definer
-- functions of the other capabilities.

DO $roles$
BEGIN
    -- Cluster-wide like anon/authenticated/service_role: created when
    -- missing, never dropped by DROP EXTENSION.
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles
                   WHERE rolname OPERATOR(pg_catalog.=) 'agentmarket_analyst') THEN
        CREATE ROLE agentmarket_analyst NOLOGIN NOINHERIT;
    END IF;
END
$roles$;

------------------------------------------------------------------------------
-- Schemas
------------------------------------------------------------------------------
REVOKE ALL ON SCHEMA agentmarket FROM anon, authenticated, service_role, agentmarket_analyst;
GRANT USAGE ON SCHEMA agentmarket TO anon, authenticated, service_role;

-- Private: no client role at all.  service_role may use the schema so that a
-- function there can be granted to the sidecar; it has no table privilege
-- there, so it reaches private data only through such functions.
REVOKE ALL ON SCHEMA agentmarket_private FROM anon, authenticated, service_role, agentmarket_analyst;
GRANT USAGE ON SCHEMA agentmarket_private TO service_role;

-- A deleted SSH config deletes its private key from agentmarket_private.secrets,
-- which its deleter (service_role, or a cascade from a deleted instance) has
-- no privilege on: the trigger runs as the extension owner instead.  Its
-- search_path is already pinned to pg_catalog.
ALTER FUNCTION agentmarket_private.drop_ssh_secret() SECURITY DEFINER;

-- ALTER DEFAULT PRIVILEGES ... IN SCHEMA cannot take away the global default
-- EXECUTE for PUBLIC (per-schema defaults only add to it), so every function
-- needs its own REVOKE.  Catch the ones written before this part; the
-- security_grants suite catches any later one.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA agentmarket, agentmarket_private FROM PUBLIC;

------------------------------------------------------------------------------
-- Table privileges
------------------------------------------------------------------------------
-- Start from nothing on every table present now, give service_role what
-- Supabase gives it (ALL) and a policy that lets it through even when the
-- role was created elsewhere without BYPASSRLS.
DO $tables$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT c.oid FROM pg_catalog.pg_class c
             WHERE c.relnamespace OPERATOR(pg_catalog.=) 'agentmarket'::regnamespace
               AND c.relkind OPERATOR(pg_catalog.=) 'r'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC, anon, authenticated, service_role, agentmarket_analyst', t);
        EXECUTE pg_catalog.format('GRANT ALL ON TABLE %s TO service_role', t);
        EXECUTE pg_catalog.format('CREATE POLICY service_role_all ON %s TO service_role USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$tables$;

-- Marketplace reads, for everyone.
GRANT SELECT ON agentmarket.agents, agentmarket.agent_versions, agentmarket.agent_skills,
                agentmarket.agent_reviews TO anon, authenticated;

-- users: the own row, all columns (the email of others is never reachable:
-- the policy shows no other row).  Only the profile is editable; role, email
-- and Stripe ids change through the back end.
GRANT SELECT ON agentmarket.users TO authenticated;
GRANT UPDATE (display_name, avatar_url) ON agentmarket.users TO authenticated;

-- agents: a creator's own listings; status, published_at, the statistics and
-- creator_id are not among the columns.
GRANT INSERT (creator_id, slug, name, tagline, description, icon_url, category, pricing_model,
              credits_per_session, github_repo_url, docker_image, openclaw_version,
              fly_machine_size, fly_machine_memory_mb, supported_relays, supported_models, tags)
    ON agentmarket.agents TO authenticated;
GRANT UPDATE (slug, name, tagline, description, icon_url, category, pricing_model,
              credits_per_session, github_repo_url, docker_image, openclaw_version,
              fly_machine_size, fly_machine_memory_mb, supported_relays, supported_models, tags)
    ON agentmarket.agents TO authenticated;
GRANT DELETE ON agentmarket.agents TO authenticated;

-- agent_versions: the creator describes versions; status, is_current and
-- published_at (what new hires run) change through functions.
GRANT INSERT (agent_id, version, git_ref, git_commit, docker_image, openclaw_version, changelog)
    ON agentmarket.agent_versions TO authenticated;
GRANT UPDATE (version, git_ref, git_commit, docker_image, openclaw_version, changelog)
    ON agentmarket.agent_versions TO authenticated;
GRANT DELETE ON agentmarket.agent_versions TO authenticated;

-- agent_skills: written by the agent's creator.
GRANT INSERT (agent_id, agent_version_id, skill_slug, name, description, source, version,
              revision_hash, required_env, required_bins)
    ON agentmarket.agent_skills TO authenticated;
GRANT UPDATE (agent_version_id, skill_slug, name, description, source, version,
              revision_hash, required_env, required_bins)
    ON agentmarket.agent_skills TO authenticated;
GRANT DELETE ON agentmarket.agent_skills TO authenticated;

-- projects, teams, team_agents: the owner's own organisation.
GRANT SELECT, DELETE ON agentmarket.projects, agentmarket.teams, agentmarket.team_agents TO authenticated;
GRANT INSERT (user_id, name, description), UPDATE (name, description) ON agentmarket.projects TO authenticated;
GRANT INSERT (project_id, name), UPDATE (name) ON agentmarket.teams TO authenticated;
GRANT INSERT (team_id, instance_id) ON agentmarket.team_agents TO authenticated;

-- agent_instances: hiring, status and Fly ids belong to the platform; the
-- owner customises.
GRANT SELECT ON agentmarket.agent_instances TO authenticated;
GRANT UPDATE (display_name, model_preference, team_id) ON agentmarket.agent_instances TO authenticated;

-- Read-only for the owner: everything money or metering.
GRANT SELECT ON agentmarket.sessions, agentmarket.messages, agentmarket.credit_balances,
                agentmarket.credit_transactions, agentmarket.usage_events, agentmarket.purchases,
                agentmarket.creator_earnings, agentmarket.ssh_configs TO authenticated;

-- agent_reviews: written by a hirer (the policies below say which rows).
GRANT INSERT (agent_id, user_id, rating, content), UPDATE (rating, content), DELETE
    ON agentmarket.agent_reviews TO authenticated;

-- relay_connections: config holds the relay's credentials and is never
-- selectable; a connection is made by the platform once the relay has proved
-- the external user (a hand-written row would hijack someone's chat), the
-- owner may disconnect.
GRANT SELECT (id, instance_id, relay, external_user_id, external_chat_id, status, created_at),
      DELETE
    ON agentmarket.relay_connections TO authenticated;

------------------------------------------------------------------------------
-- Policies
------------------------------------------------------------------------------

-- users
CREATE POLICY users_select_own ON agentmarket.users FOR SELECT TO authenticated
    USING (id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
CREATE POLICY users_update_own ON agentmarket.users FOR UPDATE TO authenticated
    USING (id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()))
    WITH CHECK (id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));

-- agents
CREATE POLICY agents_select_published ON agentmarket.agents FOR SELECT TO anon, authenticated
    USING (status OPERATOR(pg_catalog.=) 'published');
CREATE POLICY agents_select_creator ON agentmarket.agents FOR SELECT TO authenticated
    USING (creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
CREATE POLICY agents_select_admin ON agentmarket.agents FOR SELECT TO authenticated
    USING ((SELECT agentmarket.current_user_is_admin()));
-- Only users whose role is creator (or admin) list agents, as themselves.
CREATE POLICY agents_insert_creator ON agentmarket.agents FOR INSERT TO authenticated
    WITH CHECK (creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
                AND EXISTS (SELECT FROM agentmarket.users u
                            WHERE u.id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
                              AND u.role OPERATOR(pg_catalog.=) ANY (ARRAY['creator', 'admin'])));
CREATE POLICY agents_update_creator ON agentmarket.agents FOR UPDATE TO authenticated
    USING (creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()))
    WITH CHECK (creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
-- A listing that was never published may be deleted; the others are archived
-- through a function (instances and earnings refer to them).
CREATE POLICY agents_delete_creator ON agentmarket.agents FOR DELETE TO authenticated
    USING (creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
           AND status OPERATOR(pg_catalog.=) ANY (ARRAY['draft', 'rejected']));

-- agent_versions and agent_skills: like their agent.
CREATE POLICY agent_versions_select ON agentmarket.agent_versions FOR SELECT TO anon, authenticated
    USING (EXISTS (SELECT FROM agentmarket.agents a
                   WHERE a.id OPERATOR(pg_catalog.=) agent_versions.agent_id
                     AND (a.status OPERATOR(pg_catalog.=) 'published'
                          OR a.creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
                          OR (SELECT agentmarket.current_user_is_admin()))));
CREATE POLICY agent_versions_write_creator ON agentmarket.agent_versions FOR ALL TO authenticated
    USING (EXISTS (SELECT FROM agentmarket.agents a
                   WHERE a.id OPERATOR(pg_catalog.=) agent_versions.agent_id
                     AND a.creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())))
    WITH CHECK (EXISTS (SELECT FROM agentmarket.agents a
                        WHERE a.id OPERATOR(pg_catalog.=) agent_versions.agent_id
                          AND a.creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())));

CREATE POLICY agent_skills_select ON agentmarket.agent_skills FOR SELECT TO anon, authenticated
    USING (EXISTS (SELECT FROM agentmarket.agents a
                   WHERE a.id OPERATOR(pg_catalog.=) agent_skills.agent_id
                     AND (a.status OPERATOR(pg_catalog.=) 'published'
                          OR a.creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
                          OR (SELECT agentmarket.current_user_is_admin()))));
-- A per-version skill must name a version of the same agent.
CREATE POLICY agent_skills_write_creator ON agentmarket.agent_skills FOR ALL TO authenticated
    USING (EXISTS (SELECT FROM agentmarket.agents a
                   WHERE a.id OPERATOR(pg_catalog.=) agent_skills.agent_id
                     AND a.creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())))
    WITH CHECK (EXISTS (SELECT FROM agentmarket.agents a
                        WHERE a.id OPERATOR(pg_catalog.=) agent_skills.agent_id
                          AND a.creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()))
                AND (agent_version_id IS NULL
                     OR EXISTS (SELECT FROM agentmarket.agent_versions v
                                WHERE v.id OPERATOR(pg_catalog.=) agent_skills.agent_version_id
                                  AND v.agent_id OPERATOR(pg_catalog.=) agent_skills.agent_id)));

-- projects, teams, team_agents: the owner only.
CREATE POLICY projects_owner ON agentmarket.projects FOR ALL TO authenticated
    USING (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
CREATE POLICY teams_owner ON agentmarket.teams FOR ALL TO authenticated
    USING (EXISTS (SELECT FROM agentmarket.projects p
                   WHERE p.id OPERATOR(pg_catalog.=) teams.project_id
                     AND p.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())))
    WITH CHECK (EXISTS (SELECT FROM agentmarket.projects p
                        WHERE p.id OPERATOR(pg_catalog.=) teams.project_id
                          AND p.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())));
-- Both the team and the instance must be the caller's.
CREATE POLICY team_agents_owner ON agentmarket.team_agents FOR ALL TO authenticated
    USING (EXISTS (SELECT FROM agentmarket.teams t
                   JOIN agentmarket.projects p ON p.id OPERATOR(pg_catalog.=) t.project_id
                   WHERE t.id OPERATOR(pg_catalog.=) team_agents.team_id
                     AND p.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())))
    WITH CHECK (EXISTS (SELECT FROM agentmarket.teams t
                        JOIN agentmarket.projects p ON p.id OPERATOR(pg_catalog.=) t.project_id
                        WHERE t.id OPERATOR(pg_catalog.=) team_agents.team_id
                          AND p.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()))
                AND EXISTS (SELECT FROM agentmarket.agent_instances i
                            WHERE i.id OPERATOR(pg_catalog.=) team_agents.instance_id
                              AND i.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())));

-- agent_instances: the owner; the agent's creator sees only total_hires.
CREATE POLICY agent_instances_select_own ON agentmarket.agent_instances FOR SELECT TO authenticated
    USING (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
-- A team it is put in must be one of the owner's.
CREATE POLICY agent_instances_update_own ON agentmarket.agent_instances FOR UPDATE TO authenticated
    USING (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
                AND (team_id IS NULL
                     OR EXISTS (SELECT FROM agentmarket.teams t
                                JOIN agentmarket.projects p ON p.id OPERATOR(pg_catalog.=) t.project_id
                                WHERE t.id OPERATOR(pg_catalog.=) agent_instances.team_id
                                  AND p.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()))));

-- The owner reads; functions write.
CREATE POLICY sessions_select_own ON agentmarket.sessions FOR SELECT TO authenticated
    USING (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
-- Through the session.  The planner turns this into one hashed scan of the
-- caller's sessions (idx_sessions_user) per statement; a scalar per-row probe
-- of sessions_pkey measured slower in bench/rls, and would be much slower on
-- a request without a session filter.
CREATE POLICY messages_select_own ON agentmarket.messages FOR SELECT TO authenticated
    USING (EXISTS (SELECT FROM agentmarket.sessions s
                   WHERE s.id OPERATOR(pg_catalog.=) messages.session_id
                     AND s.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())));
CREATE POLICY credit_balances_select_own ON agentmarket.credit_balances FOR SELECT TO authenticated
    USING (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
CREATE POLICY credit_transactions_select_own ON agentmarket.credit_transactions FOR SELECT TO authenticated
    USING (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
CREATE POLICY usage_events_select_own ON agentmarket.usage_events FOR SELECT TO authenticated
    USING (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
CREATE POLICY purchases_select_own ON agentmarket.purchases FOR SELECT TO authenticated
    USING (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
CREATE POLICY creator_earnings_select_own ON agentmarket.creator_earnings FOR SELECT TO authenticated
    USING (creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));

-- agent_reviews: public; written by someone who hired the agent (any
-- instance of theirs, a destroyed one too: they used it) and is not its
-- creator; one per agent (the unique constraint answers 23505).
CREATE POLICY agent_reviews_select ON agentmarket.agent_reviews FOR SELECT TO anon, authenticated
    USING (true);
CREATE POLICY agent_reviews_insert_hirer ON agentmarket.agent_reviews FOR INSERT TO authenticated
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
                AND EXISTS (SELECT FROM agentmarket.agent_instances i
                            WHERE i.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
                              AND i.agent_id OPERATOR(pg_catalog.=) agent_reviews.agent_id)
                AND NOT EXISTS (SELECT FROM agentmarket.agents a
                                WHERE a.id OPERATOR(pg_catalog.=) agent_reviews.agent_id
                                  AND a.creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())));
CREATE POLICY agent_reviews_update_own ON agentmarket.agent_reviews FOR UPDATE TO authenticated
    USING (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
CREATE POLICY agent_reviews_delete_own ON agentmarket.agent_reviews FOR DELETE TO authenticated
    USING (user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id()));
-- Moderation: an admin removes abusive reviews.
CREATE POLICY agent_reviews_delete_admin ON agentmarket.agent_reviews FOR DELETE TO authenticated
    USING ((SELECT agentmarket.current_user_is_admin()));

-- relay_connections, ssh_configs: the owner of the instance.
CREATE POLICY relay_connections_owner ON agentmarket.relay_connections FOR SELECT TO authenticated
    USING (EXISTS (SELECT FROM agentmarket.agent_instances i
                   WHERE i.id OPERATOR(pg_catalog.=) relay_connections.instance_id
                     AND i.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())));
CREATE POLICY relay_connections_disconnect ON agentmarket.relay_connections FOR DELETE TO authenticated
    USING (EXISTS (SELECT FROM agentmarket.agent_instances i
                   WHERE i.id OPERATOR(pg_catalog.=) relay_connections.instance_id
                     AND i.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())));
CREATE POLICY ssh_configs_owner ON agentmarket.ssh_configs FOR SELECT TO authenticated
    USING (EXISTS (SELECT FROM agentmarket.agent_instances i
                   WHERE i.id OPERATOR(pg_catalog.=) ssh_configs.instance_id
                     AND i.user_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())));

------------------------------------------------------------------------------
-- Creators' public profile
------------------------------------------------------------------------------
-- Marketplace cards show who made an agent: the profile of every creator
-- (role creator, or author of a published agent) without email or Stripe ids.
-- Owned by the extension owner, so it reads users past their RLS; the
-- security barrier keeps a caller's functions from seeing filtered-out rows.
CREATE VIEW agentmarket.creator_profiles WITH (security_barrier = true) AS
SELECT u.id, u.display_name, u.avatar_url
  FROM agentmarket.users u
 WHERE u.role OPERATOR(pg_catalog.=) 'creator'
    OR EXISTS (SELECT FROM agentmarket.agents a
               WHERE a.creator_id OPERATOR(pg_catalog.=) u.id
                 AND a.status OPERATOR(pg_catalog.=) 'published');
COMMENT ON VIEW agentmarket.creator_profiles IS
    'Public profile (id, display name, avatar) of every creator, for marketplace cards; no email.';
REVOKE ALL ON agentmarket.creator_profiles FROM PUBLIC;
GRANT SELECT ON agentmarket.creator_profiles TO anon, authenticated, service_role;

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
-- credits.sql: the credit ledger (shared/DESIGN.md, Money).
--
-- Two pots per user in agentmarket.credit_balances (subscription, top-up) plus
-- held_credits, the sum of the user's active holds.  Every change to a pot is
-- one agentmarket.credit_transactions row; ledger rows are never updated or
-- deleted.  Every writer locks the user's balance row first (then, for holds,
-- the hold row), so all changes of one user are serialized on that row.
-- deduct_credits is in C (credits.c); the rest is here.

------------------------------------------------------------------------------
-- Constraints on the seed tables (added, none changed)
------------------------------------------------------------------------------
-- The row checks are C functions: PostgreSQL 15 rebuilds every CHECK
-- expression from its stored text in each statement that writes the table,
-- and for the ledger's list of type names that cost more than the insert
-- itself (bench/ledger).  A function call is a small expression to rebuild.
CREATE FUNCTION agentmarket_private.credit_transaction_shape_ok(type text, credit_type text, amount integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'credit_transaction_shape_ok'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.credit_transaction_shape_ok(text, text, integer) IS
    'CHECK of a ledger row: credit_type is subscription or topup; type is subscription_refresh (> 0, subscription), subscription_expiry (< 0, subscription), topup_purchase (> 0, topup), free_trial (> 0), session_deduct (< 0) or refund (> 0).';

CREATE FUNCTION agentmarket_private.credit_pots_ok(subscription_credits integer, topup_credits integer, held_credits integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'credit_pots_ok'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.credit_pots_ok(integer, integer, integer) IS
    'CHECK of a balance row: both pots >= 0, held_credits >= 0 and held_credits <= subscription + topup.';

ALTER TABLE agentmarket.credit_balances
  ADD COLUMN held_credits INTEGER NOT NULL DEFAULT 0,
  ADD CONSTRAINT credit_balances_pots_check
    CHECK (agentmarket_private.credit_pots_ok(subscription_credits, topup_credits, held_credits));
COMMENT ON COLUMN agentmarket.credit_balances.held_credits IS
    'Sum of the user''s active holds (agentmarket_private.credit_holds); available = subscription + topup - held.';
COMMENT ON CONSTRAINT credit_balances_pots_check ON agentmarket.credit_balances IS
    'No pot below zero; held credits between 0 and subscription + topup.';

ALTER TABLE agentmarket.credit_transactions
  ADD CONSTRAINT credit_transactions_type_check
    CHECK (agentmarket_private.credit_transaction_shape_ok(type, credit_type, amount));
COMMENT ON CONSTRAINT credit_transactions_type_check ON agentmarket.credit_transactions IS
    'type IN (subscription_refresh, subscription_expiry, topup_purchase, free_trial, session_deduct, refund), credit_type IN (subscription, topup), with the sign and pot each type allows (see credit_transaction_shape_ok).';
-- At most one free-trial grant per user, whoever asks for it.
CREATE UNIQUE INDEX credit_transactions_one_free_trial
    ON agentmarket.credit_transactions (user_id) WHERE type = 'free_trial';

-- The ledger is append-only: corrections are new rows.
CREATE FUNCTION agentmarket_private.credit_transactions_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    RAISE EXCEPTION 'the credit ledger is append-only'
        USING ERRCODE = '42501',
              DETAIL = pg_catalog.format('%s on agentmarket.credit_transactions is refused: rows are never updated or deleted.', TG_OP),
              HINT = 'Correct a balance with a new row (a grant or a refund).';
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_transactions_append_only() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on the credit ledger (42501).';
CREATE TRIGGER credit_transactions_append_only
    BEFORE UPDATE OR DELETE ON agentmarket.credit_transactions
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.credit_transactions_append_only();
CREATE TRIGGER credit_transactions_no_truncate
    BEFORE TRUNCATE ON agentmarket.credit_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION agentmarket_private.credit_transactions_append_only();
-- ALWAYS: the triggers fire under session_replication_role = replica too.
ALTER TABLE agentmarket.credit_transactions ENABLE ALWAYS TRIGGER credit_transactions_append_only;
ALTER TABLE agentmarket.credit_transactions ENABLE ALWAYS TRIGGER credit_transactions_no_truncate;

------------------------------------------------------------------------------
-- Private tables: holds and idempotency records
------------------------------------------------------------------------------
CREATE TABLE agentmarket_private.credit_holds (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES agentmarket.users(id) ON DELETE CASCADE,
  amount INTEGER NOT NULL CONSTRAINT credit_holds_amount_check CHECK (amount > 0),
  session_id UUID REFERENCES agentmarket.sessions(id) ON DELETE SET NULL,
  description TEXT,
  status TEXT NOT NULL DEFAULT 'active'
    CONSTRAINT credit_holds_status_check CHECK (status IN ('active', 'captured', 'released', 'expired')),
  captured_amount INTEGER,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at TIMESTAMPTZ NOT NULL,
  resolved_at TIMESTAMPTZ,
  CONSTRAINT credit_holds_captured_check
    CHECK ((status = 'captured') = (captured_amount IS NOT NULL)
           AND (captured_amount IS NULL OR captured_amount BETWEEN 0 AND amount)),
  CONSTRAINT credit_holds_resolved_check CHECK ((status = 'active') = (resolved_at IS NULL))
);
COMMENT ON TABLE agentmarket_private.credit_holds IS
    'Credit holds (authorizations) for metered work: active until captured, released or expired; resolved at most once.';
CREATE INDEX credit_holds_user_active ON agentmarket_private.credit_holds (user_id) WHERE status = 'active';
CREATE INDEX credit_holds_expiry_active ON agentmarket_private.credit_holds (expires_at) WHERE status = 'active';
CREATE INDEX credit_holds_session ON agentmarket_private.credit_holds (session_id);
REVOKE ALL ON TABLE agentmarket_private.credit_holds FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.credit_holds', '');

-- One row per (user, key): the operation, its arguments and its outcome.
-- No foreign key to users: a failed outcome is recorded by a separate
-- transaction (credits_idempotency.c) that may not see a user created in the
-- caller's own, still open transaction.
CREATE TABLE agentmarket_private.credit_idempotency (
  user_id UUID NOT NULL,
  idempotency_key TEXT NOT NULL
    CONSTRAINT credit_idempotency_key_check CHECK (idempotency_key <> '' AND length(idempotency_key) <= 255),
  operation TEXT NOT NULL,
  arguments JSONB NOT NULL,
  outcome JSONB, -- the result, or {sqlstate, message, detail} when failed
  failed BOOLEAN NOT NULL DEFAULT false,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT credit_idempotency_pkey PRIMARY KEY (user_id, idempotency_key)
);
COMMENT ON TABLE agentmarket_private.credit_idempotency IS
    'Outcomes of credit operations called with an idempotency key (unique per user); a repeat returns or raises the first outcome.';
REVOKE ALL ON TABLE agentmarket_private.credit_idempotency FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.credit_idempotency', '');

------------------------------------------------------------------------------
-- The result type of every balance-changing function
------------------------------------------------------------------------------
CREATE TYPE agentmarket.credit_state AS (
  subscription_credits integer,
  topup_credits integer,
  held_credits integer,
  available_credits integer
);
COMMENT ON TYPE agentmarket.credit_state IS
    'A user''s balances after a credit operation: the two pots, the credits held, and available = pots - held.';

------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------

-- Lock the user's balance row, creating it when missing; P0002 for an unknown user.
CREATE FUNCTION agentmarket_private.credit_lock_balance(p_user uuid)
RETURNS agentmarket.credit_balances
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    b agentmarket.credit_balances;
BEGIN
    IF p_user IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO b FROM agentmarket.credit_balances cb
     WHERE cb.user_id OPERATOR(pg_catalog.=) p_user FOR UPDATE;
    IF FOUND THEN
        RETURN b;
    END IF;
    IF NOT EXISTS (SELECT FROM agentmarket.users u WHERE u.id OPERATOR(pg_catalog.=) p_user) THEN
        RAISE EXCEPTION 'user not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No user has id %s.', p_user);
    END IF;
    INSERT INTO agentmarket.credit_balances (user_id) VALUES (p_user)
        ON CONFLICT ON CONSTRAINT credit_balances_user_id_key DO NOTHING;
    SELECT * INTO STRICT b FROM agentmarket.credit_balances cb
     WHERE cb.user_id OPERATOR(pg_catalog.=) p_user FOR UPDATE;
    RETURN b;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lock_balance(uuid) IS
    'Locks (creating when missing) the balance row of a user; P0002 for an unknown user.';

-- Apply pot and hold deltas to a locked balance row, one ledger row per pot touched.
CREATE FUNCTION agentmarket_private.credit_apply(
    p_user uuid, p_subscription_delta integer, p_topup_delta integer, p_held_delta integer,
    p_type text, p_description text DEFAULT NULL, p_session uuid DEFAULT NULL,
    p_stripe_payment_id text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    r agentmarket.credit_state;
BEGIN
    INSERT INTO agentmarket.credit_transactions
        (user_id, type, amount, credit_type, description, session_id, stripe_payment_id)
    SELECT p_user, p_type, v.delta, v.pot, p_description, p_session, p_stripe_payment_id
      FROM (VALUES (1, 'subscription', p_subscription_delta), (2, 'topup', p_topup_delta)) v(n, pot, delta)
     WHERE v.delta OPERATOR(pg_catalog.<>) 0
     ORDER BY v.n;
    BEGIN
        UPDATE agentmarket.credit_balances cb
           SET subscription_credits = cb.subscription_credits OPERATOR(pg_catalog.+) p_subscription_delta,
               topup_credits = cb.topup_credits OPERATOR(pg_catalog.+) p_topup_delta,
               held_credits = cb.held_credits OPERATOR(pg_catalog.+) p_held_delta
         WHERE cb.user_id OPERATOR(pg_catalog.=) p_user
        RETURNING cb.subscription_credits, cb.topup_credits, cb.held_credits,
                  cb.subscription_credits OPERATOR(pg_catalog.+) cb.topup_credits
                      OPERATOR(pg_catalog.-) cb.held_credits
        INTO STRICT r;
    EXCEPTION WHEN numeric_value_out_of_range THEN
        RAISE EXCEPTION 'balance out of range' USING ERRCODE = '22023',
            DETAIL = 'A pot would exceed 2147483647 credits.';
    END;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_apply(uuid, integer, integer, integer, text, text, uuid, text) IS
    'Applies deltas to a locked balance row and appends one ledger row per pot touched; returns the new state.';

-- The current state of a user (zeros without a balance row).
CREATE FUNCTION agentmarket_private.credit_state_of(p_user uuid)
RETURNS agentmarket.credit_state
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
    SELECT COALESCE(cb.subscription_credits, 0), COALESCE(cb.topup_credits, 0),
           COALESCE(cb.held_credits, 0),
           COALESCE(cb.subscription_credits OPERATOR(pg_catalog.+) cb.topup_credits
                    OPERATOR(pg_catalog.-) cb.held_credits, 0)
      FROM (SELECT p_user AS id) u
      LEFT JOIN agentmarket.credit_balances cb ON cb.user_id OPERATOR(pg_catalog.=) u.id
$$;
COMMENT ON FUNCTION agentmarket_private.credit_state_of(uuid) IS
    'A user''s balances as a credit_state (zeros when the user has no balance row).';

-- Argument checks shared by the functions below.
CREATE FUNCTION agentmarket_private.credit_check_amount(p_amount integer, p_allow_zero boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
BEGIN
    IF p_amount IS NULL OR p_amount OPERATOR(pg_catalog.<) 0
       OR (p_amount OPERATOR(pg_catalog.=) 0 AND NOT p_allow_zero) THEN
        RAISE EXCEPTION 'amount must be a positive number of credits' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The amount given was %s.', COALESCE(p_amount::text, 'null'));
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_check_amount(integer, boolean) IS
    'Raises 22023 unless amount is a positive integer (or zero when allowed).';

-- A session given with a ledger call must exist (P0002) and be the user's (22023).
CREATE FUNCTION agentmarket_private.credit_check_session(p_user uuid, p_session uuid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    owner uuid;
BEGIN
    IF p_session IS NULL THEN
        RETURN;
    END IF;
    SELECT s.user_id INTO owner FROM agentmarket.sessions s WHERE s.id OPERATOR(pg_catalog.=) p_session;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'session not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No session has id %s.', p_session);
    END IF;
    IF owner OPERATOR(pg_catalog.<>) p_user THEN
        RAISE EXCEPTION 'session belongs to another user' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('Session %s is not a session of user %s.', p_session, p_user);
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_check_session(uuid, uuid) IS
    'Raises P0002 for an unknown session and 22023 for a session of another user (as deduct_credits does).';

------------------------------------------------------------------------------
-- Idempotency
------------------------------------------------------------------------------

-- Claim a key: NULL when this call owns it now, else the first outcome (or its error).
CREATE FUNCTION agentmarket_private.credit_idempotency_claim(
    p_user uuid, p_key text, p_operation text, p_arguments jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    r agentmarket_private.credit_idempotency;
BEGIN
    IF p_key OPERATOR(pg_catalog.=) '' OR pg_catalog.length(p_key) OPERATOR(pg_catalog.>) 255 THEN
        RAISE EXCEPTION 'invalid idempotency key' USING ERRCODE = '22023',
            DETAIL = 'An idempotency key is 1 to 255 characters long.';
    END IF;
    -- A concurrent call with the same key blocks here until the first one ends.
    INSERT INTO agentmarket_private.credit_idempotency (user_id, idempotency_key, operation, arguments)
    VALUES (p_user, p_key, p_operation, p_arguments)
    ON CONFLICT ON CONSTRAINT credit_idempotency_pkey DO NOTHING;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT * INTO STRICT r FROM agentmarket_private.credit_idempotency i
     WHERE i.user_id OPERATOR(pg_catalog.=) p_user AND i.idempotency_key OPERATOR(pg_catalog.=) p_key;
    IF r.operation OPERATOR(pg_catalog.<>) p_operation OR r.arguments OPERATOR(pg_catalog.<>) p_arguments THEN
        RAISE EXCEPTION 'idempotency key already used with different arguments' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('Key "%s" was first used for %s(%s).', p_key, r.operation, r.arguments),
            HINT = 'Use a new key for a new operation.';
    END IF;
    IF r.outcome IS NULL THEN
        RAISE EXCEPTION 'idempotency key is in use by the same call' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('Key "%s" is being used by an unfinished call of this transaction.', p_key);
    END IF;
    IF r.failed AND COALESCE(r.outcome OPERATOR(pg_catalog.->>) 'detail', '') OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION USING ERRCODE = r.outcome OPERATOR(pg_catalog.->>) 'sqlstate',
            MESSAGE = r.outcome OPERATOR(pg_catalog.->>) 'message';
    ELSIF r.failed THEN
        RAISE EXCEPTION USING ERRCODE = r.outcome OPERATOR(pg_catalog.->>) 'sqlstate',
            MESSAGE = r.outcome OPERATOR(pg_catalog.->>) 'message',
            DETAIL = r.outcome OPERATOR(pg_catalog.->>) 'detail';
    END IF;
    RETURN r.outcome;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_idempotency_claim(uuid, text, text, jsonb) IS
    'Claims an idempotency key for a call (NULL) or returns the first outcome, raising it again when it was an error; 22023 when the key was used with other arguments.';

-- Record the successful outcome of a claimed key.
CREATE FUNCTION agentmarket_private.credit_idempotency_store(p_user uuid, p_key text, p_outcome jsonb)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog
AS $$
    UPDATE agentmarket_private.credit_idempotency i SET outcome = p_outcome
     WHERE i.user_id OPERATOR(pg_catalog.=) p_user AND i.idempotency_key OPERATOR(pg_catalog.=) p_key
$$;
COMMENT ON FUNCTION agentmarket_private.credit_idempotency_store(uuid, text, jsonb) IS
    'Stores the outcome of a call that claimed an idempotency key.';

-- Record a failed outcome in its own committed transaction (C, credits_idempotency.c).
CREATE FUNCTION agentmarket_private.credit_idempotency_record_failure(
    p_user uuid, p_key text, p_operation text, p_arguments jsonb,
    p_sqlstate text, p_message text, p_detail text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'credit_idempotency_record_failure'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmarket_private.credit_idempotency_record_failure(uuid, text, text, jsonb, text, text, text) IS
    'Records the failure of an idempotent call in a separate, committed transaction (a short-lived background worker), so that a retry raises it again although the caller rolls back.';

-- Whether an error is a recorded outcome: state-dependent refusals only.
CREATE FUNCTION agentmarket_private.credit_failure_is_outcome(p_sqlstate text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT p_sqlstate OPERATOR(pg_catalog.=) ANY (ARRAY['PT402', '22023'])
$$;
COMMENT ON FUNCTION agentmarket_private.credit_failure_is_outcome(text) IS
    'True for the SQLSTATEs an idempotency key records as a failed outcome (PT402, 22023).';

------------------------------------------------------------------------------
-- Grants, refresh, refunds
------------------------------------------------------------------------------
-- Every function below follows one pattern: check the arguments (22023, not
-- recorded), claim the idempotency key when one is given (a repeat returns the
-- first outcome here), lock the user's balance row, write, store the outcome.
-- A PT402/22023 refusal after the claim is recorded as the key's outcome.

CREATE FUNCTION agentmarket.grant_credits(
    user_id uuid, amount integer, credit_type text, type text, description text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, stripe_payment_id text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    p_user uuid := grant_credits.user_id;
    p_key text := grant_credits.idempotency_key;
    args jsonb;
    stored jsonb;
    claimed boolean := false;
    r agentmarket.credit_state;
    e_state text; e_message text; e_detail text;
BEGIN
    IF p_user IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(grant_credits.amount);
    IF grant_credits.credit_type IS NULL OR grant_credits.credit_type NOT IN ('subscription', 'topup') THEN
        RAISE EXCEPTION 'invalid credit_type' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('credit_type is "subscription" or "topup", not %s.',
                                       COALESCE(pg_catalog.quote_literal(grant_credits.credit_type), 'null'));
    END IF;
    IF grant_credits.type IS NULL OR grant_credits.type NOT IN ('topup_purchase', 'subscription_refresh', 'free_trial') THEN
        RAISE EXCEPTION 'invalid grant type' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('A grant''s type is topup_purchase, subscription_refresh or free_trial, not %s.',
                                       COALESCE(pg_catalog.quote_literal(grant_credits.type), 'null')),
            HINT = 'Deductions, refunds and expiry have their own functions.';
    END IF;
    IF (grant_credits.type = 'topup_purchase' AND grant_credits.credit_type <> 'topup')
       OR (grant_credits.type = 'subscription_refresh' AND grant_credits.credit_type <> 'subscription') THEN
        RAISE EXCEPTION 'grant type does not match the pot' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('%s credits go to the %s pot.', grant_credits.type,
                     CASE grant_credits.type WHEN 'topup_purchase' THEN 'topup' ELSE 'subscription' END);
    END IF;
    args := pg_catalog.jsonb_build_object('amount', grant_credits.amount, 'credit_type', grant_credits.credit_type,
        'type', grant_credits.type, 'description', grant_credits.description,
        'stripe_payment_id', grant_credits.stripe_payment_id);
    BEGIN
        IF p_key IS NOT NULL THEN
            stored := agentmarket_private.credit_idempotency_claim(p_user, p_key, 'grant_credits', args);
            IF stored IS NOT NULL THEN
                RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state, stored);
            END IF;
            claimed := true;
        END IF;
        PERFORM agentmarket_private.credit_lock_balance(p_user);
        IF grant_credits.type = 'free_trial' AND EXISTS (
               SELECT FROM agentmarket.credit_transactions t
                WHERE t.user_id = p_user AND t.type = 'free_trial') THEN
            RAISE EXCEPTION 'free trial already granted' USING ERRCODE = '23505',
                DETAIL = 'A user receives the free trial once.';
        END IF;
        r := agentmarket_private.credit_apply(p_user,
                 CASE grant_credits.credit_type WHEN 'subscription' THEN grant_credits.amount ELSE 0 END,
                 CASE grant_credits.credit_type WHEN 'topup' THEN grant_credits.amount ELSE 0 END,
                 0, grant_credits.type, grant_credits.description, NULL, grant_credits.stripe_payment_id);
        IF claimed THEN
            PERFORM agentmarket_private.credit_idempotency_store(p_user, p_key, pg_catalog.to_jsonb(r));
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
        IF claimed AND agentmarket_private.credit_failure_is_outcome(e_state) THEN
            PERFORM agentmarket_private.credit_idempotency_record_failure(
                p_user, p_key, 'grant_credits', args, e_state, e_message, NULLIF(e_detail, ''));
        END IF;
        RAISE;
    END;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket.grant_credits(uuid, integer, text, text, text, text, text) IS
    'Adds credits to a pot (type topup_purchase -> topup, subscription_refresh -> subscription, free_trial -> either, once per user); creates the balance row when missing; returns the new credit_state.';

CREATE FUNCTION agentmarket.refresh_subscription_credits(
    user_id uuid, amount integer, idempotency_key text DEFAULT NULL,
    stripe_payment_id text DEFAULT NULL, description text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    p_user uuid := refresh_subscription_credits.user_id;
    p_key text := refresh_subscription_credits.idempotency_key;
    args jsonb;
    stored jsonb;
    claimed boolean := false;
    b agentmarket.credit_balances;
    keep integer;
    r agentmarket.credit_state;
    e_state text; e_message text; e_detail text;
BEGIN
    IF p_user IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(refresh_subscription_credits.amount, true);
    args := pg_catalog.jsonb_build_object('amount', refresh_subscription_credits.amount,
        'stripe_payment_id', refresh_subscription_credits.stripe_payment_id,
        'description', refresh_subscription_credits.description);
    BEGIN
        IF p_key IS NOT NULL THEN
            stored := agentmarket_private.credit_idempotency_claim(p_user, p_key, 'refresh_subscription_credits', args);
            IF stored IS NOT NULL THEN
                RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state, stored);
            END IF;
            claimed := true;
        END IF;
        b := agentmarket_private.credit_lock_balance(p_user);
        -- What is left expires, except the subscription credits that back
        -- active holds the top-up pot cannot cover.
        keep := LEAST(b.subscription_credits, GREATEST(b.held_credits - b.topup_credits, 0));
        IF b.subscription_credits - keep > 0 THEN
            r := agentmarket_private.credit_apply(p_user, keep - b.subscription_credits, 0, 0,
                     'subscription_expiry', 'Unused subscription credits expired at refresh');
        END IF;
        IF refresh_subscription_credits.amount > 0 THEN
            r := agentmarket_private.credit_apply(p_user, refresh_subscription_credits.amount, 0, 0,
                     'subscription_refresh', refresh_subscription_credits.description, NULL,
                     refresh_subscription_credits.stripe_payment_id);
        END IF;
        r := agentmarket_private.credit_state_of(p_user);
        IF claimed THEN
            PERFORM agentmarket_private.credit_idempotency_store(p_user, p_key, pg_catalog.to_jsonb(r));
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
        IF claimed AND agentmarket_private.credit_failure_is_outcome(e_state) THEN
            PERFORM agentmarket_private.credit_idempotency_record_failure(
                p_user, p_key, 'refresh_subscription_credits', args, e_state, e_message, NULLIF(e_detail, ''));
        END IF;
        RAISE;
    END;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket.refresh_subscription_credits(uuid, integer, text, text, text) IS
    'Monthly refresh in one transaction: what is left of the subscription pot expires (a subscription_expiry row; credits backing active holds are kept), then amount is granted (a subscription_refresh row). amount 0 only expires.';

CREATE FUNCTION agentmarket.refund_credits(
    user_id uuid, amount integer, session_id uuid DEFAULT NULL,
    idempotency_key text DEFAULT NULL, description text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    p_user uuid := refund_credits.user_id;
    p_key text := refund_credits.idempotency_key;
    p_session uuid := refund_credits.session_id;
    args jsonb;
    stored jsonb;
    claimed boolean := false;
    open_subscription bigint;
    open_topup bigint;
    to_topup integer;
    r agentmarket.credit_state;
    e_state text; e_message text; e_detail text;
BEGIN
    IF p_user IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(refund_credits.amount);
    args := pg_catalog.jsonb_build_object('amount', refund_credits.amount, 'session_id', p_session,
        'description', refund_credits.description);
    BEGIN
        IF p_key IS NOT NULL THEN
            stored := agentmarket_private.credit_idempotency_claim(p_user, p_key, 'refund_credits', args);
            IF stored IS NOT NULL THEN
                RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state, stored);
            END IF;
            claimed := true;
        END IF;
        PERFORM agentmarket_private.credit_check_session(p_user, p_session);
        PERFORM agentmarket_private.credit_lock_balance(p_user);
        -- Refundable per pot: what deductions of this scope (the session, or
        -- deductions without a session) took, less what was refunded to it.
        SELECT COALESCE(-sum(t.amount) FILTER (WHERE t.credit_type = 'subscription'), 0),
               COALESCE(-sum(t.amount) FILTER (WHERE t.credit_type = 'topup'), 0)
          INTO open_subscription, open_topup
          FROM agentmarket.credit_transactions t
         WHERE t.user_id = p_user AND t.session_id IS NOT DISTINCT FROM p_session
           AND t.type IN ('session_deduct', 'refund');
        IF refund_credits.amount > open_subscription + open_topup THEN
            RAISE EXCEPTION 'refund exceeds what was taken' USING ERRCODE = '22023',
                DETAIL = pg_catalog.format('refundable %s, requested %s', open_subscription + open_topup,
                                           refund_credits.amount);
        END IF;
        -- Reverse order of spending: top-up credits (taken last) come back first.
        to_topup := LEAST(open_topup, refund_credits.amount);
        r := agentmarket_private.credit_apply(p_user, refund_credits.amount - to_topup, to_topup, 0,
                 'refund', refund_credits.description, p_session);
        IF claimed THEN
            PERFORM agentmarket_private.credit_idempotency_store(p_user, p_key, pg_catalog.to_jsonb(r));
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
        IF claimed AND agentmarket_private.credit_failure_is_outcome(e_state) THEN
            PERFORM agentmarket_private.credit_idempotency_record_failure(
                p_user, p_key, 'refund_credits', args, e_state, e_message, NULLIF(e_detail, ''));
        END IF;
        RAISE;
    END;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket.refund_credits(uuid, integer, uuid, text, text) IS
    'Returns credits taken by deductions of one session (or of deductions without a session when session_id is NULL) to the pots they came from, top-up first; never more than was taken (22023).';

------------------------------------------------------------------------------
-- Holds
------------------------------------------------------------------------------

-- Expire a user's overdue active holds; the caller holds the balance row lock.
CREATE FUNCTION agentmarket_private.credit_expire_holds(p_user uuid)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    n integer;
    total integer;
BEGIN
    WITH expired AS (
        UPDATE agentmarket_private.credit_holds h SET status = 'expired', resolved_at = now()
         WHERE h.user_id = p_user AND h.status = 'active' AND h.expires_at <= now()
        RETURNING h.amount)
    SELECT count(*), COALESCE(sum(e.amount), 0) INTO n, total FROM expired e;
    IF total > 0 THEN
        PERFORM agentmarket_private.credit_apply(p_user, 0, 0, -total, 'session_deduct');
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_expire_holds(uuid) IS
    'Marks a user''s overdue active holds expired and releases their credits; the caller has locked the balance row.';

CREATE FUNCTION agentmarket.reserve_credits(
    user_id uuid, amount integer, session_id uuid DEFAULT NULL, expires_in interval DEFAULT NULL,
    idempotency_key text DEFAULT NULL, description text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    p_user uuid := reserve_credits.user_id;
    p_key text := reserve_credits.idempotency_key;
    p_session uuid := reserve_credits.session_id;
    lifetime interval;
    args jsonb;
    stored jsonb;
    claimed boolean := false;
    b agentmarket.credit_balances;
    available integer;
    new_hold uuid;
    e_state text; e_message text; e_detail text;
BEGIN
    IF p_user IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(reserve_credits.amount);
    lifetime := COALESCE(reserve_credits.expires_in,
                         pg_catalog.make_interval(mins => agentmarket_private.setting('hold_expiry_minutes')::integer));
    IF lifetime <= interval '0' THEN
        RAISE EXCEPTION 'expires_in must be positive' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The interval given was %s.', lifetime);
    END IF;
    args := pg_catalog.jsonb_build_object('amount', reserve_credits.amount, 'session_id', p_session,
        'expires_in', reserve_credits.expires_in, 'description', reserve_credits.description);
    BEGIN
        IF p_key IS NOT NULL THEN
            stored := agentmarket_private.credit_idempotency_claim(p_user, p_key, 'reserve_credits', args);
            IF stored IS NOT NULL THEN
                RETURN (stored OPERATOR(pg_catalog.->>) 'hold_id')::uuid;
            END IF;
            claimed := true;
        END IF;
        PERFORM agentmarket_private.credit_lock_balance(p_user);
        PERFORM agentmarket_private.credit_expire_holds(p_user);
        PERFORM agentmarket_private.credit_check_session(p_user, p_session);
        SELECT * INTO STRICT b FROM agentmarket.credit_balances cb WHERE cb.user_id = p_user;
        available := b.subscription_credits + b.topup_credits - b.held_credits;
        IF available < reserve_credits.amount THEN
            RAISE EXCEPTION 'insufficient credits' USING ERRCODE = 'PT402',
                DETAIL = pg_catalog.format('available %s, required %s', available, reserve_credits.amount);
        END IF;
        INSERT INTO agentmarket_private.credit_holds (user_id, amount, session_id, description, expires_at)
        VALUES (p_user, reserve_credits.amount, p_session, reserve_credits.description, now() + lifetime)
        RETURNING id INTO new_hold;
        PERFORM agentmarket_private.credit_apply(p_user, 0, 0, reserve_credits.amount, 'session_deduct');
        IF claimed THEN
            PERFORM agentmarket_private.credit_idempotency_store(p_user, p_key,
                pg_catalog.jsonb_build_object('hold_id', new_hold));
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
        IF claimed AND agentmarket_private.credit_failure_is_outcome(e_state) THEN
            PERFORM agentmarket_private.credit_idempotency_record_failure(
                p_user, p_key, 'reserve_credits', args, e_state, e_message, NULLIF(e_detail, ''));
        END IF;
        RAISE;
    END;
    RETURN new_hold;
END
$$;
COMMENT ON FUNCTION agentmarket.reserve_credits(uuid, integer, uuid, interval, text, text) IS
    'Places a hold of amount credits (PT402 when fewer are available) that expires after expires_in (default: setting hold_expiry_minutes); returns the hold id. Held credits are not available to deductions or other holds.';

-- Lock the balance row of a hold's user, then the hold; P0002 for an unknown hold.
CREATE FUNCTION agentmarket_private.credit_lock_hold(p_hold uuid)
RETURNS agentmarket_private.credit_holds
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    h agentmarket_private.credit_holds;
BEGIN
    SELECT * INTO h FROM agentmarket_private.credit_holds ch WHERE ch.id = p_hold;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hold not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No hold has id %s.', p_hold);
    END IF;
    PERFORM agentmarket_private.credit_lock_balance(h.user_id);
    SELECT * INTO STRICT h FROM agentmarket_private.credit_holds ch WHERE ch.id = p_hold FOR UPDATE;
    RETURN h;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_lock_hold(uuid) IS
    'Locks a hold''s balance row and then the hold (the lock order of every writer); P0002 for an unknown hold.';

-- Refuse to resolve a hold that is no longer active (22023).
CREATE FUNCTION agentmarket_private.credit_check_hold_active(h agentmarket_private.credit_holds)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
BEGIN
    IF h.status <> 'active' THEN
        RAISE EXCEPTION 'hold already resolved' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The hold is %s; a hold resolves once.', h.status);
    END IF;
    IF h.expires_at <= now() THEN
        RAISE EXCEPTION 'hold expired' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The hold expired at %s.', h.expires_at);
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.credit_check_hold_active(agentmarket_private.credit_holds) IS
    'Raises 22023 unless the hold is active and not past its expiry.';

CREATE FUNCTION agentmarket.capture_hold(
    hold_id uuid, amount integer, idempotency_key text DEFAULT NULL, description text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    p_hold uuid := capture_hold.hold_id;
    p_key text := capture_hold.idempotency_key;
    p_user uuid;
    args jsonb;
    stored jsonb;
    claimed boolean := false;
    h agentmarket_private.credit_holds;
    b agentmarket.credit_balances;
    from_subscription integer;
    r agentmarket.credit_state;
    e_state text; e_message text; e_detail text;
BEGIN
    IF p_hold IS NULL THEN
        RAISE EXCEPTION 'hold_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.credit_check_amount(capture_hold.amount, true);
    SELECT ch.user_id INTO p_user FROM agentmarket_private.credit_holds ch WHERE ch.id = p_hold;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hold not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No hold has id %s.', p_hold);
    END IF;
    args := pg_catalog.jsonb_build_object('hold_id', p_hold, 'amount', capture_hold.amount,
        'description', capture_hold.description);
    BEGIN
        IF p_key IS NOT NULL THEN
            stored := agentmarket_private.credit_idempotency_claim(p_user, p_key, 'capture_hold', args);
            IF stored IS NOT NULL THEN
                RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state, stored);
            END IF;
            claimed := true;
        END IF;
        h := agentmarket_private.credit_lock_hold(p_hold);
        PERFORM agentmarket_private.credit_check_hold_active(h);
        IF capture_hold.amount > h.amount THEN
            RAISE EXCEPTION 'capture exceeds the hold' USING ERRCODE = '22023',
                DETAIL = pg_catalog.format('held %s, requested %s', h.amount, capture_hold.amount);
        END IF;
        SELECT * INTO STRICT b FROM agentmarket.credit_balances cb WHERE cb.user_id = p_user;
        from_subscription := LEAST(b.subscription_credits, capture_hold.amount);
        UPDATE agentmarket_private.credit_holds ch
           SET status = 'captured', captured_amount = capture_hold.amount, resolved_at = now()
         WHERE ch.id = p_hold;
        r := agentmarket_private.credit_apply(p_user, -from_subscription, from_subscription - capture_hold.amount,
                 -h.amount, 'session_deduct', COALESCE(capture_hold.description, h.description), h.session_id);
        IF claimed THEN
            PERFORM agentmarket_private.credit_idempotency_store(p_user, p_key, pg_catalog.to_jsonb(r));
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
        IF claimed AND agentmarket_private.credit_failure_is_outcome(e_state) THEN
            PERFORM agentmarket_private.credit_idempotency_record_failure(
                p_user, p_key, 'capture_hold', args, e_state, e_message, NULLIF(e_detail, ''));
        END IF;
        RAISE;
    END;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket.capture_hold(uuid, integer, text, text) IS
    'Charges amount (0 up to the held amount) of an active hold, subscription credits first (session_deduct rows), and releases the rest; a hold resolves once (22023 otherwise).';

CREATE FUNCTION agentmarket.release_hold(hold_id uuid, idempotency_key text DEFAULT NULL)
RETURNS agentmarket.credit_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    p_hold uuid := release_hold.hold_id;
    p_key text := release_hold.idempotency_key;
    p_user uuid;
    args jsonb;
    stored jsonb;
    claimed boolean := false;
    h agentmarket_private.credit_holds;
    r agentmarket.credit_state;
    e_state text; e_message text; e_detail text;
BEGIN
    IF p_hold IS NULL THEN
        RAISE EXCEPTION 'hold_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT ch.user_id INTO p_user FROM agentmarket_private.credit_holds ch WHERE ch.id = p_hold;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hold not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No hold has id %s.', p_hold);
    END IF;
    args := pg_catalog.jsonb_build_object('hold_id', p_hold);
    BEGIN
        IF p_key IS NOT NULL THEN
            stored := agentmarket_private.credit_idempotency_claim(p_user, p_key, 'release_hold', args);
            IF stored IS NOT NULL THEN
                RETURN pg_catalog.jsonb_populate_record(NULL::agentmarket.credit_state, stored);
            END IF;
            claimed := true;
        END IF;
        h := agentmarket_private.credit_lock_hold(p_hold);
        IF h.status <> 'active' THEN
            PERFORM agentmarket_private.credit_check_hold_active(h);
        END IF;
        -- Releasing a hold past its expiry is allowed: it only frees credits.
        UPDATE agentmarket_private.credit_holds ch SET status = 'released', resolved_at = now()
         WHERE ch.id = p_hold;
        r := agentmarket_private.credit_apply(p_user, 0, 0, -h.amount, 'session_deduct');
        IF claimed THEN
            PERFORM agentmarket_private.credit_idempotency_store(p_user, p_key, pg_catalog.to_jsonb(r));
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
        IF claimed AND agentmarket_private.credit_failure_is_outcome(e_state) THEN
            PERFORM agentmarket_private.credit_idempotency_record_failure(
                p_user, p_key, 'release_hold', args, e_state, e_message, NULLIF(e_detail, ''));
        END IF;
        RAISE;
    END;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket.release_hold(uuid, text) IS
    'Releases an active hold without charging anything; a hold resolves once (22023 otherwise).';

CREATE FUNCTION agentmarket.release_expired_holds()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    u uuid;
    n integer := 0;
BEGIN
    FOR u IN SELECT DISTINCT h.user_id FROM agentmarket_private.credit_holds h
              WHERE h.status = 'active' AND h.expires_at <= now() ORDER BY h.user_id
    LOOP
        PERFORM agentmarket_private.credit_lock_balance(u);
        n := n + agentmarket_private.credit_expire_holds(u);
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket.release_expired_holds() IS
    'Sweep for pg_cron: marks every active hold past its expiry expired and frees its credits; returns how many.';

------------------------------------------------------------------------------
-- Proofs and the caller's own balance
------------------------------------------------------------------------------
CREATE FUNCTION agentmarket.verify_ledger()
RETURNS TABLE (user_id uuid, credit_type text, problem text, recorded bigint, expected bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
    WITH ledger AS (
        SELECT t.user_id,
               sum(t.amount) FILTER (WHERE t.credit_type = 'subscription') AS subscription,
               sum(t.amount) FILTER (WHERE t.credit_type = 'topup') AS topup
          FROM agentmarket.credit_transactions t GROUP BY t.user_id),
    holds AS (
        SELECT h.user_id, sum(h.amount) AS held
          FROM agentmarket_private.credit_holds h WHERE h.status = 'active' GROUP BY h.user_id),
    pots AS (
        SELECT COALESCE(b.user_id, l.user_id) AS user_id,
               b.subscription_credits::bigint AS subscription, b.topup_credits::bigint AS topup,
               b.held_credits::bigint AS held,
               COALESCE(l.subscription, 0) AS ledger_subscription, COALESCE(l.topup, 0) AS ledger_topup
          FROM agentmarket.credit_balances b FULL JOIN ledger l ON l.user_id = b.user_id)
    SELECT p.user_id, 'subscription', 'balance differs from ledger', COALESCE(p.subscription, 0), p.ledger_subscription
      FROM pots p WHERE COALESCE(p.subscription, 0) <> p.ledger_subscription
    UNION ALL
    SELECT p.user_id, 'topup', 'balance differs from ledger', COALESCE(p.topup, 0), p.ledger_topup
      FROM pots p WHERE COALESCE(p.topup, 0) <> p.ledger_topup
    UNION ALL
    SELECT p.user_id, 'subscription', 'negative pot', p.subscription, 0 FROM pots p WHERE p.subscription < 0
    UNION ALL
    SELECT p.user_id, 'topup', 'negative pot', p.topup, 0 FROM pots p WHERE p.topup < 0
    UNION ALL
    SELECT COALESCE(p.user_id, h.user_id), NULL, 'held credits differ from active holds',
           COALESCE(p.held, 0), COALESCE(h.held, 0)
      FROM pots p FULL JOIN holds h ON h.user_id = p.user_id
     WHERE COALESCE(p.held, 0) <> COALESCE(h.held, 0)
    UNION ALL
    SELECT p.user_id, NULL, 'held credits exceed the pots', p.held, p.subscription + p.topup
      FROM pots p WHERE p.held > p.subscription + p.topup
    UNION ALL
    SELECT h.user_id, NULL, 'captured hold without its ledger rows', h.captured_amount,
           COALESCE((SELECT -sum(t.amount) FROM agentmarket.credit_transactions t
                      WHERE t.user_id = h.user_id AND t.type = 'session_deduct'
                        AND t.session_id IS NOT DISTINCT FROM h.session_id), 0)
      FROM agentmarket_private.credit_holds h
     WHERE h.status = 'captured' AND h.captured_amount > COALESCE((
               SELECT -sum(t.amount) FROM agentmarket.credit_transactions t
                WHERE t.user_id = h.user_id AND t.type = 'session_deduct'
                  AND t.session_id IS NOT DISTINCT FROM h.session_id), 0)
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION agentmarket.verify_ledger() IS
    'Every inconsistency of the ledger: a pot that differs from the sum of its transactions, a negative pot, held credits that differ from the active holds or exceed the pots, a captured hold whose charge is missing. Empty means healthy.';

CREATE FUNCTION agentmarket.my_balance()
RETURNS agentmarket.credit_state
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    me uuid := agentmarket.current_user_id();
BEGIN
    IF me IS NULL THEN
        RAISE EXCEPTION 'not signed in' USING ERRCODE = '42501',
            DETAIL = 'my_balance() needs the caller''s user id (the sub claim of the JWT).';
    END IF;
    RETURN agentmarket_private.credit_state_of(me);
END
$$;
COMMENT ON FUNCTION agentmarket.my_balance() IS
    'The caller''s pots, held and available credits (zeros without a balance row); 42501 without a signed-in user. For authenticated.';

------------------------------------------------------------------------------
-- Free trial for new users
------------------------------------------------------------------------------
CREATE FUNCTION agentmarket_private.grant_free_trial() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    credits integer := COALESCE(agentmarket_private.setting('free_trial_credits')::integer, 0);
BEGIN
    -- Rows loaded with COPY (pg_restore, a plain dump, a bulk import) are
    -- existing accounts: their ledger, free trial included, comes with them.
    IF credits <= 0
       OR pg_catalog.current_query() OPERATOR(pg_catalog.~*) '^(\s|--[^\n]*\n)*copy\s' THEN
        RETURN NULL;
    END IF;
    -- Once per user: the unique index on free_trial rows decides.
    INSERT INTO agentmarket.credit_transactions (user_id, type, amount, credit_type, description)
    VALUES (NEW.id, 'free_trial', credits, 'subscription', 'Free trial')
    ON CONFLICT (user_id) WHERE type = 'free_trial' DO NOTHING;
    IF FOUND THEN
        INSERT INTO agentmarket.credit_balances AS b (user_id, subscription_credits)
        VALUES (NEW.id, credits)
        ON CONFLICT ON CONSTRAINT credit_balances_user_id_key
        DO UPDATE SET subscription_credits = b.subscription_credits + EXCLUDED.subscription_credits;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.grant_free_trial() IS
    'Trigger: grants a new user free_trial_credits subscription credits once (nothing when the setting is 0, nor for rows loaded by COPY, such as a pg_restore).';
CREATE TRIGGER users_grant_free_trial AFTER INSERT ON agentmarket.users
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.grant_free_trial();

------------------------------------------------------------------------------
-- deduct_credits (C, credits.c)
------------------------------------------------------------------------------
CREATE FUNCTION agentmarket.deduct_credits(
    user_id uuid, amount integer, session_id uuid DEFAULT NULL,
    idempotency_key text DEFAULT NULL, description text DEFAULT NULL)
RETURNS agentmarket.credit_state
AS 'MODULE_PATHNAME', 'deduct_credits'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog;
COMMENT ON FUNCTION agentmarket.deduct_credits(uuid, integer, uuid, text, text) IS
    'Takes amount credits, subscription pot first, in one round trip locking only the user''s balance row; one session_deduct row per pot touched; returns the new credit_state. PT402 (DETAIL "available N, required M") when fewer are available (held credits excluded); 22023 bad amount; P0002 unknown user or session.';

------------------------------------------------------------------------------
-- Privileges: service_role calls the ledger; authenticated reads its balance
------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION agentmarket.grant_credits(uuid, integer, text, text, text, text, text),
    agentmarket.deduct_credits(uuid, integer, uuid, text, text),
    agentmarket.refresh_subscription_credits(uuid, integer, text, text, text),
    agentmarket.refund_credits(uuid, integer, uuid, text, text),
    agentmarket.reserve_credits(uuid, integer, uuid, interval, text, text),
    agentmarket.capture_hold(uuid, integer, text, text),
    agentmarket.release_hold(uuid, text),
    agentmarket.release_expired_holds(),
    agentmarket.verify_ledger(),
    agentmarket.my_balance() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.grant_credits(uuid, integer, text, text, text, text, text),
    agentmarket.deduct_credits(uuid, integer, uuid, text, text),
    agentmarket.refresh_subscription_credits(uuid, integer, text, text, text),
    agentmarket.refund_credits(uuid, integer, uuid, text, text),
    agentmarket.reserve_credits(uuid, integer, uuid, interval, text, text),
    agentmarket.capture_hold(uuid, integer, text, text),
    agentmarket.release_hold(uuid, text),
    agentmarket.release_expired_holds(),
    agentmarket.verify_ledger() TO service_role;
GRANT EXECUTE ON FUNCTION agentmarket.my_balance() TO authenticated;
-- Internals are for the functions above only.
DO $revoke$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'agentmarket_private'::regnamespace
                AND (p.proname OPERATOR(pg_catalog.~~) 'credit%' OR p.proname OPERATOR(pg_catalog.=) 'grant_free_trial')
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$revoke$;
-- The row checks run with the privileges of whoever writes the tables: the
-- owner (through the functions above) or service_role, which may write them.
GRANT EXECUTE ON FUNCTION agentmarket_private.credit_transaction_shape_ok(text, text, integer),
    agentmarket_private.credit_pots_ok(integer, integer, integer) TO service_role;

------------------------------------------------------------------------------
-- Retention of idempotency records
------------------------------------------------------------------------------
-- Keys must outlive every retry that can carry them: Stripe retries a webhook
-- for up to 3 days, so the floor is a week.
INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('credit_idempotency_retention_days', 'integer', '90', 7, 3650, NULL,
   'Idempotency records of credit operations older than this many days are removed by agentmarket.prune_credit_idempotency(); a key reused after that acts anew.');
CREATE INDEX credit_idempotency_created ON agentmarket_private.credit_idempotency (created_at);

CREATE FUNCTION agentmarket.prune_credit_idempotency(max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket_private
AS $$
DECLARE
    removed integer;
BEGIN
    IF max_rows IS NULL OR max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = '22023';
    END IF;
    -- Oldest first, in batches, so a pg_cron run never holds many locks.
    DELETE FROM agentmarket_private.credit_idempotency c
     WHERE (c.user_id, c.idempotency_key) IN (
            SELECT o.user_id, o.idempotency_key FROM agentmarket_private.credit_idempotency o
             WHERE o.created_at < now() - make_interval(
                       days => agentmarket_private.setting('credit_idempotency_retention_days')::integer)
             ORDER BY o.created_at
             LIMIT max_rows
             FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;
COMMENT ON FUNCTION agentmarket.prune_credit_idempotency(integer) IS
    'For pg_cron: removes up to max_rows idempotency records older than credit_idempotency_retention_days (oldest first); returns how many.';
REVOKE ALL ON FUNCTION agentmarket.prune_credit_idempotency(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.prune_credit_idempotency(integer) TO service_role;
-- marketplace.sql: the listing lifecycle (draft → review → published or
-- rejected → archived), versions and skills, hiring, and verified reviews.
--
-- Every client-facing function is SECURITY DEFINER with a pinned search_path
-- and checks the caller itself: agentmarket.current_user_id() (NULL raises
-- 42501), agentmarket.current_user_is_admin(), and the agent's creator_id.

------------------------------------------------------------------------------
-- Constraints added to the seed's agents table (the seed's own stay as given)
------------------------------------------------------------------------------
ALTER TABLE agentmarket.agents
  ADD CONSTRAINT agents_status_check
    CHECK (status IN ('draft', 'review', 'published', 'rejected', 'archived')),
  ADD CONSTRAINT agents_pricing_model_check
    CHECK (pricing_model IN ('per_session', 'per_task', 'free')),
  ADD CONSTRAINT agents_credits_per_session_check
    CHECK (credits_per_session IS NULL OR credits_per_session >= 0),
  ADD CONSTRAINT agents_supported_relays_check
    CHECK (supported_relays <@ ARRAY['telegram', 'whatsapp', 'slack', 'discord']::text[]),
  ADD CONSTRAINT agents_supported_models_check
    CHECK (supported_models <@ ARRAY['claude', 'gpt', 'gemini', 'llama', 'mistral']::text[]),
  ADD CONSTRAINT agents_stats_check
    CHECK (total_hires >= 0 AND total_reviews >= 0 AND (avg_rating IS NULL OR avg_rating BETWEEN 0 AND 5));

ALTER TABLE agentmarket.agents ADD COLUMN rejection_reason TEXT;
COMMENT ON COLUMN agentmarket.agents.rejection_reason IS
    'Why an admin rejected the listing (set by reject_agent, cleared on the next submission).';

-- published_at is the time of first publication: set once, never moved, even
-- for rows written directly by service_role.
CREATE FUNCTION agentmarket_private.agents_first_publication() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND OLD.published_at IS NOT NULL THEN
        NEW.published_at := OLD.published_at;
    ELSIF NEW.status OPERATOR(pg_catalog.=) 'published' AND NEW.published_at IS NULL THEN
        NEW.published_at := pg_catalog.now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION agentmarket_private.agents_first_publication() IS
    'Trigger: published_at is set on the first publication and never changed afterwards.';
REVOKE ALL ON FUNCTION agentmarket_private.agents_first_publication() FROM PUBLIC;
CREATE TRIGGER agents_first_publication BEFORE INSERT OR UPDATE ON agentmarket.agents
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.agents_first_publication();

-- Fly.io regions an instance may be placed in.
CREATE FUNCTION agentmarket_private.fly_regions()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT ARRAY['ams', 'arn', 'atl', 'bog', 'bom', 'bos', 'cdg', 'den', 'dfw', 'ewr', 'eze',
                 'fra', 'gdl', 'gig', 'gru', 'hkg', 'iad', 'jnb', 'lax', 'lhr', 'mad', 'mia',
                 'nrt', 'ord', 'otp', 'phx', 'qro', 'scl', 'sea', 'sin', 'sjc', 'syd', 'waw',
                 'yul', 'yyz']::text[]
$$;
COMMENT ON FUNCTION agentmarket_private.fly_regions() IS
    'The Fly.io region codes hire_agent accepts.';
REVOKE ALL ON FUNCTION agentmarket_private.fly_regions() FROM PUBLIC;

------------------------------------------------------------------------------
-- Shared checks
------------------------------------------------------------------------------

-- The caller's id; raises 42501 without one.
CREATE FUNCTION agentmarket_private.require_caller()
RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    caller uuid := agentmarket.current_user_id();
BEGIN
    IF caller IS NULL THEN
        RAISE EXCEPTION 'not signed in' USING ERRCODE = '42501',
            HINT = 'Call this function with a user''s JWT.';
    END IF;
    RETURN caller;
END
$$;
COMMENT ON FUNCTION agentmarket_private.require_caller() IS
    'The caller''s user id; raises 42501 when the request carries none.';
REVOKE ALL ON FUNCTION agentmarket_private.require_caller() FROM PUBLIC;

-- Locks and returns an agent the caller manages (its creator, or an admin when
-- p_admin_ok).  Agents the caller cannot see raise P0002; published agents of
-- someone else raise 42501.
CREATE FUNCTION agentmarket_private.lock_managed_agent(p_agent_id uuid, p_admin_ok boolean)
RETURNS agentmarket.agents
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    caller uuid := agentmarket_private.require_caller();
    a agentmarket.agents;
BEGIN
    SELECT * INTO a FROM agentmarket.agents x WHERE x.id OPERATOR(pg_catalog.=) p_agent_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent not found' USING ERRCODE = 'P0002',
            DETAIL = pg_catalog.format('No agent has id %s.', p_agent_id);
    END IF;
    IF a.creator_id OPERATOR(pg_catalog.=) caller
       OR (p_admin_ok AND agentmarket.current_user_is_admin()) THEN
        RETURN a;
    END IF;
    IF a.status OPERATOR(pg_catalog.=) 'published' THEN
        RAISE EXCEPTION 'only the agent''s creator may do this' USING ERRCODE = '42501';
    END IF;
    RAISE EXCEPTION 'agent not found' USING ERRCODE = 'P0002',
        DETAIL = pg_catalog.format('No agent has id %s.', p_agent_id);
END
$$;
COMMENT ON FUNCTION agentmarket_private.lock_managed_agent(uuid, boolean) IS
    'Locks an agent the caller manages (creator, or admin when allowed); P0002 when invisible, 42501 when not theirs.';
REVOKE ALL ON FUNCTION agentmarket_private.lock_managed_agent(uuid, boolean) FROM PUBLIC;

-- Raises 42501 unless the caller is an admin.
CREATE FUNCTION agentmarket_private.require_admin()
RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    caller uuid := agentmarket_private.require_caller();
BEGIN
    IF NOT agentmarket.current_user_is_admin() THEN
        RAISE EXCEPTION 'only an admin may do this' USING ERRCODE = '42501';
    END IF;
    RETURN caller;
END
$$;
COMMENT ON FUNCTION agentmarket_private.require_admin() IS
    'The caller''s user id; raises 42501 unless the caller is an admin.';
REVOKE ALL ON FUNCTION agentmarket_private.require_admin() FROM PUBLIC;

-- Makes a published version the agent's current one and copies its image and
-- OpenClaw pin onto the listing.  The agent row must already be locked.
CREATE FUNCTION agentmarket_private.make_version_current(p_version agentmarket.agent_versions)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    UPDATE agentmarket.agent_versions v SET is_current = false
     WHERE v.agent_id OPERATOR(pg_catalog.=) p_version.agent_id AND v.is_current
       AND v.id OPERATOR(pg_catalog.<>) p_version.id;
    UPDATE agentmarket.agent_versions v SET is_current = true
     WHERE v.id OPERATOR(pg_catalog.=) p_version.id;
    UPDATE agentmarket.agents a
       SET docker_image = p_version.docker_image, openclaw_version = p_version.openclaw_version
     WHERE a.id OPERATOR(pg_catalog.=) p_version.agent_id;
END
$$;
COMMENT ON FUNCTION agentmarket_private.make_version_current(agentmarket.agent_versions) IS
    'Makes a published version current (the only one) and copies its image and OpenClaw pin onto the agent.';
REVOKE ALL ON FUNCTION agentmarket_private.make_version_current(agentmarket.agent_versions) FROM PUBLIC;

------------------------------------------------------------------------------
-- Lifecycle
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.submit_agent_for_review(agent_id uuid)
RETURNS agentmarket.agents
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    a agentmarket.agents := agentmarket_private.lock_managed_agent(submit_agent_for_review.agent_id, false);
BEGIN
    IF a.status NOT IN ('draft', 'rejected') THEN
        RAISE EXCEPTION 'agent cannot be submitted from status %', a.status USING ERRCODE = '22023',
            DETAIL = 'Only draft and rejected agents can be submitted for review.';
    END IF;
    IF NOT EXISTS (SELECT FROM agentmarket.agent_versions v
                    WHERE v.agent_id OPERATOR(pg_catalog.=) a.id
                      AND v.status IN ('draft', 'published')
                      AND v.docker_image IS NOT NULL AND v.openclaw_version IS NOT NULL) THEN
        RAISE EXCEPTION 'agent has no version ready for review' USING ERRCODE = '22023',
            DETAIL = 'A version with a docker image and a pinned OpenClaw version is required.',
            HINT = 'Create one with agentmarket.create_agent_version().';
    END IF;
    UPDATE agentmarket.agents x SET status = 'review', rejection_reason = NULL
     WHERE x.id OPERATOR(pg_catalog.=) a.id RETURNING * INTO a;
    RETURN a;
END
$$;
COMMENT ON FUNCTION agentmarket.submit_agent_for_review(uuid) IS
    'Creator: moves a draft or rejected agent to review; needs a version with a docker image and a pinned OpenClaw version.';

CREATE FUNCTION agentmarket.approve_agent(agent_id uuid)
RETURNS agentmarket.agents
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    a agentmarket.agents;
    v agentmarket.agent_versions;
BEGIN
    PERFORM agentmarket_private.require_admin();
    a := agentmarket_private.lock_managed_agent(approve_agent.agent_id, true);
    IF a.status OPERATOR(pg_catalog.<>) 'review' THEN
        RAISE EXCEPTION 'agent is not in review' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The agent''s status is %s.', a.status);
    END IF;
    -- New hires need a current version: keep the creator's choice, otherwise
    -- publish the newest ready version.
    IF NOT EXISTS (SELECT FROM agentmarket.agent_versions x
                    WHERE x.agent_id OPERATOR(pg_catalog.=) a.id AND x.is_current) THEN
        SELECT * INTO v FROM agentmarket.agent_versions x
         WHERE x.agent_id OPERATOR(pg_catalog.=) a.id AND x.status IN ('draft', 'published')
           AND x.docker_image IS NOT NULL AND x.openclaw_version IS NOT NULL
         ORDER BY (x.status OPERATOR(pg_catalog.=) 'published') DESC, x.created_at DESC, x.id DESC
         LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'agent has no version ready to publish' USING ERRCODE = '22023',
                DETAIL = 'A version with a docker image and a pinned OpenClaw version is required.';
        END IF;
        UPDATE agentmarket.agent_versions x
           SET status = 'published', published_at = COALESCE(x.published_at, pg_catalog.now())
         WHERE x.id OPERATOR(pg_catalog.=) v.id RETURNING * INTO v;
        PERFORM agentmarket_private.make_version_current(v);
    END IF;
    UPDATE agentmarket.agents x SET status = 'published', rejection_reason = NULL
     WHERE x.id OPERATOR(pg_catalog.=) a.id RETURNING * INTO a;
    RETURN a;
END
$$;
COMMENT ON FUNCTION agentmarket.approve_agent(uuid) IS
    'Admin: publishes an agent in review (published_at is set on the first publication; a current version is ensured).';

CREATE FUNCTION agentmarket.reject_agent(agent_id uuid, reason text)
RETURNS agentmarket.agents
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    a agentmarket.agents;
BEGIN
    PERFORM agentmarket_private.require_admin();
    IF reason IS NULL OR pg_catalog.btrim(reason) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a rejection needs a reason' USING ERRCODE = '22023',
            DETAIL = 'The creator sees the reason and can fix the listing.';
    END IF;
    a := agentmarket_private.lock_managed_agent(reject_agent.agent_id, true);
    IF a.status OPERATOR(pg_catalog.<>) 'review' THEN
        RAISE EXCEPTION 'agent is not in review' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The agent''s status is %s.', a.status);
    END IF;
    UPDATE agentmarket.agents x SET status = 'rejected', rejection_reason = pg_catalog.btrim(reason)
     WHERE x.id OPERATOR(pg_catalog.=) a.id RETURNING * INTO a;
    RETURN a;
END
$$;
COMMENT ON FUNCTION agentmarket.reject_agent(uuid, text) IS
    'Admin: rejects an agent in review with a reason the creator sees; the creator may fix it and submit again.';

CREATE FUNCTION agentmarket.archive_agent(agent_id uuid)
RETURNS agentmarket.agents
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    a agentmarket.agents := agentmarket_private.lock_managed_agent(archive_agent.agent_id, true);
BEGIN
    IF a.status OPERATOR(pg_catalog.=) 'archived' THEN
        RAISE EXCEPTION 'agent is already archived' USING ERRCODE = '22023';
    END IF;
    UPDATE agentmarket.agents x SET status = 'archived'
     WHERE x.id OPERATOR(pg_catalog.=) a.id RETURNING * INTO a;
    RETURN a;
END
$$;
COMMENT ON FUNCTION agentmarket.archive_agent(uuid) IS
    'Creator or admin: takes an agent off the marketplace for good; existing instances keep running.';

------------------------------------------------------------------------------
-- Versions and skills
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.create_agent_version(
    agent_id uuid, version text, docker_image text DEFAULT NULL, openclaw_version text DEFAULT NULL,
    git_ref text DEFAULT NULL, git_commit text DEFAULT NULL, changelog text DEFAULT NULL)
RETURNS agentmarket.agent_versions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    a agentmarket.agents := agentmarket_private.lock_managed_agent(create_agent_version.agent_id, false);
    v agentmarket.agent_versions;
BEGIN
    IF a.status OPERATOR(pg_catalog.=) 'archived' THEN
        RAISE EXCEPTION 'agent is archived' USING ERRCODE = '22023';
    END IF;
    IF version IS NULL OR version OPERATOR(pg_catalog.!~)
       '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$' THEN
        RAISE EXCEPTION 'invalid version "%"', version USING ERRCODE = '22023',
            DETAIL = 'Versions are semantic versions such as 1.2.0.';
    END IF;
    IF git_commit IS NOT NULL AND git_commit OPERATOR(pg_catalog.!~) '^[0-9a-f]{7,64}$' THEN
        RAISE EXCEPTION 'invalid git commit "%"', git_commit USING ERRCODE = '22023',
            DETAIL = 'A commit is 7 to 64 lower-case hex digits.';
    END IF;
    IF pg_catalog.btrim(docker_image) OPERATOR(pg_catalog.=) ''
       OR pg_catalog.btrim(openclaw_version) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'docker image and OpenClaw version must not be empty' USING ERRCODE = '22023';
    END IF;
    BEGIN
        INSERT INTO agentmarket.agent_versions AS x
            (agent_id, version, docker_image, openclaw_version, git_ref, git_commit, changelog)
        VALUES (a.id, create_agent_version.version, create_agent_version.docker_image,
                create_agent_version.openclaw_version, create_agent_version.git_ref,
                create_agent_version.git_commit, create_agent_version.changelog)
        RETURNING * INTO v;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'version % of this agent already exists', version USING ERRCODE = '23505';
    END;
    RETURN v;
END
$$;
COMMENT ON FUNCTION agentmarket.create_agent_version(uuid, text, text, text, text, text, text) IS
    'Creator: adds a draft version (semver, unique per agent) with its docker image, OpenClaw pin, git ref/commit and changelog.';

CREATE FUNCTION agentmarket.publish_agent_version(version_id uuid, make_current boolean DEFAULT true)
RETURNS agentmarket.agent_versions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    v agentmarket.agent_versions;
BEGIN
    PERFORM agentmarket_private.require_caller();
    SELECT * INTO v FROM agentmarket.agent_versions x WHERE x.id OPERATOR(pg_catalog.=) version_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent version not found' USING ERRCODE = 'P0002';
    END IF;
    -- Lock the agent first: every change of the current version is serialised on it.
    PERFORM agentmarket_private.lock_managed_agent(v.agent_id, false);
    SELECT * INTO v FROM agentmarket.agent_versions x WHERE x.id OPERATOR(pg_catalog.=) version_id FOR UPDATE;
    IF v.status NOT IN ('draft', 'published') THEN
        RAISE EXCEPTION 'version % is %', v.version, v.status USING ERRCODE = '22023',
            DETAIL = 'Deprecated and yanked versions cannot be published again.';
    END IF;
    IF v.docker_image IS NULL OR v.openclaw_version IS NULL THEN
        RAISE EXCEPTION 'version % is not ready', v.version USING ERRCODE = '22023',
            DETAIL = 'A published version needs a docker image and a pinned OpenClaw version.';
    END IF;
    UPDATE agentmarket.agent_versions x
       SET status = 'published', published_at = COALESCE(x.published_at, pg_catalog.now())
     WHERE x.id OPERATOR(pg_catalog.=) v.id RETURNING * INTO v;
    IF make_current THEN
        PERFORM agentmarket_private.make_version_current(v);
        SELECT * INTO v FROM agentmarket.agent_versions x WHERE x.id OPERATOR(pg_catalog.=) v.id;
    END IF;
    RETURN v;
END
$$;
COMMENT ON FUNCTION agentmarket.publish_agent_version(uuid, boolean) IS
    'Creator: publishes a version and (by default) makes it current: new hires run it, existing instances keep theirs.';

CREATE FUNCTION agentmarket.set_agent_skills(agent_id uuid, skills jsonb, agent_version_id uuid DEFAULT NULL)
RETURNS SETOF agentmarket.agent_skills
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    a agentmarket.agents := agentmarket_private.lock_managed_agent(set_agent_skills.agent_id, false);
    v agentmarket.agent_versions;
    s jsonb;
BEGIN
    IF skills IS NULL OR pg_catalog.jsonb_typeof(skills) OPERATOR(pg_catalog.<>) 'array' THEN
        RAISE EXCEPTION 'skills must be a JSON array' USING ERRCODE = '22023',
            HINT = 'Pass [{"skill_slug": "gmail", "source": "clawhub", "version": "1.2.0"}, ...].';
    END IF;
    IF set_agent_skills.agent_version_id IS NOT NULL THEN
        SELECT * INTO v FROM agentmarket.agent_versions x
         WHERE x.id OPERATOR(pg_catalog.=) set_agent_skills.agent_version_id
           AND x.agent_id OPERATOR(pg_catalog.=) a.id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'agent version not found' USING ERRCODE = 'P0002',
                DETAIL = 'The version does not belong to this agent.';
        END IF;
        IF v.status OPERATOR(pg_catalog.<>) 'draft' THEN
            RAISE EXCEPTION 'version % is %', v.version, v.status USING ERRCODE = '22023',
                DETAIL = 'Only a draft version''s skills can change: instances run published ones.';
        END IF;
    END IF;
    FOR s IN SELECT e FROM pg_catalog.jsonb_array_elements(skills) e LOOP
        IF pg_catalog.jsonb_typeof(s) OPERATOR(pg_catalog.<>) 'object'
           OR NOT (s OPERATOR(pg_catalog.?) 'skill_slug')
           OR EXISTS (SELECT FROM pg_catalog.jsonb_object_keys(s) k
                       WHERE k NOT IN ('skill_slug', 'name', 'description', 'source', 'version',
                                       'revision_hash', 'required_env', 'required_bins')) THEN
            RAISE EXCEPTION 'invalid skill %', s USING ERRCODE = '22023',
                DETAIL = 'Each skill is an object with skill_slug and optionally name, description, source, version, revision_hash, required_env, required_bins.';
        END IF;
    END LOOP;
    DELETE FROM agentmarket.agent_skills x
     WHERE x.agent_id OPERATOR(pg_catalog.=) a.id
       AND x.agent_version_id IS NOT DISTINCT FROM set_agent_skills.agent_version_id;
    BEGIN
        INSERT INTO agentmarket.agent_skills
            (agent_id, agent_version_id, skill_slug, name, description, source, version,
             revision_hash, required_env, required_bins)
        SELECT a.id, set_agent_skills.agent_version_id, e OPERATOR(pg_catalog.->>) 'skill_slug',
               e OPERATOR(pg_catalog.->>) 'name', e OPERATOR(pg_catalog.->>) 'description',
               COALESCE(e OPERATOR(pg_catalog.->>) 'source', 'clawhub'),
               e OPERATOR(pg_catalog.->>) 'version', e OPERATOR(pg_catalog.->>) 'revision_hash',
               COALESCE(ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e OPERATOR(pg_catalog.->) 'required_env')), '{}'),
               COALESCE(ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e OPERATOR(pg_catalog.->) 'required_bins')), '{}')
          FROM pg_catalog.jsonb_array_elements(skills) e;
    EXCEPTION
        WHEN check_violation OR not_null_violation OR invalid_parameter_value THEN
            RAISE EXCEPTION 'invalid skill list' USING ERRCODE = '22023', DETAIL = SQLERRM,
                HINT = 'skill_slug is lower-case letters, digits and ._/-; source is clawhub, bundled, workspace or git; required_env and required_bins are arrays of strings.';
        WHEN unique_violation THEN
            RAISE EXCEPTION 'a skill is listed twice' USING ERRCODE = '23505';
    END;
    RETURN QUERY SELECT * FROM agentmarket.agent_skills x
                  WHERE x.agent_id OPERATOR(pg_catalog.=) a.id
                    AND x.agent_version_id IS NOT DISTINCT FROM set_agent_skills.agent_version_id
                  ORDER BY x.skill_slug;
END
$$;
COMMENT ON FUNCTION agentmarket.set_agent_skills(uuid, jsonb, uuid) IS
    'Creator: replaces the skills of an agent (agent_version_id NULL) or of one of its draft versions with a JSON array of skills.';

------------------------------------------------------------------------------
-- Hiring
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.hire_agent(agent_id uuid, team_id uuid DEFAULT NULL, region text DEFAULT 'iad')
RETURNS agentmarket.agent_instances
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    caller uuid := agentmarket_private.require_caller();
    current_version uuid;
    inst agentmarket.agent_instances;
    new_id uuid := pg_catalog.gen_random_uuid();
BEGIN
    IF region IS NULL OR NOT (region OPERATOR(pg_catalog.=) ANY (agentmarket_private.fly_regions())) THEN
        RAISE EXCEPTION 'unknown region "%"', region USING ERRCODE = '22023',
            HINT = 'Use a Fly.io region code such as iad, ams, fra, lhr, nrt or syd.';
    END IF;
    IF NOT EXISTS (SELECT FROM agentmarket.agents a
                    WHERE a.id OPERATOR(pg_catalog.=) hire_agent.agent_id
                      AND a.status OPERATOR(pg_catalog.=) 'published') THEN
        RAISE EXCEPTION 'agent not found' USING ERRCODE = 'P0002',
            DETAIL = 'Only published agents can be hired.';
    END IF;
    IF hire_agent.team_id IS NOT NULL AND NOT EXISTS (
           SELECT FROM agentmarket.teams t JOIN agentmarket.projects p ON p.id OPERATOR(pg_catalog.=) t.project_id
            WHERE t.id OPERATOR(pg_catalog.=) hire_agent.team_id AND p.user_id OPERATOR(pg_catalog.=) caller) THEN
        RAISE EXCEPTION 'team not found' USING ERRCODE = 'P0002',
            DETAIL = 'The team must belong to one of your projects.';
    END IF;
    SELECT v.id INTO current_version FROM agentmarket.agent_versions v
     WHERE v.agent_id OPERATOR(pg_catalog.=) hire_agent.agent_id AND v.is_current;

    -- One instance per user and agent: a concurrent second hire waits on the
    -- unique index and then finds the first one's row.
    INSERT INTO agentmarket.agent_instances AS i
        (id, user_id, agent_id, team_id, fly_app_name, fly_machine_id, region, status, agent_version_id)
    VALUES (new_id, caller, hire_agent.agent_id, hire_agent.team_id, agentmarket_private.fly_app_name(new_id),
            '', hire_agent.region, 'provisioning', current_version)
    ON CONFLICT ON CONSTRAINT agent_instances_user_id_agent_id_key DO NOTHING
    RETURNING * INTO inst;

    IF inst.id IS NULL THEN
        SELECT * INTO inst FROM agentmarket.agent_instances i
         WHERE i.user_id OPERATOR(pg_catalog.=) caller AND i.agent_id OPERATOR(pg_catalog.=) hire_agent.agent_id
         FOR UPDATE;
        IF inst.status OPERATOR(pg_catalog.<>) 'destroyed' THEN
            RETURN inst;        -- already hired: the existing instance
        END IF;
        -- A destroyed instance is hired again in place (the unique key keeps one row).
        UPDATE agentmarket.agent_instances i
           SET status = 'provisioning', fly_machine_id = '', fly_volume_id = NULL, error_message = NULL,
               region = hire_agent.region, team_id = hire_agent.team_id,
               agent_version_id = current_version, last_active_at = NULL
         WHERE i.id OPERATOR(pg_catalog.=) inst.id
        RETURNING * INTO inst;
    END IF;

    IF hire_agent.team_id IS NOT NULL THEN
        INSERT INTO agentmarket.team_agents (team_id, instance_id) VALUES (hire_agent.team_id, inst.id)
        ON CONFLICT DO NOTHING;
    END IF;
    UPDATE agentmarket.agents a SET total_hires = a.total_hires OPERATOR(pg_catalog.+) 1
     WHERE a.id OPERATOR(pg_catalog.=) hire_agent.agent_id;
    PERFORM agentmarket_private.enqueue_instance_job(inst.id, 'fly.provision_instance');
    RETURN inst;
END
$$;
COMMENT ON FUNCTION agentmarket.hire_agent(uuid, uuid, text) IS
    'Hires a published agent (P0002 otherwise): one instance per user and agent, created in provisioning with the current version and a Fly provisioning job in the same transaction; hiring again returns the existing instance unless it was destroyed.';

------------------------------------------------------------------------------
-- Reviews
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.review_agent(agent_id uuid, rating integer, content text DEFAULT NULL)
RETURNS agentmarket.agent_reviews
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    caller uuid := agentmarket_private.require_caller();
    r agentmarket.agent_reviews;
    creator uuid;
BEGIN
    IF rating IS NULL OR rating OPERATOR(pg_catalog.<) 1 OR rating OPERATOR(pg_catalog.>) 5 THEN
        RAISE EXCEPTION 'rating must be between 1 and 5' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The rating given was %s.', COALESCE(rating::text, 'null'));
    END IF;
    SELECT a.creator_id INTO creator FROM agentmarket.agents a
     WHERE a.id OPERATOR(pg_catalog.=) review_agent.agent_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent not found' USING ERRCODE = 'P0002';
    END IF;
    IF creator OPERATOR(pg_catalog.=) caller THEN
        RAISE EXCEPTION 'creators cannot review their own agents' USING ERRCODE = '42501';
    END IF;
    IF NOT EXISTS (SELECT FROM agentmarket.agent_instances i
                    WHERE i.user_id OPERATOR(pg_catalog.=) caller
                      AND i.agent_id OPERATOR(pg_catalog.=) review_agent.agent_id) THEN
        RAISE EXCEPTION 'only users who hired this agent may review it' USING ERRCODE = '42501';
    END IF;
    INSERT INTO agentmarket.agent_reviews AS x (agent_id, user_id, rating, content)
    VALUES (review_agent.agent_id, caller, review_agent.rating, review_agent.content)
    ON CONFLICT ON CONSTRAINT agent_reviews_agent_id_user_id_key
    DO UPDATE SET rating = EXCLUDED.rating, content = EXCLUDED.content
    RETURNING * INTO r;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket.review_agent(uuid, integer, text) IS
    'Reviews an agent the caller hired: rating 1 to 5 (22023 otherwise), one review per user and agent (a second call updates it).';

-- Recomputes an agent's review stats under its row lock, so concurrent
-- reviews (through review_agent or direct writes that RLS allows) stay exact.
CREATE FUNCTION agentmarket_private.refresh_review_stats(p_agent_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    n integer;
    average numeric;
BEGIN
    PERFORM FROM agentmarket.agents a WHERE a.id OPERATOR(pg_catalog.=) p_agent_id FOR UPDATE;
    -- A new statement: its snapshot sees every review committed before the lock was granted.
    SELECT pg_catalog.count(*), pg_catalog.avg(r.rating) INTO n, average
      FROM agentmarket.agent_reviews r WHERE r.agent_id OPERATOR(pg_catalog.=) p_agent_id;
    -- Only a real change is written (a restore replaying reviews leaves updated_at alone).
    UPDATE agentmarket.agents a
       SET total_reviews = n, avg_rating = pg_catalog.round(COALESCE(average, 0), 1)
     WHERE a.id OPERATOR(pg_catalog.=) p_agent_id
       AND (a.total_reviews OPERATOR(pg_catalog.<>) n
            OR a.avg_rating IS DISTINCT FROM pg_catalog.round(COALESCE(average, 0), 1));
END
$$;
COMMENT ON FUNCTION agentmarket_private.refresh_review_stats(uuid) IS
    'Recomputes avg_rating and total_reviews of an agent from its reviews, under the agent''s row lock.';
REVOKE ALL ON FUNCTION agentmarket_private.refresh_review_stats(uuid) FROM PUBLIC;

CREATE FUNCTION agentmarket_private.agent_reviews_stats() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND OLD.agent_id OPERATOR(pg_catalog.<>) NEW.agent_id THEN
        -- Lock both agents in id order so two such moves cannot deadlock.
        PERFORM agentmarket_private.refresh_review_stats(x)
           FROM pg_catalog.unnest(ARRAY[OLD.agent_id, NEW.agent_id]) x ORDER BY x;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        PERFORM agentmarket_private.refresh_review_stats(OLD.agent_id);
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'INSERT'
          OR OLD.rating OPERATOR(pg_catalog.<>) NEW.rating THEN
        PERFORM agentmarket_private.refresh_review_stats(NEW.agent_id);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.agent_reviews_stats() IS
    'Trigger: keeps agents.avg_rating and total_reviews exact on every insert, update and delete of a review.';
REVOKE ALL ON FUNCTION agentmarket_private.agent_reviews_stats() FROM PUBLIC;
CREATE TRIGGER agent_reviews_stats AFTER INSERT OR UPDATE OR DELETE ON agentmarket.agent_reviews
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.agent_reviews_stats();

------------------------------------------------------------------------------
-- Grants
------------------------------------------------------------------------------
DO $grants$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'agentmarket.submit_agent_for_review(uuid)', 'agentmarket.approve_agent(uuid)',
        'agentmarket.reject_agent(uuid, text)', 'agentmarket.archive_agent(uuid)',
        'agentmarket.create_agent_version(uuid, text, text, text, text, text, text)',
        'agentmarket.publish_agent_version(uuid, boolean)',
        'agentmarket.set_agent_skills(uuid, jsonb, uuid)',
        'agentmarket.hire_agent(uuid, uuid, text)', 'agentmarket.review_agent(uuid, integer, text)']
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO authenticated, service_role', f);
    END LOOP;
END
$grants$;
-- search.sql: marketplace search.
--
-- Each listing carries a weighted tsvector (name A; tagline and tags B;
-- description C) and a static quality score (Bayesian-average rating and log
-- of hires), both kept by a trigger.  A vocabulary of the lexemes of published
-- listings (with how many listings have each, and in which fields) and a
-- deletion index over it give typo candidates and the bounds that let
-- search_agents stop early: for a query word found in most listings it walks
-- listings in descending static score and stops once no listing left can
-- beat the page it holds.  The scoring functions are in search.c.

------------------------------------------------------------------------------
-- C functions
------------------------------------------------------------------------------
CREATE FUNCTION agentmarket_private.search_typo_keys(word text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'search_typo_keys'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_typo_keys(text) IS
    'The word and each form of it with one character deleted: words within one edit share a key.';

CREATE FUNCTION agentmarket_private.search_is_one_typo(word text, candidate text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'search_is_one_typo'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_is_one_typo(text, text) IS
    'True when the two words differ by exactly one insertion, deletion, substitution or swap of adjacent characters.';

CREATE FUNCTION agentmarket_private.search_text_score(
    document tsvector, lexemes text[], groups integer[], factors double precision[],
    prefixes boolean[], ngroups integer)
RETURNS double precision
AS 'MODULE_PATHNAME', 'search_text_score'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_text_score(tsvector, text[], integer[], double precision[], boolean[], integer) IS
    'Text score in [0, 1]: per query word the best weight (A 1, B 0.5, C 0.25) times the factor of the matching term (exact 1, typo 0.5, completion 0.8), averaged over words.';

CREATE FUNCTION agentmarket_private.search_text_bound(group_bounds double precision[])
RETURNS double precision
AS 'MODULE_PATHNAME', 'search_text_bound'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_text_bound(double precision[]) IS
    'The text score a listing would get with these per-word values: an upper bound computed exactly as search_text_score computes scores.';

CREATE FUNCTION agentmarket_private.search_static_score(avg_rating numeric, total_reviews integer, total_hires integer)
RETURNS double precision
AS 'MODULE_PATHNAME', 'search_static_score'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_static_score(numeric, integer, integer) IS
    'Quality of a listing in [0, 1]: 0.6 of its Bayesian-average rating (prior: 5 reviews of 3 stars) plus 0.4 of ln(1+hires)/(ln(1+hires)+ln(101)).';

CREATE FUNCTION agentmarket_private.search_blend(text_score double precision, static_score double precision)
RETURNS double precision
AS 'MODULE_PATHNAME', 'search_blend'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_blend(double precision, double precision) IS
    'Relevance: 0.75 of the text score plus 0.25 of the static score.';

CREATE FUNCTION agentmarket_private.search_positive_lexemes(query tsquery)
RETURNS text[]
AS 'MODULE_PATHNAME', 'search_positive_lexemes'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.search_positive_lexemes(tsquery) IS
    'The distinct lexemes of a query outside any NOT, in typing order.';

REVOKE ALL ON FUNCTION agentmarket_private.search_typo_keys(text),
    agentmarket_private.search_is_one_typo(text, text),
    agentmarket_private.search_text_score(tsvector, text[], integer[], double precision[], boolean[], integer),
    agentmarket_private.search_text_bound(double precision[]),
    agentmarket_private.search_static_score(numeric, integer, integer),
    agentmarket_private.search_blend(double precision, double precision),
    agentmarket_private.search_positive_lexemes(tsquery) FROM PUBLIC;

------------------------------------------------------------------------------
-- Search fields of a listing
------------------------------------------------------------------------------
ALTER TABLE agentmarket.agents
  ADD COLUMN search_fields tsvector,
  ADD COLUMN search_document tsvector,
  ADD COLUMN search_static double precision NOT NULL DEFAULT 0;
COMMENT ON COLUMN agentmarket.agents.search_fields IS
    'Search: the words of the name as a/word and of the tagline and tags as b/word (no positions), so one GIN index finds where a word occurs. Kept by a trigger.';
COMMENT ON COLUMN agentmarket.agents.search_document IS
    'Search: name (weight A), tagline and tags (B), description (C). Kept by a trigger.';
COMMENT ON COLUMN agentmarket.agents.search_static IS
    'Search: static quality score (rating and hires), see search_static_score. Kept by a trigger.';

-- a || b with b's positions one further apart than || puts them.
-- (No SET clause, every name qualified: it inlines.)
CREATE FUNCTION agentmarket_private.search_join(a tsvector, b tsvector)
RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    -- The lexeme ' ' (which no parser produces) holds the gap's position.
    SELECT pg_catalog.ts_delete(a OPERATOR(pg_catalog.||) ''' '':1'::pg_catalog.tsvector OPERATOR(pg_catalog.||) b, ' '::pg_catalog.text)
$$;
COMMENT ON FUNCTION agentmarket_private.search_join(tsvector, tsvector) IS
    'Concatenates two tsvectors with a one-position gap, so phrases do not match across them.';
REVOKE ALL ON FUNCTION agentmarket_private.search_join(tsvector, tsvector) FROM PUBLIC;

CREATE FUNCTION agentmarket_private.agents_search_fields() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    name_vector tsvector;
    head_vector tsvector;
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' OR OLD.search_document IS NULL
       OR NEW.name IS DISTINCT FROM OLD.name OR NEW.tagline IS DISTINCT FROM OLD.tagline
       OR NEW.description IS DISTINCT FROM OLD.description OR NEW.tags IS DISTINCT FROM OLD.tags THEN
        name_vector := pg_catalog.setweight(pg_catalog.to_tsvector('english'::regconfig, NEW.name), 'A');
        -- Fields are joined with a gap of one position, so that a quoted
        -- phrase never matches across two of them.
        head_vector := agentmarket_private.search_join(
            pg_catalog.setweight(pg_catalog.to_tsvector('english'::regconfig, NEW.tagline), 'B'),
            pg_catalog.setweight(pg_catalog.to_tsvector('english'::regconfig,
                COALESCE(pg_catalog.array_to_string(NEW.tags, ' '), '')), 'B'));
        NEW.search_document := agentmarket_private.search_join(agentmarket_private.search_join(name_vector, head_vector),
            pg_catalog.setweight(pg_catalog.to_tsvector('english'::regconfig, NEW.description), 'C'));
        NEW.search_fields := pg_catalog.array_to_tsvector(ARRAY(
            SELECT 'a/' OPERATOR(pg_catalog.||) l FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(name_vector)) l
            UNION
            SELECT 'b/' OPERATOR(pg_catalog.||) l FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(head_vector)) l));
    ELSE
        NEW.search_fields := OLD.search_fields;
        NEW.search_document := OLD.search_document;
    END IF;
    NEW.search_static := agentmarket_private.search_static_score(NEW.avg_rating, NEW.total_reviews, NEW.total_hires);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION agentmarket_private.agents_search_fields() IS
    'Trigger: computes an agent''s weighted search vectors and static score; clients cannot set them.';
REVOKE ALL ON FUNCTION agentmarket_private.agents_search_fields() FROM PUBLIC;
CREATE TRIGGER agents_search_fields BEFORE INSERT OR UPDATE ON agentmarket.agents
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.agents_search_fields();

-- Only published listings are searched: every search index is partial.
CREATE INDEX agents_search_document_idx ON agentmarket.agents USING gin (search_document)
    WHERE status = 'published';
CREATE INDEX agents_search_fields_idx ON agentmarket.agents USING gin (search_fields)
    WHERE status = 'published';
CREATE INDEX agents_search_static_idx ON agentmarket.agents (search_static DESC, id DESC)
    WHERE status = 'published';
CREATE INDEX agents_search_rating_idx ON agentmarket.agents
    ((COALESCE(avg_rating, 0)) DESC, total_reviews DESC, id DESC) WHERE status = 'published';
CREATE INDEX agents_search_popular_idx ON agentmarket.agents (total_hires DESC, id DESC)
    WHERE status = 'published';
CREATE INDEX agents_search_newest_idx ON agentmarket.agents (published_at DESC, id DESC)
    WHERE status = 'published';

------------------------------------------------------------------------------
-- Vocabulary of published listings
------------------------------------------------------------------------------
CREATE TABLE agentmarket_private.search_vocabulary (
  -- Counts of published listings.  They never go below zero, but carry no
  -- CHECK: ON CONFLICT checks the proposed row (a negative delta) first.
  lexeme TEXT COLLATE "C" PRIMARY KEY,
  ndoc INTEGER NOT NULL DEFAULT 0, -- listings with the word
  n_a INTEGER NOT NULL DEFAULT 0,  -- ... in the name
  n_b INTEGER NOT NULL DEFAULT 0,  -- ... in the tagline or tags
  n_c INTEGER NOT NULL DEFAULT 0   -- ... only in the description
);
COMMENT ON TABLE agentmarket_private.search_vocabulary IS
    'Lexemes of published listings with document counts overall, in names (A), in taglines/tags (B) and only in descriptions. Derived from agents; rebuilt by agentmarket.rebuild_search_vocabulary().';

CREATE TABLE agentmarket_private.search_typo_index (
  key TEXT COLLATE "C" NOT NULL,
  lexeme TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (key, lexeme)
);
COMMENT ON TABLE agentmarket_private.search_typo_index IS
    'Deletion index of the vocabulary: (word or word minus one character, word).';

CREATE TABLE agentmarket_private.search_corpus (
  singleton BOOLEAN PRIMARY KEY DEFAULT true CONSTRAINT search_corpus_singleton CHECK (singleton),
  published INTEGER NOT NULL DEFAULT 0 CONSTRAINT search_corpus_published_check CHECK (published >= 0)
);
COMMENT ON TABLE agentmarket_private.search_corpus IS 'Number of published listings.';
INSERT INTO agentmarket_private.search_corpus DEFAULT VALUES;
REVOKE ALL ON TABLE agentmarket_private.search_vocabulary, agentmarket_private.search_typo_index,
    agentmarket_private.search_corpus FROM PUBLIC;
-- Derived from agents: pg_dump keeps the tables but none of their rows; a
-- restore rebuilds them, since loading agents fires the triggers below.
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.search_vocabulary', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.search_typo_index', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.search_corpus', 'WHERE false');

CREATE FUNCTION agentmarket_private.agents_search_vocabulary() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    delta text;
BEGIN
    -- The listings entering (+1) and leaving (-1) the published set; a
    -- published listing whose text changed leaves and enters again.
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        delta := $q$SELECT 1 AS sign, n.search_document AS document FROM new_rows n
                     WHERE n.status OPERATOR(pg_catalog.=) 'published'$q$;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        delta := $q$SELECT -1 AS sign, o.search_document AS document FROM old_rows o
                     WHERE o.status OPERATOR(pg_catalog.=) 'published'$q$;
    ELSE
        -- Most updates (hires, reviews) change neither: leave at once.
        IF NOT EXISTS (
            SELECT FROM old_rows o JOIN new_rows n ON n.id OPERATOR(pg_catalog.=) o.id
             WHERE (o.status OPERATOR(pg_catalog.=) 'published') OPERATOR(pg_catalog.<>) (n.status OPERATOR(pg_catalog.=) 'published')
                OR (n.status OPERATOR(pg_catalog.=) 'published' AND o.search_document IS DISTINCT FROM n.search_document)) THEN
            RETURN NULL;
        END IF;
        delta := $q$SELECT x.sign, x.document
          FROM old_rows o JOIN new_rows n ON n.id OPERATOR(pg_catalog.=) o.id,
               LATERAL (VALUES (-1, o.search_document, o.status OPERATOR(pg_catalog.=) 'published'),
                               (1, n.search_document, n.status OPERATOR(pg_catalog.=) 'published')) x(sign, document, published)
         WHERE x.published
           AND ((o.status OPERATOR(pg_catalog.=) 'published') OPERATOR(pg_catalog.<>) (n.status OPERATOR(pg_catalog.=) 'published')
                OR o.search_document IS DISTINCT FROM n.search_document)$q$;
    END IF;
    -- One statement: corpus size, vocabulary counts (in lexeme order, so
    -- concurrent publications lock rows in one order) and typo keys of new words.
    EXECUTE pg_catalog.format($q$
        WITH delta AS MATERIALIZED (%s),
        words AS MATERIALIZED (
            SELECT u.lexeme, pg_catalog.sum(d.sign)::integer AS ndoc,
                   COALESCE(pg_catalog.sum(d.sign) FILTER (WHERE 'A' OPERATOR(pg_catalog.=) ANY (u.weights)), 0)::integer AS n_a,
                   COALESCE(pg_catalog.sum(d.sign) FILTER (WHERE 'B' OPERATOR(pg_catalog.=) ANY (u.weights)), 0)::integer AS n_b,
                   COALESCE(pg_catalog.sum(d.sign) FILTER (WHERE NOT (u.weights OPERATOR(pg_catalog.&&) '{A,B}'::text[])), 0)::integer AS n_c,
                   pg_catalog.bool_or(d.sign OPERATOR(pg_catalog.>) 0) AS entering
              FROM delta d, pg_catalog.unnest(d.document) u
             GROUP BY u.lexeme),
        corpus AS (
            UPDATE agentmarket_private.search_corpus c
               SET published = c.published OPERATOR(pg_catalog.+) (SELECT pg_catalog.sum(d.sign) FROM delta d)
             WHERE (SELECT pg_catalog.sum(d.sign) FROM delta d) OPERATOR(pg_catalog.<>) 0),
        vocabulary AS (
            INSERT INTO agentmarket_private.search_vocabulary AS v (lexeme, ndoc, n_a, n_b, n_c)
            SELECT w.lexeme, w.ndoc, w.n_a, w.n_b, w.n_c FROM words w
             WHERE w.ndoc OPERATOR(pg_catalog.<>) 0 OR w.n_a OPERATOR(pg_catalog.<>) 0
                OR w.n_b OPERATOR(pg_catalog.<>) 0 OR w.n_c OPERATOR(pg_catalog.<>) 0
             ORDER BY w.lexeme COLLATE "C"
            ON CONFLICT (lexeme) DO UPDATE
               SET ndoc = v.ndoc OPERATOR(pg_catalog.+) EXCLUDED.ndoc,
                   n_a = v.n_a OPERATOR(pg_catalog.+) EXCLUDED.n_a,
                   n_b = v.n_b OPERATOR(pg_catalog.+) EXCLUDED.n_b,
                   n_c = v.n_c OPERATOR(pg_catalog.+) EXCLUDED.n_c)
        INSERT INTO agentmarket_private.search_typo_index (key, lexeme)
        SELECT DISTINCT k, w.lexeme
          FROM words w, pg_catalog.unnest(agentmarket_private.search_typo_keys(w.lexeme)) k
         WHERE w.entering AND pg_catalog.char_length(w.lexeme) BETWEEN 4 AND 64
        ON CONFLICT DO NOTHING$q$, delta);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.agents_search_vocabulary() IS
    'Statement trigger: applies the listings entering or leaving the published set to the search vocabulary and typo index.';
REVOKE ALL ON FUNCTION agentmarket_private.agents_search_vocabulary() FROM PUBLIC;
CREATE TRIGGER agents_search_vocabulary_insert AFTER INSERT ON agentmarket.agents
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agentmarket_private.agents_search_vocabulary();
CREATE TRIGGER agents_search_vocabulary_update AFTER UPDATE ON agentmarket.agents
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agentmarket_private.agents_search_vocabulary();
CREATE TRIGGER agents_search_vocabulary_delete AFTER DELETE ON agentmarket.agents
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agentmarket_private.agents_search_vocabulary();

CREATE FUNCTION agentmarket.rebuild_search_vocabulary()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    words bigint;
BEGIN
    LOCK TABLE agentmarket_private.search_vocabulary IN EXCLUSIVE MODE;
    LOCK TABLE agentmarket.agents IN SHARE MODE;
    DELETE FROM agentmarket_private.search_vocabulary;
    DELETE FROM agentmarket_private.search_typo_index;
    INSERT INTO agentmarket_private.search_vocabulary (lexeme, ndoc, n_a, n_b, n_c)
    SELECT u.lexeme, pg_catalog.count(*),
           pg_catalog.count(*) FILTER (WHERE 'A' OPERATOR(pg_catalog.=) ANY (u.weights)),
           pg_catalog.count(*) FILTER (WHERE 'B' OPERATOR(pg_catalog.=) ANY (u.weights)),
           pg_catalog.count(*) FILTER (WHERE NOT (u.weights OPERATOR(pg_catalog.&&) '{A,B}'::text[]))
      FROM agentmarket.agents a, pg_catalog.unnest(a.search_document) u
     WHERE a.status OPERATOR(pg_catalog.=) 'published'
     GROUP BY u.lexeme;
    GET DIAGNOSTICS words = ROW_COUNT;
    INSERT INTO agentmarket_private.search_typo_index (key, lexeme)
    SELECT DISTINCT k, v.lexeme
      FROM agentmarket_private.search_vocabulary v,
           pg_catalog.unnest(agentmarket_private.search_typo_keys(v.lexeme)) k
     WHERE pg_catalog.char_length(v.lexeme) BETWEEN 4 AND 64;
    UPDATE agentmarket_private.search_corpus c
       SET published = (SELECT pg_catalog.count(*) FROM agentmarket.agents a
                         WHERE a.status OPERATOR(pg_catalog.=) 'published');
    RETURN words;
END
$$;
COMMENT ON FUNCTION agentmarket.rebuild_search_vocabulary() IS
    'Rebuilds the search vocabulary, typo index and corpus size from the published listings (after a bulk load with triggers off); returns the number of words. service_role only.';
REVOKE ALL ON FUNCTION agentmarket.rebuild_search_vocabulary() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.rebuild_search_vocabulary() TO service_role;

------------------------------------------------------------------------------
-- Query planning
------------------------------------------------------------------------------
CREATE TYPE agentmarket_private.search_plan AS (
  query tsquery,                -- what a listing must match (NULL: anything)
  lexemes text[],               -- the terms: each query word, its typo and prefix alternatives
  groups integer[],             -- ... the word (1-based) each term belongs to
  factors double precision[],   -- ... exact 1, typo 0.5
  prefixes boolean[],           -- ... matches as a prefix (the last word typed)
  ngroups integer,              -- number of words; 0: no text score, relevance is the static score
  estimate bigint,              -- upper estimate of listings matching
  published bigint,             -- published listings
  any_word boolean,             -- the query has an OR: a match need not have every word
  group_terms text[],           -- per word: its terms as a tsquery (t1 | t2 | t3:*)
  group_name_terms text[],      -- ... as search_fields terms of the name (a/t1 | a/t2 | a/t3:*)
  group_head_terms text[],      -- ... and of the tagline and tags (b/t1 | ...)
  group_docs bigint[],          -- per word: listings with a term
  group_name_docs bigint[],     -- per word: listings with a term in the name
  group_head_docs bigint[],     -- ... in the tagline or tags
  group_body_docs bigint[],     -- ... only in the description
  group_name_bound double precision[],  -- per word: best value of a term in a name
  group_head_bound double precision[],  -- ... in a tagline or tags
  group_body_bound double precision[]   -- ... in a description
);
COMMENT ON TYPE agentmarket_private.search_plan IS
    'A user''s query turned into an expanded tsquery, scoring terms and the bounds search_agents stops on.';

-- A lexeme quoted for tsquery input.
CREATE FUNCTION agentmarket_private.search_quote(p_lexeme text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT '''' OPERATOR(pg_catalog.||)
           pg_catalog.replace(pg_catalog.replace(p_lexeme, '\', '\\'), '''', '''''')
           OPERATOR(pg_catalog.||) ''''
$$;
COMMENT ON FUNCTION agentmarket_private.search_quote(text) IS 'A lexeme quoted as a tsquery operand.';
REVOKE ALL ON FUNCTION agentmarket_private.search_quote(text) FROM PUBLIC;

CREATE FUNCTION agentmarket_private.search_prepare(p_query text)
RETURNS agentmarket_private.search_plan
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, agentmarket_private
AS $$
DECLARE
    p agentmarket_private.search_plan;
    q0 tsquery;
    positives text[];
    tail text;
    last_lexeme text;
    published bigint;
    r record;
BEGIN
    p.ngroups := 0;
    IF p_query IS NULL OR pg_catalog.btrim(p_query) OPERATOR(pg_catalog.=) '' THEN
        RETURN p;
    END IF;
    -- websearch syntax never raises a syntax error; long input is cut.
    q0 := pg_catalog.websearch_to_tsquery('english'::regconfig, pg_catalog.left(p_query, 512));
    IF pg_catalog.numnode(q0) OPERATOR(pg_catalog.=) 0 THEN
        RETURN p;               -- only stop words
    END IF;
    p.query := q0;
    positives := search_positive_lexemes(q0);
    IF pg_catalog.cardinality(positives) OPERATOR(pg_catalog.=) 0 THEN
        RETURN p;               -- only exclusions: a filter without a text score
    END IF;
    -- The last word is matched as a prefix when the query ends inside it.
    tail := pg_catalog.substring(p_query, '([[:alnum:]]+)$');
    IF tail IS NOT NULL THEN
        SELECT t INTO last_lexeme
          FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(pg_catalog.to_tsvector('english'::regconfig, tail))) t
         LIMIT 1;
        IF NOT (last_lexeme OPERATOR(pg_catalog.=) ANY (positives)) THEN
            last_lexeme := NULL;
        END IF;
    END IF;
    SELECT c.published INTO published FROM search_corpus c;

    WITH words AS (
        SELECT t.w, t.g::integer AS g FROM pg_catalog.unnest(positives) WITH ORDINALITY t(w, g)
    ), terms AS (
        SELECT words.g, words.w AS lexeme, 1.0::float8 AS factor,
               COALESCE(words.w OPERATOR(pg_catalog.=) last_lexeme, false) AS prefix, 0 AS kind
          FROM words
        UNION ALL
        -- One typo in words of five letters or more: candidates share a
        -- deletion key; the C check keeps those exactly one edit away.
        SELECT words.g, c.lexeme, 0.5::float8, false, 1
          FROM words CROSS JOIN LATERAL (
                SELECT t.lexeme FROM search_typo_index t
                  JOIN search_vocabulary v ON v.lexeme OPERATOR(pg_catalog.=) t.lexeme
                 WHERE t.key OPERATOR(pg_catalog.=) ANY (search_typo_keys(words.w))
                   AND t.lexeme OPERATOR(pg_catalog.<>) words.w
                   AND v.ndoc OPERATOR(pg_catalog.>) 0
                   AND search_is_one_typo(words.w, t.lexeme)
                 GROUP BY t.lexeme, v.ndoc
                 ORDER BY v.ndoc DESC, t.lexeme LIMIT 8) c
         WHERE pg_catalog.char_length(words.w) BETWEEN 5 AND 64
    ), stats AS (
        -- Vocabulary counts of each term: the exact word, and for a prefix its
        -- completions (the range (w, w || U+10FFFF)), which score 0.8 of it.
        SELECT terms.*, e.ndoc OPERATOR(pg_catalog.+) COALESCE(x.ndoc, 0) AS ndoc,
               e.n_a OPERATOR(pg_catalog.+) COALESCE(x.n_a, 0) AS n_a,
               e.n_b OPERATOR(pg_catalog.+) COALESCE(x.n_b, 0) AS n_b,
               e.n_c OPERATOR(pg_catalog.+) COALESCE(x.n_c, 0) AS n_c,
               GREATEST(CASE WHEN e.n_a OPERATOR(pg_catalog.>) 0 THEN terms.factor ELSE 0 END,
                        CASE WHEN x.n_a OPERATOR(pg_catalog.>) 0 THEN terms.factor * 0.8 ELSE 0 END) AS name_bound,
               GREATEST(CASE WHEN e.n_b OPERATOR(pg_catalog.>) 0 THEN terms.factor * 0.5 ELSE 0 END,
                        CASE WHEN x.n_b OPERATOR(pg_catalog.>) 0 THEN terms.factor * 0.8 * 0.5 ELSE 0 END) AS head_bound,
               GREATEST(CASE WHEN e.ndoc OPERATOR(pg_catalog.>) 0 THEN terms.factor * 0.25 ELSE 0 END,
                        CASE WHEN x.ndoc OPERATOR(pg_catalog.>) 0 THEN terms.factor * 0.8 * 0.25 ELSE 0 END) AS body_bound
          FROM terms
          CROSS JOIN LATERAL (
                SELECT COALESCE(pg_catalog.max(v.ndoc), 0) AS ndoc, COALESCE(pg_catalog.max(v.n_a), 0) AS n_a,
                       COALESCE(pg_catalog.max(v.n_b), 0) AS n_b, COALESCE(pg_catalog.max(v.n_c), 0) AS n_c
                  FROM search_vocabulary v WHERE v.lexeme OPERATOR(pg_catalog.=) (terms.lexeme COLLATE "C")) e
          LEFT JOIN LATERAL (
                SELECT pg_catalog.sum(v.ndoc) AS ndoc, pg_catalog.sum(v.n_a) AS n_a, pg_catalog.sum(v.n_b) AS n_b,
                       pg_catalog.sum(v.n_c) AS n_c
                  FROM search_vocabulary v
                 WHERE terms.prefix
                   AND v.lexeme OPERATOR(pg_catalog.>) (terms.lexeme COLLATE "C")
                   AND v.lexeme OPERATOR(pg_catalog.<) ((terms.lexeme OPERATOR(pg_catalog.||) pg_catalog.chr(1114111)) COLLATE "C")) x ON true
    ), per_group AS (
        SELECT st.g,
               pg_catalog.max(st.name_bound) AS name_bound,
               pg_catalog.max(st.head_bound) AS head_bound,
               pg_catalog.max(st.body_bound) AS body_bound,
               LEAST(pg_catalog.sum(st.ndoc), published) AS ndoc,
               pg_catalog.sum(st.n_a) AS name_docs,
               pg_catalog.sum(st.n_b) AS head_docs,
               pg_catalog.sum(st.n_c) AS body_docs,
               pg_catalog.string_agg(search_quote(st.lexeme) OPERATOR(pg_catalog.||)
                                     CASE WHEN st.prefix THEN ':*' ELSE '' END, ' | ' ORDER BY st.kind, st.lexeme) AS alternatives,
               pg_catalog.string_agg(search_quote('a/' OPERATOR(pg_catalog.||) st.lexeme) OPERATOR(pg_catalog.||)
                                     CASE WHEN st.prefix THEN ':*' ELSE '' END, ' | ' ORDER BY st.kind, st.lexeme) AS name_terms,
               pg_catalog.string_agg(search_quote('b/' OPERATOR(pg_catalog.||) st.lexeme) OPERATOR(pg_catalog.||)
                                     CASE WHEN st.prefix THEN ':*' ELSE '' END, ' | ' ORDER BY st.kind, st.lexeme) AS head_terms,
               pg_catalog.count(*) OPERATOR(pg_catalog.>) 1 OR pg_catalog.bool_or(st.prefix) AS expanded
          FROM stats st GROUP BY st.g
    )
    SELECT (SELECT pg_catalog.array_agg(st.lexeme ORDER BY st.g, st.kind, st.lexeme) FROM stats st) AS lexemes,
           (SELECT pg_catalog.array_agg(st.g ORDER BY st.g, st.kind, st.lexeme) FROM stats st) AS groups,
           (SELECT pg_catalog.array_agg(st.factor ORDER BY st.g, st.kind, st.lexeme) FROM stats st) AS factors,
           (SELECT pg_catalog.array_agg(st.prefix ORDER BY st.g, st.kind, st.lexeme) FROM stats st) AS prefixes,
           pg_catalog.count(*)::integer AS ngroups,
           CASE WHEN q0::text OPERATOR(pg_catalog.~~) '%|%' THEN pg_catalog.sum(pg.ndoc)
                ELSE pg_catalog.min(pg.ndoc) END AS estimate,
           pg_catalog.array_agg(pg.alternatives ORDER BY pg.g) AS group_terms,
           pg_catalog.array_agg(pg.name_terms ORDER BY pg.g) AS group_name_terms,
           pg_catalog.array_agg(pg.head_terms ORDER BY pg.g) AS group_head_terms,
           pg_catalog.array_agg(pg.ndoc::bigint ORDER BY pg.g) AS group_docs,
           pg_catalog.array_agg(pg.name_docs::bigint ORDER BY pg.g) AS group_name_docs,
           pg_catalog.array_agg(pg.head_docs::bigint ORDER BY pg.g) AS group_head_docs,
           pg_catalog.array_agg(pg.body_docs::bigint ORDER BY pg.g) AS group_body_docs,
           pg_catalog.array_agg(pg.name_bound::float8 ORDER BY pg.g) AS group_name_bound,
           pg_catalog.array_agg(pg.head_bound::float8 ORDER BY pg.g) AS group_head_bound,
           pg_catalog.array_agg(pg.body_bound::float8 ORDER BY pg.g) AS group_body_bound,
           pg_catalog.array_agg(pg.alternatives ORDER BY pg.g) FILTER (WHERE pg.expanded) AS rewrites,
           pg_catalog.array_agg(positives[pg.g] ORDER BY pg.g) FILTER (WHERE pg.expanded) AS rewritten
      INTO r FROM per_group pg;

    p.lexemes := r.lexemes; p.groups := r.groups; p.factors := r.factors; p.prefixes := r.prefixes;
    p.ngroups := r.ngroups; p.estimate := r.estimate; p.group_terms := r.group_terms;
    p.group_name_terms := r.group_name_terms; p.group_head_terms := r.group_head_terms;
    p.published := published; p.any_word := q0::text OPERATOR(pg_catalog.~~) '%|%';
    p.group_docs := r.group_docs;
    p.group_name_docs := r.group_name_docs; p.group_head_docs := r.group_head_docs;
    p.group_body_docs := r.group_body_docs;
    p.group_name_bound := r.group_name_bound; p.group_head_bound := r.group_head_bound;
    p.group_body_bound := r.group_body_bound;
    -- Each word becomes (word | typo | ... ) or word:* wherever it occurs.
    FOR i IN 1 .. COALESCE(pg_catalog.cardinality(r.rewrites), 0) LOOP
        p.query := pg_catalog.ts_rewrite(p.query, search_quote(r.rewritten[i])::tsquery, r.rewrites[i]::tsquery);
    END LOOP;
    RETURN p;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_prepare(text) IS
    'Turns a user''s query into a search plan: websearch syntax, one-typo and last-word-prefix alternatives from the vocabulary, estimates and score bounds.';
REVOKE ALL ON FUNCTION agentmarket_private.search_prepare(text) FROM PUBLIC;

------------------------------------------------------------------------------
-- Cursors
------------------------------------------------------------------------------
-- An opaque page cursor: base64url of "sort|key|key2|id".
CREATE FUNCTION agentmarket_private.search_cursor(p_sort text, p_key text, p_key2 text, p_id uuid)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT pg_catalog.rtrim(pg_catalog.translate(pg_catalog.encode(pg_catalog.convert_to(
               pg_catalog.concat_ws('|', p_sort, COALESCE(p_key, ''), COALESCE(p_key2, ''), p_id::text), 'UTF8'),
               'base64'), E'+/\n', '-_'), '=')
$$;
COMMENT ON FUNCTION agentmarket_private.search_cursor(text, text, text, uuid) IS
    'Encodes a keyset position as an opaque URL-safe cursor.';
REVOKE ALL ON FUNCTION agentmarket_private.search_cursor(text, text, text, uuid) FROM PUBLIC;

-- The four parts of a cursor made for this sort; 22023 when it is not one.
CREATE FUNCTION agentmarket_private.search_cursor_parts(p_cursor text, p_sort text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
DECLARE
    parts text[];
    padded text;
BEGIN
    BEGIN
        IF p_cursor OPERATOR(pg_catalog.!~) '^[A-Za-z0-9_-]+$' OR pg_catalog.length(p_cursor) OPERATOR(pg_catalog.>) 400 THEN
            RAISE EXCEPTION USING ERRCODE = '22P02';
        END IF;
        padded := pg_catalog.translate(p_cursor, '-_', '+/');
        padded := padded OPERATOR(pg_catalog.||)
                  pg_catalog.repeat('=', (4 OPERATOR(pg_catalog.-) (pg_catalog.length(padded) OPERATOR(pg_catalog.%) 4)) OPERATOR(pg_catalog.%) 4);
        parts := pg_catalog.string_to_array(
                     pg_catalog.convert_from(pg_catalog.decode(padded, 'base64'), 'UTF8'), '|');
        IF pg_catalog.cardinality(parts) OPERATOR(pg_catalog.<>) 4 OR parts[1] IS DISTINCT FROM p_sort THEN
            RAISE EXCEPTION USING ERRCODE = '22P02';
        END IF;
        PERFORM parts[4]::uuid;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'invalid page cursor' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('page_after must be the cursor of a row returned by search_agents with sort %s.', p_sort);
    END;
    RETURN parts;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_cursor_parts(text, text) IS
    'Decodes a page cursor made for the given sort; raises 22023 for anything else.';
REVOKE ALL ON FUNCTION agentmarket_private.search_cursor_parts(text, text) FROM PUBLIC;

------------------------------------------------------------------------------
-- Top-k by relevance
------------------------------------------------------------------------------
-- The tiers of a query with up to three words: every combination of where
-- each word matches (name; tagline or tags but not the name; neither), with
-- the best text score a listing in the tier can have, its size estimated as
-- if words were independent and, when some word must be in a name, tagline
-- or tags, the search_fields condition that selects the tier through its GIN
-- index.  Tiers nothing can be in are left out.
CREATE FUNCTION agentmarket_private.search_tiers(p agentmarket_private.search_plan)
RETURNS TABLE (bound double precision, estimate double precision, driver text, condition text)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, agentmarket_private
AS $$
DECLARE
    code integer;
    level integer;
    bounds double precision[];
    parts text[];
    required text[];
    positive boolean;
    n double precision := GREATEST(p.published, 1);
    possible boolean;
BEGIN
    IF p.ngroups NOT BETWEEN 1 AND 3 THEN
        RAISE EXCEPTION 'search tiers need one to three words' USING ERRCODE = '22023';
    END IF;
    FOR t IN 0 .. (3 OPERATOR(pg_catalog.^) p.ngroups)::integer OPERATOR(pg_catalog.-) 1 LOOP
        code := t; bounds := '{}'; parts := '{}'; required := '{}'; positive := false;
        estimate := n; possible := true;
        FOR g IN 1 .. p.ngroups LOOP
            level := code OPERATOR(pg_catalog.%) 3;
            code := code OPERATOR(pg_catalog./) 3;
            IF level OPERATOR(pg_catalog.=) 0 THEN          -- in the name
                possible := possible AND p.group_name_bound[g] OPERATOR(pg_catalog.>) 0;
                bounds := bounds OPERATOR(pg_catalog.||)
                          GREATEST(p.group_name_bound[g], p.group_head_bound[g], p.group_body_bound[g]);
                estimate := estimate OPERATOR(pg_catalog.*) p.group_name_docs[g] OPERATOR(pg_catalog./) n;
                parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('(%s)', p.group_name_terms[g]);
                required := required OPERATOR(pg_catalog.||) pg_catalog.format('(%s)', p.group_name_terms[g]);
                positive := true;
            ELSIF level OPERATOR(pg_catalog.=) 1 THEN       -- in the tagline or tags, not the name
                possible := possible AND p.group_head_bound[g] OPERATOR(pg_catalog.>) 0;
                bounds := bounds OPERATOR(pg_catalog.||) GREATEST(p.group_head_bound[g], p.group_body_bound[g]);
                estimate := estimate OPERATOR(pg_catalog.*) p.group_head_docs[g] OPERATOR(pg_catalog./) n;
                parts := parts OPERATOR(pg_catalog.||)
                         pg_catalog.format('(%s) & !(%s)', p.group_head_terms[g], p.group_name_terms[g]);
                required := required OPERATOR(pg_catalog.||) pg_catalog.format('(%s)', p.group_head_terms[g]);
                positive := true;
            ELSE                                            -- only in the description, or nowhere
                bounds := bounds OPERATOR(pg_catalog.||) p.group_body_bound[g];
                -- Without an OR every word must match: here, only in a description.
                IF NOT p.any_word THEN
                    possible := possible AND p.group_body_docs[g] OPERATOR(pg_catalog.>) 0;
                    estimate := estimate OPERATOR(pg_catalog.*) p.group_body_docs[g] OPERATOR(pg_catalog./) n;
                END IF;
                parts := parts OPERATOR(pg_catalog.||)
                         pg_catalog.format('!(%s) & !(%s)', p.group_name_terms[g], p.group_head_terms[g]);
            END IF;
        END LOOP;
        CONTINUE WHEN NOT possible;
        bound := search_text_bound(bounds);
        -- The GIN scan intersects the words that must be present (the
        -- all-description tier has none); the exclusions are checked on the rows.
        driver := CASE WHEN positive THEN pg_catalog.format('a.search_fields @@ %L::tsquery',
                                                            pg_catalog.array_to_string(required, ' & ')) END;
        condition := pg_catalog.format('a.search_fields @@ %L::tsquery', pg_catalog.array_to_string(parts, ' & '));
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_tiers(agentmarket_private.search_plan) IS
    'The possible tiers of a one- to three-word query (where each word matches), with their best text score, estimated size, GIN condition and full condition on search_fields.';
REVOKE ALL ON FUNCTION agentmarket_private.search_tiers(agentmarket_private.search_plan) FROM PUBLIC;

-- The k best of two score-ordered lists (a listing in both counts once).
CREATE FUNCTION agentmarket_private.search_merge(
    ids1 uuid[], scores1 double precision[], ids2 uuid[], scores2 double precision[], k integer,
    OUT ids uuid[], OUT scores double precision[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT COALESCE(pg_catalog.array_agg(u.id ORDER BY u.score DESC, u.id DESC), '{}'),
           COALESCE(pg_catalog.array_agg(u.score ORDER BY u.score DESC, u.id DESC), '{}')
      FROM (SELECT v.id, v.score FROM (
                SELECT * FROM ROWS FROM (pg_catalog.unnest(ids1), pg_catalog.unnest(scores1)) a(id, score)
                UNION
                SELECT * FROM ROWS FROM (pg_catalog.unnest(ids2), pg_catalog.unnest(scores2)) b(id, score)) v
             ORDER BY v.score DESC, v.id DESC LIMIT k) u
$$;
COMMENT ON FUNCTION agentmarket_private.search_merge(uuid[], double precision[], uuid[], double precision[], integer) IS
    'The k best (score, id) pairs of two lists, best first; duplicates count once.';
REVOKE ALL ON FUNCTION agentmarket_private.search_merge(uuid[], double precision[], uuid[], double precision[], integer) FROM PUBLIC;

-- Filters shared by the dynamic tier queries ($7 to $11).
CREATE FUNCTION agentmarket_private.search_filter_sql()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT 'a.status = ''published'''
        ' AND ($7::text IS NULL OR a.category = $7::text)'
        ' AND ($8::text[] IS NULL OR a.tags @> $8::text[])'
        ' AND ($9::text[] IS NULL OR a.supported_relays && $9::text[])'
        ' AND ($10::text[] IS NULL OR a.supported_models && $10::text[])'
        ' AND ($11::text IS NULL OR a.pricing_model = $11::text)'
$$;
COMMENT ON FUNCTION agentmarket_private.search_filter_sql() IS
    'The WHERE clause of the search filters, with the parameters search_agents binds.';
REVOKE ALL ON FUNCTION agentmarket_private.search_filter_sql() FROM PUBLIC;

------------------------------------------------------------------------------
-- search_agents and agent_facets
------------------------------------------------------------------------------
CREATE TYPE agentmarket.agent_search_result AS (
  id uuid,
  slug text,
  name text,
  tagline text,
  icon_url text,
  category text,
  pricing_model text,
  credits_per_session integer,
  avg_rating numeric(2,1),
  total_reviews integer,
  total_hires integer,
  supported_relays text[],
  supported_models text[],
  tags text[],
  published_at timestamptz,
  score double precision,
  cursor text
);
COMMENT ON TYPE agentmarket.agent_search_result IS
    'A row of search_agents: the listing card, its score and the cursor of the next page after it.';

-- Raises 22023 for bad search arguments; normalises empty arrays to NULL.
CREATE FUNCTION agentmarket_private.search_check_filters(
    INOUT p_tags text[], INOUT p_relays text[], INOUT p_models text[], p_pricing_model text)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
BEGIN
    IF p_pricing_model IS NOT NULL AND p_pricing_model NOT IN ('per_session', 'per_task', 'free') THEN
        RAISE EXCEPTION 'unknown pricing model "%"', p_pricing_model USING ERRCODE = '22023',
            HINT = 'Use per_session, per_task or free.';
    END IF;
    IF p_relays IS NOT NULL AND NOT (p_relays OPERATOR(pg_catalog.<@) ARRAY['telegram', 'whatsapp', 'slack', 'discord']) THEN
        RAISE EXCEPTION 'unknown relay in %', p_relays USING ERRCODE = '22023',
            HINT = 'Relays are telegram, whatsapp, slack and discord.';
    END IF;
    IF p_models IS NOT NULL AND NOT (p_models OPERATOR(pg_catalog.<@) ARRAY['claude', 'gpt', 'gemini', 'llama', 'mistral']) THEN
        RAISE EXCEPTION 'unknown model in %', p_models USING ERRCODE = '22023',
            HINT = 'Models are claude, gpt, gemini, llama and mistral.';
    END IF;
    IF pg_catalog.cardinality(p_tags) OPERATOR(pg_catalog.=) 0 THEN p_tags := NULL; END IF;
    IF pg_catalog.cardinality(p_relays) OPERATOR(pg_catalog.=) 0 THEN p_relays := NULL; END IF;
    IF pg_catalog.cardinality(p_models) OPERATOR(pg_catalog.=) 0 THEN p_models := NULL; END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_check_filters(text[], text[], text[], text) IS
    'Validates search filters (22023 on an unknown relay, model or pricing model); empty arrays mean no filter.';
REVOKE ALL ON FUNCTION agentmarket_private.search_check_filters(text[], text[], text[], text) FROM PUBLIC;

CREATE FUNCTION agentmarket.search_agents(
    query text DEFAULT NULL, category text DEFAULT NULL, tags text[] DEFAULT NULL,
    relays text[] DEFAULT NULL, models text[] DEFAULT NULL, pricing_model text DEFAULT NULL,
    sort text DEFAULT 'relevance', page_size integer DEFAULT 20, page_after text DEFAULT NULL)
RETURNS SETOF agentmarket.agent_search_result
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
SET plan_cache_mode = force_custom_plan
SET jit = off
SET max_parallel_workers_per_gather = 0
SET extra_float_digits = 3
AS $$
DECLARE
    f_category text := search_agents.category;
    f_tags text[] := search_agents.tags;
    f_relays text[] := search_agents.relays;
    f_models text[] := search_agents.models;
    f_pricing text := search_agents.pricing_model;
    f_sort text := search_agents.sort;
    k integer := search_agents.page_size;
    p agentmarket_private.search_plan;
    c text[];
    c_f double precision;
    c_n numeric;
    c_i bigint;
    c_id uuid;
    exact boolean;
    tier record;
    max_static double precision;
    filters text := search_filter_sql();
    dense_bound double precision;
    last_static double precision;
    last_id uuid;
    walked integer := 0;
    walk_ids uuid[];
    walk_scores double precision[];
    top_ids uuid[] := '{}';
    top_scores double precision[] := '{}';
    m integer;
    n integer;
    b double precision;
BEGIN
    IF k IS NULL OR k OPERATOR(pg_catalog.<) 1 OR k OPERATOR(pg_catalog.>) 100 THEN
        RAISE EXCEPTION 'page_size must be between 1 and 100' USING ERRCODE = '22023';
    END IF;
    IF f_sort IS NULL OR f_sort NOT IN ('relevance', 'rating', 'popular', 'newest') THEN
        RAISE EXCEPTION 'unknown sort "%"', f_sort USING ERRCODE = '22023',
            HINT = 'Sort by relevance, rating, popular or newest.';
    END IF;
    SELECT x.p_tags, x.p_relays, x.p_models INTO f_tags, f_relays, f_models
      FROM search_check_filters(f_tags, f_relays, f_models, f_pricing) x;
    IF page_after IS NOT NULL THEN
        c := search_cursor_parts(page_after, f_sort);
        BEGIN
            c_id := c[4]::uuid;
            CASE f_sort
                WHEN 'relevance' THEN c_f := c[2]::double precision;
                WHEN 'rating' THEN c_n := c[2]::numeric; c_i := c[3]::bigint;
                ELSE c_i := c[2]::bigint;
            END CASE;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'invalid page cursor' USING ERRCODE = '22023',
                DETAIL = 'page_after must be the cursor of a row returned by search_agents.';
        END;
    END IF;
    p := search_prepare(search_agents.query);

    IF f_sort OPERATOR(pg_catalog.<>) 'relevance' OR p.ngroups OPERATOR(pg_catalog.=) 0 THEN
        -- Sorted by a column: the matches in index order, keyset after the cursor.
        RETURN QUERY
        SELECT a.id, a.slug, a.name, a.tagline, a.icon_url, a.category, a.pricing_model,
               a.credits_per_session, a.avg_rating, a.total_reviews, a.total_hires,
               a.supported_relays, a.supported_models, a.tags, a.published_at, x.score,
               search_cursor(f_sort,
                   CASE f_sort WHEN 'relevance' THEN a.search_static::text
                               WHEN 'rating' THEN COALESCE(a.avg_rating, 0)::text
                               WHEN 'popular' THEN a.total_hires::text
                               ELSE ((EXTRACT(epoch FROM a.published_at) OPERATOR(pg_catalog.*) 1000000)::bigint)::text END,
                   CASE f_sort WHEN 'rating' THEN a.total_reviews::text END, a.id)
          FROM agentmarket.agents a
          CROSS JOIN LATERAL (SELECT CASE WHEN p.ngroups OPERATOR(pg_catalog.>) 0 THEN
                    search_blend(search_text_score(a.search_document, p.lexemes, p.groups, p.factors, p.prefixes, p.ngroups), a.search_static)
                    ELSE a.search_static END AS score) x
         WHERE a.status OPERATOR(pg_catalog.=) 'published'
           AND (p.query IS NULL OR a.search_document OPERATOR(pg_catalog.@@) p.query)
           AND (f_category IS NULL OR a.category OPERATOR(pg_catalog.=) f_category)
           AND (f_tags IS NULL OR a.tags OPERATOR(pg_catalog.@>) f_tags)
           AND (f_relays IS NULL OR a.supported_relays OPERATOR(pg_catalog.&&) f_relays)
           AND (f_models IS NULL OR a.supported_models OPERATOR(pg_catalog.&&) f_models)
           AND (f_pricing IS NULL OR a.pricing_model OPERATOR(pg_catalog.=) f_pricing)
           AND (c_id IS NULL OR CASE f_sort
                 WHEN 'relevance' THEN (a.search_static, a.id) OPERATOR(pg_catalog.<) (c_f, c_id)
                 WHEN 'rating' THEN (COALESCE(a.avg_rating, 0), a.total_reviews, a.id) OPERATOR(pg_catalog.<) (c_n, c_i::integer, c_id)
                 WHEN 'popular' THEN (a.total_hires, a.id) OPERATOR(pg_catalog.<) (c_i::integer, c_id)
                 ELSE (a.published_at, a.id) OPERATOR(pg_catalog.<)
                      ('epoch'::timestamptz OPERATOR(pg_catalog.+) (c_i::double precision OPERATOR(pg_catalog.*) '1 microsecond'::interval), c_id) END)
         ORDER BY CASE WHEN f_sort OPERATOR(pg_catalog.=) 'relevance' THEN a.search_static END DESC,
                  CASE WHEN f_sort OPERATOR(pg_catalog.=) 'rating' THEN COALESCE(a.avg_rating, 0) END DESC,
                  CASE WHEN f_sort OPERATOR(pg_catalog.=) 'rating' THEN a.total_reviews END DESC,
                  CASE WHEN f_sort OPERATOR(pg_catalog.=) 'popular' THEN a.total_hires END DESC,
                  CASE WHEN f_sort OPERATOR(pg_catalog.=) 'newest' THEN a.published_at END DESC,
                  a.id DESC
         LIMIT k;
        RETURN;
    END IF;

    -- Relevance.  A query whose words are rare enough is scored over all its
    -- matches (GIN).  Otherwise its matches are split into tiers by where each
    -- word occurs (name, tagline/tags, description): small tiers that a GIN
    -- index finds are scored whole, best bound first; the rest is walked in
    -- descending static score until nothing further down can enter the page
    -- (a listing there scores at most blend(best bound of the rest, static)).
    exact := p.estimate OPERATOR(pg_catalog.<=) 2000 OR p.ngroups OPERATOR(pg_catalog.>) 3;
    IF NOT exact THEN
        SELECT a.search_static INTO max_static FROM agentmarket.agents a
         WHERE a.status OPERATOR(pg_catalog.=) 'published'
         ORDER BY a.search_static DESC, a.id DESC LIMIT 1;
        -- Tiers no index finds cheaply are walked; the walk also sees every
        -- tier whose bound is no higher, so only better ones are fetched.
        SELECT pg_catalog.max(x.bound) INTO dense_bound FROM search_tiers(p) x
         WHERE x.driver IS NULL OR x.estimate OPERATOR(pg_catalog.>) 1500;
        FOR tier IN SELECT * FROM search_tiers(p) x ORDER BY x.bound DESC, x.estimate LOOP
            IF tier.driver IS NULL OR tier.estimate OPERATOR(pg_catalog.>) 1500
               OR tier.bound OPERATOR(pg_catalog.<=) dense_bound THEN
                dense_bound := GREATEST(dense_bound, tier.bound);
                CONTINUE;
            END IF;
            CONTINUE WHEN pg_catalog.cardinality(top_ids) OPERATOR(pg_catalog.=) k
                      AND top_scores[k] OPERATOR(pg_catalog.>) search_blend(tier.bound, max_static);
            EXECUTE pg_catalog.format($q$
                SELECT COALESCE(pg_catalog.array_agg(y.id ORDER BY y.score DESC, y.id DESC), '{}'),
                       COALESCE(pg_catalog.array_agg(y.score ORDER BY y.score DESC, y.id DESC), '{}')
                  FROM (SELECT x.id, x.score FROM (
                          SELECT a.id, agentmarket_private.search_blend(agentmarket_private.search_text_score(
                                     a.search_document, $2, $3, $4, $5, $6), a.search_static) AS score
                            FROM agentmarket.agents a
                           WHERE %s AND %s AND (%s AND a.search_document @@ $1) IS TRUE) x
                         WHERE $13::uuid IS NULL OR (x.score, x.id) < ($12::float8, $13::uuid)
                         ORDER BY x.score DESC, x.id DESC LIMIT $14) y$q$,
                filters, tier.driver, tier.condition)
            INTO walk_ids, walk_scores
            USING p.query, p.lexemes, p.groups, p.factors, p.prefixes, p.ngroups,
                  f_category, f_tags, f_relays, f_models, f_pricing, c_f, c_id, k;
            SELECT x.ids, x.scores INTO top_ids, top_scores
              FROM search_merge(top_ids, top_scores, walk_ids, walk_scores, k) x;
        END LOOP;
        IF dense_bound IS NOT NULL AND NOT (pg_catalog.cardinality(top_ids) OPERATOR(pg_catalog.=) k
                AND top_scores[k] OPERATOR(pg_catalog.>) search_blend(dense_bound, max_static)) THEN
            m := 256;
            LOOP
                -- The next m listings in static order (the static-score index,
                -- continuing after the last one seen), scored when they match.
                EXECUTE pg_catalog.format($q$
                    SELECT pg_catalog.count(*)::integer,
                           (pg_catalog.array_agg(x.s ORDER BY x.s, x.id))[1],
                           (pg_catalog.array_agg(x.id ORDER BY x.s, x.id))[1],
                           COALESCE(pg_catalog.array_agg(x.id) FILTER (WHERE x.score IS NOT NULL
                               AND ($13::uuid IS NULL OR (x.score, x.id) < ($12::float8, $13::uuid))), '{}'),
                           COALESCE(pg_catalog.array_agg(x.score) FILTER (WHERE x.score IS NOT NULL
                               AND ($13::uuid IS NULL OR (x.score, x.id) < ($12::float8, $13::uuid))), '{}')
                      FROM (SELECT a.id, a.search_static AS s,
                                   CASE WHEN a.search_document @@ $1 THEN agentmarket_private.search_blend(
                                       agentmarket_private.search_text_score(a.search_document, $2, $3, $4, $5, $6),
                                       a.search_static) END AS score
                              FROM agentmarket.agents a
                             WHERE %s AND ($16::uuid IS NULL OR (a.search_static, a.id) < ($15::float8, $16::uuid))
                             ORDER BY a.search_static DESC, a.id DESC LIMIT $14) x$q$,
                    filters)
                INTO n, last_static, last_id, walk_ids, walk_scores
                USING p.query, p.lexemes, p.groups, p.factors, p.prefixes, p.ngroups,
                      f_category, f_tags, f_relays, f_models, f_pricing, c_f, c_id, m, last_static, last_id;
                walked := walked OPERATOR(pg_catalog.+) n;
                SELECT x.ids, x.scores INTO top_ids, top_scores
                  FROM search_merge(top_ids, top_scores, walk_ids, walk_scores, k) x;
                EXIT WHEN n OPERATOR(pg_catalog.<) m;       -- every listing seen
                b := search_blend(dense_bound, last_static);
                -- Static scores lie on a 1e-6 grid: a tie with b means the same
                -- static score and, further down the walk, a smaller id.
                EXIT WHEN pg_catalog.cardinality(top_ids) OPERATOR(pg_catalog.=) k
                      AND (top_scores[k] OPERATOR(pg_catalog.>) b
                           OR (top_scores[k] OPERATOR(pg_catalog.=) b AND top_ids[k] OPERATOR(pg_catalog.>=) last_id));
                IF walked OPERATOR(pg_catalog.>=) 16384 THEN
                    exact := true;      -- matches too sparse for a walk: score them all
                    EXIT;
                END IF;
                m := m OPERATOR(pg_catalog.*) 2;
            END LOOP;
        END IF;
    END IF;
    RAISE DEBUG 'search_agents: estimate %, exhaustive %, listings walked %', p.estimate, exact, walked;
    IF exact THEN
        SELECT pg_catalog.array_agg(y.id ORDER BY y.score DESC, y.id DESC),
               pg_catalog.array_agg(y.score ORDER BY y.score DESC, y.id DESC)
          INTO top_ids, top_scores
          FROM (SELECT x.id, x.score FROM (
                  SELECT a.id, search_blend(search_text_score(a.search_document, p.lexemes, p.groups,
                                            p.factors, p.prefixes, p.ngroups), a.search_static) AS score
                    FROM agentmarket.agents a
                   WHERE a.status OPERATOR(pg_catalog.=) 'published'
                     AND a.search_document OPERATOR(pg_catalog.@@) p.query
                     AND (f_category IS NULL OR a.category OPERATOR(pg_catalog.=) f_category)
                     AND (f_tags IS NULL OR a.tags OPERATOR(pg_catalog.@>) f_tags)
                     AND (f_relays IS NULL OR a.supported_relays OPERATOR(pg_catalog.&&) f_relays)
                     AND (f_models IS NULL OR a.supported_models OPERATOR(pg_catalog.&&) f_models)
                     AND (f_pricing IS NULL OR a.pricing_model OPERATOR(pg_catalog.=) f_pricing)) x
                 WHERE c_id IS NULL OR (x.score, x.id) OPERATOR(pg_catalog.<) (c_f, c_id)
                 ORDER BY x.score DESC, x.id DESC LIMIT k) y;
    END IF;
    RETURN QUERY
    SELECT a.id, a.slug, a.name, a.tagline, a.icon_url, a.category, a.pricing_model,
           a.credits_per_session, a.avg_rating, a.total_reviews, a.total_hires,
           a.supported_relays, a.supported_models, a.tags, a.published_at, t.score,
           search_cursor('relevance', t.score::text, NULL, a.id)
      FROM ROWS FROM (pg_catalog.unnest(top_ids), pg_catalog.unnest(top_scores)) WITH ORDINALITY t(id, score, o)
      JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) t.id
     ORDER BY t.o;
END
$$;
COMMENT ON FUNCTION agentmarket.search_agents(text, text, text[], text[], text[], text, text, integer, text) IS
    'Searches published agents: websearch syntax with one-typo tolerance and a prefix last word; filters by category, all tags, any relay, any model, pricing model; sorts relevance, rating, popular, newest; keyset pages of 1 to 100 rows via each row''s cursor.';
REVOKE ALL ON FUNCTION agentmarket.search_agents(text, text, text[], text[], text[], text, text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.search_agents(text, text, text[], text[], text[], text, text, integer, text)
    TO anon, authenticated, service_role;

CREATE FUNCTION agentmarket.agent_facets(
    query text DEFAULT NULL, category text DEFAULT NULL, tags text[] DEFAULT NULL,
    relays text[] DEFAULT NULL, models text[] DEFAULT NULL, pricing_model text DEFAULT NULL)
RETURNS TABLE (facet text, value text, count bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
SET plan_cache_mode = force_custom_plan
SET jit = off
AS $$
DECLARE
    f_category text := agent_facets.category;
    f_tags text[] := agent_facets.tags;
    f_relays text[] := agent_facets.relays;
    f_models text[] := agent_facets.models;
    f_pricing text := agent_facets.pricing_model;
    p agentmarket_private.search_plan;
BEGIN
    SELECT x.p_tags, x.p_relays, x.p_models INTO f_tags, f_relays, f_models
      FROM search_check_filters(f_tags, f_relays, f_models, f_pricing) x;
    p := search_prepare(agent_facets.query);
    RETURN QUERY
    WITH hits AS MATERIALIZED (
        SELECT a.category AS c, a.supported_relays AS r, a.supported_models AS m, a.pricing_model AS pm
          FROM agentmarket.agents a
         WHERE a.status OPERATOR(pg_catalog.=) 'published'
           AND (p.query IS NULL OR a.search_document OPERATOR(pg_catalog.@@) p.query)
           AND (f_category IS NULL OR a.category OPERATOR(pg_catalog.=) f_category)
           AND (f_tags IS NULL OR a.tags OPERATOR(pg_catalog.@>) f_tags)
           AND (f_relays IS NULL OR a.supported_relays OPERATOR(pg_catalog.&&) f_relays)
           AND (f_models IS NULL OR a.supported_models OPERATOR(pg_catalog.&&) f_models)
           AND (f_pricing IS NULL OR a.pricing_model OPERATOR(pg_catalog.=) f_pricing))
    SELECT f.facet, f.value, f.n FROM (
        SELECT 'category'::text AS facet, h.c AS value, pg_catalog.count(*) AS n FROM hits h GROUP BY h.c
        UNION ALL
        SELECT 'relay', x, pg_catalog.count(*) FROM hits h, pg_catalog.unnest(h.r) x GROUP BY x
        UNION ALL
        SELECT 'model', x, pg_catalog.count(*) FROM hits h, pg_catalog.unnest(h.m) x GROUP BY x
        UNION ALL
        SELECT 'pricing_model', h.pm, pg_catalog.count(*) FROM hits h GROUP BY h.pm) f
     ORDER BY f.facet, f.n DESC, f.value;
END
$$;
COMMENT ON FUNCTION agentmarket.agent_facets(text, text, text[], text[], text[], text) IS
    'Counts of the published agents search_agents would match with the same query and filters, per category, relay, model and pricing model.';
REVOKE ALL ON FUNCTION agentmarket.agent_facets(text, text, text[], text[], text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.agent_facets(text, text, text[], text[], text[], text)
    TO anon, authenticated, service_role;
-- sessions.sql: talking to a hired agent and paying for it.
--
-- A session is opened on a running instance (by its owner, or by the platform
-- for a relay), paid in credits as the agent's pricing says (per_session: at
-- the start; per_task: for each task the platform reports; free: never),
-- metered when it ends (usage_events), and turned into the creator's earnings
-- with the exact split of earnings.c.  A refund returns the credits and claws
-- back earnings not yet paid out.  Every change here goes through the credit
-- ledger's functions, so balance = sum of ledger holds throughout.

ALTER TABLE agentmarket.sessions
  ADD COLUMN refunded_at TIMESTAMPTZ,
  ADD CONSTRAINT sessions_relay_check CHECK (relay IN ('web', 'telegram', 'whatsapp', 'slack', 'discord')),
  ADD CONSTRAINT sessions_ended_after_start CHECK (ended_at IS NULL OR ended_at >= started_at),
  ADD CONSTRAINT sessions_totals_not_negative CHECK (total_credits_consumed >= 0 AND total_input_tokens >= 0
                                                     AND total_output_tokens >= 0 AND compute_seconds >= 0),
  ADD CONSTRAINT sessions_refund_after_end CHECK (refunded_at IS NULL OR ended_at IS NOT NULL);
ALTER TABLE agentmarket.messages
  ADD CONSTRAINT messages_role_check CHECK (role IN ('user', 'assistant', 'system', 'tool')),
  ADD CONSTRAINT messages_tokens_not_negative CHECK (tokens_used >= 0);
ALTER TABLE agentmarket.usage_events
  ADD CONSTRAINT usage_events_not_negative CHECK (compute_seconds >= 0 AND input_tokens >= 0 AND output_tokens >= 0
                                                  AND credits_consumed >= 0 AND cost_usd >= 0);
-- Tasks charged in a session, so a retried report charges once.
CREATE TABLE agentmarket_private.session_task_charges (
  session_id UUID NOT NULL REFERENCES agentmarket.sessions(id) ON DELETE CASCADE,
  task_key TEXT NOT NULL CONSTRAINT session_task_charges_key_length CHECK (length(task_key) BETWEEN 1 AND 200),
  credits INTEGER NOT NULL CONSTRAINT session_task_charges_credits_check CHECK (credits >= 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, task_key)
);
COMMENT ON TABLE agentmarket_private.session_task_charges IS
    'One row per task charged in a per_task session, keyed by the platform''s task id.';
REVOKE ALL ON TABLE agentmarket_private.session_task_charges FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.session_task_charges', '');

-- One earnings row per session.
CREATE UNIQUE INDEX creator_earnings_one_per_session ON agentmarket.creator_earnings (session_id);

-- The session, locked, if the caller may act on it (its user, or the
-- platform); P0002 otherwise, so other users' sessions do not exist for them.
CREATE FUNCTION agentmarket_private.session_for_update(p_session_id uuid, p_admin_too boolean DEFAULT false)
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    s agentmarket.sessions;
    uid uuid := agentmarket.current_user_id();
BEGIN
    IF p_session_id IS NULL THEN
        RAISE EXCEPTION 'session id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO s FROM agentmarket.sessions x WHERE x.id OPERATOR(pg_catalog.=) p_session_id FOR UPDATE;
    IF NOT FOUND OR NOT (agentmarket_private.caller_is_service()
                         OR (uid IS NOT NULL AND s.user_id OPERATOR(pg_catalog.=) uid)
                         OR (p_admin_too AND agentmarket.current_user_is_admin())) THEN
        RAISE EXCEPTION 'session % not found', p_session_id USING ERRCODE = 'P0002';
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket_private.session_for_update(uuid, boolean) IS
    'Locks and returns a session the caller may act on (its user, service_role, and admins when asked); P0002 otherwise.';
REVOKE ALL ON FUNCTION agentmarket_private.session_for_update(uuid, boolean) FROM PUBLIC;

-- Raises 22023 unless the session is still open.
CREATE FUNCTION agentmarket_private.session_check_open(s agentmarket.sessions)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
BEGIN
    IF s.ended_at IS NOT NULL THEN
        RAISE EXCEPTION 'session has ended'
            USING ERRCODE = '22023', DETAIL = format('Session %s ended at %s.', s.id, s.ended_at),
                  HINT = 'Start a new session with agentmarket.start_session().';
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.session_check_open(agentmarket.sessions) IS
    'Raises 22023 when the session has ended.';
REVOKE ALL ON FUNCTION agentmarket_private.session_check_open(agentmarket.sessions) FROM PUBLIC;

-- The agent a session talks to (through its instance).
CREATE FUNCTION agentmarket_private.session_agent(s agentmarket.sessions)
RETURNS agentmarket.agents
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
    SELECT a.* FROM agentmarket.agents a
      JOIN agentmarket.agent_instances i ON i.agent_id OPERATOR(pg_catalog.=) a.id
     WHERE i.id OPERATOR(pg_catalog.=) s.instance_id
$$;
COMMENT ON FUNCTION agentmarket_private.session_agent(agentmarket.sessions) IS
    'The agent of a session''s instance.';
REVOKE ALL ON FUNCTION agentmarket_private.session_agent(agentmarket.sessions) FROM PUBLIC;

CREATE FUNCTION agentmarket.start_session(instance_id uuid, relay text DEFAULT 'web')
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    uid uuid := agentmarket.current_user_id();
    inst agentmarket.agent_instances;
    ag agentmarket.agents;
    s agentmarket.sessions;
BEGIN
    IF start_session.instance_id IS NULL THEN
        RAISE EXCEPTION 'instance id must not be null' USING ERRCODE = '22023';
    END IF;
    IF start_session.relay IS NULL OR start_session.relay NOT IN ('web', 'telegram', 'whatsapp', 'slack', 'discord') THEN
        RAISE EXCEPTION 'unknown relay "%"', start_session.relay
            USING ERRCODE = '22023', HINT = 'Relays are web, telegram, whatsapp, slack and discord.';
    END IF;
    SELECT * INTO inst FROM agentmarket.agent_instances i
     WHERE i.id OPERATOR(pg_catalog.=) start_session.instance_id FOR SHARE;
    IF NOT FOUND OR NOT (agentmarket_private.caller_is_service()
                         OR (uid IS NOT NULL AND inst.user_id OPERATOR(pg_catalog.=) uid)) THEN
        RAISE EXCEPTION 'instance % not found', start_session.instance_id USING ERRCODE = 'P0002';
    END IF;
    IF inst.status <> 'running' THEN
        RAISE EXCEPTION 'instance % is %, not running', inst.id, inst.status
            USING ERRCODE = '22023',
                  HINT = CASE WHEN inst.status IN ('suspended', 'stopped')
                              THEN 'Resume it with agentmarket.resume_instance() and start the session once it runs.'
                              WHEN inst.status = 'provisioning' THEN 'Wait until its machine is running.'
                         END;
    END IF;
    SELECT * INTO ag FROM agentmarket.agents a WHERE a.id OPERATOR(pg_catalog.=) inst.agent_id;
    IF start_session.relay <> 'web' AND NOT start_session.relay = ANY (COALESCE(ag.supported_relays, '{}')) THEN
        RAISE EXCEPTION 'agent "%" does not support relay "%"', ag.slug, start_session.relay
            USING ERRCODE = '22023',
                  DETAIL = format('Its relays are: %s.', COALESCE(NULLIF(array_to_string(ag.supported_relays, ', '), ''), 'web only'));
    END IF;

    INSERT INTO agentmarket.sessions (instance_id, user_id, relay)
    VALUES (inst.id, inst.user_id, start_session.relay)
    RETURNING * INTO s;
    IF ag.pricing_model = 'per_session' AND COALESCE(ag.credits_per_session, 0) > 0 THEN
        -- Not enough credits: PT402 from the ledger, and the session is not created.
        PERFORM agentmarket.deduct_credits(inst.user_id, ag.credits_per_session, s.id,
                                           'session:' || s.id::text, format('Session with %s', ag.name));
        UPDATE agentmarket.sessions x SET total_credits_consumed = ag.credits_per_session
         WHERE x.id OPERATOR(pg_catalog.=) s.id RETURNING * INTO s;
    END IF;
    UPDATE agentmarket.agent_instances i SET last_active_at = now() WHERE i.id OPERATOR(pg_catalog.=) inst.id;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket.start_session(uuid, text) IS
    'Opens a session on the caller''s running instance over a relay (web by default); a per_session agent is paid now. PT402 without enough credits, 22023 for a bad relay or an instance that is not running, P0002 for an unknown instance.';

CREATE FUNCTION agentmarket.add_message(
    session_id uuid, role text, content text, tool_use jsonb DEFAULT NULL, tokens_used integer DEFAULT 0)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    s agentmarket.sessions := agentmarket_private.session_for_update(add_message.session_id);
    message_id uuid;
BEGIN
    PERFORM agentmarket_private.session_check_open(s);
    IF add_message.role IS NULL OR add_message.role NOT IN ('user', 'assistant', 'system', 'tool') THEN
        RAISE EXCEPTION 'unknown message role "%"', add_message.role
            USING ERRCODE = '22023', HINT = 'Roles are user, assistant, system and tool.';
    END IF;
    IF add_message.role <> 'user' AND NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform may add % messages', add_message.role USING ERRCODE = '42501';
    END IF;
    IF add_message.content IS NULL THEN
        RAISE EXCEPTION 'message content must not be null' USING ERRCODE = '22023';
    END IF;
    IF COALESCE(add_message.tokens_used, -1) < 0 THEN
        RAISE EXCEPTION 'tokens_used must be zero or more' USING ERRCODE = '22023';
    END IF;
    IF add_message.tool_use IS NOT NULL AND add_message.role <> 'tool' THEN
        RAISE EXCEPTION 'only tool messages carry tool_use' USING ERRCODE = '22023';
    END IF;
    INSERT INTO agentmarket.messages (session_id, role, content, tool_use, tokens_used)
    VALUES (s.id, add_message.role, add_message.content, add_message.tool_use, add_message.tokens_used)
    RETURNING id INTO message_id;
    UPDATE agentmarket.agent_instances i SET last_active_at = now() WHERE i.id OPERATOR(pg_catalog.=) s.instance_id;
    RETURN message_id;
END
$$;
COMMENT ON FUNCTION agentmarket.add_message(uuid, text, text, jsonb, integer) IS
    'Appends a message to an open session: its user may add user messages, the platform (service_role) any role. 22023 for an ended session or bad role, P0002 for an unknown session.';

CREATE FUNCTION agentmarket.charge_task(session_id uuid, idempotency_key text)
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    s agentmarket.sessions := agentmarket_private.session_for_update(charge_task.session_id);
    ag agentmarket.agents;
BEGIN
    PERFORM agentmarket_private.session_check_open(s);
    IF charge_task.idempotency_key IS NULL OR length(charge_task.idempotency_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'a task charge needs an idempotency key'
            USING ERRCODE = '22023', HINT = 'Use the task''s own id, so a retried report charges once.';
    END IF;
    ag := agentmarket_private.session_agent(s);
    IF ag.pricing_model <> 'per_task' THEN
        RAISE EXCEPTION 'agent "%" is not priced per task', ag.slug USING ERRCODE = '22023';
    END IF;
    INSERT INTO agentmarket_private.session_task_charges (session_id, task_key, credits)
    VALUES (s.id, charge_task.idempotency_key, COALESCE(ag.credits_per_session, 0))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN s;    -- this task was charged before
    END IF;
    PERFORM agentmarket.deduct_credits(s.user_id, ag.credits_per_session, s.id,
                                       'task:' || s.id::text || ':' || charge_task.idempotency_key,
                                       'Task ' || charge_task.idempotency_key);
    UPDATE agentmarket.sessions x SET total_credits_consumed = x.total_credits_consumed + ag.credits_per_session
     WHERE x.id OPERATOR(pg_catalog.=) s.id RETURNING * INTO s;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket.charge_task(uuid, text) IS
    'Platform only: charges a per_task agent''s price for one finished task of an open session; the same idempotency key charges once. PT402 without enough credits.';

CREATE FUNCTION agentmarket.end_session(
    session_id uuid, compute_seconds integer, input_tokens integer, output_tokens integer, cost_usd numeric)
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    s agentmarket.sessions := agentmarket_private.session_for_update(end_session.session_id);
    ag agentmarket.agents;
    rate numeric := agentmarket_private.setting('creator_rate')::numeric;
    split record;
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform ends sessions' USING ERRCODE = '42501',
            DETAIL = 'Metering comes from the platform, never from a client.';
    END IF;
    PERFORM agentmarket_private.session_check_open(s);
    IF COALESCE(end_session.compute_seconds, -1) < 0 OR COALESCE(end_session.input_tokens, -1) < 0
       OR COALESCE(end_session.output_tokens, -1) < 0 OR COALESCE(end_session.cost_usd, -1) < 0 THEN
        RAISE EXCEPTION 'metering values must be zero or more' USING ERRCODE = '22023';
    END IF;
    ag := agentmarket_private.session_agent(s);
    -- The split validates the cost (at most 6 decimals) before anything is written.
    SELECT * INTO split FROM agentmarket.split_earnings(s.total_credits_consumed, end_session.cost_usd, rate);

    UPDATE agentmarket.sessions x
       SET ended_at = now(),
           compute_seconds = x.compute_seconds + end_session.compute_seconds,
           total_input_tokens = x.total_input_tokens + end_session.input_tokens,
           total_output_tokens = x.total_output_tokens + end_session.output_tokens
     WHERE x.id OPERATOR(pg_catalog.=) s.id RETURNING * INTO s;
    INSERT INTO agentmarket.usage_events (user_id, instance_id, session_id, compute_seconds, input_tokens,
                                          output_tokens, credits_consumed, cost_usd)
    VALUES (s.user_id, s.instance_id, s.id, end_session.compute_seconds, end_session.input_tokens,
            end_session.output_tokens, s.total_credits_consumed, end_session.cost_usd);
    IF s.total_credits_consumed > 0 THEN
        INSERT INTO agentmarket.creator_earnings (creator_id, agent_id, session_id, gross_revenue, compute_cost,
                                                  creator_amount, platform_amount, creator_rate)
        VALUES (ag.creator_id, ag.id, s.id, split.gross_revenue, end_session.cost_usd,
                split.creator_amount, split.platform_amount, rate);
    END IF;
    UPDATE agentmarket.agent_instances i SET last_active_at = now() WHERE i.id OPERATOR(pg_catalog.=) s.instance_id;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket.end_session(uuid, integer, integer, integer, numeric) IS
    'Platform only: closes a session with its metering (compute seconds, tokens, infra cost in USD), records the usage event and the creator''s earnings (exact split at the configured creator_rate). 22023 when already ended or for bad metering.';

CREATE FUNCTION agentmarket.refund_session(session_id uuid, reason text DEFAULT NULL)
RETURNS agentmarket.sessions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    s agentmarket.sessions := agentmarket_private.session_for_update(refund_session.session_id, true);
    taken integer;
BEGIN
    IF NOT (agentmarket_private.caller_is_service() OR agentmarket.current_user_is_admin()) THEN
        RAISE EXCEPTION 'only the platform or an admin refunds sessions' USING ERRCODE = '42501';
    END IF;
    IF s.ended_at IS NULL THEN
        RAISE EXCEPTION 'session is still open'
            USING ERRCODE = '22023', DETAIL = format('Session %s has not ended.', s.id),
                  HINT = 'End it with agentmarket.end_session() first.';
    END IF;
    IF s.refunded_at IS NOT NULL THEN
        RAISE EXCEPTION 'session was already refunded'
            USING ERRCODE = '22023', DETAIL = format('Session %s was refunded at %s.', s.id, s.refunded_at);
    END IF;
    SELECT COALESCE(-sum(t.amount), 0) INTO taken FROM agentmarket.credit_transactions t
     WHERE t.session_id OPERATOR(pg_catalog.=) s.id;
    IF taken > 0 THEN
        PERFORM agentmarket.refund_credits(s.user_id, taken, s.id, 'refund:' || s.id::text,
                                           COALESCE('Refund: ' || refund_session.reason, 'Session refund'));
    END IF;
    -- Earnings not yet paid out are clawed back; paid ones stay as paid, and a
    -- trigger of payouts.sql keeps the ones a payout in flight has claimed.
    DELETE FROM agentmarket.creator_earnings e
     WHERE e.session_id OPERATOR(pg_catalog.=) s.id AND NOT e.paid_out;
    UPDATE agentmarket.sessions x SET refunded_at = now() WHERE x.id OPERATOR(pg_catalog.=) s.id RETURNING * INTO s;
    RETURN s;
END
$$;
COMMENT ON FUNCTION agentmarket.refund_session(uuid, text) IS
    'Platform or admin: returns every credit the ended session took to the pots it came from and claws back its unpaid earnings (earnings a payout has claimed stay with it). 22023 when open or already refunded.';

-- pg_cron: suspend running instances idle for idle_suspend_minutes.
CREATE FUNCTION agentmarket.suspend_idle_instances()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private
AS $$
DECLARE
    idle interval := make_interval(mins => agentmarket_private.setting('idle_suspend_minutes')::integer);
    n integer := 0;
    inst uuid;
BEGIN
    FOR inst IN
        SELECT i.id FROM agentmarket.agent_instances i
         WHERE i.status = 'running'
           AND COALESCE(i.last_active_at, i.updated_at) < now() - idle
           AND NOT EXISTS (SELECT FROM agentmarket.sessions s
                            WHERE s.instance_id OPERATOR(pg_catalog.=) i.id AND s.ended_at IS NULL)
           AND NOT EXISTS (SELECT FROM agentmarket_private.jobs j
                            WHERE j.serial_key OPERATOR(pg_catalog.=) i.id::text AND j.status IN ('queued', 'running'))
         ORDER BY i.id
         FOR UPDATE OF i SKIP LOCKED
    LOOP
        PERFORM agentmarket_private.enqueue_instance_job(inst, 'fly.suspend_machine');
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket.suspend_idle_instances() IS
    'For pg_cron: enqueues a suspend for every running instance with no open session and no activity for idle_suspend_minutes; returns how many.';

REVOKE ALL ON FUNCTION agentmarket.start_session(uuid, text),
    agentmarket.add_message(uuid, text, text, jsonb, integer),
    agentmarket.charge_task(uuid, text),
    agentmarket.end_session(uuid, integer, integer, integer, numeric),
    agentmarket.refund_session(uuid, text),
    agentmarket.suspend_idle_instances() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.start_session(uuid, text),
    agentmarket.add_message(uuid, text, text, jsonb, integer) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION agentmarket.refund_session(uuid, text) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION agentmarket.charge_task(uuid, text),
    agentmarket.end_session(uuid, integer, integer, integer, numeric),
    agentmarket.suspend_idle_instances() TO service_role;
-- earnings.sql: the creator's share of revenue (shared/DESIGN.md, Money).
-- The split itself is C (earnings.c): exact integer arithmetic, so
-- creator_amount + platform_amount = gross_revenue always.

CREATE FUNCTION agentmarket.split_earnings(
    credits integer, compute_cost numeric, creator_rate numeric,
    OUT gross_revenue numeric, OUT creator_amount numeric, OUT platform_amount numeric)
RETURNS record
AS 'MODULE_PATHNAME', 'split_earnings'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket.split_earnings(integer, numeric, numeric) IS
    'Earnings split: gross = credits x 0.01 USD; creator = (gross - compute_cost) x rate rounded down to 4 decimals, never below 0; platform = gross - creator. Bad input raises 22023.';
REVOKE ALL ON FUNCTION agentmarket.split_earnings(integer, numeric, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.split_earnings(integer, numeric, numeric) TO service_role;

-- Every earnings row adds up, whoever writes it.
ALTER TABLE agentmarket.creator_earnings
  ADD CONSTRAINT creator_earnings_split_adds_up CHECK (creator_amount + platform_amount = gross_revenue),
  ADD CONSTRAINT creator_earnings_amounts_not_negative
    CHECK (gross_revenue >= 0 AND compute_cost >= 0 AND creator_amount >= 0 AND platform_amount >= 0),
  ADD CONSTRAINT creator_earnings_rate_range CHECK (creator_rate BETWEEN 0 AND 1),
  ADD CONSTRAINT creator_earnings_paid_out_at CHECK (paid_out = (paid_out_at IS NOT NULL));
-- payments.sql: users pay in credits bought through Stripe.
--
--   buy_credits(pack)          a pending purchase + a stripe.create_checkout_session job
--   the job's handler          stores the Checkout session id and url on the purchase
--   handle_stripe_webhook(...) verifies the signature (payments.c), records the
--                              event once, and applies checkout.session.completed
--                              (paid, credits granted once) and .expired.

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('checkout_success_url', 'text', 'https://agentmarket.example/billing/success', NULL, NULL,
   '^https://[^[:space:]]+$',
   'Where Stripe Checkout sends the user after paying (https; may hold {CHECKOUT_SESSION_ID}).'),
  ('checkout_cancel_url', 'text', 'https://agentmarket.example/billing/cancel', NULL, NULL,
   '^https://[^[:space:]]+$',
   'Where Stripe Checkout sends the user who cancels (https).');

------------------------------------------------------------------------------
-- Packs, purchases, processed events
------------------------------------------------------------------------------

-- The packs on sale.  Like the job kinds they are part of the extension's
-- code: a restore gets them from CREATE EXTENSION (registered with a filter
-- that dumps no row).  A purchase copies credits, amount and currency, so a
-- changed pack never changes a purchase already made.
CREATE TABLE agentmarket_private.credit_packs (
  code TEXT PRIMARY KEY CONSTRAINT credit_packs_code_format CHECK (code ~ '^[a-z][a-z0-9_]{0,39}$'),
  name TEXT NOT NULL CONSTRAINT credit_packs_name_length CHECK (length(name) BETWEEN 1 AND 100),
  kind TEXT NOT NULL CONSTRAINT credit_packs_kind_check CHECK (kind IN ('topup', 'subscription')),
  credits INTEGER NOT NULL CONSTRAINT credit_packs_credits_check CHECK (credits > 0),
  amount_cents BIGINT NOT NULL CONSTRAINT credit_packs_amount_check CHECK (amount_cents > 0),
  currency TEXT NOT NULL DEFAULT 'usd' CONSTRAINT credit_packs_currency_check CHECK (currency ~ '^[a-z]{3}$'),
  active BOOLEAN NOT NULL DEFAULT true
);
COMMENT ON TABLE agentmarket_private.credit_packs IS
    'Credit packs on sale: top-ups (Checkout mode payment) and monthly plans (mode subscription).';
REVOKE ALL ON TABLE agentmarket_private.credit_packs FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.credit_packs', 'WHERE false');

INSERT INTO agentmarket_private.credit_packs (code, name, kind, credits, amount_cents, currency) VALUES
  ('topup_s', '500 credits', 'topup', 500, 500, 'usd'),
  ('topup_m', '1,100 credits', 'topup', 1100, 1000, 'usd'),
  ('topup_l', '6,000 credits', 'topup', 6000, 5000, 'usd'),
  ('pro_monthly', 'Pro: 2,500 credits a month', 'subscription', 2500, 1900, 'usd');

ALTER TABLE agentmarket.purchases ADD COLUMN checkout_url TEXT
    CONSTRAINT purchases_checkout_url_check CHECK (checkout_url ~ '^https://');
COMMENT ON COLUMN agentmarket.purchases.checkout_url IS
    'The Stripe Checkout page of a pending purchase, set once the session is created.';

-- Every Stripe event handled, by event id: at-least-once delivery in any
-- order, so a repeat finds its first outcome here and changes nothing.
CREATE TABLE agentmarket_private.processed_webhook_events (
  event_id TEXT PRIMARY KEY CONSTRAINT processed_webhook_events_id_format CHECK (event_id ~ '^evt_[A-Za-z0-9_]{1,250}$'),
  type TEXT NOT NULL,
  outcome TEXT NOT NULL CONSTRAINT processed_webhook_events_outcome_check CHECK (outcome IN ('applied', 'ignored', 'rejected')),
  reason TEXT,
  purchase_id UUID,
  result JSONB NOT NULL,
  received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE agentmarket_private.processed_webhook_events IS
    'Stripe webhook events already handled, with their outcome (applied, ignored, rejected and why).';
CREATE INDEX processed_webhook_events_purchase ON agentmarket_private.processed_webhook_events (purchase_id)
    WHERE purchase_id IS NOT NULL;
REVOKE ALL ON TABLE agentmarket_private.processed_webhook_events FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('agentmarket_private.processed_webhook_events', '');

------------------------------------------------------------------------------
-- Signatures (C)
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.verify_stripe_signature(
    payload text, signature_header text, secret text,
    tolerance_seconds integer DEFAULT 300, now timestamptz DEFAULT pg_catalog.now())
RETURNS boolean
AS 'MODULE_PATHNAME', 'verify_stripe_signature'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket.verify_stripe_signature(text, text, text, integer, timestamptz) IS
    'True when a v1 entry of the Stripe-Signature header (t=<unix>,v1=<hex>...) is HMAC-SHA256(secret, "<t>.<payload>") and t is within tolerance_seconds of now; PT401 otherwise.';
REVOKE ALL ON FUNCTION agentmarket.verify_stripe_signature(text, text, text, integer, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.verify_stripe_signature(text, text, text, integer, timestamptz) TO service_role;

CREATE FUNCTION agentmarket_private.hmac_sha256_hex(key bytea, message bytea)
RETURNS text
AS 'MODULE_PATHNAME', 'am_hmac_sha256_hex'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION agentmarket_private.hmac_sha256_hex(bytea, bytea) IS
    'HMAC-SHA256 of message with key, as lower-case hex (what a v1 Stripe signature is).';
REVOKE ALL ON FUNCTION agentmarket_private.hmac_sha256_hex(bytea, bytea) FROM PUBLIC;

------------------------------------------------------------------------------
-- Buying
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.credit_packs()
RETURNS TABLE (code text, name text, kind text, credits integer, amount_cents bigint, currency text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
    SELECT p.code, p.name, p.kind, p.credits, p.amount_cents, p.currency
      FROM agentmarket_private.credit_packs p
     WHERE p.active
     ORDER BY p.kind DESC, p.amount_cents, p.code
$$;
COMMENT ON FUNCTION agentmarket.credit_packs() IS
    'The packs on sale (top-ups first, then plans), for the pricing page.';
REVOKE ALL ON FUNCTION agentmarket.credit_packs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.credit_packs() TO anon, authenticated, service_role;

CREATE FUNCTION agentmarket.buy_credits(pack text)
RETURNS agentmarket.purchases
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    uid uuid := agentmarket.current_user_id();
    u agentmarket.users;
    p agentmarket_private.credit_packs;
    pur agentmarket.purchases;
    meta jsonb;
    params jsonb;
    price jsonb;
BEGIN
    IF uid IS NULL THEN
        RAISE EXCEPTION 'not signed in' USING ERRCODE = '42501',
            DETAIL = 'Buying credits needs a signed-in user.';
    END IF;
    SELECT * INTO u FROM agentmarket.users x WHERE x.id OPERATOR(pg_catalog.=) uid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'not signed in' USING ERRCODE = '42501',
            DETAIL = 'The signed-in user has no account.';
    END IF;
    SELECT * INTO p FROM agentmarket_private.credit_packs c
     WHERE c.code OPERATOR(pg_catalog.=) buy_credits.pack AND c.active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown credit pack %', COALESCE(pg_catalog.quote_literal(buy_credits.pack), 'null')
            USING ERRCODE = '22023',
                  HINT = 'agentmarket.credit_packs() lists the packs on sale.';
    END IF;
    INSERT INTO agentmarket.purchases (user_id, kind, product, credits, amount_cents, currency)
    VALUES (uid, p.kind, p.code, p.credits, p.amount_cents, p.currency)
    RETURNING * INTO pur;

    meta := pg_catalog.jsonb_build_object('purchase_id', pur.id, 'user_id', uid);
    price := pg_catalog.jsonb_build_object('currency', p.currency, 'unit_amount', p.amount_cents,
                 'product_data', pg_catalog.jsonb_build_object('name', p.name));
    IF p.kind OPERATOR(pg_catalog.=) 'subscription' THEN
        price := price OPERATOR(pg_catalog.||)
                 pg_catalog.jsonb_build_object('recurring', pg_catalog.jsonb_build_object('interval', 'month'));
    END IF;
    params := pg_catalog.jsonb_build_object(
        'mode', CASE p.kind WHEN 'topup' THEN 'payment' ELSE 'subscription' END,
        'line_items', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('quantity', 1, 'price_data', price)),
        'success_url', agentmarket_private.setting('checkout_success_url'),
        'cancel_url', agentmarket_private.setting('checkout_cancel_url'),
        'client_reference_id', pur.id,
        'metadata', meta,
        CASE p.kind WHEN 'topup' THEN 'payment_intent_data' ELSE 'subscription_data' END,
        pg_catalog.jsonb_build_object('metadata', meta));
    params := params OPERATOR(pg_catalog.||) CASE WHEN u.stripe_customer_id IS NOT NULL
        THEN pg_catalog.jsonb_build_object('customer', u.stripe_customer_id)
        ELSE pg_catalog.jsonb_build_object('customer_email', u.email) END;
    PERFORM agentmarket_private.enqueue_stripe_job('stripe.create_checkout_session', params,
        'checkout:' || pur.id::text, meta);
    RETURN pur;
END
$$;
COMMENT ON FUNCTION agentmarket.buy_credits(text) IS
    'Starts buying a credit pack: a pending purchase and a stripe.create_checkout_session job in one transaction; the purchase gets its checkout_url when the session exists. 22023 for an unknown pack, 42501 without a signed-in user.';
REVOKE ALL ON FUNCTION agentmarket.buy_credits(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.buy_credits(text) TO authenticated;

-- stripe.create_checkout_session succeeded: the purchase learns its session.
CREATE FUNCTION agentmarket_private.finish_checkout_session(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    session_id text := p_result OPERATOR(pg_catalog.->>) 'id';
    known text;
BEGIN
    -- Jobs enqueued by hand (no purchase) only keep their result on the job.
    IF NOT (p_job).payload ? 'purchase_id' THEN
        RETURN;
    END IF;
    IF session_id IS NULL OR session_id !~ '^cs_[A-Za-z0-9_]+$' THEN
        RAISE EXCEPTION 'checkout result of job % has no session id', (p_job).id
            USING ERRCODE = '22023', DETAIL = 'The result must be the created Checkout session.';
    END IF;
    SELECT pu.stripe_checkout_session_id INTO known FROM agentmarket.purchases pu
     WHERE pu.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'purchase_id')::uuid
     FOR UPDATE;
    IF known IS NOT NULL AND known OPERATOR(pg_catalog.<>) session_id THEN
        RAISE EXCEPTION 'purchase already has checkout session %', known
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('Job %s returned session %s.', (p_job).id, session_id);
    END IF;
    UPDATE agentmarket.purchases pu
       SET stripe_checkout_session_id = session_id,
           checkout_url = CASE WHEN p_result OPERATOR(pg_catalog.->>) 'url' LIKE 'https://%'
                               THEN p_result OPERATOR(pg_catalog.->>) 'url' END,
           expires_at = CASE WHEN pg_catalog.jsonb_typeof(p_result OPERATOR(pg_catalog.->) 'expires_at') OPERATOR(pg_catalog.=) 'number'
                             THEN pg_catalog.to_timestamp((p_result OPERATOR(pg_catalog.->>) 'expires_at')::double precision)
                             ELSE pu.expires_at END
     WHERE pu.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'purchase_id')::uuid;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_checkout_session(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_checkout_session: stores the session id, its url and expiry on payload.purchase_id.';

-- The session could not be created: the purchase failed.
CREATE FUNCTION agentmarket_private.checkout_session_dead(p_job agentmarket_private.jobs)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    IF (p_job).payload ? 'purchase_id' THEN
        UPDATE agentmarket.purchases pu SET status = 'failed'
         WHERE pu.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'purchase_id')::uuid
           AND pu.status OPERATOR(pg_catalog.=) 'pending';
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.checkout_session_dead(agentmarket_private.jobs) IS
    'Dead handler of stripe.create_checkout_session: a pending purchase whose session could not be created fails.';
REVOKE ALL ON FUNCTION agentmarket_private.finish_checkout_session(agentmarket_private.jobs, jsonb),
    agentmarket_private.checkout_session_dead(agentmarket_private.jobs) FROM PUBLIC;

UPDATE agentmarket_private.job_kinds
   SET handler = 'agentmarket_private.finish_checkout_session(agentmarket_private.jobs,jsonb)',
       dead_handler = 'agentmarket_private.checkout_session_dead(agentmarket_private.jobs)',
       description = 'Create a Checkout session (mode=payment for top-up packs, mode=subscription for plans); stores its id and url on payload.purchase_id.'
 WHERE kind OPERATOR(pg_catalog.=) 'stripe.create_checkout_session';

------------------------------------------------------------------------------
-- Webhooks
------------------------------------------------------------------------------

-- The purchase a Checkout session event is about, locked; NULL when none.
CREATE FUNCTION agentmarket_private.webhook_purchase(
    p_session jsonb, OUT purchase agentmarket.purchases, OUT rejection jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    ref text := COALESCE(p_session OPERATOR(pg_catalog.#>>) '{metadata,purchase_id}',
                         p_session OPERATOR(pg_catalog.->>) 'client_reference_id');
BEGIN
    IF ref IS NOT NULL AND ref ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        SELECT * INTO purchase FROM agentmarket.purchases pu WHERE pu.id OPERATOR(pg_catalog.=) ref::uuid FOR UPDATE;
    END IF;
    IF purchase.id IS NULL THEN
        rejection := pg_catalog.jsonb_build_object('outcome', 'rejected', 'reason', 'no purchase matches the session');
    ELSIF purchase.stripe_checkout_session_id IS NOT NULL
          AND purchase.stripe_checkout_session_id OPERATOR(pg_catalog.<>) (p_session OPERATOR(pg_catalog.->>) 'id') THEN
        rejection := pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', purchase.id,
            'reason', 'the purchase belongs to another checkout session');
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_purchase(jsonb) IS
    'The purchase named by a Checkout session''s metadata.purchase_id (or client_reference_id), locked; rejection is set when there is none or it belongs to another session.';

-- checkout.session.completed / async_payment_succeeded: paid, credits granted once.
CREATE FUNCTION agentmarket_private.webhook_checkout_paid(p_event jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    s jsonb := p_event OPERATOR(pg_catalog.#>) '{data,object}';
    pur agentmarket.purchases;
    matched record;
    total text := s OPERATOR(pg_catalog.->>) 'amount_total';
    cur text := s OPERATOR(pg_catalog.->>) 'currency';
    s_mode text := s OPERATOR(pg_catalog.->>) 'mode';
    pi text := s OPERATOR(pg_catalog.->>) 'payment_intent';
    sub text := s OPERATOR(pg_catalog.->>) 'subscription';
    customer text := s OPERATOR(pg_catalog.->>) 'customer';
    state agentmarket.credit_state;
BEGIN
    SELECT w.purchase, w.rejection INTO matched FROM agentmarket_private.webhook_purchase(s) w;
    IF matched.rejection IS NOT NULL THEN
        RETURN matched.rejection;
    END IF;
    pur := matched.purchase;
    IF (s OPERATOR(pg_catalog.#>>) '{metadata,user_id}') IS DISTINCT FROM pur.user_id::text THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pur.id,
            'reason', 'the session''s user is not the purchase''s');
    END IF;
    IF total IS DISTINCT FROM pur.amount_cents::text OR cur IS DISTINCT FROM pur.currency THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pur.id,
            'reason', pg_catalog.format('paid %s %s, the purchase costs %s %s',
                COALESCE(total, 'nothing'), COALESCE(cur, ''), pur.amount_cents, pur.currency));
    END IF;
    IF s_mode IS DISTINCT FROM (CASE pur.kind WHEN 'topup' THEN 'payment' ELSE 'subscription' END) THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'rejected', 'purchase_id', pur.id,
            'reason', pg_catalog.format('a %s purchase paid in mode %s', pur.kind, COALESCE(s_mode, 'none')));
    END IF;
    IF pur.status OPERATOR(pg_catalog.<>) 'pending' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'purchase_id', pur.id,
            'reason', 'the purchase is ' || pur.status);
    END IF;
    IF (s OPERATOR(pg_catalog.->>) 'payment_status') IS DISTINCT FROM 'paid' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'purchase_id', pur.id,
            'reason', 'payment not received yet (' || COALESCE(s OPERATOR(pg_catalog.->>) 'payment_status', 'unknown') || ')');
    END IF;

    UPDATE agentmarket.purchases pu
       SET status = 'paid', paid_at = pg_catalog.now(),
           stripe_checkout_session_id = s OPERATOR(pg_catalog.->>) 'id',
           stripe_payment_intent_id = COALESCE(pi, pu.stripe_payment_intent_id),
           stripe_subscription_id = COALESCE(sub, pu.stripe_subscription_id),
           stripe_invoice_id = COALESCE(s OPERATOR(pg_catalog.->>) 'invoice', pu.stripe_invoice_id),
           checkout_url = NULL
     WHERE pu.id OPERATOR(pg_catalog.=) pur.id;
    -- The key is the purchase: whatever delivers this again grants nothing more.
    IF pur.kind OPERATOR(pg_catalog.=) 'topup' THEN
        state := agentmarket.grant_credits(pur.user_id, pur.credits, 'topup', 'topup_purchase',
                     'Top-up ' || COALESCE(pur.product, ''), 'purchase:' || pur.id::text, pi);
    ELSE
        state := agentmarket.grant_credits(pur.user_id, pur.credits, 'subscription', 'subscription_refresh',
                     'Plan ' || COALESCE(pur.product, '') || ', first month', 'purchase:' || pur.id::text,
                     COALESCE(s OPERATOR(pg_catalog.->>) 'invoice', sub));
    END IF;
    -- A customer made by Checkout becomes the user's, when they have none.
    IF customer LIKE 'cus\_%' THEN
        UPDATE agentmarket.users u SET stripe_customer_id = customer
         WHERE u.id OPERATOR(pg_catalog.=) pur.user_id AND u.stripe_customer_id IS NULL
           AND NOT EXISTS (SELECT FROM agentmarket.users o WHERE o.stripe_customer_id OPERATOR(pg_catalog.=) customer);
    END IF;
    RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'purchase_id', pur.id, 'credits', pur.credits,
        'credit_type', pur.kind, 'available_credits', state.available_credits);
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_checkout_paid(jsonb) IS
    'Applies a paid Checkout session: checks purchase, user, amount, currency and mode, marks the purchase paid and grants its credits once (idempotency key purchase:<id>).';

-- checkout.session.expired / async_payment_failed: the pending purchase ends.
CREATE FUNCTION agentmarket_private.webhook_checkout_ended(p_event jsonb, p_status text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    s jsonb := p_event OPERATOR(pg_catalog.#>) '{data,object}';
    pur agentmarket.purchases;
    matched record;
BEGIN
    SELECT w.purchase, w.rejection INTO matched FROM agentmarket_private.webhook_purchase(s) w;
    IF matched.rejection IS NOT NULL THEN
        RETURN matched.rejection;
    END IF;
    pur := matched.purchase;
    IF pur.status OPERATOR(pg_catalog.<>) 'pending' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'ignored', 'purchase_id', pur.id,
            'reason', 'the purchase is ' || pur.status);
    END IF;
    UPDATE agentmarket.purchases pu
       SET status = p_status, checkout_url = NULL,
           stripe_checkout_session_id = s OPERATOR(pg_catalog.->>) 'id'
     WHERE pu.id OPERATOR(pg_catalog.=) pur.id;
    RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'purchase_id', pur.id, 'status', p_status);
END
$$;
COMMENT ON FUNCTION agentmarket_private.webhook_checkout_ended(jsonb, text) IS
    'Ends a pending purchase whose Checkout session expired (expired) or whose delayed payment failed (failed).';
REVOKE ALL ON FUNCTION agentmarket_private.webhook_purchase(jsonb),
    agentmarket_private.webhook_checkout_paid(jsonb),
    agentmarket_private.webhook_checkout_ended(jsonb, text) FROM PUBLIC;

CREATE FUNCTION agentmarket.handle_stripe_webhook(payload text, signature_header text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    secret text := agentmarket_private.setting('stripe_webhook_secret');
    ev jsonb;
    ev_id text;
    ev_type text;
    seen agentmarket_private.processed_webhook_events;
    r jsonb;
BEGIN
    IF secret IS NULL THEN
        RAISE EXCEPTION 'stripe webhook secret is not configured' USING ERRCODE = '55000',
            DETAIL = 'Without the endpoint''s signing secret no event can be verified.',
            HINT = 'Set it with agentmarket.configure(''stripe_webhook_secret'', ''whsec_...'').';
    END IF;
    PERFORM agentmarket.verify_stripe_signature(payload, signature_header, secret,
        agentmarket_private.setting('webhook_tolerance_seconds')::integer, pg_catalog.now());
    BEGIN
        ev := payload::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'webhook payload is not JSON' USING ERRCODE = '22023',
            DETAIL = 'A Stripe event is a JSON object.';
    END;
    ev_id := ev OPERATOR(pg_catalog.->>) 'id';
    ev_type := ev OPERATOR(pg_catalog.->>) 'type';
    IF pg_catalog.jsonb_typeof(ev) OPERATOR(pg_catalog.<>) 'object' OR ev_id IS NULL
       OR ev_id !~ '^evt_[A-Za-z0-9_]{1,250}$' OR ev_type IS NULL THEN
        RAISE EXCEPTION 'webhook payload is not a stripe event' USING ERRCODE = '22023',
            DETAIL = 'A Stripe event has an id evt_... and a type.';
    END IF;

    -- Claim the event id.  A concurrent delivery of the same event waits
    -- here until the first commits (then it is a duplicate) or rolls back.
    INSERT INTO agentmarket_private.processed_webhook_events (event_id, type, outcome, result)
    VALUES (ev_id, ev_type, 'ignored', '{}')
    ON CONFLICT (event_id) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO STRICT seen FROM agentmarket_private.processed_webhook_events e
         WHERE e.event_id OPERATOR(pg_catalog.=) ev_id;
        RETURN seen.result OPERATOR(pg_catalog.||)
               pg_catalog.jsonb_build_object('outcome', 'duplicate', 'first_outcome', seen.outcome);
    END IF;

    r := CASE ev_type
        WHEN 'checkout.session.completed' THEN agentmarket_private.webhook_checkout_paid(ev)
        WHEN 'checkout.session.async_payment_succeeded' THEN agentmarket_private.webhook_checkout_paid(ev)
        WHEN 'checkout.session.expired' THEN agentmarket_private.webhook_checkout_ended(ev, 'expired')
        WHEN 'checkout.session.async_payment_failed' THEN agentmarket_private.webhook_checkout_ended(ev, 'failed')
        ELSE pg_catalog.jsonb_build_object('outcome', 'ignored', 'reason', 'event type not handled')
    END;
    r := pg_catalog.jsonb_build_object('event', ev_id, 'type', ev_type) OPERATOR(pg_catalog.||) r;
    UPDATE agentmarket_private.processed_webhook_events e
       SET outcome = r OPERATOR(pg_catalog.->>) 'outcome', reason = r OPERATOR(pg_catalog.->>) 'reason',
           purchase_id = (r OPERATOR(pg_catalog.->>) 'purchase_id')::uuid, result = r
     WHERE e.event_id OPERATOR(pg_catalog.=) ev_id;
    RETURN r;
END
$$;
COMMENT ON FUNCTION agentmarket.handle_stripe_webhook(text, text) IS
    'The Stripe webhook endpoint: verifies the Stripe-Signature header (PT401), handles each event id once (a repeat returns {"outcome": "duplicate", "first_outcome": ...}), applies checkout.session.completed/expired/async_payment_*; returns {"event", "type", "outcome": applied|ignored|rejected|duplicate, ...}. 55000 while stripe_webhook_secret is unset.';
REVOKE ALL ON FUNCTION agentmarket.handle_stripe_webhook(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.handle_stripe_webhook(text, text) TO service_role;
-- payouts.sql: creators are paid through Stripe Connect.
--
--   start_creator_onboarding()  a stripe.create_account job (Express) when the
--                               creator has no account; its handler (or the
--                               call itself, when the account exists) enqueues
--                               a stripe.create_account_link job
--   my_onboarding_link()        the creator's latest onboarding link
--   run_payouts()               claims every creator's payable earnings into
--                               one payout and enqueues its stripe.create_transfer
--   the transfer's handlers     paid (earnings paid out) or failed (released)
--
-- Money stays exact: a payout's amount_usd is the exact sum of the earnings it
-- claimed; Stripe moves whole cents, so the sub-cent remainder of a paid payout
-- is carried into the creator's next payout (carried_in_usd).  For every
-- creator: sum of paid transfers + carry_usd() = sum of paid-out earnings.

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('connect_refresh_url', 'text', 'https://agentmarket.example/creator/payouts/refresh', NULL, NULL,
   '^https://[^[:space:]]+$',
   'Where Stripe sends a creator whose onboarding link expired (https).'),
  ('connect_return_url', 'text', 'https://agentmarket.example/creator/payouts/return', NULL, NULL,
   '^https://[^[:space:]]+$',
   'Where Stripe sends a creator after onboarding (https).');

------------------------------------------------------------------------------
-- Payouts
------------------------------------------------------------------------------

CREATE TABLE agentmarket.payouts (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  creator_id UUID NOT NULL REFERENCES agentmarket.users(id),
  stripe_connect_account_id TEXT NOT NULL CONSTRAINT payouts_account_format CHECK (stripe_connect_account_id ~ '^acct_'),
  -- Exact sum of the creator_amount of the earnings this payout claimed.
  amount_usd NUMERIC(12,4) NOT NULL CONSTRAINT payouts_amount_positive CHECK (amount_usd > 0),
  -- The sub-cent remainder of the creator's earlier paid payouts, added here.
  carried_in_usd NUMERIC(12,4) NOT NULL DEFAULT 0
    CONSTRAINT payouts_carried_in_range CHECK (carried_in_usd >= 0 AND carried_in_usd < 0.01),
  -- Whole cents of amount_usd + carried_in_usd: what the transfer moves.
  transfer_cents BIGINT NOT NULL CONSTRAINT payouts_transfer_positive CHECK (transfer_cents > 0),
  -- What is left below a cent, carried to the next payout once this one is paid.
  remainder_usd NUMERIC(12,4) GENERATED ALWAYS AS (amount_usd + carried_in_usd - transfer_cents / 100.0) STORED,
  status TEXT NOT NULL DEFAULT 'pending' CONSTRAINT payouts_status_check CHECK (status IN ('pending', 'paid', 'failed')),
  stripe_transfer_id TEXT CONSTRAINT payouts_transfer_id_format CHECK (stripe_transfer_id ~ '^tr_'),
  failure_reason TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  paid_at TIMESTAMPTZ,
  failed_at TIMESTAMPTZ,
  CONSTRAINT payouts_whole_cents CHECK (transfer_cents = floor((amount_usd + carried_in_usd) * 100)),
  CONSTRAINT payouts_paid_consistent CHECK ((status = 'paid') = (paid_at IS NOT NULL AND stripe_transfer_id IS NOT NULL)),
  CONSTRAINT payouts_failed_consistent CHECK ((status = 'failed') = (failed_at IS NOT NULL))
);
COMMENT ON TABLE agentmarket.payouts IS
    'One Stripe Connect transfer to a creator: the exact sum of the earnings it claimed, the whole cents transferred and the sub-cent remainder carried to the next payout.';
COMMENT ON COLUMN agentmarket.payouts.remainder_usd IS
    'amount_usd + carried_in_usd - transfer_cents/100, in [0, 0.01): carried into the creator''s next payout once this one is paid.';
CREATE INDEX payouts_creator ON agentmarket.payouts (creator_id, created_at);
-- At most one payout in flight per creator.
CREATE UNIQUE INDEX payouts_one_pending ON agentmarket.payouts (creator_id) WHERE status = 'pending';
CREATE TRIGGER payouts_touch_updated_at BEFORE UPDATE ON agentmarket.payouts
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.touch_updated_at();
ALTER TABLE agentmarket.payouts ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE agentmarket.payouts FROM PUBLIC, anon, authenticated, service_role, agentmarket_analyst;
GRANT ALL ON TABLE agentmarket.payouts TO service_role;
GRANT SELECT ON TABLE agentmarket.payouts TO authenticated;
CREATE POLICY service_role_all ON agentmarket.payouts TO service_role USING (true) WITH CHECK (true);
CREATE POLICY payouts_select_own ON agentmarket.payouts FOR SELECT TO authenticated
    USING (creator_id OPERATOR(pg_catalog.=) (SELECT agentmarket.current_user_id())
           OR (SELECT agentmarket.current_user_is_admin()));
SELECT pg_catalog.pg_extension_config_dump('agentmarket.payouts', '');

ALTER TABLE agentmarket.creator_earnings ADD COLUMN payout_id UUID
    CONSTRAINT creator_earnings_payout_fkey REFERENCES agentmarket.payouts(id);
COMMENT ON COLUMN agentmarket.creator_earnings.payout_id IS
    'The payout that claimed this row (set by run_payouts, cleared when that payout fails); a row is in one payout at a time.';
CREATE INDEX creator_earnings_payout ON agentmarket.creator_earnings (payout_id) WHERE payout_id IS NOT NULL;
CREATE INDEX creator_earnings_unclaimed ON agentmarket.creator_earnings (creator_id, created_at)
    WHERE payout_id IS NULL AND NOT paid_out;

-- A claimed row is money on its way to the creator: deleting it (e.g. the
-- clawback of refund_session) leaves it in place.  The dead handler of the
-- transfer deletes the claimed rows of refunded sessions once it releases them.
CREATE FUNCTION agentmarket_private.keep_claimed_earnings()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.keep_claimed_earnings() IS
    'BEFORE DELETE trigger on creator_earnings: a row claimed by a payout (payout_id set) is not deleted.';
REVOKE ALL ON FUNCTION agentmarket_private.keep_claimed_earnings() FROM PUBLIC;
CREATE TRIGGER creator_earnings_keep_claimed BEFORE DELETE ON agentmarket.creator_earnings
    FOR EACH ROW WHEN (OLD.payout_id IS NOT NULL) EXECUTE FUNCTION agentmarket_private.keep_claimed_earnings();

------------------------------------------------------------------------------
-- Onboarding
------------------------------------------------------------------------------

-- The account link job for a creator's account.  Links expire within minutes,
-- so every request makes a new one.
CREATE FUNCTION agentmarket_private.enqueue_account_link(p_user_id uuid, p_account text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    RETURN agentmarket_private.enqueue_stripe_job('stripe.create_account_link',
        pg_catalog.jsonb_build_object(
            'account', p_account, 'type', 'account_onboarding',
            'refresh_url', agentmarket_private.setting('connect_refresh_url'),
            'return_url', agentmarket_private.setting('connect_return_url')),
        'account_link:' || p_user_id::text || ':' || pg_catalog.gen_random_uuid()::text,
        pg_catalog.jsonb_build_object('user_id', p_user_id));
END
$$;
COMMENT ON FUNCTION agentmarket_private.enqueue_account_link(uuid, text) IS
    'Enqueues a stripe.create_account_link (account_onboarding, refresh/return URLs from the connect_* settings) for the user''s account.';
REVOKE ALL ON FUNCTION agentmarket_private.enqueue_account_link(uuid, text) FROM PUBLIC;

CREATE FUNCTION agentmarket.start_creator_onboarding()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    uid uuid := agentmarket.current_user_id();
    u agentmarket.users;
    pending bigint;
BEGIN
    -- The user row is locked: two calls at once make one account.
    SELECT * INTO u FROM agentmarket.users x WHERE x.id OPERATOR(pg_catalog.=) uid FOR UPDATE;
    IF uid IS NULL OR NOT FOUND OR u.role OPERATOR(pg_catalog.<>) 'creator' THEN
        RAISE EXCEPTION 'only creators are paid out' USING ERRCODE = '42501',
            DETAIL = 'Onboarding to payouts needs a signed-in user whose role is creator.';
    END IF;
    IF u.stripe_connect_account_id IS NOT NULL THEN
        RETURN agentmarket_private.enqueue_account_link(uid, u.stripe_connect_account_id);
    END IF;
    -- The account is being made: its handler enqueues the link.
    SELECT j.id INTO pending FROM agentmarket_private.jobs j
     WHERE j.kind OPERATOR(pg_catalog.=) 'stripe.create_account'
       AND j.payload OPERATOR(pg_catalog.->>) 'user_id' OPERATOR(pg_catalog.=) uid::text
       AND j.status IN ('queued', 'running')
     ORDER BY j.id DESC LIMIT 1;
    IF pending IS NOT NULL THEN
        RETURN pending;
    END IF;
    RETURN agentmarket_private.enqueue_stripe_job('stripe.create_account',
        pg_catalog.jsonb_build_object(
            'type', 'express', 'email', u.email,
            'capabilities', pg_catalog.jsonb_build_object('transfers', pg_catalog.jsonb_build_object('requested', true)),
            'metadata', pg_catalog.jsonb_build_object('user_id', uid)),
        'connect_account:' || uid::text || ':' || pg_catalog.gen_random_uuid()::text,
        pg_catalog.jsonb_build_object('user_id', uid, 'onboarding', true));
END
$$;
COMMENT ON FUNCTION agentmarket.start_creator_onboarding() IS
    'Creators: starts Stripe Connect onboarding; enqueues stripe.create_account (Express) when the creator has no account (its handler then enqueues the onboarding link), else a stripe.create_account_link; returns the job id. 42501 for anyone but a creator.';
REVOKE ALL ON FUNCTION agentmarket.start_creator_onboarding() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.start_creator_onboarding() TO authenticated;

-- stripe.create_account succeeded: the account id, then the onboarding link.
CREATE FUNCTION agentmarket_private.finish_connect_account(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    acct text;
BEGIN
    PERFORM agentmarket_private.finish_stripe_account(p_job, p_result);
    IF COALESCE(((p_job).payload OPERATOR(pg_catalog.->>) 'onboarding')::boolean, false) THEN
        SELECT u.stripe_connect_account_id INTO acct FROM agentmarket.users u
         WHERE u.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'user_id')::uuid;
        IF acct IS NULL THEN
            RAISE EXCEPTION 'account result of job % has no account id', (p_job).id
                USING ERRCODE = '22023', DETAIL = 'The result must be the created connected account.';
        END IF;
        PERFORM agentmarket_private.enqueue_account_link(((p_job).payload OPERATOR(pg_catalog.->>) 'user_id')::uuid, acct);
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_connect_account(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_account: sets users.stripe_connect_account_id (when unset); for onboarding jobs, enqueues the account link job.';
REVOKE ALL ON FUNCTION agentmarket_private.finish_connect_account(agentmarket_private.jobs, jsonb) FROM PUBLIC;

UPDATE agentmarket_private.job_kinds
   SET handler = 'agentmarket_private.finish_connect_account(agentmarket_private.jobs,jsonb)',
       description = 'Create an Express connected account for a creator; sets users.stripe_connect_account_id and, for onboarding, enqueues the account link.'
 WHERE kind OPERATOR(pg_catalog.=) 'stripe.create_account';

CREATE FUNCTION agentmarket.my_onboarding_link(
    OUT status text, OUT stripe_connect_account_id text, OUT url text, OUT expires_at timestamptz, OUT error text)
RETURNS record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    uid uuid := agentmarket.current_user_id();
    j agentmarket_private.jobs;
BEGIN
    IF uid IS NULL THEN
        RAISE EXCEPTION 'not signed in' USING ERRCODE = '42501';
    END IF;
    SELECT u.stripe_connect_account_id INTO stripe_connect_account_id
      FROM agentmarket.users u WHERE u.id OPERATOR(pg_catalog.=) uid;
    -- The latest onboarding job of either kind says where onboarding is.
    SELECT * INTO j FROM agentmarket_private.jobs x
     WHERE x.kind IN ('stripe.create_account', 'stripe.create_account_link')
       AND x.payload OPERATOR(pg_catalog.->>) 'user_id' OPERATOR(pg_catalog.=) uid::text
     ORDER BY x.id DESC LIMIT 1;
    IF NOT FOUND THEN
        status := 'none';
    ELSIF j.status OPERATOR(pg_catalog.=) 'dead' THEN
        status := 'failed';
        error := j.last_error;
    ELSIF j.kind OPERATOR(pg_catalog.=) 'stripe.create_account' OR j.status OPERATOR(pg_catalog.<>) 'succeeded' THEN
        status := 'pending';
    ELSE
        url := j.result OPERATOR(pg_catalog.->>) 'url';
        IF pg_catalog.jsonb_typeof(j.result OPERATOR(pg_catalog.->) 'expires_at') OPERATOR(pg_catalog.=) 'number' THEN
            expires_at := pg_catalog.to_timestamp((j.result OPERATOR(pg_catalog.->>) 'expires_at')::double precision);
        END IF;
        status := CASE WHEN expires_at OPERATOR(pg_catalog.<) pg_catalog.now() THEN 'expired' ELSE 'ready' END;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket.my_onboarding_link() IS
    'The caller''s Stripe Connect onboarding: status none, pending, ready (url to open), expired (call start_creator_onboarding again) or failed (error), with the account id once it exists.';
REVOKE ALL ON FUNCTION agentmarket.my_onboarding_link() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.my_onboarding_link() TO authenticated;

------------------------------------------------------------------------------
-- Payout runs
------------------------------------------------------------------------------

-- The sub-cent remainder a creator's next payout adds: remainders of paid
-- payouts not yet carried into a pending or paid one.
CREATE FUNCTION agentmarket.payout_carry_usd(creator_id uuid)
RETURNS numeric
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
    SELECT COALESCE(pg_catalog.sum(p.remainder_usd) FILTER (WHERE p.status OPERATOR(pg_catalog.=) 'paid'), 0)
         OPERATOR(pg_catalog.-) COALESCE(pg_catalog.sum(p.carried_in_usd) FILTER (WHERE p.status IN ('paid', 'pending')), 0)
      FROM agentmarket.payouts p
     WHERE p.creator_id OPERATOR(pg_catalog.=) payout_carry_usd.creator_id
$$;
COMMENT ON FUNCTION agentmarket.payout_carry_usd(uuid) IS
    'The creator''s sub-cent remainder (USD, below 0.01) not transferred yet: the next payout adds it. Paid transfers + this = paid-out earnings.';
REVOKE ALL ON FUNCTION agentmarket.payout_carry_usd(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.payout_carry_usd(uuid) TO service_role;

CREATE FUNCTION agentmarket.run_payouts()
RETURNS SETOF agentmarket.payouts
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    cutoff timestamptz := pg_catalog.now() OPERATOR(pg_catalog.-)
        pg_catalog.make_interval(days => agentmarket_private.setting('payout_holding_days')::integer);
    minimum numeric := agentmarket_private.setting('payout_minimum_usd')::numeric;
    c record;
    ids uuid[];
    total numeric;
    carry numeric;
    p agentmarket.payouts;
BEGIN
    IF NOT agentmarket_private.caller_is_service() THEN
        RAISE EXCEPTION 'only the platform runs payouts' USING ERRCODE = '42501';
    END IF;
    FOR c IN SELECT u.id, u.stripe_connect_account_id AS acct FROM agentmarket.users u
              WHERE u.stripe_connect_account_id IS NOT NULL
                AND EXISTS (SELECT FROM agentmarket.creator_earnings e
                             WHERE e.creator_id OPERATOR(pg_catalog.=) u.id AND e.payout_id IS NULL AND NOT e.paid_out
                               AND e.created_at OPERATOR(pg_catalog.<=) cutoff)
              ORDER BY u.id
    LOOP
        -- One run per creator at a time; later statements see what an
        -- earlier run committed (payouts, claims, carries).
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('agentmarket.payouts'), pg_catalog.hashtext(c.id::text));
        IF EXISTS (SELECT FROM agentmarket.payouts x
                    WHERE x.creator_id OPERATOR(pg_catalog.=) c.id AND x.status OPERATOR(pg_catalog.=) 'pending') THEN
            CONTINUE;   -- the carry of a payout in flight is not known yet
        END IF;
        SELECT pg_catalog.array_agg(s.id ORDER BY s.id) INTO ids
          FROM (SELECT e.id FROM agentmarket.creator_earnings e
                 WHERE e.creator_id OPERATOR(pg_catalog.=) c.id AND e.payout_id IS NULL AND NOT e.paid_out
                   AND e.created_at OPERATOR(pg_catalog.<=) cutoff
                 ORDER BY e.id
                 FOR UPDATE) s;
        IF ids IS NULL THEN
            CONTINUE;
        END IF;
        SELECT pg_catalog.sum(e.creator_amount) INTO total FROM agentmarket.creator_earnings e
         WHERE e.id OPERATOR(pg_catalog.=) ANY (ids);
        carry := agentmarket.payout_carry_usd(c.id);
        IF total OPERATOR(pg_catalog.<) minimum OR total OPERATOR(pg_catalog.<=) 0
           OR pg_catalog.floor((total OPERATOR(pg_catalog.+) carry) OPERATOR(pg_catalog.*) 100) OPERATOR(pg_catalog.<) 1 THEN
            CONTINUE;
        END IF;
        INSERT INTO agentmarket.payouts (creator_id, stripe_connect_account_id, amount_usd, carried_in_usd, transfer_cents)
        VALUES (c.id, c.acct, total, carry,
                pg_catalog.floor((total OPERATOR(pg_catalog.+) carry) OPERATOR(pg_catalog.*) 100)::bigint)
        RETURNING * INTO p;
        UPDATE agentmarket.creator_earnings e SET payout_id = p.id WHERE e.id OPERATOR(pg_catalog.=) ANY (ids);
        PERFORM agentmarket_private.enqueue_stripe_job('stripe.create_transfer',
            pg_catalog.jsonb_build_object(
                'amount', p.transfer_cents, 'currency', 'usd', 'destination', p.stripe_connect_account_id,
                'transfer_group', 'payout:' || p.id::text,
                'metadata', pg_catalog.jsonb_build_object('payout_id', p.id, 'creator_id', c.id)),
            'transfer:' || p.id::text,
            pg_catalog.jsonb_build_object('payout_id', p.id));
        RETURN NEXT p;
    END LOOP;
END
$$;
COMMENT ON FUNCTION agentmarket.run_payouts() IS
    'service_role / pg_cron: for every creator with a Connect account and no payout in flight, claims the unpaid earnings older than payout_holding_days when they add up to payout_minimum_usd, makes one pending payout (their exact sum plus the carried remainder, whole cents transferred) and enqueues its stripe.create_transfer (Idempotency-Key transfer:<payout id>); returns the payouts made. 42501 for anyone else.';
REVOKE ALL ON FUNCTION agentmarket.run_payouts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentmarket.run_payouts() TO service_role;

-- stripe.create_transfer succeeded: the payout and its earnings are paid.
CREATE FUNCTION agentmarket_private.finish_payout_transfer(p_job agentmarket_private.jobs, p_result jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    tr text := p_result OPERATOR(pg_catalog.->>) 'id';
    p agentmarket.payouts;
BEGIN
    -- Transfers enqueued by hand (no payout) only keep their result on the job.
    IF NOT (p_job).payload ? 'payout_id' THEN
        RETURN;
    END IF;
    IF tr IS NULL OR tr !~ '^tr_[A-Za-z0-9_]+$' THEN
        RAISE EXCEPTION 'transfer result of job % has no transfer id', (p_job).id
            USING ERRCODE = '22023', DETAIL = 'The result must be the created transfer.';
    END IF;
    SELECT * INTO p FROM agentmarket.payouts x
     WHERE x.id OPERATOR(pg_catalog.=) ((p_job).payload OPERATOR(pg_catalog.->>) 'payout_id')::uuid
     FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payout % does not exist', (p_job).payload OPERATOR(pg_catalog.->>) 'payout_id' USING ERRCODE = 'P0002';
    END IF;
    IF p.status OPERATOR(pg_catalog.=) 'paid' AND p.stripe_transfer_id OPERATOR(pg_catalog.=) tr THEN
        RETURN;
    END IF;
    IF p.status OPERATOR(pg_catalog.<>) 'pending' THEN
        RAISE EXCEPTION 'transfer % arrived for a payout that is %', tr, p.status
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('Payout %s was already settled; its earnings may be in another payout.', p.id),
                  HINT = 'Reverse the transfer in Stripe or reconcile by hand; do not retry dead transfer jobs.';
    END IF;
    UPDATE agentmarket.payouts x SET status = 'paid', stripe_transfer_id = tr, paid_at = pg_catalog.now()
     WHERE x.id OPERATOR(pg_catalog.=) p.id;
    UPDATE agentmarket.creator_earnings e
       SET paid_out = true, paid_out_at = pg_catalog.now(), stripe_transfer_id = tr
     WHERE e.payout_id OPERATOR(pg_catalog.=) p.id;
END
$$;
COMMENT ON FUNCTION agentmarket_private.finish_payout_transfer(agentmarket_private.jobs, jsonb) IS
    'Handler of stripe.create_transfer: the payout of payload.payout_id is paid with the transfer id, and its earnings are paid out.';

-- The transfer gave up: the payout failed and its earnings wait for the next
-- run, except those of sessions refunded meanwhile, which are clawed back now.
CREATE FUNCTION agentmarket_private.payout_transfer_dead(p_job agentmarket_private.jobs)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    pid uuid;
BEGIN
    IF NOT (p_job).payload ? 'payout_id' THEN
        RETURN;
    END IF;
    pid := ((p_job).payload OPERATOR(pg_catalog.->>) 'payout_id')::uuid;
    UPDATE agentmarket.payouts x
       SET status = 'failed', failed_at = pg_catalog.now(),
           failure_reason = pg_catalog.left(COALESCE((p_job).last_error, 'transfer failed'), 1000)
     WHERE x.id OPERATOR(pg_catalog.=) pid AND x.status OPERATOR(pg_catalog.=) 'pending';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE agentmarket.creator_earnings e SET payout_id = NULL
     WHERE e.payout_id OPERATOR(pg_catalog.=) pid AND NOT e.paid_out;
    DELETE FROM agentmarket.creator_earnings e
     USING agentmarket.sessions s
     WHERE s.id OPERATOR(pg_catalog.=) e.session_id AND s.refunded_at IS NOT NULL
       AND e.payout_id IS NULL AND NOT e.paid_out
       AND e.creator_id OPERATOR(pg_catalog.=) (SELECT x.creator_id FROM agentmarket.payouts x WHERE x.id OPERATOR(pg_catalog.=) pid);
END
$$;
COMMENT ON FUNCTION agentmarket_private.payout_transfer_dead(agentmarket_private.jobs) IS
    'Dead handler of stripe.create_transfer: a pending payout fails; its earnings are released for the next run, and those of refunded sessions are deleted (the refund''s clawback).';
REVOKE ALL ON FUNCTION agentmarket_private.finish_payout_transfer(agentmarket_private.jobs, jsonb),
    agentmarket_private.payout_transfer_dead(agentmarket_private.jobs) FROM PUBLIC;

UPDATE agentmarket_private.job_kinds
   SET handler = 'agentmarket_private.finish_payout_transfer(agentmarket_private.jobs,jsonb)',
       dead_handler = 'agentmarket_private.payout_transfer_dead(agentmarket_private.jobs)',
       description = 'Transfer a creator''s payout to their connected account; marks payload.payout_id paid (or failed when dead).'
 WHERE kind OPERATOR(pg_catalog.=) 'stripe.create_transfer';
