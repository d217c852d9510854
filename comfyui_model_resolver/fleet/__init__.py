"""Fleets: many hosts, one models volume, Redis as the engine (CMR_REDIS_URL).

    queue.py    FleetQueue: the volume's jobs, leases and hand-out in Redis (knows no downloads)
    scripts.py  its atomic Lua scripts, and the key layout
    connect.py  the Redis client, and telling "Redis is away" from other errors

The download manager uses them through downloads/fleet.py; the single-machine default (no
CMR_REDIS_URL) never imports this package.
"""
