"""pytest fixtures for the fakes (registered by ``tests/conftest.py``).

* ``fake_hub`` / ``fake_civitai``: started on the test's event loop (async tests), stopped after.
* ``fake_hub_thread`` / ``fake_civitai_thread``: started on their own loop in a daemon thread, for
  sync code (the official ``huggingface_hub`` client, subprocesses, benches).
"""

from __future__ import annotations

import pytest
import pytest_asyncio

from fakes.civitai import FakeCivitai
from fakes.hub import FakeHub


@pytest_asyncio.fixture
async def fake_hub():
    hub = FakeHub()
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@pytest_asyncio.fixture
async def fake_civitai():
    civ = FakeCivitai()
    await civ.start()
    try:
        yield civ
    finally:
        await civ.stop()


@pytest.fixture
def fake_hub_thread():
    with FakeHub.running_in_thread() as hub:
        yield hub


@pytest.fixture
def fake_civitai_thread():
    with FakeCivitai.running_in_thread() as civ:
        yield civ
