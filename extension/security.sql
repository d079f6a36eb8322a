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
--   * agentmarket_analyst reads the views of schema agentmarket_analytics
--     (analytics.sql),
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
