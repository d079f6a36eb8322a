-- stripe.sql: the Stripe provider of the outbox: how a Stripe job is
-- enqueued and what its request carries (sidecar/stripe.c performs it).  The
-- kinds themselves belong to their capabilities (payments.sql, payouts.sql).

-- Stripe jobs: params is the API request's parameters as nested JSON (the
-- sidecar form-encodes it with bracket nesting); context is kept for handlers.
CREATE FUNCTION agentmarket_private.enqueue_stripe_job(
    p_kind text, p_params jsonb, p_idempotency_key text, p_context jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
GRANT EXECUTE ON FUNCTION agentmarket_private.enqueue_stripe_job(text, jsonb, text, jsonb) TO service_role;

-- The fields of a Stripe request: the form parameters, the Idempotency-Key
-- and the pinned API version (reconcile.sql); method and path are the kind's.
-- Plain SQL without SET (every name qualified, so no search_path can redirect
-- it) and without a sub-select: a claim's one statement inlines it.
CREATE FUNCTION agentmarket_private.stripe_request(p_job agentmarket_private.jobs)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'params', COALESCE((p_job).payload OPERATOR(pg_catalog.->) 'params', '{}'::pg_catalog.jsonb),
        'idempotency_key', (p_job).idempotency_key,
        -- Every request pins the API version: its shape is ours, not the account's default.
        'stripe_version', agentmarket_private.setting('stripe_api_version'))
$$;
COMMENT ON FUNCTION agentmarket_private.stripe_request(agentmarket_private.jobs) IS
    'Request function of Stripe kinds: payload.params as form parameters, the job''s idempotency key, the pinned Stripe-Version.';
