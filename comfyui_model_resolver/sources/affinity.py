"""Workflow-level affinity: which of several identical copies of a file to offer. Pure.

Comfy-Org repackages one file into many repos (`ae.safetensors` sits in three, `flux2-vae` in six),
so once ranking has found the right *file*, the *copy* is still open. An expert takes the copy that
fits the workflow:

  1. the repo the workflow's other models come from ("same repo as 3 other models");
  2. a repo named after the workflow's model family (`Wan_2.1_ComfyUI_repackaged` for a wan2.1
     workflow), the family read from the other models' file names;
  3. the community publisher of the other models (Kijai, lightx2v, …; not the general packagers,
     who host a bit of every workflow and so say nothing);
  4. a repo named after the file itself (`Comfy-Org/sigclip_vision_384`), else one named after its
     kind (`comfyanonymous/flux_text_encoders` for a text encoder) rather than another model's bundle;
  5. the most downloaded copy.

Only the other models that are *anchored* count as evidence for 1 and 3: confidently resolved to a
file no other official repo holds, so their repo is a fact, not itself a tie-break.

This pass never changes which file is the answer, nor whether it is confident: it only moves a
copy of the top candidate to the front. A copy is the same file name with no fact against it (size,
sha256, sign-in), for a confident answer with the same sha256, at a trusted home: an official
publisher, the top's own account, or a repo the workflow's other models are anchored in; never a
stranger's mirror, however popular. The workflow's own link and by-hash finds are left alone.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..types import Candidate, ModelRef
from .publishers import COMPONENT_FAMILIES, GENERAL_PUBLISHERS, is_official
from .rank import Decision
from .terms import analyse_name

__all__ = ["WorkflowEvidence", "anchor_repo", "apply_workflow_affinity", "family_keys", "named_after_file",
           "named_after_kind", "prefer_workflow_copy", "workflow_evidence"]

#: Words of Hub repo names that say how a repo is packaged, not what it holds.
PACKAGING_WORDS = frozenset({"comfyui", "comfy", "repackaged", "repack", "split", "files", "models", "model",
                             "weights", "safetensors", "hf"})
_GENERAL = frozenset(p.lower() for p in GENERAL_PUBLISHERS)


def _alnum(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _repo_name(repo: str | None) -> str:
    return (repo or "").split("/", 1)[-1]


def family_keys(filename: str) -> tuple[str, ...]:
    """What a file name says about its model family, coarse first: `wan2.1_vace_14B` -> (wan, wan21),
    `Wan2_1_VAE_bf16` -> (wan, wan21), `ltx-2-19b-dev` -> (ltx, ltx2), `hunyuanvideo1.5_720p` ->
    (hunyuan, hunyuanvideo15), `qwen_image_edit` -> (qwenimage,). Component families (text encoders,
    controlnets, the Qwen LLMs that many families use as text encoder) say nothing: ()."""
    info = analyse_name(filename)
    fam = info.family
    if fam is None or fam.name in COMPONENT_FAMILIES:
        return ()
    coarse = _alnum(fam.name)
    toks = list(info.tokens)
    acc = ""
    for i, tok in enumerate(toks[:3]):
        acc += _alnum(tok)
        if re.search(r"\d", tok):
            nxt = toks[i + 1] if i + 1 < len(toks) else ""
            if re.fullmatch(r"\d", nxt) and tok[-1].isdigit():  # Wan2_1 -> wan21
                acc += nxt
            break
    else:
        acc = ""
    if acc.startswith(coarse) and acc != coarse:
        return coarse, acc
    return (coarse,)


def _family_score(repo: str | None, families: Sequence[tuple[str, ...]]) -> tuple[int, str | None]:
    """How many of the other models' families the repo name carries (a versioned match counts 2)."""
    name = _alnum(_repo_name(repo))
    score, best = 0, None
    for keys in families:
        if len(keys) > 1 and keys[1] in name:
            score += 2
            best = keys[1] if best is None or len(keys[1]) > len(best) else best
        elif keys and keys[0] in name:
            score += 1
            best = best or keys[0]
    return score, best


