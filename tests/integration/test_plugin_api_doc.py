"""docs/PLUGIN_API.md stays true: every name a plugin can reach at run time
is documented, and every name the document gives exists.

A dev server loads an introspection engine and auth method
(data/plugin_api_doc/plugins/apidoc.lua, through -dev-plugin-dir) and a Lua
policy (data/plugin_api_doc/policies, through -dev-policy-dir). At run time
they report:

  - the whole `coffer` table, walked through the frozen proxies' __pairs;
  - the keys of the real `req` a path handler, a login handler and a Lua
    policy check receive (and of req.mount and req.token);
  - the keys of the tables a secret's revoke/renew and e:periodic receive;
  - which method names the real objects answer: the storage handle, a
    storage lock, a pending lease, a JOSE key and key set (userdata
    metatables are locked, so the test sends candidate names: the
    document's, the C sources' luaL_Reg tables and a list of usual ones);
  - the keys of a coffer.http response and of coffer.x509.parse's result;
  - which globals and standard-library functions the sandbox has.

The sources give what has no run-time handle: framework.lua's SPEC_KEYS
and LOGIN_KEYS, the identity keys, fields.lua's types and options, the
response keys luavm.c accepts, the Lua policy file's keys, the database
plugin spec (dbplugins.lua), the database connection's methods (lua_db.c)
and the Lua configuration keys (config.c).

Every failure lists all the names missing in one place or the other, with
the document's line numbers for names it gives that do not exist.
"""

import http.server
import os
import re
import subprocess
import threading
import time

import pytest

from conftest import HERE, ROOT, Server, coffer_bin

DOC = os.path.join(ROOT, "docs", "PLUGIN_API.md")
DATA = os.path.join(HERE, "data", "plugin_api_doc")
SRC = os.path.join(ROOT, "src")
LUA = os.path.join(ROOT, "lua", "coffer")

# Lua 5.4's base library and library tables (the reference manual, 6).
LUA54_GLOBALS = [
    "_G", "_VERSION", "assert", "collectgarbage", "dofile", "error",
    "getmetatable", "ipairs", "load", "loadfile", "next", "pairs", "pcall",
    "print", "rawequal", "rawget", "rawlen", "rawset", "require", "select",
    "setmetatable", "tonumber", "tostring", "type", "warn", "xpcall",
    "coroutine", "debug", "io", "math", "os", "package", "string", "table",
    "utf8", "_ENV", "loadstring", "unpack", "setfenv", "getfenv", "module",
    "bit32", "jit", "ffi", "arg",
]
LUA54_LIBS = {
    "string": ["byte", "char", "dump", "find", "format", "gmatch", "gsub",
               "len", "lower", "match", "pack", "packsize", "rep", "reverse",
               "sub", "unpack", "upper"],
    "table": ["concat", "insert", "move", "pack", "remove", "sort", "unpack"],
    "math": ["abs", "acos", "asin", "atan", "ceil", "cos", "deg", "exp",
             "floor", "fmod", "huge", "log", "max", "maxinteger", "min",
             "mininteger", "modf", "pi", "rad", "random", "randomseed", "sin",
             "sqrt", "tan", "tointeger", "type", "ult"],
    "utf8": ["char", "charpattern", "codepoint", "codes", "len", "offset"],
    "coroutine": ["close", "create", "isyieldable", "resume", "running",
                  "status", "wrap", "yield"],
}

# Objects whose methods live in a luaL_Reg table of a C file: table name
# -> the name the document calls the object by (`storage:get(...)`).
# A new method table must be added here (the test says so) and documented.
METHOD_TABLES = {
    "storage_methods": "storage",
    "lease_methods": "lease",
    "conn_methods": "conn",
    "key_methods": "key",
    "keyset_methods": "keyset",
}
# Objects the test can make at run time and probe.
PROBED = ("storage", "lock", "lease", "key", "keyset")
# Usual method names, probed on every object in case one is not in a
# luaL_Reg table the test knows.
USUAL_METHODS = [
    "get", "put", "get_json", "put_json", "delete", "list", "lock", "unlock",
    "release", "close", "issue", "abort", "id", "renew", "revoke", "ttl",
    "exec", "query", "kids", "keys", "key", "get_key", "find", "select",
    "verify", "json", "text", "kid", "alg", "kty", "use", "type", "describe",
    "public_key", "pem", "to_pem", "thumbprint", "len", "size", "count",
    "bits", "curve", "fits", "name",
]
CALL_RE = r"(?<![\w])(%s):([A-Za-z_]\w*)\s*\("


