"""coffer.jose, coffer.x509 and coffer.crypto's hash helpers (issue 10),
through a Lua engine loaded with -dev-plugin-dir
(data/plugin_jose/josetest.lua).

Keys, JWTs and certificates are made here with Python's `cryptography`
(there is no PyJWT): RSA 2048 (PKCS#1 v1.5 and PSS), P-256, P-384 and
Ed25519. A JOSE library elsewhere signs the way this file does, so these
tokens are what the C core meets in production. Refusals are tried one by
one: alg none, HS256 keyed with the public key, a signature by another key,
a tampered payload, expired / not yet valid, wrong issuer / audience,
unknown kid.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import \
    decode_dss_signature
from cryptography.x509.oid import NameOID

from conftest import Server

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGDIR = os.path.join(HERE, "data", "plugin_jose")


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def uint_b64(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(size, "big"))


RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
ED = ed25519.Ed25519PrivateKey.generate()

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def sign(key, alg, data):
    if alg.startswith("RS"):
        return key.sign(data, padding.PKCS1v15(), HASHES[alg[2:]]())
    if alg.startswith("PS"):
        h = HASHES[alg[2:]]()
        return key.sign(data, padding.PSS(mgf=padding.MGF1(h),
                                          salt_length=h.digest_size), h)
    if alg.startswith("ES"):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(
            HASHES[alg[2:]]())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return key.sign(data)  # EdDSA


def jwt(key, alg, claims, kid=None, header=None):
    h = header or {"alg": alg, "typ": "JWT"}
    if kid is not None:
        h["kid"] = kid
    signing = (b64u(json.dumps(h).encode()) + "." +
               b64u(json.dumps(claims).encode()))
    return signing + "." + b64u(sign(key, alg, signing.encode()))


def jwk(key, kid, **extra):
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        d = {"kty": "RSA", "n": uint_b64(n.n), "e": uint_b64(n.e)}
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        d = {"kty": "EC", "crv": {256: "P-256", 384: "P-384"}[
            pub.curve.key_size], "x": uint_b64(n.x, size),
            "y": uint_b64(n.y, size)}
    else:
        raw = pub.public_bytes(serialization.Encoding.Raw,
                               serialization.PublicFormat.Raw)
        d = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
    d["kid"] = kid
    d.update(extra)
    return d


def pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def claims(**kw):
    now = int(time.time())
    c = {"iss": "https://issuer.test", "aud": "vault", "sub": "repo:x",
         "iat": now, "nbf": now - 5, "exp": now + 300}
    c.update(kw)
    return c


JWKS = {"keys": [jwk(RSA, "r1", use="sig"), jwk(P256, "e1"),
                 jwk(P384, "e2", alg="ES384"), jwk(ED, "d1"),
                 {"kty": "RSA", "kid": "enc", "use": "enc",
                  "n": uint_b64(RSA2.public_key().public_numbers().n),
                  "e": "AQAB"}]}

OPTS = {"issuer": "https://issuer.test", "audiences": ["vault"]}


@pytest.fixture(scope="module")
def srv():
    s = Server(["-dev-plugin-dir=%s" % PLUGDIR])
    r = s.req("POST", "sys/mounts/jose", json={"type": "josetest"})
    assert r.status_code == 204, r.text
    yield s
    assert s.stop() == 0, s.stderr_text()[-3000:]


def call(srv, path, body):
    r = srv.req("POST", "jose/" + path, json=body)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def verify(srv, token, opts=None, **keys):
    body = {"jwt": token, "opts": OPTS if opts is None else opts}
    if not keys:
        keys = {"jwks": JWKS}
    body.update(keys)
    return call(srv, "verify", body)


def refused(srv, token, message, opts=None, **keys):
    d = verify(srv, token, opts, **keys)
    assert d["ok"] is False, d
    assert d["error"] == message, d


# ------------------------------------------------------------- accepted --

@pytest.mark.parametrize("alg,key,kid", [
    ("RS256", RSA, "r1"), ("RS384", RSA, "r1"), ("RS512", RSA, "r1"),
    ("PS256", RSA, "r1"), ("PS384", RSA, "r1"), ("PS512", RSA, "r1"),
    ("ES256", P256, "e1"), ("ES384", P384, "e2"), ("EdDSA", ED, "d1"),
])
def test_every_algorithm_through_a_jwks(srv, alg, key, kid):
    d = verify(srv, jwt(key, alg, claims(), kid=kid))
    assert d["ok"] is True, d
    assert d["claims"]["sub"] == "repo:x"
    assert d["header"] == {"alg": alg, "typ": "JWT", "kid": kid}


def test_pem_keys_and_lists(srv):
    token = jwt(P256, "ES256", claims())
    d = verify(srv, token, pems=[pem(RSA), pem(P256)])
    assert d["ok"] is True, d
    d = verify(srv, token, pems=[pem(P256)], single=True)
    assert d["ok"] is True, d
    refused(srv, token, "no key for algorithm ES256", pems=[pem(RSA)])
    refused(srv, token, "signature does not verify",
            pems=[pem(ec.generate_private_key(ec.SECP256R1()))])


def test_claims_keep_json_semantics(srv):
    c = claims(groups=[], big=12345678901234567890, ratio=1.0,
               nested={"a": [1, {"b": None}]})
    raw = jwt(ED, "EdDSA", c, kid="d1")
    r = srv.req("POST", "jose/verify", json={"jwt": raw, "jwks": JWKS,
                                             "opts": OPTS})
    assert r.status_code == 200, r.text
    # The literal text survives: exact big number, [] stays an array.
    assert '"big":12345678901234567890' in r.text
    assert '"groups":[]' in r.text
    assert '"ratio":1.0' in r.text
    assert r.json()["data"]["claims"]["nested"] == {"a": [1, {"b": None}]}


def test_decode_reads_without_verifying(srv):
    token = jwt(RSA2, "RS256", claims(), kid="who")
    d = call(srv, "decode", {"jwt": token})
    assert d["ok"] is True
    assert d["header"]["kid"] == "who"
    assert d["claims"]["iss"] == "https://issuer.test"
    d = call(srv, "decode", {"jwt": "x.y"})
    assert d["ok"] is False and "three" in d["error"]


# ------------------------------------------------------------- refusals --

def test_alg_none_is_refused(srv):
    h = b64u(json.dumps({"alg": "none"}).encode())
    p = b64u(json.dumps(claims()).encode())
    refused(srv, h + "." + p + ".AAAA", "unsupported algorithm: none")
    d = verify(srv, h + "." + p + ".")
    assert d["ok"] is False and "malformed token" in d["error"]


def test_hs256_with_the_public_key_as_secret(srv):
    h = b64u(json.dumps({"alg": "HS256", "kid": "r1"}).encode())
    p = b64u(json.dumps(claims()).encode())
    for secret in (pem(RSA).encode(), json.dumps(jwk(RSA, "r1")).encode()):
        mac = hmac.new(secret, (h + "." + p).encode(), hashlib.sha256)
        token = h + "." + p + "." + b64u(mac.digest())
        refused(srv, token, "unsupported algorithm: HS256")
        refused(srv, token, "unsupported algorithm: HS256", pems=[pem(RSA)])
    # A hopeless token never reads as "unknown kid" (which would make a
    # caller refetch its JWKS for every forged token).
    h = b64u(json.dumps({"alg": "HS256", "kid": "random-1"}).encode())
    refused(srv, h + "." + p + ".AAAA", "unsupported algorithm: HS256")


def test_signature_by_another_key_and_tampered_payload(srv):
    refused(srv, jwt(RSA2, "RS256", claims(), kid="r1"),
            "signature does not verify")
    good = jwt(RSA, "RS256", claims(), kid="r1")
    h, _, s = good.split(".")
    evil = b64u(json.dumps(claims(sub="admin")).encode())
    refused(srv, h + "." + evil + "." + s, "signature does not verify")


def test_expired_and_not_yet_valid(srv):
    now = int(time.time())
    # Vault's (hashicorp/cap's) rules: a present exp gets only the 60 s of
    # clock skew; expiration_leeway (150 s) sizes a missing exp.
    ok = verify(srv, jwt(P256, "ES256", claims(exp=now - 30), kid="e1"))
    assert ok["ok"] is True, ok
    refused(srv, jwt(P256, "ES256", claims(exp=now - 150), kid="e1"),
            "invalid expiration time (exp) claim: token is expired")
    refused(srv, jwt(P256, "ES256", claims(nbf=now + 400), kid="e1"),
            "invalid not before (nbf) claim: token not yet valid")
    refused(srv, jwt(P256, "ES256", claims(iat=now + 400), kid="e1"),
            "invalid issued at (iat) claim: token issued in the future")
    tight = dict(OPTS, clock_skew_leeway=0)
    refused(srv, jwt(P256, "ES256", claims(exp=now - 30), kid="e1"),
            "invalid expiration time (exp) claim: token is expired",
            opts=tight)
    # A fixed clock makes the edge exact.
    at = dict(OPTS, now=now + 1000)
    assert verify(srv, jwt(P256, "ES256", claims(exp=now + 940), kid="e1"),
                  opts=at)["ok"] is True
    refused(srv, jwt(P256, "ES256", claims(exp=now + 939), kid="e1"),
            "invalid expiration time (exp) claim: token is expired", opts=at)
    # No exp: max(iat, nbf) + expiration_leeway, unless exp is required.
    no_exp = claims(iat=now - 100, nbf=now - 100)
    del no_exp["exp"]
    d = verify(srv, jwt(P256, "ES256", no_exp, kid="e1"))
    assert d["ok"] is True, d
    refused(srv, jwt(P256, "ES256", no_exp, kid="e1"),
            "invalid expiration time (exp) claim: token is expired",
            opts=dict(OPTS, expiration_leeway=30))
    refused(srv, jwt(P256, "ES256", no_exp, kid="e1"),
            "missing expiration (exp) claim",
            opts=dict(OPTS, require_exp=True))
    # None of exp, nbf, iat: refused unless allowed.
    bare = claims()
    for k in ("exp", "nbf", "iat"):
        del bare[k]
    refused(srv, jwt(P256, "ES256", bare, kid="e1"),
            "no issued at (iat), not before (nbf), or expiration time "
            "(exp) claims in token")
    d = verify(srv, jwt(P256, "ES256", bare, kid="e1"),
               opts=dict(OPTS, allow_missing_times=True))
    assert d["ok"] is True, d


def test_issuer_and_audience(srv):
    refused(srv, jwt(ED, "EdDSA", claims(iss="https://evil.test"), kid="d1"),
            "invalid issuer (iss) claim")
    refused(srv, jwt(ED, "EdDSA", claims(aud="other"), kid="d1"),
            "invalid audience (aud) claim: audience claim does not match "
            "any expected audience")
    d = verify(srv, jwt(ED, "EdDSA", claims(aud=["x", "vault"]), kid="d1"))
    assert d["ok"] is True, d
    refused(srv, jwt(ED, "EdDSA", claims(aud=["x", "y"]), kid="d1"),
            "invalid audience (aud) claim: audience claim does not match "
            "any expected audience")


def test_unknown_kid_and_key_purposes(srv):
    refused(srv, jwt(P256, "ES256", claims(), kid="nope"), "unknown kid")
    # The "enc" key is not a signature key: skipped from the set.
    refused(srv, jwt(RSA2, "RS256", claims(), kid="enc"), "unknown kid")
    # e2 is marked ES384: a P-256 signature claiming it finds no key.
    refused(srv, jwt(P256, "ES256", claims(), kid="e2"),
            "no key for algorithm ES256")
    # Without a kid every key is tried.
    assert verify(srv, jwt(P384, "ES384", claims()))["ok"] is True
    d = verify(srv, jwt(P256, "ES256", claims(), kid="e1"),
               opts=dict(OPTS, algs=["RS256"]))
    assert d == {"ok": False, "error": "algorithm not allowed: ES256"}


def test_malformed_tokens(srv):
    good = jwt(P256, "ES256", claims(), kid="e1")
    for bad in (good + "=", good + ".", "a.b", good.replace(".", "..", 1),
                " " + good, good[:-2] + "+/", "", "." * 3, "x" * 70000):
        d = verify(srv, bad)
        assert d["ok"] is False, bad[:80]
        assert d["error"].startswith("malformed token"), d
    h = b64u(b'{"alg":"HS256","alg":"ES256","kid":"e1"}')
    _, p, s = good.split(".")
    refused(srv, h + "." + p + "." + s,
            "malformed token: duplicate member in the header")


def test_keysets(srv):
    d = call(srv, "keyset", {"jwks": JWKS})
    assert d == {"ok": True, "kids": ["r1", "e1", "e2", "d1"], "count": 4,
                 "text": "jose keyset (4 keys)"}
    d = call(srv, "keyset", {"jwks": json.dumps(JWKS)})
    assert d["count"] == 4
    d = call(srv, "keyset", {"jwks": {"keys": [dict(jwk(P256, "p"),
                                                    d="AAAA")]}})
    assert d["ok"] is False and "private key material" in d["error"]
    d = call(srv, "keyset", {"jwks": "{\"keys\": 1}"})
    assert d["ok"] is False
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    d = call(srv, "keyset", {"jwks": {"keys": [jwk(small, "s")]}})
    assert d == {"ok": False, "error": "jwks: no usable signature key"}


def test_misuse_raises(srv):
    d = call(srv, "misuse", {"pems": [pem(P256)],
                             "opts": {"issuer": "x", "bogus": 1}})
    assert d["raised"] is True and 'unknown option "bogus"' in d["error"]
    d = call(srv, "misuse", {"pems": [pem(P256)], "opts": {"algs": ["HS256"]}})
    assert d["raised"] is True and "unsupported algorithm" in d["error"]
    d = call(srv, "misuse", {"pems": [pem(P256)], "opts": {}})
    assert d["raised"] is False


def test_parallel_verifications(srv):
    """Keysets, keys and tokens live per call and per Lua state: many
    requests at once all get their own answer."""
    tokens = [(jwt(P256, "ES256", claims(n=i), kid="e1"), i, True)
              for i in range(12)]
    tokens += [(jwt(RSA2, "RS256", claims(n=i), kid="r1"), i, False)
               for i in range(12)]
    results = []

    def one(tok, i, good):
        d = verify(srv, tok)
        results.append(d["ok"] is good and
                       (not good or d["claims"]["n"] == i))

    threads = [threading.Thread(target=one, args=t) for t in tokens * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [True] * len(threads)


# ---------------------------------------------------------------- x509 --

def make_cert(subject_key, cn, issuer=None, issuer_key=None, ca=False,
              sans=(), days=(-1, 30)):
    now = datetime.datetime.utcnow()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder()
         .subject_name(name)
         .issuer_name(issuer.subject if issuer else name)
         .public_key(subject_key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now + datetime.timedelta(days=days[0]))
         .not_valid_after(now + datetime.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                        critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(s) for s in sans]), critical=False)
    cert = b.sign(issuer_key or subject_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA_NAME = "JOSE Test CA"


def ca_cert():
    return make_cert(CA_KEY, CA_NAME, ca=True, days=(-10, 30))


def test_x509_parse(srv):
    leaf = make_cert(RSA, "svc", sans=["a.example", "b.example"])
    d = call(srv, "x509", {"pem": leaf})
    assert d["ok"] is True, d
    info = d["info"]
    assert info["subject"] == "CN=svc"
    assert info["dns_names"] == ["a.example", "b.example"]
    assert info["ip_addresses"] == [] and info["emails"] == []
    assert info["is_ca"] is False
    assert info["not_after"] - info["not_before"] == 31 * 86400
    assert info["public_key"] == "jose key (RSA 2048)"
    d = call(srv, "x509", {"pem": "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                  "-----END CERTIFICATE-----\n"})
    assert d["ok"] is False


def test_x509_chain(srv):
    ca = ca_cert()
    ca_obj = x509.load_pem_x509_certificate(ca.encode())
    leaf = make_cert(P384, "api", issuer=ca_obj, issuer_key=CA_KEY,
                     sans=["api.example.com"])
    ok = call(srv, "x509verify", {"pem": leaf, "opts": {
        "ca_pem": ca, "dns_name": "api.example.com", "purpose": "server"}})
    assert ok == {"ok": True}
    d = call(srv, "x509verify", {"pem": leaf, "opts": {
        "ca_pem": ca, "dns_name": "evil.example.com"}})
    assert d["ok"] is False and "hostname mismatch" in d["error"], d
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = make_cert(other_key, "Other CA", ca=True)
    d = call(srv, "x509verify", {"pem": leaf, "opts": {"ca_pem": other_ca}})
    assert d["ok"] is False and "verify failed" in d["error"], d
    d = call(srv, "x509verify", {"pem": leaf, "opts": {
        "ca_pem": ca, "now": int(time.time()) + 60 * 86400}})
    assert d["ok"] is False and "expired" in d["error"], d


# -------------------------------------------------------------- crypto --

def test_crypto_helpers(srv):
    d = call(srv, "crypto", {"data": "hello \u00e9", "key": "k" * 200})
    data = "hello \u00e9".encode()
    assert d["sha256"] == hashlib.sha256(data).hexdigest()
    assert d["sha512"] == hashlib.sha512(data).hexdigest()
    assert d["hmac384"] == hmac.new(b"k" * 200, data,
                                    hashlib.sha384).hexdigest()
    assert d["b64url"] == b64u(data)
    assert d["decoded"] == "hello \u00e9"
    d = call(srv, "crypto", {"data": "x", "key": "", "b64": "aGk="})
    assert d["decode_error"] == "invalid base64url" and "decoded" not in d
