# A service that may read its database credentials and nothing else.
#   coffer policy write readonly-db examples/policies/readonly-db.hcl
path "database/creds/my-role" {
  capabilities = ["read"]
}
