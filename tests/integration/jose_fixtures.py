"""Real JOSE components made at test time, for the JWT and Kubernetes auth tests.

- keys (RSA, EC, Ed25519) and their JWKs, JWTs signed with them (python
  `cryptography`; there is no PyJWT), and the hostile variants: alg "none",
  HS256 keyed with the public key's PEM, tampered payloads;
- a test CA and server certificates for 127.0.0.1;
- HTTPS servers in threads: an issuer serving a JWKS and an OIDC discovery
  document (counting fetches, optionally slow), and a fake Kubernetes API
  answering TokenReviews (recording what it was sent).
"""

import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import socket
import ssl
import tempfile
import threading
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
import ipaddress


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_int(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8 or 1, "big"))


# ------------------------------------------------------------------ keys --

class Key:
    """A private key, its public PEM and JWK, and JWT signing."""

    CURVES = {"ES256": (ec.SECP256R1, hashes.SHA256, "P-256", 32),
              "ES384": (ec.SECP384R1, hashes.SHA384, "P-384", 48),
              "ES512": (ec.SECP521R1, hashes.SHA512, "P-521", 66)}

    def __init__(self, alg="RS256", kid=None):
        self.alg = alg
        self.kid = kid if kid is not None else uuid.uuid4().hex[:12]
        if alg.startswith(("RS", "PS")):
            self.priv = rsa.generate_private_key(65537, 2048)
        elif alg.startswith("ES"):
            self.priv = ec.generate_private_key(self.CURVES[alg][0]())
        elif alg == "EdDSA":
            self.priv = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(alg)
        self.pub = self.priv.public_key()

    @property
    def public_pem(self):
        return self.pub.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def jwk(self):
        j = {"kid": self.kid, "use": "sig", "alg": self.alg}
        if isinstance(self.pub, rsa.RSAPublicKey):
            n = self.pub.public_numbers()
            j.update(kty="RSA", n=b64url_int(n.n), e=b64url_int(n.e))
        elif isinstance(self.pub, ec.EllipticCurvePublicKey):
            size = self.CURVES[self.alg][3]
            n = self.pub.public_numbers()
            j.update(kty="EC", crv=self.CURVES[self.alg][2],
                     x=b64url(n.x.to_bytes(size, "big")),
                     y=b64url(n.y.to_bytes(size, "big")))
        else:
            raw = self.pub.public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
            j.update(kty="OKP", crv="Ed25519", x=b64url(raw))
        return j

    def raw_sign(self, data):
        hname = "SHA" + self.alg[2:] if self.alg != "EdDSA" else None
        if self.alg.startswith("RS"):
            return self.priv.sign(data, padding.PKCS1v15(),
                                  getattr(hashes, hname)())
        if self.alg.startswith("PS"):
            h = getattr(hashes, hname)()
            return self.priv.sign(data, padding.PSS(
                mgf=padding.MGF1(h), salt_length=h.digest_size), h)
        if self.alg.startswith("ES"):
            _, hcls, _, size = self.CURVES[self.alg]
            r, s = decode_dss_signature(self.priv.sign(data, ec.ECDSA(hcls())))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return self.priv.sign(data)

    def sign(self, claims, header=None, kid=True):
        h = {"alg": self.alg, "typ": "JWT"}
        if kid:
            h["kid"] = self.kid if kid is True else kid
        h.update(header or {})
        signing = b64url(json.dumps(h)) + "." + b64url(json.dumps(claims))
        return signing + "." + b64url(self.raw_sign(signing.encode()))


def jwks(*keys):
    return {"keys": [k.jwk() for k in keys]}


def claims(**kw):
    """Standard claims valid now (iat, nbf, exp), overridable."""
    now = int(time.time())
    c = {"iat": now, "nbf": now, "exp": now + 300}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def unsigned_jwt(claims_, alg="none"):
    """alg "none": an empty signature."""
    return (b64url(json.dumps({"alg": alg, "typ": "JWT"})) + "." +
            b64url(json.dumps(claims_)) + ".")


