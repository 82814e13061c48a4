"""Vault password policies: sys/policies/password and their use by the
database engine (issue 13).

CRUD through curl-style requests and hvac's generic calls (this hvac has no
password-policy helpers), generation (length, alphabet, every rule, a loose
uniformity bound that cannot flake), refusals at write time with Vault's
words, hostile names, ACL, concurrency, no stale policy after a change,
and a PostgreSQL connection whose dynamic and static passwords come from a
policy (checked by logging in with them).
"""

import base64
import collections
import concurrent.futures
import uuid

import pytest

from pgcluster import PgCluster

P = "sys/policies/password/"

THREE_RULES = """
length = 24
rule "charset" {
  charset   = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 3
}
rule "charset" {
  charset   = "0123456789"
  min-chars = 4
}
"""


def name():
    return "pp-" + uuid.uuid4().hex[:10]


def put(server, n, text, **kw):
    return server.req("PUT", P + n, json={"policy": text}, **kw)


def generate(server, n, **kw):
    return server.req("GET", P + n + "/generate", **kw)


def gen_ok(server, n):
    r = generate(server, n)
    assert r.status_code == 200, r.text
    return r.json()["data"]["password"]


def charset_policy(length, *rules):
    """HCL for `length` and (charset, min_chars) rules."""
    out = ["length = %d" % length]
    for cs, mc in rules:
        out.append('rule "charset" {\n  charset = "%s"\n  min-chars = %d\n}'
                   % (cs, mc))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- CRUD --

def test_crud_with_curl_and_hvac(server):
    n = name()
    r = put(server, n, THREE_RULES)
    assert r.status_code == 204, r.text
    got = server.client.read(P + n)
    assert got["data"] == {"policy": THREE_RULES}
    assert n in server.client.list("sys/policies/password")["data"]["keys"]
    pw = server.client.read(P + n + "/generate")["data"]["password"]
    assert len(pw) == 24
    # hvac's write is a POST: same as PUT
    server.client.write(P + n, policy=charset_policy(8, ("xy", 1)))
    assert set(gen_ok(server, n)) <= {"x", "y"}
    r = server.req("DELETE", P + n)
    assert r.status_code == 204
    r = server.req("GET", P + n)
    assert r.status_code == 404
    assert r.json()["errors"] == ["policy does not exist"]
    r = generate(server, n)
    assert r.status_code == 404
    assert r.json()["errors"] == ["policy does not exist"]
    assert server.req("DELETE", P + n).status_code == 204  # idempotent
    r = server.req("LIST", "sys/policies/password")
    assert r.status_code == 404 or n not in r.json()["data"]["keys"]


def test_base64_policy_is_decoded(server):
    n = name()
    text = charset_policy(12, ("pq", 1))
    r = put(server, n, base64.b64encode(text.encode()).decode())
    assert r.status_code == 204, r.text
    assert server.req("GET", P + n).json()["data"]["policy"] == text
    assert set(gen_ok(server, n)) <= {"p", "q"}


def test_generate_only_reads(server):
    n = name()
    assert put(server, n, charset_policy(8, ("ab", 0))).status_code == 204
    r = server.req("PUT", P + n + "/generate", json={})
    assert r.status_code == 405
    r = server.req("GET", P + n + "/other")
    assert r.status_code == 400


# ---------------------------------------------------------- generation --

