"""Install ComfyUI Model Resolver's runtime dependencies into the Python running this script.

ComfyUI-Manager (and `comfy node install`) run `python install.py` with ComfyUI's own Python after
cloning the pack. This script:

* reads `[project].dependencies` from pyproject.toml (the one list of runtime dependencies);
* skips every requirement that is already installed at a satisfying version (extras included,
  e.g. `uvicorn[standard]`), so running it again does nothing and prints nothing;
* never changes torch & co or anything ComfyUI pins: pip gets a constraints file with the installed
  version of every distribution already there (`name==version`). Only if pip cannot resolve that
  does it retry with just the protected ones pinned (torch*, numpy, xformers, the frontend packages
  and every package named in ComfyUI's requirements.txt), and it says what else would move;
* refuses to touch a protected package that is too old for us, and says so (exit 1);
* uses `python -m pip`, or `uv pip --python <this python>` when pip is not installed.

Usage: python install.py [--dry-run] [--verbose]
Exit codes: 0 done (or nothing to do), 1 something could not be installed.
"""
from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:  # packaging ships with pip; ComfyUI's environment has it too
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - very old environments
    from pip._vendor.packaging.markers import default_environment  # type: ignore[no-redef]
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]
    from pip._vendor.packaging.version import InvalidVersion, Version  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
PREFIX = "[Model Resolver install]"

#: Never up- or downgraded by this script, whatever the requirement says.
ALWAYS_PROTECTED = frozenset(canonicalize_name(n) for n in (
    "torch", "torchvision", "torchaudio", "torchsde", "xformers", "triton", "numpy", "pip", "setuptools",
    "comfyui-frontend-package", "comfyui-workflow-templates", "comfyui-embedded-docs", "comfyui-manager",
))
#: Never installed by this script even if listed (the frontend is ComfyUI's business).
NEVER_INSTALL = frozenset(canonicalize_name(n) for n in ("comfyui-frontend-package", "torch", "torchvision", "torchaudio"))


# ---- reading the requirement list ------------------------------------------------------------------
def read_dependencies(pyproject: Path) -> list[str]:
    """[project].dependencies of a pyproject.toml (tomllib, else tomli, else a small parser)."""
    text = pyproject.read_text(encoding="utf-8")
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            return _dependencies_from_text(text)
    data = tomllib.loads(text)
    deps = data.get("project", {}).get("dependencies", [])
    return [str(d) for d in deps]


def _dependencies_from_text(text: str) -> list[str]:
    """`dependencies = [ "a>=1", ... ]` inside [project], without a TOML library."""
    section = re.search(r"^\[project\]\s*$(.*?)(?=^\[[^\]\n]+\]\s*$|\Z)", text, re.M | re.S)
    body = section.group(1) if section else ""
    m = re.search(r"^dependencies\s*=\s*\[", body, re.M)
    if not m:
        return []
    out, i, n = [], m.end(), len(body)
    while i < n:  # quoted strings until the closing bracket outside quotes
        c = body[i]
        if c in "\"'":
            j = body.index(c, i + 1)
            out.append(body[i + 1:j])
            i = j + 1
        elif c == "#":
            i = body.find("\n", i) if "\n" in body[i:] else n
        elif c == "]":
            break
        else:
            i += 1
    return out


def comfyui_requirements(start: Path = HERE) -> set[str]:
    """Package names in ComfyUI's requirements.txt (custom_nodes/<pack>/ -> ComfyUI root), if found."""
    candidates = []
    env_root = os.environ.get("COMFYUI_PATH")
    if env_root:
        candidates.append(Path(env_root))
    candidates += [start.parent.parent, start.parent]
    for root in candidates:
        req = root / "requirements.txt"
        if req.is_file() and ((root / "comfy").is_dir() or (root / "main.py").is_file()):
            names = set()
            for line in req.read_text(encoding="utf-8", errors="replace").splitlines():
                line = line.split("#", 1)[0].strip()
                if not line or line.startswith("-"):
                    continue
                try:
                    names.add(canonicalize_name(Requirement(line).name))
                except InvalidRequirement:
                    continue
            return names
    return set()


# ---- what is installed --------------------------------------------------------------------------------
def installed_distributions() -> dict[str, str]:
    """Canonical name -> version of every distribution importable by this Python."""
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and dist.version:
            out.setdefault(canonicalize_name(name), dist.version)
    return out


def _requires(name: str) -> list[str]:
    try:
        return list(metadata.requires(name) or [])
    except metadata.PackageNotFoundError:
        return []


def _satisfied(req: Requirement, installed: dict[str, str], requires=_requires, depth: int = 0) -> bool:
    """Installed at a version inside the specifier, and (for extras) every extra dependency too."""
    version = installed.get(canonicalize_name(req.name))
    if version is None:
        return False
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return False
    if req.extras and depth == 0:
        env = default_environment()
        for raw in requires(req.name):
            try:
                sub = Requirement(raw)
            except InvalidRequirement:
                continue
            if sub.marker is None:
                continue  # a base dependency: pip checked it when the package was installed
            if any(sub.marker.evaluate({**env, "extra": extra}) for extra in req.extras) \
                    and not _satisfied(sub, installed, requires, depth + 1):
                return False
    return True


