"""ComfyUI entry point for the ComfyUI Model Resolver custom-node package.

ComfyUI imports this file as a package from custom_nodes/<name>/: it registers the HTTP routes
(`/cmr/v1/…`, also `/api/cmr/v1/…`) and serves the sidebar tab from `web/js`. It adds no nodes.
Outside ComfyUI (pytest, the sidecar, pip installs) importing it has no side effects.
"""
import logging

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
WEB_DIRECTORY = "./web/js"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]


def _inside_comfyui() -> bool:
    import sys

    server = sys.modules.get("server")
    return bool(__package__) and server is not None and getattr(getattr(server, "PromptServer", None), "instance", None) is not None


if _inside_comfyui():  # pragma: no cover - exercised by the real-ComfyUI end-to-end test
    try:
        from .comfyui_model_resolver.adapters import comfyui as _comfyui_adapter

        _ADAPTER = _comfyui_adapter.install()
    except ImportError as _exc:
        # A runtime dependency is missing (install.py did not run): say how to fix it, and keep
        # ComfyUI's start-up clean rather than failing the whole import.
        import os as _os
        import sys as _sys

        logging.getLogger("comfyui_model_resolver").error(
            "[Model Resolver] disabled, a dependency is missing (%s). Fix: %s %s, then restart ComfyUI.",
            _exc, _sys.executable, _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "install.py"))
