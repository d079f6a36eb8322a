-- hardening.sql: rules that hold whoever writes, so that a hostile client, a
-- careless creator or a broken provider answer cannot slip past them.  Late
-- in the install order (before footer.sql): it constrains tables every other
-- part made.
--
--   * provider ids (Fly machine/volume/app, Stripe customer/account/session/
--     intent/invoice/subscription/transfer ids) are plain ids, never paths;
--   * machine size and memory are sizes the platform knows (and prices);
--   * a released agent version (anything but a draft) never changes what it
--     runs: image, git ref and commit, OpenClaw version, skills;
--   * a claimed job whose request cannot be built fails alone.

------------------------------------------------------------------------------
-- Provider ids: 1-255 characters of [A-Za-z0-9_-] (the sidecar checks the
-- same in sidecar/provider_id.c before it puts one into a URL path).  CHECKs
-- rather than a function, so a client's unrelated write never needs EXECUTE.
------------------------------------------------------------------------------
ALTER TABLE agentmarket.users
  ADD CONSTRAINT users_stripe_customer_id_plain CHECK (stripe_customer_id ~ '^[A-Za-z0-9_-]{1,255}$'),
  ADD CONSTRAINT users_stripe_connect_account_id_plain CHECK (stripe_connect_account_id ~ '^[A-Za-z0-9_-]{1,255}$');
ALTER TABLE agentmarket.agent_instances
  ADD CONSTRAINT agent_instances_fly_app_name_plain CHECK (fly_app_name ~ '^[a-z0-9-]{1,63}$'),
  -- '' until the outbox provisions the machine.
  ADD CONSTRAINT agent_instances_fly_machine_id_plain CHECK (fly_machine_id ~ '^[A-Za-z0-9_-]{0,255}$'),
  ADD CONSTRAINT agent_instances_fly_volume_id_plain CHECK (fly_volume_id ~ '^[A-Za-z0-9_-]{1,255}$');
ALTER TABLE agentmarket.purchases
  ADD CONSTRAINT purchases_stripe_checkout_session_id_plain CHECK (stripe_checkout_session_id ~ '^[A-Za-z0-9_-]{1,255}$'),
  ADD CONSTRAINT purchases_stripe_payment_intent_id_plain CHECK (stripe_payment_intent_id ~ '^[A-Za-z0-9_-]{1,255}$'),
  ADD CONSTRAINT purchases_stripe_invoice_id_plain CHECK (stripe_invoice_id ~ '^[A-Za-z0-9_-]{1,255}$'),
  ADD CONSTRAINT purchases_stripe_subscription_id_plain CHECK (stripe_subscription_id ~ '^[A-Za-z0-9_-]{1,255}$');
ALTER TABLE agentmarket.payouts
  ADD CONSTRAINT payouts_stripe_connect_account_id_plain CHECK (stripe_connect_account_id ~ '^[A-Za-z0-9_-]{1,255}$'),
  ADD CONSTRAINT payouts_stripe_transfer_id_plain CHECK (stripe_transfer_id ~ '^[A-Za-z0-9_-]{1,255}$');
ALTER TABLE agentmarket.creator_earnings
  ADD CONSTRAINT creator_earnings_stripe_transfer_id_plain CHECK (stripe_transfer_id ~ '^[A-Za-z0-9_-]{1,255}$');

------------------------------------------------------------------------------
-- Machine sizes the platform knows: a size and memory are accepted when the
-- cost table prices them (metering.sql: Fly's published list, or an
-- operator's own price), since they feed both the Fly request (guest.cpus,
-- guest.memory_mb) and the cost of every second an instance runs.
------------------------------------------------------------------------------
-- Refuses a machine size or memory the platform does not know (22023).  A
-- definer: it runs on a creator's own INSERT or UPDATE of their listing and
-- reads the private price tables.
CREATE FUNCTION agentmarket_private.agents_check_machine() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF agentmarket_private.machine_usd_per_second(NEW.fly_machine_size, NEW.fly_machine_memory_mb) IS NULL THEN
        RAISE EXCEPTION 'unknown machine size % with % MB', pg_catalog.left(NEW.fly_machine_size, 64), NEW.fly_machine_memory_mb
            USING ERRCODE = '22023',
                  DETAIL = 'Known sizes: ' || (
                      SELECT pg_catalog.string_agg(k.machine_size || ' ' || k.mb, '; ' ORDER BY k.machine_size)
                        FROM (SELECT x.machine_size, pg_catalog.string_agg(x.memory_mb::text, '/' ORDER BY x.memory_mb) || ' MB' AS mb
                                FROM (SELECT l.machine_size, l.memory_mb FROM agentmarket_private.machine_price_list l
                                      UNION SELECT m.machine_size, m.memory_mb FROM agentmarket_private.machine_prices m) x
                               GROUP BY x.machine_size) k) || '.',
                  HINT = 'agentmarket.machine_prices() lists every size and memory the platform runs.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION agentmarket_private.agents_check_machine() IS
    'Trigger: an agent''s machine size and memory must be a pair the cost table prices (Fly''s published list or the operator''s machine_prices); 22023 otherwise.';
