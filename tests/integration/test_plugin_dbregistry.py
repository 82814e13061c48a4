"""Database plugins come from a registry, not a list in the engine.

A Lua file in the plugin directory registers a plugin with
coffer.database_plugin{...}; the database engine then accepts its
plugin_name, creates users with its username template on the C driver it
names, and revokes them. Registrations that break the interface stop the
server at start-up with file:line.
"""

import os
import shutil
import tempfile

import pytest

from conftest import Server
from pgcluster import PgCluster

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGINS = os.path.join(HERE, "data", "plugin_dbregistry")
CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';")


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def srv(pg):
    s = Server(extra_args=["-dev-plugin-dir=" + PLUGINS])
    yield s
    assert s.stop() == 0, s.stderr_text()[-4000:]


@pytest.fixture(scope="module")
def mount(srv, pg):
    r = srv.req("POST", "sys/mounts/regdb", json={"type": "database"})
    assert r.status_code == 204, r.text
    r = srv.req("POST", "regdb/config/app", json={
        "plugin_name": "prefixed-postgresql-plugin",
        "connection_url": pg.url(templated=True),
        "username": "postgres", "password": "postgres",
        "allowed_roles": "r1"})
    assert r.status_code in (200, 204), r.text
    r = srv.req("POST", "regdb/roles/r1", json={
        "db_name": "app", "creation_statements": CREATE,
        "default_ttl": "5m"})
    assert r.status_code == 204, r.text
    return "regdb"


def test_registered_plugin_creates_and_revokes_users(srv, pg, mount):
    r = srv.req("GET", mount + "/creds/r1")
    assert r.status_code == 200, r.text
    body = r.json()
    user = body["data"]["username"]
    assert user.startswith("reg-r1-"), user
    assert pg.query("SELECT 1 FROM pg_roles WHERE rolname = %s", user)
    r = srv.req("PUT", "sys/leases/revoke", json={"lease_id": body["lease_id"]})
    assert r.status_code == 204, r.text
    assert not pg.query("SELECT 1 FROM pg_roles WHERE rolname = %s", user)


def test_config_read_names_the_registered_plugin(srv, mount):
    r = srv.req("GET", mount + "/config/app")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["plugin_name"] == "prefixed-postgresql-plugin"


def test_unknown_plugin_lists_the_registered_ones(srv, mount):
    r = srv.req("POST", mount + "/config/other", json={
        "plugin_name": "nope-database-plugin",
        "connection_url": "postgresql://x@127.0.0.1:1/x"})
    assert r.status_code == 400, r.text
    text = r.json()["errors"][0]
    assert 'unsupported database plugin "nope-database-plugin"' in text
    assert "postgresql-database-plugin" in text
    assert "prefixed-postgresql-plugin" in text


BAD = {
    "duplicate.lua": ('local pg = require("coffer.dbplugin_postgresql")\n'
                      'coffer.database_plugin(pg)\n',
                      "duplicate.lua:2:", "already registered"),
    "nodriver.lua": ('local pg = require("coffer.dbplugin_postgresql")\n'
                     'local p = {}\nfor k, v in pairs(pg) do p[k] = v end\n'
                     'p.name = "x-plugin"\np.driver = "oracle"\n'
                     'coffer.database_plugin(p)\n',
                     "nodriver.lua:6:", "driver must be one of: postgresql"),
    "badfield.lua": ('local pg = require("coffer.dbplugin_postgresql")\n'
                     'local p = {}\nfor k, v in pairs(pg) do p[k] = v end\n'
                     'p.name = "f-plugin"\n'
                     'p.config_fields = { tls_ca = "pem" }\n'
                     'coffer.database_plugin(p)\n',
                     "badfield.lua:6:",
                     "config_fields: field 'tls_ca' has an unknown type"),
    "badsecret.lua": ('local pg = require("coffer.dbplugin_postgresql")\n'
                      'local p = {}\nfor k, v in pairs(pg) do p[k] = v end\n'
                      'p.name = "s-plugin"\n'
                      'p.config_fields = { tls_ca = "string" }\n'
                      'p.secret_config_fields = { "tls_key" }\n'
                      'coffer.database_plugin(p)\n',
                      "badsecret.lua:7:",
                      "secret_config_fields: 'tls_key' is not in "
                      "config_fields"),
    "nofunc.lua": ('coffer.database_plugin { name = "y-plugin", '
                   'driver = "postgresql",\n default_username_template = "x",'
                   ' max_username_length = 10 }\n',
                   "nofunc.lua:1:", "connect_info must be a function"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_registration_stops_start_up_with_file_line(name):
    text, where, what = BAD[name]
    d = tempfile.mkdtemp(prefix="coffer-dbreg-")
    try:
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
        with pytest.raises(RuntimeError) as exc:
            Server(extra_args=["-dev-plugin-dir=" + d])
        msg = str(exc.value)
        assert where in msg and what in msg, msg
    finally:
        shutil.rmtree(d)


def test_plugin_field_shadowing_an_engine_field_is_refused(srv, pg, mount):
    r = srv.req("POST", mount + "/config/shadow", json={
        "plugin_name": "shadowing-postgresql-plugin",
        "connection_url": pg.url(templated=True), "username": "postgres",
        "password": "postgres", "region": "eu"})
    assert r.status_code == 500, r.text
    assert ("database plugin shadowing-postgresql-plugin declares the "
            "config field password, which the engine owns") in r.text
    assert srv.req("GET", mount + "/config/shadow").status_code == 404
    # Other plugins' configs are not disturbed by its fields.
    r = srv.req("POST", mount + "/config/plain", json={
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg.url(templated=True), "username": "postgres",
        "password": "postgres"})
    assert r.status_code in (200, 204), r.text
    d = srv.req("GET", mount + "/config/plain").json()["data"]
    assert "password" not in d["connection_details"]
