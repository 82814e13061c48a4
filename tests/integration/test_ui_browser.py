"""The web UI at /ui/: how it is served (headers, redirects, traversal,
HEAD, 404, the `ui` switch, sealed servers) and one end-to-end run in a real
headless Chromium (tests/ui/cdp.py): log in with a token through the form,
browse a KV v2 secret, edit it and see the change through the API, KV v1,
the confirm dialog, the seal page unsealing a real sealed server key by key.

Screenshots of each page go to $COFFER_UI_ARTIFACTS (default
build/ui-artifacts/). Every browser case asserts that the page logged no
console error and sent no request off the server's origin.
"""

import http.client
import json
import urllib.parse
import os
import sys
import tempfile
import uuid

import pytest

from conftest import ROOT
from realserver import RealServer

sys.path.insert(0, os.path.join(ROOT, "tests", "ui"))
import cdp  # noqa: E402
import jose_fixtures as jf  # noqa: E402

UI_DIR = os.path.join(ROOT, "src", "ui")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

needs_browser = pytest.mark.skipif(
    cdp.chromium_path() is None,
    reason="chromium is not installed (.ci/install-deps.sh installs it)")


def raw(addr, method, target, headers=None):
    """One request with the target sent byte for byte (no client-side
    normalisation of '..' or '%2e'). Returns (status, headers, body)."""
    host, port = addr.split("//", 1)[1].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.putrequest(method, target, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        return r.status, {k: v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def ui_files():
    out = []
    for d, _, files in os.walk(UI_DIR):
        for f in files:
            if not f.startswith("."):
                p = os.path.join(d, f)
                out.append(os.path.relpath(p, UI_DIR))
    return sorted(out)


# ------------------------------------------------------------ HTTP level --

def test_ui_files_served_with_security_headers(server):
    files = ui_files()
    assert "index.html" in files and "app.js" in files
    types = {".html": "text/html; charset=utf-8",
             ".js": "text/javascript; charset=utf-8",
             ".css": "text/css; charset=utf-8"}
    for name in files:
        status, hdrs, body = raw(server.addr, "GET", "/ui/" + name)
        assert status == 200, name
        with open(os.path.join(UI_DIR, name), "rb") as f:
            assert body == f.read(), "embedded copy of %s differs" % name
        ext = os.path.splitext(name)[1]
        if ext in types:
            assert hdrs["Content-Type"] == types[ext], name
        for k, v in SECURITY_HEADERS.items():
            assert hdrs.get(k) == v, (name, k, hdrs.get(k))
    status, hdrs, body = raw(server.addr, "GET", "/ui/")
    assert status == 200 and b'<script type="module" src="app.js">' in body
    assert hdrs["Content-Security-Policy"] == CSP
    # No inline script or style anywhere in the shell.
    assert b"<style" not in body and b" style=" not in body
    assert body.count(b"<script") == body.count(b"<script type=\"module\" src=")


def test_ui_head_redirects_404_and_methods(server):
    s_get, h_get, b_get = raw(server.addr, "GET", "/ui/app.js")
    s_head, h_head, b_head = raw(server.addr, "HEAD", "/ui/app.js")
    assert (s_get, s_head) == (200, 200)
    assert b_head == b""
    assert int(h_head["Content-Length"]) == len(b_get)
    assert h_head["Content-Security-Policy"] == CSP

    status, hdrs, _ = raw(server.addr, "GET", "/ui")
    assert status == 301 and hdrs["Location"] == "/ui/"
    status, hdrs, _ = raw(server.addr, "GET", "/")
    assert status == 307 and hdrs["Location"] == "/ui/"

    status, hdrs, body = raw(server.addr, "GET", "/ui/no-such-file.js")
    assert status == 404 and hdrs["Content-Security-Policy"] == CSP
    assert b"app" not in body
    for method in ("POST", "PUT", "DELETE"):
        status, hdrs, _ = raw(server.addr, method, "/ui/index.html")
        assert status == 405, method
    # Outside /ui/ and /v1/ nothing changed: Vault's JSON 404.
    status, hdrs, body = raw(server.addr, "GET", "/nope")
    assert status == 404 and json.loads(body) == {"errors": []}
    assert "Content-Security-Policy" not in hdrs
    # The API itself is untouched by the UI's headers.
    status, hdrs, _ = raw(server.addr, "GET", "/v1/sys/health")
    assert status == 200 and "Content-Security-Policy" not in hdrs


def test_ui_parallel_gets_exact(server):
    """Many clients at once get the exact bytes (the reply is a copy per
    request, nothing shared is written)."""
    import concurrent.futures
    names = ["index.html", "app.js", "style.css"]
    want = {}
    for n in names:
        with open(os.path.join(UI_DIR, n), "rb") as f:
            want[n] = f.read()

    def fetch(i):
        n = names[i % len(names)]
        status, hdrs, body = raw(server.addr, "HEAD" if i % 7 == 0 else "GET",
                                 "/ui/" + n)
        return n, status, body, i % 7 == 0

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        for n, status, body, head in ex.map(fetch, range(240)):
            assert status == 200
            assert body == (b"" if head else want[n]), n


@pytest.mark.parametrize("target", [
    "/ui/../v1/sys/health", "/ui/%2e%2e/v1/sys/health",
    "/ui/%2E%2E/%2E%2E/etc/passwd", "/ui/..%2fv1/sys/health",
    "/ui/.%2e/index.html", "/ui/%00", "/ui/index.html%00.js",
    "/ui/pages/../app.js", "/ui/./index.html", "/ui//index.html",
    "/ui/pages/", "/ui/pages", "/ui/%2fetc/passwd", "/ui/..\\app.js",
    "/ui/.hidden", "/ui/index.html/", "/ui/app.js?x=/../../etc/passwd",
])
def test_ui_traversal_refused(server, target):
    status, hdrs, body = raw(server.addr, "GET", target)
    if target.startswith("/ui/app.js?"):
        # The query is not part of the name: the real app.js, nothing else.
        with open(os.path.join(UI_DIR, "app.js"), "rb") as f:
            assert status == 200 and body == f.read()
        return
    assert status in (301, 404), (target, status)
    assert b"root:" not in body and b"initialized" not in body
    if status == 404:
        assert hdrs.get("Content-Security-Policy") == CSP or \
            "/v1/" in target or not target.startswith("/ui/")


@pytest.mark.once
def test_ui_switch_off_and_sealed_server_serves_ui():
    """`ui = false` turns the UI off (404, no redirect); with the UI on, a
    sealed server still serves it."""
    with tempfile.TemporaryDirectory(prefix="coffer-ui-") as d:
        off = RealServer(d, storage="inmem", extra_config="ui = false")
        off.start()
        try:
            for target in ("/ui/", "/ui/app.js", "/ui", "/"):
                status, hdrs, _ = raw(off.addr, "GET", target)
                assert status == 404, target
                assert "Content-Security-Policy" not in hdrs
            assert off.req("GET", "sys/seal-status").status_code == 200
        finally:
            off.stop()
    with tempfile.TemporaryDirectory(prefix="coffer-ui-") as d:
        on = RealServer(d, storage="inmem", extra_config="ui = true")
        on.start()
        try:
            assert on.req("GET", "sys/seal-status").json()["initialized"] is False
            status, hdrs, body = raw(on.addr, "GET", "/ui/")
            assert status == 200 and b"app.js" in body
            assert hdrs["Content-Security-Policy"] == CSP
        finally:
            on.stop()


def test_ui_config_rejects_non_boolean():
    with tempfile.TemporaryDirectory(prefix="coffer-ui-") as d:
        srv = RealServer(d, storage="inmem", extra_config='ui = "yes"')
        with pytest.raises(RuntimeError) as e:
            srv.start()
        assert "ui" in str(e.value)
        srv._log.close()


# ------------------------------------------------------------ in a browser --

@pytest.fixture(scope="module")
def _chromium():
    if cdp.chromium_path() is None:
        pytest.skip("chromium is not installed")
    with cdp.Browser(width=1200, height=900) as b:
        yield b


@pytest.fixture
def browser(_chromium):
    """The module's Chromium (one start), with a clean error and request
    record for this case."""
    _chromium.clear()
    _chromium.goto("about:blank")
    yield _chromium


def page_ready(b, page_id, timeout=10):
    b.wait_for('[data-page="%s"][data-ready="1"]' % page_id, timeout=timeout)


def assert_clean(b, addr):
    assert b.console_errors() == []
    foreign = [u for u in b.requests()
               if not (u.startswith(addr + "/") or u.startswith("data:")
                       or u == "about:blank")]
    assert foreign == [], foreign


@needs_browser
@pytest.mark.once
def test_ui_login_browse_edit_kv(server, browser, kv2, kv1):
    b = browser
    base = server.addr + "/ui/"
    hostile = {"<img src=x onerror=window.__pwned=1>":
               "<script>window.__pwned=2</script>"}
    r = server.req("POST", kv2 + "/data/app/db",
                   json={"data": dict(hostile, user="app",
                                      password="first-pw")})
    assert r.status_code == 200, r.text

    b.goto(base)
    page_ready(b, "login")
    assert b.eval("location.hash") == "#/login"
    assert b.active_id() == "login-token"  # keyboard users start typing
    b.screenshot("login.png")

    # A wrong token: the server's error, verbatim, and still on the login page.
    b.type("#login-token", "not-a-token")
    b.press("Enter")
    b.wait_for('#login-result .error[role="alert"]')
    assert b.text("#login-result .error") == "permission denied"
    assert b.eval("sessionStorage.getItem('coffer.token')") is None

    # Keyboard order: method, (the mount field only for other methods),
    # token, submit.
    b.focus("#login-method")
    b.press("Tab")
    assert b.active_id() == "login-token"
    b.press("Tab")
    assert b.active_id() == "login-submit"

    b.type("#login-token", server.token)
    b.press("Enter")
    page_ready(b, "secrets")
    # The token lives in sessionStorage only.
    assert b.eval("sessionStorage.getItem('coffer.token')") == server.token
    assert b.eval("localStorage.length") == 0
    assert b.eval("document.cookie") == ""
    assert kv2 + "/" in b.text("main")
    b.screenshot("secrets-engines.png")

    # Browse: engines -> mount (by keyboard: arrows between the rows,
    # Enter follows the row's link) -> folder -> secret.
    b.focus("table.data tbody tr")
    for _ in range(20):
        if kv2 + "/" in b.eval("document.activeElement.innerText"):
            break
        b.press("ArrowDown")
    b.press("Enter")
    b.wait_for("a.kv-folder")
    assert b.eval("location.hash") == "#/secrets/%s/list/" % kv2
    assert b.text("#kv-list").split("\n")[1].startswith("app/")
    b.screenshot("secrets-list.png")
    b.click("a.kv-folder")
    b.wait_for('a.kv-key[data-key="app/db"]')
    b.click('a.kv-key[data-key="app/db"]')
    b.wait_for("#kv-reveal")
    page_ready(b, "secrets")
    assert "first-pw" not in b.text("#kv-data")  # masked until asked
    b.click("#kv-reveal")
    assert b.text('.kv-value[data-key="password"]') == "first-pw"
    # Server strings are text, never markup.
    assert list(hostile)[0] in b.text("#kv-data")
    assert list(hostile.values())[0] in b.text("#kv-data")
    assert b.eval("document.querySelectorAll('main img, main script')"
                  ".length") == 0
    assert b.eval("window.__pwned === undefined")
    b.screenshot("secrets-show.png")

    # Edit through the form; the API sees version 2 with the new data.
    b.click("#kv-edit")
    b.wait_for("#kv-json")
    page_ready(b, "secrets")
    b.screenshot("secrets-edit.png")
    b.type("#kv-json", "not json")
    b.click("#kv-save")
    b.wait_for('#kv-result .error[role="alert"]')
    b.type("#kv-json", json.dumps({"user": "app", "password": "two"}))
    b.click("#kv-save")
    b.wait_for("#kv-versions")
    page_ready(b, "secrets")
    r = server.req("GET", kv2 + "/data/app/db").json()["data"]
    assert r["data"] == {"user": "app", "password": "two"}
    assert r["metadata"]["version"] == 2
    assert "Version 2" in b.text("#kv-version")

    # Version 1 is still readable from the versions table.
    b.click('a.kv-version-link[href$="/1"]')
    b.wait_until("document.querySelector('#kv-version') && "
                 "document.querySelector('#kv-version').innerText"
                 ".startsWith('Version 1')")

    # A new secret in a KV v1 mount, then delete it: Escape cancels the
    # confirm dialog, the confirm button deletes.
    b.goto(base + "#/secrets/%s/new/" % kv1)
    b.wait_for("#kv-path")
    page_ready(b, "secrets")
    b.type("#kv-path", "svc/token")
    b.type("#kv-json", json.dumps({"k": "v1-value"}))
    b.click("#kv-save")
    b.wait_for("#kv-reveal")
    assert server.req("GET", kv1 + "/svc/token").json()["data"] == \
        {"k": "v1-value"}
    b.click("#kv-delete")
    b.wait_for("dialog.confirm[open]")
    assert b.active_id() == "confirm-cancel"
    b.screenshot("confirm-dialog.png")
    b.press("Escape")
    b.wait_gone("dialog.confirm")
    assert server.req("GET", kv1 + "/svc/token").status_code == 200
    b.click("#kv-delete")
    b.wait_for("dialog.confirm[open]")
    b.click("#confirm-ok")
    b.wait_for("#kv-list")
    assert server.req("GET", kv1 + "/svc/token").status_code == 404

    # A narrow screen, and the seal page of an unsealed server.
    b.viewport(390, 800, mobile=True)
    b.goto(base + "#/secrets")
    page_ready(b, "secrets")
    b.screenshot("secrets-narrow.png")
    b.viewport(1200, 900)
    b.goto(base + "#/seal")
    page_ready(b, "seal")
    assert b.text("#seal-state") == "Unsealed"
    b.screenshot("seal-unsealed.png")

    # Log out: the token is gone and the login page is back.
    b.click("#logout")
    page_ready(b, "login")
    assert b.eval("sessionStorage.getItem('coffer.token')") is None
    assert_clean(b, server.addr)


@needs_browser
@pytest.mark.once
def test_ui_unseal_sealed_server(browser):
    """The seal page unseals a real sealed server key by key, showing the
    progress, and shows a bad key's error verbatim."""
    b = browser
    with tempfile.TemporaryDirectory(prefix="coffer-ui-") as d:
        srv = RealServer(d, storage="inmem")
        srv.start()
        try:
            b.goto(srv.addr + "/ui/")
            b.wait_for("#seal-uninitialized")
            assert not b.exists("#unseal-key")
            keys, root = srv.init(shares=3, threshold=2)
            b.goto("about:blank")
            b.goto(srv.addr + "/ui/")
            page_ready(b, "seal")  # a sealed server sends you here
            assert b.eval("location.hash") == "#/seal"
            assert b.text("#seal-state") == "Sealed"
            assert b.active_id() == "unseal-key"
            b.screenshot("seal-sealed.png")

            b.type("#unseal-key", "AAAA")
            b.press("Enter")
            b.wait_for('#seal-result .error[role="alert"]')
            bad = srv.req("PUT", "sys/unseal", json={"key": "AAAA"}).json()
            assert b.text("#seal-result .error") == bad["errors"][0]

            b.type("#unseal-key", keys[0])
            b.press("Enter")
            b.wait_until("document.querySelector('#unseal-progress') && "
                         "document.querySelector('#unseal-progress').value"
                         " === 1")
            assert srv.req("GET", "sys/seal-status").json()["progress"] == 1
            b.screenshot("seal-progress.png")
            b.type("#unseal-key", keys[1])
            b.press("Enter")
            b.wait_for("#seal-continue")
            assert b.text("#seal-state") == "Unsealed"
            assert srv.req("GET", "sys/seal-status").json()["sealed"] is False
            assert_clean(b, srv.addr)
        finally:
            srv.stop()


@needs_browser
@pytest.mark.once
def test_ui_unknown_route_stays_in_page(server, browser):
    """An unknown route shows an error in the page area only; the
    navigation keeps working."""
    b = browser
    b.goto(server.addr + "/ui/#/no-such-page")
    b.wait_for('[data-page="missing"] .error[role="alert"]')
    assert 'no page named "no-such-page"' in b.text(".error")
    b.eval("sessionStorage.setItem('coffer.token', %s); true"
           % json.dumps(server.token))
    b.goto(server.addr + "/ui/#/secrets")
    page_ready(b, "secrets")
    assert b.exists("#nav-secrets") and b.exists("#nav-leases")
    assert_clean(b, server.addr)


@needs_browser
@pytest.mark.once
def test_ui_crafted_link_cannot_redirect_api_calls(server, browser, kv1):
    """A link whose route holds '..' segments (plain or %2e-encoded) must
    not become a request to another API path: the browser would resolve
    them before sending. The UI refuses such a path and says so."""
    b = browser
    b.goto(server.addr + "/ui/")
    b.eval("sessionStorage.setItem('coffer.token', %s); true"
           % json.dumps(server.token))
    evil = "../../sys/mounts/" + kv1
    b.goto(server.addr + "/ui/#/secrets/%s/show/%s"
           % (kv1, urllib.parse.quote(evil, safe="")))
    b.wait_until("document.body.innerText.includes('segment')")
    assert 'has a "." or ".." segment' in b.text('.error[role="alert"]')
    # Percent-encoded dots reach the server as a literal key (404), never
    # as a path of their own; the database page's links likewise.
    for route in ("secrets/%s/show/%s" % (kv1, urllib.parse.quote(
                      "%2e%2e/%2E%2e/sys/mounts/" + kv1, safe="")),
                  "database/x/role/" + urllib.parse.quote(
                      "../../sys/mounts/" + kv1, safe="")):
        b.goto(server.addr + "/ui/#/" + route)
        b.wait_for('.error[role="alert"]')
    assert not any(u.rstrip("/").endswith("/v1/sys/mounts/" + kv1)
                   for u in b.requests()), b.requests()
    # The mount is still there and nothing was deleted through it.
    assert server.req("GET", "sys/mounts").json()["data"].get(kv1 + "/")
    assert_clean(b, server.addr)


@needs_browser
@pytest.mark.once
def test_ui_login_userpass_approle_jwt(server, browser):
    """The other login methods of the form, each against a real mount; a
    refused login shows the server's error verbatim."""
    b = browser
    up = "up-" + uuid.uuid4().hex[:8]
    ar = "ar-" + uuid.uuid4().hex[:8]
    jw = "jw-" + uuid.uuid4().hex[:8]
    for path, typ in ((up, "userpass"), (ar, "approle"), (jw, "jwt")):
        r = server.req("POST", "sys/auth/" + path, json={"type": typ})
        assert r.status_code == 204, r.text
    try:
        assert server.req("POST", "auth/%s/users/alice" % up,
                          json={"password": "pw-alice",
                                "policies": "default"}).status_code == 204
        assert server.req("POST", "auth/%s/role/web" % ar,
                          json={"policies": "default"}).status_code == 204
        role_id = server.req("GET", "auth/%s/role/web/role-id" % ar) \
            .json()["data"]["role_id"]
        secret_id = server.req("POST", "auth/%s/role/web/secret-id" % ar) \
            .json()["data"]["secret_id"]

        def login(method, mount, fields):
            b.goto(server.addr + "/ui/#/seal")
            b.eval("sessionStorage.clear(); true")
            b.goto("about:blank")
            b.goto(server.addr + "/ui/#/login")
            page_ready(b, "login")
            b.eval("(s => { s.value = %s; s.dispatchEvent(new Event('change'));"
                   " return true; })(document.querySelector('#login-method'))"
                   % json.dumps(method))
            b.type("#login-mount", mount)
            for css, v in fields:
                b.type(css, v)
            b.press("Enter")

        login("userpass", up, [("#login-username", "alice"),
                               ("#login-password", "wrong")])
        b.wait_for('#login-result .error[role="alert"]')
        refused = server.req("POST", "auth/%s/login/alice" % up, token=None,
                             json={"password": "wrong"}).json()["errors"]
        assert b.text("#login-result .error") == "\n".join(refused)
        b.screenshot("login-userpass-refused.png")

        login("userpass", up, [("#login-username", "alice"),
                               ("#login-password", "pw-alice")])
        page_ready(b, "secrets")
        tok = b.eval("sessionStorage.getItem('coffer.token')")
        me = server.req("GET", "auth/token/lookup-self", token=tok).json()
        assert me["data"]["meta"]["username"] == "alice"

        login("approle", ar, [("#login-role-id", role_id),
                              ("#login-secret-id", secret_id)])
        page_ready(b, "secrets")
        tok = b.eval("sessionStorage.getItem('coffer.token')")
        me = server.req("GET", "auth/token/lookup-self", token=tok).json()
        assert me["data"]["meta"]["role_name"] == "web"

        login("jwt", jw, [("#login-role", "r"), ("#login-jwt", "e30.e30.x")])
        b.wait_for('#login-result .error[role="alert"]')
        refused = server.req("POST", "auth/%s/login" % jw, token=None,
                             json={"role": "r", "jwt": "e30.e30.x"}).json()
        assert b.text("#login-result .error") == "\n".join(refused["errors"])
        assert b.eval("sessionStorage.getItem('coffer.token')") is None

        # A signed JWT from a key the mount trusts logs in.
        key = jf.Key("ES256")
        r = server.req("POST", "auth/%s/config" % jw,
                       json={"jwt_validation_pubkeys": [key.public_pem]})
        assert r.status_code == 204, r.text
        r = server.req("POST", "auth/%s/role/r" % jw, json={
            "role_type": "jwt", "user_claim": "email",
            "bound_audiences": ["coffer-ui-test"],
            "token_policies": ["default"]})
        assert r.status_code == 204, r.text
        signed = key.sign(jf.claims(sub="ci", email="ci@acme.test",
                                    aud="coffer-ui-test"), kid=False)
        login("jwt", jw, [("#login-role", "r"), ("#login-jwt", signed)])
        page_ready(b, "secrets")
        tok = b.eval("sessionStorage.getItem('coffer.token')")
        me = server.req("GET", "auth/token/lookup-self", token=tok).json()
        assert me["data"]["meta"]["role"] == "r", me
        assert_clean(b, server.addr)
    finally:
        for path in (up, ar, jw):
            server.req("DELETE", "sys/auth/" + path)
