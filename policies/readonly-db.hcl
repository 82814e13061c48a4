# A service that may read its database credentials and nothing else.
#   coffer policy write readonly-db policies/readonly-db.hcl
path "database/creds/my-role" {
  capabilities = ["read"]
}