# ================================================================ helpers ==

def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def rel(path):
    return os.path.relpath(path, ROOT)


def doc_text():
    if not os.path.exists(DOC):
        pytest.fail("%s does not exist" % rel(DOC), pytrace=False)
    return read(DOC)


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def code_text(doc):
    """The document's code: inline `spans` and fenced blocks, with the
    positions of the original so that line numbers stay right (prose is
    blanked out, keeping newlines)."""
    out = [" "] * len(doc)
    for m in re.finditer(r"```.*?```", doc, re.S):
        for i in range(m.start(), m.end()):
            out[i] = doc[i]
    fenced = "".join(out)
    for m in re.finditer(r"`[^`\n]+`", doc):
        if fenced[m.start()] != " ":
            continue
        for i in range(m.start(), m.end()):
            out[i] = doc[i]
    for i, c in enumerate(doc):
        if c == "\n":
            out[i] = "\n"
    return "".join(out)


def entry_text(doc):
    """What counts as a name's entry (not a mere mention): the first cell
    of a table row, or a heading."""
    out = []
    for line in doc.split("\n"):
        if re.match(r"^#+\s", line):
            out.append(line)
        elif re.match(r"^\|\s*`", line):
            out.append(line.strip().strip("|").split("|")[0])
    return "\n".join(out)


def names_with_lines(text, regex, group=1):
    """{name: first line} of every match of regex in text."""
    found = {}
    for m in re.finditer(regex, text):
        found.setdefault(m.group(group), line_of(text, m.start()))
    return found


def section(doc, needle):
    """The text under the first heading containing needle, up to the next
    heading (of any level)."""
    lines = doc.split("\n")
    for i, line in enumerate(lines):
        if re.match(r"^#+\s", line) and needle in line:
            body = []
            for nxt in lines[i + 1:]:
                if re.match(r"^#+\s", nxt):
                    break
                body.append(nxt)
            return "\n".join(body)
    pytest.fail("%s has no heading containing %r" % (rel(DOC), needle),
                pytrace=False)


