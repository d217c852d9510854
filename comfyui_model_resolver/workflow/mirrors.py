"""Reading the packs' git mirrors (`fetch` snapshots) at build time: one home for both table builders.

A mirror lives at `<mirror>/<owner>+<repo>/repo` (a work tree's `.git` or a bare repository) or at
`<mirror>/<owner>+<repo>` itself. Nothing here runs at request time.
"""
from __future__ import annotations

import subprocess
from pathlib import Path


def git(git_dir: Path, *args: str) -> str:
    """stdout of `git --git-dir=<git_dir> <args>` (undecodable bytes replaced)."""
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True,
                          text=True, encoding="utf-8", errors="replace").stdout


def mirror_dir(mirror: Path, repo: str) -> Path | None:
    """The git directory of `repo` ('owner/name' or 'owner+name') under `mirror`, or None when not fetched."""
    name = repo.replace("/", "+")
    for d in (mirror / name / "repo", mirror / name):
        if (d / "HEAD").is_file():
            return d
        if (d / ".git").exists():
            return d / ".git"
    return None
