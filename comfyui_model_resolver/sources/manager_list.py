"""ComfyUI-Manager's model list (`model-list.json`) as catalog rows. Pure, apart from finding the file.

The Manager's schema: {"models": [{name, type, base, save_path, description, reference, filename,
url, size}]}.

* `filename` is the name the Manager saves the file under, which is the name workflows use. It may
  differ from the file in the repo (`CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors` is
  `models/image_encoder/model.safetensors` in h94/IP-Adapter): a *rename*. The row keeps the
  Manager's name, and a download is saved under it.
* `save_path` "default" means the folder of the entry's `type`; "controlnet/SDXL" is the folder
  `controlnet`, sub-folder `SDXL`; "custom_nodes/<pack>/<dir>" is a directory inside a node pack,
  kept as the folder `custom_nodes/<pack>/<dir>` (downloads/paths.py writes there only when that
  pack is installed, and never creates one). Any other shape (`..`, absolute, odd characters) is
  dropped.
* `size` is a display string ("1.23GB"): approximate, so it is kept as `size_text` for people and
  never used to verify a download.
* Entries without an http(s) URL or a file name (`<huggingface>` whole-repo entries) are skipped.

The list ships inside the PyPI package `comfyui-manager` (pinned in the dev extra, `MANAGER_PIN`).
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from ..workflow.folders import canonical_folder, has_model_extension

PACKAGE = "comfyui-manager"
MANAGER_PIN = "4.3"  # keep equal to the dev extra's pin (tests/sources/test_manager_list.py checks)
LIST_NAME = "model-list.json"

#: ComfyUI-Manager `type` (lower-cased) -> ComfyUI folder, for save_path "default".
MANAGER_TYPES: dict[str, str] = {
    "checkpoint": "checkpoints", "checkpoints": "checkpoints", "lora": "loras", "loras": "loras",
    "vae": "vae", "vae_approx": "vae_approx", "taesd": "vae_approx", "upscale": "upscale_models",
    "controlnet": "controlnet", "t2i-adapter": "controlnet", "t2i-style": "style_models",
    "clip": "text_encoders", "text_encoders": "text_encoders", "t5": "text_encoders", "unet": "diffusion_models",
    "diffusion_model": "diffusion_models", "clip_vision": "clip_vision", "embeddings": "embeddings",
    "embedding": "embeddings", "gligen": "gligen", "hypernetwork": "hypernetworks", "photomaker": "photomaker",
    "style_model": "style_models", "ipadapter": "ipadapter", "ip-adapter": "ipadapter",
    "animatediff": "animatediff_models", "motion lora": "animatediff_motion_lora", "sam": "sams",
    "ultralytics": "ultralytics", "insightface": "insightface", "deepbump": "deepbump", "instantid": "instantid",
    "unclip": "checkpoints", "zero123": "checkpoints",
}
_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMGT]?)i?B?\s*$", re.I)
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+ -]{0,63}$")


def parse_size(text: Any) -> int | None:
    """'1.23GB' -> bytes (decimal units, as the Manager writes them); ints pass through. Approximate."""
    if isinstance(text, int) and text > 0:
        return text
    if not isinstance(text, str):
        return None
    m = _SIZE.match(text)
    if not m:
        return None
    mult = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2).upper()]
    try:
        return int(float(m.group(1)) * mult)
    except ValueError:
        return None


def _plain_parts(path: str) -> list[str] | None:
    parts = [p for p in path.split("/") if p]
    if not parts or any(not _PART.match(p) or p in (".", "..") for p in parts):
        return None
    return parts


def manager_place(entry: dict) -> tuple[str, str | None] | None:
    """(folder, sub-folder) the Manager saves an entry in, or None when its save_path is not safe."""
    save = str(entry.get("save_path") or "default").strip().replace("\\", "/").strip("/")
    if save in ("", "default"):
        folder = MANAGER_TYPES.get(str(entry.get("type") or "").strip().lower())
        return (folder, None) if folder else None
    parts = _plain_parts(save)
    if parts is None:
        return None
    if parts[0] == "custom_nodes":
        return ("/".join(parts), None) if len(parts) >= 3 else None  # a directory inside a pack, never the pack
    return canonical_folder(parts[0]), ("/".join(parts[1:]) or None)


def manager_rows(data: Any, *, origin: str) -> list[dict]:
    """Catalog rows for a parsed model-list.json: {name, url, folder, subdir?, size_text?, title,
    base?, provenance: {source: origin, index}}. `index` is the entry's position in the list."""
    out: list[dict] = []
    models = data.get("models") if isinstance(data, dict) else None
    for i, m in enumerate(models if isinstance(models, list) else []):
        if not isinstance(m, dict):
            continue
        name, url = m.get("filename"), m.get("url")
        if not (isinstance(name, str) and isinstance(url, str) and url.startswith(("https://", "http://"))):
            continue
        name = name.strip()
        if not name or name.startswith("<") or "/" in name or "\\" in name or not has_model_extension(name):
            continue
        place = manager_place(m)
        if place is None:
            continue
        row: dict[str, Any] = {"name": name, "url": url.strip(), "folder": place[0]}
        if place[1]:
            row["subdir"] = place[1]
        if isinstance(m.get("size"), str) and m["size"].strip():
            row["size_text"] = m["size"].strip()
        for key in ("name", "base"):
            if isinstance(m.get(key), str) and m[key].strip():
                row["title" if key == "name" else "base"] = m[key].strip()
        row["provenance"] = {"source": origin, "index": i}
        out.append(row)
    return out


def read_model_list(path: Path) -> Any:
    """model-list.json from a file (.json / .json.gz), a `comfyui_manager` package directory, or the
    package's wheel (as `pip download --no-deps comfyui-manager==X` leaves it)."""
    path = Path(path)
    if path.is_dir():
        path = path / LIST_NAME
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            member = next((n for n in zf.namelist() if n.endswith("/" + LIST_NAME)), None)
            if member is None:
                raise ValueError(f"{path} holds no {LIST_NAME}")
            return json.loads(zf.read(member))
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)


def installed_manager() -> tuple[Path, str] | None:
    """The installed `comfyui_manager` package's directory and version, found without importing it."""
    try:
        spec = importlib.util.find_spec("comfyui_manager")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version(PACKAGE)
    except PackageNotFoundError:
        ver = "unknown"
    d = Path(spec.origin).resolve().parent
    return (d, ver) if (d / LIST_NAME).is_file() else None


def origin_of(version: str) -> str:
    return f"{PACKAGE}=={version} {LIST_NAME}"
