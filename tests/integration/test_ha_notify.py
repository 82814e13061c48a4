"""HA change channel (issue 12): a storage batch too large for one
notification payload goes as several, in the batch's own transaction, so a
mass expiry on the active is applied note by note on the standby: no
"flush", no rebuild of its lease index, no cache dropped wholesale. The
index stays exact (a takeover right after it starts from the index and the
reconciliation finds nothing missing).
"""

import re
import select
import threading
import time

import pytest

from test_ha import CREATE, Cluster, others
import test_ha_lease_index
from test_ha_lease_index import kill_and_take_over, reconciled
from test_ha_lease_index import setup_database, wait_log
from test_ha_standby_reads import paused

BUILT = r"standby index of \d+ leases built"
pg = test_ha_lease_index.pg  # a PostgreSQL cluster for this module


@pytest.fixture
def pair(pg):
    c = Cluster(pg, n=2, lock_ttl="10s")  # the active pauses for 3 s
    c.start_all()
    c.init_and_unseal()
    active = c.wait_active()
    yield c, active, others(c, active)[0]
    c.close()


def make_creds(node, role, n, token, threads=4):
    """n database credentials (each with a lease), made in parallel."""
    made, errors = [], []

    def work(k):
        for _ in range(k):
            r = node.req("GET", "database/creds/" + role, token=token,
                         timeout=30)
            if r.status_code != 200:
                errors.append(r.text)
                return
            made.append(r.json()["lease_id"])
    ts = [threading.Thread(target=work, args=(n // threads,))
          for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    return made


def leases(node, role):
    r = node.req("LIST", "sys/leases/lookup/database/creds/%s/" % role)
    return len(r.json()["data"]["keys"]) if r.status_code == 200 else 0


def local_lookup(node, tok):
    """lookup-self answered by node itself: None if it did not answer
    (the active it would forward to is paused)."""
    try:
        return node.req("GET", "auth/token/lookup-self", token=tok,
                        timeout=1).status_code
    except Exception:  # noqa: BLE001 - forwarded to a paused node
        return None


@pytest.mark.once
def test_a_mass_expiry_is_applied_note_by_note(pair, pg):
    c, active, standby = pair
    hc = setup_database(active, pg)
    hc.write("database/roles/mass", db_name="myapp",
             creation_statements=CREATE, default_ttl="2s")
    # Issued with a token of their own: each lease also has a token index
    # key.
    hc.sys.create_or_update_policy(
        "creds", 'path "database/creds/*" { capabilities = ["read"] }')
    tok = hc.auth.token.create(policies=["creds"])["auth"]["client_token"]
    wait_log(standby, BUILT)
    keep = make_creds(active, "long", 4, tok)
    ear = pg.connect(dbname=c.dbname)  # hears what the standby hears
    ear.autocommit = True
    ear.cursor().execute("LISTEN coffer_kv_changes")
    gone = make_creds(active, "mass", 256, tok, threads=8)
    builds = len(re.findall(BUILT, standby.log()))
    # They fall due while the active is paused: it then revokes them in
    # batches of 64 leases, each deleting twice as many keys (the record
    # and its token index entry), more than one payload carries.
    with paused(active):
        time.sleep(3)
    deadline = time.monotonic() + 30
    while leases(active, "mass") > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leases(active, "mass") == 0
    assert leases(active, "long") == len(keep)
    time.sleep(0.5)
    while select.select([ear], [], [], 0.5)[0]:
        ear.poll()
    payloads = [n.payload for n in ear.notifies]
    ear.close()
    assert not [p for p in payloads if p.startswith("\x01")], payloads
    assert max(len(p.encode()) for p in payloads) <= 7000
    heard = set("\n".join(payloads).split("\n"))
    assert not ["sys/expire/id/" + g for g in gone
                if "sys/expire/id/" + g not in heard]
    # No flush was sent: the index was not rebuilt.
    log = standby.log()
    assert len(re.findall(BUILT, log)) == builds, log[-3000:]
    # Taking over right after uses the index as it stands: exact (the
    # kept leases and the token's own).
    new, took = kill_and_take_over(c, active, standby)
    assert took == len(keep) + 1
    assert reconciled(standby) == (len(keep) + 1, 0, 0)
    assert len(re.findall(BUILT, standby.log())) == builds
    nc = new.client()
    for lease_id in keep:
        assert nc.sys.read_lease(lease_id)["data"]["id"] == lease_id
    for lease_id in gone[::16]:
        r = new.req("PUT", "sys/leases/lookup", json={"lease_id": lease_id})
        assert r.status_code == 400, r.text
