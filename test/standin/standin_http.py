"""Shared machinery of the stand-in servers: a small asyncio HTTP/1.1 server
(keep-alive, pipelining, Content-Length and chunked bodies, Expect: 100-continue),
the fault injector, the request log and the /_standin/ control endpoints.

Each stand-in (fly_server.py, stripe_server.py) subclasses StandinServer and
implements api(), state_json(), reset_state() and error_body()."""

import argparse
import asyncio
import json
import random
import re
import sys
import time
from urllib.parse import parse_qs, unquote

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    411: "Length Required", 412: "Precondition Failed", 413: "Payload Too Large",
    422: "Unprocessable Entity", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024

DROP = object()  # handler result: close the connection without answering


class Request:
    """One parsed HTTP request."""
    __slots__ = ("method", "target", "path", "raw_query", "query", "headers", "body",
                 "keep_alive", "log", "peer", "cache")

    def __init__(self, method, target, headers, body, keep_alive, peer):
        self.method = method
        self.target = target
        path, _, q = target.partition("?")
        self.path = unquote(path)
        self.raw_query = q
        self.query = parse_qs(q, keep_blank_values=True) if q else {}
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.log = None
        self.peer = peer
        self.cache = None  # per-request parse results of a subclass

    def q1(self, name, default=None):
        """First value of a query parameter."""
        v = self.query.get(name)
        return v[0] if v else default


class Response:
    """An HTTP response; body is bytes, or a JSON-serialisable object, or None."""
    __slots__ = ("status", "body", "headers")

    def __init__(self, status, body=None, headers=None):
        self.status = status
        self.body = body
        self.headers = list(headers or [])

    def encode(self, keep_alive):
        if self.body is None:
            data = b""
        elif isinstance(self.body, (bytes, bytearray)):
            data = bytes(self.body)
        else:
            data = json.dumps(self.body, separators=(",", ":")).encode()
        head = ["HTTP/1.1 %d %s" % (self.status, REASONS.get(self.status, "Status"))]
        if data or self.status not in (204,):
            if not any(k.lower() == "content-type" for k, _ in self.headers) and data:
                head.append("Content-Type: application/json")
            head.append("Content-Length: %d" % len(data))
        for k, v in self.headers:
            head.append("%s: %s" % (k, v))
        if not keep_alive:
            head.append("Connection: close")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data


def json_response(status, obj, headers=None):
    """A JSON response."""
    return Response(status, obj, headers)


