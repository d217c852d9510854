"""The hostile-input harness: a sandbox whose every byte is accounted for, and the two HTTP doors.

`Sandbox` is a temporary directory laid out like a user's disk::

    <parent>/
      ComfyUI/models/...        the models root: the only place a download may write
      ComfyUI/custom_nodes/...  sentinel: code ComfyUI imports (writing here = running code)
      ComfyUI/user/...          sentinel: ComfyUI's user files
      data/                     CMR_DATA_DIR (job database, quarantine, caches): may change
      outside/, home/           sentinels next to the models root

`snapshot()` records every entry under <parent> (type, size, sha256, link target) without following
links; `assert_safe()` compares with the baseline taken by `mark()`: nothing outside the models root
and the data dir changed, no symlink appeared anywhere, and every model file that existed (the
"user's models") still has its bytes. The fixture runs `assert_safe()` after every test, so a case
that forgets to check still fails if it wrote outside or lost data.

`Door` wraps one HTTP binding of the shared route table — the ComfyUI routes (aiohttp, stand-in
PromptServer) or the sidecar (FastAPI, in-process) — behind one `request()` that returns
(status, json-or-None, text), so a hostile case runs against both.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfyui_model_resolver.downloads.volume import volume_id
from fakes.blobs import make_safetensors
from support.downloads import sha256_of

#: Where the routes live behind each door.
PREFIX = {"comfyui": "/cmr/v1", "sidecar": "/api/v1"}
#: Token values planted in tests; they must never show up anywhere but their own host's header.
HF_TOKEN = "hf_AdversarialTestToken4242"
CIVITAI_KEY = "civitai-key-5ecret-0f-adversarial-suite"
API_KEY = "sidecar-api-key-adversarial"
SECRETS = (HF_TOKEN, CIVITAI_KEY, API_KEY)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under `root`, symlinks recorded (never followed)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", st.st_size, sha256_of(p), st.st_nlink)
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


@dataclass
class Sandbox:
    parent: Path
    baseline: dict[str, tuple] = field(default_factory=dict)
    #: models present before the test (relative to parent): their bytes must survive
    protected: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> Path:
        return self.parent / "ComfyUI"

    @property
    def models(self) -> Path:
        return self.base / "models"

    @property
    def data(self) -> Path:
        return self.parent / "data"

    @property
    def outside(self) -> Path:
        return self.parent / "outside"

    @property
    def custom_nodes(self) -> Path:
        return self.base / "custom_nodes"

    ALLOWED = ("ComfyUI/models", "data")

    @classmethod
    def create(cls, parent: Path) -> "Sandbox":
        sb = cls(parent)
        for d in ("checkpoints/SD1.5", "loras", "vae", "embeddings", "upscale_models", "text_encoders",
                  "diffusion_models", "controlnet", "configs"):
            (sb.models / d).mkdir(parents=True, exist_ok=True)
        models = {
            "checkpoints/existing.safetensors": make_safetensors(4096, seed=11),
            "checkpoints/SD1.5/nested.safetensors": make_safetensors(2048, seed=12),
            "loras/keep.safetensors": make_safetensors(1024, seed=13),
            "vae/old.pt": b"PK\x03\x04 not really a pickle, but named like one" * 20,
            "configs/v1-inference.yaml": b"model: {}\n",
        }
        for rel, data in models.items():
            (sb.models / rel).write_bytes(data)
        for rel, data in {
            "outside/secret.txt": b"do not touch\n",
            "outside/important.safetensors": make_safetensors(1024, seed=14),
            "home/.bashrc": b"export PATH=/usr/bin\n",
            "ComfyUI/custom_nodes/innocent/__init__.py": b"NODE_CLASS_MAPPINGS = {}\n",
            "ComfyUI/user/default/comfy.settings.json": b"{}\n",
            "ComfyUI/main.py": b"print('comfy')\n",
        }.items():
            p = parent / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        sb.data.mkdir(parents=True, exist_ok=True)
        volume_id(str(sb.models))  # the volume marker an earlier start left (downloads/volume.py)
        sb.mark()
        return sb

    def mark(self) -> dict[str, tuple]:
        """Take the baseline now (after a test planted its links or files)."""
        self.baseline = snapshot(self.parent)
        self.protected = {rel: entry[2] for rel, entry in self.baseline.items()
                          if entry[0] == "file" and rel.startswith("ComfyUI/models/")
                          and not rel.endswith((".part", ".lock"))}  # a running job's own files
        return self.baseline

    def _allowed(self, rel: str) -> bool:
        return any(rel == zone or rel.startswith(zone + os.sep) for zone in self.ALLOWED)

    def changes(self) -> dict[str, tuple[tuple | None, tuple | None]]:
        now = snapshot(self.parent)
        return {k: (self.baseline.get(k), now.get(k)) for k in self.baseline.keys() | now.keys()
                if self.baseline.get(k) != now.get(k)}

    def assert_safe(self) -> None:
        """Nothing written outside the models root / data dir, no new link, no model file changed."""
        changes = self.changes()
        outside = {k: v for k, v in changes.items() if not self._allowed(k)}
        assert not outside, f"written outside the models root: {outside}"
        new_links = {k: v for k, v in changes.items() if v[1] is not None and v[1][0] == "link"}
        assert not new_links, f"symlinks appeared: {new_links}"
        lost = {rel: changes[rel] for rel in self.protected if rel in changes}
        assert not lost, f"existing model files changed or vanished: {lost}"
        for rel, entry in snapshot(self.parent).items():
            if entry[0] == "file" and rel.startswith("ComfyUI/models/") and rel not in self.baseline:
                # a new file under the models root is a finished download or a part/lock file of one
                assert entry[3] == 1, f"{rel} is hard-linked elsewhere"

    def new_files(self) -> list[str]:
        return sorted(k for k, (old, new) in self.changes().items()
                      if old is None and new is not None and new[0] == "file")

    def model_files(self) -> list[str]:
        return sorted(k for k, e in snapshot(self.parent).items()
                      if e[0] == "file" and k.startswith("ComfyUI/models/"))


# ---- the standard error shape -----------------------------------------------------------------
def assert_error_shape(status: int, body: Any, *, statuses: tuple[int, ...] | None = None) -> dict:
    """A 4xx (or the listed statuses) with `{"error": {"type", "code", "message", "hint"}}`."""
    if statuses is not None:
        assert status in statuses, (status, body)
    else:
        assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert {"type", "code", "message", "hint"} <= set(err), err
    assert isinstance(err["type"], str) and err["type"]
    assert isinstance(err["message"], str) and len(err["message"]) >= 10, err
    assert err["hint"] is None or isinstance(err["hint"], str)
    return err


def assert_no_secret(*texts: Any) -> None:
    blob = "\n".join(t if isinstance(t, str) else json.dumps(t, default=str) for t in texts)
    for secret in SECRETS:
        assert secret not in blob, f"a secret leaked: {secret[:8]}… in {blob[:500]}"


# ---- the two doors ----------------------------------------------------------------------------
class Door:
    """One HTTP binding of the route table, in-process, with the same call shape for both."""

    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.client = client
        self.prefix = PREFIX[name]
        self.last_headers: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Door({self.name})"

    async def request(self, method: str, path: str, *, json_body: Any = None, content: bytes | None = None,
                      headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
                      files: dict | None = None, raw_path: bool = False) -> tuple[int, Any, str]:
        url = path if raw_path else self.prefix + path
        headers = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if self.name == "sidecar":
            kw: dict[str, Any] = {"headers": headers, "params": params}
            if files is not None:
                kw["files"] = files
            else:
                kw["content"] = content
            resp = await self.client.request(method, url, **kw)
            text = resp.text
            status = resp.status_code
            self.last_headers = {k.lower(): v for k, v in resp.headers.items()}
        else:
            import aiohttp

            data: Any = content
            if files is not None:
                form = aiohttp.FormData()
                for field_name, (fname, blob) in files.items():
                    form.add_field(field_name, blob, filename=fname)
                data = form
            skip = () if files is not None or "Content-Type" in headers else ("Content-Type",)
            resp = await self.client.request(method, url, data=data, headers=headers, params=params,
                                             skip_auto_headers=skip)
            text = await resp.text()
            status = resp.status
            self.last_headers = {k.lower(): v for k, v in resp.headers.items()}
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        return status, body, text