def table_rows(text):
    """[cells] of every markdown table row whose first cell is `code`."""
    rows = []
    for line in text.split("\n"):
        if re.match(r"^\|\s*`", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def row_key(cell):
    """The identifier a row documents: `name`, `name(...)`, `req.name`,
    `req:name(...)`, `e:path(...)` -> the last identifier before '('."""
    m = re.match(r"`([^`]+)`", cell)
    text = m.group(1) if m else cell
    text = text.split("(")[0].split("{")[0].split(" ")[0]
    return re.split(r"[.:]", text)[-1]


def section_keys(doc, needle):
    return {row_key(r[0]) for r in table_rows(section(doc, needle))}


class Problems:
    def __init__(self):
        self.items = []

    def missing_in_doc(self, what, names):
        if names:
            self.items.append(
                "%s: in the code but not in %s: %s"
                % (what, rel(DOC), ", ".join(sorted(names))))

    def missing_in_code(self, what, names_lines):
        if names_lines:
            self.items.append(
                "%s: named by %s but not in the code: %s"
                % (what, rel(DOC), ", ".join(
                    "%s (line %d)" % (n, l) if l else n
                    for n, l in sorted(names_lines.items()))))

    def compare(self, what, code, documented, lines=None):
        """Both directions between two sets of names."""
        code, documented = set(code), set(documented)
        lines = lines or {}
        self.missing_in_doc(what, code - documented)
        self.missing_in_code(what, {n: lines.get(n)
                                    for n in documented - code})

    def check(self):
        if self.items:
            pytest.fail("docs/PLUGIN_API.md is out of date:\n  - " +
                        "\n  - ".join(self.items), pytrace=False)


# ============================================================== run time ==

class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def make_keys():
    """A JWKS with one RSA key, its PEM, and a self-signed certificate."""
    import base64
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key()
    nums = pub.public_numbers()

    def b64(n):
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    jwks = ('{"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", '
            '"alg": "RS256", "n": "%s", "e": "%s"}]}'
            % (b64(nums.n), b64(nums.e)))
    pem = pub.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apidoc")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(pub).serial_number(7)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("apidoc.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    return jwks, pem.decode(), cert.public_bytes(
        serialization.Encoding.PEM).decode()


def c_method_tables():
    """{table name: ([methods], file)} of every luaL_Reg table in the C
    files that make up the coffer module."""
    out = {}
    for name in sorted(os.listdir(SRC)):
        if not (name.startswith("lua_") and name.endswith(".c")):
            continue
        text = read(os.path.join(SRC, name))
        for m in re.finditer(
                r"luaL_Reg\s+(\w+)\s*\[\s*\]\s*=\s*\{(.*?)\};", text, re.S):
            methods = re.findall(r'\{\s*"(\w+)"\s*,', m.group(2))
            out[m.group(1)] = ([x for x in methods
                                if not x.startswith("__")], name)
    return out


def http_flag_args(port):
    """Server flags that let plugins call the test's plain-http server,
    if this build has an outbound HTTP allowlist flag for dev servers."""
    p = subprocess.run([coffer_bin(), "server", "-h"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=10)
    usage = p.stdout.decode("utf-8", "replace")
    m = re.search(r"-(dev-plugin-http-allow(?:ed)?)=", usage)
    if m is None:
        return []
    return ["-%s=http://127.0.0.1:%d" % (m.group(1), port)]


@pytest.fixture(scope="module")
def web():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def srv(web):
    s = Server(["-workers=2", "-dev-tick-interval=0.5",
                "-dev-plugin-dir=%s" % os.path.join(DATA, "plugins"),
                "-dev-policy-dir=%s" % os.path.join(DATA, "policies")]
               + http_flag_args(web))
    r = s.req("POST", "sys/mounts/apidoc", json={"type": "apidoc"})
    assert r.status_code == 204, r.text
    r = s.req("POST", "sys/auth/apidoc-auth", json={"type": "apidoc_auth"})
    assert r.status_code == 204, r.text
    yield s
    assert s.stop() == 0, s.stderr_text()[-3000:]


def ok(r):
    assert r.status_code in (200, 204), (r.status_code, r.text)
    return r.json()["data"] if r.status_code == 200 else None


@pytest.fixture(scope="module")
def runtime(srv, web):
    """Everything the server reports, gathered once."""
    doc = doc_text()
    code = code_text(doc)
    rt = {}
    names = ok(srv.req("GET", "apidoc/names"))
    rt["coffer"] = names["coffer"]
    rt["libs"] = names["libs"]
    rt["req_handler"] = set(names["req"])
    rt["req_mount"] = set(names["req_mount"])
    rt["req_token"] = set(names["req_token"])

    doc_globals = set(re.findall(r"`(\w+)`", section(doc, "The sandbox")))
    g = ok(srv.req("POST", "apidoc/globals",
                   json={"names": sorted(set(LUA54_GLOBALS) | doc_globals)}))
    rt["globals"] = g["present"]
    rt["req_handler_fields"] = set(g["req"])

    tables = c_method_tables()
    rt["c_tables"] = tables
    candidates = {}
    for obj in PROBED:
        c = set(USUAL_METHODS)
        c |= {m.group(2) for m in re.finditer(CALL_RE % obj, code)}
        for tname, (methods, _) in tables.items():
            if METHOD_TABLES.get(tname) == obj:
                c |= set(methods)
        candidates[obj] = sorted(c)
    jwks, pem, cert = make_keys()
    p = ok(srv.req("POST", "apidoc/probe", json={
        "objects": candidates, "jwks": jwks, "pem": pem, "cert": cert}))
    rt["methods"] = {k: set(v) for k, v in p["found"].items() if k != "cert"}
    rt["cert"] = set(p["found"]["cert"]) if "cert" in p["found"] else None
    rt["probe_notes"] = p["notes"]

    h = ok(srv.req("POST", "apidoc/http",
                   json={"url": "http://127.0.0.1:%d/x" % web}))
    rt["http"] = set(h["keys"]) if "keys" in h else None
    rt["http_error"] = h.get("error")

    # A handler's, a login's and a policy check's req.
    r = srv.req("POST", "auth/apidoc-auth/login", token=None,
                json={"who": "probe"})
    assert r.status_code == 200, r.text
    meta = r.json()["auth"]["metadata"]
    rt["req_login"] = set(meta["req"].split(","))
    rt["login_has_token"] = meta["has_token"]
    r = srv.req("POST", "auth/token/create",
                json={"policies": ["apidoc-check"], "meta": {"team": "x"}})
    assert r.status_code == 200, r.text
    tok = r.json()["auth"]["client_token"]
    assert srv.req("GET", "apidoc/ping", token=tok).status_code == 200
    m = None
    deadline = time.monotonic() + 5
    while m is None and time.monotonic() < deadline:
        m = re.search(r"apidoc-policy-req=\[([^\]]*)\] token=\[([^\]]*)\]",
                      srv.stderr_text())
        time.sleep(0.05)
    assert m, "the policy check's log line is missing"
    rt["req_policy"] = set(m.group(1).split(","))
    rt["req_policy_token"] = set(m.group(2).split(","))

    # The tables revoke, renew and periodic receive.
    lease = srv.req("POST", "apidoc/issue").json()["lease_id"]
    ok(srv.req("PUT", "sys/leases/renew", json={"lease_id": lease}))
    ok(srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease}))
    deadline = time.monotonic() + 10
    while True:
        seen = ok(srv.req("GET", "apidoc/seen"))
        if all(seen[k] for k in ("revoke", "renew", "periodic")):
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)
    rt["lease_record"] = set(seen["revoke"]) | set(seen["renew"])
    rt["periodic_ctx"] = set(seen["periodic"])
    return rt


