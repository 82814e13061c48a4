"""The operator pages of the web UI (database, leases, tokens, policies,
auth, audit) in a real headless Chromium against a real Coffer and a real
PostgreSQL.

Each test drives the pages the way an operator does (keyboard-reachable
controls with stable ids) and checks the outcome on the server side too:
the PostgreSQL role a lease created is gone after the revoke in the leases
page, the policy the editor saved is the one the server holds. Every page
visited is saved as a screenshot in $COFFER_UI_ARTIFACTS, and no test may
leave an error in the browser console.
"""

import importlib.util
import json
import os
import re
import sys
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
IT = os.path.join(ROOT, "tests", "integration")
sys.path.insert(0, HERE)
sys.path.insert(0, IT)

from cdp import Browser  # noqa: E402
from pgcluster import PgCluster  # noqa: E402


def _load_it_conftest():
    # Loaded under its own name: tests/ui may have a conftest.py of its own,
    # and both would otherwise be the module "conftest".
    spec = importlib.util.spec_from_file_location(
        "coffer_it_conftest", os.path.join(IT, "conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_it = _load_it_conftest()
Server = _it.Server
CRASH_PATTERNS = _it.CRASH_PATTERNS

CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';")


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def srv(pg):
    # Fast retries and ticks: a failing revocation turns irrevocable in
    # about a second (as in test_database.py).
    s = Server(extra_args=["-dev-lease-retry-base=0.05",
                           "-dev-lease-retry-max=0.5",
                           "-dev-tick-interval=0.5",
                           # office-hours.lua: a Lua policy to show read-only
                           "-dev-policy-dir=" + os.path.join(ROOT, "examples", "policies")])
    yield s
    rc = s.stop()
    log = s.stderr_text()
    assert CRASH_PATTERNS.search(log) is None, log[-4000:]
    assert rc == 0, log[-4000:]


@pytest.fixture(scope="module")
def db(srv, pg):
    """A database mount `uidb` with connection `app` and role `ui-role`."""
    srv.mount("database", "uidb")
    r = srv.req("PUT", "uidb/config/app", json={
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg.url(templated=True),
        "username": "postgres", "password": "postgres",
        "allowed_roles": ["ui-role", "ui-broken", "ui-gated"]})
    assert r.status_code in (200, 204), r.text
    r = srv.req("PUT", "uidb/roles/ui-role", json={
        "db_name": "app", "creation_statements": [CREATE],
        "default_ttl": "10m", "max_ttl": "1h"})
    assert r.status_code in (200, 204), r.text
    return "uidb"


@pytest.fixture
def browser(srv, request):
    """A logged-in (root token) Chromium; asserts a clean console at the end
    (but for the failed requests a test said it provokes, see expect_http)."""
    with Browser() as b:
        b.expected_http = []
        b.goto(srv.addr + "/ui/")
        b.wait_for("#login-token")
        b.type("#login-token", srv.token)
        b.click("#login-submit")
        wait_js(b, "sessionStorage.getItem('coffer.token') !== null && "
                   "!location.hash.startsWith('#/login')")
        yield b
        errors = [e for e in b.console_errors()
                  if not any(expected(e) for expected in b.expected_http)]
        assert errors == [], "browser console errors: %r" % (errors,)


def expect_http(b, status, path):
    """Chromium logs every non-2xx fetch as a console error. A test that
    provokes one on purpose (a parse error, an empty LIST's 404) names it
    here; any other console error still fails the test."""
    def match(entry):
        return (entry.startswith("log network: Failed to load resource") and
                "status of %d " % status in entry and
                re.search(r"/v1/%s(\?list=true)?$" % re.escape(path), entry))
    b.expected_http.append(match)


def wait_js(b, expr, timeout=10.0):
    """Polls a JavaScript expression until it is truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = b.eval("(() => { try { return !!(%s); } catch (e) { return false; } })()"
                      % expr)
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last %r); page text:\n%s"
                         % (expr, last, b.eval("document.body.innerText")[-3000:]))


def open_page(b, hash_, page):
    """Navigates to #/<hash_> and waits until page `page` says it is ready.
    The page shown before is marked stale first, so that its data-ready
    cannot be mistaken for the new one's; the same hash again reloads."""
    target = json.dumps("#/" + hash_)
    b.eval("document.querySelectorAll('[data-page]').forEach("
           "e => { e.dataset.stale = '1'; })")
    if b.eval("location.hash === %s" % target):
        b.eval("location.reload()")
        b.wait_until("document.readyState === 'complete'")
    else:
        b.eval("location.hash = %s" % target)
    sel = '[data-page="%s"][data-ready="1"]:not([data-stale])' % page
    wait_js(b, "location.hash === %s && document.querySelector(%s)"
            % (target, json.dumps(sel)))
    return sel


def shot(b, name, css=None):
    """A screenshot into the artifacts, scrolled to css when given."""
    if css:
        b.eval("(e => { if (e) e.scrollIntoView({block: 'start'}); return true; })"
               "(document.querySelector(%s))" % json.dumps(css))
    b.screenshot("pages-%s.png" % name)  # into $COFFER_UI_ARTIFACTS


def text(b, css):
    return b.eval("(document.querySelector(%s) || {}).textContent || ''"
                  % json.dumps(css))


def set_value(b, css, value):
    """Sets a form control's value as typing would (input + change events)."""
    b.eval("(() => { const e = document.querySelector(%s); e.value = %s; "
           "e.dispatchEvent(new Event('input', {bubbles: true})); "
           "e.dispatchEvent(new Event('change', {bubbles: true})); })()"
           % (json.dumps(css), json.dumps(value)))


def alert_text(b, scope=""):
    return b.eval("[...document.querySelectorAll(%s)].map(e => e.textContent)"
                  ".join('\\n')" % json.dumps(scope + " .error[role=alert]"))


def test_database_credentials_then_revoke_in_leases_page(srv, pg, db, browser):
    b = browser
    sel = open_page(b, "database", "database")
    assert "uidb/" in text(b, sel + " .db-mount")
    shot(b, "database")
    b.click(sel + " a.db-mount")
    wait_js(b, "document.querySelector('%s a.db-role')" % sel)
    shot(b, "database-mount")
    # The connection: the URL as the API returns it, never the password.
    open_page(b, "database/uidb/config/app", "database")
    details = text(b, "#db-config-details")
    assert "postgresql-database-plugin" in details
    assert "{{username}}:{{password}}@127.0.0.1" in details
    assert "postgres:postgres" not in b.eval("document.body.innerText")

    open_page(b, "database/uidb/role/ui-role", "database")
    shot(b, "database-role")
    b.click("#creds-get")
    wait_js(b, "document.querySelector('#creds-username') && "
               "document.querySelector('#creds-username').textContent")
    user = text(b, "#creds-username")
    password = text(b, "#creds-password")
    lease_id = text(b, "#creds-lease-id")
    assert lease_id.startswith("uidb/creds/ui-role/"), lease_id
    assert "10m" in text(b, "#creds-lease-duration")
    assert b.eval("!!document.querySelector('#creds-result button.copy')")
    shot(b, "database-creds", "#creds-result")
    # The credentials are real: the role exists and can log in.
    assert pg.role_exists(user)
    pg.connect(user=user, password=password).close()

    # The lease link leads to the lease's page with its expiry and TTL.
    b.click("#creds-lease-id")
    wait_js(b, "document.querySelector('[data-page=\"leases\"][data-ready=\"1\"] #lease-id')")
    assert text(b, "#lease-id") == lease_id
    assert text(b, "#lease-renewable") == "yes"
    ttl = int(text(b, "#lease-ttl").split("(")[1].rstrip("s)"))
    assert 0 < ttl <= 600
    assert text(b, "#lease-expire").startswith("20")
    shot(b, "lease")

    # In the tree: the prefix counts the lease, the role's prefix lists it.
    sel = open_page(b, "leases/tree/uidb/creds", "leases")
    assert b.eval("[...document.querySelectorAll('%s a.lease-prefix')]"
                  ".some(a => a.dataset.key === 'uidb/creds/ui-role/' && "
                  "a.closest('tr').textContent.includes('1'))" % sel)
    shot(b, "leases-tree")
    sel = open_page(b, "leases/tree/uidb/creds/ui-role", "leases")
    assert b.eval("[...document.querySelectorAll('%s a.lease-id')]"
                  ".some(a => a.dataset.key === %s)" % (sel, json.dumps(lease_id)))
    b.click('%s a.lease-id[data-key="%s"]' % (sel, lease_id))
    wait_js(b, "document.querySelector('[data-page=\"leases\"][data-ready=\"1\"] #lease-revoke')")
    expect_http(b, 404, "sys/leases/lookup/uidb/creds/ui-role/")  # now empty
    b.click("#lease-revoke")
    # Back on the role's prefix, which is now empty; PostgreSQL agrees.
    wait_js(b, "location.hash === '#/leases/tree/uidb/creds/ui-role' && "
               "document.querySelector('[data-page=\"leases\"][data-ready=\"1\"] #leases-empty')")
    assert not b.eval("!!document.querySelector('a.lease-id[data-key=%s]')"
                      % json.dumps(lease_id))
    shot(b, "leases-after-revoke")
    assert pg.wait_role_gone(user, timeout=10)
    r = srv.req("PUT", "sys/leases/lookup", json={"lease_id": lease_id})
    assert r.status_code == 400 and r.json()["errors"] == ["invalid lease"]


def test_revoke_prefix_asks_first(srv, pg, db, browser):
    b = browser
    users = []
    for _ in range(2):
        r = srv.req("GET", "uidb/creds/ui-role")
        assert r.status_code == 200, r.text
        users.append(r.json()["data"]["username"])
    sel = open_page(b, "leases/tree/uidb/creds/ui-role", "leases")
    assert b.eval("document.querySelectorAll('%s a.lease-id').length" % sel) == 2
    # Cancel: nothing is revoked.
    b.click("#lease-revoke-prefix")
    b.wait_for("#confirm-cancel")
    assert "uidb/creds/ui-role/" in text(b, "#confirm-msg")
    b.click("#confirm-cancel")
    time.sleep(0.3)
    assert all(pg.role_exists(u) for u in users)
    b.click("#lease-revoke-prefix")
    b.wait_for("#confirm-ok")
    expect_http(b, 404, "sys/leases/lookup/uidb/creds/ui-role/")  # now empty
    b.click("#confirm-ok")
    wait_js(b, "document.querySelector('[data-page=\"leases\"][data-ready=\"1\"] #leases-empty')")
    for u in users:
        assert pg.wait_role_gone(u, timeout=10)


def test_pending_lease_is_highlighted(srv, pg, db, browser):
    """A lease whose issuance is under way (its creation statement waits
    for an advisory lock the test holds) shows as pending, then active."""
    import threading
    b = browser
    gate = 6161
    r = srv.req("PUT", "uidb/roles/ui-gated", json={
        "db_name": "app", "default_ttl": "10m",
        "creation_statements": ["SELECT pg_advisory_xact_lock_shared(%d);" % gate, CREATE]})
    assert r.status_code in (200, 204), r.text
    conn = pg.connect()
    conn.autocommit = True
    conn.cursor().execute("SELECT pg_advisory_lock(%s)", (gate,))
    out = {}
    t = threading.Thread(target=lambda: out.update(r=srv.req("GET", "uidb/creds/ui-gated")))
    t.start()
    try:
        deadline = time.monotonic() + 10
        keys = []
        while not keys and time.monotonic() < deadline:
            r = srv.req("LIST", "sys/leases/lookup/uidb/creds/ui-gated/")
            keys = r.json()["data"]["keys"] if r.status_code == 200 else []
            time.sleep(0.05)
        assert len(keys) == 1, keys
        lease = "uidb/creds/ui-gated/" + keys[0]
        sel = open_page(b, "leases/tree/uidb/creds/ui-gated", "leases")
        assert b.eval("[...document.querySelectorAll('%s a.lease-id.pending')]"
                      ".map(a => a.dataset.key)" % sel) == [lease]
        assert "pending" in text(b, sel + " .badge.pending")
        open_page(b, "leases/id/" + lease, "leases")
        assert "pending" in text(b, "#lease-pending")
        shot(b, "lease-pending")
    finally:
        conn.cursor().execute("SELECT pg_advisory_unlock(%s)", (gate,))
        conn.close()
        t.join(timeout=30)
    assert out["r"].status_code == 200, out["r"].text
    open_page(b, "leases/id/" + lease, "leases")
    assert text(b, "#lease-state") == "active"
    assert not b.eval("!!document.querySelector('#lease-pending')")
    srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease})


