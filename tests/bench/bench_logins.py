#!/usr/bin/python3
"""Benchmark: logins per second and server CPU per login, JWT against
userpass and approle, in one run.

A JWT login with cached keys should cost one signature verification plus
a token creation (issue 10, "Performance"). Everything runs on this
machine in one go and the figures that matter are ratios against
baselines measured in the same run (the machines are shared and noisy):

  1. logins:   wrk (a C load generator, keep-alive, 2 threads) POSTs
               the same login for --seconds at each concurrency to
                 auth/userpass/login/<user>   (PBKDF2-SHA256, 100,000 rounds)
                 auth/approle/login           (role_id + secret_id)
                 auth/null/login              (a Lua method that returns a
                                               fixed identity: the floor,
                                               i.e. the token creation and
                                               the framework around it)
                 auth/jwt-rs/login            (RS256, 2048-bit key)
                 auth/jwt-es/login            (ES256, P-256)
                 auth/jwt-jwks/login          (RS256, keys from a JWKS URL,
                                               cached after the first login)
               The JWT mounts use jwt_validation_pubkeys (PEM), except the
               last, whose JWKS comes from a local HTTP server through
               coffer.http (allowed with -dev-plugin-http-allowed).
               Reported: logins/s, the server's CPU per login (utime +
               stime of /proc/<pid>/stat before and after, divided by the
               logins wrk counted) and both as ratios to userpass. Each
               run is repeated --rounds times, interleaved, and the
               median is shown (the machine is shared).
  2. parts:    a Lua engine (benchparts) answers POSTs that do one part
               of a JWT login each, through the same HTTP pipeline (root
               token): nothing (noop), coffer.jose.verify of the RS256
               token with a cached key (verify), and the two storage
               reads a JWT login makes, its config (with the PEM) and its
               role (reads). The differences to noop are those parts'
               costs as a plugin sees them.
  3. baseline: the cost of one RS256 and one ES256 verification in
               process, with OpenSSL (`openssl speed`, if present) and
               with python cryptography's verify in a loop, next to what
               a JWT login costs beyond the null login: the share the
               signature check takes of the JWT-specific work.

Every login creates a real token (and its lease), as a client's would,
so storage grows during a run. By default the server is a real one on the
production backend, sqlite, with its file on tmpfs (/dev/shm) so that
fsync costs nothing and the figures are CPU, not disk; --storage dev uses
a dev server instead, whose in-memory backend is a sorted array with O(n)
inserts (fine for dev mode, but it taxes every login by the number of
entries already stored, so faster methods and later runs pay more). The
tokens of each run are revoked before the next one, so every run starts
from the same storage.

Usage: tests/bench/bench_logins.py [--seconds 4] [--rounds 2]
                                   [--clients 1,8] [--workers 32]
                                   [--storage sqlite|dev]
"""

import argparse
import base64
import http.server
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import (  # noqa: E402
    decode_dss_signature)

from conftest import Server  # noqa: E402
from realserver import RealServer  # noqa: E402

from benchlib import CLK_TCK, cpu_ticks, must  # noqa: E402
AUDIENCE = "coffer-bench"
ISSUER = "https://issuer.bench.test"


# ================================================================ JWTs ==