# ================================================================= tests ==

COFFER_RE = r"(?<![\w/.\-])(coffer(?:\.[A-Za-z_][A-Za-z0-9_]*)+)"


def test_coffer_table_matches_doc(runtime):
    """Every coffer.* value exists in the doc and the other way round."""
    doc = doc_text()
    documented = names_with_lines(code_text(doc), COFFER_RE)
    entries = set(names_with_lines(entry_text(doc), COFFER_RE))
    at_run_time = set(runtime["coffer"])
    p = Problems()
    p.missing_in_doc("coffer.* names without an entry (a table row or a "
                     "heading)", at_run_time - entries)
    p.missing_in_code("coffer.* names",
                      {n: l for n, l in documented.items()
                       if n not in at_run_time})
    p.check()


def test_object_methods_match_doc(runtime):
    """storage:, lock:, lease:, key:, keyset: (probed on real objects) and
    conn: (lua_db.c) methods against the document."""
    doc = doc_text()
    code = code_text(doc)
    p = Problems()
    tables = runtime["c_tables"]
    coffer_funcs = {n.rsplit(".", 1)[-1] for n in runtime["coffer"]}
    for tname, (methods, fname) in sorted(tables.items()):
        if tname in METHOD_TABLES or not methods:
            continue
        if set(methods) <= coffer_funcs:
            continue  # a coffer.<group> function table
        p.items.append("src/%s: luaL_Reg table %s (%s) is not known to the "
                       "test: add it to METHOD_TABLES in %s and document "
                       "its methods" % (fname, tname, ", ".join(methods),
                                        rel(__file__)))
    for obj in PROBED + ("conn",):
        documented = names_with_lines(code, CALL_RE % obj, group=2)
        if obj in runtime["methods"]:
            real = runtime["methods"][obj]
        elif obj == "conn":
            real = set(tables.get("conn_methods", ([], ""))[0])
        else:
            if documented:
                p.missing_in_code(
                    "%s: methods (no such object at run time: %s)"
                    % (obj, "; ".join(runtime["probe_notes"]) or
                       "its constructor is missing"), documented)
            continue
        entries = names_with_lines(entry_text(doc), CALL_RE % obj, group=2)
        p.compare("%s: methods" % obj, real, documented, documented)
        p.missing_in_doc("%s: methods without a table row" % obj,
                         (real & set(documented)) - set(entries))
    p.check()


