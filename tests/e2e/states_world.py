"""The "every state" world for the real-ComfyUI sidebar test: a workflow, the model folders and the fake Hub.

One workflow shows each state the sidebar must explain: a present file, one in the wrong folder (Move),
a model two strangers uploaded (ambiguous), one only a bypassed node uses (not counted), a loader of a
node pack that is not installed (relink must say it can't), a missing model inside a subgraph titled
"Upscale stage", a sharded model (one item, "3 files"), and a diffusion model that lands in the legacy
`models/unet/` folder; a model an IPAdapter unified loader's preset implies (issue 11: the row says so, and
its node pack) and a loader of a pack nobody describes ("folder unknown": the user picks the folder).
`python tests/e2e/states_world.py MODELS_DIR` serves the Hub for a manual look.
"""
from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `fakes` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fakes import FakeCivitai, FakeFile, FakeHub  # noqa: E402

SUBGRAPH_ID = "5d1e8c2a-7b3f-4a9e-8c6d-2e4f6a8b0c1d"
UNET = "e2e_flux_dev.safetensors"
UPSCALE = "e2e_upscale_4x.safetensors"
STYLE = "e2e_style.safetensors"
SHARD = "e2e_big-00001-of-00003.safetensors"
T5 = "e2e_t5_encoder.safetensors"
MYSTERY = "e2e_mystery_adapter.safetensors"  # loaded by a node of a pack nobody describes: folder unknown
CLIP_VISION = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"  # implied by the IPAdapter unified loader's preset
MB = 1 << 20


def prepare_models(models: Path) -> None:
    """The files on disk: a present VAE, the text encoder in the wrong folder, a relocated checkpoint."""
    for rel in ("vae", "loras", "text_encoders", "checkpoints/SD1.5", "unet", "diffusion_models", "upscale_models"):
        (models / rel).mkdir(parents=True, exist_ok=True)
    (models / "vae/present_vae.safetensors").write_bytes(b"present")
    (models / "checkpoints/SD1.5/dream.safetensors").write_bytes(b"relocated")
    # what an earlier run downloaded or moved
    for stale in (models / "text_encoders" / T5, models / "upscale_models" / UPSCALE,
                  *(models / "unet").glob("e2e_*"), *(models / "diffusion_models").glob("e2e_*"),
                  *(models.glob(f"*/{MYSTERY}")), *(models.glob(f"*/{CLIP_VISION}"))):
        stale.unlink(missing_ok=True)
    (models / "loras" / T5).write_bytes(b"t5 encoder bytes" * 64)


