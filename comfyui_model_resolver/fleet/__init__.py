"""Fleets: many hosts, one models volume, Redis as the engine (CMR_REDIS_URL).

    queue.py    FleetQueue: the volume's jobs, leases and hand-out in Redis (knows no downloads)
    scripts.py  its atomic Lua scripts, and the key layout
    connect.py  the Redis client, and telling "Redis is away" from other errors
    link.py     FleetLink: the download manager's side (claim, leases, reconcile, controls)
    view.py     FleetView: every host's jobs as this host shows them (list, SSE)
    lease.py    Leases: the leases of the jobs this host runs, their fencing, a lost job
    reconcile.py  Reconciler: putting this host's jobs back into Redis after an outage

The download manager builds a FleetLink when CMR_REDIS_URL is set; the single-machine default
never imports this package.
"""