def named_after_file(filename: str, repo: str | None) -> bool:
    """The repo is named after this very file (packaging words aside): `Comfy-Org/sigclip_vision_384`
    for `sigclip_vision_patch14_384.safetensors`, `Comfy-Org/Qwen3-VL` for `qwen3vl_8b_fp8_scaled`."""
    words = [w for w in re.split(r"[-_.\s]+", _repo_name(repo).lower()) if w and w not in PACKAGING_WORDS]
    if not words:
        return False
    info = analyse_name(filename)
    file_words = {_alnum(t) for t in info.tokens}
    if all(_alnum(w) in file_words for w in words) and len("".join(words)) >= 5:
        return True
    name = "".join(_alnum(w) for w in words)
    return len(name) >= 5 and name in info.key


def named_after_kind(folder: str | None, repo: str | None) -> bool:
    """The repo is a collection of this kind of file (`comfyanonymous/flux_text_encoders` for a text
    encoder), a dedicated home rather than another model's bundle."""
    kind = _alnum(folder or "").rstrip("s")
    return len(kind) >= 3 and kind in _alnum(_repo_name(repo))


def _hub_repo(c: Candidate) -> bool:
    return bool(c.repo) and "/" in (c.repo or "") and c.source != "civitai"


def _is_copy(top: Candidate, c: Candidate, *, proven: bool) -> bool:
    """`c` may stand in for `top`: same file name and nothing known against it. `proven`: the same
    sha256 is required (a confident answer only moves to bytes known to be identical)."""
    if c.url == top.url or not _hub_repo(c) or c.repo == top.repo or c.filename != top.filename:
        return False
    if top.sha256 and c.sha256:
        if top.sha256.lower() != c.sha256.lower():
            return False
    elif proven:
        return False
    if top.size is not None and c.size is not None and top.size != c.size:
        return False
    return not (c.requires_auth and not top.requires_auth)


def _trusted(top: Candidate, c: Candidate, ev: "WorkflowEvidence") -> bool:
    """A home the tie-break may move to: an official publisher, the top's own account, or a repo the
    workflow's other models are anchored in. Never a stranger's copy: mirrors are what ranking guards
    against, and a popular mirror is still a mirror."""
    return is_official(c.publisher) or c.publisher == top.publisher or (c.repo or "") in ev.repos


def anchor_repo(d: Decision | None) -> str | None:
    """The repo of a confident answer that no other official repo offers (or that the workflow
    itself links): where the workflow's files come from, as a fact."""
    if d is None or d.status != "resolved" or d.chosen is None or not _hub_repo(d.chosen):
        return None
    c = d.chosen
    if c.via == "workflow":
        return c.repo
    if any(_is_copy(c, o, proven=False) and is_official(o.publisher) for o in d.ranked):
        return None
    return c.repo


def _publisher(repo: str | None) -> str | None:
    ns = (repo or "").split("/", 1)[0].lower()
    return ns if ns and ns not in _GENERAL else None


@dataclass(frozen=True, slots=True)
class WorkflowEvidence:
    """What the rest of the workflow says about where one of its models comes from."""

    repos: Mapping[str, int] = field(default_factory=dict)  # repo -> anchored other models there
    publishers: Mapping[str, int] = field(default_factory=dict)  # community namespace -> anchored models
    families: tuple[tuple[str, ...], ...] = ()  # family_keys of each other model's file name


def _basename(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1].lower()


