"""Which downloads a resolve result asks for, and why the others are skipped."""
from __future__ import annotations

from comfyui_model_resolver.downloads.plan import plan_downloads

SHA = "a" * 64


def m(filename, status="resolved", **kw):
    base = {"filename": filename, "folder": "checkpoints", "status": status, "active": True,
            "chosen": {"url": f"https://huggingface.co/o/r/resolve/main/{filename}", "sha256": SHA, "size": 5,
                       "source": "huggingface"}}
    base.update(kw)
    return base


def test_plan():
    models = [m("a.safetensors"), m("SD1.5\\b.safetensors"), m("a.safetensors"),  # duplicate
              m("c.safetensors", status="ambiguous"), m("d.safetensors", status="present"),
              m("e.safetensors", active=False), m("f.safetensors", optional=True),
              m("g.safetensors", auto_download=True), m("repo-dir", kind="directory"),
              m("h.safetensors", folder=None), m("i.safetensors", status="auth_required", chosen=None)]
    reqs, skipped = plan_downloads(models)
    assert [(r.folder, r.filename, r.sha256, r.size) for r in reqs] == [
        ("checkpoints", "a.safetensors", SHA, 5), ("checkpoints", "SD1.5/b.safetensors", SHA, 5)]
    reasons = {s.filename: s.reason for s in skipped}
    assert set(reasons) == {"c.safetensors", "e.safetensors", "f.safetensors", "g.safetensors", "repo-dir",
                            "h.safetensors", "i.safetensors"}
    assert "pick one" in reasons["c.safetensors"] and "bypassed" in reasons["e.safetensors"]
    assert "token" in reasons["i.safetensors"]
    reqs, _ = plan_downloads(models, include_inactive=True, include_optional=True)
    assert {r.filename for r in reqs} == {"a.safetensors", "SD1.5/b.safetensors", "e.safetensors", "f.safetensors"}
