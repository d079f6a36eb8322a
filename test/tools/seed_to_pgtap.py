#!/usr/bin/env python3
"""Turn the DDL of shared/seed/data-model.md into the expectations of
sql/data_model.sql: one row per seed column (type, nullability, default),
constraint and index, written as PostgreSQL's catalog prints them.

    test/tools/seed_to_pgtap.py ../shared/seed/data-model.md > /tmp/expect.sql

The output is pasted into sql/data_model.sql by hand; the test then checks
the installed catalog against these rows, so a drift on either side fails.
"""
import re
import sys

TYPES = {
    "UUID": "uuid", "TEXT": "text", "TIMESTAMPTZ": "timestamp with time zone",
    "INTEGER": "integer", "JSONB": "jsonb", "BOOLEAN": "boolean", "TEXT[]": "text[]",
}


def pg_type(t):
    m = re.fullmatch(r"NUMERIC\((\d+),(\d+)\)", t)
    if m:
        return f"numeric({m.group(1)},{m.group(2)})"
    return TYPES[t]


def pg_default(expr, typ):
    if expr is None:
        return None
    if expr in ("now()", "gen_random_uuid()", "false", "true"):
        return expr
    if re.fullmatch(r"-?\d+(\.\d+)?", expr):
        return expr
    m = re.fullmatch(r"'(.*)'", expr)
    if m:
        return f"'{m.group(1)}'::{typ}"
    raise ValueError(expr)


def q(s):
    return "NULL" if s is None else "'" + s.replace("'", "''") + "'"


def main(path):
    text = open(path).read()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    columns, constraints, indexes = [], [], []
    for block in blocks:
        block = re.sub(r"--[^\n]*", "", block)
        for m in re.finditer(r"CREATE TABLE (\w+) \((.*?)\n\);", block, re.S):
            table, body = m.group(1), m.group(2)
            for line in [l.strip().rstrip(",") for l in body.split("\n")]:
                if not line:
                    continue
                u = re.fullmatch(r"UNIQUE\s*\(([^)]*)\)", line)
                if u:
                    cols = ", ".join(c.strip() for c in u.group(1).split(","))
                    constraints.append((table, f"UNIQUE ({cols})"))
                    continue
                cm = re.match(r"(\w+) (NUMERIC\(\d+,\d+\)|[A-Z]+(?:\[\])?)(.*)$", line)
                col, typ, rest = cm.group(1), pg_type(cm.group(2)), cm.group(3)
                dm = re.search(r"DEFAULT ('[^']*'|[\w.()-]+)", rest)
                default = pg_default(dm.group(1) if dm else None, typ)
                not_null = "NOT NULL" in rest or "PRIMARY KEY" in rest
                columns.append((table, col, typ, not_null, default))
                if "PRIMARY KEY" in rest:
                    constraints.append((table, f"PRIMARY KEY ({col})"))
                if re.search(r"\bUNIQUE\b", rest):
                    constraints.append((table, f"UNIQUE ({col})"))
                fk = re.search(r"REFERENCES (\w+)\((\w+)\)( ON DELETE CASCADE)?", rest)
                if fk:
                    constraints.append((table, f"FOREIGN KEY ({col}) REFERENCES agentmarket.{fk.group(1)}({fk.group(2)})"
                                        + (fk.group(3) or "")))
                ck = re.search(r"CHECK \((\w+) BETWEEN (\d+) AND (\d+)\)", rest)
                if ck:
                    c, lo, hi = ck.groups()
                    constraints.append((table, f"CHECK ((({c} >= {lo}) AND ({c} <= {hi})))"))
        for m in re.finditer(r"CREATE INDEX (\w+) ON (\w+)(?: USING (\w+))?\((.*?)\);", block, re.S):
            name, table, method, cols = m.group(1), m.group(2), m.group(3) or "btree", m.group(4).strip()
            if method == "gin":
                # to_tsvector('english', a || ' ' || b || ' ' || c) as ruleutils prints it
                parts = re.search(r"to_tsvector\('(\w+)', (.*)\)", cols, re.S)
                terms = [t.strip() for t in parts.group(2).split("||")]
                expr = terms[0]
                for t in terms[1:]:
                    t = "' '::text" if t == "' '" else t
                    expr = f"({expr} || {t})"
                cols = f"to_tsvector('{parts.group(1)}'::regconfig, {expr})"
            indexes.append((name, f"CREATE INDEX {name} ON agentmarket.{table} USING {method} ({cols})"))

    print("-- columns: (table, column, type, not null, default)")
    print(",\n".join(f"  ({q(t)}, {q(c)}, {q(ty)}, {str(nn).lower()}, {q(d)})" for t, c, ty, nn, d in columns))
    print("-- constraints: (table, definition)")
    print(",\n".join(f"  ({q(t)}, {q(d)})" for t, d in constraints))
    print("-- indexes: (name, definition)")
    print(",\n".join(f"  ({q(n)}, {q(d)})" for n, d in indexes))


if __name__ == "__main__":
    main(sys.argv[1])