def workflow_evidence(models: Sequence[tuple[ModelRef, Decision | None]]) -> list[WorkflowEvidence]:
    """For each model, the evidence of the *other* models of the same workflow."""
    anchors = [anchor_repo(d) for _ref, d in models]
    names = [_basename(ref.filename) for ref, _d in models]
    keys = {n: family_keys(n) for n in set(names)}
    out = []
    for i, name in enumerate(names):
        repos: Counter[str] = Counter()
        pubs: Counter[str] = Counter()
        seen: set[str] = set()
        for j, repo in enumerate(anchors):
            if j == i or repo is None or names[j] == name or names[j] in seen:
                continue
            seen.add(names[j])
            repos[repo] += 1
            pub = _publisher(repo)
            if pub:
                pubs[pub] += 1
        fams = tuple(keys[n] for n in sorted(set(names) - {name}) if keys[n])
        out.append(WorkflowEvidence(dict(repos), dict(pubs), fams))
    return out


def prefer_workflow_copy(ref: ModelRef, decision: Decision, ev: WorkflowEvidence) -> Decision:
    """Move the copy of the top candidate that best fits the workflow to the front (see the module
    docstring for the order). The answer's file, status and confidence stay as they were."""
    if not decision.ranked:
        return decision
    top = decision.ranked[0]
    if top.via == "workflow" or top.hash_match or not _hub_repo(top):
        return decision  # the workflow's own link, or a by-hash find, is not second-guessed
    proven = decision.status == "resolved"
    copies = [top] + [c for c in decision.ranked[1:] if _is_copy(top, c, proven=proven) and _trusted(top, c, ev)]

    def why(c: Candidate) -> tuple[tuple, list[str]]:
        reasons = []
        n = ev.repos.get(c.repo or "", 0)
        if n:
            reasons.append(f"same repo as {n} other model{'s' if n > 1 else ''} of this workflow")
        fam, key = _family_score(c.repo, ev.families)
        if fam:
            reasons.append(f"repo named after this workflow's model family ({key})")
        pub = _publisher(c.repo)
        p = ev.publishers.get(pub, 0) if pub else 0
        if p:
            reasons.append(f"same publisher ({pub}) as {p} other model{'s' if p > 1 else ''} of this workflow")
        own = 2 if named_after_file(ref.filename, c.repo) else 1 if named_after_kind(ref.folder, c.repo) else 0
        if own and len(copies) > 1:  # only worth saying when it tells copies apart
            reasons.append("repo named after this file" if own == 2 else f"a repo of {ref.folder}")
        return (not c.requires_auth, n, fam, p, own, c.downloads or 0), reasons

    judged = {c.url: why(c) for c in copies}
    best = max(copies, key=lambda c: judged[c.url][0])  # max keeps the first (best-ranked) of equals
    if best is top:
        extra = tuple(r for r in judged[top.url][1] if r not in top.reasons)
        if not extra:
            return decision
        kept = top.model_copy(update={"reasons": tuple(top.reasons) + extra})
        return Decision(decision.status, (kept,) + decision.ranked[1:],
                        chosen=kept if decision.chosen is not None else None, message=decision.message)
    how = ("same sha256" if top.sha256 and best.sha256 else
           "same name and size" if top.size is not None and best.size is not None else "same name")
    reasons = tuple(best.reasons) + tuple(r for r in judged[best.url][1] if r not in best.reasons) + (
        f"identical to {top.repo}/{top.path} ({how}); this copy fits the workflow",)
    promoted = best.model_copy(update={"confidence": max(best.confidence, top.confidence), "reasons": reasons})
    ranked = (promoted,) + tuple(c for c in decision.ranked if c.url != best.url)
    chosen = promoted if decision.chosen is not None else None
    return Decision(decision.status, ranked, chosen=chosen, message=decision.message)


def apply_workflow_affinity(models: Sequence[tuple[ModelRef, Decision | None]]) -> list[Decision | None]:
    """`prefer_workflow_copy` for every model of one workflow, each judged by the others."""
    evidence = workflow_evidence(models)
    return [d if d is None else prefer_workflow_copy(ref, d, ev) for (ref, d), ev in zip(models, evidence)]
