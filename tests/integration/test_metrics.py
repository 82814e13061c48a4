"""sys/metrics: the lease gauge equals the number of live leases at all times.

`coffer.expire.num_leases` used to be the size of the expiration heap, which
keeps stale entries for revoked and renewed leases, so it never went down
when a lease ended by hand. Every way a lease can end is checked here
against the gauge, on a private server with an engine that issues leases
(and can be told to fail its revocations).
"""

import concurrent.futures
import os
import tempfile
import time
import uuid

import pytest

from conftest import Server
from helpers import wait_until

ENGINE = """
local e = coffer.engine { name = "leasy", help = "Issues leases." }

e:path("issue", {
  fields = { count = { type = "int", default = 1 },
             ttl = { type = "int", default = 3600 },
             fail = { type = "bool", default = false } },
  write = function(req)
    local ids = {}
    for i = 1, req.data.count do
      local lease = req:pending_lease("thing", { fail = req.data.fail })
      local r = lease:issue({ n = i }, { ttl = req.data.ttl, renewable = true })
      ids[#ids + 1] = r.lease_id
    end
    return { data = { lease_ids = ids } }
  end,
})

e:secret("thing", {
  revoke = function(lease)
    if lease.internal.fail then error("revocation refused") end
    return true
  end,
  renew = function() return true end,
})

return e
"""

WAIT = 15.0


@pytest.fixture(scope="module")
def srv():
    d = tempfile.mkdtemp(prefix="coffer-metrics-")
    with open(os.path.join(d, "leasy.lua"), "w") as f:
        f.write(ENGINE)
    s = Server(["-dev-plugin-dir=%s" % d, "-workers=8"])
    yield s
    s.stop()


@pytest.fixture
def mount(srv):
    path = "m" + uuid.uuid4().hex[:8]
    r = srv.req("POST", "sys/mounts/" + path, json={"type": "leasy"})
    assert r.status_code == 204, r.text
    yield path
    srv.req("DELETE", "sys/mounts/" + path)


def gauges(srv):
    r = srv.req("GET", "sys/metrics")
    assert r.status_code == 200, r.text
    return {g["Name"]: g["Value"] for g in r.json()["Gauges"]}


def token_creations(srv):
    """The sum of Vault's labelled token.creation series."""
    return sum(c["Count"] for c in srv.req("GET", "sys/metrics").json()
               ["Counters"] if c["Name"] == "coffer.token.creation")


def counters(srv):
    return {c["Name"]: c["Count"]
            for c in srv.req("GET", "sys/metrics").json()["Counters"]}


def num_leases(srv):
    return gauges(srv)["coffer.expire.num_leases"]


def wait_gauge(srv, want, what):
    deadline = time.monotonic() + WAIT
    got = num_leases(srv)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.05)
        got = num_leases(srv)
    assert got == want, "%s: num_leases is %s, want %s" % (what, got, want)


def issue(srv, mount, n=1, token=True, **kw):
    body = {"count": n}
    body.update(kw)
    r = srv.req("POST", mount + "/issue", token=token, json=body)
    assert r.status_code == 200, r.text
    return r.json()["data"]["lease_ids"]


def child_token(srv, parent=True, **body):
    r = srv.req("POST", "auth/token/create", token=parent,
                json=dict({"policies": ["root"], "ttl": "1h"}, **body))
    assert r.status_code == 200, r.text
    return r.json()["auth"]


def test_gauge_counts_issued_and_sys_leases_revoke(srv, mount, _repeat):
    base = num_leases(srv)
    ids = issue(srv, mount, 3)
    wait_gauge(srv, base + 3, "after issuing 3")
    r = srv.req("PUT", "sys/leases/revoke", json={"lease_id": ids[0]})
    assert r.status_code == 204, r.text
    wait_gauge(srv, base + 2, "after sys/leases/revoke")
    r = srv.req("PUT", "sys/leases/revoke/" + ids[1])
    assert r.status_code == 204, r.text
    wait_gauge(srv, base + 1, "after sys/leases/revoke/<id>")
    r = srv.req("PUT", "sys/leases/revoke-force/" + ids[2])
    assert r.status_code == 204, r.text
    wait_gauge(srv, base, "after revoke-force")


