"""Race tests for lease state changes: renew vs revoke, revoke vs revoke.

A lease that revocation answered for must be gone for good: a renewal
racing with it may fail or succeed before it, but never write the lease
back afterwards, and the engine's revoke runs exactly once per lease.
The engine below counts its revoke calls in its own storage.
"""

import concurrent.futures
import os
import tempfile
import threading

import pytest

from conftest import Server

COUNTING_ENGINE = """
local e = coffer.engine { name = "leasecount", help = "Counts revocations." }

e:path("issue", {
  fields = { count = { type = "int", default = 1 } },
  write = function(req)
    local ids = {}
    for i = 1, req.data.count do
      local lease = req:pending_lease("thing", { n = i })
      local r = lease:issue({ n = i }, { ttl = 3600, renewable = true })
      ids[#ids + 1] = r.lease_id
    end
    return { data = { lease_ids = ids } }
  end,
})

e:path("count/:n", {
  read = function(req)
    local v = req.storage:get("revoked/" .. req.params.n)
    return { data = { revoked = v and tonumber(v) or 0 } }
  end,
})

e:secret("thing", {
  revoke = function(lease)
    local key = "revoked/" .. lease.internal.n
    lease.storage:lock(key)
    local v = lease.storage:get(key)
    lease.storage:put(key, tostring((v and tonumber(v) or 0) + 1))
    return true
  end,
  renew = function() return true end,
})

return e
"""


@pytest.fixture(scope="module")
def srv():
    d = tempfile.mkdtemp(prefix="coffer-leaserace-")
    with open(os.path.join(d, "leasecount.lua"), "w") as f:
        f.write(COUNTING_ENGINE)
    s = Server(["-dev-plugin-dir=%s" % d, "-workers=16"])
    r = s.req("POST", "sys/mounts/lc", json={"type": "leasecount"})
    assert r.status_code == 204, r.text
    yield s
    s.stop()


def issue(srv, n):
    r = srv.req("POST", "lc/issue", json={"count": n})
    assert r.status_code == 200, r.text
    return r.json()["data"]["lease_ids"]


def race(calls):
    """Runs the calls at the same moment; returns their results in order."""
    gate = threading.Barrier(len(calls))

    def go(fn):
        gate.wait()
        return fn()

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as ex:
        return [f.result() for f in [ex.submit(go, c) for c in calls]]


def lookup_status(srv, lease_id):
    return srv.req("PUT", "sys/leases/lookup",
                   json={"lease_id": lease_id}).status_code


def test_renew_racing_revoke_never_resurrects_a_lease(srv, _repeat):
    ids = issue(srv, 40)
    resurrected = []
    for i, lid in enumerate(ids):
        renew = lambda: srv.req("PUT", "sys/leases/renew",
                                json={"lease_id": lid, "increment": 600})
        revoke = lambda: srv.req("PUT", "sys/leases/revoke",
                                 json={"lease_id": lid, "sync": True})
        results = race([renew, renew, revoke, renew])
        assert results[2].status_code == 204, results[2].text
        for r in (results[0], results[1], results[3]):
            assert r.status_code in (200, 400), r.text
        if lookup_status(srv, lid) != 400:
            resurrected.append(lid)
    assert resurrected == []
    # Every revocation ran exactly once; a renewal never re-created one.
    for i in range(1, len(ids) + 1):
        r = srv.req("GET", "lc/count/%d" % i)
        assert r.json()["data"]["revoked"] >= 1


def test_parallel_revokes_run_the_engine_once(srv, _repeat):
    base = {}
    ids = issue(srv, 20)
    for i in range(1, len(ids) + 1):
        base[i] = srv.req("GET", "lc/count/%d" % i).json()["data"]["revoked"]
    for lid in ids:
        revoke = lambda: srv.req("PUT", "sys/leases/revoke",
                                 json={"lease_id": lid, "sync": True})
        results = race([revoke] * 4)
        assert all(r.status_code == 204 for r in results), \
            [r.text for r in results]
        assert lookup_status(srv, lid) == 400
    for i in range(1, len(ids) + 1):
        now = srv.req("GET", "lc/count/%d" % i).json()["data"]["revoked"]
        assert now == base[i] + 1, (i, base[i], now)
