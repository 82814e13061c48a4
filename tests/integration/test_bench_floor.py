"""The issuance benchmark's floor (tests/bench/bare_issuer.c) does the work
it stands for: a durable, encrypted pending record and lease in sqlite, and
a PostgreSQL user that logs in with the password it returns. A floor that
skipped any of it would flatter every ratio measured against it.
"""

import os
import sqlite3
import subprocess
import tempfile

import psycopg2
import pytest
import requests

from conftest import ROOT, free_port
from pgcluster import PgCluster

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
    p = subprocess.run(["make", "--no-print-directory", "-C", ROOT,
                        "build/bench/bare_issuer"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    assert p.returncode == 0, p.stdout
    d = tempfile.mkdtemp(prefix="coffer-floor-")
    db = os.path.join(d, "bare.db")
    port = free_port()
    proc = subprocess.Popen(
        [os.path.join(ROOT, "build", "bench", "bare_issuer"), "--port",
         str(port), "--token", TOKEN, "--pg", pg.url(dbname="bench"),
         "--pool", "2", "--sqlite", db],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    yield "http://127.0.0.1:%d/v1/database/creds/bench" % port, db
    proc.terminate()
    assert proc.wait(timeout=20) == 0
    subprocess.run(["rm", "-rf", d])


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
