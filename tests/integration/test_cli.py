"""The `coffer` CLI against a live server, compared with the Vault CLI's
output: `Key/Value` tables, `Success! ...` messages, -format=json, -field,
errors on stderr with exit code 2 (1 for usage errors)."""

import json
import re
import uuid

import pytest


def rows(text):
    """Parses a Key/Value table into a dict (first column -> rest)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\S.*?)\s{2,}(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def ok(res):
    assert res.rc == 0, "rc=%d\nstdout=%s\nstderr=%s" % res
    return res


def uniq(p):
    return "%s-%s" % (p, uuid.uuid4().hex[:8])


# ------------------------------------------------------------------ status --

def test_status(server):
    res = ok(server.cli("status"))
    assert res.stdout.splitlines()[0].split() == ["Key", "Value"]
    t = rows(res.stdout)
    assert t.get("Seal Type") == "shamir", res.stdout
    assert t.get("Initialized") == "true"
    assert t.get("Sealed") == "false"
    assert t.get("Version")
    assert t.get("HA Enabled") == "false"


def test_status_json(server):
    res = ok(server.cli("status", "-format=json"))
    d = json.loads(res.stdout)
    assert d["sealed"] is False
    assert d["initialized"] is True


def test_status_unreachable(server):
    # Vault's status returns 1 when it cannot get the seal status (2 is
    # reserved for "sealed").
    res = server.cli("status", env={"VAULT_ADDR": "http://127.0.0.1:1"})
    assert res.rc == 1, res
    assert res.stderr.startswith("Error checking seal status: "), res
    assert res.stdout == ""


def test_read_unreachable(server):
    res = server.cli("read", "secret/data/x", env={"VAULT_ADDR": "http://127.0.0.1:1"})
    assert res.rc == 2, res
    assert res.stderr.startswith("Error reading secret/data/x: "), res


# ------------------------------------------------------- read/write/list/delete --

def test_write_read_list_delete(server, kv1):
    res = ok(server.cli("write", kv1 + "/app", "user=alice", "password=s3cret"))
    assert res.stdout.strip() == "Success! Data written to: %s/app" % kv1

    res = ok(server.cli("read", kv1 + "/app"))
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["Key", "Value"]
    assert lines[1].split() == ["---", "-----"]
    t = rows(res.stdout)
    assert t["user"] == "alice"
    assert t["password"] == "s3cret"
    assert t["refresh_interval"] == "768h"

    res = ok(server.cli("read", "-field=user", kv1 + "/app"))
    assert res.stdout.strip() == "alice"
    res = ok(server.cli("read", "-format=json", kv1 + "/app"))
    d = json.loads(res.stdout)
    assert d["data"] == {"user": "alice", "password": "s3cret"}
    assert d["lease_duration"] == 2764800

    ok(server.cli("write", kv1 + "/other", "a=b"))
    res = ok(server.cli("list", kv1))
    lines = res.stdout.splitlines()
    assert lines[:2] == ["Keys", "----"]
    assert lines[2:] == ["app", "other"]
    res = ok(server.cli("list", "-format=json", kv1 + "/"))
    assert json.loads(res.stdout) == ["app", "other"]

    res = ok(server.cli("delete", kv1 + "/app"))
    assert res.stdout.strip() == "Success! Data deleted (if it existed) at: %s/app" % kv1
    res = server.cli("read", kv1 + "/app")
    assert res.rc == 2
    assert res.stderr.strip() == "No value found at %s/app" % kv1


def test_write_from_file_and_stdin(server, kv1, tmp_path):
    f = tmp_path / "cert.pem"
    f.write_text("-----BEGIN-----\nabc\n-----END-----\n")
    ok(server.cli("write", kv1 + "/file", "cert=@%s" % f, "plain=x"))
    d = server.req("GET", kv1 + "/file").json()["data"]
    assert d == {"cert": "-----BEGIN-----\nabc\n-----END-----\n", "plain": "x"}

    ok(server.cli("write", kv1 + "/stdin", "-", stdin='{"n": 5, "s": "t"}'))
    assert server.req("GET", kv1 + "/stdin").json()["data"] == {"n": 5, "s": "t"}


def test_write_values_are_strings(server, kv1):
    ok(server.cli("write", kv1 + "/s", "n=5", "b=true"))
    assert server.req("GET", kv1 + "/s").json()["data"] == {"n": "5", "b": "true"}


def test_write_requires_data(server, kv1):
    res = server.cli("write", kv1 + "/empty")
    assert res.rc == 1, res
    assert "Must supply data or use -force" in res.stderr


def test_read_missing_arg_is_usage_error(server):
    res = server.cli("read")
    assert res.rc == 1, res
    assert res.stderr.strip()


def test_list_missing(server, kv1):
    res = server.cli("list", kv1 + "/nothing")
    assert res.rc == 2
    assert "No value found at" in res.stderr


def test_api_error_text(server):
    res = server.cli("read", "secret/data/x", token="garbage")
    assert res.rc == 2, res
    err = res.stderr
    assert err.startswith("Error reading secret/data/x: Error making API request."), err
    assert "URL: GET %s/v1/secret/data/x" % server.addr in err
    assert "Code: 403. Errors:" in err
    assert "* permission denied" in err
    assert res.stdout == ""


def test_write_error_text(server):
    res = server.cli("write", "no-such-mount/x", "a=b")
    assert res.rc == 2, res
    assert res.stderr.startswith("Error writing data to no-such-mount/x: "), res.stderr
    assert "Code: 404. Errors:" in res.stderr
    assert 'no handler for route "no-such-mount/x"' in res.stderr


def test_coffer_env_names(server, kv1):
    server.req("PUT", kv1 + "/env", json={"v": "1"})
    env = {"COFFER_ADDR": server.addr, "COFFER_TOKEN": server.token,
           "VAULT_ADDR": "", "VAULT_TOKEN": ""}
    res = server.cli("read", "-field=v", kv1 + "/env", env=env)
    assert res.rc == 0, res
    assert res.stdout.strip() == "1"


# ----------------------------------------------------------------- secrets --

def test_secrets_enable(server):
    path = uniq("cli")
    res = server.cli("secrets", "enable", "-path=" + path,
                     "-description=from the cli", "kv")
    try:
        assert res.rc == 0, res
        assert res.stdout.strip() == \
            "Success! Enabled the kv secrets engine at: %s/" % path
        entry = server.req("GET", "sys/mounts").json()["data"][path + "/"]
        assert entry["type"] == "kv"
        assert entry["description"] == "from the cli"
    finally:
        server.unmount(path)


def test_secrets_list_tune_disable(server):
    # The mount is made through the API so that list/tune/disable are
    # tested on their own.
    path = uniq("cli")
    server.mount("kv", path, description="from the cli")

    res = ok(server.cli("secrets", "list"))
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["Path", "Type", "Accessor", "Description"]
    assert lines[1].split() == ["----", "----", "--------", "-----------"]
    mine = [l for l in lines if l.startswith(path + "/")]
    assert len(mine) == 1
    cols = mine[0].split(None, 3)
    assert cols[1] == "kv"
    assert re.match(r"^kv_[0-9a-f]{8}$", cols[2])
    assert cols[3] == "from the cli"

    res = ok(server.cli("secrets", "list", "-format=json"))
    d = json.loads(res.stdout)
    assert d[path + "/"]["type"] == "kv"

    res = ok(server.cli("secrets", "tune", "-default-lease-ttl=1h",
                        "-max-lease-ttl=2h", path + "/"))
    assert res.stdout.strip() == "Success! Tuned the secrets engine at: %s/" % path
    d = server.req("GET", "sys/mounts/%s/tune" % path).json()["data"]
    assert d["default_lease_ttl"] == 3600 and d["max_lease_ttl"] == 7200

    res = ok(server.cli("secrets", "disable", path))
    assert res.stdout.strip() == \
        "Success! Disabled the secrets engine (if it existed) at: %s/" % path
    assert path + "/" not in server.req("GET", "sys/mounts").json()["data"]


@pytest.mark.parametrize("args,version", [
    (["-version=2", "kv"], "2"), (["kv-v2"], "2"), (["-version=1", "kv"], "1")])
def test_secrets_enable_versions(server, args, version):
    path = uniq("cliv")
    ok(server.cli("secrets", "enable", "-path=" + path, *args))
    try:
        entry = server.req("GET", "sys/mounts").json()["data"][path + "/"]
        assert entry["type"] == "kv"
        assert (entry["options"] or {}).get("version", "1") == version
    finally:
        server.unmount(path)


def test_secrets_enable_default_path(server):
    # Without -path the type is the path; kv is free on a dev server.
    res = server.cli("secrets", "enable", "kv")
    try:
        assert res.rc == 0, res
        assert res.stdout.strip() == "Success! Enabled the kv secrets engine at: kv/"
    finally:
        server.unmount("kv")


def test_secrets_enable_errors(server):
    res = server.cli("secrets", "enable", "-path=secret", "kv")
    assert res.rc == 2, res
    assert res.stderr.startswith("Error enabling: Error making API request."), res.stderr
    assert "Code: 400. Errors:" in res.stderr
    assert "* path is already in use at secret/" in res.stderr

    res = server.cli("secrets", "enable", "-path=" + uniq("x"), "no-such-type")
    assert res.rc == 2, res
    assert "Error enabling" in res.stderr

    res = server.cli("secrets", "disable", "sys")
    assert res.rc == 2, res
    assert "cannot unmount" in res.stderr


# ---------------------------------------------------------------------- kv --

def test_kv_v2_put_get_list_delete(server):
    k = uniq("clikv")
    res = ok(server.cli("kv", "put", "secret/" + k, "a=1", "b=two"))
    assert "secret/data/" + k in res.stdout
    t = rows(res.stdout)
    assert t["version"] == "1"
    assert "created_time" in t
    assert t["destroyed"] == "false"

    res = ok(server.cli("kv", "put", "secret/" + k, "a=2"))
    assert rows(res.stdout)["version"] == "2"

    res = ok(server.cli("kv", "get", "secret/" + k))
    assert re.search(r"^=+ Secret Path =+$", res.stdout, re.M), res.stdout
    assert re.search(r"^=+ Metadata =+$", res.stdout, re.M), res.stdout
    assert re.search(r"^=+ Data =+$", res.stdout, re.M), res.stdout
    t = rows(res.stdout)
    assert t["a"] == "2"
    assert t["version"] == "2"
    res = ok(server.cli("kv", "get", "-version=1", "secret/" + k))
    assert rows(res.stdout)["a"] == "1"

    res = ok(server.cli("kv", "get", "-field=a", "secret/" + k))
    assert res.stdout.strip() == "2"
    res = ok(server.cli("kv", "get", "-format=json", "secret/" + k))
    d = json.loads(res.stdout)
    assert d["data"]["data"] == {"a": "2"}
    assert d["data"]["metadata"]["version"] == 2

    res = ok(server.cli("kv", "list", "secret/"))
    assert k in res.stdout.splitlines()[2:]

    res = ok(server.cli("kv", "delete", "secret/" + k))
    assert res.stdout.strip() == \
        "Success! Data deleted (if it existed) at: secret/data/%s" % k
    r = server.req("GET", "secret/data/" + k)
    assert r.status_code == 404


def test_kv_v2_mount_flag(server):
    k = uniq("mflag")
    ok(server.cli("kv", "put", "-mount=secret", k, "x=y"))
    res = ok(server.cli("kv", "get", "-mount=secret", "-field=x", k))
    assert res.stdout.strip() == "y"


def test_kv_v2_get_missing(server):
    res = server.cli("kv", "get", "secret/definitely-missing-xyz")
    assert res.rc == 2, res
    assert res.stderr.strip() == "No value found at secret/data/definitely-missing-xyz"


def test_kv_v1_put_get_list_delete(server, kv1):
    res = ok(server.cli("kv", "put", kv1 + "/a", "k=v"))
    assert res.stdout.strip() == "Success! Data written to: %s/a" % kv1
    res = ok(server.cli("kv", "get", kv1 + "/a"))
    t = rows(res.stdout)
    assert t["k"] == "v"
    res = ok(server.cli("kv", "get", "-field=k", kv1 + "/a"))
    assert res.stdout.strip() == "v"
    res = ok(server.cli("kv", "list", kv1))
    assert res.stdout.splitlines() == ["Keys", "----", "a"]
    res = ok(server.cli("kv", "delete", kv1 + "/a"))
    assert res.stdout.strip() == "Success! Data deleted (if it existed) at: %s/a" % kv1
    res = server.cli("kv", "get", kv1 + "/a")
    assert res.rc == 2
    assert res.stderr.strip() == "No value found at %s/a" % kv1


def test_kv_put_requires_data(server):
    res = server.cli("kv", "put", "secret/" + uniq("nodata"))
    assert res.rc == 1, res
    assert res.stderr.strip()


# ------------------------------------------------------------------ tokens --

def test_token_create_lookup_revoke(server):
    res = ok(server.cli("token", "create", "-policy=dev", "-policy=ops", "-ttl=1h",
                        "-display-name=cli"))
    t = rows(res.stdout)
    tok = t["token"]
    assert tok.startswith("hvs.")
    assert re.match(r"^[0-9A-Za-z]{24}$", t["token_accessor"])
    assert t["token_duration"] == "1h"
    assert t["token_renewable"] == "true"
    assert t["token_policies"] == '["default" "dev" "ops"]'

    res = ok(server.cli("token", "lookup", tok))
    t = rows(res.stdout)
    assert t["id"] == tok
    assert t["display_name"] == "token-cli"
    assert t["policies"] == "[default dev ops]"
    assert t["path"] == "auth/token/create"

    res = ok(server.cli("token", "lookup", "-format=json", tok))
    assert json.loads(res.stdout)["data"]["id"] == tok

    # lookup of the caller's own token
    res = ok(server.cli("token", "lookup", token=tok))
    assert rows(res.stdout)["id"] == tok

    res = ok(server.cli("token", "revoke", tok))
    assert res.stdout.strip() == "Success! Revoked token (if it existed)"
    res = server.cli("token", "lookup", tok)
    assert res.rc == 2
    assert "bad token" in res.stderr


def test_token_create_json_and_field(server):
    res = ok(server.cli("token", "create", "-policy=dev", "-format=json"))
    d = json.loads(res.stdout)
    assert d["auth"]["client_token"].startswith("hvs.")
    assert d["auth"]["policies"] == ["default", "dev"]
    res = ok(server.cli("token", "create", "-policy=dev", "-field=token"))
    tok = res.stdout.strip()
    assert tok.startswith("hvs.")
    assert server.req("GET", "auth/token/lookup-self", token=tok).status_code == 200


def test_token_revoke_self(server):
    tok = server.client.auth.token.create(policies=["dev"], ttl="1h")["auth"]["client_token"]
    res = ok(server.cli("token", "revoke", "-self", token=tok))
    assert res.stdout.strip() == "Success! Revoked token (if it existed)"
    assert server.req("GET", "auth/token/lookup-self", token=tok).status_code == 403


def test_cli_garbage_token(server):
    res = server.cli("token", "lookup", token="garbage")
    assert res.rc == 2
    assert "permission denied" in res.stderr
