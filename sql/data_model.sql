-- data_model: the installed schema is exactly the contract of
-- shared/seed/data-model.md.  Every seed column (type, nullability, default),
-- constraint (with its ON DELETE) and index is listed below as PostgreSQL's
-- catalog prints it (rows made by test/tools/seed_to_pgtap.py from the seed)
-- and compared with the catalog.  Additions are allowed; drift is not.
\ir test/fixture.sql
-- Unqualified catalog output must name the schema: keep it off the path.
SET search_path = public, pg_catalog;
BEGIN;

CREATE TEMP TABLE seed_columns (tbl text, col text, typ text, not_null boolean, dflt text);
INSERT INTO seed_columns VALUES
  ('users', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('users', 'email', 'text', true, NULL),
  ('users', 'display_name', 'text', false, NULL),
  ('users', 'avatar_url', 'text', false, NULL),
  ('users', 'role', 'text', true, '''user''::text'),
  ('users', 'stripe_customer_id', 'text', false, NULL),
  ('users', 'stripe_connect_account_id', 'text', false, NULL),
  ('users', 'created_at', 'timestamp with time zone', true, 'now()'),
  ('users', 'updated_at', 'timestamp with time zone', true, 'now()'),
  ('projects', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('projects', 'user_id', 'uuid', true, NULL),
  ('projects', 'name', 'text', true, NULL),
  ('projects', 'description', 'text', false, NULL),
  ('projects', 'created_at', 'timestamp with time zone', true, 'now()'),
  ('projects', 'updated_at', 'timestamp with time zone', true, 'now()'),
  ('teams', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('teams', 'project_id', 'uuid', true, NULL),
  ('teams', 'name', 'text', true, NULL),
  ('teams', 'created_at', 'timestamp with time zone', true, 'now()'),
  ('agents', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('agents', 'creator_id', 'uuid', true, NULL),
  ('agents', 'slug', 'text', true, NULL),
  ('agents', 'name', 'text', true, NULL),
  ('agents', 'tagline', 'text', true, NULL),
  ('agents', 'description', 'text', true, NULL),
  ('agents', 'icon_url', 'text', false, NULL),
  ('agents', 'category', 'text', true, NULL),
  ('agents', 'status', 'text', true, '''draft''::text'),
  ('agents', 'pricing_model', 'text', true, '''per_session''::text'),
  ('agents', 'credits_per_session', 'integer', false, NULL),
  ('agents', 'github_repo_url', 'text', true, NULL),
  ('agents', 'docker_image', 'text', false, NULL),
  ('agents', 'openclaw_version', 'text', false, NULL),
  ('agents', 'fly_machine_size', 'text', true, '''shared-cpu-1x''::text'),
  ('agents', 'fly_machine_memory_mb', 'integer', true, '512'),
  ('agents', 'total_hires', 'integer', true, '0'),
  ('agents', 'avg_rating', 'numeric(2,1)', false, '0'),
  ('agents', 'total_reviews', 'integer', true, '0'),
  ('agents', 'supported_relays', 'text[]', false, '''{}''::text[]'),
  ('agents', 'supported_models', 'text[]', false, '''{}''::text[]'),
  ('agents', 'tags', 'text[]', false, '''{}''::text[]'),
  ('agents', 'created_at', 'timestamp with time zone', true, 'now()'),
  ('agents', 'updated_at', 'timestamp with time zone', true, 'now()'),
  ('agents', 'published_at', 'timestamp with time zone', false, NULL),
  ('agent_instances', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('agent_instances', 'user_id', 'uuid', true, NULL),
  ('agent_instances', 'agent_id', 'uuid', true, NULL),
  ('agent_instances', 'team_id', 'uuid', false, NULL),
  ('agent_instances', 'fly_app_name', 'text', true, NULL),
  ('agent_instances', 'fly_machine_id', 'text', true, NULL),
  ('agent_instances', 'fly_volume_id', 'text', false, NULL),
  ('agent_instances', 'region', 'text', true, '''iad''::text'),
  ('agent_instances', 'status', 'text', true, '''provisioning''::text'),
  ('agent_instances', 'last_active_at', 'timestamp with time zone', false, NULL),
  ('agent_instances', 'error_message', 'text', false, NULL),
  ('agent_instances', 'display_name', 'text', false, NULL),
  ('agent_instances', 'model_preference', 'text', false, NULL),
  ('agent_instances', 'created_at', 'timestamp with time zone', true, 'now()'),
  ('agent_instances', 'updated_at', 'timestamp with time zone', true, 'now()'),
  ('sessions', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('sessions', 'instance_id', 'uuid', true, NULL),
  ('sessions', 'user_id', 'uuid', true, NULL),
  ('sessions', 'relay', 'text', true, '''web''::text'),
  ('sessions', 'started_at', 'timestamp with time zone', true, 'now()'),
  ('sessions', 'ended_at', 'timestamp with time zone', false, NULL),
  ('sessions', 'total_credits_consumed', 'integer', true, '0'),
  ('sessions', 'total_input_tokens', 'integer', true, '0'),
  ('sessions', 'total_output_tokens', 'integer', true, '0'),
  ('sessions', 'compute_seconds', 'integer', true, '0'),
  ('messages', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('messages', 'session_id', 'uuid', true, NULL),
  ('messages', 'role', 'text', true, NULL),
  ('messages', 'content', 'text', true, NULL),
  ('messages', 'tool_use', 'jsonb', false, NULL),
  ('messages', 'tokens_used', 'integer', true, '0'),
  ('messages', 'created_at', 'timestamp with time zone', true, 'now()'),
  ('credit_balances', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('credit_balances', 'user_id', 'uuid', true, NULL),
  ('credit_balances', 'subscription_credits', 'integer', true, '0'),
  ('credit_balances', 'topup_credits', 'integer', true, '0'),
  ('credit_balances', 'updated_at', 'timestamp with time zone', true, 'now()'),
  ('credit_transactions', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('credit_transactions', 'user_id', 'uuid', true, NULL),
  ('credit_transactions', 'type', 'text', true, NULL),
  ('credit_transactions', 'amount', 'integer', true, NULL),
  ('credit_transactions', 'credit_type', 'text', true, NULL),
  ('credit_transactions', 'description', 'text', false, NULL),
  ('credit_transactions', 'session_id', 'uuid', false, NULL),
  ('credit_transactions', 'stripe_payment_id', 'text', false, NULL),
  ('credit_transactions', 'created_at', 'timestamp with time zone', true, 'now()'),
  ('usage_events', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('usage_events', 'user_id', 'uuid', true, NULL),
  ('usage_events', 'instance_id', 'uuid', true, NULL),
  ('usage_events', 'session_id', 'uuid', false, NULL),
  ('usage_events', 'compute_seconds', 'integer', true, '0'),
  ('usage_events', 'input_tokens', 'integer', true, '0'),
  ('usage_events', 'output_tokens', 'integer', true, '0'),
  ('usage_events', 'credits_consumed', 'integer', true, '0'),
  ('usage_events', 'cost_usd', 'numeric(10,6)', true, '0'),
  ('usage_events', 'created_at', 'timestamp with time zone', true, 'now()'),
  ('creator_earnings', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('creator_earnings', 'creator_id', 'uuid', true, NULL),
  ('creator_earnings', 'agent_id', 'uuid', true, NULL),
  ('creator_earnings', 'session_id', 'uuid', false, NULL),
  ('creator_earnings', 'gross_revenue', 'numeric(10,4)', true, NULL),
  ('creator_earnings', 'compute_cost', 'numeric(10,6)', true, NULL),
  ('creator_earnings', 'creator_amount', 'numeric(10,4)', true, NULL),
  ('creator_earnings', 'platform_amount', 'numeric(10,4)', true, NULL),
  ('creator_earnings', 'creator_rate', 'numeric(3,2)', true, '0.85'),
  ('creator_earnings', 'paid_out', 'boolean', true, 'false'),
  ('creator_earnings', 'paid_out_at', 'timestamp with time zone', false, NULL),
  ('creator_earnings', 'stripe_transfer_id', 'text', false, NULL),
  ('creator_earnings', 'created_at', 'timestamp with time zone', true, 'now()'),
  ('agent_reviews', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('agent_reviews', 'agent_id', 'uuid', true, NULL),
  ('agent_reviews', 'user_id', 'uuid', true, NULL),
  ('agent_reviews', 'rating', 'integer', true, NULL),
  ('agent_reviews', 'content', 'text', false, NULL),
  ('agent_reviews', 'created_at', 'timestamp with time zone', true, 'now()'),
  ('relay_connections', 'id', 'uuid', true, 'gen_random_uuid()'),
  ('relay_connections', 'instance_id', 'uuid', true, NULL),
  ('relay_connections', 'relay', 'text', true, NULL),
  ('relay_connections', 'external_user_id', 'text', true, NULL),
  ('relay_connections', 'external_chat_id', 'text', false, NULL),
  ('relay_connections', 'config', 'jsonb', false, NULL),
  ('relay_connections', 'status', 'text', true, '''active''::text'),
  ('relay_connections', 'created_at', 'timestamp with time zone', true, 'now()');

CREATE TEMP TABLE seed_constraints (tbl text, def text);
INSERT INTO seed_constraints VALUES
  ('users', 'PRIMARY KEY (id)'),
  ('users', 'UNIQUE (email)'),
  ('projects', 'PRIMARY KEY (id)'),
  ('projects', 'FOREIGN KEY (user_id) REFERENCES agentmarket.users(id) ON DELETE CASCADE'),
  ('teams', 'PRIMARY KEY (id)'),
  ('teams', 'FOREIGN KEY (project_id) REFERENCES agentmarket.projects(id) ON DELETE CASCADE'),
  ('agents', 'PRIMARY KEY (id)'),
  ('agents', 'FOREIGN KEY (creator_id) REFERENCES agentmarket.users(id)'),
  ('agents', 'UNIQUE (slug)'),
  ('agent_instances', 'PRIMARY KEY (id)'),
  ('agent_instances', 'FOREIGN KEY (user_id) REFERENCES agentmarket.users(id) ON DELETE CASCADE'),
  ('agent_instances', 'FOREIGN KEY (agent_id) REFERENCES agentmarket.agents(id)'),
  ('agent_instances', 'FOREIGN KEY (team_id) REFERENCES agentmarket.teams(id)'),
  ('agent_instances', 'UNIQUE (user_id, agent_id)'),
  ('sessions', 'PRIMARY KEY (id)'),
  ('sessions', 'FOREIGN KEY (instance_id) REFERENCES agentmarket.agent_instances(id) ON DELETE CASCADE'),
  ('sessions', 'FOREIGN KEY (user_id) REFERENCES agentmarket.users(id)'),
  ('messages', 'PRIMARY KEY (id)'),
  ('messages', 'FOREIGN KEY (session_id) REFERENCES agentmarket.sessions(id) ON DELETE CASCADE'),
  ('credit_balances', 'PRIMARY KEY (id)'),
  ('credit_balances', 'UNIQUE (user_id)'),
  ('credit_balances', 'FOREIGN KEY (user_id) REFERENCES agentmarket.users(id) ON DELETE CASCADE'),
  ('credit_transactions', 'PRIMARY KEY (id)'),
  ('credit_transactions', 'FOREIGN KEY (user_id) REFERENCES agentmarket.users(id)'),
  ('credit_transactions', 'FOREIGN KEY (session_id) REFERENCES agentmarket.sessions(id)'),
  ('usage_events', 'PRIMARY KEY (id)'),
  ('usage_events', 'FOREIGN KEY (user_id) REFERENCES agentmarket.users(id)'),
  ('usage_events', 'FOREIGN KEY (instance_id) REFERENCES agentmarket.agent_instances(id)'),
  ('usage_events', 'FOREIGN KEY (session_id) REFERENCES agentmarket.sessions(id)'),
  ('creator_earnings', 'PRIMARY KEY (id)'),
  ('creator_earnings', 'FOREIGN KEY (creator_id) REFERENCES agentmarket.users(id)'),
  ('creator_earnings', 'FOREIGN KEY (agent_id) REFERENCES agentmarket.agents(id)'),
  ('creator_earnings', 'FOREIGN KEY (session_id) REFERENCES agentmarket.sessions(id)'),
  ('agent_reviews', 'PRIMARY KEY (id)'),
  ('agent_reviews', 'FOREIGN KEY (agent_id) REFERENCES agentmarket.agents(id)'),
  ('agent_reviews', 'FOREIGN KEY (user_id) REFERENCES agentmarket.users(id)'),
  ('agent_reviews', 'CHECK (((rating >= 1) AND (rating <= 5)))'),
  ('agent_reviews', 'UNIQUE (agent_id, user_id)'),
  ('relay_connections', 'PRIMARY KEY (id)'),
  ('relay_connections', 'FOREIGN KEY (instance_id) REFERENCES agentmarket.agent_instances(id) ON DELETE CASCADE'),
  ('relay_connections', 'UNIQUE (relay, external_user_id)');

CREATE TEMP TABLE seed_indexes (name text, def text);
INSERT INTO seed_indexes VALUES
  ('idx_messages_session_created', 'CREATE INDEX idx_messages_session_created ON agentmarket.messages USING btree (session_id, created_at)'),
  ('idx_agents_status_category', 'CREATE INDEX idx_agents_status_category ON agentmarket.agents USING btree (status, category)'),
  ('idx_agents_slug', 'CREATE INDEX idx_agents_slug ON agentmarket.agents USING btree (slug)'),
  ('idx_agents_creator', 'CREATE INDEX idx_agents_creator ON agentmarket.agents USING btree (creator_id)'),
  ('idx_instances_user', 'CREATE INDEX idx_instances_user ON agentmarket.agent_instances USING btree (user_id)'),
  ('idx_instances_status', 'CREATE INDEX idx_instances_status ON agentmarket.agent_instances USING btree (status)'),
  ('idx_instances_fly', 'CREATE INDEX idx_instances_fly ON agentmarket.agent_instances USING btree (fly_machine_id)'),
  ('idx_sessions_instance', 'CREATE INDEX idx_sessions_instance ON agentmarket.sessions USING btree (instance_id)'),
  ('idx_sessions_user', 'CREATE INDEX idx_sessions_user ON agentmarket.sessions USING btree (user_id)'),
  ('idx_usage_user_created', 'CREATE INDEX idx_usage_user_created ON agentmarket.usage_events USING btree (user_id, created_at)'),
  ('idx_earnings_creator_paid', 'CREATE INDEX idx_earnings_creator_paid ON agentmarket.creator_earnings USING btree (creator_id, paid_out)'),
  ('idx_relay_external', 'CREATE INDEX idx_relay_external ON agentmarket.relay_connections USING btree (relay, external_user_id)'),
  ('idx_reviews_agent', 'CREATE INDEX idx_reviews_agent ON agentmarket.agent_reviews USING btree (agent_id)'),
  ('idx_agents_search', 'CREATE INDEX idx_agents_search ON agentmarket.agents USING gin (to_tsvector(''english''::regconfig, ((((name || '' ''::text) || tagline) || '' ''::text) || description)))');

CREATE TEMP TABLE actual_columns AS
SELECT c.relname::text AS tbl, a.attname::text AS col,
       format_type(a.atttypid, a.atttypmod) AS typ, a.attnotnull AS not_null,
       pg_get_expr(d.adbin, d.adrelid) AS dflt
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'agentmarket'::regnamespace AND c.relkind = 'r';

SELECT plan((SELECT count(*) FROM seed_columns)::int * 3
          + (SELECT count(DISTINCT tbl) FROM seed_columns)::int
          + (SELECT count(*) FROM seed_constraints)::int
          + (SELECT count(*) FROM seed_indexes)::int + 2);

SELECT has_table('agentmarket', t, 'seed table agentmarket.' || t || ' exists')
  FROM (SELECT DISTINCT tbl AS t FROM seed_columns ORDER BY 1) s;

SELECT is(a.typ, s.typ, format('%s.%s has type %s', s.tbl, s.col, s.typ))
  FROM seed_columns s LEFT JOIN actual_columns a USING (tbl, col) ORDER BY s.tbl, s.col;

SELECT is(a.not_null, s.not_null,
          format('%s.%s is %s', s.tbl, s.col, CASE WHEN s.not_null THEN 'NOT NULL' ELSE 'nullable' END))
  FROM seed_columns s LEFT JOIN actual_columns a USING (tbl, col) ORDER BY s.tbl, s.col;

SELECT is(a.dflt, s.dflt, format('%s.%s defaults to %s', s.tbl, s.col, coalesce(s.dflt, 'nothing')))
  FROM seed_columns s LEFT JOIN actual_columns a USING (tbl, col) ORDER BY s.tbl, s.col;

SELECT ok(EXISTS (SELECT FROM pg_constraint k
                   WHERE k.conrelid = ('agentmarket.' || s.tbl)::regclass
                     AND pg_get_constraintdef(k.oid) = s.def),
          format('%s has %s', s.tbl, s.def))
  FROM seed_constraints s ORDER BY s.tbl, s.def;

SELECT is((SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
            WHERE i.indexrelid = to_regclass('agentmarket.' || s.name)),
          s.def, format('index %s', s.name))
  FROM seed_indexes s ORDER BY s.name;

SELECT is((SELECT count(*)::int FROM seed_indexes), 14, 'the seed defines 14 indexes and all are checked');

-- The ON DELETE of every seed foreign key is part of its definition above;
-- here: no foreign key that the seed leaves plain has gained an action.
SELECT is_empty($$
    SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
      JOIN seed_constraints s ON k.conrelid = ('agentmarket.' || s.tbl)::regclass
     WHERE k.contype = 'f' AND s.def LIKE 'FOREIGN KEY%'
       AND split_part(pg_get_constraintdef(k.oid), ' REFERENCES', 1) = split_part(s.def, ' REFERENCES', 1)
       AND pg_get_constraintdef(k.oid) <> s.def $$,
    'seed foreign keys have exactly the seed''s ON DELETE');

SELECT * FROM finish();
ROLLBACK;