class HttpProtocol(asyncio.Protocol):
    """One client connection: parses requests in order and answers them in order."""

    def __init__(self, server):
        self.server = server
        self.transport = None
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self.sent_continue = False
        self.peer = None

    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        self.server.connections += 1

    def connection_lost(self, exc):
        self.closed = True
        self.server.connections -= 1

    def data_received(self, data):
        self.buf += data
        if not self.busy:
            self._next()

    def _fail(self, status, msg):
        if not self.closed:
            self.transport.write(Response(status, {"error": msg}).encode(False))
            self.transport.close()
        self.closed = True

    def _next(self):
        """Parse one complete request from the buffer and start handling it."""
        if self.closed:
            return
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._fail(431, "request head too large")
            return
        try:
            head = bytes(buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            while lines and lines[0] == "":  # tolerate stray CRLF between requests
                lines.pop(0)
            method, target, version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                k = k.strip().lower()
                v = v.strip()
                headers[k] = headers[k] + ", " + v if k in headers else v
        except ValueError:
            self._fail(400, "malformed request")
            return
        start = end + 4
        te = headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            parsed = _dechunk(buf, start)
            if parsed is None:
                self._maybe_continue(headers)
                return
            if parsed is False:
                self._fail(400, "malformed chunked body")
                return
            body, consumed = parsed
        else:
            try:
                n = int(headers.get("content-length", "0") or "0")
            except ValueError:
                self._fail(400, "bad content-length")
                return
            if n > MAX_BODY:
                self._fail(413, "body too large")
                return
            if len(buf) < start + n:
                self._maybe_continue(headers)
                return
            body = bytes(buf[start:start + n])
            consumed = start + n
        del buf[:consumed]
        self.sent_continue = False
        conn = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep = "keep-alive" in conn
        else:
            keep = "close" not in conn
        req = Request(method.upper(), target, headers, body, keep, self.peer)
        self.busy = True
        asyncio.get_running_loop().create_task(self._run(req))

    def _maybe_continue(self, headers):
        if not self.sent_continue and headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.sent_continue = True

    async def _run(self, req):
        try:
            resp = await self.server.dispatch(req)
        except Exception as e:  # a bug in a handler: answer 500 and say so on stderr
            print("standin: handler error on %s %s: %r" % (req.method, req.path, e),
                  file=sys.stderr)
            import traceback
            traceback.print_exc()
            resp = Response(500, {"error": "stand-in internal error: %r" % (e,)})
        if self.closed:
            return
        if resp is DROP:
            self.transport.close()
            self.closed = True
            return
        self.transport.write(resp.encode(req.keep_alive))
        if not req.keep_alive:
            self.transport.close()
            self.closed = True
            return
        self.busy = False
        if self.buf:
            self._next()


def _dechunk(buf, pos):
    """Decode a chunked body from buf[pos:]; None when incomplete, False when malformed."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";")[0].strip(), 16)
        except ValueError:
            return False
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)
            if end < 0:
                return None
            return bytes(out), end + 4
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos:pos + size]
        pos += size + 2


class FaultError(ValueError):
    """A fault rule that does not make sense."""


class Fault:
    """One fault-injection rule."""

    def __init__(self, d):
        if not isinstance(d, dict):
            raise FaultError("each rule must be an object")
        allowed = {"method", "path", "action", "status", "retry_after", "delay_ms", "rate",
                   "count", "body", "phase", "should_retry"}
        extra = set(d) - allowed
        if extra:
            raise FaultError("unknown rule field(s): %s" % ", ".join(sorted(extra)))
        self.spec = dict(d)
        self.method = (d.get("method") or "").upper() or None
        try:
            self.path = re.compile(d.get("path") or "")
        except re.error as e:
            raise FaultError("bad path regex: %s" % e)
        self.action = d.get("action")
        if self.action not in ("status", "drop", "delay"):
            raise FaultError("action must be status, drop or delay")
        self.status = d.get("status")
        if self.action == "status" and not (isinstance(self.status, int) and 100 <= self.status <= 599):
            raise FaultError("a status rule needs an integer status")
        self.retry_after = d.get("retry_after")
        self.delay_ms = d.get("delay_ms", 0)
        if self.action == "delay" and not (isinstance(self.delay_ms, (int, float)) and self.delay_ms >= 0):
            raise FaultError("a delay rule needs delay_ms >= 0")
        self.rate = d.get("rate", 1.0)
        if not (isinstance(self.rate, (int, float)) and 0 <= self.rate <= 1):
            raise FaultError("rate must be between 0 and 1")
        self.count = d.get("count")
        if self.count is not None and not (isinstance(self.count, int) and self.count >= 0):
            raise FaultError("count must be a non-negative integer")
        self.body = d.get("body")
        self.phase = d.get("phase", "before")
        if self.phase not in ("before", "after"):
            raise FaultError("phase must be before or after")
        self.should_retry = d.get("should_retry")
        self.fired = 0

    def matches(self, req):
        if self.method and self.method != req.method:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        return self.path.search(req.path) is not None

    def describe(self):
        d = dict(self.spec)
        d["fired"] = self.fired
        return d


class StandinServer:
    """Base of a stand-in: control endpoints, fault injection, request log, latency."""

    name = "standin"

    def __init__(self, args):
        self.args = args
        self.latency = max(0.0, args.latency_ms / 1000.0)
        self.rng = random.Random(args.seed)
        self.faults = []
        self.requests = []
        self.seq = 0
        self.connections = 0
        self.started_at = time.time()

    # ---- hooks for subclasses -------------------------------------------
    async def api(self, req, fault):
        """Answer an API request; must await self.pause(fault) and answer a status fault."""
        raise NotImplementedError

    def state_json(self):
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    def parsed_body(self, req):
        """The request body as logged."""
        return None

    def error_body(self, status, fault):
        """The error body of an injected status fault."""
        raise NotImplementedError

    async def control(self, req, rest):
        """Extra control endpoints of a subclass; None when unknown."""
        return None

    # ---- dispatch --------------------------------------------------------
    async def dispatch(self, req):
        if req.path.startswith("/_standin/"):
            return await self._control(req)
        return await self._api(req)

    def pick_fault(self, req):
        for f in self.faults:
            if f.matches(req):
                if f.rate >= 1 or self.rng.random() < f.rate:
                    f.fired += 1
                    return f
        return None

    def _log(self, req):
        headers = {}
        for k, v in req.headers.items():
            if k in ("authorization", "proxy-authorization"):
                v = v.split(" ", 1)[0] if v else ""
            headers[k] = v
        self.seq += 1
        entry = {"seq": self.seq, "time": round(time.time(), 6), "method": req.method,
                 "path": req.path, "query": {k: (v[0] if len(v) == 1 else v)
                                             for k, v in req.query.items()},
                 "headers": headers, "idempotency_key": req.headers.get("idempotency-key"),
                 "body": None, "status": None, "fault": None}
        try:
            entry["body"] = self.parsed_body(req)
        except Exception:
            entry["body"] = req.body.decode("utf-8", "replace")
        limit = self.args.log_limit
        self.requests.append(entry)
        if limit and len(self.requests) > limit:
            del self.requests[:len(self.requests) - limit]
        return entry

    async def _api(self, req):
        entry = self._log(req)
        req.log = entry
        fault = self.pick_fault(req)
        if fault is not None:
            entry["fault"] = fault.action if fault.action == "status" else \
                "%s:%s" % (fault.action, fault.phase)
            if fault.action == "drop" and fault.phase == "before":
                return DROP
        resp = await self.api(req, fault)
        if resp is DROP:
            return DROP
        entry["status"] = resp.status
        if fault is not None and fault.phase == "after" and fault.action != "status":
            if fault.action == "drop":
                entry["status"] = None  # nothing was answered
                entry["unsent_status"] = resp.status
                return DROP
            await asyncio.sleep(fault.delay_ms / 1000.0)
        return resp

    async def pause(self, fault):
        """The server's processing time: --latency-ms plus a delay fault of phase before.
        Subclasses await this where the real API does its work."""
        if fault is not None and fault.action == "delay" and fault.phase == "before":
            await asyncio.sleep(fault.delay_ms / 1000.0)
        if self.latency:
            await asyncio.sleep(self.latency)

    def fault_headers(self, fault):
        h = []
        if fault.retry_after is not None:
            h.append(("Retry-After", str(fault.retry_after)))
        return h

    # ---- control endpoints ----------------------------------------------
    async def _control(self, req):
        rest = req.path[len("/_standin/"):]
        m = req.method
        if rest == "health" and m == "GET":
            return json_response(200, {"ok": True, "server": self.name,
                                       "requests": self.seq, "connections": self.connections})
        if rest == "faults":
            if m == "GET":
                return json_response(200, {"rules": [f.describe() for f in self.faults]})
            if m == "DELETE":
                self.faults = []
                return json_response(200, {"rules": []})
            if m == "POST":
                try:
                    doc = json.loads(req.body or b"{}")
                    rules = doc.get("rules") if isinstance(doc, dict) else None
                    if not isinstance(rules, list):
                        raise FaultError('body must be {"rules": [...]}')
                    new = [Fault(r) for r in rules]
                except (ValueError, FaultError) as e:
                    return json_response(400, {"error": "bad fault rules: %s" % e})
                if req.q1("append") in ("1", "true"):
                    self.faults.extend(new)
                else:
                    self.faults = new
                return json_response(200, {"rules": [f.describe() for f in self.faults]})
        if rest == "requests" and m in ("GET", "DELETE"):
            if m == "DELETE":
                self.requests = []
                return json_response(200, [])
            out = self.requests
            since = req.q1("since")
            if since:
                out = [e for e in out if e["seq"] > int(since)]
            if req.q1("method"):
                meth = req.q1("method").upper()
                out = [e for e in out if e["method"] == meth]
            if req.q1("path"):
                rx = re.compile(req.q1("path"))
                out = [e for e in out if rx.search(e["path"])]
            return json_response(200, out)
        if rest == "state" and m == "GET":
            return json_response(200, self.state_json())
        if rest == "reset" and m == "POST":
            self.reset_state()
            self.faults = []
            self.requests = []
            return json_response(200, {"ok": True})
        resp = await self.control(req, rest)
        if resp is not None:
            return resp
        return json_response(404, {"error": "unknown control endpoint %s %s" % (m, req.path)})


def base_args(description):
    """Command-line options common to both stand-ins."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="added to every API answer (not to /_standin/)")
    p.add_argument("--seed", type=int, default=None, help="seed for fault rates")
    p.add_argument("--log-limit", type=int, default=0,
                   help="keep only the last N requests in the log (0: all)")
    p.add_argument("--port-file", default=None,
                   help="write the bound port to this file once listening")
    return p


def serve(server):
    """Run the server until SIGTERM/SIGINT."""
    import signal

    async def main():
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(lambda: HttpProtocol(server), server.args.host,
                                       server.args.port, backlog=1024, reuse_address=True)
        port = srv.sockets[0].getsockname()[1]
        if server.args.port_file:
            with open(server.args.port_file + ".tmp", "w") as f:
                f.write("%d\n" % port)
            import os
            os.replace(server.args.port_file + ".tmp", server.args.port_file)
        print("%s stand-in listening on %s:%d" % (server.name, server.args.host, port),
              file=sys.stderr, flush=True)
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        await stop
        srv.close()

    try:  # many keep-alive connections: lift the soft descriptor limit to the hard one
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    asyncio.run(main())
