-- upgrade/carry.sql: the old version's rows come across into the freshly
-- installed new version, as pg_dump and pg_restore would carry them.
--
-- For every table of the new version whose namesake in the old version was
-- registered with pg_extension_config_dump: the rows its condition selects
-- (none for 'WHERE false': those came with the extension and the new install
-- brought its own), by column name, new columns taking their defaults.
-- Triggers and constraints are on, as in a restore; referenced tables are
-- loaded first.  A table the step moves by hand is named in the setting
-- agentmarket.upgrade_by_hand (A--B.before.sql) as
-- {"schema.table": "SELECT ... (every column of the new table, in order)"}.
-- Sequences continue where the old ones were.
DO $carry$
DECLARE
    by_hand jsonb := COALESCE(NULLIF(pg_catalog.current_setting('agentmarket.upgrade_by_hand', true), ''), '{}')::jsonb;
    dumped jsonb := pg_catalog.current_setting('agentmarket.upgrade_dumped')::jsonb;
    pending oid[];
    done oid[] := '{}';
    t record;
    cols text;
    progress boolean;
    n bigint;
    quiet text[] := '{}';
    i integer;
BEGIN
    CREATE TEMPORARY TABLE IF NOT EXISTS upgrade_carry (new_rel oid PRIMARY KEY, old_rel oid NOT NULL, cond text NOT NULL,
                                                        name text NOT NULL, carried bigint);
    INSERT INTO upgrade_carry (new_rel, old_rel, cond, name)
    SELECT nc.oid, oc.oid, dumped OPERATOR(pg_catalog.->>) pg_catalog.format('%I.%I', onn.nspname, oc.relname),
           pg_catalog.format('%I.%I', nn.nspname, nc.relname)
      FROM pg_catalog.pg_class nc
      JOIN pg_catalog.pg_namespace nn ON nn.oid OPERATOR(pg_catalog.=) nc.relnamespace
      JOIN pg_catalog.pg_namespace onn ON onn.nspname OPERATOR(pg_catalog.=) ('upgrade_from_' OPERATOR(pg_catalog.||) nn.nspname)
      JOIN pg_catalog.pg_class oc ON oc.relnamespace OPERATOR(pg_catalog.=) onn.oid AND oc.relname OPERATOR(pg_catalog.=) nc.relname
                                 AND oc.relkind IN ('r', 'p')
     WHERE nn.nspname IN ('agentmarket', 'agentmarket_private') AND nc.relkind IN ('r', 'p')
       AND dumped ? pg_catalog.format('%I.%I', onn.nspname, oc.relname);

    -- A trigger that leaves rows loaded by COPY alone (it tests
    -- current_query(), as grant_free_trial does) would take the carried rows
    -- for new activity: it is off while they come across.
    FOR t IN SELECT tg.tgrelid::pg_catalog.regclass AS rel, tg.tgname
               FROM pg_catalog.pg_trigger tg
               JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) tg.tgfoid
              WHERE tg.tgrelid IN (SELECT u.new_rel FROM upgrade_carry u) AND NOT tg.tgisinternal
                AND p.prosrc OPERATOR(pg_catalog.~) 'current_query\(\)'
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE TRIGGER %I', t.rel, t.tgname);
        quiet := quiet OPERATOR(pg_catalog.||) pg_catalog.format('ALTER TABLE %s ENABLE TRIGGER %I', t.rel, t.tgname);
    END LOOP;

    SELECT pg_catalog.array_agg(u.new_rel) INTO pending FROM upgrade_carry u;
    WHILE pg_catalog.cardinality(pending) OPERATOR(pg_catalog.>) 0 LOOP
        progress := false;
        FOR t IN SELECT u.* FROM upgrade_carry u
                  WHERE u.new_rel OPERATOR(pg_catalog.=) ANY (pending)
                    -- every table it references (but itself) is loaded
                    AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint f
                                     WHERE f.conrelid OPERATOR(pg_catalog.=) u.new_rel AND f.contype OPERATOR(pg_catalog.=) 'f'
                                       AND f.confrelid OPERATOR(pg_catalog.<>) u.new_rel
                                       AND f.confrelid OPERATOR(pg_catalog.=) ANY (pending))
                  ORDER BY u.name
        LOOP
            IF by_hand ? t.name THEN
                EXECUTE pg_catalog.format('INSERT INTO %s OVERRIDING SYSTEM VALUE %s', t.new_rel::pg_catalog.regclass,
                                          by_hand OPERATOR(pg_catalog.->>) t.name);
            ELSE
                -- The columns both versions have (generated ones are computed).
                SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
                  FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid OPERATOR(pg_catalog.=) t.new_rel AND a.attnum OPERATOR(pg_catalog.>) 0
                   AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) ''
                   AND EXISTS (SELECT FROM pg_catalog.pg_attribute o
                                WHERE o.attrelid OPERATOR(pg_catalog.=) t.old_rel AND o.attname OPERATOR(pg_catalog.=) a.attname
                                  AND NOT o.attisdropped AND o.attgenerated OPERATOR(pg_catalog.=) '');
                EXECUTE pg_catalog.format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s %s',
                                          t.new_rel::pg_catalog.regclass, cols, cols, t.old_rel::pg_catalog.regclass, t.cond);
            END IF;
            GET DIAGNOSTICS n = ROW_COUNT;
            UPDATE upgrade_carry u SET carried = n WHERE u.new_rel OPERATOR(pg_catalog.=) t.new_rel;
            pending := pg_catalog.array_remove(pending, t.new_rel);
            progress := true;
        END LOOP;
        IF NOT progress THEN
            RAISE EXCEPTION 'tables reference each other in a cycle: %',
                (SELECT pg_catalog.string_agg(u.name, ', ') FROM upgrade_carry u WHERE u.new_rel OPERATOR(pg_catalog.=) ANY (pending))
                USING ERRCODE = '55000', HINT = 'Move one of them by hand (agentmarket.upgrade_by_hand).';
        END IF;
    END LOOP;

    FOR i IN 1 .. COALESCE(pg_catalog.cardinality(quiet), 0) LOOP
        EXECUTE quiet[i];
    END LOOP;

    -- Sequences (registered or owned by a column) continue from the old ones.
    FOR t IN SELECT ns.oid AS new_seq, os.oid AS old_seq
               FROM pg_catalog.pg_class ns
               JOIN pg_catalog.pg_namespace nn ON nn.oid OPERATOR(pg_catalog.=) ns.relnamespace
               JOIN pg_catalog.pg_namespace onn ON onn.nspname OPERATOR(pg_catalog.=) ('upgrade_from_' OPERATOR(pg_catalog.||) nn.nspname)
               JOIN pg_catalog.pg_class os ON os.relnamespace OPERATOR(pg_catalog.=) onn.oid
                                          AND os.relname OPERATOR(pg_catalog.=) ns.relname AND os.relkind OPERATOR(pg_catalog.=) 'S'
              WHERE nn.nspname IN ('agentmarket', 'agentmarket_private') AND ns.relkind OPERATOR(pg_catalog.=) 'S'
    LOOP
        EXECUTE pg_catalog.format('SELECT pg_catalog.setval(%L, s.last_value, s.is_called) FROM %s s',
                                  t.new_seq::pg_catalog.regclass, t.old_seq::pg_catalog.regclass);
    END LOOP;
    -- (A temporary table made here is a member of the extension: it goes now.)
    ALTER EXTENSION agentmarket DROP TABLE upgrade_carry;
    DROP TABLE upgrade_carry;
END
$carry$;
