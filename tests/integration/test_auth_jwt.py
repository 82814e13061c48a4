"""JWT/OIDC auth (lua/auth/jwt.lua) against real components made at test
time: RSA, EC and Ed25519 keys, JWTs signed with them, a JWKS and an OIDC
discovery document served over HTTPS by a test CA (jose_fixtures.py).
Driven through hvac's client.auth.jwt calls, unchanged, and raw HTTP.
"""

import concurrent.futures
import threading
import time
import uuid

import hvac
import pytest

from conftest import Server
import jose_fixtures as jf

AUD = "https://coffer.test"


@pytest.fixture(scope="module")
def server():
    """Own server: many deliberate login failures, generous limit."""
    s = Server(["-workers=1", "-dev-login-burst=50000", "-dev-login-rate=1000"])
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def ca():
    return jf.CA()


@pytest.fixture
def key():
    return jf.Key("RS256")


@pytest.fixture
def issuer(ca, key):
    srv = jf.Issuer(ca, key)
    yield srv
    srv.close()


def enable(server, type_="jwt"):
    path = "%s-%s" % (type_, uuid.uuid4().hex[:8])
    server.client.sys.enable_auth_method(type_, path=path)
    return path


def login(server, path, token, role="r"):
    body = {"jwt": token}
    if role is not None:
        body["role"] = role
    return server.req("POST", "auth/%s/login" % path, token=None, json=body)


def good_claims(**kw):
    base = dict(iss="https://issuer.test", sub="repo:acme/app:ref:main",
                aud=AUD, email="ci@acme.test", project="acme")
    base.update(kw)
    return jf.claims(**base)


def jwks_mount(server, issuer, ca_pem, **role):
    """A jwt mount on issuer's JWKS with role "r"."""
    path = enable(server)
    server.client.auth.jwt.configure(jwks_url=issuer.jwks_url, jwks_ca_pem=ca_pem,
                                     bound_issuer="https://issuer.test", path=path)
    spec = dict(name="r", user_claim="sub", allowed_redirect_uris=None,
                bound_audiences=[AUD], token_policies=["dev"], path=path)
    spec.update(role)
    server.client.auth.jwt.create_role(**spec)
    return path


def assert_error(r, status, text):
    assert r.status_code == status, (r.status_code, r.text)
    errs = r.json()["errors"]
    assert any(text in e for e in errs), (text, errs)


# ------------------------------------------------------------ happy path --

def test_hvac_configure_role_login(server, ca, key, issuer):
    path = jwks_mount(server, issuer, ca.pem, token_ttl="10m", token_max_ttl="1h",
                      claim_mappings={"email": "email", "project": "proj"})
    tok = key.sign(good_claims())
    c = hvac.Client(url=server.addr)
    resp = c.auth.jwt.jwt_login(role="r", jwt=tok, path=path)
    auth = resp["auth"]
    assert auth["policies"] == ["default", "dev"]
    assert auth["token_policies"] == ["default", "dev"]
    assert auth["metadata"] == {"role": "r", "email": "ci@acme.test", "proj": "acme"}
    assert auth["lease_duration"] == 600 and auth["renewable"] is True
    assert c.token == auth["client_token"]
    me = c.lookup_token()["data"]
    assert me["display_name"] == "%s-repo-acme-app-ref-main" % path, me
    assert me["meta"]["proj"] == "acme"
    # hvac's reads and lists
    cfg = server.client.auth.jwt.read_config(path=path)["data"]
    assert cfg["jwks_url"] == issuer.jwks_url and cfg["jwks_ca_pem"] == ca.pem
    assert cfg["bound_issuer"] == "https://issuer.test"
    assert "oidc_client_secret" not in cfg
    role = server.client.auth.jwt.read_role("r", path=path)["data"]
    assert role["bound_audiences"] == [AUD] and role["user_claim"] == "sub"
    assert role["token_ttl"] == 600 and role["role_type"] == "jwt"
    assert role["claim_mappings"] == {"email": "email", "project": "proj"}
    assert server.client.auth.jwt.list_roles(path=path)["data"]["keys"] == ["r"]
    server.client.auth.jwt.delete_role("r", path=path)
    assert_error(login(server, path, tok), 400, 'role "r" could not be found')