CREATE TRIGGER agents_check_machine BEFORE INSERT OR UPDATE OF fly_machine_size, fly_machine_memory_mb
    ON agentmarket.agents FOR EACH ROW EXECUTE FUNCTION agentmarket_private.agents_check_machine();

------------------------------------------------------------------------------
-- Releases are immutable
------------------------------------------------------------------------------
-- What an instance runs is its version's image (job_request); the agent row's
-- docker_image and openclaw_version are copies of the current version made by
-- make_version_current, not the creator's to edit.
REVOKE UPDATE (docker_image, openclaw_version) ON agentmarket.agents FROM authenticated;

-- A version that left draft keeps what it runs, for every writer (the
-- creator through the table, any function, service_role): a fix is a new
-- version that goes through publication.  Its status may still move on
-- (deprecated, yanked) and its changelog be corrected.
CREATE FUNCTION agentmarket_private.agent_versions_frozen() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF OLD.status OPERATOR(pg_catalog.<>) 'draft'
       AND (NEW.agent_id, NEW.version, NEW.git_ref, NEW.git_commit, NEW.docker_image, NEW.openclaw_version)
           IS DISTINCT FROM (OLD.agent_id, OLD.version, OLD.git_ref, OLD.git_commit, OLD.docker_image, OLD.openclaw_version) THEN
        RAISE EXCEPTION 'version % is %: what it runs cannot change', OLD.version, OLD.status
            USING ERRCODE = '22023',
                  DETAIL = 'Image, git ref and commit, OpenClaw version and skills of a released version are fixed.',
                  HINT = 'Create a new version with agentmarket.create_agent_version() and publish it.';
    END IF;
    IF NEW.status OPERATOR(pg_catalog.=) 'draft' AND OLD.status OPERATOR(pg_catalog.<>) 'draft' THEN
        RAISE EXCEPTION 'version % is %: it cannot become a draft again', OLD.version, OLD.status
            USING ERRCODE = '22023';
    END IF;
    -- Leaving draft: a version without skills of its own takes the agent's,
    -- frozen with it.
    IF OLD.status OPERATOR(pg_catalog.=) 'draft' AND NEW.status OPERATOR(pg_catalog.<>) 'draft'
       AND NOT EXISTS (SELECT FROM agentmarket.agent_skills k
                        WHERE k.agent_version_id OPERATOR(pg_catalog.=) NEW.id) THEN
        INSERT INTO agentmarket.agent_skills
            (agent_id, agent_version_id, skill_slug, name, description, source, version,
             revision_hash, required_env, required_bins)
        SELECT k.agent_id, NEW.id, k.skill_slug, k.name, k.description, k.source, k.version,
               k.revision_hash, k.required_env, k.required_bins
          FROM agentmarket.agent_skills k
         WHERE k.agent_id OPERATOR(pg_catalog.=) NEW.agent_id AND k.agent_version_id IS NULL;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION agentmarket_private.agent_versions_frozen() IS
    'Trigger: a released version''s image, git ref/commit, OpenClaw version and version number never change (22023); on release it takes a frozen copy of the agent''s skills when it has none.';
CREATE TRIGGER agent_versions_frozen BEFORE UPDATE ON agentmarket.agent_versions
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.agent_versions_frozen();

