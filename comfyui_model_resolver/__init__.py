"""ComfyUI Model Resolver: find, resolve and download the models a ComfyUI workflow needs.

The core package. It never imports fastapi, gradio, ComfyUI's `server` or `folder_paths`;
those live in the adapters (`adapters/comfyui.py`, `sidecar/`).
"""
__version__ = "0.1.0"