def req_table(doc):
    """{field: (handler, login, policy)} from the request-table section;
    each cell is "yes" (always there), "-" (never) or "some" (depends)."""
    out = {}
    for cells in table_rows(section(doc, "The request table")):
        if len(cells) < 4:
            continue
        field = re.match(r"`req[.:](\w+)(?![\w.])", cells[0])
        if field is None:
            continue

        def kind(c):
            c = c.strip().lower()
            if c in ("yes", "✓"):
                return "yes"
            if c in ("-", "—", "no", ""):
                return "-"
            return "some"
        out[field.group(1)] = tuple(kind(c) for c in cells[1:4])
    return out


def test_request_fields_match_doc(runtime):
    """The keys of the req a path handler, a login handler and a Lua policy
    check really get, against the document's request table."""
    doc = doc_text()
    table = req_table(doc)
    p = Problems()
    contexts = [
        ("path handler req", 0, [runtime["req_handler"],
                                 runtime["req_handler_fields"]]),
        ("login handler req", 1, [runtime["req_login"]]),
        ("Lua policy check req", 2, [runtime["req_policy"]]),
    ]
    for what, col, observed in contexts:
        always = {k for k, v in table.items() if v[col] == "yes"}
        maybe = {k for k, v in table.items() if v[col] == "some"}
        for seen in observed:
            p.missing_in_doc(what + " (request table, its column)",
                             seen - always - maybe)
            p.missing_in_code(what + " (marked 'yes' in the request table)",
                              {k: None for k in always - seen})
        union = set().union(*observed)
        p.missing_in_code(what + " (marked as sometimes there, never seen)",
                          {k: None for k in maybe - union
                           if k not in ("raw", "login", "token")})
    # Every req.x / req:x in the document's code is a real field.
    code = code_text(doc)
    real = (runtime["req_handler"] | runtime["req_handler_fields"] |
            runtime["req_login"] | runtime["req_policy"])
    used = names_with_lines(code, r"(?<![\w.])req[.:]([A-Za-z_]\w*)")
    p.missing_in_code("req fields", {n: l for n, l in used.items()
                                     if n not in real})
    # Nested tables: req.mount.x, req.token.x.
    for sub, keys in (("mount", runtime["req_mount"]),
                      ("token", runtime["req_token"] |
                       runtime["req_policy_token"])):
        used = names_with_lines(code, r"(?<![\w.])req\.%s\.([A-Za-z_]\w*)"
                                % sub)
        rows = {row_key(r[0]) for r in table_rows(section(doc, "The request table"))
                if r[0].startswith("`req.%s." % sub)}
        p.compare("req.%s fields" % sub, keys, set(used) | rows, used)
    p.check()


def test_callback_tables_match_doc(runtime):
    """lease.x (what revoke and renew get) and ctx.x (what e:periodic
    gets) against the document."""
    doc = doc_text()
    code = code_text(doc)
    p = Problems()
    for prefix, real in (("lease", runtime["lease_record"]),
                         ("ctx", runtime["periodic_ctx"])):
        regex = r"(?<![\w.])%s\.([A-Za-z_]\w*)" % prefix
        documented = names_with_lines(code, regex)
        p.compare("%s.* fields" % prefix, real, documented, documented)
        p.missing_in_doc("%s.* fields without a table row" % prefix,
                         (real & set(documented)) -
                         set(names_with_lines(entry_text(doc), regex)))
    p.check()


def test_http_and_x509_result_fields_match_doc(runtime):
    """resp.x (a coffer.http response) and cert.x (coffer.x509.parse)."""
    doc = doc_text()
    code = code_text(doc)
    p = Problems()
    for prefix, real, why in (("resp", runtime["http"],
                               runtime["http_error"]),
                              ("cert", runtime["cert"],
                               "; ".join(runtime["probe_notes"]))):
        documented = names_with_lines(
            code, r"(?<![\w.])%s\.([A-Za-z_]\w*)" % prefix)
        if real is None:
            if "coffer.%s" % ("http.request" if prefix == "resp"
                              else "x509.parse") in runtime["coffer"]:
                p.items.append("%s.*: could not get one at run time: %s"
                               % (prefix, why))
            elif documented:
                p.missing_in_code("%s.* fields (no constructor)" % prefix,
                                  documented)
            continue
        p.compare("%s.* fields" % prefix, real, documented, documented)
        p.missing_in_doc("%s.* fields without a table row" % prefix,
                         (real & set(documented)) - set(names_with_lines(
                             entry_text(doc),
                             r"(?<![\w.])%s\.([A-Za-z_]\w*)" % prefix)))
    p.check()


