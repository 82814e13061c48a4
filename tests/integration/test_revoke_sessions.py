"""Sessions do not outlive their lease (issue 13): with revoke_sessions
(the default) a revoked database user's open sessions are ended before it
is dropped, on PostgreSQL and MariaDB, whether the lease is revoked by
hand, by expiry, or in a batch; revoke_sessions=false keeps them, as
Vault does.

Each test keeps a session of the generated user open across the
revocation and then asks it for one more query.
"""

import os
import signal
import subprocess
import time
import uuid

import psycopg2
import pytest

import mariadb
from helpers import fast_lease_server, write_pg_config
from pgcluster import PgCluster

PG_CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
             "VALID UNTIL '{{expiration}}';")
MY_CREATE = ("CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';"
             "GRANT SELECT ON app.* TO '{{name}}'@'%';")


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    # An admin that may create roles but not signal their backends: the
    # revocation must still drop the role.
    cluster.query("CREATE ROLE weak_admin LOGIN CREATEROLE "
                  "PASSWORD 'weak-pw'")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def srv():
    yield from fast_lease_server(tick=0.5)


@pytest.fixture(scope="module")
def pgdb(srv, pg):
    r = srv.cli("secrets", "enable", "-path=pgs", "database")
    assert r.rc == 0, r
    for name, extra in (("kill", []), ("keep", ["revoke_sessions=false"]),
                        ("force", ["revoke_sessions=true"])):
        write_pg_config(srv, "pgs/config/" + name, pg, "allowed_roles=*",
                        *extra)
    weak_url = pg.url(templated=True)
    r = srv.cli("write", "pgs/config/weak",
                "plugin_name=postgresql-database-plugin",
                "connection_url=" + weak_url,
                "username=weak_admin", "password=weak-pw", "allowed_roles=*")
    assert r.rc == 0, r
    return "pgs"


def pg_role(srv, db_name, ttl="5m", revocation=None):
    name = "r" + uuid.uuid4().hex[:8]
    body = {"db_name": db_name, "creation_statements": [PG_CREATE],
            "default_ttl": ttl, "max_ttl": ttl}
    if revocation:
        body["revocation_statements"] = [revocation]
    r = srv.req("POST", "pgs/roles/" + name, json=body)
    assert r.status_code in (200, 204), r.text
    return name


def creds(srv, path):
    r = srv.req("GET", path)
    assert r.status_code == 200, r.text
    return r.json()


def pg_session(pg, c):
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port,
                            dbname=pg.dbname, user=c["data"]["username"],
                            password=c["data"]["password"],
                            connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    return conn