def test_irrevocable_lease_is_highlighted(srv, pg, db, browser):
    b = browser
    r = srv.req("PUT", "uidb/roles/ui-broken", json={
        "db_name": "app", "creation_statements": [CREATE],
        "revocation_statements": ["DROP ROLE no_such_role_here;"],
        "default_ttl": "1h"})
    assert r.status_code in (200, 204), r.text
    body = srv.req("GET", "uidb/creds/ui-broken").json()
    lease = body["lease_id"]
    r = srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease, "sync": False})
    assert r.status_code == 202
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if srv.req("GET", "sys/leases").json()["data"].get("leases"):
            break
        time.sleep(0.2)
    try:
        sel = open_page(b, "leases/tree/uidb/creds", "leases")
        assert b.eval("(a => a && a.classList.contains('irrevocable'))"
                      "(document.querySelector('%s a.lease-prefix[data-key=\"uidb/creds/ui-broken/\"]'))" % sel)
        # Only the prefix holding it is marked.
        assert b.eval("[...document.querySelectorAll('%s a.lease-prefix.irrevocable')]"
                      ".map(a => a.dataset.key)" % sel) == ["uidb/creds/ui-broken/"]
        sel = open_page(b, "leases", "leases")
        assert lease in text(b, sel)  # the list of irrevocable leases
        open_page(b, "leases/id/" + lease, "leases")
        assert 'role "no_such_role_here" does not exist' in text(b, "#lease-irrevocable")
        shot(b, "lease-irrevocable")
        # A revoke that fails again shows the server's words.
        expect_http(b, 400, "sys/leases/revoke")
        b.click("#lease-revoke")
        wait_js(b, "document.querySelector('#lease-result .error[role=alert]')")
        assert "no_such_role_here" in alert_text(b, "#lease-result")
    finally:
        srv.req("PUT", "sys/leases/revoke-force/" + lease)
        pg.query('DROP ROLE IF EXISTS "%s"' % body["data"]["username"])


