"""Small helpers shared by the integration tests.

raw_request() speaks HTTP/1.1 over a bare socket, for the requests a normal
client library would refuse or rewrite: huge bodies the server is expected
to cut short, invalid verbs, paths with control characters or dot segments.
"""

import json
import os
import re
import socket
import time

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BASE62_24_RE = re.compile(r"^[0-9A-Za-z]{24}$")
RFC3339_NANO_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")

ENVELOPE_KEYS = ["request_id", "lease_id", "renewable", "lease_duration",
                 "data", "wrap_info", "warnings", "auth"]

KV2_INVALID_PATH_WARNING = (
    "Invalid path for a versioned K/V secrets engine. See the API docs for the "
    "appropriate API endpoints to use. If using the Vault CLI, use 'vault kv %s' "
    "for this operation.")
KV2_ROOT_WARNING = ("Non-listing operations on the root of a K/V v2 mount are "
                    "not supported.")


def free_port():
    """A port free on 127.0.0.1 now. Any outgoing connection may take it
    as its local port later, so take it just before the bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout=10.0):
    """True once cond() holds, polling every 0.1 s; cond()'s last answer
    after timeout seconds. For effects the server applies asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return bool(cond())


def thread_stats(pid):
    """{tid: fields} of pid's threads still alive, each its /proc stat
    after the command name, so that proc(5)'s field N is fields[N - 3]:
    utime [11], stime [12], nice [16]."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                out[int(tid)] = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
    return out


def multierror(msg):
    """Vault's go-multierror rendering of a single error."""
    return "1 error occurred:\n\t* %s\n\n" % msg


class RawResponse:
    def __init__(self, status, reason, headers, body):
        self.status_code = status
        self.reason = reason
        self.headers = headers  # lower-cased names
        self.content = body

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)

    def __repr__(self):
        return "<RawResponse %d %r>" % (self.status_code, self.content[:300])


def _read_response(sock, deadline, head_only=False):
    data = b""
    while b"\r\n\r\n" not in data:
        if time.monotonic() > deadline:
            raise TimeoutError("no response headers: %r" % data[:200])
        chunk = sock.recv(65536)
        if not chunk:
            if not data:
                raise ConnectionError("connection closed without a response")
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    if not m:
        raise ValueError("bad status line %r" % lines[0])
    status = int(m.group(1))
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if head_only or status in (204, 304) or 100 <= status < 200:
        return RawResponse(status, m.group(2), headers, b"")
    body = rest
    if "content-length" in headers:
        want = int(headers["content-length"])
        while len(body) < want and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        body = body[:want]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while not body.endswith(b"0\r\n\r\n") and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        out = b""
        while body:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out += body[:size]
            body = body[size + 2:]
        body = out
    else:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return RawResponse(status, m.group(2), headers, body)


def raw_request(addr, method, target, headers=None, body=b"", body_len=None,
                chunked=False, timeout=30):
    """Sends one request over a new connection and returns a RawResponse.

    body may be bytes, or an int: that many bytes of filler are streamed
    without holding them in memory. If the server answers and closes the
    connection before the whole body is sent, the send error is ignored and
    the server's answer is returned: that is what a huge-body test expects.
    """
    host, port = addr.replace("http://", "").split(":")
    port = int(port)
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        hdrs = {"Host": "%s:%d" % (host, port), "Connection": "close"}
        hdrs.update(headers or {})
        size = body if isinstance(body, int) else len(body)
        if chunked:
            hdrs["Transfer-Encoding"] = "chunked"
        elif body_len is not None:
            hdrs["Content-Length"] = str(body_len)
        elif size or method in ("POST", "PUT"):
            hdrs["Content-Length"] = str(size)
        head = "%s %s HTTP/1.1\r\n" % (method, target)
        head += "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
        sock.sendall(head.encode("latin-1"))
        try:
            if isinstance(body, int):
                block = b"{" + b" " * (1 << 16)
                sent = 0
                while sent < body:
                    piece = block[: min(len(block), body - sent)]
                    if chunked:
                        sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    else:
                        sock.sendall(piece)
                    sent += len(piece)
                    block = b" " * (1 << 16)
            elif body:
                if chunked:
                    sock.sendall(b"%x\r\n" % len(body) + body + b"\r\n")
                else:
                    sock.sendall(body)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early; read what it said
        return _read_response(sock, deadline, head_only=(method == "HEAD"))
    finally:
        sock.close()


# ------------------------------------------------ database engine fixtures --

# The creation statement the PostgreSQL engine tests share.
PG_CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
             "VALID UNTIL '{{expiration}}';")


def fast_lease_server(tick=0.5, extra=()):
    """Fixture body (`yield from`): a dev server whose lease retries and
    ticks are fast, so backoff, irrevocable leases and rotation show
    within seconds; it must stop cleanly (exit 0) at the end."""
    from conftest import Server
    s = Server(extra_args=["-dev-lease-retry-base=0.05",
                           "-dev-lease-retry-max=0.5",
                           "-dev-tick-interval=%g" % tick, *extra])
    yield s
    rc = s.stop()
    assert rc == 0, s.stderr_text()[-4000:]


def write_pg_config(srv, path, pg, *fields, user="postgres",
                    password="postgres"):
    """Writes the PostgreSQL connection `path` (mount/config/name) for
    cluster pg through the CLI; fields are more key=value arguments."""
    r = srv.cli("write", path, "plugin_name=postgresql-database-plugin",
                "connection_url=" + pg.url(templated=True),
                "username=" + user, "password=" + password, *fields)
    assert r.rc == 0, r