def test_gauge_after_revoke_prefix_and_mount_disable(srv, mount, _repeat):
    base = num_leases(srv)
    issue(srv, mount, 5)
    wait_gauge(srv, base + 5, "after issuing 5")
    r = srv.req("PUT", "sys/leases/revoke-prefix/" + mount + "/issue")
    assert r.status_code == 204, r.text
    wait_gauge(srv, base, "after revoke-prefix")
    issue(srv, mount, 4)
    wait_gauge(srv, base + 4, "after issuing 4")
    r = srv.req("DELETE", "sys/mounts/" + mount)
    assert r.status_code == 204, r.text
    wait_gauge(srv, base, "after disabling the mount")


def test_gauge_after_token_revoke_endpoints(srv, mount, _repeat):
    """Each child token has its own token lease plus one secret lease."""
    base = num_leases(srv)
    a = child_token(srv)
    wait_gauge(srv, base + 1, "after creating a token")
    issue(srv, mount, 1, token=a["client_token"])
    wait_gauge(srv, base + 2, "after a lease for the token")
    r = srv.req("POST", "auth/token/revoke", json={"token": a["client_token"]})
    assert r.status_code == 204, r.text
    wait_gauge(srv, base, "after auth/token/revoke")

    b = child_token(srv)
    issue(srv, mount, 2, token=b["client_token"])
    wait_gauge(srv, base + 3, "after a token and two leases")
    r = srv.req("POST", "auth/token/revoke-self", token=b["client_token"])
    assert r.status_code == 204, r.text
    wait_gauge(srv, base, "after auth/token/revoke-self")

    c = child_token(srv)
    issue(srv, mount, 1, token=c["client_token"])
    wait_gauge(srv, base + 2, "after a token and a lease")
    r = srv.req("POST", "auth/token/revoke-accessor",
                json={"accessor": c["accessor"]})
    assert r.status_code == 204, r.text
    wait_gauge(srv, base, "after auth/token/revoke-accessor")


def test_gauge_after_token_cascade(srv, mount, _repeat):
    base = num_leases(srv)
    parent = child_token(srv)
    kids = [child_token(srv, parent=parent["client_token"])
            for _ in range(3)]
    for k in kids:
        issue(srv, mount, 2, token=k["client_token"])
    # parent + 3 children token leases + 6 secret leases
    wait_gauge(srv, base + 10, "after a token tree")
    r = srv.req("POST", "auth/token/revoke",
                json={"token": parent["client_token"]})
    assert r.status_code == 204, r.text
    wait_gauge(srv, base, "after revoking the tree's root")


def test_gauge_after_expiry(srv, mount, _repeat):
    base = num_leases(srv)
    # Long enough that all four are counted before the first expires.
    issue(srv, mount, 3, ttl=3)
    child_token(srv, ttl="4s")
    wait_gauge(srv, base + 4, "after issuing short leases")
    wait_gauge(srv, base, "after they expired")


def test_gauge_and_counters_with_failing_revocations(srv, mount, _repeat):
    base = num_leases(srv)
    before = counters(srv)
    timed = samples(srv)[("coffer.expire.revoke", ())]["Count"]
    ids = issue(srv, mount, 2, fail=True)
    wait_gauge(srv, base + 2, "after issuing")
    r = srv.req("PUT", "sys/leases/revoke", json={"lease_id": ids[0]})
    assert r.status_code >= 400
    wait_gauge(srv, base + 2, "a failed revocation leaves the lease")
    r = srv.req("PUT", "sys/leases/revoke-force/" + ids[0])
    assert r.status_code == 204, r.text
    wait_gauge(srv, base + 1, "after revoke-force of a failing lease")
    r = srv.req("PUT", "sys/leases/revoke-force/" + ids[1])
    assert r.status_code == 204
    wait_gauge(srv, base, "after the second revoke-force")
    after = counters(srv)
    assert after["coffer.expire.revoke.success"] >= \
        before["coffer.expire.revoke.success"] + 2
    assert after["coffer.expire.revoke.failure"] >= \
        before["coffer.expire.revoke.failure"] + 1
    # Every engine revoke call is timed, the failing ones included.
    assert samples(srv)[("coffer.expire.revoke", ())]["Count"] >= timed + 3