def test_policy_parse_error_shows_the_line(srv, browser):
    b = browser
    name = "ui-bad-" + uuid.uuid4().hex[:6]
    open_page(b, "policies", "policies")
    set_value(b, "#policy-name", name)
    set_value(b, "#policy-text", 'path "secret/*" {\n  capabilities = ["read"]\n'
                                 '  bogus = 3\n}\n')
    expect_http(b, 400, "sys/policies/acl/" + name)
    b.click("#policy-save")
    wait_js(b, "document.querySelector('#policy-result .error[role=alert]')")
    err = alert_text(b, "#policy-result")
    # The server's text, verbatim, with its line.
    assert 'failed to parse policy: path "secret/*": invalid key "bogus" on line 3' in err
    assert "line 3" in text(b, "#policy-error-line")
    assert b.eval("document.querySelector('#policy-text').value.substring("
                  "document.querySelector('#policy-text').selectionStart, "
                  "document.querySelector('#policy-text').selectionEnd)") == "  bogus = 3"
    shot(b, "policy-error", "#policy-form")
    assert srv.req("GET", "sys/policies/acl/" + name).status_code == 404
    # Fixed, it saves and the server holds exactly the editor's text.
    good = 'path "secret/*" {\n  capabilities = ["read"]\n}\n'
    set_value(b, "#policy-text", good)
    b.click("#policy-save")
    # The saved policy opens, listed among the others.
    wait_js(b, "location.hash === '#/policies/%s' && "
               "[...document.querySelectorAll('[data-ready=\"1\"] a.policy-link.current')]"
               ".some(a => a.textContent === %s)" % (name, json.dumps(name)))
    r = srv.req("GET", "sys/policies/acl/" + name)
    assert r.status_code == 200 and r.json()["data"]["policy"] == good
    assert b.eval("[...document.querySelectorAll('a.policy-link')]"
                  ".some(a => a.textContent === %s)" % json.dumps(name))


