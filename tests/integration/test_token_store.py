"""The token store beyond create/lookup/revoke: roles, periodic tokens,
explicit max TTL, token leases in the expiration manager, revoke-tree,
use limits and tidy (VAULT_API.md 3.2-3.7, 8.1-8.4)."""

import concurrent.futures
import threading
import time
import uuid

import pytest
import requests

from helpers import wait_until


def create(server, path="auth/token/create", token=True, **body):
    r = server.req("POST", path, token=token, json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]


def lookup(server, token):
    return server.req("POST", "auth/token/lookup", json={"token": token})


def alive(server, token):
    return lookup(server, token).status_code == 200


@pytest.fixture
def role(server):
    name = "role-" + uuid.uuid4().hex[:8]
    yield name
    server.req("DELETE", "auth/token/roles/" + name)


def test_role_crud(server, role):
    r = server.req("POST", "auth/token/roles/" + role,
                   json={"allowed_policies": "a,B", "disallowed_policies": "c",
                         "orphan": True, "token_period": "1h",
                         "token_explicit_max_ttl": "10h", "path_suffix": "v1",
                         "token_num_uses": 3})
    assert r.status_code == 204, r.text
    d = server.req("GET", "auth/token/roles/" + role).json()["data"]
    assert d["allowed_policies"] == ["a", "b"]
    assert d["disallowed_policies"] == ["c"]
    assert d["orphan"] is True and d["renewable"] is True
    assert d["token_period"] == 3600 and d["period"] == 3600
    assert d["token_explicit_max_ttl"] == 36000
    assert d["path_suffix"] == "v1" and d["token_num_uses"] == 3
    keys = server.req("LIST", "auth/token/roles").json()["data"]["keys"]
    assert role in keys
    assert server.req("DELETE", "auth/token/roles/" + role).status_code == 204
    assert server.req("GET", "auth/token/roles/" + role).status_code == 404


def test_create_with_role(server, role):
    server.req("POST", "auth/token/roles/" + role,
               json={"allowed_policies": "a,b", "disallowed_policies": "c",
                     "orphan": True, "path_suffix": "sfx",
                     "token_explicit_max_ttl": "1h", "renewable": False})
    a = create(server, "auth/token/create/" + role)
    assert a["policies"] == ["a", "b", "default"]
    assert a["orphan"] is True
    assert a["renewable"] is False
    assert a["lease_duration"] == 3600
    d = lookup(server, a["client_token"]).json()["data"]
    assert d["path"] == "auth/token/create/%s/sfx" % role
    assert d["role"] == role
    assert d["explicit_max_ttl"] == 3600
    # Subset of the allowed list only.
    r = server.req("POST", "auth/token/create/" + role, json={"policies": "x"})
    assert r.status_code == 400
    assert "must be subset of the role's allowed policies" in r.text
    # role_name in the body works too.
    a = create(server, role_name=role, policies=["a"])
    assert a["policies"] == ["a", "default"]
    r = server.req("POST", "auth/token/create/no-such-role", json={})
    assert r.status_code == 400 and "unknown role" in r.text


def test_role_disallowed_policies(server, role):
    server.req("POST", "auth/token/roles/" + role,
               json={"disallowed_policies": "secret"})
    r = server.req("POST", "auth/token/create/" + role,
                   json={"policies": ["ok", "secret"]})
    assert r.status_code == 400 and "disallowed" in r.text
    a = create(server, "auth/token/create/" + role, policies=["ok"])
    assert a["policies"] == ["default", "ok"]


def test_periodic_token_renews_to_period(server):
    a = create(server, period="30s", ttl="10s", policies=["p"])
    assert a["lease_duration"] == 30
    tok = a["client_token"]
    r = server.req("POST", "auth/token/renew-self", token=tok,
                   json={"increment": "1h"})
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["lease_duration"] == 30
    assert lookup(server, tok).json()["data"]["period"] == 30


def test_periodic_token_from_role(server, role):
    server.req("POST", "auth/token/roles/" + role, json={"token_period": "45s"})
    a = create(server, "auth/token/create/" + role)
    assert a["lease_duration"] == 45


def test_explicit_max_ttl_caps_renewals(server):
    a = create(server, ttl="5s", explicit_max_ttl="8s", policies=["p"])
    tok = a["client_token"]
    r = server.req("POST", "auth/token/renew-self", token=tok,
                   json={"increment": "1h"})
    assert r.status_code == 200
    assert r.json()["auth"]["lease_duration"] <= 8
    assert any("max_ttl" in w for w in r.json()["warnings"])


