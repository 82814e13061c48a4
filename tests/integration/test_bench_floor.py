"""The issuance benchmark's floor (tests/bench/bare_issuer.c) does the work
it stands for: a durable, encrypted pending record and lease in sqlite, and
a PostgreSQL user that logs in with the password it returns. A floor that
skipped any of it would flatter every ratio measured against it.
"""

import os
import shutil
import sqlite3
import sys
import tempfile

import psycopg2
import pytest
import requests

from conftest import ROOT
from pgcluster import PgCluster

sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
from benchlib import BareIssuer, bare_issuer_bin  # noqa: E402

TOKEN = "floor-token-3c1f"


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster(dbname="bench")
    cluster.query("CREATE ROLE app_readonly NOLOGIN")
    cluster.query("CREATE TABLE bench_t (v int)")
    cluster.query("GRANT SELECT ON bench_t TO app_readonly")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def bare(pg):
    binary = bare_issuer_bin()
    assert binary is not None, "make build/bench/bare_issuer failed"
    d = tempfile.mkdtemp(prefix="coffer-floor-")
    issuer = BareIssuer(binary, pg, TOKEN, sqlite_dir=d, pool=2)
    yield issuer.url, os.path.join(d, "bare.db")
    assert issuer.stop() == 0
    shutil.rmtree(d, ignore_errors=True)


def test_a_credential_is_a_working_user_with_a_durable_encrypted_lease(
        pg, bare):
    url, db = bare
    r = requests.get(url, headers={"X-Vault-Token": TOKEN}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    user, pw = body["data"]["username"], body["data"]["password"]
    assert body["lease_duration"] == 3600 and body["renewable"] is True
    assert body["lease_id"].startswith("database/creds/bench/")
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, dbname="bench",
                            user=user, password=pw, connect_timeout=5)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM bench_t")  # the group's grant
        assert cur.fetchone() == (0,)
        cur.execute("SELECT rolvaliduntil IS NOT NULL FROM pg_roles "
                    "WHERE rolname = current_user")
        assert cur.fetchone() == (True,)
    conn.close()
    with sqlite3.connect(db) as s:
        assert s.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = s.execute("SELECT id, value FROM records WHERE id = ?",
                         (body["lease_id"],)).fetchall()
    assert len(rows) == 1
    blob = rows[0][1]
    # nonce + ciphertext + tag, and nothing readable in it
    assert len(blob) > 28 and user.encode() not in blob
    assert b"active" not in blob and pw.encode() not in blob


def test_a_wrong_or_missing_token_gets_nothing(pg, bare):
    url, _ = bare
    before = pg.query("SELECT count(*) FROM pg_roles")[0][0]
    for headers in ({}, {"X-Vault-Token": TOKEN + "x"},
                    {"X-Vault-Token": TOKEN[:-1]}):
        r = requests.get(url, headers=headers, timeout=30)
        assert r.status_code == 403, r.text
    assert pg.query("SELECT count(*) FROM pg_roles")[0][0] == before