-- The skills of a released version are fixed too.  Deleting them is allowed
-- only with their version (a cascade from a deleted version or agent).  A
-- superuser's own session may still write them: pg_restore loads skills after
-- their versions; clients and the platform's login (PostgREST's
-- authenticator, the sidecar) are never superusers, even inside a definer
-- function.
CREATE FUNCTION agentmarket_private.agent_skills_frozen() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v agentmarket.agent_versions;
BEGIN
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) session_user) THEN
        RETURN CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    FOR v IN
        SELECT x.* FROM agentmarket.agent_versions x
         WHERE x.status OPERATOR(pg_catalog.<>) 'draft'
           -- A cascade from the deleted agent: nothing is left to protect.
           AND EXISTS (SELECT FROM agentmarket.agents a WHERE a.id OPERATOR(pg_catalog.=) x.agent_id)
           AND x.id IN (CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN OLD.agent_version_id END,
                        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN NEW.agent_version_id END)
    LOOP
        RAISE EXCEPTION 'version % is %: its skills cannot change', v.version, v.status
            USING ERRCODE = '22023',
                  HINT = 'Create a new version with agentmarket.create_agent_version() and publish it.';
    END LOOP;
    RETURN CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION agentmarket_private.agent_skills_frozen() IS
    'Trigger: skills of a released version cannot be added, changed or removed (22023), except together with their version or by a superuser''s own session (pg_restore).';
CREATE TRIGGER agent_skills_frozen BEFORE INSERT OR UPDATE OR DELETE ON agentmarket.agent_skills
    FOR EACH ROW EXECUTE FUNCTION agentmarket_private.agent_skills_frozen();

------------------------------------------------------------------------------
-- One bad job never stalls the queue
------------------------------------------------------------------------------
-- job_request for claim_jobs: a job whose request cannot be built (a payload
-- or a row that no longer makes sense) is handed out with "refuse" and the
-- reason, so the sidecar fails it permanently (dead, with that reason) while
-- every other job of the claim goes ahead.
CREATE FUNCTION agentmarket_private.job_request_or_refusal(p_job agentmarket_private.jobs)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN agentmarket_private.job_request(p_job);
EXCEPTION WHEN OTHERS THEN
    RETURN pg_catalog.jsonb_build_object(
        'refuse', pg_catalog.left('the request cannot be built from the job: ' || SQLERRM, 1000));
END
$$;
COMMENT ON FUNCTION agentmarket_private.job_request_or_refusal(agentmarket_private.jobs) IS
    'job_request, or {"refuse": reason} when the job''s request cannot be built, so that the job fails alone.';

------------------------------------------------------------------------------
-- Bounds on what a client writes (the bounds per caller are settings of the
-- parts that read them: max_pending_purchases in payments.sql,
-- max_live_instances_per_user in marketplace.sql, message_max_bytes in
-- sessions.sql)
------------------------------------------------------------------------------
-- Text a client writes by hand has a length limit (23514 beyond it).
ALTER TABLE agentmarket.agents
  ADD CONSTRAINT agents_text_lengths CHECK (
        pg_catalog.char_length(slug) <= 100 AND pg_catalog.char_length(name) <= 200
    AND pg_catalog.char_length(tagline) <= 300 AND pg_catalog.char_length(description) <= 50000
    AND pg_catalog.char_length(category) <= 64
    AND COALESCE(pg_catalog.char_length(icon_url), 0) <= 2048
    AND pg_catalog.char_length(github_repo_url) <= 2048
    AND COALESCE(pg_catalog.char_length(docker_image), 0) <= 512
    AND COALESCE(pg_catalog.char_length(openclaw_version), 0) <= 64
    AND COALESCE(pg_catalog.cardinality(tags), 0) <= 32
    AND COALESCE(pg_catalog.octet_length(pg_catalog.array_to_string(tags, '')), 0) <= 2048);
ALTER TABLE agentmarket.agent_versions
  ADD CONSTRAINT agent_versions_text_lengths CHECK (
        COALESCE(pg_catalog.char_length(git_ref), 0) <= 255
    AND COALESCE(pg_catalog.char_length(docker_image), 0) <= 512
    AND COALESCE(pg_catalog.char_length(openclaw_version), 0) <= 64
    AND COALESCE(pg_catalog.char_length(changelog), 0) <= 20000);
