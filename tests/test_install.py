"""install.py: what ComfyUI-Manager runs after cloning the pack."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import venv

import pytest

from support.paths import REPO

spec = importlib.util.spec_from_file_location("cmr_install", REPO / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)

DEPS = install.read_dependencies(REPO / "pyproject.toml")


def test_reads_the_runtime_dependencies_from_pyproject():
    assert "aiohttp>=3.9" in DEPS and "uvicorn[standard]>=0.27" in DEPS and "pydantic>=2.5,<3" in DEPS
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert install._dependencies_from_text(text) == DEPS  # the fallback parser (no tomllib) agrees


def _requires(table):
    return lambda name: table.get(name, [])


def test_plan_skips_what_is_satisfied_and_installs_the_rest():
    installed = {"aiohttp": "3.11.8", "pydantic": "2.10.0", "pyyaml": "6.0.2", "tqdm": "4.67.0",
                 "huggingface-hub": "0.20.0", "uvicorn": "0.30.0", "torch": "2.5.0"}
    requires = _requires({"uvicorn": ['websockets>=10.4; extra == "standard"', "click>=7.0",
                                      'httptools>=0.5.0; extra == "standard"']})
    to_install, upgrades, problems = install.plan(DEPS, installed, set(install.ALWAYS_PROTECTED), requires)
    assert problems == []
    names = {t.split("[")[0].split(">")[0].split("<")[0].split("=")[0] for t in to_install}
    assert names == {"aiofiles", "python-dotenv", "fastapi", "uvicorn", "huggingface-hub"}
    assert upgrades == ["huggingface-hub"]  # too old and not protected: may move
    requires_ok = _requires({"uvicorn": ['websockets>=10.4; extra == "standard"']})
    full = {**installed, "websockets": "13.0", "aiofiles": "24.1", "python-dotenv": "1.0.1", "fastapi": "0.115.0",
            "huggingface-hub": "0.26.0"}
    assert install.plan(DEPS, full, set(install.ALWAYS_PROTECTED), requires_ok) == ([], [], [])


def test_protected_packages_are_never_moved():
    installed = {"pydantic": "1.10.0", "numpy": "1.26.0"}
    to_install, upgrades, problems = install.plan(["pydantic>=2.5,<3", "numpy>=2", "torch>=9"], installed,
                                                  set(install.ALWAYS_PROTECTED) | {"pydantic"})
    assert to_install == [] and upgrades == []
    assert len(problems) == 2 and "pinned by ComfyUI" in problems[0] and "pydantic" in problems[0]
    pins = install.constraints({"torch": "2.5.0+cu124", "numpy": "1.26.0", "tqdm": "4.0", "weird": "not a version!"},
                               exclude={"tqdm"})
    assert pins.splitlines() == ["numpy==1.26.0", "torch==2.5.0+cu124"]
    assert install.constraints({"torch": "2.5.0", "tqdm": "4.0"}, exclude=set(), only={"torch"}) == "torch==2.5.0\n"


def test_comfyui_requirements_are_protected(tmp_path):
    root = tmp_path / "ComfyUI"
    pack = root / "custom_nodes" / "comfyui-model-resolver"
    pack.mkdir(parents=True)
    (root / "main.py").write_text("")
    (root / "requirements.txt").write_text("comfyui-frontend-package==1.27.10\ntorch\nnumpy>=1.25.0\n#c\n"
                                           "pydantic~=2.0\nAiohttp>=3.11.8 # web\n")
    assert install.comfyui_requirements(pack) == {"comfyui-frontend-package", "torch", "numpy", "pydantic", "aiohttp"}
    assert install.comfyui_requirements(tmp_path / "nowhere" / "x") == set()


def test_quiet_and_idempotent_when_nothing_is_missing():
    """The test environment has every runtime dependency: install.py prints nothing and exits 0."""
    proc = subprocess.run([sys.executable, str(REPO / "install.py")], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""


@pytest.mark.timeout(180)
def test_fresh_environment_lists_everything_and_pins_what_is_there(tmp_path):
    env_dir = tmp_path / "venv"
    try:
        venv.EnvBuilder(with_pip=True).create(env_dir)
    except Exception as exc:  # noqa: BLE001 - e.g. ensurepip missing on a bare Debian python
        pytest.skip(f"cannot create a venv with pip here: {exc}")
    py = env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    proc = subprocess.run([str(py), str(REPO / "install.py"), "--dry-run"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first, *pins = proc.stdout.splitlines()
    assert first.startswith("[Model Resolver install] installing into ") and str(py) in first
    for dep in ("aiohttp>=3.9", "fastapi>=0.110", "uvicorn[standard]>=0.27", "huggingface-hub>=0.23"):
        assert dep in first
    assert any(p.startswith("pip==") for p in pins)  # what is there is pinned


def _comfy_cli() -> str | None:
    import os
    import shutil
    from pathlib import Path

    for cand in (os.environ.get("COMFY_CLI"), str(Path(sys.executable).with_name("comfy")), shutil.which("comfy")):
        if cand and Path(cand).is_file():
            return cand
    return None


def test_comfy_node_validate_passes():
    """The ComfyUI Registry's check (`comfy node validate`, PyPI comfy-cli, a dev extra)."""
    comfy = _comfy_cli()
    if comfy is None:
        pytest.skip("comfy-cli is not installed (pip install comfy-cli, or set COMFY_CLI)")
    proc = subprocess.run([comfy, "--skip-prompt", "--no-enable-telemetry", "node", "validate"], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "All validation checks passed" in out and "Warning" not in out, out