def lua_list(text, name):
    """The string keys of `local NAME = { a = true, ... }` or of a list of
    strings `local NAME = { "a", "b" }` in Lua source."""
    m = re.search(r"local\s+%s\s*=\s*\{(.*?)\n\}" % name, text, re.S)
    if m is None:
        m = re.search(r"local\s+%s\s*=\s*\{(.*?)\}" % name, text, re.S)
    assert m, "%s not found" % name
    body = m.group(1)
    return set(re.findall(r"(\w+)\s*=\s*true", body)) | \
        set(re.findall(r'"(\w+)"', body))


def lua_function_body(text, header):
    i = text.find(header)
    assert i >= 0, header
    j = text.find("\nend\n", i)
    return text[i:j]


def registration_keys():
    """(what, heading needle, code keys) for every registration table."""
    fw = read(os.path.join(LUA, "framework.lua"))
    fields = read(os.path.join(LUA, "fields.lua"))
    dbp = read(os.path.join(LUA, "dbplugins.lua"))
    luavm = read(os.path.join(SRC, "luavm.c"))
    policy = read(os.path.join(SRC, "luavm_policy.c"))

    ident = lua_function_body(fw, "local function identity_of")
    identity = set()
    for lst in re.findall(r"ipairs\(\{([^}]*)\}\)", ident):
        identity |= set(re.findall(r'"(\w+)"', lst))
    identity |= set(re.findall(r"\bid\.(\w+)", ident))

    known = re.search(r"known\[\]\s*=\s*\{(.*?)\};", luavm, re.S)
    engine_spec = set(re.findall(
        r"spec\.(\w+)", lua_function_body(fw, "local function new_engine")))
    secret_spec = set(re.findall(
        r"spec\.(\w+)", lua_function_body(fw, "function Engine:secret")))
    db_spec = set(re.findall(
        r"\bp\.(\w+)", lua_function_body(dbp, "local function check_spec")))
    db_spec |= lua_list(dbp, "FUNCTIONS") | lua_list(dbp, "STATEMENT_LISTS") \
        | lua_list(dbp, "OPTIONAL_FUNCTIONS")
    return [
        ("e:path spec keys (framework.lua SPEC_KEYS)", "e:path(",
         lua_list(fw, "SPEC_KEYS")),
        ("a:login spec keys (framework.lua LOGIN_KEYS)", "a:login(",
         lua_list(fw, "LOGIN_KEYS")),
        ("field types (fields.lua)", "Field types",
         set(re.findall(r"^function conv\.(\w+)", fields, re.M))),
        ("field options (fields.lua spec_keys)", "Field options",
         lua_list(fields, "spec_keys")),
        ("identity keys (framework.lua identity_of)", "The identity",
         identity),
        ("handler response keys (luavm.c known[])", "The response",
         set(re.findall(r'"(\w+)"', known.group(1)))),
        ("Lua policy file keys (luavm_policy.c)", "Lua policies",
         set(re.findall(r'lua_getfield\(L, t, "(\w+)"\)', policy))),
        ("coffer.engine / coffer.auth spec keys", "Registering",
         engine_spec),
        ("e:secret spec keys", "e:secret(", secret_spec),
        ("coffer.database_plugin spec keys (dbplugins.lua)",
         "coffer.database_plugin", db_spec),
    ]


def test_registration_keys_match_doc():
    """Each registration table's keys are the rows of its section."""
    doc = doc_text()
    p = Problems()
    for what, needle, keys in registration_keys():
        assert keys, "no keys parsed for " + what
        p.compare(what + ", section '%s'" % needle, keys,
                  section_keys(doc, needle))
    p.check()


