#!/bin/sh
# The dynamic PostgreSQL walkthrough: enable the database engine, point it
# at a PostgreSQL server, and define a role whose users get the privileges
# of a group role.
#
#   VAULT_ADDR, VAULT_TOKEN   the Coffer server and a token that may mount
#   PGHOST PGPORT PGDATABASE  where PostgreSQL listens (default 127.0.0.1:5432/myapp)
#   PGUSER PGPASSWORD         a PostgreSQL user allowed to CREATE ROLE
#   COFFER                    the coffer binary (default build/coffer)
#
# The database needs a group role holding the privileges the generated users
# should get (here app_readonly). Granting that group, rather than granting
# table privileges to each user, scales: PostgreSQL refuses new per-user
# grants on a table once about 2,440 users hold one (the table's ACL must fit
# in a page), and concurrent per-table GRANTs conflict with each other.
set -eu
coffer=${COFFER:-build/coffer}
host=${PGHOST:-127.0.0.1}
port=${PGPORT:-5432}
db=${PGDATABASE:-myapp}
user=${PGUSER:-postgres}
password=${PGPASSWORD:-postgres}

"$coffer" secrets enable database
"$coffer" write database/config/myapp \
    plugin_name="postgresql-database-plugin" \
    connection_url="postgresql://{{username}}:{{password}}@$host:$port/$db?sslmode=disable" \
    username="$user" password="$password" \
    allowed_roles="my-role, readonly"
"$coffer" write database/roles/my-role db_name=myapp \
    creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT app_readonly TO \"{{name}}\";" \
    default_ttl="5m" max_ttl="24h"