def plan(requirements: list[str], installed: dict[str, str], protected: set[str],
         requires=_requires) -> tuple[list[str], list[str], list[str]]:
    """(to_install, upgrades_of_unprotected, problems) for the given requirement strings."""
    env = default_environment()
    to_install: list[str] = []
    upgrades: list[str] = []
    problems: list[str] = []
    for raw in requirements:
        try:
            req = Requirement(raw)
        except InvalidRequirement as exc:
            problems.append(f"pyproject.toml has an invalid requirement {raw!r}: {exc}")
            continue
        name = canonicalize_name(req.name)
        if name in NEVER_INSTALL or (req.marker is not None and not req.marker.evaluate(env)):
            continue
        if _satisfied(req, installed, requires):
            continue
        have = installed.get(name)
        if have is not None and req.specifier and not req.specifier.contains(have, prereleases=True):
            if name in protected:
                problems.append(f"{req.name} {have} is installed and pinned by ComfyUI, but the Model Resolver "
                                f"needs {req.name}{req.specifier}; update ComfyUI (and its requirements) first.")
                continue
            upgrades.append(name)
        to_install.append(str(req))
    return to_install, upgrades, problems


def constraints(installed: dict[str, str], *, exclude: set[str], only: set[str] | None = None) -> str:
    """A pip constraints file pinning installed versions (all, or only `only`), minus `exclude`."""
    lines = []
    for name, version in sorted(installed.items()):
        if name in exclude or (only is not None and name not in only):
            continue
        try:
            Version(version)
        except InvalidVersion:
            continue
        lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


# ---- running pip ----------------------------------------------------------------------------------------
def installer_command() -> list[str] | None:
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    uv = shutil.which("uv")
    if uv:
        return [uv, "pip", "install", "--python", sys.executable]
    return None


def run_install(base_cmd: list[str], packages: list[str], pins: str, verbose: bool) -> subprocess.CompletedProcess:
    with tempfile.NamedTemporaryFile("w", suffix="-constraints.txt", delete=False, encoding="utf-8") as f:
        f.write(pins)
        path = f.name
    try:
        cmd = [*base_cmd, "-c", path, *packages]
        if verbose:
            print(f"{PREFIX} {' '.join(cmd)}", flush=True)
        return subprocess.run(cmd, capture_output=not verbose, text=True)
    finally:
        os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install the Model Resolver's missing runtime dependencies.")
    parser.add_argument("--dry-run", action="store_true", help="only print what would be installed")
    parser.add_argument("--verbose", action="store_true", help="show pip's output")
    args = parser.parse_args(argv)

    requirements = read_dependencies(HERE / "pyproject.toml")
    installed = installed_distributions()
    protected = set(ALWAYS_PROTECTED) | comfyui_requirements()
    to_install, upgrades, problems = plan(requirements, installed, protected)
    for p in problems:
        print(f"{PREFIX} ERROR: {p}", file=sys.stderr)
    if not to_install:
        return 1 if problems else 0  # nothing missing: stay quiet
    print(f"{PREFIX} installing into {sys.executable}: {', '.join(to_install)}", flush=True)
    if args.dry_run:
        print(constraints(installed, exclude=set(upgrades)), end="")
        return 1 if problems else 0
    base = installer_command()
    if base is None:
        print(f"{PREFIX} ERROR: neither pip nor uv is available for {sys.executable}. Install these yourself: "
              f"{' '.join(to_install)}", file=sys.stderr)
        return 1
    result = run_install(base, to_install, constraints(installed, exclude=set(upgrades)), args.verbose)
    if result.returncode != 0:
        # Everything pinned was too strict: keep only torch & co and ComfyUI's own pins fixed.
        relaxed = constraints(installed, exclude=set(upgrades), only=protected)
        retry = run_install(base, to_install, relaxed, args.verbose)
        if retry.returncode != 0:
            tail = "\n".join(((retry.stdout or "") + (retry.stderr or "")).strip().splitlines()[-15:])
            print(f"{PREFIX} ERROR: pip could not install {', '.join(to_install)} without changing packages "
                  f"ComfyUI needs:\n{tail}", file=sys.stderr)
            return 1
        result = retry
    after = installed_distributions()
    moved = sorted(f"{n} {installed[n]} -> {after[n]}" for n in installed if n in after and after[n] != installed[n])
    added = sorted(f"{n} {after[n]}" for n in after if n not in installed)
    print(f"{PREFIX} done: added {', '.join(added) or 'nothing'}"
          + (f"; upgraded {', '.join(moved)}" if moved else ""), flush=True)
    broken = [m for m in moved if m.split()[0] in protected]
    if broken:  # pragma: no cover - the constraints make this impossible; say so loudly if it ever happens
        print(f"{PREFIX} ERROR: protected packages changed: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
