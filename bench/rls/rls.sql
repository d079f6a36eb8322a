-- One PostgREST request as the session's owner: GET /messages?session_id=eq.S&order=created_at.desc&limit=50
-- (role and claims set as PostgREST sets them; RLS does the ownership check).
\set u random(1, 10000)
\set s (:u - 1) * 5 + random(0, 4)
BEGIN;
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-' || lpad(to_hex(:u::integer), 12, '0') || '","role":"authenticated"}', true);
WITH pgrst_source AS (
  SELECT "agentmarket"."messages".* FROM "agentmarket"."messages"
   WHERE "agentmarket"."messages"."session_id" = ('00000000-0000-4000-9000-' || lpad(to_hex(:s::integer), 12, '0'))::uuid
   ORDER BY "agentmarket"."messages"."created_at" DESC LIMIT 50 OFFSET 0)
SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total,
       coalesce(json_agg(_postgrest_t), '[]') AS body
  FROM (SELECT * FROM pgrst_source) _postgrest_t;
COMMIT;
