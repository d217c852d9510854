"""Settings and workflows for the sources tests ."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from comfyui_model_resolver.settings import Settings


def fake_hosts(*fakes) -> tuple[str, ...]:
    out = []
    for fake in fakes:
        if fake is None:
            continue
        for url in fake.urls.values():
            p = urlsplit(url)
            out.append(f"{p.hostname}:{p.port}")
    return tuple(out)


def make_settings(tmp_path: Path, hub=None, civ=None, **overrides) -> Settings:
    """Settings pointing at the fakes, with their hosts allowed; nothing read from the environment."""
    base = dict(
        hf_endpoint=hub.url if hub is not None else "http://127.0.0.1:9",
        civitai_base_url=civ.url if civ is not None else "http://127.0.0.1:9",
        data_dir=str(tmp_path / "data"),
        allowed_hosts=fake_hosts(hub, civ),
        disable_catalog=True,
    )
    base.update(overrides)
    return Settings.load({}, env_file=tmp_path / "no.env", **base)


def workflow(*nodes: tuple[str, list], notes: tuple[str, ...] = ()) -> dict:
    """A UI workflow with one node per (type, widgets_values), plus Note nodes."""
    out = [{"id": i + 1, "type": t, "mode": 0, "widgets_values": w, "properties": {}} for i, (t, w) in enumerate(nodes)]
    for j, text in enumerate(notes):
        out.append({"id": 100 + j, "type": "Note", "mode": 0, "widgets_values": [text], "properties": {}})
    return {"last_node_id": 200, "last_link_id": 0, "nodes": out, "links": [], "version": 0.4}