def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_int(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64url(n.to_bytes(size, "big"))


def make_jwt(key, alg, kid, ttl=3600):
    now = int(time.time())
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    claims = {"iss": ISSUER, "sub": "bench-workload", "aud": AUDIENCE,
              "iat": now, "nbf": now - 5, "exp": now + ttl}
    signing = (b64url(json.dumps(header).encode()) + "." +
               b64url(json.dumps(claims).encode())).encode()
    if alg == "RS256":
        sig = key.sign(signing, padding.PKCS1v15(), hashes.SHA256())
    else:  # ES256: JOSE wants raw r || s, 32 bytes each
        r, s = decode_dss_signature(key.sign(signing, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing.decode() + "." + b64url(sig)


def pem_of(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def jwk_of(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64url_int(n.n), "e": b64url_int(n.e)}


class JwksServer:
    """Serves one JWKS document over plain HTTP on loopback; counts hits."""

    def __init__(self, doc):
        body = json.dumps(doc).encode()
        outer = self
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/jwks" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ============================================================== set-up ==

class Real:
    """A RealServer (sqlite, initialised and unsealed) with the few
    methods of conftest.Server this script uses."""

    def __init__(self, workdir, workers, plugins, allowed):
        extra = ('workers = %d\nplugin_directory = "%s"\n'
                 'plugin_http_allowed = { "%s" }\n'
                 'login_rate_limit = 1024\nlogin_rate_burst = 1024\n'
                 'log_level = "warn"\n' % (workers, plugins, allowed))
        self.rs = RealServer(workdir, storage="sqlite", extra_config=extra)
        self.rs.start()
        keys, self.token = self.rs.init(shares=1, threshold=1)
        self.rs.unseal(keys)
        self.proc = self.rs.proc

    def url(self, path):
        return self.rs.addr + "/v1/" + path.lstrip("/")

    def req(self, method, path, token=True, **kw):
        return self.rs.req(method, path, token=token, **kw)

    def stop(self):
        return self.rs.stop()


def setup_userpass(srv):
    must(srv.req("POST", "sys/auth/userpass", json={"type": "userpass"}))
    must(srv.req("POST", "auth/userpass/users/bench",
                 json={"password": "bench-password", "policies": "default"}))
    return ("auth/userpass/login/bench", {"password": "bench-password"})


def setup_approle(srv):
    must(srv.req("POST", "sys/auth/approle", json={"type": "approle"}))
    must(srv.req("POST", "auth/approle/role/bench",
                 json={"token_policies": "default", "secret_id_num_uses": 0}))
    role_id = must(srv.req("GET", "auth/approle/role/bench/role-id")
                   ).json()["data"]["role_id"]
    secret_id = must(srv.req("POST", "auth/approle/role/bench/secret-id")
                     ).json()["data"]["secret_id"]
    return ("auth/approle/login", {"role_id": role_id, "secret_id": secret_id})


NULL_AUTH = """
-- A login that checks nothing: what every login costs at least.
local a = coffer.auth { name = "benchnull", help = "Benchmark floor." }
a:login("login", {
  handler = function(req)
    return { display_name = "bench", policies = { "default" }, ttl = 3600 }
  end,
})
"""


PARTS_ENGINE = """
-- One part of a JWT login per path, for the breakdown.
local e = coffer.engine { name = "benchparts", help = "Benchmark parts." }
local key
e:path("setup", { fields = { pem = "string", config = "map", role = "map" },
  write = function(req)
    req.storage:put_json("config", req.data.config)
    req.storage:put_json("role/bench", req.data.role)
  end })
e:path("noop", { fields = { jwt = "string" },
  write = function(req) return { data = { ok = true } } end })
e:path("verify", { fields = { jwt = "string" },
  write = function(req)
    if key == nil then
      key = coffer.jose.parse_pem(req.storage:get_json("config")
                                  .jwt_validation_pubkeys[1])
    end
    local claims, err = coffer.jose.verify(req.data.jwt, { key },
      { algs = { "RS256" }, audiences = { "%s" } })
    if claims == nil then coffer.bad_request(err) end
    return { data = { ok = true } }
  end })
e:path("reads", { fields = { jwt = "string" },
  write = function(req)
    local cfg = req.storage:get_json("config")
    local role = req.storage:get_json("role/bench")
    return { data = { ok = cfg ~= nil and role ~= nil } }
  end })
""" % AUDIENCE


def setup_parts(srv, pem, token):
    must(srv.req("POST", "sys/mounts/parts", json={"type": "benchparts"}))
    cfg = {"jwt_validation_pubkeys": [pem], "bound_issuer": ISSUER,
           "jwks_url": "", "jwks_ca_pem": "", "oidc_discovery_url": "",
           "oidc_discovery_ca_pem": "", "default_role": "",
           "jwt_supported_algs": []}
    role = {"role_type": "jwt", "bound_audiences": [AUDIENCE],
            "user_claim": "sub", "token_policies": ["default"],
            "token_ttl": 3600, "token_max_ttl": 0, "clock_skew_leeway": 60,
            "expiration_leeway": 150, "not_before_leeway": 150}
    must(srv.req("POST", "parts/setup", json={"config": cfg, "role": role}))
    body = {"jwt": token}
    must(srv.req("POST", "parts/verify", json=body))
    return [(name, ("parts/" + name, body))
            for name in ("noop", "verify", "reads")]


def setup_null(srv):
    must(srv.req("POST", "sys/auth/null", json={"type": "benchnull"}))
    return ("auth/null/login", {})


def setup_jwt(srv, mount, config, token):
    must(srv.req("POST", "sys/auth/" + mount, json={"type": "jwt"}))
    config = dict(config, bound_issuer=ISSUER)
    must(srv.req("POST", "auth/%s/config" % mount, json=config))
    must(srv.req("POST", "auth/%s/role/bench" % mount, json={
        "role_type": "jwt", "bound_audiences": [AUDIENCE],
        "user_claim": "sub", "token_policies": ["default"],
        "token_ttl": "1h"}))
    body = {"role": "bench", "jwt": token}
    # one login first: it must work, and it fills the key cache of the
    # state that answers it (each worker thread fills its own).
    must(srv.req("POST", "auth/%s/login" % mount, token=None, json=body))
    return ("auth/%s/login" % mount, body)


# ================================================================ load ==

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
"""


def lua_string(s):
    return "[==[" + s + "]==]"


def run_wrk(srv, path, body, clients, seconds, tmp, token=None):
    script = os.path.join(tmp, "login.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT % lua_string(json.dumps(body)))
        if token:
            f.write('wrk.headers["X-Vault-Token"] = %s\n' % lua_string(token))
    before = cpu_ticks(srv.proc.pid)
    p = subprocess.run(
        ["wrk", "-t", str(min(clients, 2)), "-c", str(clients),
         "-d", "%ds" % int(seconds), "--timeout", "30s", "-s", script,
         srv.url(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    after = cpu_ticks(srv.proc.pid)
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", p.stdout)
    total = re.search(r"(\d+) requests in", p.stdout)
    if p.returncode != 0 or rate is None or total is None:
        raise RuntimeError("wrk failed:\n" + p.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
    n = int(total.group(1))
    cpu_ms = (after - before) * 1000.0 / CLK_TCK / max(n, 1)
    return float(rate.group(1)), cpu_ms, int(bad.group(1)) if bad else 0


# ============================================================ baseline ==

def openssl_speed(seconds=2):
    """verify/s for rsa2048 and ecdsap256 from `openssl speed`, or None."""
    try:
        p = subprocess.run(
            ["openssl", "speed", "-seconds", str(seconds), "rsa2048",
             "ecdsap256"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    rsa_m = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+\S+\s+([0-9.]+)",
                      p.stdout, re.M)
    ec_m = re.search(r"^\s*256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+\S+\s+"
                     r"([0-9.]+)", p.stdout, re.M)
    if not rsa_m or not ec_m:
        return None
    return {"RS256": 1e6 / float(rsa_m.group(1)),
            "ES256": 1e6 / float(ec_m.group(1))}


def python_verify_us(rsa_key, ec_key, seconds=1.0):
    """Microseconds per verify with python cryptography (OpenSSL below)."""
    msg = b"x" * 400  # about a JWT's signing input
    out = {}
    cases = {
        "RS256": (rsa_key.public_key(),
                  rsa_key.sign(msg, padding.PKCS1v15(), hashes.SHA256()),
                  lambda pub, sig: pub.verify(sig, msg, padding.PKCS1v15(),
                                              hashes.SHA256())),
        "ES256": (ec_key.public_key(),
                  ec_key.sign(msg, ec.ECDSA(hashes.SHA256())),
                  lambda pub, sig: pub.verify(sig, msg,
                                              ec.ECDSA(hashes.SHA256()))),
    }
    for alg, (pub, sig, verify) in cases.items():
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(50):
                verify(pub, sig)
            n += 50
        out[alg] = (time.perf_counter() - t0) * 1e6 / n
    return out


# ================================================================ main ==

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", default="1,8",
                    help="comma-separated wrk connection counts")
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--storage", choices=("sqlite", "dev"), default="sqlite")
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = JwksServer({"keys": [jwk_of(rsa_key, "bench-rs")]})
    tmp = tempfile.mkdtemp(prefix="coffer-bench-logins-")
    plugins = os.path.join(tmp, "plugins")
    os.mkdir(plugins)
    with open(os.path.join(plugins, "benchnull.lua"), "w") as f:
        f.write(NULL_AUTH)
    with open(os.path.join(plugins, "benchparts.lua"), "w") as f:
        f.write(PARTS_ENGINE)
    srv = None
    try:
        allowed = "http://127.0.0.1:%d" % jwks.port
        if args.storage == "dev":
            srv = Server(extra_args=[
                "-workers=%d" % args.workers, "-log-level=warn",
                "-dev-login-rate=1000", "-dev-login-burst=1000",
                "-dev-plugin-dir=%s" % plugins,
                "-dev-plugin-http-allowed=" + allowed])
        else:
            shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
            srv = Real(tempfile.mkdtemp(prefix="coffer-bench-logins-",
                                        dir=shm),
                       args.workers, plugins, allowed)
        endpoints = [
            ("userpass", setup_userpass(srv)),
            ("approle", setup_approle(srv)),
            ("null", setup_null(srv)),
            ("jwt RS256", setup_jwt(srv, "jwt-rs", {
                "jwt_validation_pubkeys": [pem_of(rsa_key)]},
                make_jwt(rsa_key, "RS256", "bench-rs"))),
            ("jwt ES256", setup_jwt(srv, "jwt-es", {
                "jwt_validation_pubkeys": [pem_of(ec_key)]},
                make_jwt(ec_key, "ES256", "bench-es"))),
            ("jwt RS256 JWKS", setup_jwt(srv, "jwt-jwks", {
                "jwks_url": jwks.url},
                make_jwt(rsa_key, "RS256", "bench-rs"))),
        ]
        parts = setup_parts(srv, pem_of(rsa_key),
                            make_jwt(rsa_key, "RS256", "bench-rs"))
        print("%s storage, %d workers, %g s per run, median of %d "
              "interleaved rounds, wrk -t2; load average %.1f at start" % (
                  "sqlite (tmpfs)" if args.storage == "sqlite" else "dev",
                  args.workers, args.seconds, args.rounds,
                  os.getloadavg()[0]))
        print("CPU = the server's utime+stime per login")
        samples = {}
        for _ in range(args.rounds):
            for c in clients:
                for name, (path, body) in endpoints:
                    rate, cpu, bad = run_wrk(srv, path, body, c,
                                             args.seconds, tmp)
                    # the run's tokens go, so the next starts from the
                    # same storage (outside the measurement)
                    mount = path.split("/")[1]
                    must(srv.req("PUT", "sys/leases/revoke-prefix/auth/" +
                                 mount, timeout=600))
                    if bad:
                        raise RuntimeError("%s: %d failed logins" % (name, bad))
                    samples.setdefault((name, c), []).append((rate, cpu))
            for name, (path, body) in parts:
                c = max(clients)
                rate, cpu, bad = run_wrk(srv, path, body, c, args.seconds,
                                         tmp, token=srv.token)
                if bad:
                    raise RuntimeError("%s: %d failed requests" % (name, bad))
                samples.setdefault((name, c), []).append((rate, cpu))
        results = {k: (statistics.median(r for r, _ in v),
                       statistics.median(c for _, c in v))
                   for k, v in samples.items()}
        print("%-15s %7s %10s %9s %9s %9s" % (
            "login", "clients", "logins/s", "cpu ms", "rate/up", "cpu/up"))
        for c in clients:
            base = results[("userpass", c)]
            for name, _ in endpoints:
                rate, cpu = results[(name, c)]
                print("%-15s %7d %10.1f %9.3f %9.2f %9.4f" % (
                    name, c, rate, cpu, rate / base[0] if base[0] else 0,
                    cpu / base[1] if base[1] else 0))
        c = max(clients)
        noop = results[("noop", c)][1] * 1000
        print()
        print("parts of a JWT login, each alone in a Lua handler (%d clients; "
              "us per request beyond a noop handler's %.0f us):" % (c, noop))
        for name, what in (("verify", "coffer.jose.verify, RS256, cached key"),
                           ("reads", "storage:get_json of config and role")):
            print("  %-40s %5.0f us" % (what, results[(name, c)][1] * 1000
                                        - noop))
        print("JWKS fetches during the run: %d (cached per worker state)"
              % jwks.hits)

        speed = openssl_speed()
        py = python_verify_us(rsa_key, ec_key)
        print()
        print("one signature verification, in process:")
        for alg in ("RS256", "ES256"):
            line = "  %s: python cryptography %.1f us" % (alg, py[alg])
            if speed:
                line += ", openssl speed %.1f us" % speed[alg]
            print(line)
        print()
        print("where a JWT login's server CPU goes (us per login; null = "
              "the floor every login pays):")
        for c in clients:
            floor = results[("null", c)][1] * 1000
            print("  clients %d: null login %.0f us, approle %.0f us" % (
                c, floor, results[("approle", c)][1] * 1000))
            for name, alg in (("jwt RS256", "RS256"), ("jwt ES256", "ES256"),
                              ("jwt RS256 JWKS", "RS256")):
                total = results[(name, c)][1] * 1000
                extra = total - floor
                verify = (speed or py)[alg]
                print("    %-15s %5.0f us; beyond null %5.0f us, of which one "
                      "%s verification %4.0f us (%3.0f%%), the rest "
                      "(Lua, JSON, storage reads) %5.0f us" % (
                          name, total, extra, alg, verify,
                          100 * verify / extra if extra > 0 else 0,
                          extra - verify))
    finally:
        if srv is not None:
            srv.stop()
        jwks.stop()


if __name__ == "__main__":
    main()
