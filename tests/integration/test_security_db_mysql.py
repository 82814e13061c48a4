"""The MySQL driver against a hostile server: it must never hand over the
root password, whatever authentication method the server asks for.

A fake server (a few lines of the MySQL wire protocol) greets with
mysql_native_password, takes the client's scrambled answer and then asks
to switch to mysql_clear_password, which would make a willing client send
the password itself. Coffer's driver refuses every method that reveals
the password unless TLS is verified (db_mysql.c auth_plugins)."""

import socket
import struct
import threading

import pytest

PASSWORD = "Rotated-unknown-pw-7d1f"


def packet(seq, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def read_packet(c):
    head = b""
    while len(head) < 4:
        d = c.recv(4 - len(head))
        if not d:
            return None, b""
        head += d
    n = head[0] | head[1] << 8 | head[2] << 16
    body = b""
    while len(body) < n:
        d = c.recv(n - len(body))
        if not d:
            break
        body += d
    return head[3], body


class ClearTextAsker:
    """Accepts connections, records every byte clients send after the
    greeting, and answers each with an auth switch to clear text."""

    def __init__(self, method=b"mysql_clear_password"):
        self.method = method
        self.received = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        caps = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x80000 | 0x200000
        greeting = (b"\x0a5.5.5-10.11.0-MariaDB\x00" + struct.pack("<I", 7) +
                    b"abcdefgh\x00" + struct.pack("<H", caps & 0xffff) +
                    b"\x21" + struct.pack("<H", 2) +
                    struct.pack("<H", caps >> 16) + bytes([21]) +
                    b"\x00" * 10 + b"ijklmnopqrst\x00" +
                    b"mysql_native_password\x00")
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                c.sendall(packet(0, greeting))
                seq, first = read_packet(c)
                self.received.append(first)
                if seq is None:
                    continue
                c.sendall(packet(seq + 1, b"\xfe" + self.method + b"\x00"))
                seq, second = read_packet(c)
                self.received.append(second)
                c.sendall(packet((seq or 0) + 1,
                                 b"\xff\x15\x04#28000Access denied"))
            except OSError:
                pass
            finally:
                c.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("method", [b"mysql_clear_password",
                                    b"sha256_password",
                                    b"caching_sha2_password"])
def test_root_password_never_sent_to_a_server_that_asks(server, method):
    fake = ClearTextAsker(method)
    mount = "mysqlfake%d" % fake.port
    try:
        r = server.req("POST", "sys/mounts/" + mount,
                       json={"type": "database"})
        assert r.status_code == 204, r.text
        # Stored first (not verified), then only the address changes, as
        # an operator who never knew the rotated password could do.
        r = server.req("PUT", mount + "/config/fake", json={
            "plugin_name": "mysql-database-plugin",
            "connection_url": "{{username}}:{{password}}@tcp(127.0.0.1:9)/",
            "username": "root", "password": PASSWORD,
            "allowed_roles": "*", "verify_connection": False})
        assert r.status_code == 204, r.text
        r = server.req("PUT", mount + "/config/fake", json={
            "plugin_name": "mysql-database-plugin",
            "connection_url": "{{username}}:{{password}}@tcp(127.0.0.1:%d)/"
                              % fake.port})
        assert r.status_code == 400, r.text
        assert PASSWORD not in r.text
        sent = b"".join(fake.received)
        assert fake.received, "the driver never reached the fake server"
        assert PASSWORD.encode() not in sent
    finally:
        fake.close()
        server.req("DELETE", "sys/mounts/" + mount)


@pytest.mark.parametrize("user", ["root", "my user", "o'neil", "a=b"])
def test_literal_password_in_a_dsn_is_redacted(server, user):
    """A user name a libpq string could also hold (a space, a quote, a
    '=') once made the redactor take the DSN for one and show the
    password on config reads."""
    secret = "S3cretPW-%d" % len(user)
    mount = "mysqlredact"
    server.req("POST", "sys/mounts/" + mount, json={"type": "database"})
    try:
        r = server.req("PUT", mount + "/config/c", json={
            "plugin_name": "mysql-database-plugin",
            "connection_url": "%s:%s@tcp(127.0.0.1:9)/" % (user, secret),
            "verify_connection": False, "allowed_roles": "*"})
        assert r.status_code in (200, 204), r.text
        assert "Password found in connection_url" in r.text
        r = server.req("GET", mount + "/config/c")
        assert r.status_code == 200, r.text
        assert secret not in r.text
        assert r.json()["data"]["connection_details"]["connection_url"] == \
            "%s:xxxxx@tcp(127.0.0.1:9)/" % user
    finally:
        server.req("DELETE", "sys/mounts/" + mount)
