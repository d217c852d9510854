"""ComfyUI entry point for the ComfyUI Model Resolver custom-node package.

ComfyUI imports this file as a package from custom_nodes/<name>/. Outside ComfyUI
(pytest, the sidecar, pip installs) importing it has no side effects.
"""
NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
WEB_DIRECTORY = "./web/js"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]


def _inside_comfyui() -> bool:
    import sys

    server = sys.modules.get("server")
    return bool(__package__) and server is not None and getattr(getattr(server, "PromptServer", None), "instance", None) is not None


if _inside_comfyui():  # pragma: no cover - exercised by the real-ComfyUI acceptance test
    from .comfyui_model_resolver.adapters import comfyui as _comfyui_adapter

    _comfyui_adapter.install()
