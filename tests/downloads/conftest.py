"""Fixtures for download tests: a models folder and Settings pointing at the Hub fake."""
from __future__ import annotations

import pytest

from support.downloads import Env, make_settings


@pytest.fixture
async def env(fake_hub, tmp_path):
    for folder in ("checkpoints", "loras", "vae"):
        (tmp_path / "models" / folder).mkdir(parents=True)
    e = Env(fake_hub, tmp_path, make_settings(tmp_path, fake_hub))
    try:
        yield e
    finally:
        for m in e.managers:
            await m.close()
