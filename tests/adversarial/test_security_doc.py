"""SECURITY.md names, for every threat, the tests that prove what we do about it.

This keeps that promise honest: every ``tests/…py::test_name`` the document cites must exist
as a test function in that file, and every section of the threat model must cite at least one.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "SECURITY.md"
CITATION = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")
REQUIRED_THREATS = ("Browser-originated", "Server-side request forgery", "Path traversal",
                    "Token leakage", "Pickle", "Hostile inputs", "Losing or corrupting data")


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")}


def _sections() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.M)
    return {part.splitlines()[0]: part for part in parts[1:]}


def test_every_cited_test_exists():
    citations = CITATION.findall(DOC.read_text(encoding="utf-8"))
    assert len(citations) >= 60, f"SECURITY.md cites only {len(citations)} tests"
    missing = []
    cache: dict[str, set[str]] = {}
    for file, name in citations:
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
            continue
        names = cache.setdefault(file, _test_functions(path))
        if name not in names:
            missing.append(f"{file}::{name}")
    assert not missing, "SECURITY.md cites tests that do not exist:\n" + "\n".join(missing)


def test_every_threat_has_a_section_with_proof():
    sections = _sections()
    for threat in REQUIRED_THREATS:
        matching = [body for title, body in sections.items() if threat.lower() in title.lower()]
        assert matching, f"SECURITY.md has no section on {threat!r}"
        body = matching[0]
        assert "**What we do" in body, f"{threat}: no 'What we do'"
        assert CITATION.search(body), f"{threat}: cites no test"
