"""The server process itself: dev banner, signals, graceful shutdown, the
configurable body limit. Each test starts its own server."""

import signal
import socket
import threading
import time

import pytest
import requests

from conftest import CRASH_PATTERNS, Server
from helpers import raw_request


@pytest.fixture
def own_server():
    servers = []

    def start(*args):
        s = Server(args)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.kill()


def test_dev_banner(own_server):
    s = own_server()
    s.unseal_key()  # the banner follows the listener: wait for it
    out = s.stdout_text() + s.stderr_text()
    assert "Root Token: %s" % s.token in out, out
    assert "127.0.0.1:%d" % s.port in out
    assert s.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_clean_exit(own_server, sig):
    s = own_server()
    assert requests.get(s.url("sys/health")).status_code == 200
    s.proc.send_signal(sig)
    assert s.proc.wait(timeout=10) == 0
    assert CRASH_PATTERNS.search(s.stderr_text()) is None, s.stderr_text()


def test_generated_root_token():
    # Without -dev-root-token-id a token is generated and printed.
    import os, re, subprocess, tempfile
    from conftest import coffer_bin, free_port
    port = free_port()
    d = tempfile.mkdtemp(prefix="coffer-it-")
    out = open(os.path.join(d, "out"), "wb")
    p = subprocess.Popen([coffer_bin(), "server", "-dev",
                          "-dev-listen-address=127.0.0.1:%d" % port],
                         stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        tok = None
        while time.monotonic() < deadline and tok is None:
            time.sleep(0.1)
            text = open(os.path.join(d, "out")).read()
            m = re.search(r"Root Token: (\S+)", text)
            tok = m and m.group(1)
        assert tok, open(os.path.join(d, "out")).read()
        assert tok.startswith("hvs."), tok
        r = requests.get("http://127.0.0.1:%d/v1/auth/token/lookup-self" % port,
                         headers={"X-Vault-Token": tok})
        assert r.status_code == 200
        assert r.json()["data"]["policies"] == ["root"]
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
        out.close()


def test_inflight_request_finishes_on_sigterm(own_server):
    """A request whose body is still arriving when SIGTERM comes is served."""
    s = own_server()
    s.req("POST", "sys/mounts/slow", json={"type": "kv"})
    body = b'{"v":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=20)
    try:
        head = ("PUT /v1/slow/k HTTP/1.1\r\nHost: x\r\nX-Vault-Token: %s\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n" % (s.token, len(body)))
        sock.sendall(head.encode())
        sock.sendall(body[:1024 * 1024])
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        sock.sendall(body[1024 * 1024:])
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    assert data.startswith(b"HTTP/1.1 204"), data[:200]
    assert s.proc.wait(timeout=10) == 0


def test_concurrent_load_then_sigterm(own_server):
    s = own_server("-workers=4")
    errors = []

    def hammer(i):
        with requests.Session() as sess:
            sess.headers["X-Vault-Token"] = s.token
            for j in range(30):
                try:
                    r = sess.post(s.url("secret/data/load-%d-%d" % (i, j)),
                                  json={"data": {"j": j}})
                    if r.status_code != 200:
                        errors.append(r.status_code)
                except requests.RequestException as e:
                    errors.append(repr(e))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert s.stop() == 0
    assert CRASH_PATTERNS.search(s.stderr_text()) is None


def test_max_request_size_configurable(own_server):
    s = own_server("-max-request-size=1024")
    s.req("POST", "sys/mounts/small", json={"type": "kv"})
    r = s.req("PUT", "small/ok", json={"v": "x" * 100})
    assert r.status_code == 204, r.text
    r = raw_request(s.addr, "PUT", "/v1/small/big",
                    headers={"X-Vault-Token": s.token},
                    body=b'{"v":"' + b"x" * 4096 + b'"}')
    assert r.status_code == 413, r
    assert r.json() == {"errors": ["error parsing JSON"]}
    assert s.req("GET", "sys/health").status_code == 200
    assert s.stop() == 0


def test_port_in_use_fails_cleanly(own_server):
    s = own_server()
    import subprocess
    from conftest import coffer_bin
    p = subprocess.run([coffer_bin(), "server", "-dev",
                        "-dev-listen-address=127.0.0.1:%d" % s.port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
    assert p.returncode != 0
    assert p.stderr.strip()
    assert CRASH_PATTERNS.search(p.stderr.decode("utf-8", "replace")) is None
    assert s.req("GET", "sys/health").status_code == 200


@pytest.mark.parametrize("args", [["-no-such-flag"], ["-workers=0"], ["-workers=abc"]])
def test_bad_server_flags(args):
    import subprocess
    from conftest import coffer_bin
    p = subprocess.run([coffer_bin(), "server", "-dev"] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
    assert p.returncode != 0
    assert p.stderr.strip()