def test_gauge_exact_under_parallel_issue_and_revoke(srv, mount, _repeat):
    """Issue and revoke from many threads, tokens and leases mixed."""
    base = num_leases(srv)

    def one(i):
        tok = child_token(srv)["client_token"]
        ids = issue(srv, mount, 2, token=tok)
        if i % 3 == 0:
            srv.req("PUT", "sys/leases/revoke", json={"lease_id": ids[0]})
            srv.req("PUT", "sys/leases/revoke", json={"lease_id": ids[0]})
        if i % 2 == 0:
            srv.req("POST", "auth/token/revoke", json={"token": tok})
        else:
            srv.req("POST", "auth/token/revoke-self", token=tok)

    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        list(ex.map(one, range(36)))
    wait_gauge(srv, base, "after parallel issue and revoke")
    r = srv.req("PUT", "sys/leases/revoke-prefix/" + mount)
    assert r.status_code == 204
    wait_gauge(srv, base, "still exact")


def test_prometheus_has_the_same_gauge(srv, mount, _repeat):
    issue(srv, mount, 1)
    want = num_leases(srv)
    r = srv.req("GET", "sys/metrics", params={"format": "prometheus"})
    assert r.status_code == 200
    lines = [l for l in r.text.splitlines()
             if l.startswith("coffer_expire_num_leases ")]
    assert len(lines) == 1, r.text
    assert float(lines[0].split()[1]) == want
    srv.req("PUT", "sys/leases/revoke-prefix/" + mount)


# ------------------------------------------------- request, login, token ----

def samples(srv):
    return {(s["Name"], tuple(sorted(s["Labels"].items()))): s
            for s in srv.req("GET", "sys/metrics").json()["Samples"]}


def labelled(srv, name):
    """{label value: count} of a labelled counter."""
    out = {}
    for c in srv.req("GET", "sys/metrics").json()["Counters"]:
        if c["Name"] == name:
            out[next(iter(c["Labels"].values()), "")] = c["Count"]
    return out


def test_request_counts_and_status_codes_move(srv, _repeat):
    before_codes = labelled(srv, "coffer.core.response_status_code")
    before = samples(srv)[("coffer.core.handle_request", ())]["Count"]
    sys_key = ("coffer.route.request", (("mount_point", "sys/"),))
    sys_before = samples(srv).get(sys_key, {"Count": 0})["Count"]
    for _ in range(3):
        assert srv.req("GET", "sys/mounts").status_code == 200
    assert srv.req("GET", "sys/mounts", token="nope").status_code == 403
    assert srv.req("GET", "secret/data/missing-" +
                   uuid.uuid4().hex).status_code == 404
    codes = labelled(srv, "coffer.core.response_status_code")
    assert codes["200"] >= before_codes.get("200", 0) + 3
    assert codes["403"] == before_codes.get("403", 0) + 1
    assert codes["404"] >= before_codes.get("404", 0) + 1
    s = samples(srv)
    hr = s[("coffer.core.handle_request", ())]
    assert hr["Count"] >= before + 5
    assert 0 <= hr["Min"] <= hr["Mean"] <= hr["Max"]
    read = s[("coffer.core.handle_request_by_operation",
              (("operation", "read"),))]
    assert read["Count"] >= 5
    assert s[sys_key]["Count"] >= sys_before + 3


def test_login_success_failure_and_token_creation(srv, _repeat):
    path = "up" + uuid.uuid4().hex[:6]
    r = srv.req("POST", "sys/auth/" + path, json={"type": "userpass"})
    assert r.status_code == 204, r.text
    try:
        r = srv.req("POST", "auth/%s/users/alice" % path,
                    json={"password": "pw-alice-1", "policies": "default"})
        assert r.status_code == 204, r.text
        tokens_before = token_creations(srv)
        for _ in range(2):
            r = srv.req("POST", "auth/%s/login/alice" % path, token=None,
                        json={"password": "pw-alice-1"})
            assert r.status_code == 200, r.text
        for _ in range(3):
            r = srv.req("POST", "auth/%s/login/alice" % path, token=None,
                        json={"password": "wrong"})
            assert r.status_code >= 400
        mp = "auth/%s/" % path
        assert labelled(srv, "coffer.auth.login.success")[mp] == 2
        assert labelled(srv, "coffer.auth.login.failure")[mp] == 3
        child_token(srv)
        assert token_creations(srv) == tokens_before + 3
        s = samples(srv)
        assert s[("coffer.core.handle_login_request", ())]["Count"] >= 5
    finally:
        srv.req("DELETE", "sys/auth/" + path)