def test_200_passwords_keep_every_rule(server):
    n = name()
    assert put(server, n, THREE_RULES).status_code == 204
    lower, upper, digit = (set("abcdefghijklmnopqrstuvwxyz"),
                           set("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                           set("0123456789"))
    seen = set()
    for _ in range(200):
        pw = gen_ok(server, n)
        assert len(pw) == 24
        assert set(pw) <= lower | upper | digit
        assert sum(c in lower for c in pw) >= 2
        assert sum(c in upper for c in pw) >= 3
        assert sum(c in digit for c in pw) >= 4
        seen.add(pw)
    assert len(seen) == 200


@pytest.mark.once
def test_characters_are_uniform(server):
    # 200 x 100 = 20,000 characters of a 10-character alphabet: each is
    # expected 2,000 times (sd ~42); 5%..15% is a bound that never flakes
    # but catches a character never drawn or drawn twice as often. The
    # chi-square bound (df 9) of 60 has p < 1e-8.
    n = name()
    assert put(server, n, charset_policy(100, ("0123456789", 0))).status_code \
        == 204
    count = collections.Counter()
    for _ in range(200):
        count.update(gen_ok(server, n))
    total = sum(count.values())
    assert total == 20000 and set(count) == set("0123456789")
    for c, k in count.items():
        assert 0.05 * total <= k <= 0.15 * total, (c, k)
    chi2 = sum((k - 2000) ** 2 / 2000 for k in count.values())
    assert chi2 < 60, count


def test_utf8_charset_counts_code_points(server):
    n = name()
    alphabet = "äöü€😀ß"
    text = 'length = 16\nrule "charset" {\n charset = "%s"\n min-chars = 15\n}' \
        '\nrule "charset" {\n charset = "😀"\n min-chars = 1\n}\n' % alphabet
    assert put(server, n, text).status_code == 204
    for _ in range(20):
        pw = gen_ok(server, n)
        assert len(pw) == 16  # code points, not bytes
        assert set(pw) <= set(alphabet) and "😀" in pw
    # duplicates across and inside charsets are one character
    n2 = name()
    assert put(server, n2, charset_policy(10, ("aab", 1), ("ba", 1))) \
        .status_code == 204
    assert set(gen_ok(server, n2)) <= {"a", "b"}


def test_changed_policy_applies_at_once(server):
    n = name()
    for length in (8, 30, 5, 99):
        assert put(server, n, charset_policy(length, ("abc", 1))) \
            .status_code == 204
        assert len(gen_ok(server, n)) == length
    server.req("DELETE", P + n)
    assert generate(server, n).status_code == 404


def test_parallel_writes_and_generates(server):
    n = name()
    shapes = {8: set("ab"), 13: set("xyz")}
    assert put(server, n, charset_policy(8, ("ab", 1))).status_code == 204

    def writer(i):
        length = 8 if i % 2 else 13
        cs = "ab" if length == 8 else "xyz"
        return put(server, n, charset_policy(length, (cs, 1))).status_code

    def reader(_):
        pw = gen_ok(server, n)
        return len(pw), set(pw)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        ws = [ex.submit(writer, i) for i in range(40)]
        rs = [ex.submit(reader, i) for i in range(80)]
        assert all(f.result() == 204 for f in ws)
        for f in rs:
            length, chars = f.result()
            assert length in shapes and chars <= shapes[length]


# ------------------------------------------------------------ refusals --

REFUSED = [
    ("", "missing policy"),
    ('rule "charset" { charset = "ab" }', "length must be > 0"),
    ("length = 3\n" 'rule "charset" { charset = "ab" }',
     "passwords must be between 4 and 100 characters"),
    ("length = 101\n" 'rule "charset" { charset = "ab" }',
     "passwords must be between 4 and 100 characters"),
    ("length = 8.5\n" 'rule "charset" { charset = "ab" }', "whole number"),
    ("length = 10", "no charset specified"),
    ('length = 10\nrule "charset" { charset = "" }', "charset is empty"),
    ('length = 10\nrule "charset" {\n charset = "ab"\n min-chars = 6\n}\n'
     'rule "charset" {\n charset = "cd"\n min-chars = 5\n}',
     "specified rules require at least 11 characters but 10 is specified"),
    ('length = 10\nrule "charset" {\n charset = "ab"\n min-chars = -1\n}',
     "min-chars must be a whole number"),
    ('length = 10\nrule "charset" {\n charset = "ab"\n bogus = 1\n}',
     'unknown key \\"bogus\\"'),
    ('length = 10\ncolour = "red"\nrule "charset" { charset = "ab" }',
     'unknown key \\"colour\\"'),
    ('length = 10\nrule "unicorn" { charset = "ab" }',
     "unrecognized rule type unicorn"),
    ('length = 10\n\nrule "charset" {\n charset = "ab"\n min-chars = \n}',
     "line 6: expected a value"),
    ('length = 10\nrule "charset" { charset = "ab\\u0000" }', "NUL"),
    ('length = 10\nrule "charset" { charset = "a\\tb" }',
     "non-printable character in charset"),
    ('length = 10\nrule "charset" { charset = "a\\u200bb" }',
     "non-printable character in charset"),
    ('length = 10\nrule "charset" { charset = "%s" }'
     % "".join(chr(0x4E00 + i) for i in range(300)), "charset is too long"),
    # possible on paper, hopeless in practice: 30 'a's among 62 characters
    ('length = 40\nrule "charset" { charset = "%s" }\n'
     'rule "charset" {\n charset = "a"\n min-chars = 30\n}'
     % "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
     "are the rules impossible?"),
]


@pytest.mark.parametrize("text,why", REFUSED)
def test_bad_policy_refused_with_reason(server, text, why):
    n = name()
    r = put(server, n, text)
    assert r.status_code == 400, r.text
    assert why in r.text, r.text
    assert server.req("GET", P + n).status_code == 404


def test_raw_bytes_refused_through_base64(server):
    for raw in (b'length = 8\nrule "charset" { charset = "a\xffb" }',
                b'length = 8\nrule "charset" { charset = "a\x00b" }'):
        n = name()
        r = put(server, n, base64.b64encode(raw).decode())
        assert r.status_code == 400, r.text
        assert "invalid password policy" in r.text
        assert server.req("GET", P + n).status_code == 404


@pytest.mark.parametrize("bad", ["..%2fsecret", "a%2fb", "a" * 300,
                                 "a%20b", "%2e%2e", "x%0ay"])
def test_hostile_names_refused(server, bad):
    text = charset_policy(8, ("ab", 1))
    r = server.req("PUT", P + bad, json={"policy": text})
    assert r.status_code in (301, 400, 404, 405), r.text
    assert r.status_code != 204
    r = server.req("LIST", "sys/policies/password")
    keys = r.json()["data"]["keys"] if r.status_code == 200 else []
    assert all(k.startswith("pp-") for k in keys), keys


def test_acl_applies(server):
    n = name()
    assert put(server, n, charset_policy(8, ("ab", 1))).status_code == 204
    pol = "pw-gen-" + uuid.uuid4().hex[:6]
    r = server.req("PUT", "sys/policies/acl/" + pol, json={
        "policy": 'path "sys/policies/password/%s/generate" '
                  '{ capabilities = ["read"] }' % n})
    assert r.status_code == 204, r.text
    tok = server.client.auth.token.create(policies=[pol])["auth"]
    tok = tok["client_token"]
    assert generate(server, n, token=tok).status_code == 200
    assert put(server, n, charset_policy(8, ("cd", 1)), token=tok) \
        .status_code == 403
    assert server.req("GET", P + n, token=tok).status_code == 403
    assert server.req("DELETE", P + n, token=tok).status_code == 403
    assert generate(server, n, token=None).status_code in (400, 403)


# --------------------------------------------------- the database engine --

CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';")
DB_ALPHA = "abcdefghjkmnpqrstuvwxyz"
DB_DIGITS = "23456789"


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def dbmount(server, pg):
    path = server.mount("database")
    pol = "pp-db-" + uuid.uuid4().hex[:6]
    assert put(server, pol, charset_policy(
        32, (DB_ALPHA, 4), (DB_DIGITS, 6))).status_code == 204
    r = server.req("PUT", path + "/config/pg", json={
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg.url(templated=True),
        "username": "postgres", "password": "postgres",
        "allowed_roles": "*", "password_policy": pol})
    assert r.status_code in (200, 204), r.text
    r = server.req("PUT", path + "/roles/app", json={
        "db_name": "pg", "creation_statements": CREATE,
        "default_ttl": "5m"})
    assert r.status_code == 204, r.text
    yield path, pol
    server.unmount(path)


def matches_db_policy(pw):
    return (len(pw) == 32 and set(pw) <= set(DB_ALPHA + DB_DIGITS) and
            sum(c in DB_ALPHA for c in pw) >= 4 and
            sum(c in DB_DIGITS for c in pw) >= 6)


def test_config_reads_back_password_policy(server, dbmount):
    path, pol = dbmount
    r = server.req("GET", path + "/config/pg")
    assert r.json()["data"]["password_policy"] == pol


def test_dynamic_creds_follow_the_policy(server, pg, dbmount):
    path, _ = dbmount
    for _ in range(3):
        r = server.req("GET", path + "/creds/app")
        assert r.status_code == 200, r.text
        d = r.json()["data"]
        assert matches_db_policy(d["password"]), d["password"]
        assert pg.can_login(d["username"], d["password"])


def test_static_rotation_follows_the_policy(server, pg, dbmount):
    path, _ = dbmount
    user = "svc_" + uuid.uuid4().hex[:8]
    pg.query('CREATE ROLE "%s" LOGIN PASSWORD \'initial\'' % user)
    r = server.req("PUT", path + "/static-roles/" + user, json={
        "db_name": "pg", "username": user, "rotation_period": "1h"})
    assert r.status_code == 204, r.text
    c = server.req("GET", path + "/static-creds/" + user).json()["data"]
    assert matches_db_policy(c["password"]), c["password"]
    assert pg.can_login(user, c["password"])


def test_deleted_policy_fails_creds_clearly(server, pg):
    path = server.mount("database")
    pol = name()
    try:
        assert put(server, pol, charset_policy(20, ("abcdef", 1))) \
            .status_code == 204
        # Vault checks the name only when it generates: a config naming a
        # policy that does not exist yet is accepted.
        r = server.req("PUT", path + "/config/pg", json={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg.url(templated=True),
            "username": "postgres", "password": "postgres",
            "allowed_roles": "*", "password_policy": pol})
        assert r.status_code in (200, 204), r.text
        r = server.req("PUT", path + "/roles/app", json={
            "db_name": "pg", "creation_statements": CREATE})
        assert r.status_code == 204, r.text
        d = server.req("GET", path + "/creds/app").json()["data"]
        assert set(d["password"]) <= set("abcdef") and len(d["password"]) == 20
        assert server.req("DELETE", P + pol).status_code == 204
        before = server.req("LIST", "sys/leases/lookup/" + path + "/creds/app")
        r = server.req("GET", path + "/creds/app")
        assert r.status_code == 500, r.text
        assert "unable to generate password: no password policy found" \
            in r.text
        after = server.req("LIST", "sys/leases/lookup/" + path + "/creds/app")
        assert after.json()["data"]["keys"] == before.json()["data"]["keys"]
        r = server.req("PUT", path + "/rotate-root/pg", json={})
        assert r.status_code == 500 and "no password policy found" in r.text
    finally:
        server.unmount(path)


# ------------------------------- a role's own policy (credential_config) --

ROLE_ALPHA = "xyzXYZ"
ROLE_DIGITS = "0189"


def matches_role_policy(pw):
    return (len(pw) == 24 and set(pw) <= set(ROLE_ALPHA + ROLE_DIGITS) and
            sum(c in ROLE_DIGITS for c in pw) >= 5)


@pytest.fixture(scope="module")
def rolepol(server):
    pol = "pp-role-" + uuid.uuid4().hex[:6]
    assert put(server, pol, charset_policy(
        24, (ROLE_ALPHA, 1), (ROLE_DIGITS, 5))).status_code == 204
    return pol


def test_role_policy_overrides_the_connection(server, pg, dbmount, rolepol):
    path, _ = dbmount
    r = server.req("PUT", path + "/roles/own", json={
        "db_name": "pg", "creation_statements": CREATE,
        "credential_type": "password",
        "credential_config": {"password_policy": rolepol}})
    assert r.status_code == 204, r.text
    got = server.req("GET", path + "/roles/own").json()["data"]
    assert got["credential_config"] == {"password_policy": rolepol}
    for _ in range(2):
        d = server.req("GET", path + "/creds/own").json()["data"]
        assert matches_role_policy(d["password"]), d["password"]
        assert pg.can_login(d["username"], d["password"])
    # the role without one still follows the connection's policy
    d = server.req("GET", path + "/creds/app").json()["data"]
    assert matches_db_policy(d["password"]), d["password"]


def test_static_role_policy_overrides_the_connection(server, pg, dbmount,
                                                     rolepol):
    path, _ = dbmount
    user = "svc_" + uuid.uuid4().hex[:8]
    pg.query('CREATE ROLE "%s" LOGIN PASSWORD \'initial\'' % user)
    r = server.req("PUT", path + "/static-roles/" + user, json={
        "db_name": "pg", "username": user, "rotation_period": "1h",
        "credential_config": {"password_policy": rolepol}})
    assert r.status_code == 204, r.text
    got = server.req("GET", path + "/static-roles/" + user).json()["data"]
    assert got["credential_config"] == {"password_policy": rolepol}
    c = server.req("GET", path + "/static-creds/" + user).json()["data"]
    assert matches_role_policy(c["password"]), c["password"]
    assert pg.can_login(user, c["password"])
    r = server.req("PUT", path + "/rotate-role/" + user, json={})
    assert r.status_code in (200, 204), r.text
    c2 = server.req("GET", path + "/static-creds/" + user).json()["data"]
    assert c2["password"] != c["password"]
    assert matches_role_policy(c2["password"]), c2["password"]


@pytest.mark.parametrize("body, words", [
    ({"credential_config": {"password_polcy": "x"}},
     'unknown field "password_polcy"'),
    ({"credential_config": {"password_policy": 7}},
     "password_policy must be a string"),
    ({"credential_config": {"password_policy": {"a": 1}}},
     "password_policy must be a string"),
    ({"credential_type": "rsa_private_key"}, "is not supported"),
])
def test_bad_credential_config_refused(server, dbmount, body, words):
    path, _ = dbmount
    role = "bad-" + uuid.uuid4().hex[:6]
    r = server.req("PUT", path + "/roles/" + role,
                   json=dict({"db_name": "pg", "creation_statements": CREATE},
                             **body))
    assert r.status_code == 400, r.text
    assert words in r.json()["errors"][0]
    assert server.req("GET", path + "/roles/" + role).status_code == 404
    # an existing role is not changed by a refused update
    r = server.req("PUT", path + "/roles/app", json=body)
    assert r.status_code == 400, r.text
    got = server.req("GET", path + "/roles/app").json()["data"]
    assert "credential_config" not in got
    assert got["credential_type"] == "password"


def test_deleted_role_policy_fails_creds_without_a_lease(server, dbmount):
    path, _ = dbmount
    pol = name()
    assert put(server, pol, charset_policy(20, ("abc", 1))).status_code == 204
    r = server.req("PUT", path + "/roles/gone", json={
        "db_name": "pg", "creation_statements": CREATE,
        "credential_config": {"password_policy": pol}})
    assert r.status_code == 204, r.text
    assert server.req("DELETE", P + pol).status_code == 204
    r = server.req("GET", path + "/creds/gone")
    assert r.status_code == 500, r.text
    assert "unable to generate password: no password policy found" in r.text
    r = server.req("LIST", "sys/leases/lookup/" + path + "/creds/gone")
    assert r.status_code == 404 or r.json()["data"]["keys"] == []
