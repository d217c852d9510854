"""A stand-in for the parts of ComfyUI the adapter touches: PromptServer, folder_paths and nodes.

Built as plain objects passed to `adapters.comfyui.install(server, folder_paths, nodes)` — nothing
is put into sys.modules. `serve()` then builds the aiohttp app the way ComfyUI's
`PromptServer.add_routes` does: every route bare and under `/api`, with ComfyUI's own
origin check for loopback hosts in front.
"""
from __future__ import annotations

import asyncio
import os
import types
import urllib.parse
from pathlib import Path
from typing import Any

from aiohttp import web

MODEL_EXTS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}


class StandInServer:
    """`PromptServer.instance` as far as the adapter is concerned."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.routes = web.RouteTableDef()
        self.app = web.Application()
        self.loop = loop
        self.sent: list[tuple[str, Any, Any]] = []
        self.sent_event = asyncio.Event()

    def send_sync(self, event: str, data: Any, sid: Any = None) -> None:
        self.sent.append((event, data, sid))
        self.sent_event.set()

    def build_app(self) -> web.Application:
        """What ComfyUI's add_routes does with `self.routes`: `/api` copies first, then bare paths."""
        app = self.app
        app.middlewares.append(_comfy_origin_only_middleware)
        api_routes = web.RouteTableDef()
        for route in self.routes:
            if isinstance(route, web.RouteDef):
                api_routes.route(route.method, "/api" + route.path)(route.handler, **route.kwargs)
        app.add_routes(api_routes)
        app.add_routes(self.routes)
        return app


@web.middleware
async def _comfy_origin_only_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """ComfyUI 0.3.64's create_origin_only_middleware, condensed (loopback Host vs Origin)."""
    host, origin = request.headers.get("Host"), request.headers.get("Origin")
    if host and origin:
        parsed = urllib.parse.urlparse(origin)
        host_parsed = urllib.parse.urlsplit("//" + host.lower())
        host_domain = host.lower() if parsed.port is not None else host_parsed.hostname
        origin_domain = parsed.netloc.lower() if host_parsed.port is not None else parsed.hostname
        if host_parsed.hostname in ("127.0.0.1", "localhost", "::1") and host_domain and origin_domain \
                and host_domain != origin_domain:
            return web.Response(status=403)
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)


def make_folder_paths(base: Path, extra: dict[str, list[Path]] | None = None) -> types.ModuleType:
    """A `folder_paths` module over `base` (models/ below it), like ComfyUI's, with a real file scan."""
    fp = types.ModuleType("folder_paths")
    models = base / "models"
    fp.base_path = str(base)
    fp.models_dir = str(models)
    names = {
        "checkpoints": ["checkpoints"], "configs": ["configs"], "loras": ["loras"], "vae": ["vae"],
        "text_encoders": ["text_encoders", "clip"], "diffusion_models": ["unet", "diffusion_models"],
        "controlnet": ["controlnet", "t2i_adapter"], "upscale_models": ["upscale_models"],
        "embeddings": ["embeddings"],
    }
    fp.folder_names_and_paths = {
        k: ([str(models / d) for d in v], {".yaml"} if k == "configs" else set(MODEL_EXTS)) for k, v in names.items()
    }
    fp.folder_names_and_paths["custom_nodes"] = ([str(base / "custom_nodes")], set())
    for folder, dirs in (extra or {}).items():
        paths, exts = fp.folder_names_and_paths.setdefault(folder, ([], set(MODEL_EXTS)))
        paths.extend(str(d) for d in dirs)
    legacy = {"clip": "text_encoders", "unet": "diffusion_models"}
    fp.map_legacy = lambda name: legacy.get(name, name)
    fp.get_user_directory = lambda: str(base / "user")
    fp.calls = []

    def get_filename_list(folder_name: str) -> list[str]:
        folder_name = fp.map_legacy(folder_name)
        fp.calls.append(folder_name)
        dirs, exts = fp.folder_names_and_paths[folder_name]
        found = set()
        for d in dirs:
            for root, _subdirs, files in os.walk(d):
                for f in files:
                    if os.path.splitext(f)[1].lower() in exts or not exts:
                        found.add(os.path.relpath(os.path.join(root, f), d).replace(os.sep, "/"))
        return sorted(found)

    fp.get_filename_list = get_filename_list
    return fp


def make_nodes(fp: types.ModuleType) -> types.ModuleType:
    """Node classes that read folders the ways real packs do."""
    nodes = types.ModuleType("nodes")

    class CheckpointLoaderSimple:  # core V1: passes the list through
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"ckpt_name": (fp.get_filename_list("checkpoints"),)}}

    class CheckpointLoader:  # two folders, one of them a non-model folder
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"config_name": (fp.get_filename_list("configs"),),
                                 "ckpt_name": (fp.get_filename_list("checkpoints"),)}}

    class PackLoraLoader:  # prepends a placeholder: the list object changes, names survive
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"lora": (["None"] + fp.get_filename_list("loras"),),
                                 "strength": ("FLOAT", {"default": 1.0})}}

    class MergedLoader:  # two folders merged and sorted
        @classmethod
        def INPUT_TYPES(cls):
            merged = sorted(fp.get_filename_list("checkpoints") + fp.get_filename_list("diffusion_models"))
            return {"required": {"model_name": (merged,)}}

    class ClipLoaderLegacy:  # legacy folder name
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"clip_name": (fp.get_filename_list("clip"),)}}

    class PackV3Loader:  # a V3 node with a pack's own, empty folder
        @classmethod
        def GET_NODE_INFO_V1(cls):
            return {"input": {"required": {"weights": ["COMBO", {"options": fp.get_filename_list("pack_models")}]}},
                    "input_order": {"required": ["weights"]}, "name": "PackV3Loader"}

    class TripleV3Copies:  # V3 node copying each list (as GET_NODE_INFO_V1 may): identity is lost
        @classmethod
        def GET_NODE_INFO_V1(cls):
            combos = {f"clip_name{i}": ["COMBO", {"options": list(fp.get_filename_list("text_encoders"))}] for i in (1, 2, 3)}
            return {"input": {"required": combos}, "input_order": {"required": list(combos)}}

    _listed_at_import = fp.get_filename_list("upscale_models")

    class ImportTimeLister:  # listed once at import; INPUT_TYPES makes no call
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"model": (list(_listed_at_import),)}}

    class BrokenNode:
        @classmethod
        def INPUT_TYPES(cls):
            raise RuntimeError("this pack is broken")

    nodes.NODE_CLASS_MAPPINGS = {c.__name__: c for c in (
        CheckpointLoaderSimple, CheckpointLoader, PackLoraLoader, MergedLoader, ClipLoaderLegacy, PackV3Loader,
        TripleV3Copies, ImportTimeLister, BrokenNode)}
    nodes.NODE_DISPLAY_NAME_MAPPINGS = {"CheckpointLoaderSimple": "Load Checkpoint"}
    return nodes