def test_token_lease_expires_through_manager(server):
    def token_leases():
        r = server.req("LIST", "sys/leases/lookup/auth/token/create/")
        return set(r.json()["data"]["keys"]) if r.status_code == 200 \
            else set()
    before = token_leases()
    a = create(server, ttl="2s", policies=["p"])
    tok = a["client_token"]
    new = token_leases() - before
    assert len(new) == 1, new
    key = new.pop()
    # The manager revokes it with no lookup to prompt it: the record goes,
    # then the line is logged.
    assert wait_until(lambda: key not in token_leases(), 15)
    assert wait_until(lambda: "lease: revoked auth/token/create/" + key in
                      server.stderr_text(), 10)
    assert not alive(server, tok)


def test_renew_extends_token_lease(server):
    a = create(server, ttl="2s", policies=["p"])
    tok = a["client_token"]
    r = server.req("POST", "auth/token/renew-self", token=tok,
                   json={"increment": "30s"})
    assert r.status_code == 200
    time.sleep(3)
    assert alive(server, tok)
    server.req("POST", "auth/token/revoke", json={"token": tok})


def test_revoking_parent_revokes_children_and_their_leases(server, kv1):
    parent = create(server, policies=["root"])["client_token"]
    child = create(server, token=parent, policies=["root"])["client_token"]
    grandchild = create(server, token=child, ttl="1h")["client_token"]
    orphan = create(server, "auth/token/create-orphan", token=parent,
                    policies=["root"])["client_token"]
    assert all(alive(server, t) for t in (parent, child, grandchild, orphan))
    r = server.req("POST", "auth/token/revoke-self", token=parent)
    assert r.status_code == 204
    assert not alive(server, parent)
    assert not alive(server, child)
    assert not alive(server, grandchild)
    assert alive(server, orphan)
    # The grandchild's own lease went with it.
    time.sleep(0.5)
    r = server.req("LIST", "sys/leases/lookup/auth/token/create/")
    acc_left = r.json()["data"]["keys"] if r.status_code == 200 else []
    for k in acc_left:
        r = server.req("PUT", "sys/leases/lookup",
                       json={"lease_id": "auth/token/create/" + k})
        assert r.status_code in (200, 400)
    server.req("POST", "auth/token/revoke", json={"token": orphan})


def test_use_limited_token_stops_after_its_uses(server):
    tok = create(server, num_uses=2, policies=["root"])["client_token"]
    assert server.req("GET", "auth/token/lookup-self", token=tok).status_code == 200
    assert server.req("GET", "auth/token/lookup-self", token=tok).status_code == 200
    assert server.req("GET", "auth/token/lookup-self", token=tok).status_code == 403
    assert not alive(server, tok)


def test_tidy(server):
    r = server.req("POST", "auth/token/tidy")
    assert r.status_code == 202, r.text
    assert r.json()["warnings"]


def test_token_lease_not_renewable_through_sys(server):
    a = create(server, ttl="1h", policies=["p"])
    keys = server.req("LIST", "sys/leases/lookup/auth/token/create/"
                      ).json()["data"]["keys"]
    assert keys
    r = server.req("PUT", "sys/leases/renew",
                   json={"lease_id": "auth/token/create/" + keys[0]})
    assert r.status_code == 400
    server.req("POST", "auth/token/revoke", json={"token": a["client_token"]})


def test_bound_cidrs_limit_where_a_token_works(server):
    far = "far-" + uuid.uuid4().hex[:6]
    near = "near-" + uuid.uuid4().hex[:6]
    for name, cidrs in ((far, "10.0.0.0/8"), (near, "127.0.0.0/8")):
        r = server.req("POST", "auth/token/roles/" + name,
                       json={"token_bound_cidrs": cidrs})
        assert r.status_code == 204, r.text
    t_far = server.req("POST", "auth/token/create/" + far).json()["auth"][
        "client_token"]
    t_near = server.req("POST", "auth/token/create/" + near).json()["auth"][
        "client_token"]
    # The tests connect from 127.0.0.1.
    r = server.req("GET", "auth/token/lookup-self", token=t_far)
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}
    assert server.req("GET", "auth/token/lookup-self",
                      token=t_near).status_code == 200


def test_recreated_token_survives_its_predecessors_lease(server):
    """A token re-created with a revoked token's id has the same lease id.
    The old lease, still queued for revocation, must end without taking
    the new token (race: revoke, re-create at once, many times)."""
    custom = "again-" + uuid.uuid4().hex[:12]
    for i in range(30):
        create(server, id=custom, ttl="1h")
        r = server.req("POST", "auth/token/revoke", json={"token": custom})
        assert r.status_code == 204, r.text
        create(server, id=custom, ttl="1h")
        time.sleep(0.02)
        assert alive(server, custom), "round %d" % i
        r = server.req("POST", "auth/token/revoke", json={"token": custom})
        assert r.status_code == 204, r.text
    # One live lease for the id at the end, not a pile of old records.
    create(server, id=custom, ttl="1h")
    time.sleep(0.3)
    assert alive(server, custom)
    server.req("POST", "auth/token/revoke", json={"token": custom})


