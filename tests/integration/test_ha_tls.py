"""HA forwarding to an https:// active (issue 12): a standby verifies the
active's certificate against cluster_ca_file (or the system's CAs), and a
certificate it cannot verify is a clear 502, never a silent downgrade.
"""

import datetime
import ipaddress
import os
import shutil
import tempfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pgcluster import PgCluster
from test_ha import Cluster


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


def _cert(key, cn, issuer_name, issuer_key, ca):
    now = datetime.datetime.utcnow()
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                     cn)]))
         .issuer_name(issuer_name)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                        critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.DNSName("localhost")]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(obj):
    return obj.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def certs():
    """A self-signed CA, a leaf for 127.0.0.1 it signed (with the CA in
    the chain file, so clients given the CA verify it), and an unrelated
    CA."""
    d = tempfile.mkdtemp(prefix="coffer-ha-tls-")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            "Coffer HA Test CA")])
    ca = _cert(ca_key, "Coffer HA Test CA", ca_name, ca_key, True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(leaf_key, "127.0.0.1", ca_name, ca_key, False)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                               "Some Other CA")])
    other = _cert(other_key, "Some Other CA", other_name, other_key, True)
    paths = {}
    for name, data in (("ca.pem", _pem(ca)), ("other.pem", _pem(other)),
                       ("cert.pem", _pem(leaf)),
                       ("key.pem", leaf_key.private_bytes(
                           serialization.Encoding.PEM,
                           serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption()))):
        paths[name] = os.path.join(d, name)
        with open(paths[name], "wb") as f:
            f.write(data)
    yield paths
    shutil.rmtree(d)


@pytest.mark.once
def test_a_standby_forwards_to_an_https_active_only_with_its_ca(pg, certs):
    ca = certs["ca.pem"]
    # Node 0 becomes active first; node 1 trusts the CA, node 2 trusts
    # only the system's CAs, node 3 an unrelated CA, node 4 a missing file.
    extras = ['cluster_ca_file = "%s"' % ca,
              'cluster_ca_file = "%s"' % ca,
              "",
              'cluster_ca_file = "%s"' % certs["other.pem"],
              'cluster_ca_file = "/nonexistent/coffer-ca.pem"']
    c = Cluster(pg, n=5, tls=(certs["cert.pem"], certs["key.pem"]),
                extras=extras)
    for node in c.nodes:
        node.verify = ca
    try:
        first = c.nodes[0]
        first.start()
        c.keys, c.root = first.init(shares=1, threshold=1)
        first.token = c.root
        first.unseal(c.keys)
        assert c.wait_active(among=[first]) is first
        for node in c.nodes[1:]:
            node.start()
            node.token = c.root
            node.unseal(c.keys)
        assert c.wait_active() is first
        assert first.addr.startswith("https://")
        good, system, wrong, missing = c.nodes[1:]
        hc = good.client()
        hc.sys.enable_secrets_engine("kv", path="kv",
                                     options={"version": "1"})
        hc.write("kv/through-tls", v="1")
        assert first.client().read("kv/through-tls")["data"] == {"v": "1"}
        assert good.client().read("kv/through-tls")["data"] == {"v": "1"}
        for node in (system, wrong):
            r = node.req("PUT", "kv/refused", json={"v": "x"})
            assert r.status_code == 502, r.text
            msg = r.json()["errors"][0]
            assert "certificate could not be verified" in msg, msg
            assert "cluster_ca_file" in msg and first.addr in msg, msg
            assert c.root not in msg
            # A read the standby does not answer itself (kv reads it does:
            # standby reads) is forwarded, and refused the same way.
            r = node.req("GET", "sys/auth")
            assert r.status_code == 502, r.text
        assert "certificate could not be verified" in system.log()
        r = missing.req("PUT", "kv/refused", json={"v": "x"})
        assert r.status_code == 502, r.text
        assert "cluster_ca_file could not be read" in r.text, r.text
        assert "cluster_ca_file /nonexistent/coffer-ca.pem cannot be read" \
            in missing.log()
        r = first.req("GET", "kv/refused")
        assert r.status_code == 404, r.text
    finally:
        c.close()
