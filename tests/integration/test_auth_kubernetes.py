"""Kubernetes auth (lua/auth/kubernetes.lua) against a fake Kubernetes API
server over HTTPS with a CA made by the test (jose_fixtures.py), and
service-account JWTs signed at test time. Driven through hvac's
client.auth.kubernetes calls, unchanged, and raw HTTP.
"""

import time
import uuid

import hvac
import pytest

from conftest import Server
import jose_fixtures as jf

REVIEWER = "reviewer-" + uuid.uuid4().hex
SA = "kubernetes.io/serviceaccount/"


@pytest.fixture(scope="module")
def server():
    """Own server: many deliberate login failures, generous limit."""
    s = Server(["-workers=1", "-dev-login-burst=50000", "-dev-login-rate=1000"])
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def ca():
    return jf.CA()


@pytest.fixture(scope="module")
def signer():
    return jf.Key("RS256")


@pytest.fixture
def k8s(ca):
    srv = jf.FakeKubernetes(ca)
    yield srv
    srv.close()


def legacy_token(signer, ns="default", name="app", uid=None, **extra):
    """An old-style secret token (no exp), as Kubernetes < 1.21 made them."""
    uid = uid or str(uuid.uuid4())
    c = {"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:%s:%s" % (ns, name),
         SA + "namespace": ns, SA + "secret.name": name + "-token-x7k2p",
         SA + "service-account.name": name, SA + "service-account.uid": uid}
    c.update(extra)
    return signer.sign(c), uid


def projected_token(signer, ns="default", name="app", uid=None, aud=("vault",), **extra):
    uid = uid or str(uuid.uuid4())
    c = jf.claims(iss="https://kubernetes.default.svc", aud=list(aud),
                  sub="system:serviceaccount:%s:%s" % (ns, name),
                  **{"kubernetes.io": {"namespace": ns,
                                       "pod": {"name": "p", "uid": str(uuid.uuid4())},
                                       "serviceaccount": {"name": name, "uid": uid}}})
    c.update(extra)
    return signer.sign(c), uid


def mount_k8s(server, k8s, ca, reviewer=REVIEWER, **role):
    path = "kubernetes-" + uuid.uuid4().hex[:8]
    server.client.sys.enable_auth_method("kubernetes", path=path)
    server.client.auth.kubernetes.configure(k8s.url, kubernetes_ca_cert=ca.pem,
                                            token_reviewer_jwt=reviewer,
                                            mount_point=path)
    spec = dict(bound_service_account_names=["app", "web-*"],
                bound_service_account_namespaces=["default", "team-*"],
                policies=["k8s"], ttl="15m")
    spec.update(role)
    server.client.auth.kubernetes.create_role("r", mount_point=path, **spec)
    return path


def login(server, path, jwt, role="r"):
    return server.req("POST", "auth/%s/login" % path, token=None,
                      json={"role": role, "jwt": jwt})


def assert_error(r, status, text):
    assert r.status_code == status, (r.status_code, r.text)
    assert any(text in e for e in r.json()["errors"]), (text, r.json())


def test_hvac_login_reviewer_jwt_as_bearer(server, k8s, ca, signer):
    path = mount_k8s(server, k8s, ca)
    tok, uid = legacy_token(signer)
    k8s.accounts[tok] = ("default", "app", uid, [])
    c = hvac.Client(url=server.addr)
    resp = c.auth.kubernetes.login("r", tok, mount_point=path)
    auth = resp["auth"]
    assert auth["policies"] == ["default", "k8s"]
    assert auth["lease_duration"] == 900
    assert auth["metadata"] == {
        "role": "r", "service_account_name": "app",
        "service_account_namespace": "default", "service_account_uid": uid,
        "service_account_secret_name": "app-token-x7k2p"}
    assert c.lookup_token()["data"]["display_name"].endswith("default-app")
    # the fake cluster saw the reviewer JWT as bearer, and the login JWT in the spec
    bearer, body = k8s.reviews[-1]
    assert bearer == "Bearer " + REVIEWER
    assert body["spec"]["token"] == tok and body["kind"] == "TokenReview"
    # hvac's reads: the reviewer JWT never comes back
    cfg = server.client.auth.kubernetes.read_config(mount_point=path)
    assert cfg["kubernetes_host"] == k8s.url and cfg["token_reviewer_jwt_set"] is True
    assert "token_reviewer_jwt" not in cfg
    assert REVIEWER not in server.req("GET", "auth/%s/config" % path).text
    role = server.client.auth.kubernetes.read_role("r", mount_point=path)
    assert role["bound_service_account_names"] == ["app", "web-*"]
    assert role["token_ttl"] == 900 and role["alias_name_source"] == "serviceaccount_uid"
    assert server.client.auth.kubernetes.list_roles(mount_point=path)["keys"] == ["r"]
    server.client.auth.kubernetes.delete_role("r", mount_point=path)
    assert_error(login(server, path, tok), 400, 'invalid role name "r"')


