"""The shared resolve cache: hosts of a fleet (CMR_REDIS_URL) share one response cache in Redis, so
N hosts resolving the same workflows cost the upstream about one host's requests.

Three Resolvers (each with its own data dir, as three hosts) resolve the same community workflows
(tests/fakes/community: the Hub and Civitai fakes, real HTTP on loopback) against one real
redis-server; the fakes' logs count every request, pre-flight HEADs included. Without Redis each
host has its own cache and pays the whole cost again. The figures are printed (`-s`)."""
from __future__ import annotations

import json

from comfyui_model_resolver.service import build_resolver
from fakes.civitai import FakeCivitai
from fakes.community import build_world
from fakes.community.workflows import build_workflows
from fakes.hub import FakeHub
from support.redis_server import RedisServer
from support.sources import make_settings

WORKFLOWS = 12
HOSTS = 3


def _upstream(hub, civ) -> int:
    return len(hub.requests()) + len(civ.requests())


async def _resolve_all(settings, workflows: dict) -> int:
    resolver = await build_resolver(settings)
    models = 0
    try:
        for name, wf in workflows.items():
            models += len((await resolver.resolve(wf, name)).models)
    finally:
        await resolver.close()
    return models


async def test_n_hosts_resolving_the_same_workflows_cost_about_one_hosts_requests(tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    try:
        async with FakeHub() as hub, FakeCivitai() as civ:
            world = build_world(hub, civ)
            workflows, _ = build_workflows(world)
            chosen = dict(sorted(workflows.items())[:WORKFLOWS])
            per_host = {}
            for mode, redis_url in (("fleet", redis.url), ("alone", None)):
                counts = []
                for i in range(HOSTS):
                    settings = make_settings(tmp_path / f"{mode}-host{i}", hub=hub, civ=civ, redis_url=redis_url,
                                             comfyui_root=tmp_path / "ComfyUI", disable_catalog=False)
                    before = _upstream(hub, civ)
                    models = await _resolve_all(settings, chosen)
                    counts.append(_upstream(hub, civ) - before)
                per_host[mode] = counts
    finally:
        redis.stop()
    print("\nshared resolve cache:", json.dumps({"workflows": WORKFLOWS, "models": models, "hosts": HOSTS,
                                                   "upstream_requests_per_host": per_host,
                                                   "requests_per_model_cold": round(per_host["alone"][0] / models, 2)}))
    fleet, alone = per_host["fleet"], per_host["alone"]
    assert fleet[0] > 0 and all(n == alone[0] for n in alone)  # alone, every host pays the whole cost
    assert sum(fleet) <= 1.25 * fleet[0], per_host  # in a fleet, N hosts cost about one host