@pytest.mark.parametrize("alg", ["RS256", "RS512", "PS256", "ES256", "ES384",
                                 "ES512", "EdDSA"])
def test_jwks_key_types(server, ca, alg):
    k = jf.Key(alg)
    iss = jf.Issuer(ca, jf.Key("RS256"), k)
    try:
        path = jwks_mount(server, iss, ca.pem)
        r = login(server, path, k.sign(good_claims()))
        assert r.status_code == 200, r.text
        assert r.json()["auth"]["metadata"]["role"] == "r"
    finally:
        iss.close()


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_static_pubkeys_mode(server, alg):
    k, other = jf.Key(alg), jf.Key(alg)
    path = enable(server)
    server.client.auth.jwt.configure(jwt_validation_pubkeys=[other.public_pem, k.public_pem],
                                     path=path)
    server.client.auth.jwt.create_role(name="r", user_claim="email",
                                       allowed_redirect_uris=None,
                                       bound_audiences=AUD, path=path)
    r = login(server, path, k.sign(good_claims(), kid=False))
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["metadata"] == {"role": "r"}
    bad = jf.Key(alg).sign(good_claims(), kid=False)
    assert_error(login(server, path, bad), 400, "error validating token: "
                 "error verifying token signature")


def test_oidc_discovery_mode(server, ca, key, issuer):
    path = enable(server)
    server.client.auth.jwt.configure(oidc_discovery_url=issuer.url,
                                     oidc_discovery_ca_pem=ca.pem,
                                     default_role="r", path=path)
    server.client.auth.jwt.create_role(name="r", user_claim="sub", bound_audiences=AUD,
                                       allowed_redirect_uris=None, path=path)
    assert issuer.discoveries >= 1
    r = login(server, path, key.sign(good_claims(iss=issuer.url)), role=None)
    assert r.status_code == 200, r.text   # default_role
    # the discovery document must name the URL it was fetched from
    issuer.issuer = "https://evil.test"
    p2 = enable(server)
    r = server.req("POST", "auth/%s/config" % p2, json={
        "oidc_discovery_url": issuer.url, "oidc_discovery_ca_pem": ca.pem})
    assert_error(r, 400, "issuer did not match the returned issuer")


def test_mountable_as_oidc(server, ca, key, issuer):
    path = enable(server, "oidc")
    server.client.auth.jwt.configure(jwks_url=issuer.jwks_url, jwks_ca_pem=ca.pem,
                                     path=path)
    server.client.auth.jwt.create_role(name="r", user_claim="sub", bound_audiences=AUD,
                                       allowed_redirect_uris=None, path=path)
    c = hvac.Client(url=server.addr)
    c.auth.jwt.jwt_login(role="r", jwt=key.sign(good_claims()), path=path)
    assert c.is_authenticated()
    # the browser flow is not provided: a clear 400
    r = server.req("POST", "auth/%s/oidc/auth_url" % path, token=None,
                   json={"role": "r", "redirect_uri": "http://localhost/cb"})
    assert_error(r, 400, "OIDC browser flow")


# --------------------------------------------------- config and roles ----