def test_without_reviewer_the_login_jwt_is_the_bearer(server, k8s, ca, signer):
    path = mount_k8s(server, k8s, ca, reviewer=None)
    tok, uid = projected_token(signer, ns="team-a", name="web-1", aud=())
    k8s.accounts[tok] = ("team-a", "web-1", uid, [])
    r = login(server, path, tok)
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["metadata"]["service_account_namespace"] == "team-a"
    assert k8s.reviews[-1][0] == "Bearer " + tok
    cfg = server.req("GET", "auth/%s/config" % path).json()["data"]
    assert cfg["token_reviewer_jwt_set"] is False


def test_projected_token_and_audience(server, k8s, ca, signer):
    path = mount_k8s(server, k8s, ca)
    r = server.req("POST", "auth/%s/role/r" % path, json={"audience": "vault"})
    assert r.status_code == 204, r.text   # hvac 0.11 has no audience argument
    tok, uid = projected_token(signer, aud=("vault", "other"))
    k8s.accounts[tok] = ("default", "app", uid, ["vault", "other"])
    r = login(server, path, tok)
    assert r.status_code == 200, r.text
    assert k8s.reviews[-1][1]["spec"]["audiences"] == ["vault"]
    # the JWT's own aud must hold the role's audience
    tok2, uid2 = projected_token(signer, aud=("other",))
    k8s.accounts[tok2] = ("default", "app", uid2, ["vault"])
    assert_error(login(server, path, tok2), 403, "invalid audience (aud) claim")
    # and so must the review's answer
    tok3, uid3 = projected_token(signer, aud=("vault",))
    k8s.accounts[tok3] = ("default", "app", uid3, ["other"])
    assert_error(login(server, path, tok3), 403, "permission denied")


def test_refusals(server, k8s, ca, signer):
    path = mount_k8s(server, k8s, ca)
    cases = []
    tok, uid = legacy_token(signer)                      # authenticated: false
    cases.append((tok, 403, "permission denied"))
    tok, uid = legacy_token(signer, ns="kube-system")     # namespace not bound
    k8s.accounts[tok] = ("kube-system", "app", uid, [])
    cases.append((tok, 403, "namespace not authorized"))
    tok, uid = legacy_token(signer, name="db")            # name not bound
    k8s.accounts[tok] = ("default", "db", uid, [])
    cases.append((tok, 403, "service account name not authorized"))
    tok, uid = legacy_token(signer, name="web-x")         # review names another SA
    k8s.accounts[tok] = ("default", "web-y", uid, [])
    cases.append((tok, 403, "permission denied"))
    tok, uid = legacy_token(signer)                       # review has another uid
    k8s.accounts[tok] = ("default", "app", "other-uid", [])
    cases.append((tok, 403, "permission denied"))
    tok, uid = legacy_token(signer, ns="team-b")          # review: other namespace
    k8s.accounts[tok] = ("team-c", "app", uid, [])
    cases.append((tok, 403, "permission denied"))
    tok, uid = projected_token(signer, aud=(), exp=int(time.time()) - 3600,
                               iat=int(time.time()) - 7200)   # expired
    k8s.accounts[tok] = ("default", "app", uid, [])
    cases.append((tok, 403, "token is expired"))
    none = jf.unsigned_jwt({SA + "namespace": "default"})
    cases.append((none, 403, "error parsing token"))
    cases.append((none + "AAAA", 403, 'unexpected signature algorithm "none"'))
    cases.append((jf.hs256_with_public_pem(signer, {SA + "namespace": "default"}),
                  403, 'unexpected signature algorithm "HS256"'))
    cases.append(("garbage", 403, "error parsing token"))
    for tok, status, text in cases:
        assert_error(login(server, path, tok), status, text)
    tok, uid = legacy_token(signer, ns="team-b", name="web-2")   # globs match
    k8s.accounts[tok] = ("team-b", "web-2", uid, [])
    assert login(server, path, tok).status_code == 200
    assert_error(login(server, path, tok, role="nope"), 400, 'invalid role name "nope"')
    assert_error(login(server, path, ""), 400, "missing jwt")
    assert_error(login(server, path, tok, role=""), 400, "missing role")


