#!/usr/bin/python3
"""Stand-in for the Fly.io Machines API (https://api.machines.dev/v1/...).

  /usr/bin/python3 test/standin/fly_server.py --port P --token T [--latency-ms N]
      [--transition-ms N] [--region R] [--seed S] [--log-limit N] [--port-file F]

Apps, volumes and machines live in memory. Request bodies are checked against
specs/fly-machines-openapi.yml (unknown fields and wrong types -> 400). Machines go
through Fly's states (created, starting, started, stopping, stopped, suspending,
suspended, destroying, destroyed), one step every --transition-ms."""

import asyncio
import hashlib
import json
import os
import random
import re
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spec_schema import check_json, load_fly_spec, path_template_regex  # noqa: E402
from standin_http import REASONS, StandinServer, base_args, json_response, Response, serve  # noqa: E402

APP_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
VOLUME_NAME = re.compile(r"^[a-z0-9_]{1,30}$")
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
WAIT_STATES = {"started", "stopped", "suspended", "destroyed", "failed", "settled"}
SETTLED = {"created", "started", "stopped", "suspended", "destroyed", "failed"}
RUNNING = {"starting", "started", "stopping", "suspending", "replacing", "destroying"}
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def ulid():
    """A 26-character ULID-like id (Fly's instance and event ids)."""
    ms = int(time.time() * 1000)
    head = ""
    for _ in range(10):
        head = CROCKFORD[ms & 31] + head
        ms >>= 5
    return head + "".join(random.choice(CROCKFORD) for _ in range(16))


def ferr(status, message, code=None):
    """Fly's error body {"error": ..., "status": ...}."""
    body = {"error": message}
    if code:
        body["status"] = code
    return json_response(status, body)


class Machine:
    def __init__(self, app, mid, name, region, config, skip_launch):
        self.app = app
        self.id = mid
        self.name = name
        self.region = region
        self.config = config
        self.skip_launch = skip_launch
        self.state = "created"
        self.instance_id = ulid()
        self.created_at = now_iso()
        self.updated_at = self.created_at
        self.events = []
        self.updates = 0  # config updates (POST /machines/{id}), for tests
        self.timer = None
        self.waiters = []
        self.private_ip = "fdaa:0:%x:a7b:%x:%x:%x:2" % (random.getrandbits(16),
                                                       random.getrandbits(16),
                                                       random.getrandbits(16),
                                                       random.getrandbits(16))

    def to_json(self, summary=False):
        d = {"id": self.id, "name": self.name, "state": self.state, "region": self.region,
             "instance_id": self.instance_id, "private_ip": self.private_ip,
             "created_at": self.created_at, "updated_at": self.updated_at,
             "image_ref": _image_ref(self.config.get("image", "")),
             "host_status": "ok", "cordoned": False}
        if not summary:
            d["config"] = self.config
            d["events"] = list(reversed(self.events[-10:]))
            d["checks"] = []
        else:
            d["config"] = {"metadata": self.config.get("metadata", {})}
        return d


def _image_ref(image):
    """Fly's image_ref for an image name like registry.fly.io/app:tag."""
    first = image.split("/")[0]
    if "/" in image and ("." in first or ":" in first):
        reg, rest = first, image[len(first) + 1:]
    else:
        reg, rest = "docker.io", image
    repo, _, tag = rest.partition(":")
    return {"registry": reg, "repository": repo, "tag": tag or "latest",
            "digest": "sha256:" + secrets.token_hex(32), "labels": {}}


