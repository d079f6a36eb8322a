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
-- privileges cannot take that away): footer.sql, last in the install order,
-- revokes that from every function of the extension, so each part only
-- grants EXECUTE explicitly to the roles that call its functions.

-- updated_at maintenance, shared by every table that has the column.
-- In C (agentmarket.c): it runs on every balance update of the hot ledger
-- path, where a PL/pgSQL trigger call costs more than the rest of the row.
CREATE FUNCTION agentmarket_private.touch_updated_at() RETURNS trigger
AS 'MODULE_PATHNAME', 'touch_updated_at'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION agentmarket_private.touch_updated_at() IS
    'Trigger: sets updated_at to the transaction time on every UPDATE.';

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

-- A deleted row that references a secret takes the secret with it: the
-- column that holds the reference is the trigger's argument.  A definer: the
-- deleter (service_role, or a cascade from a deleted instance or connection)
-- has no privilege on agentmarket_private.secrets.
CREATE FUNCTION agentmarket_private.drop_referenced_secret() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM agentmarket_private.secrets s
     WHERE s.id OPERATOR(pg_catalog.=) (pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.->>) TG_ARGV[0])::uuid;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.drop_referenced_secret() IS
    'Trigger (AFTER DELETE, argument: the column holding a secret id): deletes the secret the deleted row referenced.';
CREATE TRIGGER ssh_configs_drop_secret AFTER DELETE ON agentmarket.ssh_configs
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.drop_referenced_secret('private_key_secret_id');

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

-- Row-level security is on for every table of the exposed schema (footer.sql
-- turns it on): without a policy that means no rows for anon and
-- authenticated (service_role bypasses RLS).  The private secrets get it too.
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