def hs256_with_public_pem(key, claims_):
    """Algorithm confusion: HS256 keyed with the verifier's public PEM."""
    h = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing = b64url(json.dumps(h)) + "." + b64url(json.dumps(claims_))
    mac = hmac.new(key.public_pem.encode(), signing.encode(),
                   hashlib.sha256).digest()
    return signing + "." + b64url(mac)


def tamper(token, **changes):
    """The token with its payload changed and the old signature kept."""
    h, p, s = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    body.update(changes)
    return h + "." + b64url(json.dumps(body)) + "." + s


# ------------------------------------------------------------ test CA ----

class CA:
    def __init__(self, name="Coffer test CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.utcnow()
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False), True)
            .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def server_files(self):
        """(cert path, key path) for 127.0.0.1 / localhost, in a temp dir."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.utcnow()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost")]), False)
            .add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self.key, hashes.SHA256()))
        d = tempfile.mkdtemp(prefix="coffer-jose-")
        cpath, kpath = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        with open(cpath, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(kpath, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return cpath, kpath


# ------------------------------------------------------------- servers ---

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, status, body):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        status, body = self.server.owner.handle("GET", self.path, self.headers, b"")
        self._reply(status, body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        status, body = self.server.owner.handle("POST", self.path, self.headers,
                                                self.rfile.read(n))
        self._reply(status, body)


class _HTTPSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class TLSServer:
    """An HTTPS server on 127.0.0.1 in a thread; subclasses answer handle()."""

    def __init__(self, ca):
        self.ca = ca
        self.httpd = _HTTPSServer(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*ca.server_files())
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Issuer(TLSServer):
    """Serves /jwks (a JWKS of self.keys) and an OIDC discovery document at
    /.well-known/openid-configuration (issuer = self.url). Counts fetches;
    sleeps self.delay seconds before answering when set."""

    def __init__(self, ca, *keys):
        super().__init__(ca)
        self.keys = list(keys)
        self.fetches = 0
        self.discoveries = 0
        self.delay = 0
        self.issuer = None  # None: self.url

    @property
    def jwks_url(self):
        return self.url + "/jwks"

    def handle(self, method, path, headers, body):
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            if path == "/jwks":
                self.fetches += 1
                return 200, jwks(*self.keys)
            if path == "/.well-known/openid-configuration":
                self.discoveries += 1
                return 200, {"issuer": self.issuer or self.url,
                             "jwks_uri": self.jwks_url,
                             "id_token_signing_alg_values_supported": ["RS256"]}
        return 404, {"error": "not found"}


class FakeKubernetes(TLSServer):
    """Answers POST /apis/authentication.k8s.io/v1/tokenreviews from
    self.accounts: token -> (namespace, name, uid, audiences) or None
    (authenticated: false). Records every review: (authorization, body)."""

    def __init__(self, ca):
        super().__init__(ca)
        self.accounts = {}
        self.reviews = []

    def handle(self, method, path, headers, body):
        if method != "POST" or path != "/apis/authentication.k8s.io/v1/tokenreviews":
            return 404, {"kind": "Status", "status": "Failure", "code": 404}
        req = json.loads(body)
        with self.lock:
            self.reviews.append((headers.get("Authorization"), req))
        token = req.get("spec", {}).get("token")
        sa = self.accounts.get(token)
        out = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
               "status": {"authenticated": False}}
        if sa is not None:
            ns, name, uid, auds = sa
            out["status"] = {
                "authenticated": True,
                "user": {"username": "system:serviceaccount:%s:%s" % (ns, name),
                         "uid": uid,
                         "groups": ["system:serviceaccounts"]},
                "audiences": auds,
            }
        return 201, out


def dead_url():
    """An https URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return "https://127.0.0.1:%d/jwks" % port