def test_lua_policy_is_read_only_and_explained(srv, browser):
    b = browser
    open_page(b, "policies/office-hours", "policies")
    assert 'path "secret/data/office/*"' in b.value("#policy-text")
    # The read reply marks a Lua policy (lua, file): the editor is
    # read-only from the start and names the file.
    assert "Lua" in text(b, "#policy-readonly")
    assert "office-hours.lua" in text(b, "#policy-readonly")
    assert b.eval("document.querySelector('#policy-text').readOnly")
    assert b.eval("document.querySelector('#policy-save').disabled")
    r = srv.req("PUT", "sys/policies/acl/office-hours",
                json={"policy": b.value("#policy-text")})
    assert r.status_code == 400
    # Explain with the Lua policy: the path rule decides and, for an
    # allowed request, its check's result is listed.
    set_value(b, "#explain-path", "secret/data/office/x")
    set_value(b, "#explain-remote-addr", "127.0.0.1")
    b.click("#explain-run")
    wait_js(b, "document.querySelector('#explain-verdict') || "
               "document.querySelector('#explain-result .error[role=alert]')")
    assert alert_text(b, "#explain-result") == ""
    ans = srv.req("POST", "sys/policies/explain", json={
        "policies": ["office-hours"], "path": "secret/data/office/x",
        "operation": "read", "remote_addr": "127.0.0.1"}).json()["data"]
    assert text(b, "#explain-verdict") == ("allowed" if ans["allowed"] else "denied")
    assert "secret/data/office/*" in text(b, "#explain-decisive")
    if ans.get("lua"):
        assert "office-hours" in text(b, "#explain-lua")
    shot(b, "policy-lua", "#explain-result")


