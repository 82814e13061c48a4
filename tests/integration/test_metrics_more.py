"""sys/metrics, issue 11 "Metrics and logs", second part.

- `token.creation` per auth method with Vault's labels (`auth_method`,
  `mount_point`, `creation_ttl` in Vault's buckets, `token_type`), for
  userpass and approle logins, auth/token/create and wrapping tokens.
- `database.statement` (summary, label `pool`) and
  `database.statement.error` move when credentials are issued and revoked
  against a real PostgreSQL.
- Lua VM budget overruns and seal status are reported.
Both formats (JSON and Prometheus) are checked.
"""

import concurrent.futures
import time
import uuid

import pytest

from conftest import Server
from pgcluster import PgCluster
from realserver import RealServer

CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';")


@pytest.fixture(scope="module")
def srv():
    s = Server(["-workers=8"])
    yield s
    s.stop()


def metrics(srv):
    r = srv.req("GET", "sys/metrics")
    assert r.status_code == 200, r.text
    return r.json()


def prom(srv):
    r = srv.req("GET", "sys/metrics", params={"format": "prometheus"})
    assert r.status_code == 200, r.text
    return r.text


def token_series(srv):
    """{(auth_method, mount_point, creation_ttl, token_type): count}."""
    out = {}
    for c in metrics(srv)["Counters"]:
        if c["Name"] != "coffer.token.creation" or not c["Labels"]:
            continue
        lb = c["Labels"]
        assert set(lb) == {"auth_method", "mount_point", "creation_ttl",
                           "token_type"}, lb
        out[(lb["auth_method"], lb["mount_point"], lb["creation_ttl"],
             lb["token_type"])] = c["Count"]
    return out


def total(srv):
    """Every series is labelled (as in Vault): a sum over them counts
    each token once."""
    for c in metrics(srv)["Counters"]:
        if c["Name"] == "coffer.token.creation":
            assert c["Labels"], "an unlabelled token.creation series"
    return sum(token_series(srv).values())


def moved(before, after):
    return {k: after[k] - before.get(k, 0) for k in after
            if after[k] != before.get(k, 0)}


def test_userpass_logins_count_with_vaults_labels(srv, _repeat):
    path = "up" + uuid.uuid4().hex[:6]
    assert srv.req("POST", "sys/auth/" + path,
                   json={"type": "userpass"}).status_code == 204
    try:
        r = srv.req("POST", "auth/%s/users/bob" % path,
                    json={"password": "pw-bob-1", "token_ttl": "90m"})
        assert r.status_code == 204, r.text
        before, tot = token_series(srv), total(srv)
        for _ in range(3):
            r = srv.req("POST", "auth/%s/login/bob" % path, token=None,
                        json={"password": "pw-bob-1"})
            assert r.status_code == 200, r.text
        # failed logins create no token
        r = srv.req("POST", "auth/%s/login/bob" % path, token=None,
                    json={"password": "nope"})
        assert r.status_code == 400
        assert moved(before, token_series(srv)) == {
            ("userpass", "auth/%s/" % path, "2h", "service"): 3}
        assert total(srv) == tot + 3
    finally:
        srv.req("DELETE", "sys/auth/" + path)


def test_approle_login_counts(srv, _repeat):
    path = "ar" + uuid.uuid4().hex[:6]
    assert srv.req("POST", "sys/auth/" + path,
                   json={"type": "approle"}).status_code == 204
    try:
        r = srv.req("POST", "auth/%s/role/web" % path,
                    json={"token_ttl": "5m", "token_policies": "default"})
        assert r.status_code == 204, r.text
        role_id = srv.req("GET", "auth/%s/role/web/role-id" % path
                          ).json()["data"]["role_id"]
        secret_id = srv.req("POST", "auth/%s/role/web/secret-id" % path
                            ).json()["data"]["secret_id"]
        before = token_series(srv)
        r = srv.req("POST", "auth/%s/login" % path, token=None,
                    json={"role_id": role_id, "secret_id": secret_id})
        assert r.status_code == 200, r.text
        assert moved(before, token_series(srv)) == {
            ("approle", "auth/%s/" % path, "10m", "service"): 1}
    finally:
        srv.req("DELETE", "sys/auth/" + path)


@pytest.mark.parametrize("ttl,bucket", [("30s", "1m"), ("1m", "1m"),
                                        ("61s", "10m"), ("20m", "20m"),
                                        ("25h", "2d"), ("200h", "30d")])
def test_token_create_buckets(srv, _repeat, ttl, bucket):
    before = token_series(srv)
    r = srv.req("POST", "auth/token/create",
                json={"ttl": ttl, "policies": ["default"]})
    assert r.status_code == 200, r.text
    assert moved(before, token_series(srv)) == {
        ("token", "auth/token/", bucket, "service"): 1}


def test_token_create_beyond_30_days_is_inf(srv, _repeat):
    before = token_series(srv)
    r = srv.req("POST", "auth/token/create",
                json={"ttl": "740h", "policies": ["default"]})
    assert r.status_code == 200, r.text
    assert moved(before, token_series(srv)) == {
        ("token", "auth/token/", "+Inf", "service"): 1}