def test_sandbox_matches_doc(runtime):
    """The globals and library functions the sandbox really has."""
    doc = doc_text()
    sb = section(doc, "The sandbox")
    avail_line = re.search(r"^\*\*Globals:\*\*(.*?)(?:\n\n|\Z)", sb,
                           re.M | re.S)
    absent_line = re.search(r"^\*\*Not available:\*\*(.*?)(?:\n\n|\Z)",
                            sb, re.M | re.S)
    assert avail_line and absent_line, \
        "the sandbox section needs a **Globals:** and a **Not available:** line"
    avail = set(re.findall(r"`([\w.]+)`", avail_line.group(1)))
    absent = set(re.findall(r"`([\w.]+)`", absent_line.group(1)))
    present = set(runtime["globals"])
    p = Problems()
    p.missing_in_doc("globals (the **Globals:** line)", present - avail)
    p.missing_in_code("globals on the **Globals:** line",
                      {n: None for n in avail - present if "." not in n})
    p.missing_in_code("names on the **Not available:** line that do exist",
                      {n: None for n in absent if "." not in n and
                       n in present})
    # library functions: what is missing from Lua 5.4 must be listed as
    # not available; what is extra must be named somewhere.
    for lib, funcs in LUA54_LIBS.items():
        have = set(runtime["libs"].get(lib, []))
        if not have:
            continue
        gone = {"%s.%s" % (lib, f) for f in set(funcs) - have}
        p.missing_in_doc("%s functions removed (the **Not available:** line)"
                         % lib, gone - absent)
        p.missing_in_code("%s functions listed as not available that exist"
                          % lib, {"%s.%s" % (lib, f): None for f in have
                                  if "%s.%s" % (lib, f) in absent})
        extra = {"%s.%s" % (lib, f) for f in have - set(funcs)}
        p.missing_in_doc("%s functions beyond Lua 5.4's" % lib,
                         {n for n in extra if "`%s`" % n not in sb})
    p.check()


def test_budget_config_keys_documented():
    """Every Lua-runtime key of the configuration file is in the budgets
    section, and that section's table names only real keys."""
    doc = doc_text()
    conf = read(os.path.join(SRC, "config.c"))
    top = re.search(r"top_keys\[\]\s*=\s*\{(.*?)\n\};", conf, re.S)
    keys = set(re.findall(r'\{"(\w+)"', top.group(1)))
    listener = re.search(r"listener_keys\[\]\s*=\s*\{(.*?)\n\};", conf, re.S)
    keys |= set(re.findall(r'\{"(\w+)"', listener.group(1)))
    wanted = {k for k in keys if k.startswith(("lua_", "plugin_", "policy_"))}
    wanted.add("max_request_duration")
    budgets = section(doc, "Budgets")
    rows = {row_key(r[0]) for r in table_rows(budgets)}
    p = Problems()
    p.missing_in_doc("Lua runtime configuration keys (Budgets section)",
                     {k for k in wanted if k not in rows})
    p.missing_in_code("configuration keys in the Budgets table",
                      {k: None for k in rows - keys})
    p.check()


def test_harness_module_matches_doc():
    """The test module `t` of `coffer plugin test` (the Lua prelude in
    src/plugin_test.c) against the document's harness table."""
    path = os.path.join(SRC, "plugin_test.c")
    if not os.path.exists(path):
        pytest.skip("no src/plugin_test.c in this tree")
    src = read(path)
    m = re.search(r"static const char prelude\[\]\s*=(.*?);\n", src, re.S)
    assert m, "prelude not found in src/plugin_test.c"
    lua = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)))
    lua = re.sub(r"\\(.)", lambda e: {"n": "\n", "t": "\t"}.get(
        e.group(1), e.group(1)), lua)
    names = set(re.findall(r"function t\.(\w+)", lua))
    names |= set(re.findall(r"(?<![\w.])t\.(\w+)\s*=[^=]", lua))
    init = re.search(r"local t = \{(.*?)\}\n", lua)
    if init:
        names |= set(re.findall(r"(\w+)\s*=", init.group(1)))
    doc = doc_text()
    rows = {row_key(r[0]) for r in table_rows(section(doc, "Testing plugins"))
            if r[0].startswith("`t.")}
    p = Problems()
    p.compare("coffer plugin test module (t.*)", names, rows)
    p.check()


