-- workspaces.sql: a user's projects and the teams of hired instances in them.
--
-- Team membership has one source of truth: agent_instances.team_id (an
-- instance is in at most one team: the triggers below move it, under the
-- instance's row lock, so concurrent moves end with one membership).  team_agents, the seed's join table,
-- mirrors it: triggers keep the two equal whichever is written (the RPCs
-- below, PostgREST writes to either table, cascades).  An instance joins a
-- team of its own owner only.  Deleting a team (or its project) takes the
-- instances out of it first, so the seed's cascades never trip on
-- agent_instances.team_id.

ALTER TABLE agentmarket.projects
  ADD CONSTRAINT projects_name_check
    CHECK (pg_catalog.length(name) BETWEEN 1 AND 100 AND name = pg_catalog.btrim(name) AND name !~ '[[:cntrl:]]'),
  ADD CONSTRAINT projects_description_check
    CHECK (description IS NULL OR pg_catalog.length(description) <= 2000);
ALTER TABLE agentmarket.teams
  ADD CONSTRAINT teams_name_check
    CHECK (pg_catalog.length(name) BETWEEN 1 AND 100 AND name = pg_catalog.btrim(name) AND name !~ '[[:cntrl:]]');
CREATE UNIQUE INDEX projects_user_name_key ON agentmarket.projects (user_id, pg_catalog.lower(name));
CREATE UNIQUE INDEX teams_project_name_key ON agentmarket.teams (project_id, pg_catalog.lower(name));

------------------------------------------------------------------------------
-- Membership: agent_instances.team_id is the truth, team_agents its mirror
------------------------------------------------------------------------------

-- BEFORE INSERT OR UPDATE OF team_id: the team must be the instance owner's.
CREATE FUNCTION agentmarket_private.check_instance_team() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.team_id IS NOT NULL AND NOT EXISTS (
           SELECT FROM agentmarket.teams t JOIN agentmarket.projects p ON p.id OPERATOR(pg_catalog.=) t.project_id
            WHERE t.id OPERATOR(pg_catalog.=) NEW.team_id AND p.user_id OPERATOR(pg_catalog.=) NEW.user_id) THEN
        RAISE EXCEPTION 'team % belongs to another user', NEW.team_id USING ERRCODE = '42501',
            DETAIL = 'An instance joins a team of a project of its own owner only.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION agentmarket_private.check_instance_team() IS
    'Trigger: refuses (42501) an instance in a team of another user''s project.';
CREATE TRIGGER agent_instances_check_team BEFORE INSERT OR UPDATE OF team_id ON agentmarket.agent_instances
    FOR EACH ROW WHEN (NEW.team_id IS NOT NULL) EXECUTE FUNCTION agentmarket_private.check_instance_team();

-- AFTER UPDATE OF team_id: team_agents follows.  Not on INSERT: the one
-- function that inserts instances with a team (hire_agent) writes the
-- membership itself, and a restore (pg_restore loads agent_instances, then
-- team_agents, with triggers on) must not find the rows made twice.
CREATE FUNCTION agentmarket_private.mirror_instance_team() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM agentmarket.team_agents ta
     WHERE ta.instance_id OPERATOR(pg_catalog.=) NEW.id
       AND ta.team_id IS DISTINCT FROM NEW.team_id;
    IF NEW.team_id IS NOT NULL THEN
        INSERT INTO agentmarket.team_agents (team_id, instance_id) VALUES (NEW.team_id, NEW.id)
        ON CONFLICT ON CONSTRAINT team_agents_pkey DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.mirror_instance_team() IS
    'Trigger: team_agents mirrors agent_instances.team_id (one row for the instance''s team, none without).';
CREATE TRIGGER agent_instances_mirror_team AFTER UPDATE OF team_id ON agentmarket.agent_instances
    FOR EACH ROW WHEN (OLD.team_id IS DISTINCT FROM NEW.team_id)
    EXECUTE FUNCTION agentmarket_private.mirror_instance_team();

-- AFTER INSERT OR DELETE ON team_agents: a row written there moves the
-- instance into (or out of) the team, which then mirrors back.
CREATE FUNCTION agentmarket_private.team_agents_to_instance() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        UPDATE agentmarket.agent_instances i SET team_id = NEW.team_id
         WHERE i.id OPERATOR(pg_catalog.=) NEW.instance_id AND i.team_id IS DISTINCT FROM NEW.team_id;
    ELSE
        UPDATE agentmarket.agent_instances i SET team_id = NULL
         WHERE i.id OPERATOR(pg_catalog.=) OLD.instance_id AND i.team_id OPERATOR(pg_catalog.=) OLD.team_id;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION agentmarket_private.team_agents_to_instance() IS
    'Trigger: a team_agents row inserted or deleted sets or clears agent_instances.team_id, the source of truth.';
CREATE TRIGGER team_agents_to_instance AFTER INSERT OR DELETE ON agentmarket.team_agents
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.team_agents_to_instance();

-- BEFORE DELETE ON teams (directly or cascaded from its project): its
-- instances leave it, so agent_instances.team_id (no ON DELETE in the seed)
-- never blocks the delete.
CREATE FUNCTION agentmarket_private.empty_team_before_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE agentmarket.agent_instances i SET team_id = NULL WHERE i.team_id OPERATOR(pg_catalog.=) OLD.id;
    RETURN OLD;
END
$$;
COMMENT ON FUNCTION agentmarket_private.empty_team_before_delete() IS
    'Trigger: a team about to be deleted is emptied first (its instances stay, without team).';
CREATE TRIGGER teams_empty_before_delete BEFORE DELETE ON agentmarket.teams
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.empty_team_before_delete();

------------------------------------------------------------------------------
-- RPCs
------------------------------------------------------------------------------

-- A trimmed name of 1 to 100 characters without control characters.
CREATE FUNCTION agentmarket_private.check_workspace_name(p_name text, p_what text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n text := pg_catalog.btrim(p_name);
BEGIN
    IF n IS NULL OR n OPERATOR(pg_catalog.=) '' OR pg_catalog.length(n) OPERATOR(pg_catalog.>) 100
       OR n ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'invalid % name', p_what USING ERRCODE = '22023',
            DETAIL = 'A name has 1 to 100 characters (spaces around it are dropped) and no control characters.';
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION agentmarket_private.check_workspace_name(text, text) IS
    'The trimmed name, or 22023 unless it has 1 to 100 characters and no control characters.';

-- The caller's project, locked; P0002 for any other.
CREATE FUNCTION agentmarket_private.own_project(p_project_id uuid)
RETURNS agentmarket.projects
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p agentmarket.projects;
BEGIN
    SELECT * INTO p FROM agentmarket.projects x
     WHERE x.id OPERATOR(pg_catalog.=) p_project_id
       AND x.user_id OPERATOR(pg_catalog.=) agentmarket_private.require_caller()
     FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'project % not found', p_project_id USING ERRCODE = 'P0002';
    END IF;
    RETURN p;
END
$$;
COMMENT ON FUNCTION agentmarket_private.own_project(uuid) IS
    'Locks and returns a project of the caller; 42501 without a user, P0002 for another''s or an unknown one.';

-- The caller's team, locked; P0002 for any other.
CREATE FUNCTION agentmarket_private.own_team(p_team_id uuid)
RETURNS agentmarket.teams
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t agentmarket.teams;
BEGIN
    SELECT x.* INTO t FROM agentmarket.teams x JOIN agentmarket.projects p ON p.id OPERATOR(pg_catalog.=) x.project_id
     WHERE x.id OPERATOR(pg_catalog.=) p_team_id
       AND p.user_id OPERATOR(pg_catalog.=) agentmarket_private.require_caller()
     FOR UPDATE OF x;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'team % not found', p_team_id USING ERRCODE = 'P0002';
    END IF;
    RETURN t;
END
$$;
COMMENT ON FUNCTION agentmarket_private.own_team(uuid) IS
    'Locks and returns a team of one of the caller''s projects; P0002 for any other.';

-- Name clashes as 23505 with a message that names the clash.
CREATE FUNCTION agentmarket_private.check_name_free(p_table text, p_scope uuid, p_name text, p_except uuid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (p_table OPERATOR(pg_catalog.=) 'projects' AND EXISTS (
            SELECT FROM agentmarket.projects x WHERE x.user_id OPERATOR(pg_catalog.=) p_scope
               AND pg_catalog.lower(x.name) OPERATOR(pg_catalog.=) pg_catalog.lower(p_name)
               AND x.id IS DISTINCT FROM p_except))
       OR (p_table OPERATOR(pg_catalog.=) 'teams' AND EXISTS (
            SELECT FROM agentmarket.teams x WHERE x.project_id OPERATOR(pg_catalog.=) p_scope
               AND pg_catalog.lower(x.name) OPERATOR(pg_catalog.=) pg_catalog.lower(p_name)
               AND x.id IS DISTINCT FROM p_except)) THEN
        RAISE EXCEPTION 'a % named "%" already exists', pg_catalog.rtrim(p_table, 's'), p_name USING ERRCODE = '23505',
            DETAIL = CASE p_table WHEN 'projects' THEN 'Project names are unique per user (ignoring case).'
                                  ELSE 'Team names are unique per project (ignoring case).' END;
    END IF;
END
$$;
COMMENT ON FUNCTION agentmarket_private.check_name_free(text, uuid, text, uuid) IS
    'Raises 23505 when the project (per user) or team (per project) name is taken, ignoring case.';

CREATE FUNCTION agentmarket.create_project(name text, description text DEFAULT NULL)
RETURNS agentmarket.projects
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    caller uuid := agentmarket_private.require_caller();
    n text := agentmarket_private.check_workspace_name(create_project.name, 'project');
    p agentmarket.projects;
BEGIN
    IF pg_catalog.length(create_project.description) OPERATOR(pg_catalog.>) 2000 THEN
        RAISE EXCEPTION 'project description must not exceed 2000 characters' USING ERRCODE = '22023';
    END IF;
    PERFORM agentmarket_private.check_name_free('projects', caller, n, NULL);
    BEGIN
        INSERT INTO agentmarket.projects (user_id, name, description) VALUES (caller, n, create_project.description)
        RETURNING * INTO p;
    EXCEPTION WHEN unique_violation THEN
        PERFORM agentmarket_private.check_name_free('projects', caller, n, NULL);
        RAISE;
    END;
    RETURN p;
END
$$;
COMMENT ON FUNCTION agentmarket.create_project(text, text) IS
    'Creates a project of the caller. 22023 for a bad name, 23505 when the caller has a project of that name.';

CREATE FUNCTION agentmarket.rename_project(project_id uuid, name text)
RETURNS agentmarket.projects
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    p agentmarket.projects := agentmarket_private.own_project(rename_project.project_id);
    n text := agentmarket_private.check_workspace_name(rename_project.name, 'project');
BEGIN
    PERFORM agentmarket_private.check_name_free('projects', p.user_id, n, p.id);
    UPDATE agentmarket.projects x SET name = n WHERE x.id OPERATOR(pg_catalog.=) p.id RETURNING * INTO p;
    RETURN p;
END
$$;
COMMENT ON FUNCTION agentmarket.rename_project(uuid, text) IS
    'Renames a project of the caller. P0002 for another''s, 22023 for a bad name, 23505 for a taken one.';

CREATE FUNCTION agentmarket.delete_project(project_id uuid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    p agentmarket.projects := agentmarket_private.own_project(delete_project.project_id);
BEGIN
    -- Its teams go with it (the seed's ON DELETE CASCADE); their instances stay, without team.
    DELETE FROM agentmarket.projects x WHERE x.id OPERATOR(pg_catalog.=) p.id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION agentmarket.delete_project(uuid) IS
    'Deletes a project of the caller with its teams; the instances in them stay, without team. P0002 for another''s.';

CREATE FUNCTION agentmarket.create_team(project_id uuid, name text)
RETURNS agentmarket.teams
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    p agentmarket.projects := agentmarket_private.own_project(create_team.project_id);
    n text := agentmarket_private.check_workspace_name(create_team.name, 'team');
    t agentmarket.teams;
BEGIN
    PERFORM agentmarket_private.check_name_free('teams', p.id, n, NULL);
    INSERT INTO agentmarket.teams (project_id, name) VALUES (p.id, n) RETURNING * INTO t;
    RETURN t;
END
$$;
COMMENT ON FUNCTION agentmarket.create_team(uuid, text) IS
    'Creates a team in a project of the caller. P0002 for another''s project, 22023 for a bad name, 23505 for a taken one.';

CREATE FUNCTION agentmarket.rename_team(team_id uuid, name text)
RETURNS agentmarket.teams
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    t agentmarket.teams := agentmarket_private.own_team(rename_team.team_id);
    n text := agentmarket_private.check_workspace_name(rename_team.name, 'team');
BEGIN
    PERFORM agentmarket_private.check_name_free('teams', t.project_id, n, t.id);
    UPDATE agentmarket.teams x SET name = n WHERE x.id OPERATOR(pg_catalog.=) t.id RETURNING * INTO t;
    RETURN t;
END
$$;
COMMENT ON FUNCTION agentmarket.rename_team(uuid, text) IS
    'Renames a team of the caller. P0002 for another''s, 22023 for a bad name, 23505 for a taken one.';

CREATE FUNCTION agentmarket.delete_team(team_id uuid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    t agentmarket.teams := agentmarket_private.own_team(delete_team.team_id);
BEGIN
    DELETE FROM agentmarket.teams x WHERE x.id OPERATOR(pg_catalog.=) t.id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION agentmarket.delete_team(uuid) IS
    'Deletes a team of the caller; its instances stay, without team. P0002 for another''s.';

-- Puts an instance of the caller into one of the caller's teams (moving it
-- out of its current one), or out of any team when team_id is NULL.
CREATE FUNCTION agentmarket.set_instance_team(instance_id uuid, team_id uuid)
RETURNS agentmarket.agent_instances
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    caller uuid := agentmarket_private.require_caller();
    -- The owner's own instance: the platform does not move instances between teams.
    inst agentmarket.agent_instances := agentmarket_private.instance_for_caller(set_instance_team.instance_id, true, false);
    t agentmarket.teams;
BEGIN
    IF set_instance_team.team_id IS NOT NULL THEN
        t := agentmarket_private.own_team(set_instance_team.team_id);
    END IF;
    UPDATE agentmarket.agent_instances i SET team_id = t.id WHERE i.id OPERATOR(pg_catalog.=) inst.id
    RETURNING * INTO inst;
    RETURN inst;
END
$$;
COMMENT ON FUNCTION agentmarket.set_instance_team(uuid, uuid) IS
    'Moves an instance of the caller into one of the caller''s teams (NULL: out of any team); team_agents follows. P0002 for an instance or team not the caller''s.';

-- The caller's projects with their teams and the instances in each team.
CREATE FUNCTION agentmarket.my_workspaces()
RETURNS TABLE (project_id uuid, name text, description text, created_at timestamptz, teams jsonb)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
    SELECT p.id, p.name, p.description, p.created_at,
           COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                        'team_id', t.id, 'name', t.name, 'created_at', t.created_at,
                        'instances', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                         'instance_id', i.id, 'agent_id', i.agent_id, 'agent_name', a.name,
                                         'display_name', i.display_name, 'status', i.status,
                                         'last_active_at', i.last_active_at) ORDER BY i.created_at, i.id)
                                       FROM agentmarket.agent_instances i
                                       JOIN agentmarket.agents a ON a.id OPERATOR(pg_catalog.=) i.agent_id
                                      WHERE i.team_id OPERATOR(pg_catalog.=) t.id), '[]'::jsonb))
                      ORDER BY t.name, t.id)
                       FROM agentmarket.teams t WHERE t.project_id OPERATOR(pg_catalog.=) p.id), '[]'::jsonb)
      FROM agentmarket.projects p
     WHERE p.user_id OPERATOR(pg_catalog.=) agentmarket_private.require_caller()
     ORDER BY p.name, p.id
$$;
COMMENT ON FUNCTION agentmarket.my_workspaces() IS
    'The caller''s projects, each with its teams and, per team, the instances in it (agent, display name, status). 42501 without a user.';

GRANT EXECUTE ON FUNCTION agentmarket.create_project(text, text), agentmarket.rename_project(uuid, text),
    agentmarket.delete_project(uuid), agentmarket.create_team(uuid, text), agentmarket.rename_team(uuid, text),
    agentmarket.delete_team(uuid), agentmarket.set_instance_team(uuid, uuid), agentmarket.my_workspaces()
    TO authenticated;