def test_wrong_ca_is_refused(server, k8s, ca, signer):
    path = mount_k8s(server, k8s, ca)
    server.req("POST", "auth/%s/config" % path, json={
        "kubernetes_host": k8s.url, "kubernetes_ca_cert": jf.CA("Other").pem,
        "token_reviewer_jwt": REVIEWER})
    tok, uid = legacy_token(signer)
    k8s.accounts[tok] = ("default", "app", uid, [])
    n = len(k8s.reviews)
    assert_error(login(server, path, tok), 403, "permission denied")
    assert len(k8s.reviews) == n   # the TLS handshake failed: nothing was sent
    log = server.stderr_text()
    assert REVIEWER not in log and tok not in log   # secrets never logged


def test_parallel_logins(server, k8s, ca, signer):
    import concurrent.futures
    path = mount_k8s(server, k8s, ca)
    toks = []
    for i in range(30):
        tok, uid = legacy_token(signer, name="web-%d" % i)
        k8s.accounts[tok] = ("default", "web-%d" % i, uid, [])
        toks.append(tok)
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        rs = list(ex.map(lambda t: login(server, path, t), toks))
    assert [r.status_code for r in rs] == [200] * 30
    names = sorted(r.json()["auth"]["metadata"]["service_account_name"] for r in rs)
    assert names == sorted("web-%d" % i for i in range(30))


def test_pem_keys_and_issuer(server, k8s, ca, signer):
    path = mount_k8s(server, k8s, ca)
    r = server.req("POST", "auth/%s/config" % path, json={
        "kubernetes_host": k8s.url, "kubernetes_ca_cert": ca.pem,
        "pem_keys": [signer.public_pem], "issuer": "https://kubernetes.default.svc",
        "disable_iss_validation": False})
    assert r.status_code == 204, r.text
    tok, uid = projected_token(signer, aud=())
    k8s.accounts[tok] = ("default", "app", uid, [])
    assert login(server, path, tok).status_code == 200
    forged, uid2 = projected_token(jf.Key("RS256"), aud=())
    k8s.accounts[forged] = ("default", "app", uid2, [])
    assert_error(login(server, path, forged), 403, "error verifying token signature")
    other_iss, uid3 = projected_token(signer, aud=(), iss="https://evil.test")
    k8s.accounts[other_iss] = ("default", "app", uid3, [])
    assert_error(login(server, path, other_iss), 403, "invalid issuer (iss) claim")
    hs = jf.hs256_with_public_pem(signer, {SA + "namespace": "default"})
    assert_error(login(server, path, hs), 403, "error verifying token signature")


def test_config_and_role_validation(server, k8s, ca):
    path = mount_k8s(server, k8s, ca)
    cfg = "auth/%s/config" % path
    for body, text in [
            ({}, "no host provided"),
            ({"kubernetes_host": "ftp://x"}, "kubernetes_host must be an https:// URL"),
            ({"kubernetes_host": k8s.url, "kubernetes_ca_cert": "junk"},
             "The provided CA PEM data contains no valid certificates"),
            ({"kubernetes_host": k8s.url, "pem_keys": ["junk"]},
             "data does not contain any valid RSA or ECDSA public keys")]:
        assert_error(server.req("POST", cfg, json=body), 400, text)
    role = "auth/%s/role/x" % path
    for body, text in [
            ({"bound_service_account_namespaces": "a"},
             '"bound_service_account_names" can not be empty'),
            ({"bound_service_account_names": "a"},
             '"bound_service_account_namespaces" can not be empty'),
            ({"bound_service_account_names": ["*", "a"],
              "bound_service_account_namespaces": "a"}, 'can not mix "*" with values'),
            ({"bound_service_account_names": "a", "bound_service_account_namespaces": "a",
              "alias_name_source": "x"}, "invalid alias_name_source"),
            ({"bound_service_account_names": "a", "bound_service_account_namespaces": "a",
              "ttl": "2h", "max_ttl": "1h"},
             "token ttl should not be greater than token max ttl")]:
        assert_error(server.req("POST", role, json=body), 400, text)
    r = server.req("POST", role, json={"bound_service_account_names": "*",
                                       "bound_service_account_namespaces": "*"})
    assert r.status_code == 200 and "does not have an audience" in r.json()["warnings"][0]
    assert server.req("GET", role).json()["data"]["bound_service_account_names"] == ["*"]
