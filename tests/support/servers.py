"""The HTTP peers of the test stack, written to the wire formats (protocols.md §6, §7):
the token server, the fault-injecting proxy in front of a real registry, and the "blob storage"
host registry redirects point at. Each records what it saw so tests can assert on it."""
import base64
import copy
import hashlib
import http.client
import http.server
import json
import os
import socket
import ssl
import struct
import threading
import time
import urllib.parse

from jwt_issuer import parse_scopes


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients we reset on purpose produce tracebacks otherwise


def serve_tls(handler, listener, cert, key):
    """Serves `handler` on `listener`, a socket from ports.listen() (bound and listening
    already, so its port was never free for another process to take); TLS when `cert`."""
    server = QuietServer(listener.getsockname()[:2], handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener
    server.server_address = listener.getsockname()
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Settings(dict):
    """A server's scriptable settings (faults, failures, lifetimes). /__control/reset puts back
    the ones it started with, so no test inherits another's script."""

    def __init__(self, **initial):
        super().__init__(copy.deepcopy(initial))
        self.initial = initial

    def restore(self):
        self.clear()
        self.update(copy.deepcopy(self.initial))


class Recorder:
    """Thread-safe log of requests: what tests read back through /__control/stats."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.violations = []

    def add(self, entry):
        entry.setdefault("time", time.time())  # when the request arrived (epoch seconds)
        with self.lock:
            self.requests.append(entry)

    def violation(self, text):
        with self.lock:
            self.violations.append(text)

    def snapshot(self):
        with self.lock:
            return {"requests": list(self.requests), "violations": list(self.violations)}

    def clear(self):
        with self.lock:
            self.requests.clear()
            self.violations.clear()


class BaseHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # As Go's net/http (the registry's) does: with Nagle's algorithm, a response written as
    # headers then body waits for the client's delayed ACK on a kept-alive connection (40 ms).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_control(self, recorder, state):
        """/__control/{stats,reset,faults,config}: shared by every server of the stack."""
        path = urllib.parse.urlparse(self.path).path
        # Read whatever the request carries, even where it is not used: the client keeps its
        # connection alive, and unread bytes would start its next request.
        body = self.read_body()
        if path == "/__control/stats":
            self.send_json(200, recorder.snapshot())
        elif path == "/__control/reset":
            recorder.clear()
            state.restore()
            self.send_json(200, {})
        elif path == "/__control/faults":
            state["faults"] = json.loads(body or b"[]")
            self.send_json(200, {})
        elif path == "/__control/config":
            state.update(json.loads(body or b"{}"))
            self.send_json(200, {})
        else:
            self.send_json(404, {"error": "unknown control path"})


def make_token_handler(issuer, users, recorder, state):
    """GET realm?service=&scope= with optional Basic credentials -> {"token","access_token",
    "expires_in","issued_at"}. Unknown users or wrong passwords get 401. Repositories named
    after a user (<user>/...) are pulled by that user only; the rest by every user."""

    class TokenHandler(BaseHandler):
        def do_POST(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, state)
            self.send_json(405, {"error": "GET only"})

        def do_GET(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, state)
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            auth = self.headers.get("Authorization", "")
            subject = ""
            if auth.startswith("Basic "):
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                if users.get(user) != password:
                    recorder.add({"path": "/token", "result": "bad credentials", "user": user})
                    return self.send_json(401, {"details": "invalid username or password"})
                subject = user
            elif users and not state.get("anonymous", False):
                recorder.add({"path": "/token", "result": "anonymous refused"})
                return self.send_json(401, {"details": "authentication required"},
                                      {"WWW-Authenticate": 'Basic realm="token"'})
            if query.get("service", [""])[0] != issuer.service:
                return self.send_json(400, {"details": "wrong service"})
            access = [a for a in parse_scopes(query.get("scope", []))
                      if a["type"] == "repository"]
            for entry in access:
                entry["actions"] = [a for a in entry["actions"] if a == "pull"]
                # A repository under a user's name ("alice/app") is that user's alone: the
                # token names no action on it for anyone else, as a registry's ACLs would.
                owner = entry["name"].split("/", 1)[0]
                if owner in users and owner != subject:
                    entry["actions"] = []
            lifetime = int(state.get("expires_in", 300))
            token = issuer.issue(subject, access, lifetime)
            recorder.add({"path": "/token", "result": "issued", "user": subject,
                          "scope": query.get("scope", [])})
            self.send_json(200, {"token": token, "access_token": token, "expires_in": lifetime,
                                 "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    return TokenHandler


def make_storage_handler(store, recorder, state, require_no_auth=True):
    """The 'blob storage' a registry redirects to (ACR -> *.blob.core.windows.net): serves bytes
    the proxy parked under an id, honours Range, and records a violation - and answers 400 like
    Azure Storage - when any Authorization header arrives. Faults, as for the proxy, matched
    against the blob's digest (state["faults"]): {"match", "times", "action": "reset_at",
    "at": N, "pause": secs} sends N bytes, waits, then resets the connection."""

    def take_fault(digest):
        with recorder.lock:
            for fault in state.get("faults", []):
                if fault.get("match", "") in digest and fault.get("times", 1) > 0:
                    fault["times"] = fault.get("times", 1) - 1
                    return dict(fault)
        return None

    class StorageHandler(BaseHandler):
        def do_POST(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, state)
            self.send_json(405, {})

        def do_GET(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, state)
            parsed = urllib.parse.urlparse(self.path)
            auth = self.headers.get("Authorization")
            entry = {"path": parsed.path, "authorization": bool(auth),
                     "range": self.headers.get("Range")}
            recorder.add(entry)
            if auth and require_no_auth:
                recorder.violation(f"Authorization sent to blob storage for {parsed.path}")
                return self.send_json(400, {"code": "InvalidAuthenticationInfo"})
            data = store.get(parsed.path.rsplit("/", 1)[-1])
            if data is None:
                return self.send_json(404, {"code": "BlobNotFound"})
            start = 0
            status = 200
            headers = {}
            range_header = self.headers.get("Range")
            end = len(data) - 1
            if range_header and range_header.startswith("bytes="):
                first, _, last = range_header[6:].partition("-")
                start = int(first)
                end = min(int(last), end) if last else end
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            body = data[start:end + 1]
            digest = hashlib.sha256(data).hexdigest()
            entry["digest"] = digest
            fault = take_fault(digest)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if fault and fault.get("action") == "reset_at" and fault["at"] < len(body):
                self.wfile.write(body[:fault["at"]])
                self.wfile.flush()
                time.sleep(fault.get("pause", 0))
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            self.wfile.write(body)

    return StorageHandler


def make_proxy_handler(upstream_host, upstream_port, ca_file, recorder, state, storage):
    """A reverse proxy in front of a real registry that can break things on request. Faults are
    a list of {"match": substring of the path, "times": n, "action": ..., ...}; each matching
    request uses up one `times`. Actions:
      reset_at N        send N body bytes, then reset the connection (RST)
      stall_at N, secs  send N body bytes, then send nothing for `secs` seconds
      truncate_at N     send N body bytes, then close cleanly (short body)
      corrupt_at N      flip the byte at offset N of the body
      status S, headers answer S (with headers, e.g. Retry-After) instead of forwarding
      unauthorized      answer 401 with the registry's challenge (a token that 'expired')
      ignore_range      drop the Range header (the server sends the whole blob, 200)
      bad_content_range answer the Range request with a Content-Range starting elsewhere
      redirect host     fetch the blob, park it in blob storage at `host`, answer 307 there
      respond           answer as a hostile registry would, without asking upstream: `status`
                        (200), `headers`, `body` (text) or `body_json`, `junk_headers` (that many
                        100-byte header lines)
      hang, secs        read the request, then answer nothing for `secs` seconds
    and, with any action that sends a body:
      rate              send the body at this many bytes per second (a dribbling server)
      flip_at           flip the byte at this offset of the body (with truncate_at: poison)
    The setting `rate_limit` {"per_second": N, "retry_after": S, "count_rejected": bool}
    answers 429 with Retry-After: S to a request beyond N in the last second (as ACR
    throttles); with count_rejected the refused requests count as well.
    The setting `link_rate` (bytes a second) makes the proxy a link of that speed: every body it
    sends, on every connection, shares it in 64 KiB pieces taken in turn (the benchmark's
    100 Mbit/s line, however many connections a client opens).
    A fault with "range_from": N applies only to a request whose Range starts at byte N.
    Every forwarded request is recorded: path, Range, whether Authorization was present, bytes
    of body sent, X-Mirror-Key. With the setting `mirror` (a registry mirror in front of a
    pull-through cache), a request carrying an Authorization other than the setting
    `mirror_authorization` (none by default) is a violation: the origin's credentials leaked."""

    context = ssl.create_default_context(cafile=ca_file)
    link = {"lock": threading.Lock(), "free_at": 0.0}

    def over_link(write, data, entry):
        """Sends `data` through the shared link: each piece waits for its turn on the line."""
        piece = 64 * 1024
        for start in range(0, len(data), piece):
            chunk = data[start:start + piece]
            with link["lock"]:
                now = time.monotonic()
                begins = max(now, link["free_at"])
                link["free_at"] = begins + len(chunk) / state["link_rate"]
                done = link["free_at"]
            time.sleep(max(0.0, done - time.monotonic()))
            write(chunk)
            entry["bytes"] = start + len(chunk)

    def take_fault(path, range_header=None):
        with recorder.lock:
            for fault in state.get("faults", []):
                if "range_from" in fault and not (range_header or "").startswith(
                        f"bytes={fault['range_from']}-"):
                    continue
                if fault.get("match", "") in path and fault.get("times", 1) > 0:
                    fault["times"] = fault.get("times", 1) - 1
                    return dict(fault)
        return None

    class ProxyHandler(BaseHandler):
        def do_POST(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, state)
            self.forward("POST")

        def do_HEAD(self):
            self.forward("HEAD")

        def do_GET(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, state)
            self.forward("GET")

        def upstream(self, method, path, headers, body=None):
            conn = http.client.HTTPSConnection(upstream_host, upstream_port, context=context,
                                               timeout=60)
            conn.request(method, path, body=body, headers=headers)
            return conn, conn.getresponse()

        def forward(self, method):
            fault = take_fault(self.path, self.headers.get("Range"))
            action = fault.get("action") if fault else None
            # A header sent several times (skopeo's Accept) goes on as one, its values joined.
            headers = {k: ", ".join(self.headers.get_all(k)) for k in set(self.headers.keys())
                       if k.lower() not in ("host", "connection")}
            entry = {"path": self.path, "method": method,
                     "authorization": "Authorization" in self.headers,
                     "range": self.headers.get("Range"), "fault": action, "bytes": 0}
            recorder.add(entry)
            if state.get("mirror"):
                entry["x_mirror_key"] = self.headers.get("X-Mirror-Key")
                sent = self.headers.get("Authorization")
                if sent is not None and sent != state.get("mirror_authorization"):
                    recorder.violation(f"{method} {self.path} carried an Authorization the "
                                       "mirror was not given")
                    return self.send_json(400, {"errors": [{"code": "DENIED",
                                                            "message": "foreign credentials"}]})

            limit = state.get("rate_limit")
            if limit:
                # A sliding second: at most per_second requests in any second. With
                # count_rejected, refused requests count too (a client that keeps asking while
                # throttled keeps itself throttled); without, only the requests served.
                with recorder.lock:
                    now = time.time()
                    log = [t for t in state.get("window_log", []) if now - t < 1]
                    over = len(log) >= limit["per_second"]
                    if not over or limit.get("count_rejected"):
                        log.append(now)
                    state["window_log"] = log
                if over:
                    entry["fault"] = "rate_limited"
                    action = "status"
                    fault = {"status": 429, "headers": {"Retry-After": str(limit["retry_after"])}}

            if action == "status":
                data = json.dumps({"errors": [{"code": "TOOMANYREQUESTS" if fault["status"] == 429
                                               else "UNAVAILABLE", "message": "injected"}]}).encode()
                self.send_response(fault["status"])
                for k, v in fault.get("headers", {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if method != "HEAD":  # an answer to HEAD has no body, as HTTP says
                    self.wfile.write(data)
                return
            if action == "unauthorized":
                _, probe = self.upstream("GET", "/v2/", {})
                challenge = probe.getheader("WWW-Authenticate")
                probe.read()
                data = b'{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}'
                self.send_response(401)
                self.send_header("WWW-Authenticate", challenge + ',error="invalid_token"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if action == "respond":
                data = (json.dumps(fault["body_json"]) if "body_json" in fault
                        else fault.get("body", "")).encode()
                self.send_response(fault.get("status", 200))
                for k, v in fault.get("headers", {}).items():
                    self.send_header(k, v)
                for i in range(fault.get("junk_headers", 0)):
                    self.send_header(f"X-Junk-{i}", "j" * 100)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                return self.send_body(data, fault, entry)
            if action == "hang":
                deadline = time.time() + fault.get("secs", 30)
                while time.time() < deadline:
                    time.sleep(0.05)
                self.close_connection = True
                return
            if action == "ignore_range":
                headers.pop("Range", None)
            if action == "redirect":
                return self.redirect(fault, headers, method)

            body = self.read_body() if method == "POST" else None
            conn, response = self.upstream(method, self.path, headers, body)
            data = response.read() if method != "HEAD" else b""
            conn.close()
            status = response.status
            out_headers = [(k, v) for k, v in response.getheaders()
                           if k.lower() not in ("connection", "transfer-encoding", "content-length")]
            if action == "bad_content_range" and status == 206:
                out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-range"]
                total = len(data) + 10
                out_headers.append(("Content-Range", f"bytes 0-{len(data) - 1}/{total}"))
            if action == "corrupt_at" and len(data) > fault["at"]:
                data = bytearray(data)
                data[fault["at"]] ^= 0xFF
                data = bytes(data)
            self.send_response(status)
            for k, v in out_headers:
                self.send_header(k, v)
            length = response.getheader("Content-Length") if method == "HEAD" else str(len(data))
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            self.send_body(data, fault, entry)

        def send_body(self, data, fault, entry):
            action = fault.get("action") if fault else None
            if fault and "flip_at" in fault and len(data) > fault["flip_at"]:
                data = bytearray(data)
                data[fault["flip_at"]] ^= 0xFF
                data = bytes(data)
            if fault and fault.get("rate"):
                # A dribbling server: `rate` bytes a second, in pieces, until done or the client
                # gives up.
                rate = fault["rate"]
                piece = max(1, rate // 20)
                try:
                    for start in range(0, len(data), piece):
                        self.wfile.write(data[start:start + piece])
                        self.wfile.flush()
                        entry["bytes"] = min(len(data), start + piece)
                        time.sleep(piece / rate)
                except OSError:
                    pass
                self.close_connection = True
                return
            cut = fault.get("at") if action in ("reset_at", "stall_at", "truncate_at") else None
            if (cut is None or cut >= len(data)) and state.get("link_rate"):
                over_link(self.wfile.write, data, entry)
                return
            if cut is None or cut >= len(data):
                self.wfile.write(data)
                entry["bytes"] = len(data)
                return
            self.wfile.write(data[:cut])
            self.wfile.flush()
            entry["bytes"] = cut
            if action == "stall_at":
                deadline = time.time() + fault.get("secs", 30)
                while time.time() < deadline:
                    time.sleep(0.05)
            sock = self.connection
            if action == "reset_at":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            try:
                sock.shutdown(socket.SHUT_RDWR) if action != "reset_at" else None
            except OSError:
                pass
            sock.close()

        def redirect(self, fault, headers, method):
            headers.pop("Range", None)
            conn, response = self.upstream("GET", self.path, headers)
            data = response.read()
            conn.close()
            if response.status != 200:  # e.g. a 401 challenge: pass it on as the registry said it
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            blob_id = os.urandom(8).hex()
            storage[blob_id] = data
            location = f"{fault['host']}/container/{blob_id}?se=2030-01-01&sig=SECRETSASSIG"
            self.send_response(307)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return ProxyHandler