def pg_session_dead(conn, timeout=5.0):
    """True once a query on conn fails (termination is asynchronous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        except psycopg2.Error:
            return True
        time.sleep(0.05)
    return False


def pg_session_alive(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        return cur.fetchone() == (1,)


def revoke(srv, lease_id):
    r = srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease_id})
    assert r.status_code == 204, r.text


# ----------------------------------------------------------- PostgreSQL --

def test_config_read_shows_revoke_sessions(srv, pgdb):
    data = srv.req("GET", "pgs/config/kill").json()["data"]
    assert data["revoke_sessions"] is True
    data = srv.req("GET", "pgs/config/keep").json()["data"]
    assert data["revoke_sessions"] is False


def test_pg_revocation_by_hand_ends_the_session(srv, pg, pgdb):
    role = pg_role(srv, "kill")
    c = creds(srv, "pgs/creds/" + role)
    conn = pg_session(pg, c)
    try:
        revoke(srv, c["lease_id"])
        assert not pg.role_exists(c["data"]["username"])
        assert pg_session_dead(conn)
    finally:
        conn.close()


def test_pg_expiry_ends_the_session(srv, pg, pgdb):
    # Long enough for the login to come before the drop on a slow run.
    role = pg_role(srv, "kill", ttl="4s")
    c = creds(srv, "pgs/creds/" + role)
    conn = pg_session(pg, c)
    try:
        assert pg.wait_role_gone(c["data"]["username"], timeout=15)
        assert pg_session_dead(conn)
    finally:
        conn.close()


def test_pg_batch_revocation_ends_every_session(srv, pg, pgdb):
    """revoke-prefix and mass expiry revoke in one DO block per batch."""
    role = pg_role(srv, "kill")
    cs = [creds(srv, "pgs/creds/" + role) for _ in range(4)]
    conns = [pg_session(pg, c) for c in cs]
    try:
        r = srv.req("PUT", "sys/leases/revoke-prefix/pgs/creds/" + role,
                    params={"sync": "true"})
        assert r.status_code == 204, r.text
        for c, conn in zip(cs, conns):
            assert pg.wait_role_gone(c["data"]["username"], timeout=10)
            assert pg_session_dead(conn)
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.once
def test_pg_mass_expiry_ends_every_session(srv, pg, pgdb):
    """Leases due together (the expiration manager may revoke them in
    batches: one DO block over their names, one pg_stat_activity scan)."""
    ttl = 5  # long enough for every login to come before the first drop
    role = pg_role(srv, "kill", ttl="%ds" % ttl)
    cs = [creds(srv, "pgs/creds/" + role) for _ in range(5)]
    last_issued = time.monotonic()
    conns = [pg_session(pg, c) for c in cs]
    # Stopped until all are due, the server wakes to one pile: a batch.
    srv.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(max(0.0, last_issued + ttl + 0.5 - time.monotonic()))
    finally:
        srv.proc.send_signal(signal.SIGCONT)
    try:
        for c, conn in zip(cs, conns):
            assert pg.wait_role_gone(c["data"]["username"], timeout=10)
            assert pg_session_dead(conn)
    finally:
        for conn in conns:
            conn.close()


def test_pg_revoke_sessions_false_keeps_the_session(srv, pg, pgdb):
    """PostgreSQL drops a role that has live sessions; they go on."""
    role = pg_role(srv, "keep")
    c = creds(srv, "pgs/creds/" + role)
    conn = pg_session(pg, c)
    try:
        revoke(srv, c["lease_id"])
        assert not pg.role_exists(c["data"]["username"])
        time.sleep(0.3)
        assert pg_session_alive(conn)
    finally:
        conn.close()


def test_pg_admin_without_signal_right_still_revokes(srv, pg, pgdb):
    """pg_terminate_backend refused (no pg_signal_backend) does not fail
    the revocation: the role is dropped all the same."""
    role = pg_role(srv, "weak")
    c = creds(srv, "pgs/creds/" + role)
    conn = pg_session(pg, c)
    try:
        revoke(srv, c["lease_id"])
        assert not pg.role_exists(c["data"]["username"])
    finally:
        conn.close()


def test_pg_sessions_of_other_users_are_untouched(srv, pg, pgdb):
    role = pg_role(srv, "kill")
    mine, other = creds(srv, "pgs/creds/" + role), \
        creds(srv, "pgs/creds/" + role)
    conn_mine, conn_other = pg_session(pg, mine), pg_session(pg, other)
    admin = pg.connect()
    admin.autocommit = True
    try:
        revoke(srv, mine["lease_id"])
        assert pg_session_dead(conn_mine)
        assert pg_session_alive(conn_other)
        with admin.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        for conn in (conn_mine, conn_other, admin):
            conn.close()


PG_DROP = 'DROP ROLE IF EXISTS "{{name}}";'


def test_pg_own_revocation_statements_keep_sessions_by_default(srv, pg,
                                                              pgdb):
    """Unset, revoke_sessions applies to the default revocation only: a
    role's own revocation statements run as written (Vault's way)."""
    role = pg_role(srv, "kill", revocation=PG_DROP)
    c = creds(srv, "pgs/creds/" + role)
    conn = pg_session(pg, c)
    try:
        revoke(srv, c["lease_id"])
        assert not pg.role_exists(c["data"]["username"])
        time.sleep(0.3)
        assert pg_session_alive(conn)
    finally:
        conn.close()


def test_pg_revoke_sessions_true_covers_own_statements(srv, pg, pgdb):
    role = pg_role(srv, "force", revocation=PG_DROP)
    c = creds(srv, "pgs/creds/" + role)
    conn = pg_session(pg, c)
    try:
        revoke(srv, c["lease_id"])
        assert not pg.role_exists(c["data"]["username"])
        assert pg_session_dead(conn)
    finally:
        conn.close()


def test_pg_revoke_sessions_true_covers_own_statements_in_a_batch(
        srv, pg, pgdb):
    role = pg_role(srv, "force", revocation=PG_DROP)
    cs = [creds(srv, "pgs/creds/" + role) for _ in range(3)]
    conns = [pg_session(pg, c) for c in cs]
    try:
        r = srv.req("PUT", "sys/leases/revoke-prefix/pgs/creds/" + role,
                    params={"sync": "true"})
        assert r.status_code == 204, r.text
        for c, conn in zip(cs, conns):
            assert pg.wait_role_gone(c["data"]["username"], timeout=10)
            assert pg_session_dead(conn)
    finally:
        for conn in conns:
            conn.close()


# -------------------------------------------------------------- MariaDB --

@pytest.fixture(scope="module")
def my():
    why = mariadb.available()
    if why:
        pytest.skip(why)
    server = mariadb.MariaDB()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mydb(srv, my):
    r = srv.cli("secrets", "enable", "-path=mys", "database")
    assert r.rc == 0, r
    for name, extra in (("kill", []), ("keep", ["revoke_sessions=false"])):
        r = srv.cli("write", "mys/config/" + name,
                    "plugin_name=mysql-database-plugin",
                    "connection_url=" + my.url(templated=True),
                    "username=root", "password=" + mariadb.ROOT_PASSWORD,
                    "allowed_roles=*", *extra)
        assert r.rc == 0, r
    return "mys"


def my_role(srv, db_name, ttl="5m"):
    name = "m" + uuid.uuid4().hex[:6]
    r = srv.req("POST", "mys/roles/" + name, json={
        "db_name": db_name, "creation_statements": [MY_CREATE],
        "default_ttl": ttl, "max_ttl": ttl})
    assert r.status_code in (200, 204), r.text
    return name


def my_session(my, c, seconds=20):
    """A client of the generated user left running in a long query."""
    env = dict(os.environ, MYSQL_PWD=c["data"]["password"])
    proc = subprocess.Popen(
        [mariadb.CLIENT, "--no-defaults", "--protocol=TCP",
         "--host=127.0.0.1", "--port=%d" % my.port,
         "--user=" + c["data"]["username"], "--connect-timeout=5",
         "-e", "SELECT SLEEP(%d)" % seconds],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = my.query("SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                        " WHERE USER = '%s'" % c["data"]["username"])
        if rows[0][0] != "0":
            return proc
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the session did not start")


def my_session_ended(proc, timeout=5.0):
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode != 0


def test_mysql_revocation_by_hand_kills_the_connection(srv, my, mydb):
    role = my_role(srv, "kill")
    c = creds(srv, "mys/creds/" + role)
    proc = my_session(my, c)
    try:
        revoke(srv, c["lease_id"])
        assert not my.user_exists(c["data"]["username"])
        assert my_session_ended(proc)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.once
def test_mysql_expiry_kills_every_connection(srv, my, mydb):
    # Long enough for every session to start before the first drop.
    role = my_role(srv, "kill", ttl="6s")
    cs = [creds(srv, "mys/creds/" + role) for _ in range(3)]
    procs = [my_session(my, c) for c in cs]
    try:
        for c, proc in zip(cs, procs):
            assert my.wait_user_gone(c["data"]["username"], timeout=20)
            assert my_session_ended(proc)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_mysql_revoke_sessions_false_keeps_the_connection(srv, my, mydb):
    role = my_role(srv, "keep")
    c = creds(srv, "mys/creds/" + role)
    proc = my_session(my, c, seconds=3)
    try:
        revoke(srv, c["lease_id"])
        assert not my.user_exists(c["data"]["username"])
        # The query runs to its end and the client exits cleanly.
        proc.wait(timeout=10)
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
