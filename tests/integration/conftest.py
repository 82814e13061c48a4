"""Integration-test fixtures: a real Coffer dev server per test session.

Every test talks to a real `coffer server -dev` started on a free port, through
the clients people actually use: hvac 0.11.2, raw HTTP (requests, or a socket
when the test needs bytes requests would not send), and the `coffer` CLI.

The server's stderr is kept in a file. After every test the server must still
be alive and its log must show no crash; at the end it is stopped with SIGTERM
and must exit 0 within 10 s. A test that kills or crashes the server fails,
however its own assertions went.

Environment:
    COFFER_BIN              path to the coffer binary (default: build/coffer)
    COFFER_PYTEST_COUNTS    if set, "passed failed exitstatus" is written there
                            at the end (tests/run-all.sh sums it with unit tests)
"""

import collections
import json
import os
import re
import secrets
import signal
import subprocess
import tempfile
import time
import uuid

import hvac
import pytest
import requests

from helpers import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Signs that the server died badly. Matched against its stderr.
CRASH_PATTERNS = re.compile(
    r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
    r"runtime error:|"
    r"Segmentation fault|SIGSEGV|SIGABRT|Aborted|core dumped|"
    r"assertion failed|Assertion .* failed|COFFER_ASSERT|"
    r"double free|free\(\): invalid|malloc\(\): |heap-use-after-free|"
    r"PANIC: unprotected error",
    re.IGNORECASE,
)

CliResult = collections.namedtuple("CliResult", "rc stdout stderr")


def coffer_bin():
    path = os.environ.get("COFFER_BIN") or os.path.join(ROOT, "build", "coffer")
    return os.path.abspath(path)


