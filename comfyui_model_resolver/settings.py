"""One Settings object, built once per entry point and passed down.

Precedence (highest first): explicit overrides > CMR_* environment variables >
a `.env` file > an optional YAML file > defaults. No other module reads os.environ.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import ConfigError

# Settings are built by every entry point, `cmr analyze` included, so building them must be cheap:
# a frozen dataclass checked by the small validator below (pydantic alone costs more start-up time
# than a whole analysis). yaml and dotenv are imported only when such a file exists.

ENV_PREFIX = "CMR_"

# Hosts we download from without further configuration. A bare host matches
# only the default port of its scheme; "*." matches any subdomain.
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = (
    "huggingface.co",
    "*.huggingface.co",
    "hf.co",
    "*.hf.co",
    "civitai.com",
    "*.civitai.com",
    "*.r2.cloudflarestorage.com",  # Civitai's signed storage URLs
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def process_environ() -> dict[str, str]:
    """A copy of the process environment. This module is the package's only reader of os.environ
    (tests/test_architecture.py holds it to that): entry points call this once and pass it down."""
    return dict(os.environ)


def set_process_default(name: str, value: str) -> None:
    """Set a variable for third-party libraries (e.g. Gradio's telemetry switch) unless the user did."""
    os.environ.setdefault(name, value)


def _default_data_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "comfyui-model-resolver"


class SecretStr:
    """A secret (token, key) that never shows in repr, str or logs; `get_secret_value()` reveals it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')" if self._value else "SecretStr('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _limits(default: Any, **limits: float) -> Any:
    """A field with numeric bounds (ge, gt, le), checked when Settings are built."""
    return field(default=default, metadata=limits)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every knob, with its CMR_* variable named after the field in upper case.

    Build it with `Settings.load()` (YAML < .env < environment < overrides) or `Settings(**values)`;
    values are coerced and checked (ConfigError names the variable), and the object is frozen.
    """

    # servers
    api_host: str = "127.0.0.1"
    api_port: int = _limits(5002, ge=1, le=65535)
    api_key: SecretStr | None = None  # required for mutating routes on non-loopback binds
    cors_origins: tuple[str, ...] = ()
    enable_ui: bool = True
    gradio_host: str = "127.0.0.1"
    gradio_port: int = _limits(5001, ge=1, le=65535)
    max_request_bytes: int = _limits(64 * 1024 * 1024, ge=1024)
    log_level: str = "INFO"

    # local install
    comfyui_root: Path | None = None
    models_root: Path | None = None  # default: comfyui_root/models
    extra_model_paths: tuple[Path, ...] = ()  # default: comfyui_root/extra_model_paths.yaml if present
    comfyui_url: str | None = None  # a running ComfyUI, for /object_info
    object_info: Path | None = None  # a saved object_info.json
    data_dir: Path | None = None  # caches, job state; default ~/.cache/comfyui-model-resolver
    write_roots: tuple[Path, ...] = ()  # more places downloads may land (linked model folders), os.pathsep-separated

    # analysis
    max_workflow_bytes: int = _limits(50 * 1024 * 1024, ge=1024)

    # upstreams
    hf_endpoint: str = "https://huggingface.co"
    hf_token: SecretStr | None = None
    civitai_base_url: str = "https://civitai.com"
    civitai_api_key: SecretStr | None = None
    allowed_hosts: tuple[str, ...] = ()  # extends DEFAULT_ALLOWED_HOSTS
    redis_url: str | None = None
    disable_catalog: bool = False
    cache_ttl: int = _limits(24 * 3600, ge=0)
    http_timeout: float = _limits(30.0, gt=0)
    max_upstream_concurrency: int = _limits(4, ge=1)
    max_requests_per_model: int = _limits(8, ge=1, le=100)  # upstream lookups per model (pre-flight aside)

    # downloads
    max_concurrent_downloads: int = _limits(3, ge=1, le=64)
    download_timeout: float = _limits(300.0, gt=0)
    stall_timeout: float = _limits(60.0, gt=0)
    segment_threshold: int = _limits(64 * 1024 * 1024, ge=1)
    segments: int = _limits(4, ge=1, le=32)
    download_ramp_probe: float = _limits(0.25, ge=0, le=60)  # seconds one stream is measured before splitting
    download_retries: int = _limits(5, ge=0, le=50)
    download_fsync: bool = False  # fsync part files at checkpoints and before the final rename
    safetensors_only: bool = False

    # fleet (many hosts, one models volume; active with redis_url)
    volume_id: str | None = None  # default: the id in <models root>/.cmr-volume
    fleet_host: str | None = None  # this host's name in the fleet; default <hostname>-<pid>
    fleet_lease_seconds: float = _limits(30.0, ge=1, le=3600)  # a dead host's jobs are re-claimed after this
    fleet_max_concurrent: int = _limits(0, ge=0)  # downloads running fleet-wide at once; 0: no cap

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            try:
                object.__setattr__(self, f.name, _check(f, getattr(self, f.name)))
            except ValueError as exc:
                problems.append(f"{ENV_PREFIX}{f.name.upper()}: {exc}")
        if problems:
            raise ConfigError("Invalid configuration: " + "; ".join(problems),
                              hint="Fix the CMR_* variable, .env or YAML value named above.")

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for f in fields(self):
            yield f.name, getattr(self, f.name)

    # ---- derived values -------------------------------------------------
    @property
    def effective_models_root(self) -> Path | None:
        if self.models_root is not None:
            return self.models_root
        if self.comfyui_root is not None:
            return self.comfyui_root / "models"
        return None

    @property
    def effective_extra_model_paths(self) -> tuple[Path, ...]:
        if self.extra_model_paths:
            return self.extra_model_paths
        if self.comfyui_root is not None:
            p = self.comfyui_root / "extra_model_paths.yaml"
            if p.is_file():
                return (p,)
        return ()

    @property
    def effective_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else _default_data_dir(os.environ)

    @property
    def all_allowed_hosts(self) -> tuple[str, ...]:
        return DEFAULT_ALLOWED_HOSTS + tuple(self.allowed_hosts)

    def public_dict(self) -> dict[str, Any]:
        """Settings as JSON with secrets reduced to whether they are set."""
        out: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, SecretStr) or name in _SECRET_FIELDS:
                out[name] = {"set": bool(value and value.get_secret_value())}
            elif isinstance(value, Path):
                out[name] = str(value)
            elif isinstance(value, tuple):
                out[name] = [str(v) for v in value]
            else:
                out[name] = value
        return out

    def with_overrides(self, **overrides: Any) -> "Settings":
        data = dict(self)
        data.update({k: v for k, v in overrides.items()})
        return _validate(data)

    # ---- construction ---------------------------------------------------
    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | os.PathLike | None = None,
        yaml_file: str | os.PathLike | None = None,
        **overrides: Any,
    ) -> "Settings":
        """Build Settings from YAML < .env < environment < overrides.

        `env_file` defaults to CMR_ENV_FILE or ./.env; `yaml_file` to CMR_CONFIG.
        """
        env = dict(os.environ if environ is None else environ)
        merged: dict[str, Any] = {}

        yaml_path = yaml_file or env.get("CMR_CONFIG")
        if yaml_path:
            merged.update(_read_yaml(Path(yaml_path)))

        env_path = Path(env_file) if env_file else Path(env.get("CMR_ENV_FILE", ".env"))
        if env_path.is_file():
            from dotenv import dotenv_values

            merged.update(_from_env_mapping({k: v for k, v in dotenv_values(env_path).items() if v is not None}))

        runtime = _runtime_file(merged, env)
        if runtime is not None and runtime.is_file():
            # Changes made at run time (PATCH /config) sit below every file the user edits.
            merged = {**_read_yaml(runtime), **merged}

        # HF_ENDPOINT is the fallback for CMR_HF_ENDPOINT.
        if "CMR_HF_ENDPOINT" not in env and env.get("HF_ENDPOINT") and "hf_endpoint" not in merged:
            merged["hf_endpoint"] = env["HF_ENDPOINT"]
        merged.update(_from_env_mapping(env))
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return _validate(merged)


