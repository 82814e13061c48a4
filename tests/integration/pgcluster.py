"""A scratch PostgreSQL cluster for integration tests.

Each cluster lives in its own temporary directory, listens on 127.0.0.1 on a
free port (and on a unix socket in that directory), uses SCRAM password
authentication for the `postgres` superuser, and is removed by stop().

PostgreSQL refuses to run as root, so when the tests run as root (CI does)
initdb and pg_ctl run as the `postgres` OS user that Debian's package creates.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import psycopg2

from helpers import free_port

PASSWORD = "postgres"


def pg_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        raise RuntimeError("PostgreSQL server binaries not found; "
                           "run `make deps`")
    return dirs[-1]


class PgCluster:
    def __init__(self, dbname="myapp"):
        self.bindir = pg_bindir()
        self.dbname = dbname
        self.dir = tempfile.mkdtemp(prefix="coffer-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "pg.log")
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self._as_postgres:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", self.data, "-U", "postgres",
                  "--auth=scram-sha-256", "--pwfile=" + pwfile, "-E", "UTF8",
                  "--no-sync")
        # Chosen after initdb's seconds, not before: the port is free
        # only until another process's connection takes it.
        self.port = free_port()
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("fsync = off\nmax_connections = 200\n"
                    "unix_socket_directories = '%s'\n"
                    "listen_addresses = '127.0.0.1'\nport = %d\n"
                    % (self.dir, self.port))
        self.start()
        conn = self.connect("postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute('CREATE DATABASE "%s"' % dbname)
        finally:
            conn.close()

    def _run(self, tool, *args, check=True):
        cmd = [os.path.join(self.bindir, tool)] + list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError("%s failed: %s" % (tool, p.stdout.decode()))
        return p

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "start")

    def stop_server(self):
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop",
                  check=False)

    def restart(self):
        self.stop_server()
        self.start()

    def stop(self):
        self.stop_server()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients -----------------------------------------------------------

    def url(self, templated=False, dbname=None):
        cred = "{{username}}:{{password}}" if templated else \
            "postgres:%s" % PASSWORD
        return "postgresql://%s@127.0.0.1:%d/%s?sslmode=disable" % (
            cred, self.port, dbname or self.dbname)

    def connect(self, dbname=None, user="postgres", password=PASSWORD):
        return psycopg2.connect(host="127.0.0.1", port=self.port,
                                dbname=dbname or self.dbname, user=user,
                                password=password, connect_timeout=5)

    def query(self, sql, *params):
        conn = self.connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def can_login(self, user, password):
        """Whether user logs in with password (over TCP, SCRAM)."""
        try:
            self.connect(user=user, password=password).close()
            return True
        except psycopg2.OperationalError:
            return False

    def role_exists(self, name):
        return bool(self.query("SELECT 1 FROM pg_roles WHERE rolname = %s",
                               name))

    def wait_role_gone(self, name, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.role_exists(name):
                return True
            time.sleep(0.1)
        return False
