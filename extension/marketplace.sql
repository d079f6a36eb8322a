-- marketplace.sql: the listing lifecycle (draft → review → published or
-- rejected → archived), versions and skills, hiring, and verified reviews.
--
-- Every client-facing function is SECURITY DEFINER with a pinned search_path
-- and checks the caller itself: agentmarket.current_user_id() (NULL raises
-- 42501), agentmarket.current_user_is_admin(), and the agent's creator_id.

INSERT INTO agentmarket_private.setting_definitions
    (key, kind, default_value, min_value, max_value, pattern, description) VALUES
  ('max_live_instances_per_user', 'integer', '10', 1, 10000, NULL,
   'A user may have at most this many instances that are not destroyed (hire_agent).');

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
SET search_path = pg_catalog, pg_temp
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
CREATE TRIGGER agents_first_publication BEFORE INSERT OR UPDATE ON agentmarket.agents
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.agents_first_publication();

------------------------------------------------------------------------------
-- Shared checks
------------------------------------------------------------------------------

-- The caller's id; raises 42501 without one.
CREATE FUNCTION agentmarket_private.require_caller()
RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
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

-- Locks and returns an agent the caller manages (its creator, or an admin when
-- p_admin_ok).  Agents the caller cannot see raise P0002; published agents of
-- someone else raise 42501.
CREATE FUNCTION agentmarket_private.lock_managed_agent(p_agent_id uuid, p_admin_ok boolean)
RETURNS agentmarket.agents
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
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

-- Raises 42501 unless the caller is an admin.
CREATE FUNCTION agentmarket_private.require_admin()
RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
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

-- Makes a published version the agent's current one and copies its image and
-- OpenClaw pin onto the listing.  The agent row must already be locked.
CREATE FUNCTION agentmarket_private.make_version_current(p_version agentmarket.agent_versions)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
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

------------------------------------------------------------------------------
-- Lifecycle
------------------------------------------------------------------------------

CREATE FUNCTION agentmarket.submit_agent_for_review(agent_id uuid)
RETURNS agentmarket.agents
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
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
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
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
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
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
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
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
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
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
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
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
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
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
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
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

    -- Bounded platform cost per user: at most max_live_instances_per_user
    -- instances that are not destroyed.  The user row is locked so that
    -- concurrent hires of one user count each other.
    PERFORM FROM agentmarket.users u WHERE u.id OPERATOR(pg_catalog.=) caller FOR NO KEY UPDATE;
    IF NOT EXISTS (SELECT FROM agentmarket.agent_instances i
                    WHERE i.user_id OPERATOR(pg_catalog.=) caller AND i.agent_id OPERATOR(pg_catalog.=) hire_agent.agent_id
                      AND i.status OPERATOR(pg_catalog.<>) 'destroyed')
       AND (SELECT pg_catalog.count(*) FROM agentmarket.agent_instances i
             WHERE i.user_id OPERATOR(pg_catalog.=) caller AND i.status OPERATOR(pg_catalog.<>) 'destroyed')
           OPERATOR(pg_catalog.>=) agentmarket_private.setting('max_live_instances_per_user')::integer THEN
        RAISE EXCEPTION 'too many live instances' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('A user may have at most %s instances that are not destroyed.',
                                       agentmarket_private.setting('max_live_instances_per_user')),
            HINT = 'Destroy an instance you no longer need with agentmarket.destroy_instance().';
    END IF;

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
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
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
SET search_path = pg_catalog, pg_temp
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

CREATE FUNCTION agentmarket_private.agent_reviews_stats() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO authenticated, service_role', f);
    END LOOP;
END
$grants$;