class Server:
    """A running Coffer dev server and the clients to drive it."""

    def __init__(self, extra_args=(), env=None):
        self.bin = coffer_bin()
        self.port = free_port()
        self.addr = "http://127.0.0.1:%d" % self.port
        self.token = "root-" + secrets.token_hex(8)
        self.logdir = tempfile.mkdtemp(prefix="coffer-it-")
        self.stdout_path = os.path.join(self.logdir, "stdout.log")
        self.stderr_path = os.path.join(self.logdir, "stderr.log")
        self._log_offset = 0
        args = [
            self.bin, "server", "-dev",
            "-dev-root-token-id=%s" % self.token,
            "-dev-listen-address=127.0.0.1:%d" % self.port,
        ] + list(extra_args)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        penv = dict(os.environ)
        penv.update(env or {})
        self.proc = subprocess.Popen(
            args, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
            cwd=ROOT, env=penv,
        )
        self.http = requests.Session()
        self.http.headers["X-Vault-Token"] = self.token
        self.client = hvac.Client(url=self.addr, token=self.token)
        self._wait_ready()

    # -- lifecycle ---------------------------------------------------------

    def _wait_ready(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "coffer server exited with %s before serving:\n%s"
                    % (self.proc.returncode, self.stderr_text()))
            try:
                r = requests.get(self.addr + "/v1/sys/health", timeout=1)
                if r.status_code in (200, 429, 472, 473, 501, 503):
                    return
                last = r.status_code
            except requests.RequestException as e:
                last = e
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("coffer server not ready after %ss (last: %s)\n%s"
                           % (timeout, last, self.stderr_text()))

    def stop(self, timeout=10.0):
        """SIGTERM, wait; returns the exit status (None if it hung)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self._close_files()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_files()

    def _close_files(self):
        for f in (self._out, self._err):
            if not f.closed:
                f.close()
        self.http.close()

    def alive(self):
        return self.proc.poll() is None

    def stdout_text(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def unseal_key(self, timeout=10.0):
        """The dev banner's unseal key. The banner is printed after the
        listener starts, so a server that already answers may not have
        printed it yet: wait for it."""
        deadline = time.time() + timeout
        while True:
            m = re.search(r"Unseal Key: (\S+)", self.stdout_text())
            if m:
                return m.group(1)
            if time.time() > deadline:
                raise AssertionError("no unseal key in the dev banner:\n" +
                                     self.stdout_text()[-2000:])
            time.sleep(0.05)

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def new_stderr(self):
        """stderr written since the previous call."""
        with open(self.stderr_path, "rb") as f:
            f.seek(self._log_offset)
            data = f.read()
        self._log_offset += len(data)
        return data.decode("utf-8", "replace")

    # -- clients -----------------------------------------------------------

    def url(self, path):
        return self.addr + "/v1/" + path.lstrip("/")

    def req(self, method, path, token=True, **kw):
        """Raw HTTP through requests. token=True uses root, a string uses
        that token, None sends no token at all."""
        headers = dict(kw.pop("headers", {}) or {})
        if token is True:
            headers.setdefault("X-Vault-Token", self.token)
        elif token:
            headers.setdefault("X-Vault-Token", token)
        kw.setdefault("timeout", 30)
        with requests.Session() as s:
            return s.request(method, self.url(path), headers=headers, **kw)

    def hvac_client(self, token=None):
        return hvac.Client(url=self.addr, token=token or self.token)

    def cli(self, *args, token=None, stdin=None, env=None, timeout=30):
        """Runs `coffer <args>` against this server. Returns rc/stdout/stderr."""
        e = dict(os.environ)
        for k in ("VAULT_ADDR", "VAULT_TOKEN", "COFFER_ADDR", "COFFER_TOKEN",
                  "VAULT_FORMAT", "VAULT_CLI_NO_COLOR"):
            e.pop(k, None)
        e["VAULT_ADDR"] = self.addr
        e["VAULT_TOKEN"] = self.token if token is None else token
        e["HOME"] = self.logdir  # no ~/.vault-token from the developer
        if env:
            e.update(env)
        p = subprocess.run(
            [self.bin] + [str(a) for a in args], env=e,
            input=stdin.encode() if isinstance(stdin, str) else stdin,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
        )
        return CliResult(p.returncode, p.stdout.decode("utf-8", "replace"),
                         p.stderr.decode("utf-8", "replace"))

    # -- helpers shared by tests -------------------------------------------

    def mount(self, type_, path=None, **body):
        path = path or "%s-%s" % (type_.replace("_", "-"), uuid.uuid4().hex[:8])
        body["type"] = type_
        r = self.req("POST", "sys/mounts/" + path, json=body)
        assert r.status_code == 204, (r.status_code, r.text)
        return path

    def unmount(self, path):
        self.req("DELETE", "sys/mounts/" + path)


def check_server_health(server):
    """Returns an error text if the server died or logged a crash."""
    problems = []
    if not server.alive():
        problems.append("coffer server is no longer running (exit status %s)"
                        % server.proc.returncode)
    new = server.new_stderr()
    m = CRASH_PATTERNS.search(new)
    if m:
        start = max(0, m.start() - 400)
        problems.append("coffer server stderr shows a crash:\n%s"
                        % new[start:m.end() + 1500])
    return "\n".join(problems)


# STYLE rule 40 (OpenResty's repeat_each(2)): every case runs twice against
# a server with one worker thread, so the second run meets the same
# lua_State the first one left behind.
WORKERS = os.environ.get("COFFER_IT_WORKERS", "1")
REPEAT = int(os.environ.get("COFFER_IT_REPEAT", "2"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "once: run this case once, not REPEAT times. For cases "
        "whose time goes into waiting out a timeout or a stall; each one "
        "checks, after its wait, that the server and its Lua state still "
        "serve, which is what the second run would show.")


def pytest_generate_tests(metafunc):
    once = metafunc.definition.get_closest_marker("once") is not None
    if "_repeat" in metafunc.fixturenames and REPEAT > 1 and not once:
        metafunc.parametrize("_repeat", range(1, REPEAT + 1),
                             ids=["run%d" % i for i in range(1, REPEAT + 1)])


@pytest.fixture(autouse=True)
def _repeat(request):
    return getattr(request, "param", 1)


@pytest.fixture(scope="session")
def server():
    if not os.access(coffer_bin(), os.X_OK):
        pytest.fail("COFFER_BIN %s is not an executable" % coffer_bin())
    srv = Server(["-workers=%s" % WORKERS] if WORKERS else [])
    yield srv
    status = srv.stop(timeout=10)
    log = srv.stderr_text()
    m = CRASH_PATTERNS.search(log)
    assert m is None, "server stderr shows a crash:\n" + log[-4000:]
    assert status == 0, ("coffer server did not exit 0 within 10 s of SIGTERM "
                         "(status %s)\n%s" % (status, log[-4000:]))


@pytest.fixture(autouse=True)
def _server_survives(request):
    """After each test: the shared server must still run and not have crashed."""
    yield
    if "server" not in request.fixturenames:
        return
    srv = request.getfixturevalue("server")
    problem = check_server_health(srv)
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def kv1(server):
    """A fresh KV v1 mount, removed afterwards."""
    path = server.mount("kv", "kv1-" + uuid.uuid4().hex[:8])
    yield path
    server.unmount(path)


@pytest.fixture
def kv2(server):
    """A fresh KV v2 mount, removed afterwards."""
    path = server.mount("kv", "kv2-" + uuid.uuid4().hex[:8],
                        options={"version": "2"})
    yield path
    server.unmount(path)


def load_cases(name):
    """Reads a JSON table of cases kept next to the tests (data/<name>)."""
    with open(os.path.join(HERE, "data", name)) as f:
        return json.load(f)


def write_durations(tr, path):
    """Seconds each test file took (setup, calls and teardown of its
    cases, module fixtures included), a line "SECONDS FILE" each: what
    tests/split-halves.py balances the two halves of run-all.sh with."""
    per_file = {}
    for reports in tr.stats.values():
        for r in reports:
            nodeid = getattr(r, "nodeid", "")
            if nodeid and hasattr(r, "duration"):
                name = os.path.basename(nodeid.split("::")[0])
                per_file[name] = per_file.get(name, 0.0) + r.duration
    with open(path, "w") as f:
        for name, secs in sorted(per_file.items()):
            f.write("%.1f %s\n" % (secs, name))


def pytest_sessionfinish(session, exitstatus):
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    durations = os.environ.get("COFFER_PYTEST_DURATIONS")
    if durations and tr is not None:
        write_durations(tr, durations)
    path = os.environ.get("COFFER_PYTEST_COUNTS")
    if not path:
        return
    passed = failed = 0
    if tr is not None:
        stats = tr.stats
        failed_ids = {r.nodeid for r in stats.get("failed", [])}
        failed_ids |= {r.nodeid for r in stats.get("error", [])}
        passed_ids = {r.nodeid for r in stats.get("passed", [])
                      if r.when == "call"} - failed_ids
        passed, failed = len(passed_ids), len(failed_ids)
        if failed == 0 and stats.get("error"):
            failed = len(stats["error"])
    with open(path, "w") as f:
        f.write("%d %d %d\n" % (passed, failed, int(exitstatus)))
