"""KV v2 under concurrent writers: versions are never lost and
check-and-set lets exactly one of many racing writers win."""

import concurrent.futures
import uuid


def test_parallel_writes_keep_every_version(server):
    key = "secret/data/race-" + uuid.uuid4().hex[:8]

    def write(i):
        return server.req("PUT", key, json={"data": {"i": i}}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        codes = list(ex.map(write, range(100)))
    assert codes == [200] * 100
    meta = server.req("GET", key.replace("/data/", "/metadata/")).json()
    assert meta["data"]["current_version"] == 100


def test_check_and_set_has_one_winner(server):
    key = "secret/data/cas-" + uuid.uuid4().hex[:8]
    assert server.req("PUT", key, json={"data": {"v": 0}}).status_code == 200

    def write(i):
        return server.req("PUT", key, json={"data": {"i": i},
                                            "options": {"cas": 1}}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        codes = list(ex.map(write, range(40)))
    assert codes.count(200) == 1
    assert codes.count(400) == 39
