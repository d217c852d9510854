"""Preset files per model family: keep the ones the workflow's family needs. Pure.

A pack's preset (IPAdapter "PLUS", InstantID, …) maps to different files for SD1.5 and SDXL.
The family is read from the workflow's other model files; when it cannot be told, every
variant is kept and marked optional, so nothing is downloaded that may not be needed.
"""
from __future__ import annotations

import re
from typing import Iterable

from ..types import ModelRef

_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern, re.I))
    for family, pattern in (
        ("sdxl", r"sdxl|sd_xl|(^|[_\-.\s])xl([_\-.\s]|$)|illustrious|pony|juggernautxl|realvisxl|noobai"),
        ("sd3", r"sd3|sd_3|stable[_-]?diffusion[_-]?3"),
        ("flux", r"flux"),
        ("kolors", r"kolors"),
        ("sd15", r"sd15|sd_15|sd1\.5|sd-1-5|v1-5|sd_v1|v1-inference|dreamshaper_8|realisticvision"),
    )
)
#: Variants that are not model families (precision choices): always optional alternatives.
_NOT_FAMILIES = {"fp16", "fp32", "bf16", "fp8"}


def families_of(refs: Iterable[ModelRef]) -> set[str]:
    """Model families named by the workflow's own (non-preset) model files."""
    found: set[str] = set()
    for ref in refs:
        if ref.variant is not None:
            continue
        for family, pattern in _FAMILIES:
            if pattern.search(ref.filename):
                found.add(family)
                break
    return found


def select_variants(refs: list[ModelRef]) -> list[ModelRef]:
    if not any(r.variant for r in refs):
        return refs
    families = families_of(refs)
    out = []
    for ref in refs:
        v = ref.variant
        if v is None:
            out.append(ref)
        elif v in _NOT_FAMILIES or not families:
            out.append(ref.model_copy(update={"optional": True, "note": _note(ref, f"only for {v} models")}))
        elif v in families:
            out.append(ref)
        # else: a variant for a family this workflow does not use: not needed.
    return out


def _note(ref: ModelRef, text: str) -> str:
    return f"{ref.note}; {text}" if ref.note else text
