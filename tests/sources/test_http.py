"""The HTTP seam: the status -> error table, Retry-After, bounded retries, tokens per origin."""
from __future__ import annotations

import email.utils
import time

import pytest

from comfyui_model_resolver.errors import AuthRequired, NotFound, RateLimited, SourceUnavailable
from comfyui_model_resolver.sources.base import LookupContext, RequestBudget
from comfyui_model_resolver.upstream import parse_retry_after
from comfyui_model_resolver.sources.http import Upstream
from comfyui_model_resolver.upstream import error_for_status
from comfyui_model_resolver.types import ModelRef
from support.sources import make_settings


def err(status, headers=None, body=None, authed=False, token_env="CMR_X"):
    return error_for_status(status, headers or {}, body, source="s", token_env=token_env, authed=authed)


def test_error_table():
    gated = err(401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to model x is restricted"})
    assert isinstance(gated, AuthRequired) and gated.gated and gated.token_env == "CMR_HF_TOKEN"
    assert "CMR_HF_TOKEN" in gated.hint
    assert "accept the licence" in err(403, {"X-Error-Code": "GatedRepo"}, authed=True).hint
    for code in ("RepoNotFound", "EntryNotFound", "RevisionNotFound"):
        assert isinstance(err(404, {"X-Error-Code": code}), NotFound)
    assert isinstance(err(401, {"X-Error-Code": "RepoNotFound"}), NotFound)
    login = err(401, body='{"error":"Unauthorized","message":"The creator of this asset requires you to be logged in"}')
    assert isinstance(login, AuthRequired) and login.reason == "login_required" and login.token_env == "CMR_X"
    early = err(403, body='{"error":"Early Access","deadline":"2030-01-01T00:00:00Z","message":"Early"}')
    assert early.reason == "early_access" and "2030" in early.hint
    assert isinstance(err(410), NotFound) and isinstance(err(404), NotFound)
    rl = err(429, {"Retry-After": "7"})
    assert isinstance(rl, RateLimited) and rl.retry_after == 7
    assert isinstance(err(503), SourceUnavailable) and isinstance(err(400), SourceUnavailable)


def test_retry_after_forms():
    assert parse_retry_after("3") == 3 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(when) <= 31


def _ctx(limit=10):
    return LookupContext(ref=ModelRef(filename="x.safetensors", folder=None, node_id="1", node_type="T", input="i"),
                         budget=RequestBudget(limit))


async def test_civitai_429_is_retried_with_exponential_backoff(fake_civitai, tmp_path):
    up = Upstream(make_settings(tmp_path, civ=fake_civitai), retry_base=0.05)
    fake_civitai.switch("search", status=429, times=2)  # Civitai sends no Retry-After
    try:
        ctx = _ctx()
        data = await up.get_json(f"{fake_civitai.url}/api/v1/models", source="civitai", ctx=ctx,
                                 params={"query": "x"}, cache=False)
        assert data["items"] == []
        assert up.stats.waits == [0.05, 0.1]  # 1x, 2x the base: bounded, exponential
        assert ctx.requests["civitai"] == 3 == len(fake_civitai.log.filter("/api/v1/models"))
    finally:
        await up.close()


async def test_default_backoff_starts_at_one_second(fake_civitai, tmp_path):
    up = Upstream(make_settings(tmp_path, civ=fake_civitai))
    fake_civitai.switch("search", status=429, times=1)
    try:
        t0 = time.monotonic()
        await up.get_json(f"{fake_civitai.url}/api/v1/models", source="civitai", ctx=None, cache=False)
        assert up.stats.waits == [1.0] and time.monotonic() - t0 >= 1.0
    finally:
        await up.close()


async def test_persistent_429_gives_up_within_bounds(fake_civitai, tmp_path):
    up = Upstream(make_settings(tmp_path, civ=fake_civitai), retry_base=0.01, max_retries=3)
    fake_civitai.switch("search", status=429)
    try:
        with pytest.raises(RateLimited):
            await up.get_json(f"{fake_civitai.url}/api/v1/models", source="civitai", ctx=None, cache=False)
        assert len(fake_civitai.log.filter("/api/v1/models")) == 4  # 1 + 3 retries, then stop
    finally:
        await up.close()


async def test_long_retry_after_is_reported_not_waited(fake_hub, tmp_path):
    up = Upstream(make_settings(tmp_path, hub=fake_hub), max_wait=5)
    fake_hub.switch("search", status=429, retry_after=300)
    try:
        with pytest.raises(RateLimited) as exc:
            await up.get_json(f"{fake_hub.url}/api/models", source="huggingface", ctx=None, cache=False)
        assert exc.value.retry_after == 300 and up.stats.waits == []
    finally:
        await up.close()


async def test_budget_stops_requests(fake_civitai, tmp_path):
    from comfyui_model_resolver.sources.base import BudgetExhausted

    up = Upstream(make_settings(tmp_path, civ=fake_civitai))
    ctx = _ctx(limit=1)
    try:
        await up.get_json(f"{fake_civitai.url}/api/v1/models", source="civitai", ctx=ctx, cache=False)
        with pytest.raises(BudgetExhausted):
            await up.get_json(f"{fake_civitai.url}/api/v1/models", source="civitai", ctx=ctx, cache=False)
        assert len(fake_civitai.log) == 1
    finally:
        await up.close()


async def test_each_token_goes_only_to_its_own_origin_and_only_in_the_header(fake_hub, fake_civitai, tmp_path):
    settings = make_settings(tmp_path, hub=fake_hub, civ=fake_civitai, hf_token="hf_SECRET1",
                             civitai_api_key="civ_SECRET2")
    up = Upstream(settings)
    try:
        await up.get_json(f"{fake_civitai.url}/api/v1/models", source="civitai", ctx=None, cache=False)
        with pytest.raises(AuthRequired) as exc:  # the fake Hub does not know this token
            await up.get_json(f"{fake_hub.url}/api/models", source="huggingface", ctx=None, cache=False)
        assert exc.value.reason == "invalid_token" and exc.value.token_env == "CMR_HF_TOKEN"
        assert "SECRET" not in exc.value.message
    finally:
        await up.close()
    civ = fake_civitai.log.records[0]
    hub = fake_hub.log.records[0]
    assert civ["authorization"] == "Bearer civ_SECRET2" and hub["authorization"] == "Bearer hf_SECRET1"
    for rec in fake_civitai.log.records + fake_hub.log.records:
        assert "SECRET" not in rec["raw_path"]


async def test_network_errors_are_unavailable(tmp_path):
    up = Upstream(make_settings(tmp_path), retry_base=0.01)
    try:
        with pytest.raises(SourceUnavailable):
            await up.get_json("http://127.0.0.1:9/api/v1/models", source="civitai", ctx=None, cache=False)
    finally:
        await up.close()