def test_hostile_login_paths_do_not_grow_the_label_set(srv, _repeat):
    """Random auth mounts in login paths fold into a bounded label set."""
    for i in range(80):
        srv.req("POST", "auth/x%d-%s/login/u" % (i, uuid.uuid4().hex[:6]),
                token=None, json={"password": "p"})
    failures = labelled(srv, "coffer.auth.login.failure")
    assert len(failures) <= 65
    assert "other" in failures
    text = srv.req("GET", "sys/metrics",
                   params={"format": "prometheus"}).text
    assert text.count("coffer_auth_login_failure{") <= 65


def test_prometheus_and_json_list_the_same_metrics(srv, _repeat):
    child_token(srv)  # token.creation has a series once a token was made
    j = srv.req("GET", "sys/metrics").json()
    names = {m["Name"].replace(".", "_")
             for k in ("Gauges", "Counters", "Samples") for m in j[k]}
    text = srv.req("GET", "sys/metrics", params={"format": "prometheus"}).text
    types = {l.split()[2] for l in text.splitlines() if l.startswith("# TYPE")}
    assert names <= types, names - types
    for want in ("coffer_core_unsealed", "coffer_expire_num_leases",
                 "coffer_expire_num_irrevocable_leases",
                 "coffer_expire_num_pending_leases",
                 "coffer_expire_revoke_backlog",
                 "coffer_expire_lease_creation", "coffer_token_creation",
                 "coffer_core_handle_request", "coffer_expire_revoke",
                 "coffer_audit_log_failure", "coffer_route_request"):
        assert want in types, want
    assert "coffer_core_unsealed 1\n" in text
    assert "coffer_core_handle_request_count " in text
    q = {}
    for l in text.splitlines():
        if l.startswith("coffer_core_handle_request{quantile="):
            q[l.split('"')[1]] = float(l.split()[1])
    assert set(q) == {"0.5", "0.9", "0.99"}, text
    assert 0 <= q["0.5"] <= q["0.9"] <= q["0.99"]


def test_metrics_need_a_token_by_default(srv, _repeat):
    assert srv.req("GET", "sys/metrics", token=None).status_code == 403


# ------------------------------------------------------------- loggers ----

def test_sys_loggers_changes_the_level_at_run_time(srv, _repeat):
    r = srv.req("GET", "sys/loggers")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["core"] == "info"
    r = srv.req("POST", "sys/loggers", json={"level": "debug"})
    assert r.status_code == 204, r.text
    try:
        assert srv.req("GET", "sys/loggers").json()["data"]["lease"] == "debug"
        srv.new_stderr()
        srv.req("GET", "sys/mounts")
        deadline = time.monotonic() + 5
        seen = ""
        while "read sys/mounts -> 200" not in seen and \
                time.monotonic() < deadline:
            seen += srv.new_stderr()
            time.sleep(0.05)
        line = [l for l in seen.splitlines() if "read sys/mounts -> 200" in l]
        assert line, seen
        rid = line[0].split()[2]
        assert line[0].endswith(" request_id=" + rid), line[0]
    finally:
        r = srv.req("DELETE", "sys/loggers")
        assert r.status_code == 204, r.text
    assert srv.req("GET", "sys/loggers").json()["data"]["core"] == "info"
    r = srv.req("POST", "sys/loggers", json={"level": "loud"})
    assert r.status_code == 400
    assert "invalid level" in r.json()["errors"][0]
    assert srv.req("POST", "sys/loggers", json={}).status_code == 400