def test_config_validation(server, ca, issuer, key):
    path = enable(server)
    cases = [
        ({}, "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or "
             "'oidc_discovery_url' must be set"),
        ({"jwks_url": issuer.jwks_url, "jwt_validation_pubkeys": [key.public_pem]},
         "exactly one of"),
        ({"jwt_validation_pubkeys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]},
         "error parsing public key"),
        ({"jwks_url": issuer.jwks_url, "jwks_ca_pem": "not a pem"},
         "could not parse CA PEM value successfully"),
        ({"jwks_url": "ftp://127.0.0.1/jwks"}, "not an https:// URL"),
        ({"jwks_url": issuer.jwks_url},  # system CAs do not know the test CA
         "error checking jwks URL"),
        ({"jwks_url": issuer.jwks_url, "jwks_ca_pem": jf.CA("Other").pem},
         "error checking jwks URL"),
        ({"jwks_url": jf.dead_url(), "jwks_ca_pem": ca.pem}, "error checking jwks URL"),
        ({"jwks_url": issuer.jwks_url, "jwks_ca_pem": ca.pem,
          "jwt_supported_algs": ["HS256"]},
         'invalid jwt_supported_algs: unsupported signing algorithm "HS256"'),
        ({"jwks_url": issuer.jwks_url, "jwks_ca_pem": ca.pem, "oidc_client_id": "x"},
         "both 'oidc_client_id' and 'oidc_client_secret' must be set for OIDC"),
    ]
    for body, text in cases:
        r = server.req("POST", "auth/%s/config" % path, json=body)
        assert_error(r, 400, text)
    assert server.req("GET", "auth/%s/config" % path).status_code == 404
    # a client secret is stored but never read back
    r = server.req("POST", "auth/%s/config" % path, json={
        "oidc_discovery_url": issuer.url, "oidc_discovery_ca_pem": ca.pem,
        "oidc_client_id": "cid", "oidc_client_secret": "s3cr3t-value"})
    assert r.status_code == 204, r.text
    r = server.req("GET", "auth/%s/config" % path)
    assert r.status_code == 200 and "s3cr3t-value" not in r.text
    assert r.json()["data"]["oidc_client_id"] == "cid"


def test_role_validation(server, ca, issuer):
    path = jwks_mount(server, issuer, ca.pem)
    url = "auth/%s/role/x" % path
    cases = [
        ({"role_type": "jwt", "bound_audiences": "a"},
         "a user claim must be defined on the role"),
        ({"role_type": "jwt", "user_claim": "sub"},
         "must have at least one bound constraint when creating/updating a role"),
        ({"role_type": "saml", "user_claim": "sub"}, "invalid 'role_type': saml"),
        ({"user_claim": "sub", "bound_audiences": "a"},
         "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified."),
        ({"role_type": "jwt", "user_claim": "sub", "bound_subject": "s",
          "bound_claims_type": "regex"}, "invalid 'bound_claims_type': regex"),
        ({"role_type": "jwt", "user_claim": "sub", "bound_subject": "s",
          "claim_mappings": {"a": "role"}},
         'metadata key "role" is reserved and may not be a mapping destination'),
        ({"role_type": "jwt", "user_claim": "sub", "bound_subject": "s",
          "token_ttl": "2h", "token_max_ttl": "1h"},
         "ttl should not be greater than max ttl"),
    ]
    for body, text in cases:
        assert_error(server.req("POST", url, json=body), 400, text)
    r = server.req("POST", url, json={"role_type": "jwt", "user_claim": "sub",
                                      "bound_subject": "s", "clock_skew_leeway": -1,
                                      "expiration_leeway": "5s",
                                      "not_before_leeway": "-1"})
    assert r.status_code == 204, r.text
    d = server.req("GET", url).json()["data"]
    assert (d["clock_skew_leeway"], d["expiration_leeway"], d["not_before_leeway"]) \
        == (-1, 5, -1)
    # an oidc role may be stored, but cannot log in with a JWT
    r = server.req("POST", url, json={"role_type": "oidc", "user_claim": "sub",
                                      "allowed_redirect_uris": "http://localhost/cb"})
    assert r.status_code == 204, r.text
    keys = server.req("LIST", "auth/%s/role" % path).json()["data"]["keys"]
    assert keys == ["r", "x"]


# ------------------------------------------------------------ rejections --

def rejection_cases(key, other):
    now = int(time.time())

    def g(**kw):
        return good_claims(**dict({"user": "alice"}, **kw))

    return [
        ("expired", key.sign(g(exp=now - 3600, iat=now - 7200, nbf=now - 7200)),
         "error validating token: invalid expiration time (exp) claim: token is expired"),
        ("not yet valid", key.sign(g(nbf=now + 3600, iat=now)),
         "error validating token: invalid not before (nbf) claim: token not yet valid"),
        ("issued in the future", key.sign(g(iat=now + 3600, nbf=now)),
         "invalid issued at (iat) claim: token issued in the future"),
        ("no time claims", key.sign(g(iat=None, nbf=None, exp=None)),
         "no issued at (iat), not before (nbf), or expiration time (exp) claims"),
        ("wrong issuer", key.sign(g(iss="https://evil.test")),
         "error validating token: invalid issuer (iss) claim"),
        ("wrong audience", key.sign(g(aud=["https://other.test"])),
         "error validating token: invalid audience (aud) claim"),
        ("bound_subject", key.sign(g(sub="repo:acme/other:ref:main")),
         "error validating token: invalid subject (sub) claim"),
        ("bound_claims string", key.sign(g(project="other")),
         'error validating claims: claim "project" does not match any '
         'associated bound claim values'),
        ("bound_claims missing", key.sign(g(project=None)),
         'error validating claims: claim "project" is missing'),
        ("bound_claims glob", key.sign(g(email="ci@evil.test")),
         'error validating claims: claim "email" does not match'),
        ("user claim missing", key.sign(g(user=None)),
         'claim "user" not found in token'),
        ("another key", other.sign(g(), kid=key.kid),
         "error validating token: error verifying token signature"),
        ("alg none", jf.unsigned_jwt(g()),
         "error validating token: error verifying token signature"),
        ("HS256 with the public key", jf.hs256_with_public_pem(key, g()),
         "error validating token: error verifying token signature"),
        ("tampered payload", jf.tamper(key.sign(g()), sub="repo:acme/app:ref:main",
                                       project="acme", user="root"),
         "error validating token: error verifying token signature"),
        ("garbage", "not.a.jwt", "error validating token"),
        ("huge", "a" * 200000 + ".b.c", "error validating token"),
    ]


def test_rejections_one_by_one(server, ca, key, issuer):
    other = jf.Key("RS256")
    path = jwks_mount(server, issuer, ca.pem, user_claim="user",
                      bound_subject="repo:acme/app:ref:main",
                      bound_claims={"project": "acme"}, bound_claims_type="string",
                      clock_skew_leeway=60)
    # globs need their own role
    server.client.auth.jwt.create_role(name="g", user_claim="user",
                                       allowed_redirect_uris=None, bound_audiences=AUD,
                                       bound_claims={"email": ["*@acme.test", "x"]},
                                       bound_claims_type="glob", path=path)
    ok = key.sign(good_claims(user="alice"))
    assert login(server, path, ok).status_code == 200
    assert login(server, path, ok, role="g").status_code == 200
    for name, token, text in rejection_cases(key, other):
        r = login(server, path, token, role="g" if "glob" in name else "r")
        assert r.status_code == 400 and any(text in e for e in r.json()["errors"]), \
            (name, r.status_code, r.text)
    # login shape errors
    assert_error(login(server, path, ok, role="nope"), 400,
                 'role "nope" could not be found')
    assert_error(login(server, path, "", role="r"), 400, "missing token")
    assert_error(login(server, path, ok, role=None), 400, "missing role")
    assert server.req("GET", "sys/health").status_code == 200


def test_audience_in_token_but_none_bound(server, ca, key, issuer):
    path = jwks_mount(server, issuer, ca.pem, bound_audiences=None,
                      bound_subject="repo:acme/app:ref:main")
    assert_error(login(server, path, key.sign(good_claims())), 400,
                 "audience claim found in JWT but no audiences bound to the role")
    assert login(server, path, key.sign(good_claims(aud=None))).status_code == 200


def test_leeways(server, ca, key, issuer):
    now = int(time.time())
    path = jwks_mount(server, issuer, ca.pem, clock_skew_leeway=-1)
    # expired 30 s ago: refused without skew, accepted with Vault's 60 s
    tok = key.sign(good_claims(exp=now - 30, iat=now - 100, nbf=now - 100))
    assert_error(login(server, path, tok), 400, "token is expired")
    server.req("POST", "auth/%s/role/r" % path, json={"role_type": "jwt",
                                                       "clock_skew_leeway": 0})
    assert login(server, path, tok).status_code == 200
    # no exp: iat + expiration_leeway (150 s by default)
    old = key.sign(good_claims(exp=None, nbf=None, iat=now - 300))
    fresh = key.sign(good_claims(exp=None, nbf=None, iat=now - 100))
    assert_error(login(server, path, old), 400, "token is expired")
    assert login(server, path, fresh).status_code == 200


def test_bound_cidrs(server, ca, key, issuer):
    path = jwks_mount(server, issuer, ca.pem, token_bound_cidrs=["10.0.0.0/8"])
    r = login(server, path, key.sign(good_claims()))
    assert_error(r, 403, "permission denied")
    server.req("POST", "auth/%s/role/r" % path, json={
        "role_type": "jwt", "token_bound_cidrs": ["127.0.0.0/8"]})
    assert login(server, path, key.sign(good_claims())).status_code == 200


# ------------------------------------------------------------ JWKS cache --

def test_unknown_kid_refetches_once_then_rate_limited(server, ca, key, issuer):
    path = jwks_mount(server, issuer, ca.pem)
    assert login(server, path, key.sign(good_claims())).status_code == 200
    base = issuer.fetches
    for _ in range(5):   # cached: no fetch
        assert login(server, path, key.sign(good_claims())).status_code == 200
    assert issuer.fetches == base
    # a rotated key: the unknown kid triggers one refetch, and it works
    new, forged = jf.Key("ES256"), jf.Key("RS256")
    issuer.keys.append(new)
    t0 = time.monotonic()
    assert login(server, path, new.sign(good_claims())).status_code == 200
    assert issuer.fetches == base + 1
    # random kids right after: no more fetches (at most one per 5 s)
    for _ in range(10):
        assert_error(login(server, path, forged.sign(good_claims(), kid=uuid.uuid4().hex)), 400,
                     "error verifying token signature")
    assert issuer.fetches <= base + 1 + int((time.monotonic() - t0) // 5)


def test_unknown_kid_exactly_one_refetch(server, ca, key, issuer):
    path = jwks_mount(server, issuer, ca.pem)
    base = issuer.fetches
    stranger = jf.Key("RS256")
    for _ in range(6):
        assert_error(login(server, path, stranger.sign(good_claims())), 400,
                     "unknown kid")
    assert issuer.fetches == base + 1


@pytest.mark.once
def test_slow_jwks_is_bounded_and_others_unaffected(server, ca, key, issuer):
    path = jwks_mount(server, issuer, ca.pem)
    issuer.delay = 8
    health, stop = [], threading.Event()

    def poll():
        while not stop.is_set():
            t = time.monotonic()
            r = server.req("GET", "sys/health", token=None, timeout=5)
            health.append((r.status_code, time.monotonic() - t))
            time.sleep(0.2)

    stranger = jf.Key("RS256").sign(good_claims())   # its kid makes a refetch
    th = threading.Thread(target=poll)
    th.start()
    try:
        t0 = time.monotonic()
        r = login(server, path, stranger)
        took = time.monotonic() - t0
    finally:
        stop.set()
        th.join()
        issuer.delay = 0
    assert_error(r, 400, "error verifying token signature: fetching keys")
    assert took < 7.5, took
    assert len(health) >= 5 and all(c == 200 and d < 1.0 for c, d in health), health
    # the cached keys still work at once
    t0 = time.monotonic()
    assert login(server, path, key.sign(good_claims())).status_code == 200
    assert time.monotonic() - t0 < 1.0


def test_dead_jwks_endpoint(server, ca, key):
    iss = jf.Issuer(ca, key)
    path = jwks_mount(server, iss, ca.pem)
    iss.close()
    stranger = jf.Key("RS256").sign(good_claims())
    t0 = time.monotonic()
    r = login(server, path, stranger)
    assert_error(r, 400, "error verifying token signature: fetching keys")
    assert time.monotonic() - t0 < 5
    # keys already fetched keep working while the issuer is down
    assert login(server, path, key.sign(good_claims())).status_code == 200


def test_parallel_logins(server, ca, key, issuer):
    path = jwks_mount(server, issuer, ca.pem)
    tokens = [key.sign(good_claims(sub="repo:acme/app:ref:main")) for _ in range(40)]

    def one(tok):
        return login(server, path, tok).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        codes = list(ex.map(one, tokens))
    assert codes == [200] * 40


def test_failed_logins_take_the_rate_limit(ca, key):
    s = Server(["-dev-login-burst=3", "-dev-login-rate=0.001"])
    iss = jf.Issuer(ca, key)
    try:
        path = jwks_mount(s, iss, ca.pem)
        bad = jf.Key("RS256").sign(good_claims(), kid=key.kid)
        codes = [login(s, path, bad).status_code for _ in range(5)]
        assert codes[:3] == [400, 400, 400] and codes[-1] == 429, codes
    finally:
        iss.close()
        assert s.stop() == 0
