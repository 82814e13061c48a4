#!/usr/bin/env python3
"""keyservice.py - a tiny "API key service" for the custom-engine example.

Keys live in memory (and, with --state-file, in a JSON file so they
survive a restart). The admin API needs `Authorization: Bearer <admin
token>`; a key itself only works on /v1/whoami.

    POST   /v1/keys          {"name": "...", "scopes": [...]}  -> 201 {"name", "key", "scopes"}
    GET    /v1/keys          -> 200 {"keys": [{"name", "scopes", "created"}]}  (no secrets)
    DELETE /v1/keys/<name>   -> 204, or 404 if there is no such key
    GET    /v1/whoami        Bearer <key> -> 200 {"name", "scopes"}, else 401

Run:  python3 keyservice.py --port 8099 --admin-token admin-secret
      (add --tls-cert/--tls-key to serve https)
Standard library only.
"""

import argparse
import hmac
import json
import os
import re
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class Store:
    """The keys, behind one lock; saved to state_file after each change."""

    def __init__(self, state_file=None):
        self.lock = threading.Lock()
        self.state_file = state_file
        self.keys = {}  # name -> {"key", "scopes", "created"}
        if state_file and os.path.exists(state_file):
            with open(state_file) as f:
                self.keys = json.load(f)

    def _save(self):
        if self.state_file:
            tmp = self.state_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.keys, f)
            os.replace(tmp, self.state_file)

    def create(self, name, scopes):
        with self.lock:
            if name in self.keys:
                return None
            key = "sk_" + secrets.token_urlsafe(24)
            self.keys[name] = {"key": key, "scopes": scopes,
                               "created": int(time.time())}
            self._save()
            return key

    def delete(self, name):
        with self.lock:
            if self.keys.pop(name, None) is None:
                return False
            self._save()
            return True

    def listing(self):
        with self.lock:
            return [{"name": n, "scopes": k["scopes"], "created": k["created"]}
                    for n, k in sorted(self.keys.items())]

    def owner_of(self, key):
        with self.lock:
            for name, k in self.keys.items():
                if hmac.compare_digest(k["key"], key):
                    return name, k["scopes"]
        return None


class Handler(BaseHTTPRequestHandler):
    server_version = "keyservice/1"

    def _send(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _bearer(self):
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else ""

    def _admin(self):
        if hmac.compare_digest(self._bearer().encode(),
                               self.server.admin_token.encode()):
            return True
        self._send(401, {"error": "admin token required"})
        return False

    def do_POST(self):
        if self.path != "/v1/keys":
            return self._send(404, {"error": "not found"})
        if not self._admin():
            return None
        try:
            n = int(self.headers.get("Content-Length", "0"))
            req = json.loads(self.rfile.read(min(n, 65536)) or b"{}")
        except ValueError:
            return self._send(400, {"error": "invalid JSON"})
        name, scopes = req.get("name"), req.get("scopes") or []
        if not isinstance(name, str) or not NAME.match(name) or \
                not isinstance(scopes, list):
            return self._send(400, {"error": "invalid name or scopes"})
        key = self.server.store.create(name, [str(s) for s in scopes])
        if key is None:
            return self._send(409, {"error": "key exists"})
        return self._send(201, {"name": name, "key": key, "scopes": scopes})

    def do_GET(self):
        if self.path == "/v1/whoami":
            who = self.server.store.owner_of(self._bearer())
            if who is None:
                return self._send(401, {"error": "invalid key"})
            return self._send(200, {"name": who[0], "scopes": who[1]})
        if self.path != "/v1/keys":
            return self._send(404, {"error": "not found"})
        if self._admin():
            self._send(200, {"keys": self.server.store.listing()})
        return None

    def do_DELETE(self):
        if not self.path.startswith("/v1/keys/"):
            return self._send(404, {"error": "not found"})
        if not self._admin():
            return None
        if self.server.store.delete(self.path[len("/v1/keys/"):]):
            return self._send(204)
        return self._send(404, {"error": "no such key"})

    def log_message(self, fmt, *args):  # one line per request, no headers
        print("keyservice: %s %s" % (self.command, self.path), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--admin-token",
                   default=os.environ.get("KEYSERVICE_ADMIN_TOKEN",
                                          "admin-secret"))
    p.add_argument("--state-file", help="keep the keys in this JSON file")
    p.add_argument("--tls-cert", help="serve https with this certificate")
    p.add_argument("--tls-key", help="... and this private key")
    a = p.parse_args()
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.admin_token = a.admin_token
    srv.store = Store(a.state_file)
    scheme = "http"
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        scheme = "https"
    print("keyservice listening on %s://%s:%d" % (scheme, a.host, a.port),
          flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