def test_sys_loggers_needs_sudo(srv, _repeat):
    r = srv.req("POST", "sys/policies/acl/loggers-nosudo", json={
        "policy": 'path "sys/loggers" { capabilities = ["read", "update"] }'})
    assert r.status_code == 204, r.text
    tok = child_token(srv, policies=["loggers-nosudo"])["client_token"]
    assert srv.req("GET", "sys/loggers", token=tok).status_code == 403
    r = srv.req("POST", "sys/loggers", token=tok, json={"level": "trace"})
    assert r.status_code == 403
    assert srv.req("GET", "sys/loggers").json()["data"]["core"] == "info"
    assert srv.req("GET", "sys/loggers", token=None).status_code == 403


# ---------------------------------------------------- log format, config ----

def test_json_log_format_one_object_per_line(_repeat):
    import json
    s = Server(["-log-format=json", "-log-level=debug"])
    try:
        r = s.req("POST", "secret/data/j", json={"data": {"pw": "hunter22"}})
        assert r.status_code == 200
        rid = r.json()["request_id"]
        s.req("GET", "secret/data/j")
        time.sleep(0.2)
    finally:
        assert s.stop() == 0
    lines = [l for l in s.stderr_text().splitlines() if l.strip()]
    assert lines
    objs = [json.loads(l) for l in lines]  # every line is one JSON object
    for o in objs:
        assert {"@timestamp", "@level", "@module", "@message"} <= set(o), o
        assert o["@level"] in ("trace", "debug", "info", "warn", "error")
    mine = [o for o in objs if o.get("request_id") == rid]
    assert mine, "no line carries the request id %s" % rid
    assert any(o["@module"] == "lease" for o in objs)
    assert "hunter22" not in s.stderr_text()


