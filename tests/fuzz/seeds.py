#!/usr/bin/env python3
"""seeds.py - writes the starting corpora under tests/fuzz/corpus/<name>/.

The seeds are realistic inputs taken from the repository (policies, example
configurations, unit-test and integration-test texts) plus hand-written
edge cases. Run once; fuzzing and minimize.sh grow and trim the corpora
afterwards. Files are named by content hash, as libFuzzer names its own.
"""
import glob
import hashlib
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def put(name, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def c_strings(path):
    """String literals of a C file, adjacent ones joined, unescaped."""
    text = read(path).decode("utf-8", "replace")
    out = []
    for m in re.finditer(r'((?:"(?:[^"\\\n]|\\.)*"\s*)+)', text):
        parts = re.findall(r'"((?:[^"\\\n]|\\.)*)"', m.group(1))
        s = "".join(parts)
        try:
            s = s.encode().decode("unicode_escape").encode("latin-1")
        except (UnicodeDecodeError, UnicodeEncodeError):
            s = s.encode()
        out.append(s)
    return out


# -- http: selector byte, then the text -----------------------------------
paths = ["/v1/secret/data/app", "/v1//secret///data/./app", "/v1/a/../b",
         "/v1/sys/mounts/", "/v1/../../etc/passwd", "/v1/a/b/../../..",
         "/v1/%2e%2e/x", "/v1/auth/token/lookup-self", "/v1/.", "/v1/a/.",
         "/v1/x/..", "/", "", "/v1/cubbyhole/a b/c"]
for p in paths:
    put("http", b"\x00" + p.encode())
forms = ["username=alice&password=s3cret", "a=1&a=2&a=3", "k=%41%zz%4",
         "policies=a,b&policies=c", "=&&=x&y=", "a+b=c+d%20e", "%00=%00",
         "key=va%3Dlue&x"]
for f in forms:
    put("http", b"\x01" + f.encode())
queries = ["list=true", "list=1&a=b", "list=maybe", "a=1&a=2&a=3&b",
           "version=2&cas=0", "%6c%69%73%74=true", "x=%ZZ&y=%41"]
for q in queries:
    put("http", b"\x02" + q.encode())
bodies = ["application/json\n{\"password\":\"x\",\"ttl\":\"1h\"}",
          "application/json\nnull", "application/json\n[1,2]",
          "application/x-www-form-urlencoded\na=b&c=d",
          "application/x-www-form-urlencoded\n  {\"a\":1}",
          "text/plain\n{\"data\":{\"a\":12345678901234567890}}",
          "application/merge-patch+json\n{\"data\":{\"a\":null}}",
          "\n   ", "application/json\n{\"a\":1} trailing"]
for b in bodies:
    put("http", b"\x03" + b.encode())

# -- json: option byte (trailing allowed, depth 128), then the text ---------
docs = [s for s in c_strings("tests/unit/test_json.c")
        if s[:1] in (b"{", b"[", b'"', b"-", b"t", b"f", b"n") or
        s[:1].isdigit()]
docs += [read(p) for p in glob.glob(os.path.join(ROOT, "tests/integration/data/*.json"))]
docs += [b'{"a":1,"a":2}', b'"\\ud800\\udc00\\ud800"', b"\xff\xfe\"\xc3\x28\"",
         b"1e400", b"-0.0", b"123456789012345678901234567890",
         b"[" * 130 + b"]" * 130, b'{"n":1.5e-7,"m":[true,false,null]}',
         b"0.1,1e-07,100,1e2,-0"]
for d in docs:
    put("json", b"\x03" + d)
    put("json", b"\x02" + d)

# -- policy: the text ------------------------------------------------------
for p in glob.glob(os.path.join(ROOT, "examples/policies/*.hcl")):
    put("policy", read(p))
cases = read("tests/unit/test_policy_cases.txt").decode()
for block in re.split(r"^== ", cases, flags=re.M):
    if block.startswith("policy "):
        put("policy", block.split("\n", 1)[1])
for s in c_strings("tests/unit/test_policy.c"):
    if b"path" in s or s.startswith(b"{"):
        put("policy", s)
put("policy", 'path "secret/+/x*" {\n capabilities = ["read","list","sudo"]\n'
              ' allowed_parameters = { "*" = [], "ttl" = ["1h", 2, true] }\n'
              ' denied_parameters = { "x" = [] }\n required_parameters = ["a"]\n'
              ' min_wrapping_ttl = "1m"\n max_wrapping_ttl = 3600\n}\n')
put("policy", 'path "a" {\n  policy = <<EOT\nread\nEOT\n}\n# c\n// d\n/* e */')

# -- config: Lua configuration files ----------------------------------------
for p in glob.glob(os.path.join(ROOT, "examples/*.lua")):
    put("config", read(p))
for s in c_strings("tests/unit/test_config.c"):
    if b"storage" in s or b"listener" in s or b"=" in s:
        put("config", s)
put("config", 'listener "tcp" { address = "[::1]:8200", tls_disable = 1 }\n'
              'storage "postgresql" { connection_url = "postgres://u:p@h/db",'
              ' table = "coffer.kv" }\nworkers = 4\nlog_level = "debug"\n'
              'default_lease_ttl = "1h"\nmax_lease_ttl = 86400\n')

# -- template: selector byte; even = template, odd = values -----------------
templates = [
    '{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) '
    '(.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}',
    "{{.DisplayName}}-{{random 6}}", "{{ .RoleName | uppercase }}",
    '{{ .DisplayName | replace "-" "_" | truncate_sha256 12 }}',
    '{{- .RoleName -}} x {{ unix_time_millis }} {{ uuid }}',
    '{{ timestamp "2006-01-02T15:04:05Z07:00" }}',
    '{{ printf "%q %v %d %%" "a\\"b" 1 .RoleName }}',
    "{{ (.DisplayName | sha256) | base64 | lowercase }}", "{{", "}}{{}}",
    '{{ "unterminated }}', "{{ nosuch 1 }}", "{{ truncate -1 .x }}",
]
for t in templates:
    put("template", b"\x00" + t.encode())
values = ["alice\x1fmy-role", 'x"; alter role "userpass-x" superuser; --z'
          "\x1fr", "\x1f", "\u00e9\u00e8\x1f\x00\x01", "a" * 300 + "\x1fb"]
for i, v in enumerate(values):
    for which in range(5):
        put("template", bytes([1 + 2 * which]) + v.encode())

# -- shamir: mode byte ------------------------------------------------------
put("shamir", b"\x00#0\n#1\n#2")
put("shamir", b"\x00#0\n#0\n#3\n#4")
put("shamir", b"\x00" + b"00" * 33 + b"\n#1\n#2")
put("shamir", b"\x00" + b"QUJD" * 11 + b"\n" + b"ab" * 33 + b"\nzz\n====")
put("shamir", b"\x01\x03" + bytes(range(99)))
put("shamir", b"\x02\x05\x03\x20" + bytes(range(40)))
put("shamir", b"\x02\x00\x00\x00a")

# -- barrier: mode byte -----------------------------------------------------
env = b"\x01" + struct.pack(">I", 1) + b"n" * 12 + b"ciphertext" + b"t" * 16
put("barrier", b"\x00" + env)
put("barrier", b"\x01" + b"\x01\x00\x00\x00\x00" + b"n" * 12 + b"t" * 16)
kr = b"\x01" + struct.pack(">I", 2)
kr += struct.pack(">Iq", 1, 1700000000) + b"k" * 32
kr += struct.pack(">Iq", 2, 1700000100) + b"K" * 32
put("barrier", b"\x02" + kr)
put("barrier", b"\x02" + b"\x01\x00\x00\x00\x01" + struct.pack(">Iq", 0, 0) + b"z" * 32)
put("barrier", b"\x03\x07" + b'{"data":{"password":"hunter2"}}')
put("barrier", b"\x03\x00")