@pytest.mark.once  # many rounds inside already
def test_token_recreated_as_the_old_one_expires(server):
    """The expiry of the old token races with the creation of the new one
    (creation is refused with 400 while the old entry exists)."""
    custom = "expiring-" + uuid.uuid4().hex[:12]
    for i in range(3):
        create(server, id=custom, ttl="1s")
        deadline = time.monotonic() + 15
        while True:
            r = server.req("POST", "auth/token/create",
                           json={"id": custom, "ttl": "1h"})
            if r.status_code == 200:
                break
            assert r.status_code == 400, r.text
            assert time.monotonic() < deadline, "old token never expired"
            time.sleep(0.005)
        time.sleep(0.5)
        assert alive(server, custom), "round %d" % i
        server.req("POST", "auth/token/revoke", json={"token": custom})


def _race_recreate(server, custom, revoke):
    """Runs revoke() in a thread while four others re-create `custom`
    until the store takes it (400 while the old entry exists); the new
    token must outlive whatever the old one's revocation still does."""
    go = threading.Event()
    won = []

    def recreate():
        deadline = time.monotonic() + 30
        # A kept-alive connection: the window is milliseconds wide.
        with requests.Session() as s:
            s.headers["X-Vault-Token"] = server.token
            s.get(server.url("sys/health"), timeout=30)
            go.wait()
            while not won and time.monotonic() < deadline:
                r = s.post(server.url("auth/token/create"),
                           json={"id": custom, "ttl": "1h"}, timeout=30)
                if r.status_code == 200:
                    won.append(r.json()["auth"]["accessor"])
                else:
                    assert r.status_code == 400, r.text

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(recreate) for _ in range(4)]
        time.sleep(0.2)
        t = threading.Thread(target=revoke)
        go.set()
        t.start()
        for f in futs:
            f.result()
    t.join()
    assert len(won) == 1, won
    time.sleep(0.3)  # the revocation workers' share of the old token
    ok = alive(server, custom)
    server.req("POST", "auth/token/revoke", json={"token": custom})
    return ok


@pytest.mark.once  # many rounds inside already
@pytest.mark.parametrize("how", ["revoke", "accessor", "self"])
def test_recreated_token_survives_the_old_tree_revocation(server, how):
    """The old token has children, so its revocation is long: its leases
    are marked after its entry went, when the new token (same id, same
    hmac, same token index) may already hold a lease of its own."""
    for i in range(3):
        custom = "tree-" + uuid.uuid4().hex[:12]
        old = create(server, id=custom, ttl="1h")
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            list(ex.map(lambda _: create(server, token=custom, ttl="1h"),
                        range(300)))

        def revoke():
            if how == "revoke":
                r = server.req("POST", "auth/token/revoke",
                               json={"token": custom})
            elif how == "accessor":
                r = server.req("POST", "auth/token/revoke-accessor",
                               json={"accessor": old["accessor"]})
            else:
                r = server.req("POST", "auth/token/revoke-self",
                               token=custom)
            assert r.status_code == 204, r.text
        assert _race_recreate(server, custom, revoke), "round %d" % i


@pytest.mark.once  # many rounds inside already
def test_recreated_children_survive_the_old_parents_revocation(server):
    """Children re-created (same ids, now orphans) while their old parent's
    tree is revoked stay alive, and the old parent's index of them is not
    used to revoke them later (tidy)."""
    parent = create(server, ttl="1h")["client_token"]
    ids = ["kid-%d-%s" % (i, uuid.uuid4().hex[:8]) for i in range(40)]
    for cid in ids:
        create(server, token=parent, id=cid, ttl="1h")

    def revoke():
        r = server.req("POST", "auth/token/revoke", json={"token": parent})
        assert r.status_code == 204, r.text
    t = threading.Thread(target=revoke)
    made = set()
    deadline = time.monotonic() + 30
    with requests.Session() as s:
        s.headers["X-Vault-Token"] = server.token
        s.get(server.url("sys/health"), timeout=30)  # connected before
        t.start()
        while len(made) < len(ids):
            for cid in ids:
                if cid not in made and s.post(
                        server.url("auth/token/create-orphan"),
                        json={"id": cid, "ttl": "1h"},
                        timeout=30).status_code == 200:
                    made.add(cid)
            assert time.monotonic() < deadline
    t.join()
    time.sleep(0.3)
    r = server.req("POST", "auth/token/tidy")
    assert r.status_code in (200, 202, 204), r.text
    time.sleep(0.5)
    dead = [cid for cid in ids if not alive(server, cid)]
    for cid in ids:
        server.req("POST", "auth/token/revoke", json={"token": cid})
    assert dead == []

