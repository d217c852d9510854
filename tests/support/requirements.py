"""The deploy spec's requirements files, generated from pyproject.toml (the one list of dependencies).

    python tests/support/requirements.py          # rewrite requirements-*.txt at the repo root
    python tests/support/requirements.py --check  # exit 1 if they differ (tests/test_requirements.py)

requirements-production.txt: the runtime dependencies (core, API, CLI); requirements-ui.txt: those plus
the `ui` extra (Gradio); requirements-optional.txt: the `redis`, `monitor` and `speed` extras. Run from a
checkout: `pip install -r requirements-production.txt && python -m uvicorn api.main:app …`.
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEADER = ("# Generated from pyproject.toml by `python tests/support/requirements.py`: edit pyproject.toml,\n"
          "# then run that (tests/test_requirements.py fails while the two disagree).\n")


def render(pyproject: dict) -> dict[str, str]:
    """File name -> content."""
    project = pyproject["project"]
    extras = project["optional-dependencies"]

    def body(what: str, deps: list[str], include: str | None = None) -> str:
        lines = [HEADER + f"# {what}"]
        if include:
            lines.append(f"-r {include}")
        lines += sorted(deps, key=str.lower)
        return "\n".join(lines) + "\n"

    return {
        "requirements-production.txt": body("Production: core, HTTP API (uvicorn api.main:app) and the cmr CLI.",
                                            project["dependencies"]),
        "requirements-ui.txt": body("The Gradio UI (port 5001), on top of production.", extras["ui"],
                                    "requirements-production.txt"),
        "requirements-optional.txt": body("Optional: Redis (fleet locks and cache), psutil (process metrics) "
                                          "and orjson (faster JSON decoding).",
                                          extras["redis"] + extras["monitor"] + extras.get("speed", [])),
    }


def expected() -> dict[str, str]:
    return render(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8")))


def main(argv: list[str]) -> int:
    stale = [name for name, text in expected().items()
             if not (REPO / name).is_file() or (REPO / name).read_text(encoding="utf-8") != text]
    if "--check" in argv:
        for name in stale:
            print(f"{name} differs from pyproject.toml: run python tests/support/requirements.py", file=sys.stderr)
        return 1 if stale else 0
    for name, text in expected().items():
        (REPO / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
