"""coffer.http (issue 10): outbound HTTP from Lua plugins, end to end.

A dev server loads the engine in data/plugin_http/httptest.lua, whose paths
hand the request body to coffer.http.request (or its sugar) and answer what
came back: {ok, status, headers, body}, {ok = false, err}, or {raised} when
coffer.http raised. The far ends are local Python servers made here: plain
HTTP, HTTPS with a CA made at test time by `cryptography` (trusted through
ca_pem), HTTPS whose certificate names another host, mutual TLS, a listener
that never answers and a handler that trickles bytes.

The allowlist comes from -dev-plugin-http-allowed flags; a second dev server
without any shows the default (https only, warning at start-up), and a real
server shows the configuration key.
"""

import datetime
import ipaddress
import json
import os
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Server, check_server_health
from realserver import RealServer

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_DIR = os.path.join(HERE, "data", "plugin_http")
SECRET = "SEKRET-q7Zp"

# ------------------------------------------------------------ certificates --


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make_ca(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_leaf(ca, cn, dns=(), ips=(), client=False):
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    sans = [x509.DNSName(d) for d in dns] + \
           [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                        critical=True)
         .add_extension(x509.ExtendedKeyUsage(
             [x509.ExtendedKeyUsageOID.CLIENT_AUTH if client
              else x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


# ----------------------------------------------------------- fake servers --

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        self.server.seen.append((self.command, self.path,
                                 dict((k.lower(), v)
                                      for k, v in self.headers.items())))
        if u.path.startswith("/status/"):
            code = int(u.path.split("/")[2])
            return self._send(code, b"status %d" % code,
                              [("X-Code", str(code))])
        if u.path == "/redirect":
            return self._send(int(q.get("code", "302")), b"moved",
                              [("Location", q["to"])])
        if u.path == "/loop":
            return self._send(302, b"", [("Location", "/loop")])
        if u.path == "/big":
            return self._send(200, b"x" * int(q["n"]))
        if u.path == "/chunked":
            return self._chunked(int(q["n"]))
        if u.path == "/slow":
            return self._trickle()
        if u.path == "/multi":
            return self._send(200, b"m", [("X-Multi", "a"), ("X-Multi", "b")])
        cert = None
        if hasattr(self.connection, "getpeercert"):
            peer = self.connection.getpeercert()
            if peer:
                cert = dict(x[0] for x in peer["subject"])["commonName"]
        echo = {"method": self.command, "path": u.path, "query": u.query,
                "headers": dict((k.lower(), v)
                                for k, v in self.headers.items()),
                "body": body.decode("latin-1"), "client_cn": cert}
        self._send(200, json.dumps(echo).encode(),
                   [("Content-Type", "application/json"),
                    ("X-Upper-Case", "Kept")])

    def _chunked(self, n):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        block = b"y" * 1000
        while n > 0:
            piece = block[:min(n, len(block))]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            n -= len(piece)
        self.wfile.write(b"0\r\n\r\n")

    def _trickle(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            for _ in range(50):
                self.wfile.write(b"z")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class Fake:
    """One fake server on a loopback port, HTTP or HTTPS."""

    def __init__(self, tls=None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.seen = []
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket,
                                                server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def seen(self):
        return self.httpd.seen

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def tls_context(tmp, cert_key, client_ca=None):
    key, cert = cert_key
    cf = os.path.join(tmp, "c%d.pem" % id(cert))
    kf = os.path.join(tmp, "k%d.pem" % id(cert))
    with open(cf, "w") as f:
        f.write(_pem(cert))
    with open(kf, "w") as f:
        f.write(_pem(key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cf, kf)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=_pem(client_ca))
    return ctx


class World:
    """Every far end, and the dev server allowed to reach some of them."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="coffer-http-")
        self.ca = make_ca("coffer-test-ca")
        self.other_ca = make_ca("some-other-ca")
        self.ca_pem = _pem(self.ca[1])
        self.other_ca_pem = _pem(self.other_ca[1])
        good = make_leaf(self.ca, "localhost", dns=["localhost"],
                         ips=["127.0.0.1"])
        wrong = make_leaf(self.ca, "other.example", dns=["other.example"])
        client = make_leaf(self.ca, "plugin-client", client=True)
        self.client_cert_pem = _pem(client[1])
        self.client_key_pem = _pem(client[0])
        stranger = make_leaf(self.other_ca, "stranger", client=True)
        self.stranger_cert_pem = _pem(stranger[1])
        self.stranger_key_pem = _pem(stranger[0])
        self.plain = Fake()
        self.plain2 = Fake()  # never in the allowlist
        self.tls = Fake(tls_context(self.tmp, good))
        self.tls_wrong = Fake(tls_context(self.tmp, wrong))
        self.mtls = Fake(tls_context(self.tmp, good, client_ca=self.ca[1]))
        self.silent = socket.socket()
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen(16)  # never accepted: connects, never answers
        self.silent_port = self.silent.getsockname()[1]
        allowed = [
            "http://127.0.0.1:%d" % self.plain.port,
            "http://localhost:%d/only/" % self.plain.port,
            "http://127.0.0.1:%d" % self.silent_port,
            "https://localhost:%d" % self.tls.port,
            "https://127.0.0.1:%d" % self.tls_wrong.port,
            "https://localhost:%d" % self.mtls.port,
        ]
        self.srv = Server(["-workers=4", "-dev-plugin-dir=%s" % PLUGIN_DIR] +
                          ["-dev-plugin-http-allowed=%s" % a for a in allowed])
        r = self.srv.req("POST", "sys/mounts/httptest",
                         json={"type": "httptest"})
        assert r.status_code == 204, r.text

    def url(self, fake, path, host="127.0.0.1", scheme="http"):
        return "%s://%s:%d%s" % (scheme, host, fake.port, path)

    def call(self, **opts):
        r = self.srv.req("POST", "httptest/call", json=opts)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def sugar(self, **args):
        r = self.srv.req("POST", "httptest/sugar", json=args)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def close(self):
        status = self.srv.stop()
        for f in (self.plain, self.plain2, self.tls, self.tls_wrong,
                  self.mtls):
            f.close()
        self.silent.close()
        assert status == 0, self.srv.stderr_text()[-3000:]


@pytest.fixture(scope="module")
def w():
    world = World()
    yield world
    world.close()


@pytest.fixture(autouse=True)
def _w_alive(request):
    yield
    if "w" in request.fixturenames:
        problem = check_server_health(request.getfixturevalue("w").srv)
        if problem:
            pytest.fail(problem, pytrace=False)


def ok(d):
    assert d.get("ok") is True, d
    return d


def err(d, want):
    assert d.get("ok") is False, d
    assert want in d["err"], d["err"]
    assert SECRET not in d["err"], d["err"]
    return d["err"]


def echo(d):
    return json.loads(ok(d)["body"])


# ------------------------------------------------------------------ plain --

def test_plain_http_allowed_by_the_allowlist(w):
    d = ok(w.call(url=w.url(w.plain, "/echo?a=1&b=two")))
    assert d["status"] == 200
    e = json.loads(d["body"])
    assert e["method"] == "GET" and e["path"] == "/echo"
    assert e["query"] == "a=1&b=two"
    assert e["headers"]["user-agent"].startswith("Coffer/")
    # Response header names come lower-cased.
    assert d["headers"]["content-type"] == "application/json"
    assert d["headers"]["x-upper-case"] == "Kept"
    assert "X-Upper-Case" not in d["headers"]


def test_methods_bodies_and_headers(w):
    u = w.url(w.plain, "/echo")
    e = echo(w.call(url=u, method="POST", json={"k": [1, 2], "s": "v"},
                    headers={"Authorization": "Bearer t0k",
                             "X-Empty": ""}))
    assert e["method"] == "POST"
    assert json.loads(e["body"]) == {"k": [1, 2], "s": "v"}
    assert e["headers"]["content-type"] == "application/json"
    assert e["headers"]["authorization"] == "Bearer t0k"
    assert e["headers"]["x-empty"] == ""
    assert "expect" not in e["headers"]
    # A raw body is sent as given, with no invented form content type.
    e = echo(w.call(url=u, method="PUT", body="a=1&b=\x01raw"))
    assert e["method"] == "PUT" and e["body"] == "a=1&b=\x01raw"
    assert "content-type" not in e["headers"]
    e = echo(w.call(url=u, method="PATCH", body="p",
                    headers={"Content-Type": "text/plain"}))
    assert e["method"] == "PATCH" and e["headers"]["content-type"] == \
        "text/plain"
    e = echo(w.call(url=u, method="delete"))
    assert e["method"] == "DELETE" and e["body"] == ""
    e = echo(w.call(url=u, method="PUT"))
    assert e["headers"]["content-length"] == "0"
    d = ok(w.call(url=u, method="HEAD"))
    assert d["status"] == 200 and d["body"] == ""
    # A large body goes out without Expect: 100-continue (curl adds it to
    # large bodies, then waits up to 1 s for the server's 100).
    e = echo(w.call(url=u, method="POST", body="b" * 200000))
    assert len(e["body"]) == 200000
    assert "expect" not in e["headers"]


def test_sugar(w):
    u = w.url(w.plain, "/echo?s=1")
    assert echo(w.sugar(fn="get", url=u))["method"] == "GET"
    e = echo(w.sugar(fn="post", url=u, body="pb",
                     opts={"headers": {"X-A": "1"}}))
    assert e["method"] == "POST" and e["body"] == "pb"
    assert e["headers"]["x-a"] == "1"
    e = echo(w.sugar(fn="post", url=u, opts={"json": {"j": True}}))
    assert json.loads(e["body"]) == {"j": True}
    assert echo(w.sugar(fn="put", url=u, body="x"))["method"] == "PUT"
    assert echo(w.sugar(fn="delete", url=u))["method"] == "DELETE"
    d = w.sugar(fn="get", url=u, opts={"url": u})
    assert "'url' is an argument here" in d["raised"], d


def test_repeated_response_headers_are_joined(w):
    d = ok(w.call(url=w.url(w.plain, "/multi")))
    assert d["headers"]["x-multi"] == "a, b"


def test_4xx_and_5xx_are_responses(w):
    for code in (400, 403, 404, 429, 500, 503):
        d = ok(w.call(url=w.url(w.plain, "/status/%d" % code)))
        assert d["status"] == code
        assert d["body"] == "status %d" % code
        assert d["headers"]["x-code"] == str(code)


def test_outside_the_allowlist(w):
    before = len(w.plain2.seen)
    e = err(w.call(url=w.url(w.plain2, "/echo?token=" + SECRET)),
            "host not in plugin_http_allowed")
    assert e == ("http: GET http://127.0.0.1:%d/echo: host not in "
                 "plugin_http_allowed" % w.plain2.port)
    assert len(w.plain2.seen) == before, "the refused call went out"
    # https to an allowed host:port is still another scheme.
    err(w.call(url=w.url(w.plain, "/echo", scheme="https")),
        "host not in plugin_http_allowed")
    # A path-prefix entry: localhost:<plain>/only/ and below.
    ok(w.call(url=w.url(w.plain, "/only/echo", host="localhost")))
    ok(w.call(url=w.url(w.plain, "/only", host="localhost")))
    err(w.call(url=w.url(w.plain, "/onlyx", host="localhost")),
        "path not in plugin_http_allowed")
    err(w.call(url=w.url(w.plain, "/only/../admin", host="localhost")),
        "path not in plugin_http_allowed")
    err(w.call(url=w.url(w.plain, "/only/%2e%2e/admin", host="localhost")),
        "path not in plugin_http_allowed")
    err(w.call(url=w.url(w.plain, "/echo", host="LOCALHOST")),
        "path not in plugin_http_allowed")
    # Other schemes and credentials in the URL never go out.
    err(w.call(url="file:///etc/passwd"), "only http:// and https://")
    e = err(w.call(url="http://u:%s@127.0.0.1:%d/echo" % (SECRET,
                                                            w.plain.port)),
            "must not contain credentials")


# -------------------------------------------------------------------- TLS --

def test_https_trusts_exactly_ca_pem(w):
    u = w.url(w.tls, "/echo?k=" + SECRET, host="localhost", scheme="https")
    d = ok(w.call(url=u, ca_pem=w.ca_pem))
    assert json.loads(d["body"])["query"] == "k=" + SECRET
    # Without ca_pem the system store is used, which does not know our CA.
    e = err(w.call(url=u), "TLS certificate verification failed")
    assert e.startswith("http: GET https://localhost:%d/echo: " % w.tls.port)
    err(w.call(url=u, ca_pem=w.other_ca_pem),
        "TLS certificate verification failed")
    err(w.call(url=u, ca_pem="not a PEM"), "ca_pem")


def test_https_wrong_hostname_refused(w):
    u = w.url(w.tls_wrong, "/echo?k=" + SECRET, scheme="https")
    e = err(w.call(url=u, ca_pem=w.ca_pem),
            "TLS certificate verification failed")
    assert "127.0.0.1" in e


def test_mutual_tls(w):
    u = w.url(w.mtls, "/echo", host="localhost", scheme="https")
    d = ok(w.call(url=u, ca_pem=w.ca_pem, client_cert_pem=w.client_cert_pem,
                  client_key_pem=w.client_key_pem))
    assert json.loads(d["body"])["client_cn"] == "plugin-client"
    # No client certificate, or one from a CA the server does not trust.
    for extra in ({}, {"client_cert_pem": w.stranger_cert_pem,
                       "client_key_pem": w.stranger_key_pem}):
        d = w.call(url=u, ca_pem=w.ca_pem, **extra)
        assert d.get("ok") is False, d
        assert d["err"].startswith("http: GET https://localhost:%d/echo: "
                                   % w.mtls.port), d
    # A key that does not belong to the certificate.
    err(w.call(url=u, ca_pem=w.ca_pem, client_cert_pem=w.client_cert_pem,
               client_key_pem=w.stranger_key_pem), "client_")
    d = w.call(url=u, client_cert_pem=w.client_cert_pem)
    assert "client_key_pem" in d["raised"], d


# -------------------------------------------------------------- redirects --

def test_redirects_off_by_default(w):
    target = w.url(w.plain, "/echo")
    u = w.url(w.plain, "/redirect?to=" + urllib.parse.quote(target))
    d = ok(w.call(url=u))
    assert d["status"] == 302 and d["headers"]["location"] == target


def test_redirects_followed_and_checked(w):
    target = w.url(w.plain, "/echo?after=1")
    u = w.url(w.plain, "/redirect?to=" + urllib.parse.quote(target))
    e = echo(w.call(url=u, follow_redirects=True,
                    headers={"Authorization": "Bearer same-origin"}))
    assert e["query"] == "after=1"
    assert e["headers"]["authorization"] == "Bearer same-origin"
    # 303 turns a POST into a GET without its body; 307 keeps both.
    e = echo(w.call(url=u + "&code=303", method="POST", body="b",
                    follow_redirects=True))
    assert e["method"] == "GET" and e["body"] == ""
    e = echo(w.call(url=u + "&code=307", method="POST", body="b",
                    follow_redirects=True))
    assert e["method"] == "POST" and e["body"] == "b"
    # Credentials stay with their origin.
    other = w.url(w.plain, "/only/echo", host="localhost")
    e = echo(w.call(url=w.url(w.plain, "/redirect?to=" +
                              urllib.parse.quote(other)),
                    follow_redirects=True,
                    headers={"Authorization": "Bearer " + SECRET,
                             "X-Other": "kept"}))
    assert "authorization" not in e["headers"]
    assert e["headers"]["x-other"] == "kept"


def test_redirect_to_a_disallowed_host_refused(w):
    before = len(w.plain2.seen)
    target = w.url(w.plain2, "/echo?stolen=" + SECRET)
    u = w.url(w.plain, "/redirect?to=" + urllib.parse.quote(target) +
              "&q=" + SECRET)
    e = err(w.call(url=u, follow_redirects=True),
            "redirect to http://127.0.0.1:%d/echo refused: host not in "
            "plugin_http_allowed" % w.plain2.port)
    assert e.startswith("http: GET http://127.0.0.1:%d/redirect: "
                        % w.plain.port)
    assert len(w.plain2.seen) == before
    # Redirects to other schemes are refused the same way.
    u = w.url(w.plain, "/redirect?to=" + urllib.parse.quote("file:///x"))
    err(w.call(url=u, follow_redirects=True), "only http:// and https://")
    err(w.call(url=w.url(w.plain, "/loop"), follow_redirects=True),
        "more than 3 redirects")


# ------------------------------------------------------------ size, time --

def test_oversize_body_refused(w):
    for path in ("/big?n=5000", "/chunked?n=5000"):
        e = err(w.call(url=w.url(w.plain, path), max_body=1000),
                "response larger than 1000 bytes")
        assert e.startswith("http: GET http://127.0.0.1:%d/" % w.plain.port)
    d = ok(w.call(url=w.url(w.plain, "/chunked?n=1000"), max_body=1000))
    assert len(d["body"]) == 1000
    d = ok(w.call(url=w.url(w.plain, "/big?n=1000"), max_body=1000))
    assert len(d["body"]) == 1000
    # The default cap is 1 MiB.
    err(w.call(url=w.url(w.plain, "/chunked?n=%d" % (1024 * 1024 + 1))),
        "response larger than 1048576 bytes")


def test_slow_servers_bounded_by_timeout(w):
    silent = "http://127.0.0.1:%d/never?k=%s" % (w.silent_port, SECRET)
    trickle = w.url(w.plain, "/slow?k=" + SECRET)

    def timed(**opts):
        t0 = time.monotonic()
        d = w.call(**opts)
        return d, time.monotonic() - t0

    with ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(timed, url=silent, timeout=1.5),
                pool.submit(timed, url=trickle, timeout=1.5)]
        # Other requests are answered while both calls hang.
        time.sleep(0.2)
        r = w.srv.req("GET", "httptest/ping")
        assert r.status_code == 200
        assert not any(f.done() for f in slow)
        for _ in range(5):
            assert w.srv.req("GET", "httptest/ping").status_code == 200
            ok(w.call(url=w.url(w.plain, "/echo")))
        for f in slow:
            d, took = f.result()
            err(d, "timed out after 1.5 s")
            assert 1.3 < took < 5.0, took


def test_parallel_calls_on_every_worker(w):
    """Each call has its own curl handle: many at once, mixed plain, TLS
    and mutual TLS, on all four workers, all answer correctly."""
    tls = w.url(w.tls, "/echo", host="localhost", scheme="https")
    mtls = w.url(w.mtls, "/echo", host="localhost", scheme="https")

    def one(i):
        kind = i % 3
        if kind == 0:
            d = w.call(url=w.url(w.plain, "/echo?i=%d" % i))
        elif kind == 1:
            d = w.call(url=tls + "?i=%d" % i, ca_pem=w.ca_pem)
        else:
            d = w.call(url=mtls + "?i=%d" % i, ca_pem=w.ca_pem,
                       client_cert_pem=w.client_cert_pem,
                       client_key_pem=w.client_key_pem)
        return json.loads(ok(d)["body"])["query"]

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(48)))
    assert got == ["i=%d" % i for i in range(48)]


def test_header_injection_refused(w):
    before = len(w.plain.seen)
    for value in ("a\r\nX-Injected: 1", "a\nb", "a\rb"):
        e = err(w.call(url=w.url(w.plain, "/echo?k=" + SECRET),
                       headers={"X-Token": value}),
                "the value of header 'X-Token' contains CR, LF or NUL")
        assert "Injected" not in e
    d = w.call(url=w.url(w.plain, "/echo"), headers={"X-A\r\nB": "1"})
    assert "invalid header name" in d["raised"], d
    err(w.call(url=w.url(w.plain, "/echo\r\nX-Injected: 1")),
        "not a valid URL")
    assert len(w.plain.seen) == before, "an injected request went out"


def test_errors_never_show_the_query(w):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    closed = port.getsockname()[1]
    port.close()
    cases = [
        (w.url(w.plain2, "/p?secret=" + SECRET), {}),
        ("http://127.0.0.1:%d/x?secret=%s" % (w.silent_port, SECRET),
         {"timeout": 0.2}),
        (w.url(w.tls, "/p?secret=" + SECRET, host="localhost",
               scheme="https"), {}),
        (w.url(w.tls_wrong, "/p?secret=" + SECRET, scheme="https"),
         {"ca_pem": w.ca_pem}),
        (w.url(w.plain, "/big?n=99&secret=" + SECRET), {"max_body": 10}),
        (w.url(w.plain, "/loop?secret=" + SECRET),
         {"follow_redirects": True}),
    ]
    for url, extra in cases:
        d = w.call(url=url, **extra)
        assert d.get("ok") is False, (url, d)
        assert SECRET not in d["err"] and "secret=" not in d["err"], d
    assert SECRET not in w.srv.stderr_text()
    assert closed > 0


def test_unknown_option_raises(w):
    d = w.call(url=w.url(w.plain, "/echo"), bogus=1)
    assert "unknown option 'bogus'" in d["raised"], d
    d = w.call(url=w.url(w.plain, "/echo"), body="x", json={"a": 1},
               method="POST")
    assert "give 'body' or 'json', not both" in d["raised"], d
    d = w.call(url=w.url(w.plain, "/echo"), timeout=61)
    assert "at most 60 seconds" in d["raised"], d


# ------------------------------------------------- without an allowlist --

def test_default_without_allowlist(w):
    s = Server(["-workers=2", "-dev-plugin-dir=%s" % PLUGIN_DIR])
    try:
        assert "plugin_http_allowed is not set" in s.stderr_text()
        r = s.req("POST", "sys/mounts/httptest", json={"type": "httptest"})
        assert r.status_code == 204, r.text
        before = len(w.plain.seen)
        r = s.req("POST", "httptest/call",
                  json={"url": w.url(w.plain, "/echo")})
        err(r.json()["data"], "plain http:// is allowed only for URLs "
                              "listed in plugin_http_allowed")
        assert len(w.plain.seen) == before
        r = s.req("POST", "httptest/call",
                  json={"url": w.url(w.tls, "/echo", host="localhost",
                                     scheme="https"), "ca_pem": w.ca_pem})
        ok(r.json()["data"])
    finally:
        assert s.stop() == 0


def test_configuration_file_key(w):
    tmp = tempfile.mkdtemp(prefix="coffer-http-real-")
    conf = ('plugin_directory = "%s"\nplugin_http_allowed = { "%s" }\n'
            % (PLUGIN_DIR, w.url(w.plain, "/only/", host="localhost")))
    srv = RealServer(tmp, storage="inmem", extra_config=conf)
    srv.start()
    try:
        assert "plugin_http_allowed is not set" not in srv.log()
        keys, root = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        r = srv.req("POST", "sys/mounts/httptest", json={"type": "httptest"})
        assert r.status_code == 204, r.text
        r = srv.req("POST", "httptest/call",
                    json={"url": w.url(w.plain, "/only/echo",
                                       host="localhost")})
        ok(r.json()["data"])
        r = srv.req("POST", "httptest/call",
                    json={"url": w.url(w.plain, "/echo")})
        err(r.json()["data"], "host not in plugin_http_allowed")
    finally:
        srv.stop()