def test_wrapping_tokens_count_as_response_wrapping(srv, _repeat):
    before = token_series(srv)
    r = srv.req("POST", "sys/wrapping/wrap", json={"a": "b"},
                headers={"X-Vault-Wrap-TTL": "300"})
    assert r.status_code == 200, r.text
    assert moved(before, token_series(srv)) == {
        ("response_wrapping", "sys/", "10m", "service"): 1}


def test_parallel_creations_are_all_counted(srv, _repeat):
    before, tot = token_series(srv), total(srv)

    def one(_):
        return srv.req("POST", "auth/token/create",
                       json={"ttl": "3h", "policies": ["default"]}
                       ).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        codes = list(ex.map(one, range(40)))
    assert codes == [200] * 40
    assert moved(before, token_series(srv)) == {
        ("token", "auth/token/", "1d", "service"): 40}
    assert total(srv) == tot + 40


def test_prometheus_shows_the_labels(srv, _repeat):
    srv.req("POST", "auth/token/create", json={"ttl": "1h"})
    text = prom(srv)
    lines = [l for l in text.splitlines()
             if l.startswith("coffer_token_creation{")]
    assert any('auth_method="token",mount_point="auth/token/",'
               'creation_ttl="1h",token_type="service"}' in l
               for l in lines), lines
    assert text.count("# TYPE coffer_token_creation counter") == 1


def test_prefix_applies_to_the_new_metrics(_repeat, tmp_path):
    rs = RealServer(str(tmp_path), storage="inmem",
                    extra_config='telemetry { metrics_prefix = "vault" }\n')
    rs.start()
    try:
        keys, _ = rs.init(shares=1, threshold=1)
        rs.unseal(keys)
        r = rs.req("POST", "auth/token/create", json={"ttl": "1h"})
        assert r.status_code == 200, r.text
        text = rs.req("GET", "sys/metrics",
                      params={"format": "prometheus"}).text
        assert ('vault_token_creation{auth_method="token",'
                'mount_point="auth/token/",creation_ttl="1h",'
                'token_type="service"} 1\n') in text, text
        assert "vault_lua_budget_overrun" in text
        assert "vault_core_unsealed 1" in text
        assert "coffer_" not in text
    finally:
        assert rs.stop() == 0


def test_lua_budget_and_seal_status_exist(srv, _repeat):
    j = metrics(srv)
    gauges = {g["Name"]: g["Value"] for g in j["Gauges"]}
    assert gauges["coffer.core.unsealed"] == 1
    kinds = {c["Labels"].get("kind") for c in j["Counters"]
             if c["Name"] == "coffer.lua.budget_overrun"}
    assert kinds == {"time", "memory"}


# ------------------------------------------------------------ database ----

@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def db(srv, pg):
    mount = "db" + uuid.uuid4().hex[:6]
    r = srv.req("POST", "sys/mounts/" + mount, json={"type": "database"})
    assert r.status_code == 204, r.text
    r = srv.req("POST", mount + "/config/app", json={
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg.url(templated=True),
        "username": "postgres", "password": "postgres",
        "allowed_roles": "ro, broken"})
    assert r.status_code == 204, r.text
    r = srv.req("POST", mount + "/roles/ro", json={
        "db_name": "app", "creation_statements": CREATE,
        "default_ttl": "5m", "max_ttl": "1h"})
    assert r.status_code == 204, r.text
    r = srv.req("POST", mount + "/roles/broken", json={
        "db_name": "app",
        "creation_statements": "SELECT no_such_function_here();",
        "default_ttl": "5m"})
    assert r.status_code == 204, r.text
    uid = srv.req("GET", "sys/mounts/" + mount).json()["data"]["uuid"]
    return mount, uid + "/app"


def statement(srv, pool):
    j = metrics(srv)
    s = [m for m in j["Samples"] if m["Name"] == "coffer.database.statement"
         and m["Labels"] == {"pool": pool, "driver": "postgresql"}]
    e = [m for m in j["Counters"]
         if m["Name"] == "coffer.database.statement.error"
         and m["Labels"] == {"pool": pool, "driver": "postgresql"}]
    assert len(s) == 1 and len(e) == 1, (s, e)
    return s[0], e[0]["Count"]


def test_statement_latency_moves_with_creds(srv, db, pg, _repeat):
    mount, pool = db
    # the pool exists once the config was written and verified
    before, errors = statement(srv, pool)
    r = srv.req("GET", mount + "/creds/ro")
    assert r.status_code == 200, r.text
    user = r.json()["data"]["username"]
    assert pg.role_exists(user)
    after, errors2 = statement(srv, pool)
    assert after["Count"] > before["Count"]
    assert after["Sum"] >= before["Sum"]
    assert 0 <= after["Min"] <= after["Mean"] <= after["Max"]
    assert errors2 == errors
    r = srv.req("PUT", "sys/leases/revoke",
                json={"lease_id": r.json()["lease_id"]})
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + 10
    while pg.role_exists(user) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pg.role_exists(user)
    assert statement(srv, pool)[0]["Count"] > after["Count"]
    text = prom(srv)
    assert 'coffer_database_statement_count{pool="%s",driver="postgresql"}' % pool in text
    assert 'coffer_database_statement_error{pool="%s",driver="postgresql"}' % pool in text


def test_failed_statements_are_counted(srv, db, _repeat):
    mount, pool = db
    _, errors = statement(srv, pool)
    r = srv.req("GET", mount + "/creds/broken")
    assert r.status_code >= 400, r.text
    assert statement(srv, pool)[1] > errors
