"""The Gradio UI is built in the background: the API answers while it is built, /gradio waits for it,
and a UI that cannot be built leaves the API working and says why (sidecar/ui_mount.py)."""
from __future__ import annotations

import asyncio
import threading

import pytest

pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")

import sidecar.gradio_ui as gradio_ui  # noqa: E402
from sidecar.main import create_app  # noqa: E402
from support.paths import FRONTEND_FIXTURES  # noqa: E402

from .conftest import make_settings, running  # noqa: E402


async def test_the_api_answers_while_the_ui_is_still_being_built(tmp_path, monkeypatch):
    gate = threading.Event()
    real = gradio_ui.mounted_ui

    def slow_ui(app, settings, path):  # the real UI, once the test lets it through
        assert gate.wait(60), "the test never released the UI"
        return real(app, settings, path)

    monkeypatch.setattr(gradio_ui, "mounted_ui", slow_ui)
    app = create_app(make_settings(tmp_path), enable_ui=True)
    try:
        async with running(app) as c:
            health = await c.get("/health")
            assert health.status_code == 200 and health.json()["ready"] is True
            body = (FRONTEND_FIXTURES / "inputs/checkpoint_loader.json").read_bytes()
            analyzed = await c.post("/api/v1/analyze", content=body, headers={"content-type": "application/json"})
            assert analyzed.status_code == 200 and analyzed.json()["models"]
            assert not app.state.ui.ready
            page = asyncio.ensure_future(c.get("/gradio/"))
            await asyncio.sleep(0.3)
            assert not page.done()  # it waits for the UI (the gate is still closed), it is not refused
            gate.set()
            r = await asyncio.wait_for(page, 120)
            assert r.status_code == 200 and "gradio" in r.text.lower()
            assert app.state.ui.ready
            assert (await c.get("/gradio/config")).status_code == 200  # the mounted app's own routes
    finally:
        gate.set()


async def test_a_ui_that_cannot_be_built_leaves_the_api_working(tmp_path, monkeypatch):
    def broken(app, settings, path):
        raise RuntimeError("the theme files are missing")

    monkeypatch.setattr(gradio_ui, "mounted_ui", broken)
    app = create_app(make_settings(tmp_path), enable_ui=True)
    async with running(app) as c:
        r = await c.get("/gradio/")
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "ui_unavailable" and "the theme files are missing" in error["message"]
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/api/v1/models")).status_code == 200


async def test_the_ui_is_built_again_for_a_new_lifespan(tmp_path, monkeypatch):
    builds = []
    real = gradio_ui.mounted_ui

    def counted(app, settings, path):
        builds.append(path)
        return real(app, settings, path)

    monkeypatch.setattr(gradio_ui, "mounted_ui", counted)
    app = create_app(make_settings(tmp_path), enable_ui=True)
    for _ in range(2):
        async with running(app) as c:
            assert (await c.get("/gradio/")).status_code == 200
        assert not app.state.ui.ready  # stopped with the server
    assert builds == ["/gradio", "/gradio"]