def test_explain_a_denied_request_shows_the_decisive_rule(srv, browser):
    b = browser
    name = "ui-explain-" + uuid.uuid4().hex[:6]
    policy = ('path "secret/data/*" {\n  capabilities = ["read"]\n}\n\n'
              'path "secret/data/app/*" {\n  capabilities = ["deny"]\n}\n')
    r = srv.req("PUT", "sys/policies/acl/" + name, json={"policy": policy})
    assert r.status_code == 204, r.text
    open_page(b, "policies/" + name, "policies")
    assert b.eval("document.querySelector('#policy-text').value") == policy
    set_value(b, "#explain-path", "secret/data/app/db")
    set_value(b, "#explain-op", "read")
    set_value(b, "#explain-as", "policies")
    set_value(b, "#explain-subject", name)
    b.click("#explain-run")
    wait_js(b, "document.querySelector('#explain-verdict') || "
               "document.querySelector('#explain-result .error[role=alert]')")
    assert alert_text(b, "#explain-result") == ""
    assert text(b, "#explain-verdict") == "denied"
    dec = text(b, "#explain-decisive")
    assert name in dec and "secret/data/app/*" in dec and "deny" in dec
    assert "5" in dec  # the line of the deny block
    # The rule that lost is listed with why.
    matches = text(b, "#explain-matches")
    assert "secret/data/*" in matches and "lost" in matches
    shot(b, "policy-explain", "#explain-result")

    # The decisive line links to the editor with that line selected.
    b.click("#explain-decisive a[href*='/line/']")
    wait_js(b, "location.hash.endsWith('/line/5') && "
               "document.querySelector('[data-page=\"policies\"][data-ready=\"1\"]')")
    wait_js(b, "document.querySelector('#policy-text').selectionEnd > 0")
    assert b.eval("(t => t.value.substring(t.selectionStart, t.selectionEnd))"
                  "(document.querySelector('#policy-text'))") == \
        'path "secret/data/app/*" {'

    # Allowed by the other rule; and explain-self for the root token.
    set_value(b, "#explain-path", "secret/data/other")
    set_value(b, "#explain-as", "policies")
    set_value(b, "#explain-subject", name)
    b.eval("(e => { if (e) e.remove(); return true; })(document.querySelector('#explain-verdict'))")
    b.focus("#explain-path")
    b.press("Enter")  # the keyboard alone runs it
    wait_js(b, "document.querySelector('#explain-verdict')")
    assert text(b, "#explain-verdict") == "allowed"
    assert "secret/data/*" in text(b, "#explain-decisive")
    # A bad request: the server's 400 text, verbatim.
    set_value(b, "#explain-path", "secret/x")
    set_value(b, "#explain-as", "token")
    set_value(b, "#explain-subject", "no-such-token")
    expect_http(b, 400, "sys/policies/explain")
    b.click("#explain-run")
    wait_js(b, "document.querySelector('#explain-result .error[role=alert]')")
    r = srv.req("POST", "sys/policies/explain",
                json={"token": "no-such-token", "path": "secret/x", "operation": "read"})
    assert r.status_code == 400
    for e in r.json()["errors"]:
        assert e in alert_text(b, "#explain-result")


