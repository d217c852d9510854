"""The typed seam between the doors and the core.

Doors (the ComfyUI routes, the sidecar, the Gradio UI, the CLI) turn what arrives into an
`ApiRequest`, call a route's handler with something that satisfies `ResolverPort` (the `Resolver`
does), and send back the `ApiResponse`. Nothing else crosses: handlers never see a framework, and
doors never reach into the core's modules beyond this.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from ..events import EventBus
    from ..settings import Settings
    from ..types import Analysis, DownloadRequest, Job, Resolution


@dataclass
class ApiRequest:
    body: Any = None  # parsed JSON body
    upload: bytes | memoryview | None = None  # the workflow of analyze/resolve: a JSON body, a .png/.webp,
    #                                           or a multipart file (a view into the body: no copy)
    upload_name: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ApiResponse:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def error_body(type_: str, message: str, hint: str | None = None, code: str | None = None, **extra: Any) -> dict:
    """The one error shape every door answers with: `{"error": {"type", "code", "message", "hint"}}`."""
    return {"error": {"type": type_, "code": code or type_, "message": message, "hint": hint, **extra}}


class DownloadsPort(Protocol):
    """What the route handlers use of the download manager."""

    async def submit(self, req: "DownloadRequest") -> "Job": ...
    def jobs(self) -> list["Job"]: ...
    def job(self, job_id: str) -> "Job": ...
    async def cancel(self, job_id: str, keep_partial: bool = False) -> "Job": ...
    async def pause(self, job_id: str) -> "Job": ...
    async def resume(self, job_id: str) -> "Job": ...


@runtime_checkable
class ResolverPort(Protocol):
    """What the route handlers use of the core (`service.Resolver` satisfies it)."""

    settings: "Settings"
    events: "EventBus"
    downloads: DownloadsPort

    async def analyze(self, data: Any, name: str = ...) -> "Analysis": ...
    async def resolve(self, data: Any, name: str = ...) -> "Resolution": ...
    async def search(self, query: str, folder: str | None = ...) -> Any: ...
    async def download_resolution(self, models: list[dict], *, include_inactive: bool = ...,
                                  include_optional: bool = ...) -> tuple[list["Job"], list, list]: ...
    async def move_model(self, path: str, folder: str, filename: str) -> dict[str, Any]: ...
    def public_config(self) -> dict[str, Any]: ...
    async def update_settings(self, **changes: Any) -> Any: ...
    async def refresh_index(self) -> Any: ...
    def local_models(self, folder: str | None = ...) -> Any: ...
    async def ensure(self, workflows: Any, *, wait: bool = ..., timeout: float | None = ...) -> Any: ...


__all__ = ["ApiRequest", "ApiResponse", "DownloadsPort", "ResolverPort", "error_body"]