class FlyServer(StandinServer):
    name = "fly"

    def __init__(self, args):
        super().__init__(args)
        self.spec = load_fly_spec()
        self.step = max(0.0, args.transition_ms / 1000.0)
        self.routes = []
        self.spec_routes = []
        for tmpl, ops in self.spec["paths"].items():
            self.spec_routes.append((path_template_regex("/v1" + tmpl),
                                     {m.upper(): op for m, op in ops.items() if m != "parameters"}))
        r = self.route
        r("GET", "/v1/apps", self.list_apps)
        r("POST", "/v1/apps", self.create_app)
        r("GET", "/v1/apps/{app_name}", self.get_app)
        r("DELETE", "/v1/apps/{app_name}", self.delete_app)
        r("GET", "/v1/apps/{app_name}/volumes", self.list_volumes)
        r("POST", "/v1/apps/{app_name}/volumes", self.create_volume)
        r("GET", "/v1/apps/{app_name}/volumes/{volume_id}", self.get_volume)
        r("DELETE", "/v1/apps/{app_name}/volumes/{volume_id}", self.delete_volume)
        r("GET", "/v1/apps/{app_name}/machines", self.list_machines)
        r("POST", "/v1/apps/{app_name}/machines", self.create_machine)
        r("GET", "/v1/apps/{app_name}/machines/{machine_id}", self.get_machine)
        r("POST", "/v1/apps/{app_name}/machines/{machine_id}", self.update_machine)
        r("GET", "/v1/apps/{app_name}/secrets", self.list_secrets)
        r("POST", "/v1/apps/{app_name}/secrets", self.update_secrets)
        r("DELETE", "/v1/apps/{app_name}/machines/{machine_id}", self.delete_machine)
        r("POST", "/v1/apps/{app_name}/machines/{machine_id}/start", self.start_machine)
        r("POST", "/v1/apps/{app_name}/machines/{machine_id}/stop", self.stop_machine)
        r("POST", "/v1/apps/{app_name}/machines/{machine_id}/suspend", self.suspend_machine)
        r("POST", "/v1/apps/{app_name}/machines/{machine_id}/restart", self.restart_machine)
        r("GET", "/v1/apps/{app_name}/machines/{machine_id}/wait", self.wait_machine)
        self.reset_state()

    def route(self, method, tmpl, fn):
        op = self.spec["paths"][tmpl[len("/v1"):]][method.lower()]
        schema = None
        rb = op.get("requestBody")
        if rb:
            schema = rb["content"]["application/json"]["schema"]
        self.routes.append((method, path_template_regex(tmpl), fn, schema))

    def reset_state(self):
        for app in getattr(self, "apps", {}).values():
            for m in app["machines"].values():
                if m.timer:
                    m.timer.cancel()
                for _, fut in m.waiters:
                    if not fut.done():
                        fut.cancel()
        self.apps = {}

    def state_json(self):
        apps, machines, volumes = [], [], []
        for app in self.apps.values():
            apps.append(self.app_json(app))
            for m in app["machines"].values():
                d = m.to_json()
                d["app"] = app["name"]
                d["metadata"] = m.config.get("metadata", {})
                d["env"] = m.config.get("env", {})
                d["updates"] = m.updates
                machines.append(d)
            for v in app["volumes"].values():
                d = dict(v)
                d["app"] = app["name"]
                volumes.append(d)
        app_secrets = {a["name"]: {"values": dict(a["app_secrets"]), "version": a["secrets_version"]}
                       for a in self.apps.values()}
        return {"apps": apps, "machines": machines, "volumes": volumes, "app_secrets": app_secrets}

    def parsed_body(self, req):
        if not req.body:
            return None
        return json.loads(req.body)

    def error_body(self, status, fault):
        if status == 429:
            body = {"error": "rate limit exceeded"}
        elif status >= 500:
            body = {"error": "internal error (injected by the stand-in)", "status": "unknown"}
        else:
            body = {"error": REASONS.get(status, "error").lower()}
        if isinstance(fault.body, dict):
            body.update(fault.body)
        return body

    # ---------------------------------------------------------------- dispatch
    async def api(self, req, fault):
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme not in ("Bearer", "FlyV1") or token.strip() != self.args.token:
            return ferr(401, "You must be authenticated to view this.", "unauthenticated")
        await self.pause(fault)
        if fault is not None and fault.action == "status":
            return json_response(fault.status, self.error_body(fault.status, fault),
                                 self.fault_headers(fault))
        allowed = []
        for method, rx, fn, schema in self.routes:
            m = rx.match(req.path)
            if not m:
                continue
            if method != req.method:
                allowed.append(method)
                continue
            body = None
            if schema is not None:
                try:
                    body = json.loads(req.body) if req.body.strip() else {}
                except ValueError as e:
                    return ferr(400, "invalid character in JSON body: %s" % e, "invalid_argument")
                if not isinstance(body, dict):
                    return ferr(400, "json: cannot unmarshal %s into Go value of type object"
                                % type(body).__name__, "invalid_argument")
                problem = check_json(self.spec, body, schema, "")
                if problem:
                    return ferr(400, problem, "invalid_argument")
            return await fn(req, body, **m.groupdict())
        if allowed:
            return Response(405, {"error": "method not allowed"}, [("Allow", ", ".join(allowed))])
        for rx, ops in self.spec_routes:
            if rx.match(req.path) and req.method in ops:
                return ferr(404, "the stand-in does not implement %s %s" % (req.method, req.path),
                            "not_found")
        return ferr(404, "404 page not found", "not_found")

    # ---------------------------------------------------------------- apps
    def app_json(self, app):
        live = [m for m in app["machines"].values() if m.state != "destroyed"]
        return {"id": app["id"], "name": app["name"], "internal_numeric_id": app["numeric_id"],
                "machine_count": len(live), "volume_count": len(app["volumes"]),
                "network": app["network"], "status": "deployed" if live else "pending",
                "organization": {"name": app["org_slug"], "slug": app["org_slug"],
                                 "internal_numeric_id": 1}}

    def find_app(self, name):
        return self.apps.get(name)

    async def list_apps(self, req, body):
        org = req.q1("org_slug")
        if not org:
            return ferr(400, "org_slug is required", "invalid_argument")
        apps = [self.app_json(a) for a in self.apps.values() if a["org_slug"] == org]
        return json_response(200, {"apps": apps, "total_apps": len(apps)})

    async def create_app(self, req, body):
        name = body.get("name")
        org = body.get("org_slug")
        if not name:
            return ferr(400, "app name is required", "invalid_argument")
        if not org:
            return ferr(400, "org_slug is required", "invalid_argument")
        if not APP_NAME.match(name):
            return ferr(400, "invalid app name %r: use lowercase letters, digits and dashes, "
                        "at most 63 characters" % name, "invalid_argument")
        if name in self.apps:
            return ferr(422, "app name %s is already taken" % name, "name_taken")
        self.apps[name] = {"id": secrets.token_hex(8), "name": name, "org_slug": org,
                           "numeric_id": random.randint(100000, 999999),
                           "network": body.get("network") or "default",
                           "created_at": now_iso(), "machines": {}, "volumes": {},
                           "app_secrets": {}, "secrets_version": 0, "secrets_updated_at": {}}
        return Response(201, None)

    async def get_app(self, req, body, app_name):
        app = self.find_app(app_name)
        if app is None:
            return ferr(404, "app not found", "not_found")
        return json_response(200, self.app_json(app))

    async def delete_app(self, req, body, app_name):
        app = self.apps.pop(app_name, None)
        if app is None:
            return ferr(404, "app not found", "not_found")
        for m in app["machines"].values():
            if m.state != "destroyed":
                self.set_state(m, "destroyed")
        return Response(202, None)

    # ---------------------------------------------------------------- volumes
    async def list_volumes(self, req, body, app_name):
        app = self.find_app(app_name)
        if app is None:
            return ferr(404, "app not found", "not_found")
        return json_response(200, [v for v in app["volumes"].values()])

    async def create_volume(self, req, body, app_name):
        app = self.find_app(app_name)
        if app is None:
            return ferr(404, "app not found", "not_found")
        name = body.get("name")
        if not name or not VOLUME_NAME.match(name):
            return ferr(400, "volume name is required: lowercase letters, digits and "
                        "underscores, at most 30 characters", "invalid_argument")
        if not body.get("region"):
            return ferr(400, "region is required", "invalid_argument")
        size = body.get("size_gb", 1)
        if size < 1 or size > 500:
            return ferr(400, "size_gb must be between 1 and 500", "invalid_argument")
        vid = "vol_" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                               for _ in range(16))
        vol = {"id": vid, "name": name, "region": body["region"], "size_gb": size,
               "state": "created", "zone": secrets.token_hex(2), "encrypted": body.get("encrypted", True),
               "fstype": body.get("fstype", "ext4"), "created_at": now_iso(),
               "attached_machine_id": None, "attached_alloc_id": None,
               "auto_backup_enabled": body.get("auto_backup_enabled", True),
               "snapshot_retention": body.get("snapshot_retention", 5), "host_status": "ok",
               "block_size": 4096, "blocks": size * 262144, "blocks_free": size * 262144,
               "blocks_avail": size * 262144, "bytes_total": size << 30, "bytes_used": 0}
        app["volumes"][vid] = vol
        return json_response(200, vol)

    async def get_volume(self, req, body, app_name, volume_id):
        app = self.find_app(app_name)
        if app is None:
            return ferr(404, "app not found", "not_found")
        vol = app["volumes"].get(volume_id)
        if vol is None:
            return ferr(404, "volume not found", "not_found")
        return json_response(200, vol)

    async def delete_volume(self, req, body, app_name, volume_id):
        app = self.find_app(app_name)
        if app is None:
            return ferr(404, "app not found", "not_found")
        vol = app["volumes"].get(volume_id)
        if vol is None:
            return ferr(404, "volume not found", "not_found")
        if vol["attached_machine_id"]:
            return ferr(412, "failed_precondition: volume %s is attached to machine %s"
                        % (volume_id, vol["attached_machine_id"]), "failed_precondition")
        del app["volumes"][volume_id]
        vol = dict(vol, state="destroyed")
        return json_response(200, vol)

    # ---------------------------------------------------------------- machines
    def find_machine(self, app_name, machine_id, live=True):
        app = self.find_app(app_name)
        if app is None:
            return None, ferr(404, "app not found", "not_found")
        m = app["machines"].get(machine_id)
        if m is None or (live and m.state == "destroyed"):
            return None, ferr(404, "machine not found", "not_found")
        return m, None

    def set_state(self, m, state):
        """Move a machine to a state, record an event and wake waiters."""
        m.state = state
        m.updated_at = now_iso()
        m.events.append({"id": ulid(), "type": state, "status": state, "source": "flyd",
                         "timestamp": int(time.time() * 1000)})
        if state == "destroyed":
            if m.timer:
                m.timer.cancel()
                m.timer = None
            app = self.apps.get(m.app)
            for vol in (app["volumes"].values() if app else []):
                if vol["attached_machine_id"] == m.id:
                    vol["attached_machine_id"] = None
        for states, fut in list(m.waiters):
            if not fut.done() and (state in states or
                                   ("settled" in states and state in SETTLED) or
                                   state == "destroyed"):
                fut.set_result(state)

    def chain(self, m, states):
        """The first state now, then one state every --transition-ms."""
        if m.timer:
            m.timer.cancel()
            m.timer = None
        self.set_state(m, states[0])
        rest = states[1:]
        if rest:
            def step():
                m.timer = None
                if m.state != "destroyed":
                    self.chain(m, rest)
            m.timer = asyncio.get_running_loop().call_later(self.step, step)

    async def list_machines(self, req, body, app_name):
        app = self.find_app(app_name)
        if app is None:
            return ferr(404, "app not found", "not_found")
        inc_deleted = req.q1("include_deleted") == "true"
        summary = req.q1("summary") == "true"
        region = req.q1("region")
        states = set(s for v in req.query.get("state", []) for s in v.split(",") if s)
        out = []
        for m in app["machines"].values():
            if m.state == "destroyed" and not inc_deleted:
                continue
            if region and m.region != region:
                continue
            if states and m.state not in states:
                continue
            out.append(m.to_json(summary))
        return json_response(200, out)

    async def create_machine(self, req, body, app_name):
        app = self.find_app(app_name)
        if app is None:
            return ferr(404, "app not found", "not_found")
        config = body.get("config")
        if not isinstance(config, dict):
            return ferr(400, "config is required", "invalid_argument")
        if not config.get("image"):
            return ferr(400, "invalid config.image, must be set", "invalid_argument")
        config = json.loads(json.dumps(config))
        guest = config.setdefault("guest", {})
        guest.setdefault("cpu_kind", "shared")
        guest.setdefault("cpus", 1)
        guest.setdefault("memory_mb", 256)
        config.setdefault("metadata", {})
        region = body.get("region") or self.args.region
        mounts = config.get("mounts") or []
        vols = []
        for i, mt in enumerate(mounts):
            vid = mt.get("volume")
            if not vid:
                return ferr(400, "mounts[%d].volume is required" % i, "invalid_argument")
            vol = app["volumes"].get(vid)
            if vol is None:
                return ferr(404, "volume %s not found" % vid, "not_found")
            if vol["attached_machine_id"]:
                return ferr(412, "failed_precondition: volume %s is already in use by machine %s"
                            % (vid, vol["attached_machine_id"]), "failed_precondition")
            if not body.get("region"):
                region = vol["region"]
            elif vol["region"] != region:
                return ferr(400, "volume %s is in region %s, not %s" % (vid, vol["region"], region),
                            "invalid_argument")
            if not mt.get("path"):
                return ferr(400, "mounts[%d].path is required" % i, "invalid_argument")
            vols.append(vol)
        mid = secrets.token_hex(7)
        name = body.get("name") or "machine-%s" % secrets.token_hex(3)
        m = Machine(app_name, mid, name, region, config, bool(body.get("skip_launch")))
        app["machines"][mid] = m
        for vol in vols:
            vol["attached_machine_id"] = mid
            vol["attached_alloc_id"] = m.instance_id
        if m.skip_launch:
            self.chain(m, ["created"])
        else:
            self.chain(m, ["created", "starting", "started"])
        return json_response(200, m.to_json())

    async def get_machine(self, req, body, app_name, machine_id):
        m, err = self.find_machine(app_name, machine_id, live=False)
        if err:
            return err
        return json_response(200, m.to_json())

    async def update_machine(self, req, body, app_name, machine_id):
        """POST /apps/{app}/machines/{id}: replace the config (a new version);
        current_version, when given, must be the machine's (else 412)."""
        m, err = self.find_machine(app_name, machine_id)
        if err:
            return err
        if m.state in ("destroying", "destroyed"):
            return ferr(412, "failed_precondition: unable to update machine in state '%s'" % m.state,
                        "failed_precondition")
        cur = body.get("current_version")
        if cur and cur != m.instance_id:
            return ferr(412, "failed_precondition: machine version %s is not the current version %s"
                        % (cur, m.instance_id), "failed_precondition")
        app = self.find_app(app_name)
        msv = body.get("min_secrets_version")
        if msv is not None and msv > app["secrets_version"]:
            return ferr(400, "min_secrets_version %s is newer than the app's secrets (version %s)"
                        % (msv, app["secrets_version"]), "invalid_argument")
        config = body.get("config")
        if not isinstance(config, dict) or not config.get("image"):
            return ferr(400, "invalid config.image, must be set", "invalid_argument")
        config = json.loads(json.dumps(config))
        config.setdefault("metadata", {})
        env = config.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            return ferr(400, "config.env must map names to strings", "invalid_argument")
        m.config = config
        m.instance_id = ulid()
        m.updates += 1
        m.updated_at = now_iso()
        m.events.append({"type": "update", "status": m.state, "source": "user",
                         "timestamp": int(time.time() * 1000)})
        return json_response(200, m.to_json())

    # ---------------------------------------------------------------- secrets
    def secret_json(self, app, name, show):
        value = app["app_secrets"][name]
        d = {"name": name, "digest": hashlib.sha256(value.encode()).hexdigest()[:16],
             "updated_at": app["secrets_updated_at"][name]}
        if show:
            d["value"] = value
        return d

    async def list_secrets(self, req, body, app_name):
        app = self.find_app(app_name)
        if app is None:
            return ferr(404, "app not found", "not_found")
        show = (req.q1("show_secrets") or "").lower() == "true"
        return json_response(200, {"secrets": [self.secret_json(app, n, show)
                                               for n in sorted(app["app_secrets"])]})

    async def update_secrets(self, req, body, app_name):
        """POST /apps/{app}/secrets {"values": {name: value or null}}: set or
        unset, one new secrets version for the whole update."""
        app = self.find_app(app_name)
        if app is None:
            return ferr(404, "app not found", "not_found")
        values = body.get("values")
        if not isinstance(values, dict) or not values:
            return ferr(400, "values is required", "invalid_argument")
        for name, value in values.items():
            if not SECRET_NAME.match(name):
                return ferr(400, "invalid secret name %r" % name, "invalid_argument")
            if value is not None and not isinstance(value, str):
                return ferr(400, "secret %s: value must be a string or null" % name, "invalid_argument")
        for name, value in values.items():
            if value is None:
                app["app_secrets"].pop(name, None)
                app["secrets_updated_at"].pop(name, None)
            else:
                app["app_secrets"][name] = value
                app["secrets_updated_at"][name] = now_iso()
        app["secrets_version"] += 1
        return json_response(200, {"secrets": [self.secret_json(app, n, False) for n in sorted(app["app_secrets"])],
                                   "version": app["secrets_version"], "Version": app["secrets_version"]})

    async def start_machine(self, req, body, app_name, machine_id):
        m, err = self.find_machine(app_name, machine_id)
        if err:
            return err
        prev = m.state
        if prev == "destroying":
            return ferr(412, "failed_precondition: unable to start machine from current state: "
                        "'destroying'", "failed_precondition")
        if prev in ("created", "stopped", "suspended", "failed"):
            self.chain(m, ["starting", "started"])
        elif prev in ("stopping", "suspending"):
            return ferr(412, "failed_precondition: unable to start machine from current state: "
                        "'%s'" % prev, "failed_precondition")
        return json_response(200, {"previous_state": prev, "migrated": False, "new_host": ""})

    async def stop_machine(self, req, body, app_name, machine_id):
        m, err = self.find_machine(app_name, machine_id)
        if err:
            return err
        if m.state in ("started", "starting"):
            self.chain(m, ["stopping", "stopped"])
        elif m.state == "suspended":
            self.chain(m, ["stopped"])
        elif m.state == "destroying":
            return ferr(412, "failed_precondition: unable to stop machine from current state: "
                        "'destroying'", "failed_precondition")
        return json_response(200, {"ok": True})

    async def restart_machine(self, req, body, app_name, machine_id):
        m, err = self.find_machine(app_name, machine_id)
        if err:
            return err
        if m.state in ("started", "starting"):
            self.chain(m, ["stopping", "stopped", "starting", "started"])
        elif m.state in ("stopped", "suspended", "created"):
            self.chain(m, ["starting", "started"])
        else:
            return ferr(412, "failed_precondition: unable to restart machine from current state: "
                        "'%s'" % m.state, "failed_precondition")
        return json_response(200, {"ok": True})

    async def suspend_machine(self, req, body, app_name, machine_id):
        m, err = self.find_machine(app_name, machine_id)
        if err:
            return err
        mem = m.config.get("guest", {}).get("memory_mb", 256)
        if mem > 2048:
            return ferr(412, "failed_precondition: machines with more than 2 GB of memory "
                        "cannot be suspended", "failed_precondition")
        if m.state == "started":
            self.chain(m, ["suspending", "suspended"])
        elif m.state not in ("suspending", "suspended"):
            return ferr(412, "failed_precondition: unable to suspend machine from current "
                        "state: '%s'" % m.state, "failed_precondition")
        return json_response(200, {"ok": True})

    async def delete_machine(self, req, body, app_name, machine_id):
        m, err = self.find_machine(app_name, machine_id)
        if err:
            return err
        force = req.q1("force") == "true"
        if m.state == "destroying":
            return json_response(200, {"ok": True})
        if not force and m.state in RUNNING:
            return ferr(412, "failed_precondition: unable to destroy machine, not currently "
                        "stopped or suspended (state %s); use force=true" % m.state,
                        "failed_precondition")
        self.chain(m, ["destroying", "destroyed"])
        return json_response(200, {"ok": True})

    async def wait_machine(self, req, body, app_name, machine_id):
        m, err = self.find_machine(app_name, machine_id, live=False)
        if err:
            return err
        states = set(s for v in req.query.get("state", ["started"]) for s in v.split(",") if s)
        bad = states - WAIT_STATES
        if bad or not states:
            return ferr(400, "invalid state %s: must be one of %s"
                        % (",".join(sorted(bad)), ", ".join(sorted(WAIT_STATES))),
                        "invalid_argument")
        t = req.q1("timeout", "60")
        try:
            timeout = int(t)
        except ValueError:
            return ferr(400, "invalid timeout %r: must be an integer number of seconds" % t,
                        "invalid_argument")
        timeout = max(1, min(timeout, 60))

        def ok(state):
            ev = m.events[-1]["id"] if m.events else ""
            return json_response(200, {"ok": True, "state": state, "event_id": ev,
                                       "version": m.instance_id})

        def reached(state):
            return state in states or ("settled" in states and state in SETTLED)

        if reached(m.state):
            return ok(m.state)
        if m.state == "destroyed":
            return ferr(412, "failed_precondition: machine is destroyed", "failed_precondition")
        fut = asyncio.get_running_loop().create_future()
        entry = (states, fut)
        m.waiters.append(entry)
        try:
            state = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return ferr(408, "deadline_exceeded: machine failed to reach desired state, %s, "
                        "current state: %s" % (",".join(sorted(states)), m.state),
                        "deadline_exceeded")
        except asyncio.CancelledError:
            return ferr(404, "machine not found", "not_found")
        finally:
            if entry in m.waiters:
                m.waiters.remove(entry)
        if not reached(state):
            return ferr(412, "failed_precondition: machine is destroyed", "failed_precondition")
        return ok(state)


def main():
    p = base_args("Fly.io Machines API stand-in")
    p.add_argument("--token", required=True, help="the accepted API token")
    p.add_argument("--transition-ms", type=float, default=50.0,
                   help="time per machine state step (default 50)")
    p.add_argument("--region", default="iad", help="default region of new machines")
    serve(FlyServer(p.parse_args()))


if __name__ == "__main__":
    main()
