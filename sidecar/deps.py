"""FastAPI dependency aliases: the app's one Resolver and Settings live on `app.state`."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from comfyui_model_resolver.service import Resolver
from comfyui_model_resolver.settings import Settings

from .health import UpstreamProbe
from .metrics import Metrics


def get_resolver(request: Request) -> Resolver:
    return request.app.state.resolver


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_probe(request: Request) -> UpstreamProbe:
    return request.app.state.probe


ResolverDep = Annotated[Resolver, Depends(get_resolver)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ProbeDep = Annotated[UpstreamProbe, Depends(get_probe)]
