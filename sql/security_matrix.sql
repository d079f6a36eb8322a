-- security_matrix: every table of schema agentmarket × {anon, owner, another
-- user, creator, admin, service_role} × {select, insert, update, delete}, run
-- exactly as PostgREST runs a request: in the request's transaction,
-- set_config('role', ..., true) and set_config('request.jwt.claims', ..., true),
-- then the statement.  Each case runs in its own subtransaction that is rolled
-- back, so no case sees another's writes.  Outcomes:
--   select  the fixture rows visible, by label ('(none)' when none);
--   write   'rows:N' rows affected (0 = filtered out by RLS), or
--   'error:SQLSTATE' (42501: no privilege, or a WITH CHECK violation).
-- 'not:42501' means only that privileges and RLS let it through (another
-- capability's integrity rules may still refuse a hand-made money row).
-- Then the attacks of the issue, one by one.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;

-- Fixture ids: a label's uuid is derived from the label.
CREATE FUNCTION pg_temp.fid(label text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT md5('security-matrix:' || label)::uuid $$;

CREATE TEMP TABLE lab (id uuid PRIMARY KEY, label text NOT NULL);
INSERT INTO lab SELECT pg_temp.fid(l), l FROM unnest(ARRAY[
  'O', 'X', 'C', 'C2', 'ADM', 'N',
  'AP', 'AD', 'A2', 'VP', 'VD', 'V2', 'SP', 'SD', 'S2',
  'PO', 'PX', 'TO', 'TO2', 'TX', 'IO', 'IOd', 'IX', 'IC',
  'SO', 'SX', 'MO', 'MX', 'BO', 'BX', 'LO', 'LX', 'UO', 'UX', 'PuO', 'PuX',
  'EC', 'EC2', 'RO', 'RX', 'RCO', 'RCX', 'KO', 'KX', 'SSO', 'SSX']) AS l;
GRANT SELECT ON lab TO PUBLIC;

-- The fixture, written as the superuser (the platform's functions that
-- would write most of it belong to other capabilities).
-- No free-trial grant: a user with ledger rows cannot be deleted (the seed's
-- foreign key), and the matrix deletes a user without any.
SELECT agentmarket.configure('free_trial_credits', '0') IS NULL AS no_free_trial;
INSERT INTO agentmarket.users (id, email, display_name, role) VALUES
  (pg_temp.fid('O'), 'owner@matrix.test', 'Owner', 'user'),
  (pg_temp.fid('X'), 'other@matrix.test', 'Other', 'user'),
  (pg_temp.fid('C'), 'creator@matrix.test', 'Creator', 'creator'),
  (pg_temp.fid('C2'), 'creator2@matrix.test', 'Creator Two', 'creator'),
  (pg_temp.fid('ADM'), 'admin@matrix.test', 'Admin', 'admin');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category,
                                credits_per_session, github_repo_url, status, published_at) VALUES
  (pg_temp.fid('AP'), pg_temp.fid('C'), 'matrix-published', 'Published', 't', 'd', 'research', 10,
   'https://github.com/c/published', 'published', now()),
  (pg_temp.fid('AD'), pg_temp.fid('C'), 'matrix-draft', 'Draft', 't', 'd', 'research', 10,
   'https://github.com/c/draft', 'draft', NULL),
  (pg_temp.fid('A2'), pg_temp.fid('C2'), 'matrix-other', 'Other', 't', 'd', 'writing', 10,
   'https://github.com/c2/other', 'published', now());
-- The owner's instance runs a model its agent lists (runtime.sql checks it).
UPDATE agentmarket.agents SET supported_models = '{claude}' WHERE id = pg_temp.fid('AP');
INSERT INTO agentmarket.agent_versions (id, agent_id, version, status, is_current, published_at) VALUES
  (pg_temp.fid('VP'), pg_temp.fid('AP'), '1.0.0', 'published', true, now()),
  (pg_temp.fid('VD'), pg_temp.fid('AD'), '0.1.0', 'draft', false, NULL),
  (pg_temp.fid('V2'), pg_temp.fid('A2'), '1.0.0', 'published', true, now());
INSERT INTO agentmarket.agent_skills (id, agent_id, skill_slug) VALUES
  (pg_temp.fid('SP'), pg_temp.fid('AP'), 'gmail'),
  (pg_temp.fid('SD'), pg_temp.fid('AD'), 'pdf-reader'),
  (pg_temp.fid('S2'), pg_temp.fid('A2'), 'style-notes');
INSERT INTO agentmarket.projects (id, user_id, name) VALUES
  (pg_temp.fid('PO'), pg_temp.fid('O'), 'Owner project'),
  (pg_temp.fid('PX'), pg_temp.fid('X'), 'Other project');
INSERT INTO agentmarket.teams (id, project_id, name) VALUES
  (pg_temp.fid('TO'), pg_temp.fid('PO'), 'Owner team'),
  (pg_temp.fid('TO2'), pg_temp.fid('PO'), 'Owner second team'),
  (pg_temp.fid('TX'), pg_temp.fid('PX'), 'Other team');
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  (pg_temp.fid('IO'), pg_temp.fid('O'), pg_temp.fid('AP'), 'am-io', 'm-io', 'running'),
  (pg_temp.fid('IOd'), pg_temp.fid('O'), pg_temp.fid('A2'), 'am-iod', 'm-iod', 'destroyed'),
  (pg_temp.fid('IX'), pg_temp.fid('X'), pg_temp.fid('AP'), 'am-ix', 'm-ix', 'running');
INSERT INTO agentmarket.team_agents (team_id, instance_id) VALUES
  (pg_temp.fid('TO'), pg_temp.fid('IO')),
  (pg_temp.fid('TX'), pg_temp.fid('IX'));
INSERT INTO agentmarket.sessions (id, instance_id, user_id, total_credits_consumed) VALUES
  (pg_temp.fid('SO'), pg_temp.fid('IO'), pg_temp.fid('O'), 25),
  (pg_temp.fid('SX'), pg_temp.fid('IX'), pg_temp.fid('X'), 25);
INSERT INTO agentmarket.messages (id, session_id, role, content) VALUES
  (pg_temp.fid('MO'), pg_temp.fid('SO'), 'user', 'owner''s private words'),
  (pg_temp.fid('MX'), pg_temp.fid('SX'), 'user', 'other''s private words');
INSERT INTO agentmarket.credit_balances (id, user_id, subscription_credits, topup_credits) VALUES
  (pg_temp.fid('BO'), pg_temp.fid('O'), 0, 75),
  (pg_temp.fid('BX'), pg_temp.fid('X'), 0, 75)
-- A new user may already have a balance (free trial credits).
ON CONFLICT (user_id) DO UPDATE SET id = EXCLUDED.id;
INSERT INTO agentmarket.credit_transactions (id, user_id, type, amount, credit_type) VALUES
  (pg_temp.fid('LO'), pg_temp.fid('O'), 'topup_purchase', 100, 'topup'),
  (pg_temp.fid('LX'), pg_temp.fid('X'), 'topup_purchase', 100, 'topup');
INSERT INTO agentmarket.usage_events (id, user_id, instance_id, credits_consumed) VALUES
  (pg_temp.fid('UO'), pg_temp.fid('O'), pg_temp.fid('IO'), 25),
  (pg_temp.fid('UX'), pg_temp.fid('X'), pg_temp.fid('IX'), 25);
INSERT INTO agentmarket.purchases (id, user_id, kind, credits, amount_cents, status) VALUES
  (pg_temp.fid('PuO'), pg_temp.fid('O'), 'topup', 100, 100, 'paid'),
  (pg_temp.fid('PuX'), pg_temp.fid('X'), 'topup', 100, 100, 'paid');
INSERT INTO agentmarket.creator_earnings (id, creator_id, agent_id, gross_revenue, compute_cost,
                                          creator_amount, platform_amount) VALUES
  (pg_temp.fid('EC'), pg_temp.fid('C'), pg_temp.fid('AP'), 0.25, 0.01, 0.2040, 0.0460),
  (pg_temp.fid('EC2'), pg_temp.fid('C2'), pg_temp.fid('A2'), 0.25, 0.01, 0.2040, 0.0460);
INSERT INTO agentmarket.agent_reviews (id, agent_id, user_id, rating, content) VALUES
  (pg_temp.fid('RO'), pg_temp.fid('AP'), pg_temp.fid('O'), 5, 'Great'),
  (pg_temp.fid('RX'), pg_temp.fid('AP'), pg_temp.fid('X'), 4, 'Good');
INSERT INTO agentmarket.relay_connections (id, instance_id, relay, external_user_id, config) VALUES
  (pg_temp.fid('RCO'), pg_temp.fid('IO'), 'telegram', 'matrix-tg-owner', '{"bot_token": "secret-owner"}'),
  (pg_temp.fid('RCX'), pg_temp.fid('IX'), 'telegram', 'matrix-tg-other', '{"bot_token": "secret-other"}');
-- Secrets are stored encrypted only (secrets.sql).
INSERT INTO agentmarket_private.secrets (id, name, secret, key_id)
SELECT v.id, v.name, agentmarket_private.pgp_armor(agentmarket_private.pgp_sym_encrypt(v.value, k.key, '')),
       agentmarket_private.secret_key_id(k.key)
  FROM (VALUES (pg_temp.fid('KO'), 'matrix-ssh-owner', '-----BEGIN OPENSSH PRIVATE KEY----- owner'),
               (pg_temp.fid('KX'), 'matrix-ssh-other', '-----BEGIN OPENSSH PRIVATE KEY----- other')) v (id, name, value),
       (SELECT agentmarket_private.secret_key() AS key) k;
INSERT INTO agentmarket.ssh_configs (id, instance_id, host, username, host_key_fingerprint, private_key_secret_id) VALUES
  (pg_temp.fid('SSO'), pg_temp.fid('IO'), 'io.internal', 'agent', 'SHA256:' || repeat('A', 43), pg_temp.fid('KO')),
  (pg_temp.fid('SSX'), pg_temp.fid('IX'), 'ix.internal', 'agent', 'SHA256:' || repeat('B', 43), pg_temp.fid('KX'));

-- One request as PostgREST makes it, rolled back whatever happens.
-- setup_sql, when given, runs first as the superuser inside the same
-- subtransaction.
CREATE FUNCTION pg_temp.request(actor text, stmt text, setup_sql text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    res text;
BEGIN
    BEGIN
        IF setup_sql IS NOT NULL THEN
            EXECUTE setup_sql;
        END IF;
        CASE actor
        WHEN 'anon' THEN
            PERFORM set_config('role', 'anon', true);
            PERFORM set_config('request.jwt.claims', '{"role":"anon"}', true);
        WHEN 'service_role' THEN
            PERFORM set_config('role', 'service_role', true);
            PERFORM set_config('request.jwt.claims', '{"role":"service_role"}', true);
        WHEN 'analyst' THEN
            PERFORM set_config('role', 'agentmarket_analyst', true);
        ELSE
            PERFORM set_config('role', 'authenticated', true);
            PERFORM set_config('request.jwt.claims',
                json_build_object('sub', pg_temp.fid(actor), 'role', 'authenticated')::text, true);
        END CASE;
        IF stmt ~* '^\s*select' THEN
            EXECUTE stmt INTO res;
            res := coalesce(res, '(none)');
        ELSE
            EXECUTE stmt;
            GET DIAGNOSTICS n = ROW_COUNT;
            res := 'rows:' || n;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'ZZ000', MESSAGE = res;
    EXCEPTION
        WHEN SQLSTATE 'ZZ000' THEN res := SQLERRM;
        WHEN OTHERS THEN res := 'error:' || SQLSTATE;
    END;
    RETURN res;
END
$$;

-- The labels of the fixture rows of a table the caller can see.
CREATE FUNCTION pg_temp.visible(tbl text, key text DEFAULT 'id') RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('SELECT string_agg(l.label, '','' ORDER BY l.label COLLATE "C") '
                  'FROM agentmarket.%I t JOIN pg_temp.lab l ON l.id = t.%I', tbl, key)
$$;

-- Compare an outcome with what is expected; 'not:CODE' = anything but that error.
CREATE FUNCTION pg_temp.check(got text, want text, description text) RETURNS text
LANGUAGE sql AS $$
    SELECT CASE WHEN want LIKE 'not:%'
                THEN ok(got IS DISTINCT FROM 'error:' || substr(want, 5), description)
                ELSE is(got, want, description) END
$$;

CREATE TEMP TABLE actors (i int, actor text, name text);
INSERT INTO actors VALUES (1, 'anon', 'anon'), (2, 'O', 'owner'), (3, 'X', 'another user'),
                          (4, 'C', 'creator'), (5, 'ADM', 'admin'), (6, 'service_role', 'service_role');

-- The matrix.  expect[] is in the order of actors: anon, owner, another
-- user, creator, admin, service_role.
CREATE TEMP TABLE matrix (ord serial, tbl text, op text, stmt text, expect text[], rule text);
INSERT INTO matrix (tbl, op, stmt, expect, rule) VALUES
-- users
('users', 'select', pg_temp.visible('users'),
 '{error:42501,O,X,C,ADM,"ADM,C,C2,O,X"}', 'own row only; nobody reads another user''s email'),
('users', 'insert', $$INSERT INTO agentmarket.users (id, email) VALUES (pg_temp.fid('N'), 'new@matrix.test')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'accounts are created by the back end'),
('users', 'update', $$UPDATE agentmarket.users SET display_name = 'Renamed' WHERE id = pg_temp.fid('O')$$,
 '{error:42501,rows:1,rows:0,rows:0,rows:0,rows:1}', 'the owner edits their own profile'),
('users', 'delete', $$DELETE FROM agentmarket.users WHERE id = pg_temp.fid('ADM')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'accounts are deleted by the back end'),
-- agents
('agents', 'select', pg_temp.visible('agents'),
 '{"A2,AP","A2,AP","A2,AP","A2,AD,AP","A2,AD,AP","A2,AD,AP"}', 'published for all, drafts for their creator and admins'),
('agents', 'insert', $$INSERT INTO agentmarket.agents (creator_id, slug, name, tagline, description, category, credits_per_session, github_repo_url)
   VALUES (pg_temp.fid('C'), 'matrix-new', 'New', 't', 'd', 'research', 10, 'https://github.com/c/new')$$,
 '{error:42501,error:42501,error:42501,rows:1,error:42501,rows:1}', 'a creator lists agents as themselves'),
('agents', 'update', $$UPDATE agentmarket.agents SET tagline = 'Better' WHERE id = pg_temp.fid('AD')$$,
 '{error:42501,rows:0,rows:0,rows:1,rows:0,rows:1}', 'the creator edits their own listing'),
('agents', 'delete', $$DELETE FROM agentmarket.agents WHERE id = pg_temp.fid('AD')$$,
 '{error:42501,rows:0,rows:0,rows:1,rows:0,rows:1}', 'the creator deletes their own unpublished listing'),
-- agent_versions
('agent_versions', 'select', pg_temp.visible('agent_versions'),
 '{"V2,VP","V2,VP","V2,VP","V2,VD,VP","V2,VD,VP","V2,VD,VP"}', 'versions of published agents, or of the creator''s own'),
('agent_versions', 'insert', $$INSERT INTO agentmarket.agent_versions (agent_id, version) VALUES (pg_temp.fid('AD'), '0.2.0')$$,
 '{error:42501,error:42501,error:42501,rows:1,error:42501,rows:1}', 'the creator adds versions of their agent'),
('agent_versions', 'update', $$UPDATE agentmarket.agent_versions SET changelog = 'Fixes' WHERE id = pg_temp.fid('VD')$$,
 '{error:42501,rows:0,rows:0,rows:1,rows:0,rows:1}', 'the creator describes their versions'),
('agent_versions', 'delete', $$DELETE FROM agentmarket.agent_versions WHERE id = pg_temp.fid('VD')$$,
 '{error:42501,rows:0,rows:0,rows:1,rows:0,rows:1}', 'the creator deletes their versions'),
-- agent_skills
('agent_skills', 'select', pg_temp.visible('agent_skills'),
 '{"S2,SP","S2,SP","S2,SP","S2,SD,SP","S2,SD,SP","S2,SD,SP"}', 'skills of published agents, or of the creator''s own'),
('agent_skills', 'insert', $$INSERT INTO agentmarket.agent_skills (agent_id, skill_slug) VALUES (pg_temp.fid('AD'), 'web-search')$$,
 '{error:42501,error:42501,error:42501,rows:1,error:42501,rows:1}', 'the creator adds skills to their agent'),
('agent_skills', 'update', $$UPDATE agentmarket.agent_skills SET description = 'Reads PDFs' WHERE id = pg_temp.fid('SD')$$,
 '{error:42501,rows:0,rows:0,rows:1,rows:0,rows:1}', 'the creator edits their skills'),
('agent_skills', 'delete', $$DELETE FROM agentmarket.agent_skills WHERE id = pg_temp.fid('SD')$$,
 '{error:42501,rows:0,rows:0,rows:1,rows:0,rows:1}', 'the creator deletes their skills'),
-- projects
('projects', 'select', pg_temp.visible('projects'),
 '{error:42501,PO,PX,(none),(none),"PO,PX"}', 'the owner only'),
('projects', 'insert', $$INSERT INTO agentmarket.projects (user_id, name) VALUES (pg_temp.fid('O'), 'Side project')$$,
 '{error:42501,rows:1,error:42501,error:42501,error:42501,rows:1}', 'projects are created for oneself'),
('projects', 'update', $$UPDATE agentmarket.projects SET name = 'Renamed' WHERE id = pg_temp.fid('PO')$$,
 '{error:42501,rows:1,rows:0,rows:0,rows:0,rows:1}', 'the owner only'),
('projects', 'delete', $$DELETE FROM agentmarket.projects WHERE id = pg_temp.fid('PO')$$,
 '{error:42501,rows:1,rows:0,rows:0,rows:0,rows:1}', 'the owner only'),
-- teams
('teams', 'select', pg_temp.visible('teams'),
 '{error:42501,"TO,TO2",TX,(none),(none),"TO,TO2,TX"}', 'the owner of the project only'),
('teams', 'insert', $$INSERT INTO agentmarket.teams (project_id, name) VALUES (pg_temp.fid('PO'), 'Ops')$$,
 '{error:42501,rows:1,error:42501,error:42501,error:42501,rows:1}', 'teams go into one''s own projects'),
('teams', 'update', $$UPDATE agentmarket.teams SET name = 'Renamed' WHERE id = pg_temp.fid('TO')$$,
 '{error:42501,rows:1,rows:0,rows:0,rows:0,rows:1}', 'the owner of the project only'),
('teams', 'delete', $$DELETE FROM agentmarket.teams WHERE id = pg_temp.fid('TO')$$,
 '{error:42501,rows:1,rows:0,rows:0,rows:0,rows:1}', 'the owner of the project only'),
-- team_agents
('team_agents', 'select', pg_temp.visible('team_agents', 'instance_id'),
 '{error:42501,IO,IX,(none),(none),"IO,IX"}', 'the owner of the team only'),
('team_agents', 'insert', $$INSERT INTO agentmarket.team_agents (team_id, instance_id) VALUES (pg_temp.fid('TO2'), pg_temp.fid('IO'))$$,
 '{error:42501,rows:1,error:42501,error:42501,error:42501,rows:1}', 'one''s own instance into one''s own team'),
('team_agents', 'update', $$UPDATE agentmarket.team_agents SET added_at = now() WHERE instance_id = pg_temp.fid('IO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'memberships are added and removed, not edited'),
('team_agents', 'delete', $$DELETE FROM agentmarket.team_agents WHERE instance_id = pg_temp.fid('IO')$$,
 '{error:42501,rows:1,rows:0,rows:0,rows:0,rows:1}', 'the owner of the team only'),
-- agent_instances
('agent_instances', 'select', pg_temp.visible('agent_instances'),
 '{error:42501,"IO,IOd",IX,(none),(none),"IO,IOd,IX"}', 'the owner only; the agent''s creator does not see who hired it'),
('agent_instances', 'insert', $$INSERT INTO agentmarket.agent_instances (user_id, agent_id, fly_app_name, fly_machine_id)
   VALUES (pg_temp.fid('O'), pg_temp.fid('AD'), 'am-new', 'm-new')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'hiring goes through a function'),
('agent_instances', 'update', $$UPDATE agentmarket.agent_instances SET display_name = 'My helper' WHERE id = pg_temp.fid('IO')$$,
 '{error:42501,rows:1,rows:0,rows:0,rows:0,rows:1}', 'the owner customises their instance'),
('agent_instances', 'delete', $$DELETE FROM agentmarket.agent_instances WHERE id = pg_temp.fid('IOd')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'instances are destroyed through a function'),
-- sessions
('sessions', 'select', pg_temp.visible('sessions'),
 '{error:42501,SO,SX,(none),(none),"SO,SX"}', 'the owner only; never the agent''s creator'),
('sessions', 'insert', $$INSERT INTO agentmarket.sessions (instance_id, user_id) VALUES (pg_temp.fid('IO'), pg_temp.fid('O'))$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'sessions are written by functions'),
('sessions', 'update', $$UPDATE agentmarket.sessions SET total_credits_consumed = 0 WHERE id = pg_temp.fid('SO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'session totals are written by functions'),
('sessions', 'delete', $$DELETE FROM agentmarket.sessions WHERE id = pg_temp.fid('SO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'sessions are written by functions'),
-- messages
('messages', 'select', pg_temp.visible('messages'),
 '{error:42501,MO,MX,(none),(none),"MO,MX"}', 'the owner of the session only; never the agent''s creator'),
('messages', 'insert', $$INSERT INTO agentmarket.messages (session_id, role, content) VALUES (pg_temp.fid('SO'), 'user', 'hi')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'messages are written by functions'),
('messages', 'update', $$UPDATE agentmarket.messages SET content = 'edited' WHERE id = pg_temp.fid('MO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'messages are written by functions'),
('messages', 'delete', $$DELETE FROM agentmarket.messages WHERE id = pg_temp.fid('MO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'messages are written by functions'),
-- credit_balances
('credit_balances', 'select', pg_temp.visible('credit_balances'),
 '{error:42501,BO,BX,(none),(none),"BO,BX"}', 'the owner only'),
('credit_balances', 'insert', $$INSERT INTO agentmarket.credit_balances (user_id, topup_credits) VALUES (pg_temp.fid('C'), 1000)$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'balances change only through the ledger functions'),
('credit_balances', 'update', $$UPDATE agentmarket.credit_balances SET topup_credits = topup_credits + 1000 WHERE user_id = pg_temp.fid('O')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'balances change only through the ledger functions'),
('credit_balances', 'delete', $$DELETE FROM agentmarket.credit_balances WHERE id = pg_temp.fid('BO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'balances change only through the ledger functions'),
-- credit_transactions
('credit_transactions', 'select', pg_temp.visible('credit_transactions'),
 '{error:42501,LO,LX,(none),(none),"LO,LX"}', 'the owner only'),
('credit_transactions', 'insert', $$INSERT INTO agentmarket.credit_transactions (user_id, type, amount, credit_type)
   VALUES (pg_temp.fid('O'), 'topup_purchase', 1000, 'topup')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'the ledger is written by functions'),
('credit_transactions', 'update', $$UPDATE agentmarket.credit_transactions SET amount = 100000 WHERE id = pg_temp.fid('LO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,error:42501}', 'the ledger is append-only: nobody updates it'),
('credit_transactions', 'delete', $$DELETE FROM agentmarket.credit_transactions WHERE id = pg_temp.fid('LO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,error:42501}', 'the ledger is append-only: nobody deletes from it'),
-- usage_events
('usage_events', 'select', pg_temp.visible('usage_events'),
 '{error:42501,UO,UX,(none),(none),"UO,UX"}', 'the owner only'),
('usage_events', 'insert', $$INSERT INTO agentmarket.usage_events (user_id, instance_id, credits_consumed)
   VALUES (pg_temp.fid('O'), pg_temp.fid('IO'), 1)$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'usage is metered by functions'),
('usage_events', 'update', $$UPDATE agentmarket.usage_events SET credits_consumed = 0 WHERE id = pg_temp.fid('UO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'usage is metered by functions'),
('usage_events', 'delete', $$DELETE FROM agentmarket.usage_events WHERE id = pg_temp.fid('UO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'usage is metered by functions'),
-- purchases
('purchases', 'select', pg_temp.visible('purchases'),
 '{error:42501,PuO,PuX,(none),(none),"PuO,PuX"}', 'the owner only'),
('purchases', 'insert', $$INSERT INTO agentmarket.purchases (user_id, kind, credits, amount_cents, status)
   VALUES (pg_temp.fid('O'), 'topup', 100000, 0, 'paid')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'purchases are recorded from Stripe by functions'),
('purchases', 'update', $$UPDATE agentmarket.purchases SET credits = 100000 WHERE id = pg_temp.fid('PuO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'purchases are recorded from Stripe by functions'),
('purchases', 'delete', $$DELETE FROM agentmarket.purchases WHERE id = pg_temp.fid('PuO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'purchases are recorded from Stripe by functions'),
-- creator_earnings
('creator_earnings', 'select', pg_temp.visible('creator_earnings'),
 '{error:42501,(none),(none),EC,(none),"EC,EC2"}', 'the creator reads their own'),
('creator_earnings', 'insert', $$INSERT INTO agentmarket.creator_earnings (creator_id, agent_id, gross_revenue, compute_cost, creator_amount, platform_amount)
   VALUES (pg_temp.fid('C'), pg_temp.fid('AP'), 100, 0, 100, 0)$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'earnings are split by functions'),
('creator_earnings', 'update', $$UPDATE agentmarket.creator_earnings SET creator_amount = 100 WHERE id = pg_temp.fid('EC')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'earnings are split by functions'),
('creator_earnings', 'delete', $$DELETE FROM agentmarket.creator_earnings WHERE id = pg_temp.fid('EC')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,not:42501}', 'earnings are split by functions'),
-- agent_reviews
('agent_reviews', 'select', pg_temp.visible('agent_reviews'),
 '{"RO,RX","RO,RX","RO,RX","RO,RX","RO,RX","RO,RX"}', 'everyone reads reviews'),
('agent_reviews', 'insert', $$INSERT INTO agentmarket.agent_reviews (agent_id, user_id, rating, content)
   VALUES (pg_temp.fid('A2'), pg_temp.fid('O'), 4, 'Useful')$$,
 '{error:42501,rows:1,error:42501,error:42501,error:42501,rows:1}', 'a hirer reviews as themselves (a destroyed instance still counts as hired)'),
('agent_reviews', 'update', $$UPDATE agentmarket.agent_reviews SET rating = 1 WHERE id = pg_temp.fid('RO')$$,
 '{error:42501,rows:1,rows:0,rows:0,rows:0,rows:1}', 'the author edits their review'),
('agent_reviews', 'delete', $$DELETE FROM agentmarket.agent_reviews WHERE id = pg_temp.fid('RO')$$,
 '{error:42501,rows:1,rows:0,rows:0,rows:1,rows:1}', 'the author, or an admin moderating, deletes a review'),
-- relay_connections
('relay_connections', 'select', pg_temp.visible('relay_connections'),
 '{error:42501,RCO,RCX,(none),(none),"RCO,RCX"}', 'the owner of the instance only'),
('relay_connections', 'insert', $$INSERT INTO agentmarket.relay_connections (instance_id, relay, external_user_id)
   VALUES (pg_temp.fid('IO'), 'telegram', 'matrix-tg-new')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'relays are connected by the platform once verified'),
('relay_connections', 'update', $$UPDATE agentmarket.relay_connections SET status = 'disconnected' WHERE id = pg_temp.fid('RCO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'relays are managed by the platform'),
('relay_connections', 'delete', $$DELETE FROM agentmarket.relay_connections WHERE id = pg_temp.fid('RCO')$$,
 '{error:42501,rows:1,rows:0,rows:0,rows:0,rows:1}', 'the owner of the instance disconnects'),
-- ssh_configs
('ssh_configs', 'select', pg_temp.visible('ssh_configs'),
 '{error:42501,SSO,SSX,(none),(none),"SSO,SSX"}', 'the owner of the instance only'),
('ssh_configs', 'insert', $$INSERT INTO agentmarket.ssh_configs (instance_id, host, username, host_key_fingerprint, private_key_secret_id)
   VALUES (pg_temp.fid('IOd'), 'iod.internal', 'agent', 'SHA256:' || repeat('C', 43), pg_temp.fid('KO'))$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'SSH access is set up by the platform'),
('ssh_configs', 'update', $$UPDATE agentmarket.ssh_configs SET port = 2222 WHERE id = pg_temp.fid('SSO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'SSH access is set up by the platform'),
('ssh_configs', 'delete', $$DELETE FROM agentmarket.ssh_configs WHERE id = pg_temp.fid('SSO')$$,
 '{error:42501,error:42501,error:42501,error:42501,error:42501,rows:1}', 'SSH access is removed by the platform (its key with it)');

CREATE FUNCTION pg_temp.says(want text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN want LIKE 'error:%' THEN 'refused with ' || substr(want, 7)
                WHEN want = 'rows:0' THEN 'no row affected (RLS hides it)'
                WHEN want LIKE 'rows:%' THEN 'allowed, ' || substr(want, 6) || ' row'
                WHEN want LIKE 'not:%' THEN 'not refused by privileges or RLS'
                ELSE 'sees ' || want END
$$;

SELECT plan(432 + 2 + 52);

SELECT is((SELECT count(DISTINCT tbl)::int FROM matrix
            WHERE tbl = ANY (ARRAY['users', 'projects', 'teams', 'agents', 'agent_instances', 'sessions',
                                   'messages', 'credit_balances', 'credit_transactions', 'usage_events',
                                   'creator_earnings', 'agent_reviews', 'relay_connections', 'agent_versions',
                                   'agent_skills', 'team_agents', 'purchases', 'ssh_configs'])), 18,
          'the matrix covers the 18 tables of the data model');
SELECT is((SELECT count(*)::int FROM (SELECT tbl FROM matrix GROUP BY tbl
                                      HAVING array_agg(op ORDER BY op) = '{delete,insert,select,update}') t), 18,
          'each table is tried with select, insert, update and delete');

SELECT pg_temp.check(pg_temp.request(a.actor, m.stmt), m.expect[a.i],
                     format('%s %s as %s: %s (%s)', m.tbl, m.op, a.name, pg_temp.says(m.expect[a.i]), m.rule))
  FROM matrix m CROSS JOIN actors a
 ORDER BY m.ord, a.i;

-- The attacks, and what must stay possible next to them.
CREATE TEMP TABLE attacks (ord serial, actor text, stmt text, expect text, description text, setup_sql text);
INSERT INTO attacks (actor, stmt, expect, description, setup_sql) VALUES
-- money
('O', $$UPDATE agentmarket.credit_balances SET topup_credits = topup_credits + 1000000 WHERE user_id = pg_temp.fid('O')$$,
 'error:42501', 'a user cannot raise their own balance', NULL),
('O', $$INSERT INTO agentmarket.credit_balances (user_id, topup_credits) VALUES (pg_temp.fid('O'), 1000000)$$,
 'error:42501', 'a user cannot create a balance for themselves', NULL),
('O', $$INSERT INTO agentmarket.credit_transactions (user_id, type, amount, credit_type) VALUES (pg_temp.fid('O'), 'topup_purchase', 1000000, 'topup')$$,
 'error:42501', 'a user cannot forge a ledger row', NULL),
('O', $$DELETE FROM agentmarket.credit_transactions WHERE user_id = pg_temp.fid('O') AND amount < 0$$,
 'error:42501', 'a user cannot erase their debits', NULL),
('O', $$UPDATE agentmarket.sessions SET total_credits_consumed = 0 WHERE id = pg_temp.fid('SO')$$,
 'error:42501', 'a user cannot zero their session''s totals', NULL),
('O', $$UPDATE agentmarket.purchases SET status = 'paid', credits = 100000 WHERE id = pg_temp.fid('PuO')$$,
 'error:42501', 'a user cannot mark a purchase paid or change its credits', NULL),
('C', $$UPDATE agentmarket.creator_earnings SET creator_amount = 1000 WHERE creator_id = pg_temp.fid('C')$$,
 'error:42501', 'a creator cannot raise their earnings', NULL),
('O', $$TRUNCATE agentmarket.credit_transactions$$,
 'error:42501', 'a user cannot truncate the ledger (TRUNCATE ignores RLS)', NULL),
-- listings
('C', $$UPDATE agentmarket.agents SET status = 'published', published_at = now() WHERE id = pg_temp.fid('AD')$$,
 'error:42501', 'a creator cannot publish their own agent (status changes through review)', NULL),
('C', $$INSERT INTO agentmarket.agents (creator_id, slug, name, tagline, description, category, credits_per_session, github_repo_url, status)
   VALUES (pg_temp.fid('C'), 'matrix-sneaky', 'Sneaky', 't', 'd', 'research', 10, 'https://github.com/c/sneaky', 'published')$$,
 'error:42501', 'a creator cannot list an agent as already published', NULL),
('C', $$UPDATE agentmarket.agents SET total_hires = 1000000 WHERE id = pg_temp.fid('AP')$$,
 'error:42501', 'a creator cannot inflate total_hires', NULL),
('C', $$UPDATE agentmarket.agents SET avg_rating = 5.0, total_reviews = 999 WHERE id = pg_temp.fid('AP')$$,
 'error:42501', 'a creator cannot inflate avg_rating or total_reviews', NULL),
('C', $$UPDATE agentmarket.agents SET creator_id = pg_temp.fid('C2') WHERE id = pg_temp.fid('AP')$$,
 'error:42501', 'a creator cannot hand a listing to someone else', NULL),
('C', $$UPDATE agentmarket.agents SET description = 'Now with more features' WHERE id = pg_temp.fid('AP')$$,
 'rows:1', 'a creator edits their published listing', NULL),
('C2', $$UPDATE agentmarket.agents SET tagline = 'pwned' WHERE id = pg_temp.fid('AP')$$,
 'rows:0', 'a creator cannot edit another creator''s listing', NULL),
('C', $$DELETE FROM agentmarket.agents WHERE id = pg_temp.fid('AP')$$,
 'rows:0', 'a published listing is archived through a function, never deleted', NULL),
('O', $$INSERT INTO agentmarket.agents (creator_id, slug, name, tagline, description, category, credits_per_session, github_repo_url)
   VALUES (pg_temp.fid('O'), 'matrix-mine', 'Mine', 't', 'd', 'research', 10, 'https://github.com/o/mine')$$,
 'error:42501', 'a user whose role is not creator cannot list agents', NULL),
('C', $$UPDATE agentmarket.agent_versions SET status = 'published', is_current = true WHERE id = pg_temp.fid('VD')$$,
 'error:42501', 'a creator cannot make a version current by hand', NULL),
('C2', $$INSERT INTO agentmarket.agent_skills (agent_id, skill_slug) VALUES (pg_temp.fid('AP'), 'exfiltrate')$$,
 'error:42501', 'a creator cannot add skills to another creator''s agent', NULL),
('C', $$INSERT INTO agentmarket.agent_skills (agent_id, agent_version_id, skill_slug) VALUES (pg_temp.fid('AD'), pg_temp.fid('V2'), 'web-search')$$,
 'error:42501', 'a skill cannot point at a version of another agent', NULL),
('C', $$INSERT INTO agentmarket.agent_skills (agent_id, agent_version_id, skill_slug) VALUES (pg_temp.fid('AD'), pg_temp.fid('VD'), 'web-search')$$,
 'rows:1', 'a skill may point at a version of its own agent', NULL),
('ADM', $$SELECT string_agg(l.label, ',' ORDER BY l.label COLLATE "C") FROM agentmarket.agents t JOIN pg_temp.lab l ON l.id = t.id WHERE t.status = 'draft'$$,
 'AD', 'an admin reads drafts for moderation', NULL),
('ADM', $$UPDATE agentmarket.agents SET status = 'published' WHERE id = pg_temp.fid('AD')$$,
 'error:42501', 'an admin approves through a function, not by hand', NULL),
-- reviews
('X', $$INSERT INTO agentmarket.agent_reviews (agent_id, user_id, rating) VALUES (pg_temp.fid('A2'), pg_temp.fid('X'), 5)$$,
 'error:42501', 'a user cannot review an agent they have not hired', NULL),
('X', $$INSERT INTO agentmarket.agent_reviews (agent_id, user_id, rating) VALUES (pg_temp.fid('A2'), pg_temp.fid('O'), 1)$$,
 'error:42501', 'a user cannot review as someone else (even someone who hired it)', NULL),
('X', $$UPDATE agentmarket.agent_reviews SET user_id = pg_temp.fid('X') WHERE id = pg_temp.fid('RO')$$,
 'error:42501', 'a review cannot be moved to another author', NULL),
('X', $$UPDATE agentmarket.agent_reviews SET rating = 1 WHERE id = pg_temp.fid('RO')$$,
 'rows:0', 'a user cannot edit someone else''s review', NULL),
('O', $$INSERT INTO agentmarket.agent_reviews (agent_id, user_id, rating) VALUES (pg_temp.fid('AP'), pg_temp.fid('O'), 3)$$,
 'error:23505', 'one review per user per agent: the second is a duplicate', NULL),
('C', $$INSERT INTO agentmarket.agent_reviews (agent_id, user_id, rating) VALUES (pg_temp.fid('AP'), pg_temp.fid('C'), 5)$$,
 'error:42501', 'a creator cannot review their own agent, even after hiring it',
 $$INSERT INTO agentmarket.agent_instances (user_id, agent_id, fly_app_name, fly_machine_id) VALUES (pg_temp.fid('C'), pg_temp.fid('AP'), 'am-ic', 'm-ic')$$),
('C', $$DELETE FROM agentmarket.agent_reviews WHERE id = pg_temp.fid('RX')$$,
 'rows:0', 'a creator cannot delete a bad review of their agent', NULL),
-- accounts
('O', $$UPDATE agentmarket.users SET role = 'admin' WHERE id = pg_temp.fid('O')$$,
 'error:42501', 'a user cannot promote themselves to admin', NULL),
('O', $$UPDATE agentmarket.users SET role = 'creator' WHERE id = pg_temp.fid('O')$$,
 'error:42501', 'a user cannot make themselves a creator', NULL),
('O', $$UPDATE agentmarket.users SET stripe_connect_account_id = 'acct_attacker' WHERE id = pg_temp.fid('O')$$,
 'error:42501', 'a user cannot set their Stripe ids (payouts would go elsewhere)', NULL),
('O', $$UPDATE agentmarket.users SET email = 'taken@matrix.test' WHERE id = pg_temp.fid('O')$$,
 'error:42501', 'a user cannot change their email behind the auth service', NULL),
('X', $$SELECT string_agg(email, ',') FROM agentmarket.users WHERE id = pg_temp.fid('O')$$,
 '(none)', 'a user cannot read another user''s email', NULL),
('C', $$SELECT string_agg(u.email, ',') FROM agentmarket.users u WHERE u.id IN (SELECT i.user_id FROM agentmarket.agent_instances i)$$,
 '(none)', 'a creator cannot read the emails of their hirers', NULL),
('anon', $$SELECT string_agg(l.label, ',' ORDER BY l.label COLLATE "C") FROM agentmarket.creator_profiles p JOIN pg_temp.lab l ON l.id = p.id$$,
 'C,C2', 'anon reads creators'' public profiles (and no one else''s)', NULL),
('O', $$SELECT email FROM agentmarket.creator_profiles$$,
 'error:42703', 'the public profile has no email', NULL),
-- instances, relays, SSH
('O', $$UPDATE agentmarket.agent_instances SET status = 'running' WHERE id = pg_temp.fid('IOd')$$,
 'error:42501', 'a user cannot revive a destroyed instance by hand', NULL),
('O', $$UPDATE agentmarket.agent_instances SET fly_machine_id = 'm-someone-else' WHERE id = pg_temp.fid('IO')$$,
 'error:42501', 'a user cannot point their instance at another machine', NULL),
('O', $$UPDATE agentmarket.agent_instances SET team_id = pg_temp.fid('TX') WHERE id = pg_temp.fid('IO')$$,
 'error:42501', 'a user cannot put their instance into someone else''s team', NULL),
('O', $$UPDATE agentmarket.agent_instances SET team_id = pg_temp.fid('TO'), model_preference = 'claude' WHERE id = pg_temp.fid('IO')$$,
 'rows:1', 'a user puts their instance into their own team', NULL),
('X', $$INSERT INTO agentmarket.team_agents (team_id, instance_id) VALUES (pg_temp.fid('TO'), pg_temp.fid('IX'))$$,
 'error:42501', 'a user cannot add an instance to someone else''s team', NULL),
('O', $$INSERT INTO agentmarket.team_agents (team_id, instance_id) VALUES (pg_temp.fid('TO2'), pg_temp.fid('IX'))$$,
 'error:42501', 'a user cannot add someone else''s instance to their team', NULL),
('X', $$INSERT INTO agentmarket.relay_connections (instance_id, relay, external_user_id) VALUES (pg_temp.fid('IX'), 'telegram', 'matrix-tg-owner-2')$$,
 'error:42501', 'a user cannot connect a relay by hand (it would claim someone''s chat)', NULL),
('X', $$UPDATE agentmarket.relay_connections SET instance_id = pg_temp.fid('IX') WHERE id = pg_temp.fid('RCO')$$,
 'error:42501', 'a user cannot hijack another user''s relay to their instance', NULL),
('X', $$DELETE FROM agentmarket.relay_connections WHERE id = pg_temp.fid('RCO')$$,
 'rows:0', 'a user cannot disconnect another user''s relay', NULL),
('O', $$SELECT string_agg(config::text, ',') FROM agentmarket.relay_connections$$,
 'error:42501', 'a relay''s config (its credentials) is never selectable, even by its owner', NULL),
('O', $$SELECT string_agg(s.secret, ',') FROM agentmarket_private.secrets s$$,
 'error:42501', 'SSH private keys are never selectable', NULL),
-- privacy from the creator
('C', $$SELECT count(*)::text FROM agentmarket.sessions s JOIN agentmarket.agent_instances i ON i.id = s.instance_id WHERE i.agent_id = pg_temp.fid('AP')$$,
 '0', 'a creator cannot read the sessions of their agent''s users', NULL),
('C', $$SELECT count(*)::text FROM agentmarket.messages$$,
 '0', 'a creator cannot read the messages of their agent''s users', NULL),
('service_role', $$SELECT string_agg(l.label, ',' ORDER BY l.label COLLATE "C") FROM agentmarket.messages t JOIN pg_temp.lab l ON l.id = t.id$$,
 'MO,MX', 'service_role passes RLS by policy even where the role lacks BYPASSRLS',
 'ALTER ROLE service_role NOBYPASSRLS');

SELECT pg_temp.check(pg_temp.request(actor, stmt, setup_sql), expect, description)
  FROM attacks ORDER BY ord;

SELECT * FROM finish();
ROLLBACK;
