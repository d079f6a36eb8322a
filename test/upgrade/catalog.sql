-- The catalog of the installed agentmarket, one line per fact, by name (no
-- OIDs), sorted: what an upgraded database and a fresh install must share.
\pset format unaligned
\pset tuples_only on
\pset pager off
WITH ext AS (SELECT oid, extversion, extconfig, extcondition FROM pg_extension WHERE extname = 'agentmarket'),
members AS (SELECT d.classid, d.objid FROM pg_depend d, ext WHERE d.refclassid = 'pg_extension'::regclass
               AND d.refobjid = ext.oid AND d.deptype = 'e'),
schemas AS (SELECT n.oid, n.nspname FROM pg_namespace n WHERE n.nspname IN ('agentmarket', 'agentmarket_private', 'agentmarket_analytics')),
rels AS (SELECT c.* FROM pg_class c JOIN schemas s ON s.oid = c.relnamespace),
procs AS (SELECT p.*, format('%s.%s(%s)', p.pronamespace::regnamespace, p.proname, pg_get_function_identity_arguments(p.oid)) AS sig
            FROM pg_proc p JOIN schemas s ON s.oid = p.pronamespace)
SELECT line FROM (
  SELECT 'extension version ' || extversion AS line FROM ext
  UNION ALL
  SELECT 'member ' || pg_describe_object(classid, objid, 0) FROM members
  UNION ALL
  SELECT format('config-dump %s %s', c.rel::regclass, quote_literal(c.cond))
    FROM ext, ROWS FROM (unnest(ext.extconfig), unnest(ext.extcondition)) AS c (rel, cond)
  UNION ALL
  SELECT format('schema %s owner %s acl %s comment %s', n.nspname, pg_get_userbyid(n.nspowner), n.nspacl,
                obj_description(n.oid, 'pg_namespace'))
    FROM pg_namespace n JOIN schemas s ON s.oid = n.oid
  UNION ALL
  SELECT format('relation %s kind %s owner %s acl %s rls %s force %s options %s persistence %s comment %s',
                c.oid::regclass, c.relkind, pg_get_userbyid(c.relowner), c.relacl, c.relrowsecurity,
                c.relforcerowsecurity, c.reloptions, c.relpersistence, obj_description(c.oid, 'pg_class'))
    FROM rels c WHERE c.relkind NOT IN ('i', 't')
  UNION ALL
  SELECT format('column %s.%s #%s type %s notnull %s default %s generated %s identity %s collation %s acl %s comment %s',
                c.oid::regclass, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_get_expr(ad.adbin, ad.adrelid), a.attgenerated, a.attidentity,
                CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END, a.attacl,
                col_description(c.oid, a.attnum))
    FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
   WHERE c.relkind NOT IN ('i', 't')
  UNION ALL
  SELECT format('constraint %s on %s: %s deferrable %s validated %s comment %s', co.conname,
                COALESCE(co.conrelid::regclass::text, co.contypid::regtype::text), pg_get_constraintdef(co.oid),
                co.condeferrable, co.convalidated, obj_description(co.oid, 'pg_constraint'))
    FROM pg_constraint co JOIN schemas s ON s.oid = co.connamespace
  UNION ALL
  SELECT format('index %s comment %s', pg_get_indexdef(i.oid), obj_description(i.oid, 'pg_class'))
    FROM rels i WHERE i.relkind = 'i'
  UNION ALL
  SELECT format('sequence %s type %s start %s increment %s min %s max %s cycle %s owned-by %s', sq.seqrelid::regclass,
                sq.seqtypid::regtype, sq.seqstart, sq.seqincrement, sq.seqmin, sq.seqmax, sq.seqcycle,
                (SELECT format('%s.%s', d.refobjid::regclass, a.attname) FROM pg_depend d
                   JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = sq.seqrelid AND d.deptype IN ('a', 'i')
                    AND d.refclassid = 'pg_class'::regclass))
    FROM pg_sequence sq JOIN rels c ON c.oid = sq.seqrelid
  UNION ALL
  SELECT format('view %s: %s', c.oid::regclass, pg_get_viewdef(c.oid)) FROM rels c WHERE c.relkind IN ('v', 'm')
  UNION ALL
  SELECT format('function %s kind %s returns %s language %s volatility %s strict %s security-definer %s leakproof %s parallel %s cost %s rows %s config %s owner %s acl %s comment %s body %s bin %s',
                p.sig, p.prokind, pg_get_function_result(p.oid), l.lanname, p.provolatile, p.proisstrict, p.prosecdef,
                p.proleakproof, p.proparallel, p.procost, p.prorows, p.proconfig, pg_get_userbyid(p.proowner), p.proacl,
                obj_description(p.oid, 'pg_proc'), md5(p.prosrc), p.probin)
    FROM procs p JOIN pg_language l ON l.oid = p.prolang
  UNION ALL
  SELECT format('function %s defaults %s', p.sig, pg_get_expr(p.proargdefaults, 0)) FROM procs p WHERE p.pronargdefaults > 0
  UNION ALL
  SELECT format('policy %s on %s.%s: %s for %s to %s using %s check %s', pol.policyname, pol.schemaname, pol.tablename,
                pol.permissive, pol.cmd, pol.roles, pol.qual, pol.with_check)
    FROM pg_policies pol WHERE pol.schemaname IN ('agentmarket', 'agentmarket_private', 'agentmarket_analytics')
  UNION ALL
  SELECT format('trigger %s enabled %s comment %s', pg_get_triggerdef(tg.oid), tg.tgenabled, obj_description(tg.oid, 'pg_trigger'))
    FROM pg_trigger tg JOIN rels c ON c.oid = tg.tgrelid WHERE NOT tg.tgisinternal
  UNION ALL
  SELECT format('type %s kind %s owner %s acl %s comment %s', t.oid::regtype, t.typtype, pg_get_userbyid(t.typowner), t.typacl,
                obj_description(t.oid, 'pg_type'))
    FROM pg_type t JOIN schemas s ON s.oid = t.typnamespace
   WHERE t.typtype <> 'b' AND NOT EXISTS (SELECT FROM pg_class c WHERE c.reltype = t.oid AND c.relkind <> 'c')
     AND t.typelem = 0
  UNION ALL
  SELECT format('default-acl %s %s %s', pg_get_userbyid(da.defaclrole), da.defaclnamespace::regnamespace, da.defaclacl)
    FROM pg_default_acl da JOIN schemas s ON s.oid = da.defaclnamespace
  UNION ALL
  SELECT format('role %s login %s inherit %s bypassrls %s member-of %s', r.rolname, r.rolcanlogin, r.rolinherit, r.rolbypassrls,
                (SELECT array_agg(g.rolname ORDER BY g.rolname) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                  WHERE m.member = r.oid))
    FROM pg_roles r WHERE r.rolname IN ('anon', 'authenticated', 'service_role', 'agentmarket_analyst', 'agentmarket_definer')
) facts
ORDER BY line;
