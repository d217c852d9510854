"""Fixtures for download tests: a models folder and Settings pointing at the Hub fake."""
from __future__ import annotations

import pytest

from support.downloads import close_env, open_env


@pytest.fixture
async def env(fake_hub, tmp_path):
    e = await open_env(fake_hub, tmp_path)
    try:
        yield e
    finally:
        await close_env(e)