def test_unknown_log_format_is_refused(_repeat):
    import subprocess
    from conftest import coffer_bin
    p = subprocess.run([coffer_bin(), "server", "-dev", "-log-format=xml",
                        "-dev-listen-address=127.0.0.1:1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    assert p.returncode != 0
    assert b'unknown log format "xml"' in p.stderr


def test_telemetry_block_sets_prefix_and_unauthenticated_access(_repeat):
    from realserver import RealServer
    d = tempfile.mkdtemp(prefix="coffer-telemetry-")
    rs = RealServer(d, storage="inmem", extra_config=(
        'log_format = "json"\n'
        'telemetry {\n  metrics_prefix = "vault",\n'
        '  prometheus_retention_time = "24h",\n'
        '  unauthenticated_metrics_access = true,\n'
        '  disable_hostname = true,\n}\n'))
    rs.start()
    try:
        keys, _ = rs.init(shares=1, threshold=1)
        rs.unseal(keys)
        r = rs.req("GET", "sys/metrics", token=None)
        assert r.status_code == 200, r.text
        gauges = {g["Name"]: g["Value"] for g in r.json()["Gauges"]}
        assert gauges["vault.core.unsealed"] == 1
        assert "vault.expire.num_leases" in gauges
        assert not any(n.startswith("coffer.") for n in gauges)
        text = rs.req("GET", "sys/metrics", token=None,
                      params={"format": "prometheus"}).text
        assert "vault_expire_num_leases " in text
        assert "vault_core_handle_request_count " in text
    finally:
        assert rs.stop() == 0
    import json
    for line in rs.log().splitlines():
        if line.startswith("{"):
            json.loads(line)


@pytest.mark.parametrize("body, msg", [
    ('telemetry { metrics_prefix = "9bad" }', "invalid metrics prefix"),
    ('telemetry { metrics_prefix = "a b" }', "invalid metrics prefix"),
    ('telemetry { statsd_address = "x" }', 'unknown key "statsd_address"'),
    ('telemetry { metrics_prefix = "a" }\ntelemetry { metrics_prefix = "b" }',
     "a second telemetry block"),
    ('log_format = "xml"', 'unknown format "xml"'),
])
def test_bad_telemetry_config_is_refused(body, msg, _repeat):
    import subprocess
    from conftest import coffer_bin
    d = tempfile.mkdtemp(prefix="coffer-badtel-")
    path = os.path.join(d, "c.lua")
    with open(path, "w") as f:
        f.write('listener "tcp" { address = "127.0.0.1:1", tls_disable = '
                'true }\nstorage "inmem" {}\n' + body + "\n")
    p = subprocess.run([coffer_bin(), "server", "-config=" + path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    assert p.returncode != 0
    assert msg in p.stderr.decode(), p.stderr


def test_gauge_is_exact_after_a_restart(_repeat):
    """Leases restored from storage are counted once, revoked ones uncounted."""
    from realserver import RealServer
    d = tempfile.mkdtemp(prefix="coffer-gauge-restart-")
    rs = RealServer(d, storage="sqlite")
    rs.start()
    try:
        keys, root = rs.init(shares=1, threshold=1)
        rs.unseal(keys)
        toks = []
        for _ in range(4):
            r = rs.req("POST", "auth/token/create",
                       json={"policies": ["default"], "ttl": "1h"})
            assert r.status_code == 200, r.text
            toks.append(r.json()["auth"]["client_token"])
        r = rs.req("POST", "auth/token/revoke", json={"token": toks[0]})
        assert r.status_code == 204
        rs.stop()
        rs.start()
        rs.unseal(keys)

        def gauge():
            r = rs.req("GET", "sys/metrics")
            return {g["Name"]: g["Value"]
                    for g in r.json()["Gauges"]}["coffer.expire.num_leases"]
        deadline = time.monotonic() + WAIT
        while gauge() != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gauge() == 3
        r = rs.req("POST", "auth/token/revoke", json={"token": toks[1]})
        assert r.status_code == 204
        while gauge() != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gauge() == 2
    finally:
        rs.stop()


# ------------------------------------------------------------ database ----

@pytest.fixture(scope="module")
def pg():
    from pgcluster import PgCluster
    cluster = PgCluster()
    yield cluster
    cluster.stop()


def pool_gauges(srv):
    out = {}
    for g in srv.req("GET", "sys/metrics").json()["Gauges"]:
        if g["Name"].startswith("coffer.database.pool."):
            out.setdefault(g["Labels"]["pool"], {})[
                g["Name"][len("coffer.database.pool."):]] = g["Value"]
    return out


def test_database_pool_gauges_and_credential_leases(srv, pg, _repeat):
    path = "db" + uuid.uuid4().hex[:6]
    r = srv.req("POST", "sys/mounts/" + path, json={"type": "database"})
    assert r.status_code == 204, r.text
    try:
        r = srv.req("POST", path + "/config/app", json={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg.url(templated=True),
            "username": "postgres", "password": "postgres",
            "allowed_roles": "r", "max_open_connections": 3})
        assert r.status_code in (200, 204), r.text
        r = srv.req("POST", path + "/roles/r", json={
            "db_name": "app", "default_ttl": "5m",
            "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN "
                                   "PASSWORD '{{password}}';"})
        assert r.status_code in (200, 204), r.text
        base = num_leases(srv)
        leases = []
        for _ in range(3):
            r = srv.req("GET", path + "/creds/r")
            assert r.status_code == 200, r.text
            leases.append(r.json()["lease_id"])
        wait_gauge(srv, base + 3, "after three database credentials")
        pools = pool_gauges(srv)
        mine = [p for k, p in pools.items()]
        assert mine, pools
        p = max(mine, key=lambda x: x["open"])
        assert 1 <= p["open"] <= 3 and p["max_open"] == 3, pools
        assert p["in_use"] == 0 and p["waiting"] == 0
        assert p["idle"] == p["open"]
        r = srv.req("PUT", "sys/leases/revoke-prefix/" + path + "/creds/r")
        assert r.status_code == 204, r.text
        wait_gauge(srv, base, "after revoking the database credentials")
        assert "postgres:postgres" not in srv.req(
            "GET", "sys/metrics", params={"format": "prometheus"}).text
    finally:
        srv.req("DELETE", "sys/mounts/" + path)


def test_request_counters_exact_under_parallel_load(srv, _repeat):
    """Every finished request is counted once, rendering in parallel."""
    def count():
        s = srv.req("GET", "sys/metrics").json()
        hr = [x for x in s["Samples"]
              if x["Name"] == "coffer.core.handle_request"][0]["Count"]
        return hr

    before = count()
    n_plain, n_metrics = 120, 40

    def one(i):
        if i % 4 == 0 and i // 4 < n_metrics:
            r = srv.req("GET", "sys/metrics",
                        params={"format": "prometheus"} if i % 8 else None)
        else:
            r = srv.req("GET", "sys/mounts")
        assert r.status_code == 200

    total = n_plain + n_metrics
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(one, range(total)))
    # The first count() itself finished after it rendered: +1.
    assert count() == before + total + 1


# ------------------------------------------------- Lua budget overruns --

RUNAWAY_ENGINE = """
local e = coffer.engine { name = "runaway", help = "Runs away." }

e:path("spin", {
  read = function(req)
    local x = 0
    while true do x = x + 1 end
  end,
})

e:path("spin-caught", {
  read = function(req)
    -- A pcall in the script cannot swallow the deadline, nor count twice.
    for i = 1, 100 do pcall(function() while true do end end) end
    return { data = { survived = true } }
  end,
})

-- One request far past the memory cap: refused at once, with no CPU to
-- spend, so a starved thread cannot reach the 1 s deadline first and be
-- counted as a time overrun instead.
e:path("hog", {
  read = function(req)
    local s = string.rep("x", 1 << 30)
    return { data = { n = #s } }
  end,
})

e:path("fine", {
  read = function(req)
    local t = {}
    for i = 1, 1000 do t[i] = string.rep("y", 100) .. i end
    return { data = { n = #t } }
  end,
})

return e
"""


@pytest.fixture(scope="module")
def runaway():
    d = tempfile.mkdtemp(prefix="coffer-runaway-")
    with open(os.path.join(d, "runaway.lua"), "w") as f:
        f.write(RUNAWAY_ENGINE)
    s = Server(["-dev-plugin-dir=%s" % d, "-max-request-duration=1s"])
    r = s.req("POST", "sys/mounts/run", json={"type": "runaway"})
    assert r.status_code == 204, r.text
    yield s
    s.stop()


def overruns(srv):
    got = labelled(srv, "coffer.lua.budget_overrun")
    return got.get("time", 0), got.get("memory", 0)


def assert_overruns(srv, want):
    """The sweeper can answer a spinner's request at its deadline before
    the spinner's own hook, which counts it, runs again: poll."""
    assert wait_until(lambda: overruns(srv) == want, 10), overruns(srv)


def test_lua_budget_overruns_are_counted_by_kind(runaway, _repeat):
    t0, m0 = overruns(runaway)
    r = runaway.req("GET", "run/spin", timeout=20)
    assert r.status_code == 500, r.text
    assert_overruns(runaway, (t0 + 1, m0))
    r = runaway.req("GET", "run/spin-caught", timeout=20)
    assert r.status_code == 500, r.text
    assert_overruns(runaway, (t0 + 2, m0))
    r = runaway.req("GET", "run/hog", timeout=20)
    assert r.status_code == 500, r.text
    assert_overruns(runaway, (t0 + 2, m0 + 1))
    # Calls within budget count nothing.
    for _ in range(5):
        r = runaway.req("GET", "run/fine")
        assert r.status_code == 200 and r.json()["data"]["n"] == 1000
    assert_overruns(runaway, (t0 + 2, m0 + 1))
    text = runaway.req("GET", "sys/metrics",
                       params={"format": "prometheus"}).text
    assert 'coffer_lua_budget_overrun{kind="time"} %d' % (t0 + 2) in text
    assert 'coffer_lua_budget_overrun{kind="memory"} %d' % (m0 + 1) in text


def test_lua_budget_overruns_exact_under_parallel_load(runaway, _repeat):
    t0, m0 = overruns(runaway)
    paths = ["run/spin"] * 3 + ["run/hog"] * 3 + ["run/fine"] * 6
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as ex:
        codes = list(ex.map(
            lambda p: runaway.req("GET", p, timeout=30).status_code, paths))
    assert codes == [500] * 6 + [200] * 6, codes
    assert_overruns(runaway, (t0 + 3, m0 + 3))
