"""Shared machinery of the sidecar suites (test/suites/sidecar_e2e,
sidecar_chaos), the benchmark and the demo: a scratch database with the
extension, the Fly and Stripe stand-ins (test/standin/) on free ports, and
agentmarket-sidecar runs against them.  Runs inside scripts/with-cluster
(PGHOST/PGPORT/PGUSER set).  Not executable: test/run skips it."""

import json
import os
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SIDECAR = os.path.join(ROOT, "sidecar", "agentmarket-sidecar")
FLY_TOKEN = "fly-standin-token-0123456789"
STRIPE_KEY = "sk_test_standin0123456789abcdef"
ORG = "agentmarket-test"


class Failure(Exception):
    pass


class Checks:
    """Named assertions; prints each, counts failures."""

    def __init__(self, suite):
        self.suite = suite
        self.n = 0
        self.failed = []

    def ok(self, cond, what, detail=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, what))
        else:
            print("not ok %d - %s%s" % (self.n, what, "" if detail is None else "\n#   %s" % detail))
            self.failed.append(what)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, what):
        return self.ok(got == want, what, "got %r, want %r" % (got, want))

    def done(self):
        if self.failed:
            print("%s: %d of %d checks failed" % (self.suite, len(self.failed), self.n))
            return 1
        print("%s: all %d checks passed" % (self.suite, self.n))
        return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Database:
    """A scratch database with agentmarket; psql for statements."""

    def __init__(self, name):
        self.name = "%s_%d" % (name, os.getpid())
        admin = dict(os.environ, PGDATABASE="postgres", PGOPTIONS="-c client_min_messages=warning")
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                        'DROP DATABASE IF EXISTS "%s"' % self.name, "-c",
                        'CREATE DATABASE "%s"' % self.name], env=admin, check=True)
        self.env = dict(os.environ, PGDATABASE=self.name,
                        PGOPTIONS="-c client_min_messages=warning")
        self.sql("CREATE EXTENSION agentmarket CASCADE")

    def sql(self, query, *args):
        """Run query (psql variables :'a1', :'a2'... bound to args); rows as lists."""
        cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1"]
        for i, a in enumerate(args, 1):
            cmd += ["-v", "a%d=%s" % (i, a)]
        p = subprocess.run(cmd, input=query, env=self.env, capture_output=True, text=True)
        if p.returncode != 0:
            raise Failure("psql failed: %s\n%s" % (p.stderr.strip(), query))
        return [line.split("\t") for line in p.stdout.splitlines() if line != ""]

    def value(self, query, *args):
        rows = self.sql(query, *args)
        return rows[0][0] if rows else None

    def drop(self):
        admin = dict(os.environ, PGDATABASE="postgres", PGOPTIONS="-c client_min_messages=warning")
        subprocess.run(["psql", "-X", "-q", "-c", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.name],
                       env=admin, capture_output=True)


class ExistingDatabase(Database):
    """An existing database (the demo's), used as it is and never dropped."""

    def __init__(self, name):
        self.name = name
        self.env = dict(os.environ, PGDATABASE=name, PGOPTIONS="-c client_min_messages=warning")

    def drop(self):
        pass


