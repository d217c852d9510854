"""The error tree. Every failure a user can cause or meet is one of these.

    ResolverError                      base: message + hint, safe to show to a user
    ├── ConfigError                    bad CMR_* value, unreadable config file
    ├── RequestTooLarge                a body over CMR_MAX_REQUEST_BYTES (`too_large` builds every such error)
    ├── WorkflowError (ValueError)     unusable workflow / image input
    │   └── WorkflowTooLarge           over CMR_MAX_WORKFLOW_BYTES, or more nodes/models than any workflow has
    ├── LocalIndexError                models root unreadable, bad extra_model_paths.yaml
    ├── SourceError                    an upstream (Hub, Civitai, …) failed
    │   ├── AuthRequired               401/403: which token to set is in `token_env`, why in `reason`
    │   ├── RateLimited                429: `retry_after` seconds when known
    │   ├── NotFound                   404 / nothing matched
    │   └── SourceUnavailable          network error, 5xx, bad JSON
    ├── DownloadError                  a transfer failed
    │   ├── IntegrityError             size / sha256 / safetensors header mismatch
    │   ├── UnsafePath                 target outside the model folders, bad filename
    │   │   └── UnknownFolder          a typed folder ComfyUI does not know (a typo?) and nobody asked to create
    │   ├── HostNotAllowed             URL or redirect to a host off the allowlist
    │   ├── InsufficientSpace          not enough free disk (checked up front, or ENOSPC)
    │   ├── UnsafeFormat               code (.py, .js, .so…), or pickle (.ckpt/.pt/.bin…) under CMR_SAFETENSORS_ONLY
    │   ├── TargetExists               a different file already sits under the target name
    │   └── DownloadCancelled          the user cancelled
    └── JobNotFound                    unknown download job id

Messages never contain tokens; `hint` tells the user what to do next.
Adapters map these types (never message text) to HTTP statuses in one table.
"""
from __future__ import annotations


class ResolverError(Exception):
    """Base class. `message` is user-facing; `hint` suggests a next step."""

    code = "resolver_error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict:
        return {"type": type(self).__name__, "code": self.code, "message": self.message, "hint": self.hint}

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class ConfigError(ResolverError):
    code = "config_error"


class WorkflowError(ResolverError, ValueError):
    code = "workflow_error"


class RequestTooLarge(ResolverError):
    code = "request_too_large"


class WorkflowTooLarge(WorkflowError):
    code = "workflow_too_large"


def too_large(what: str, amount: int, limit: int, setting: str | None = None, *, unit: str = "bytes",
              at_least: bool = False) -> ResolverError:
    """The one "too large" error, in one wording, for every limit (bodies, workflows, node and model
    counts). `what` names the thing ("workflow", "request body", "workflow's node list"…); a request
    body gives RequestTooLarge, anything else WorkflowTooLarge. Both answer 413."""
    amount_text = f"{amount:,} {unit}" + (" or more" if at_least else "")
    verb = "is" if unit == "bytes" else "has"  # "The workflow is 60 MB…", "The workflow has 200,000 nodes…"
    message = f"The {what} {verb} {amount_text}, over the limit of {limit:,} {unit}."
    if setting:
        hint = f"Raise {setting} if this is genuine."
    else:
        hint = "No ComfyUI workflow comes near this; the input is not a workflow as saved by ComfyUI."
    cls = RequestTooLarge if what == "request body" else WorkflowTooLarge
    return cls(message, hint=hint)


class LocalIndexError(ResolverError):
    code = "index_error"


class SourceError(ResolverError):
    code = "source_error"

    def __init__(self, message: str, *, hint: str | None = None, source: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.source = source


class AuthRequired(SourceError):
    code = "auth_required"

    #: reason: gated (HF licence), login_required, early_access, no_access, invalid_token
    def __init__(self, message: str, *, hint: str | None = None, source: str | None = None,
                 token_env: str | None = None, gated: bool = False, reason: str | None = None) -> None:
        super().__init__(message, hint=hint, source=source)
        self.token_env = token_env
        self.gated = gated
        self.reason = reason or ("gated" if gated else None)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "token_env": self.token_env, "reason": self.reason}


class RateLimited(SourceError):
    code = "rate_limited"

    def __init__(self, message: str, *, hint: str | None = None, source: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint, source=source)
        self.retry_after = retry_after

    def to_dict(self) -> dict:
        return {**super().to_dict(), "retry_after": self.retry_after}


class NotFound(SourceError):
    code = "not_found"


class SourceUnavailable(SourceError):
    code = "unavailable"


def is_name_resolution_failure(exc: BaseException) -> bool:
    """True when `exc` says a host name could not be resolved (no DNS: offline, a typo in an endpoint).

    Retrying that does not help the way it helps a dropped connection, so callers retry it at most once."""
    import socket

    for err in (exc, getattr(exc, "os_error", None), exc.__cause__):
        if isinstance(err, socket.gaierror) or type(err).__name__ == "ClientConnectorDNSError":
            return True
    return False


def cannot_resolve(host: str, *, source: str | None = None) -> SourceUnavailable:
    """The one plain-words error for a host name that does not resolve."""
    return SourceUnavailable(f"Offline / cannot resolve host {host}.", source=source,
                             hint="Check the network connection, DNS or proxy, and the endpoint setting.")


class DownloadError(ResolverError):
    code = "download_error"


class IntegrityError(DownloadError):
    code = "integrity_error"


class UnsafePath(DownloadError):
    code = "unsafe_path"


class UnknownFolder(UnsafePath):
    code = "unknown_folder"


class HostNotAllowed(DownloadError):
    code = "host_not_allowed"


class InsufficientSpace(DownloadError):
    code = "insufficient_space"


class UnsafeFormat(DownloadError):
    code = "unsafe_format"


class TargetExists(DownloadError):
    code = "target_exists"


class DownloadCancelled(DownloadError):
    code = "cancelled"


class JobNotFound(ResolverError):
    code = "job_not_found"