_SECRET_FIELDS = {"api_key", "hf_token", "civitai_api_key"}
RUNTIME_FILE = "settings.yaml"


def _runtime_file(merged: Mapping[str, Any], env: Mapping[str, str]) -> Path | None:
    data_dir = env.get("CMR_DATA_DIR") or merged.get("data_dir")
    base = Path(data_dir) if data_dir else _default_data_dir(env)
    return base / RUNTIME_FILE


def persist_runtime_settings(settings: "Settings", changes: Mapping[str, Any]) -> Path:
    """Merge `changes` into the data dir's settings.yaml (mode 0600: it may hold tokens). Blocking."""
    path = settings.effective_data_dir / RUNTIME_FILE
    current: dict[str, Any] = {}
    if path.is_file():
        current = _read_yaml(path)
    for key, value in changes.items():
        current[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
    plain = {k: (v.get_secret_value() if isinstance(v, SecretStr) else list(v) if isinstance(v, tuple) else
                 str(v) if isinstance(v, Path) else v) for k, v in current.items() if v is not None}
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(plain, f, sort_keys=True)
    os.replace(tmp, path)
    return path


_TUPLE_FIELDS = {"cors_origins", "extra_model_paths", "allowed_hosts", "write_roots"}


def _validate(data: Mapping[str, Any]) -> Settings:
    unknown = sorted(k for k in data if k not in Settings.model_fields)
    if unknown:
        raise ConfigError("Invalid configuration: " + "; ".join(f"{ENV_PREFIX}{k.upper()}: not a setting"
                                                                for k in unknown),
                          hint="Fix the CMR_* variable, .env or YAML value named above.")
    return Settings(**data)


def _number(kind: type, value: Any) -> float | int:
    if isinstance(value, bool):
        raise ValueError(f"should be a number, not {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if kind is int else float(text)
        except ValueError:
            raise ValueError(f"should be {'an integer' if kind is int else 'a number'}, not {value!r}") from None
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ValueError(f"should be an integer, not {value!r}")
    elif not isinstance(value, (int, float)):
        raise ValueError(f"should be a number, not {value!r}")
    return kind(value)


def _check(f: Any, value: Any) -> Any:
    """Coerce and check one field's value by its declared type; ValueError says what is wrong."""
    kind = str(f.type)
    optional = kind.endswith("| None")
    if value is None:
        if optional:
            return None
        raise ValueError("must be set")
    base = kind.replace(" | None", "")
    if base == "str":
        if not isinstance(value, str):
            raise ValueError(f"should be a string, not {value!r}")
        return _CHECKS[f.name](value) if f.name in _CHECKS else value
    if base in ("int", "float"):
        value = _number(int if base == "int" else float, value)
        lim = f.metadata
        if "ge" in lim and value < lim["ge"]:
            raise ValueError(f"should be at least {lim['ge']:g}, not {value:g}")
        if "gt" in lim and value <= lim["gt"]:
            raise ValueError(f"should be greater than {lim['gt']:g}, not {value:g}")
        if "le" in lim and value > lim["le"]:
            raise ValueError(f"should be at most {lim['le']:g}, not {value:g}")
        return value
    if base == "bool":
        if isinstance(value, bool):
            return value
        low = str(value).strip().lower()
        if low in _TRUE or low in _FALSE - {""}:
            return low in _TRUE
        raise ValueError(f"should be true or false, not {value!r}")
    if base == "SecretStr":
        if isinstance(value, SecretStr):
            return value
        if isinstance(value, str):
            return SecretStr(value)
        raise ValueError("should be a string")
    if base == "Path":
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise ValueError(f"should be a path, not {value!r}")
    if base.startswith("tuple["):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ValueError(f"should be a list, not {value!r}")
        if base == "tuple[Path, ...]":
            if not all(isinstance(v, (str, os.PathLike)) for v in value):
                raise ValueError("should be a list of paths")
            return tuple(Path(v) for v in value)
        if not all(isinstance(v, str) for v in value):
            raise ValueError("should be a list of strings")
        return tuple(value)
    raise TypeError(f"no check for {f.name}: {kind}")  # pragma: no cover - a field declared without one


def _log_level(v: str) -> str:
    v = v.upper()
    if v not in {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}:
        raise ValueError("must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG")
    return v


def _url(v: str) -> str:
    v = v.strip().rstrip("/")
    if not (v.startswith("http://") or v.startswith("https://")):
        raise ValueError("must start with http:// or https://")
    return v


def _name(value: str) -> str:
    """A volume id or host name: it goes into Redis keys and the job list."""
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", value):
        raise ValueError("should be 1-128 letters, digits, '.', '_', ':' or '-'")
    return value


_CHECKS = {"log_level": _log_level, "hf_endpoint": _url, "civitai_base_url": _url, "comfyui_url": _url,
           "volume_id": _name, "fleet_host": _name}
Settings.model_fields = {f.name: f for f in fields(Settings)}  # type: ignore[attr-defined]


def _coerce(name: str, raw: Any) -> Any:
    if name in _TUPLE_FIELDS:
        if isinstance(raw, str):
            sep = os.pathsep if name in ("extra_model_paths", "write_roots") else ","
            return tuple(p.strip() for p in raw.split(sep) if p.strip())
        if isinstance(raw, (list, tuple)):
            return tuple(str(p) for p in raw)
    if isinstance(raw, str) and name in {"enable_ui", "disable_catalog", "safetensors_only", "download_fsync"}:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    if isinstance(raw, str) and raw.strip() == "" and name not in {"log_level"}:
        return None
    return raw


def _from_env_mapping(env: Mapping[str, str]) -> dict[str, Any]:
    fields = Settings.model_fields
    out: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in fields:
            value = _coerce(name, raw)
            if value is not None:
                out[name] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of setting names to values")
    fields = Settings.model_fields
    out: dict[str, Any] = {}
    for key, raw in data.items():
        name = str(key).lower()
        if name.startswith(ENV_PREFIX.lower()):
            name = name[len(ENV_PREFIX):]
        if name not in fields:
            raise ConfigError(f"Config file {path}: unknown setting {key!r}")
        value = _coerce(name, raw)
        if value is not None:
            out[name] = value
    return out