class Standin:
    """One stand-in server process."""

    def __init__(self, kind, latency_ms=0, extra=()):
        self.kind = kind
        self.port = free_port()
        script = os.path.join(ROOT, "test", "standin", "%s_server.py" % kind)
        auth = ["--token", FLY_TOKEN] if kind == "fly" else ["--api-key", STRIPE_KEY]
        self.log = open(os.path.join("/tmp", "standin-%s-%d.log" % (kind, os.getpid())), "w")
        self.proc = subprocess.Popen(["/usr/bin/python3", script, "--port", str(self.port),
                                      "--latency-ms", str(latency_ms)] + auth + list(extra),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.url = "http://127.0.0.1:%d" % self.port
        deadline = time.time() + 15
        while True:
            try:
                if self.get("/_standin/health") is not None:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise Failure("%s stand-in did not start (see %s)" % (kind, self.log.name))
            time.sleep(0.1)

    def call(self, method, path, body=None, headers=None, form=None):
        data = None
        h = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif form is not None:
            data = form.encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
        return json.loads(raw) if raw else None

    def get(self, path):
        return self.call("GET", path)

    def faults(self, rules):
        return self.call("POST", "/_standin/faults", {"rules": rules})

    def clear_faults(self):
        return self.call("DELETE", "/_standin/faults")

    def requests(self, path=None, method=None):
        q = []
        if path:
            q.append("path=" + urllib.request.quote(path))
        if method:
            q.append("method=" + method)
        return self.get("/_standin/requests" + ("?" + "&".join(q) if q else ""))

    def state(self):
        return self.get("/_standin/state")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def sidecar_env(db, fly, stripe, **extra):
    env = dict(db.env)
    env.pop("PGOPTIONS", None)
    env.update(FLY_API_TOKEN=FLY_TOKEN, FLY_API_BASE_URL=fly.url, FLY_ORG_SLUG=ORG,
               STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_API_BASE_URL=stripe.url)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_once(db, fly, stripe, args=(), timeout=120, **extra):
    """agentmarket-sidecar --once; returns (exit status, log lines as dicts, raw stderr)."""
    p = subprocess.run([SIDECAR, "--once"] + list(args), env=sidecar_env(db, fly, stripe, **extra),
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, parse_log(p.stderr), p.stderr


def start_daemon(db, fly, stripe, args=(), log_path=None, **extra):
    out = open(log_path, "a") if log_path else subprocess.DEVNULL
    return subprocess.Popen([SIDECAR] + list(args), env=sidecar_env(db, fly, stripe, **extra),
                            stdout=out, stderr=out)


def parse_log(text):
    lines = []
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            lines.append({"unparsable": raw})
    return lines


def seed_marketplace(db, instances, region="iad", memory_mb=512, image="registry.fly.io/standin-agent:1.0"):
    """A creator, one agent, and `instances` users each with a hired instance
    (created as hire_agent does it) whose provision job is enqueued.
    Returns the instance ids in order."""
    db.sql("""
INSERT INTO agentmarket.users (id, email, role) VALUES ('00000000-0000-4000-8000-00000000c0de', 'creator@sidecar.test', 'creator');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category, github_repo_url,
                                docker_image, fly_machine_size, fly_machine_memory_mb, status)
VALUES ('00000000-0000-4000-8000-00000000a9e7', '00000000-0000-4000-8000-00000000c0de', 'sidecar-agent',
        'Sidecar agent', 'runs on Fly', 'An agent for the sidecar tests.', 'productivity',
        'https://github.com/example/sidecar-agent', :'a1', 'shared-cpu-2x', :'a2'::integer, 'published');
""", image, memory_mb)
    return hire(db, instances, region)


def hire(db, count, region="iad", offset=0):
    rows = db.sql("""
WITH u AS (
  INSERT INTO agentmarket.users (email)
  SELECT 'user' || g || '@sidecar.test' FROM generate_series(:'a1'::integer + 1, :'a1'::integer + :'a2'::integer) g
  RETURNING id, email
), i AS (
  INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, region)
  SELECT x.id, x.user_id, '00000000-0000-4000-8000-00000000a9e7', agentmarket_private.fly_app_name(x.id), '', :'a3'
    FROM (SELECT gen_random_uuid() AS id, u.id AS user_id FROM u) x
  RETURNING id, user_id
)
SELECT i.id, agentmarket_private.enqueue_instance_job(i.id, 'fly.provision_instance')
  FROM i JOIN u ON u.id = i.user_id ORDER BY u.email;
""", offset, count, region)
    return [r[0] for r in rows]


def fresh_logdir(suite):
    """A new, empty directory for a suite's daemon logs.  The logs are opened
    for appending, so a directory named after the process id would, once ids
    wrap around, hand this run the lines of an earlier run with the same id."""
    return tempfile.mkdtemp(prefix="%s-" % suite)


def drop_logdir(logdir, checks):
    """Remove a suite's log directory, unless a check failed (kept to read)."""
    if checks.failed:
        print("# daemon logs kept in %s" % logdir)
    else:
        shutil.rmtree(logdir, ignore_errors=True)


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cluster_ctl(action, mode=None):
    """Stop, start or restart the throwaway cluster (pg_virtualenv's 15/regress)."""
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", os.environ.get("PGVERSION", "15"), "regress", action]
    if mode:
        cmd += ["-m", mode]
    subprocess.run(cmd, check=True, capture_output=True)


def http_get(url, timeout=5):
    """(status, body text) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def read_log(path):
    with open(path) as f:
        return parse_log(f.read())
