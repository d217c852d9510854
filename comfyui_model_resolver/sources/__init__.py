"""Where to download each missing model: providers (embedded links, catalog, Hugging Face, Civitai),
ranking, pre-flight. `build_sources(settings)` wires them; the Resolver owns the result."""
from __future__ import annotations

from pathlib import Path

from ..settings import Settings
from .cache import ResponseCache, open_cache
from .catalog import CatalogSource
from .civitai import CivitaiSource
from .embedded import EmbeddedSource
from .http import Upstream
from .huggingface import HuggingFaceSource
from .packs import PackSourcesSource
from .pipeline import SourceSet


def build_sources(settings: Settings, *, data_dir: Path | None = None, cache: ResponseCache | None = None,
                  upstream: Upstream | None = None) -> SourceSet:
    """Every provider, in trust order, sharing one HTTP client and one response cache."""
    own_cache = cache is None
    cache = cache if cache is not None else open_cache(settings.redis_url, data_dir)
    upstream = upstream or Upstream(settings, cache)
    sources = [
        EmbeddedSource(settings),
        CatalogSource(settings),
        PackSourcesSource(settings),
        HuggingFaceSource(settings, upstream, cache),
        CivitaiSource(settings, upstream),
    ]
    return SourceSet(settings, sources, upstream, closers=[cache.close] if own_cache else [])


__all__ = ["build_sources", "SourceSet"]
