"""A1111-style generation parameters -> the models they name, with their hashes. Pure.

Images made by AUTOMATIC1111, Forge, SD.Next, Civitai's generator and many others carry one text
block, `parameters` (PNG tEXt/iTXt, WebP EXIF UserComment or XMP):

    a castle <lora:add_detail:0.5>, masterpiece
    Negative prompt: easynegative
    Steps: 20, Sampler: Euler a, Model hash: 879db523c3, Model: dreamshaper_8, VAE hash: 235745af8d,
    VAE: vae-ft-mse-840000-ema-pruned.safetensors, Lora hashes: "add_detail: 7c6bad76eb54",
    TI hashes: "easynegative: c74b4e810b03", Hashes: {"model": "879db523c3", "lora:add_detail": "..."}

The hashes name the files exactly, whatever they are called: "Model hash" is AutoV2 (the first 10
hex of the file's SHA-256; 8 hex is the old AutoV1), "Lora hashes" are AutoV3 (12 hex of the
SHA-256 of the tensor bytes), "TI hashes" the first 12 hex of the embedding's SHA-256. Civitai's
by-hash lookup accepts all of them.

`parameters_workflow` turns the block into a small ComfyUI graph (a checkpoint loader, a LoRA
loader per LoRA, a VAE loader, the embeddings in a prompt) whose nodes carry the hashes in
`properties.models`, so the rest of the resolver treats them like any workflow's own hashes.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

#: A1111's own pattern for the `key: value` pairs of the last line (quoted values may hold commas).
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_LORA_TAG = re.compile(r"<(?:lora|lyco):([^:<>]+?)(?::[^<>]*)?>", re.I)
_HEX = re.compile(r"^[0-9a-fA-F]{8,64}$")
#: Hires upscalers A1111 implements itself (no file).
_BUILTIN_UPSCALERS = re.compile(r"(?i)^(latent.*|none|lanczos|nearest|bicubic|bilinear)$")
_MODEL_EXT = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True, slots=True)
class NamedHash:
    """A model the parameters name: its name as written, folder, and hash (None if not given)."""

    name: str
    folder: str
    hash: str | None = None
    hash_type: str | None = None


@dataclass(slots=True)
class Parameters:
    prompt: str = ""
    negative: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    models: list[NamedHash] = field(default_factory=list)


def looks_like_parameters(text: str) -> bool:
    """An A1111 block always has a `Steps: N` settings line."""
    return isinstance(text, str) and re.search(r"(?m)^Steps: \d+", text) is not None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


def _hash_kind(digest: str, *, lora: bool = False, prefix_of_sha256: bool = False) -> tuple[str, str] | None:
    """(hash, kind) for a hex digest as the parameters write it, None when it is not one."""
    d = digest.strip().lower()
    if not _HEX.match(d):
        return None
    if len(d) == 64:
        return d, "sha256"
    if len(d) == 10:
        return d, "autov2"
    if len(d) == 8:
        return d, "autov1"
    if len(d) == 12 and prefix_of_sha256:
        return d[:10], "autov2"  # a SHA-256 prefix: its first 10 hex are the AutoV2
    if len(d) == 12 and lora:
        return d, "autov3"
    return None


def _pairs(text: str) -> dict[str, str]:
    """`"name: hash, name2: hash2"` -> {name: hash}."""
    out: dict[str, str] = {}
    for part in text.split(","):
        name, sep, digest = part.rpartition(":")
        if sep and name.strip():
            out[name.strip()] = digest.strip()
    return out


def _file_name(name: str, default_ext: str = ".safetensors") -> str:
    name = name.strip().replace("\\", "/")
    return name if name.lower().endswith(_MODEL_EXT) else name + default_ext


_JSON_START = re.compile(r"(\w[\w \-/]+):\s*(?=[\[{])")


def _json_values(line: str) -> tuple[str, dict[str, str]]:
    """`Hashes: {"model": "…", …}` and `Civitai resources: [...]` hold commas of their own: take
    them out of the line whole (as JSON text) before the plain pairs are split."""
    out: dict[str, str] = {}
    decoder = json.JSONDecoder()
    pos = 0
    while (m := _JSON_START.search(line, pos)) is not None:
        try:
            _, end = decoder.raw_decode(line, m.end())
        except ValueError:
            pos = m.end()
            continue
        out[m.group(1).strip()] = line[m.end():end]
        line = line[:m.start()] + line[end:].lstrip(", ")
        pos = m.start()
    return line, out


def parse_parameters(text: str) -> Parameters:
    """Split a parameters block into prompt, negative prompt, settings and the models it names."""
    lines = text.strip().split("\n")
    p = Parameters()
    last = lines[-1] if lines else ""
    last, json_values = _json_values(last)
    if len(_PARAM.findall(last)) >= 3:
        lines = lines[:-1]
        p.settings = {k.strip(): _unquote(v) for k, v in _PARAM.findall(last)}
        p.settings.update(json_values)
    body, neg, in_neg = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_neg = True
            line = line[len("Negative prompt:"):].strip()
        (neg if in_neg else body).append(line)
    p.prompt, p.negative = "\n".join(body).strip(), "\n".join(neg).strip()
    p.models = _models(p)
    return p


def _models(p: Parameters) -> list[NamedHash]:
    s = p.settings
    hashes: dict[str, str] = {}
    raw = s.get("Hashes")
    if raw:
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            hashes = {str(k): str(v) for k, v in obj.items() if isinstance(v, str)}
    out: list[NamedHash] = []

    def add(name: str | None, folder: str, digest: str | None, **kind: bool) -> None:
        if not name:
            return
        h = _hash_kind(digest, **kind) if digest else None
        out.append(NamedHash(name, folder, *(h or (None, None))))

    model = s.get("Model")
    model_hash = s.get("Model hash") or hashes.get("model")
    if model or model_hash:
        add(_file_name(model or f"model-{model_hash}"), "checkpoints", model_hash)
    vae = s.get("VAE")
    if vae or s.get("VAE hash"):
        add(_file_name(vae or f"vae-{s['VAE hash']}"), "vae", s.get("VAE hash") or hashes.get("vae"))
    lora_hashes = _pairs(s.get("Lora hashes", ""))
    loras = list(dict.fromkeys(m.group(1).strip() for m in _LORA_TAG.finditer(p.prompt + "\n" + p.negative)))
    loras += [n for n in lora_hashes if n not in loras]
    loras += [k[5:] for k in hashes if k.startswith("lora:") and k[5:] not in loras]
    for name in loras:
        add(_file_name(name), "loras", lora_hashes.get(name) or hashes.get(f"lora:{name}"), lora=True)
    ti = _pairs(s.get("TI hashes", ""))
    ti.update({k.split(":", 1)[1]: v for k, v in hashes.items() if k.startswith("embed:") and k[6:] not in ti})
    for name, digest in ti.items():
        add(name, "embeddings", digest, prefix_of_sha256=True)
    up = s.get("Hires upscaler")
    if up and not _BUILTIN_UPSCALERS.match(up.strip()):
        add(_file_name(up, ".pth"), "upscale_models", None)
    for key in ("ADetailer model", "ADetailer model 2nd", "ADetailer model 3rd"):
        det = s.get(key)
        if det and det.strip().lower().endswith(".pt"):
            sub = "segm" if "-seg" in det.lower() else "bbox"
            add(f"{sub}/{det.strip()}", "ultralytics", None)
    return out


def parameters_workflow(text: str) -> dict:
    """A ComfyUI UI-format graph holding the models of a parameters block, hashes attached."""
    p = parse_parameters(text)
    nodes: list[dict] = []

    def node(ntype: str, widgets: list, m: NamedHash) -> None:
        entry = {"name": m.name, "directory": m.folder}
        if m.hash:
            entry.update(hash=m.hash, hash_type=m.hash_type)
        nodes.append({"id": len(nodes) + 1, "type": ntype, "mode": 0, "pos": [len(nodes) * 320, 0], "size": [300, 100],
                      "flags": {}, "order": len(nodes), "inputs": [], "outputs": [],
                      "properties": {"models": [entry], "a1111": True}, "widgets_values": widgets})

    for m in p.models:
        if m.folder == "checkpoints":
            node("CheckpointLoaderSimple", [m.name], m)
        elif m.folder == "vae":
            node("VAELoader", [m.name], m)
        elif m.folder == "loras":
            node("LoraLoader", [m.name, 1.0, 1.0], m)
        elif m.folder == "embeddings":
            node("CLIPTextEncode", [f"embedding:{m.name}"], m)
        elif m.folder == "upscale_models":
            node("UpscaleModelLoader", [m.name], m)
        elif m.folder == "ultralytics":
            node("UltralyticsDetectorProvider", [m.name], m)
    return {"last_node_id": len(nodes), "last_link_id": 0, "nodes": nodes, "links": [], "groups": [],
            "config": {}, "extra": {"a1111_parameters": True}, "version": 0.4}