def test_tokens_page(srv, browser):
    b = browser
    open_page(b, "tokens", "tokens")
    assert "root" in text(b, "#token-self")
    shot(b, "tokens")
    set_value(b, "#token-create-policies", "default")
    set_value(b, "#token-create-ttl", "30m")
    b.click("#token-create-submit")
    wait_js(b, "document.querySelector('#token-new-value') && "
               "document.querySelector('#token-new-value').textContent")
    tok = text(b, "#token-new-value")
    acc = text(b, "#token-new-accessor")
    r = srv.req("GET", "auth/token/lookup-self", token=tok)
    assert r.status_code == 200 and r.json()["data"]["accessor"] == acc
    assert r.json()["data"]["policies"] == ["default"]
    # Look it up and revoke it by accessor (after a confirmation).
    open_page(b, "tokens", "tokens")
    assert tok not in b.eval("document.body.innerText")  # shown once only
    wait_js(b, "document.querySelector('button.accessor-lookup[data-accessor=%s]')"
            % json.dumps(acc))
    b.click('button.accessor-lookup[data-accessor="%s"]' % acc)
    wait_js(b, "document.querySelector('#accessor-details')")
    assert "default" in text(b, "#accessor-details")
    b.click('button.accessor-revoke[data-accessor="%s"]' % acc)
    b.wait_for("#confirm-ok")
    b.click("#confirm-ok")
    wait_js(b, "!document.querySelector('button.accessor-revoke[data-accessor=%s]')"
            % json.dumps(acc))
    assert srv.req("GET", "auth/token/lookup-self", token=tok).status_code == 403
    shot(b, "tokens-after-revoke")
    b.viewport(380, 800, mobile=True)  # readable on a narrow screen
    shot(b, "tokens-narrow")


def test_auth_and_audit_pages(srv, browser):
    b = browser
    # Server strings are text, never markup.
    hostile = '<img src=x onerror="window.__pwned=1">'
    r = srv.req("POST", "sys/auth/ui-hostile", json={"type": "userpass",
                                                       "description": hostile})
    assert r.status_code == 204, r.text
    d = tempfile.mkdtemp(prefix="coffer-ui-audit-")
    r = srv.req("PUT", "sys/audit/uifile", json={
        "type": "file", "options": {"file_path": os.path.join(d, "audit.log")}})
    assert r.status_code == 204, r.text
    try:
        sel = open_page(b, "audit", "audit")
        assert "uifile/" in text(b, sel + " #audit-list")
        assert b.eval("document.querySelectorAll('#metrics-table tbody tr').length") > 1
        shot(b, "audit")
        shot(b, "audit-metrics", "#metrics-table")
    finally:
        srv.req("DELETE", "sys/audit/uifile")

    sel = open_page(b, "auth", "auth")
    assert "token/" in text(b, "#auth-list")
    assert hostile in text(b, "#auth-list")
    assert b.eval("document.querySelectorAll('#auth-list img').length") == 0
    assert b.eval("window.__pwned === undefined")
    srv.req("DELETE", "sys/auth/ui-hostile")
    set_value(b, "#auth-enable-type", "userpass")
    set_value(b, "#auth-enable-path", "ui-up")
    b.click("#auth-enable-submit")
    wait_js(b, "document.querySelector('#auth-disable-ui-up')")
    assert "ui-up/" in srv.req("GET", "sys/auth").json()["data"]
    shot(b, "auth")
    b.click("#auth-disable-ui-up")
    b.wait_for("#confirm-ok")
    b.click("#confirm-ok")
    wait_js(b, "!document.querySelector('#auth-disable-ui-up')")
    assert "ui-up/" not in srv.req("GET", "sys/auth").json()["data"]
    # A refused enable shows the server's words.
    set_value(b, "#auth-enable-type", "userpass")
    set_value(b, "#auth-enable-path", "token")
    expect_http(b, 400, "sys/auth/token")
    b.click("#auth-enable-submit")
    wait_js(b, "document.querySelector('#auth-result .error[role=alert]')")
    r = srv.req("POST", "sys/auth/token", json={"type": "userpass"})
    assert r.status_code == 400
    for e in r.json()["errors"]:
        assert e in alert_text(b, "#auth-result")
