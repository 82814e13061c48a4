"""`make install` into a temporary DESTDIR, then a server started from there.

The installed binary must find its Lua runtime under <prefix>/share/coffer/lua
by itself: no COFFER_LUA_DIR, and a working directory without a lua/ folder.
make install installs the binary under test (COFFER_BIN) as it is: it is
told that binary is up to date, so nothing is rebuilt with other flags.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import ROOT, coffer_bin


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def installed():
    dest = tempfile.mkdtemp(prefix="coffer-install-")
    build = os.path.dirname(coffer_bin())
    p = subprocess.run(
        ["make", "-C", ROOT, "install", "BUILD=" + build,
         "-o", os.path.join(build, "coffer"),
         "DESTDIR=" + dest, "PREFIX=/usr"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert p.returncode == 0, p.stdout.decode()
    yield dest
    shutil.rmtree(dest, ignore_errors=True)


def clean_env():
    env = dict(os.environ)
    for k in ("COFFER_LUA_DIR", "VAULT_ADDR", "VAULT_TOKEN"):
        env.pop(k, None)
    return env


def test_layout(installed, _repeat):
    usr = os.path.join(installed, "usr")
    binary = os.path.join(usr, "bin", "coffer")
    assert os.access(binary, os.X_OK)
    with open(coffer_bin(), "rb") as a, open(binary, "rb") as b:
        assert a.read() == b.read(), "make install rebuilt the binary"
    lua = os.path.join(usr, "share", "coffer", "lua")
    assert os.path.isdir(os.path.join(lua, "engines"))
    assert os.path.isdir(os.path.join(lua, "auth"))
    ex = os.path.join(usr, "share", "coffer", "examples")
    for name in ("coffer.prod.lua", "coffer.service", "coffer.logrotate",
                 "policies"):
        assert os.path.exists(os.path.join(ex, name)), name
    # The unit names the binary where PREFIX put it.
    with open(os.path.join(ex, "coffer.service")) as f:
        unit = f.read()
    assert "ExecStart=/usr/bin/coffer server" in unit
    assert "/usr/local/" not in unit
    # Nothing installed is writable by others.
    for root, dirs, files in os.walk(usr):
        for n in dirs + files:
            mode = os.stat(os.path.join(root, n)).st_mode
            assert mode & 0o002 == 0, os.path.join(root, n)


def test_version_from_install(installed, _repeat):
    binary = os.path.join(installed, "usr", "bin", "coffer")
    for arg in ("version", "-version"):
        p = subprocess.run([binary, arg], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10,
                           env=clean_env())
        assert p.returncode == 0
        assert p.stdout.decode().startswith("Coffer v"), p.stdout


def test_installed_server_serves_kv(installed, _repeat):
    binary = os.path.join(installed, "usr", "bin", "coffer")
    port = free_port()
    token = "root-" + secrets.token_hex(8)
    cwd = tempfile.mkdtemp(prefix="coffer-cwd-")  # no lua/ here
    log = open(os.path.join(cwd, "stderr.log"), "wb")
    proc = subprocess.Popen(
        [binary, "server", "-dev", "-dev-root-token-id=" + token,
         "-dev-listen-address=127.0.0.1:%d" % port],
        cwd=cwd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=log,
        stdin=subprocess.DEVNULL)
    addr = "http://127.0.0.1:%d/v1/" % port
    hdr = {"X-Vault-Token": token}
    try:
        deadline = time.monotonic() + 15
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(addr + "sys/health", timeout=1).ok:
                    ready = True
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        with open(os.path.join(cwd, "stderr.log")) as f:
            text = f.read()
        assert ready, "installed server did not start:\n" + text
        r = requests.post(addr + "secret/data/app", headers=hdr,
                          json={"data": {"password": "s3cr3t"}}, timeout=10)
        assert r.status_code == 200, r.text
        r = requests.get(addr + "secret/data/app", headers=hdr, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["data"] == {"password": "s3cr3t"}
        # The Lua engines came from the installed share/coffer/lua.
        r = requests.post(addr + "sys/auth/up", headers=hdr,
                          json={"type": "userpass"}, timeout=10)
        assert r.status_code == 204, r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
            shutil.rmtree(cwd, ignore_errors=True)
