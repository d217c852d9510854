"""The deploy spec's requirements-*.txt files say what pyproject.toml says (tests/support/requirements.py
generates them); tests/sidecar/test_seed_commands.py installs them for real."""
from __future__ import annotations

import copy
import tomllib

from support.paths import REPO
from support.requirements import expected, render


def test_requirements_files_match_pyproject():
    for name, text in expected().items():
        assert (REPO / name).is_file(), f"{name} is missing: run python tests/support/requirements.py"
        assert (REPO / name).read_text(encoding="utf-8") == text, \
            f"{name} differs from pyproject.toml: run python tests/support/requirements.py"


def test_a_dependency_added_to_pyproject_reaches_its_file():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    changed = copy.deepcopy(pyproject)
    changed["project"]["dependencies"].append("zstandard>=0.22")
    changed["project"]["optional-dependencies"]["ui"].append("Pillow>=10")
    before, after = render(pyproject), render(changed)
    assert "zstandard>=0.22" in after["requirements-production.txt"].splitlines()
    assert "zstandard>=0.22" not in before["requirements-production.txt"]
    ui = after["requirements-ui.txt"].splitlines()
    assert "Pillow>=10" in ui and "-r requirements-production.txt" in ui
    # the UI file builds on production instead of repeating it
    assert not set(pyproject["project"]["dependencies"]) & set(ui)
    optional = after["requirements-optional.txt"].splitlines()
    for dep in pyproject["project"]["optional-dependencies"]["redis"] + pyproject["project"]["optional-dependencies"]["monitor"]:
        assert dep in optional