ALTER TABLE agentmarket.agent_reviews
  ADD CONSTRAINT agent_reviews_content_length CHECK (COALESCE(pg_catalog.char_length(content), 0) <= 10000);
ALTER TABLE agentmarket.users
  ADD CONSTRAINT users_profile_lengths CHECK (
        COALESCE(pg_catalog.char_length(display_name), 0) <= 200
    AND COALESCE(pg_catalog.char_length(avatar_url), 0) <= 2048);
ALTER TABLE agentmarket.projects
  ADD CONSTRAINT projects_text_lengths CHECK (
        pg_catalog.char_length(name) <= 200 AND COALESCE(pg_catalog.char_length(description), 0) <= 5000);
ALTER TABLE agentmarket.agent_instances
  ADD CONSTRAINT agent_instances_text_lengths CHECK (
        COALESCE(pg_catalog.char_length(display_name), 0) <= 200
    AND COALESCE(pg_catalog.char_length(model_preference), 0) <= 64);
ALTER TABLE agentmarket.teams
  ADD CONSTRAINT teams_name_length CHECK (pg_catalog.char_length(name) <= 200);

------------------------------------------------------------------------------
-- No reg* columns: pg_upgrade refuses a cluster whose tables hold them (their
-- oids change).  A job kind's handlers are kept as the text of their
-- qualified signature and resolved (to regprocedure) when they are called.
------------------------------------------------------------------------------
CREATE FUNCTION agentmarket_private.procedure_reference(p_procedure regprocedure)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('%I.%I(%s)', n.nspname, p.proname,
               pg_catalog.array_to_string(ARRAY(
                   SELECT pg_catalog.format_type(a.t, NULL)
                     FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY a (t, i)
                    ORDER BY a.i), ','))
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
     WHERE p.oid OPERATOR(pg_catalog.=) p_procedure
$$;
COMMENT ON FUNCTION agentmarket_private.procedure_reference(regprocedure) IS
    'A function''s schema-qualified signature as text, e.g. agentmarket_private.finish_job_x(agentmarket_private.jobs,jsonb): a reference that survives pg_upgrade.';

ALTER TABLE agentmarket_private.job_kinds
  ALTER COLUMN handler TYPE text USING agentmarket_private.procedure_reference(handler),
  ALTER COLUMN dead_handler TYPE text USING agentmarket_private.procedure_reference(dead_handler);
COMMENT ON COLUMN agentmarket_private.job_kinds.handler IS
    'handler(job, result): the qualified signature of the function finish_job applies (text, resolved when called).';
COMMENT ON COLUMN agentmarket_private.job_kinds.dead_handler IS
    'dead_handler(job): the qualified signature of the function a dead job runs, if any (text, resolved when called).';

-- A handler must name an existing function when it is written.
CREATE FUNCTION agentmarket_private.job_kinds_check_handlers() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regprocedure(NEW.handler) IS NULL
       OR (NEW.dead_handler IS NOT NULL AND pg_catalog.to_regprocedure(NEW.dead_handler) IS NULL)
       OR pg_catalog.to_regprocedure(NEW.request_function) IS NULL THEN
        RAISE EXCEPTION 'job kind % names a handler that does not exist', NEW.kind
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('handler %s, dead_handler %s, request_function %s',
                                             NEW.handler, COALESCE(NEW.dead_handler, 'none'), NEW.request_function),
                  HINT = 'Give the schema-qualified signature, e.g. agentmarket_private.f(agentmarket_private.jobs,jsonb).';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION agentmarket_private.job_kinds_check_handlers() IS
    'Trigger: a job kind''s handler, dead handler and request function must name existing functions (22023).';
CREATE TRIGGER job_kinds_check_handlers BEFORE INSERT OR UPDATE OF handler, dead_handler, request_function
    ON agentmarket_private.job_kinds FOR EACH ROW EXECUTE FUNCTION agentmarket_private.job_kinds_check_handlers();

-- Supabase's linter (scripts/splinter, unindexed_foreign_keys): deleting a
-- creator_earnings row looks its clawbacks up by this key.
CREATE INDEX creator_clawbacks_earnings_id_idx ON agentmarket_private.creator_clawbacks (earnings_id);
