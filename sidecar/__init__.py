"""The standalone sidecar: the shared route table (`comfyui_model_resolver.adapters.routes`) served by
FastAPI on port 5002, plus health, metrics, server-sent events and the optional Gradio UI.

It holds no resolver logic: every API route is `routes.dispatch` on the one Resolver of the app.
Importing this package has no side effects; `sidecar.main.create_app(settings)` builds an app.
"""
