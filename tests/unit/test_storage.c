/*
 * test_storage.c - the storage interface over the in-memory backend.
 *
 * The contract cases every backend must pass live in storage_contract.h
 * (test_storage_sqlite.c and test_storage_pg.c run the same list); this
 * file runs them against inmem.
 */
#include "../../src/storage.c"

#include "storage_contract.h"

static struct storage *fresh_inmem(void)
{
    return storage_inmem_new();
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    contract = (struct contract_backend){"inmem", fresh_inmem, 20000};
    contract_run();
    return HARNESS_DONE();
}