def c_options_before(text, marker):
    """The option names a C function compares with strcmp(k, "...") up to
    the unknown-option error marker (the function that reads one option)."""
    pos = text.find(marker)
    assert pos >= 0, marker
    start = text.rfind("\n{\n", 0, pos)
    return set(re.findall(r'strcmp\(k, "(\w+)"\)', text[start:pos]))


def bare_rows(doc, needle):
    """Rows whose first cell is one bare `identifier` (option tables)."""
    out = set()
    for cells in table_rows(section(doc, needle)):
        m = re.fullmatch(r"`([a-z_][a-z0-9_]*)`", cells[0])
        if m:
            out.add(m.group(1))
    return out


def test_option_tables_match_doc():
    """The options coffer.http.request, coffer.jose.verify and
    coffer.x509.verify accept (unknown ones raise) against the document's
    option tables."""
    doc = doc_text()
    p = Problems()
    http_c = os.path.join(SRC, "lua_http.c")
    jose_c = os.path.join(SRC, "lua_jose.c")
    if os.path.exists(http_c):
        m = re.search(r"option_names\[\]\s*=\s*\{(.*?)\};", read(http_c), re.S)
        assert m, "option_names[] not found in src/lua_http.c"
        p.compare("coffer.http.request options (section 'Outbound HTTP')",
                  set(re.findall(r'"(\w+)"', m.group(1))),
                  bare_rows(doc, "Outbound HTTP"))
    if os.path.exists(jose_c):
        text = read(jose_c)
        p.compare("coffer.jose.verify options (section 'JOSE and JWT')",
                  c_options_before(text, "coffer.jose.verify: unknown option"),
                  bare_rows(doc, "JOSE and JWT"))
        p.compare("coffer.x509.verify options (section 'Certificates')",
                  c_options_before(text, "coffer.x509.verify: unknown option")
                  | set(re.findall(r'strcmp\(k, "(now)"\)', text)),
                  bare_rows(doc, "Certificates"))
    p.check()


def lua_blocks(doc, needle):
    """The ```lua blocks of the section under the heading with needle."""
    return re.findall(r"```lua\n(.*?)```", section(doc, needle), re.S)


def test_first_engine_and_its_test_run(tmp_path):
    """The document's first engine works as shown, and its example test
    file passes under `coffer plugin test`."""
    doc = doc_text()
    engine = lua_blocks(doc, "A first engine")[0]
    test = [b for b in lua_blocks(doc, "Testing plugins")
            if "t.case" in b][0]
    (tmp_path / "hello.lua").write_text(engine)
    (tmp_path / "hello_test.lua").write_text(test)
    s = Server(["-dev-plugin-dir=%s" % tmp_path])
    try:
        r = s.req("POST", "sys/mounts/hello", json={"type": "hello"})
        assert r.status_code == 204, r.text
        r = s.req("GET", "hello/greet/world")
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"text": "hello, world"}
    finally:
        assert s.stop() == 0
    p = subprocess.run([coffer_bin(), "plugin", "test",
                        str(tmp_path / "hello.lua")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0 and "0 failed" in out, out


def test_lua_examples_compile(srv):
    """Every ```lua block of the document is valid Lua 5.4 (compiled by
    the server's own sandboxed load)."""
    blocks = re.findall(r"```lua\n(.*?)```", doc_text(), re.S)
    assert len(blocks) > 10
    r = srv.req("POST", "apidoc/compile", json={"chunks": blocks})
    assert r.status_code == 200, r.text
    errors = r.json()["data"]["errors"]
    assert not errors, "Lua examples in %s that do not compile:\n  %s" % (
        rel(DOC), "\n  ".join(errors))


def slug(heading):
    """GitHub's anchor for a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_internal_links_resolve():
    """Every (#anchor) link of the document names one of its headings."""
    doc = doc_text()
    anchors = {slug(re.sub(r"^#+\s", "", line))
               for line in doc.split("\n") if re.match(r"^#+\s", line)}
    broken = {m.group(1): line_of(doc, m.start())
              for m in re.finditer(r"\]\(#([^)]+)\)", doc)
              if m.group(1) not in anchors}
    assert not broken, "links to missing headings in %s: %s" % (
        rel(DOC), ", ".join("#%s (line %d)" % kv for kv in sorted(broken.items())))
