"""Loopback fakes of the Hugging Face Hub (+CDN) and Civitai (+storage) for tests and benchmarks.

Import as ``fakes`` with ``<repo>/tests`` on ``sys.path`` (``tests/conftest.py`` does this and
registers the pytest fixtures of :mod:`fakes.plugin`)::

    from fakes import FakeHub, FakeCivitai, FakeFile

Faithful to ``shared/api-contracts.md``; see the module docstrings of :mod:`fakes.hub`,
:mod:`fakes.civitai`, :mod:`fakes.switches` and :mod:`fakes.byteserve`.
"""

from .blobs import FakeFile, make_safetensors, safetensors_prefix
from .civitai import CivFile, CivModel, CivVersion, FakeCivitai
from .hub import FakeHub, FakeRepo
from .switches import Switch

__all__ = [
    "CivFile",
    "CivModel",
    "CivVersion",
    "FakeCivitai",
    "FakeFile",
    "FakeHub",
    "FakeRepo",
    "Switch",
    "make_safetensors",
    "safetensors_prefix",
]
