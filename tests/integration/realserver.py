"""A real (non-dev) Coffer server: a Lua config file, persistent storage,
init / unseal, restarts and crashes.

    srv = RealServer(tmpdir, storage="sqlite")
    srv.start(); keys, root = srv.init(shares=3, threshold=2); srv.unseal(keys)
    srv.stop(); srv.start(); srv.unseal(keys)      # state survives
    srv.kill9()                                      # crash at any moment
"""

import os
import signal
import subprocess
import time

import hvac
import requests

from conftest import CRASH_PATTERNS, coffer_bin, ROOT
from helpers import free_port  # noqa: F401 (the benchmarks import it here)


class RealServer:
    def __init__(self, workdir, storage="sqlite", pg_url=None, tls=None,
                 extra_config=""):
        self.dir = workdir
        self.port = free_port()
        self.scheme = "https" if tls else "http"
        self.addr = "%s://127.0.0.1:%d" % (self.scheme, self.port)
        self.db_path = os.path.join(workdir, "coffer.db")
        self.config = os.path.join(workdir, "coffer.lua")
        self.log_path = os.path.join(workdir, "server.log")
        self.tls = tls
        if storage == "sqlite":
            block = 'storage "sqlite" { path = "%s" }' % self.db_path
        elif storage == "postgresql":
            block = ('storage "postgresql" { connection_url = "%s", '
                     'table = "coffer_kv" }' % pg_url)
        else:
            block = 'storage "inmem" {}'
        if tls:
            listener = ('listener "tcp" { address = "127.0.0.1:%d", '
                        'tls_cert_file = "%s", tls_key_file = "%s" }'
                        % (self.port, tls[0], tls[1]))
        else:
            listener = ('listener "tcp" { address = "127.0.0.1:%d", '
                        'tls_disable = true }' % self.port)
        with open(self.config, "w") as f:
            f.write("%s\n%s\n%s\n" % (listener, block, extra_config))
        self.proc = None
        self.token = None
        self.verify = tls[0] if tls else True

    # -- lifecycle -----------------------------------------------------------

    def start(self, extra_args=()):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [coffer_bin(), "server", "-config=" + self.config] +
            list(extra_args), stdout=self._log, stderr=self._log,
            stdin=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited %s:\n%s" %
                                   (self.proc.returncode, self.log()))
            try:
                requests.get(self.addr + "/v1/sys/seal-status", timeout=1,
                             verify=self.verify)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("server did not come up:\n" + self.log())

    def stop(self, timeout=20):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        self._log.close()
        m = CRASH_PATTERNS.search(self.log())
        assert m is None, "server log shows a crash:\n" + self.log()[-4000:]
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self._log.close()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    # -- API ---------------------------------------------------------------

    def req(self, method, path, token=True, **kw):
        headers = dict(kw.pop("headers", {}) or {})
        if token is True and self.token:
            headers["X-Vault-Token"] = self.token
        elif isinstance(token, str):
            headers["X-Vault-Token"] = token
        kw.setdefault("timeout", 30)
        return requests.request(method, self.addr + "/v1/" + path,
                                headers=headers, verify=self.verify, **kw)

    def init(self, shares=3, threshold=2):
        r = self.req("PUT", "sys/init", json={"secret_shares": shares,
                                              "secret_threshold": threshold})
        assert r.status_code == 200, r.text
        body = r.json()
        self.token = body["root_token"]
        return body["keys_base64"], body["root_token"]

    def unseal(self, keys):
        status = None
        for k in keys:
            status = self.req("PUT", "sys/unseal", json={"key": k}).json()
            if not status["sealed"]:
                break
        assert status and not status["sealed"], status
        return status

    def client(self):
        return hvac.Client(url=self.addr, token=self.token, verify=self.verify)

    def cli(self, *args, stdin=None):
        env = dict(os.environ, VAULT_ADDR=self.addr, VAULT_TOKEN=self.token or "",
                   HOME=self.dir)
        if self.tls:
            env["VAULT_CACERT"] = self.tls[0]
        p = subprocess.run([coffer_bin()] + list(args), env=env, input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr
