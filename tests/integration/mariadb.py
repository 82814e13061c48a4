"""A throw-away MariaDB server for integration tests.

Each server lives in its own temporary directory (data, socket, log),
listens on 127.0.0.1 on a free port, has a root password, and is removed
by stop(). Never a system instance: --no-defaults keeps /etc/mysql out.

Python has no MySQL module here, so queries go through the `mariadb`
command-line client (a second libmariadb connection, as a user would
make one).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

from helpers import free_port

ROOT_PASSWORD = "root-pw-1"
MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
CLIENT = shutil.which("mariadb") or "/usr/bin/mariadb"


def available():
    """None when a server can be started here, else the reason."""
    for path in (MARIADBD, INSTALL_DB, CLIENT):
        if not os.access(path, os.X_OK):
            return "%s not found (Debian package mariadb-server)" % path
    return None


class MariaDB:
    def __init__(self, tls=None):
        """tls: None, or (ca, cert, key) PEM file paths the server uses
        (then TLS is on offer; a user can be made to REQUIRE SSL)."""
        self.tls = tls
        self.dir = tempfile.mkdtemp(prefix="coffer-mariadb-")
        self.data = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.log = os.path.join(self.dir, "mysqld.log")
        self.proc = None
        user = ["--user=root"] if os.geteuid() == 0 else []
        p = subprocess.run(
            [INSTALL_DB, "--no-defaults", "--datadir=" + self.data,
             "--auth-root-authentication-method=normal",
             "--skip-test-db", "--skip-name-resolve"] + user,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("mariadb-install-db failed: " +
                               p.stdout.decode(errors="replace")[-2000:])
        self.port = free_port()  # after install-db, as PgCluster does
        self.start()
        # A fresh root@localhost has no password; give it one, and a
        # root@'%' for TCP logins from 127.0.0.1 with the same password.
        self.query("ALTER USER 'root'@'localhost' IDENTIFIED BY '%s'; "
                   "CREATE USER 'root'@'%%' IDENTIFIED BY '%s'; "
                   "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%%' "
                   "WITH GRANT OPTION; CREATE DATABASE app; "
                   "CREATE TABLE app.items (id INT PRIMARY KEY)"
                   % (ROOT_PASSWORD, ROOT_PASSWORD), password="")
        # install-db also makes password-less root@127.0.0.1, ::1 and
        # @<hostname>, which would win over root@'%' for TCP logins.
        for user, host in self.query("SELECT User, Host FROM mysql.user "
                                     "WHERE User = 'root' AND Host NOT IN "
                                     "('localhost', '%')"):
            self.query("DROP USER '%s'@'%s'" % (user, host))

    def start(self):
        user = ["--user=root"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [MARIADBD, "--no-defaults", "--datadir=" + self.data,
             "--socket=" + self.socket, "--port=%d" % self.port,
             "--skip-networking=0", "--bind-address=127.0.0.1",
             "--skip-name-resolve", "--log-error=" + self.log,
             "--pid-file=" + os.path.join(self.dir, "mysqld.pid"),
             "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
             "--max-connections=300", "--skip-log-bin",
             "--innodb-flush-log-at-trx-commit=0"] + user + self.tls_args(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited: " + self.log_tail())
            if os.path.exists(self.socket):
                try:
                    with socket.create_connection(("127.0.0.1", self.port),
                                                  timeout=1):
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError("mariadbd did not start: " + self.log_tail())

    def tls_args(self):
        if self.tls is None:
            return []
        ca, cert, key = self.tls
        return ["--ssl-ca=" + ca, "--ssl-cert=" + cert, "--ssl-key=" + key]

    def log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop_server(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop_server()
        self.start()

    def stop(self):
        self.stop_server()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients -----------------------------------------------------------

    def url(self, templated=True):
        cred = "{{username}}:{{password}}" if templated else \
            "root:" + ROOT_PASSWORD
        return "%s@tcp(127.0.0.1:%d)/" % (cred, self.port)

    def client(self, sql, user="root", password=None, tcp=True, timeout=20):
        """Runs sql as user; returns (rc, stdout, stderr)."""
        if password is None:
            password = ROOT_PASSWORD
        args = [CLIENT, "--no-defaults", "--batch", "--skip-column-names",
                "--user=" + user, "--connect-timeout=5"]
        if tcp:
            args += ["--protocol=TCP", "--host=127.0.0.1",
                     "--port=%d" % self.port]
        else:
            args += ["--socket=" + self.socket]
        env = dict(os.environ, MYSQL_PWD=password)
        p = subprocess.run(args + ["-e", sql], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=timeout)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def background(self, sql):
        """Runs sql as root in a client left running; returns the Popen
        once its connection is up (the caller kills it)."""
        env = dict(os.environ, MYSQL_PWD=ROOT_PASSWORD)
        proc = subprocess.Popen(
            [CLIENT, "--no-defaults", "--user=root", "--socket=" + self.socket,
             "-e", sql], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return proc

    def query(self, sql, password=None):
        """Runs sql as root over the socket; the rows as lists of strings."""
        rc, out, err = self.client(sql, password=password, tcp=False)
        if rc != 0:
            raise RuntimeError("query failed: %s" % err)
        return [line.split("\t") for line in out.splitlines()]

    def can_login(self, user, password):
        rc, out, _ = self.client("SELECT CURRENT_USER()", user=user,
                                 password=password)
        return rc == 0 and out.strip() == user + "@%"

    def users(self):
        return {r[0] for r in self.query("SELECT User FROM mysql.user")}

    def user_exists(self, name):
        return name in self.users()

    def wait_user_gone(self, name, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.user_exists(name):
                return True
            time.sleep(0.1)
        return False
