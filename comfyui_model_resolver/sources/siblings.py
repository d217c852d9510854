"""Where a file's siblings live: the repos a local table (the catalog, pack docs) names for files of
the same family. Pure.

`t2iadapter_depth_sd15v2.pth` is in no table, but `t2iadapter_canny_sd14v1.pth` … are, all in
TencentARC/T2I-Adapter. A Hub search by name finds only repos named like the file (often a
stranger's copy); the repo that holds the family is the place to look first. A file found there
under its exact name is vouched for by its publisher (`via="sibling"`); nothing is found by name
resemblance alone: the file must be in the repo.

Siblings: names in the same folder that share the file's first words (split on `_ - .`), at least
MIN_PREFIX characters of them (separator not counted), the longest such prefix that any name shares. `control_v11p_sd15_`
siblings are `control_v11p_sd15_canny…`; a short prefix (`control_`, `sd_xl_`) or a word for a kind of model (`controlnet_`) names no family.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

MIN_PREFIX = 8
MAX_REPOS = 2
_SPLIT = re.compile(r"[_\-.]")
#: One-word prefixes that name a kind of model, not a family.
_KIND_WORDS = frozenset({"controlnet", "diffusion", "pytorch", "checkpoint", "embedding", "ipadapter", "upscaler",
                         "realistic", "stable", "adapter", "instantid"})


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return base.rsplit(".", 1)[0] if "." in base else base


def family_prefixes(name: str) -> list[str]:
    """The file's leading word groups, longest first, each ending at a separator: 'control_v11p_sd15_',
    'control_v11p_' … ; only those of at least MIN_PREFIX characters."""
    stem = _stem(name)
    cuts = [m.end() for m in _SPLIT.finditer(stem)]
    return [stem[:c] for c in reversed(cuts) if len(stem[:c - 1]) >= MIN_PREFIX and stem[:c - 1] not in _KIND_WORDS]


def sibling_repos(name: str, folder: str | None, entries: Iterable[tuple[str, str | None, str | None]]
                  ) -> list[tuple[str, str]]:
    """(repo, one sibling's name) for the repos holding this file's siblings, most siblings first.
    `entries`: (file name, Hub repo or None, folder) rows of a local table."""
    stem = _stem(name)
    rows = [(n, r, f) for n, r, f in entries if r and (folder is None or f is None or f == folder)]
    for prefix in family_prefixes(name):
        found = [(r, n) for n, r, _ in rows if _stem(n).startswith(prefix) and _stem(n) != stem]
        if found:
            count = Counter(r for r, _ in found)
            example = {}
            for r, n in found:
                example.setdefault(r, n)
            return [(r, example[r]) for r, _ in count.most_common(MAX_REPOS)]
    return []