def populate_hub(hub: FakeHub) -> dict[str, FakeFile]:
    files = {
        UNET: FakeFile.safetensors(UNET, size=2 * MB, seed=21),
        UPSCALE: FakeFile.safetensors(UPSCALE, size=1 * MB, seed=22),
    }
    hub.add_repo("e2e-labs/flux-dev", [files[UNET]], downloads=90_000, likes=900)
    hub.add_repo("e2e-labs/upscalers", [files[UPSCALE]], downloads=40_000, likes=300)
    # the same name from two strangers, different bytes, similar popularity: no source is certain
    hub.add_repo("alice99/style-lora", [FakeFile.safetensors(STYLE, size=MB // 2, seed=23)], downloads=41)
    hub.add_repo("bobmirror/style-loras", [FakeFile.safetensors(STYLE, size=MB // 2, seed=24)], downloads=38)
    # what the IPAdapter preset implies, where the pack's docs say (renamed on download), and the mystery adapter
    hub.add_repo("h94/IP-Adapter", [FakeFile.safetensors("models/image_encoder/model.safetensors", size=MB // 4, seed=25),
                                    FakeFile.safetensors("sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors", size=MB // 4, seed=26)],
                 downloads=500_000, likes=5000)
    files[MYSTERY] = FakeFile.safetensors(MYSTERY, size=MB // 2, seed=27)
    hub.add_repo("e2e-labs/mystery-adapter", [files[MYSTERY]], downloads=5_000, likes=50)
    shards = [FakeFile.safetensors(f"e2e_big-0000{i}-of-00003.safetensors", size=MB, seed=30 + i) for i in (1, 2, 3)]
    index = {"metadata": {"total_size": 3 * MB}, "weight_map": {f"w{i}": s.path for i, s in enumerate(shards)}}
    hub.add_repo("e2e-labs/big", shards + [FakeFile("e2e_big.safetensors.index.json", data=json.dumps(index).encode(), lfs=False)],
                 downloads=70_000, likes=500)
    return files


def _node(nid: int, ntype: str, values: list, *, mode: int = 0, title: str | None = None, y: int = 0,
          outputs: tuple[str, ...] = ()) -> dict:
    n = {"id": nid, "type": ntype, "pos": [60 + 380 * ((nid - 1) % 2), 60 + 150 * ((nid - 1) // 2) + y],
         "size": [340, 90], "flags": {}, "order": nid, "mode": mode, "inputs": [],
         "outputs": [{"name": o, "type": o, "links": None} for o in outputs],
         "properties": {"Node name for S&R": ntype}, "widgets_values": values}
    if title:
        n["title"] = title
    return n


def _link(node: dict, name: str, folder: str, url: str) -> dict:
    node["properties"]["models"] = [{"name": name, "url": url, "directory": folder}]
    return node


def states_workflow(hub: str) -> dict:
    """The workflow; `hub` is the fake Hub's URL (three loaders carry a download link, as saved workflows do)."""
    upscale = _link(_node(1, "UpscaleModelLoader", [UPSCALE], outputs=("UPSCALE_MODEL",)), UPSCALE, "upscale_models",
                    f"{hub}/e2e-labs/upscalers/resolve/main/{UPSCALE}")
    upscale["title"] = "Load 4x upscaler"
    subgraph = {
        "id": SUBGRAPH_ID, "version": 1, "revision": 0, "config": {}, "name": "Upscale stage",
        "state": {"lastGroupId": 0, "lastNodeId": 1, "lastLinkId": 0, "lastRerouteId": 0},
        "inputNode": {"id": -10, "bounding": [0, 100, 120, 60]}, "outputNode": {"id": -20, "bounding": [600, 100, 120, 60]},
        "inputs": [], "outputs": [], "widgets": [], "nodes": [upscale], "groups": [], "links": [], "extra": {},
    }
    nodes = [
        _node(1, "VAELoader", ["present_vae.safetensors"], outputs=("VAE",)),
        _node(2, "CLIPLoader", [T5, "flux", "default"], outputs=("CLIP",)),
        _link(_node(3, "UNETLoader", [UNET, "default"], outputs=("MODEL",)), UNET, "diffusion_models",
              f"{hub}/e2e-labs/flux-dev/resolve/main/{UNET}"),
        _node(4, "LoraLoaderModelOnly", [STYLE, 1.0], outputs=("MODEL",)),
        _node(5, "LoraLoaderModelOnly", ["e2e_bypassed.safetensors", 1.0], mode=4, outputs=("MODEL",)),
        # ComfyUI-Custom-Scripts is not installed: ComfyUI shows this node without widgets
        _node(6, "CheckpointLoader|pysssss", ["dream.safetensors", "", None], outputs=("MODEL",)),
        _node(7, SUBGRAPH_ID, [], title="Upscale stage"),
        _link(_node(8, "UNETLoader", [SHARD, "default"], outputs=("MODEL",)), SHARD, "diffusion_models",
              f"{hub}/e2e-labs/big/resolve/main/{SHARD}"),
        # ComfyUI_IPAdapter_plus is not installed either; its preset implies the CLIP vision model
        _node(9, "IPAdapterUnifiedLoader", ["PLUS (high strength)"], title="IPAdapter for the face", outputs=("MODEL",)),
        # a pack nobody describes (no loader table entry, not installed: no /object_info)
        _node(10, "MysteryAdapterLoader", [MYSTERY], title="Mystery adapter", outputs=("MODEL",)),
    ]
    return {"id": str(uuid.UUID(int=7)), "revision": 0, "last_node_id": 10, "last_link_id": 0, "nodes": nodes,
            "links": [], "groups": [], "definitions": {"subgraphs": [subgraph]}, "config": {}, "extra": {}, "version": 0.4}


if __name__ == "__main__":  # pragma: no cover - a manual look
    import time

    root = Path(sys.argv[1])
    prepare_models(root)
    with FakeHub.running_in_thread() as hub, FakeCivitai.running_in_thread() as civitai:
        populate_hub(hub)
        Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/cmr-states-workflow.json").write_text(json.dumps(states_workflow(hub.url)))
        print(json.dumps({"hub": hub.url, "cdn": hub.cdn_url, "civitai": civitai.url}), flush=True)
        while True:
            time.sleep(3600)
