-- The same request as the superuser (no RLS), the ownership check written
-- into the query: what the application would run without RLS.
\set u random(1, 10000)
\set s (:u - 1) * 5 + random(0, 4)
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-' || lpad(to_hex(:u::integer), 12, '0') || '","role":"authenticated"}', true);
WITH pgrst_source AS (
  SELECT "agentmarket"."messages".* FROM "agentmarket"."messages"
   WHERE "agentmarket"."messages"."session_id" = ('00000000-0000-4000-9000-' || lpad(to_hex(:s::integer), 12, '0'))::uuid
     AND EXISTS (SELECT FROM "agentmarket"."sessions" s
                  WHERE s.id = "agentmarket"."messages"."session_id"
                    AND s.user_id = ('00000000-0000-4000-8000-' || lpad(to_hex(:u::integer), 12, '0'))::uuid)
   ORDER BY "agentmarket"."messages"."created_at" DESC LIMIT 50 OFFSET 0)
SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total,
       coalesce(json_agg(_postgrest_t), '[]') AS body
  FROM (SELECT * FROM pgrst_source) _postgrest_t;
COMMIT;
