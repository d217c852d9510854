"""Rank the candidates for one model and decide whether one of them is the answer. Pure.

Every candidate gets a score (log-odds units) built from named pieces of evidence, each of which
becomes a human-readable reason; its confidence is the logistic of the score. A candidate is
chosen only when it is confident (>= CONFIDENT), the evidence ties it to *this* file (same name,
same hash, or the workflow's own link), and no other file comes close; otherwise the model is
`ambiguous` and the user picks.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..types import Candidate, ModelRef
from ..workflow.folders import FOLDER_ALIASES, canonical_folder
from .publishers import is_official
from .terms import NameInfo, analyse_name, model_named, name_similarity, variant_set

CONFIDENT = 0.8
#: The highest confidence a candidate of an undecided (ambiguous) model shows: `resolved` is the
#: only answer shown at CONFIDENT or above.
UNDECIDED_CAP = 0.79
#: A rival within this many score units of the best makes the choice ambiguous.
MARGIN = 0.9
_OFFSET = 2.0  # score at which confidence is 0.5 is this many units above zero

#: Evidence weights (score units).
W = {
    "via_workflow": 3.0, "via_note": 1.2, "via_catalog": 2.0, "via_manager": 1.4,
    "exact_name": 2.5, "name_other_case": 1.5, "name_other_spelling": 0.8,
    "variant_mismatch": -2.0, "similar_name": -1.0, "different_name": -3.0,
    "sub_path": 0.5, "folder_agrees": 0.7, "folder_differs": -1.0,
    "hash_match": 6.0, "hash_mismatch": -6.0, "corroborated": 0.5,
    "official": 1.0, "named_after": 0.6, "original": 0.5, "unique_name": 0.5, "popularity_max": 0.8, "needs_sign_in": -0.6,
    "via_pack": 2.0, "generic_name": -1.5, "earliest": 0.6, "most_downloaded": 0.4, "derivative": -1.5,
    "named_as_base": 0.5, "mirror_shaped": -0.5, "civitai_home": 0.8,
    "saved_as_repo": -1.0, "workflow_pack": 0.8, "pack_repo_file": -1.5, "model_named": -1.2, "via_sibling": 1.0,
}
#: Reasons that say a candidate under another name is still this file, renamed.
RENAMED = ("the repo is named like the file", "the only weights of the repo the pack documents",
           "the file name names this Civitai model")

#: File names that hundreds of repos use for different models: the name alone says nothing.
GENERIC_NAME = re.compile(r"(?i)^(model|diffusion_pytorch_model|pytorch_model|pytorch_lora_weights|adapter_model|"
                          r"ip[-_]adapter|lora|image_encoder|text_encoder|unet|vae|controlnet)"
                          r"([._-](fp16|bf16|fp32|fp8|safetensors))*(-\d{5}-of-\d{5})?\.(safetensors|bin|pt|pth|ckpt)$")
#: Words of repo names that mark a copy of someone else's files.
MIRROR_WORDS = re.compile(r"(?i)(comfyui|mirror|backup|archive|collection|reupload|re-upload|models$|-gguf$|-fp8$)")
#: Ways of finding a file that vouch for it beyond its name.
VOUCHED_VIA = frozenset({"workflow", "hash", "catalog", "manager", "pack", "beside", "sibling"})
#: Folders whose files are first published on Civitai.
CIVITAI_HOME = frozenset({"checkpoints", "loras", "embeddings", "hypernetworks"})


@dataclass(frozen=True, slots=True)
class Decision:
    status: str  # resolved | ambiguous | not_found
    ranked: tuple[Candidate, ...]
    chosen: Candidate | None = None
    message: str | None = None


@dataclass(slots=True)
class _Scored:
    cand: Candidate
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)
    ties_to_file: bool = False  # name, hash or the workflow's own link says it is this file

    def add(self, key: str, reason: str, weight: float | None = None) -> None:
        self.score += W[key] if weight is None else weight
        self.reasons.append(reason)


def confidence(score: float) -> float:
    return round(1.0 / (1.0 + math.exp(-(score - _OFFSET))), 3)


def _norm_hash(h: str | None) -> str | None:
    return h.strip().lower() if isinstance(h, str) and h.strip() else None


def hash_agrees(ref: ModelRef, sha256: str | None) -> bool | None:
    """True/False when the model's own hash can be compared with a sha256, None when it cannot."""
    mine, theirs = _norm_hash(ref.hash), _norm_hash(sha256)
    if not mine or not theirs:
        return None
    kind = (ref.hash_type or "").lower().replace("-", "")
    if kind in ("sha256", "") and len(mine) == 64:
        return mine == theirs
    if kind == "autov2" or (not kind and len(mine) == 10):
        return theirs.startswith(mine)
    return None


def folder_of_path(path: str | None) -> str | None:
    """The ComfyUI folder a repo path files a model under: split_files/vae/x -> vae."""
    if not path:
        return None
    from ..workflow.folders import DEFAULT_FOLDER_DIRS

    known = set(DEFAULT_FOLDER_DIRS) | set(FOLDER_ALIASES)
    for part in reversed(path.replace("\\", "/").split("/")[:-1]):
        low = part.lower()
        if low in known:
            return canonical_folder(low)
    return None


def _rel_path(filename: str) -> str:
    return filename.replace("\\", "/").strip("/")


def _same_file(a: Candidate, b: Candidate) -> bool:
    if a.sha256 and b.sha256:
        return a.sha256.lower() == b.sha256.lower()
    return a.url == b.url or (a.repo is not None and a.repo == b.repo and a.path == b.path)


def _repo_name(c: Candidate) -> str:
    return (c.repo or "").split("/", 1)[-1]


def _repo_key(c: Candidate) -> str:
    return re.sub(r"[^a-z0-9]", "", _repo_name(c).lower())


def _model_named(info: NameInfo, c: Candidate) -> bool:
    return bool(c.model_name) and model_named(info, c.model_name or "")


def _named_after(info: NameInfo, c: Candidate) -> bool:
    name = re.sub(r"[^a-z0-9]", "", _repo_name(c).lower())
    return len(info.key) >= 5 and len(name) >= 5 and (info.key in name or name in info.key)


def _score(ref: ModelRef, info: NameInfo, c: Candidate) -> _Scored:
    s = _Scored(c)
    via = c.via or c.source
    if via == "workflow":
        s.add("via_workflow", "linked by the workflow itself")
        s.ties_to_file = True
    elif via == "note":
        s.add("via_note", "linked in a note of the workflow")
    elif via == "catalog":
        s.add("via_catalog", "in the curated catalog")
    elif via == "manager":
        s.add("via_manager", "in ComfyUI-Manager's model list")

    elif via == "pack":
        said = next((r for r in c.reasons if r.startswith(("documented by", "in a repo"))), "documented by the node pack")
        s.add("via_pack", said)
        if said.endswith("a pack this workflow uses"):
            s.add("workflow_pack", "the workflow loads nodes of that pack")
    elif via == "beside":
        s.reasons.append("beside the workflow's other models")
    elif via == "sibling":  # the repo the catalog names for this file's family holds it
        s.add("via_sibling", next((r for r in c.reasons if r.startswith("in ")), "beside its documented siblings"))

    served = c.filename or (c.path or "").rsplit("/", 1)[-1]
    other = analyse_name(served) if served else None
    generic = bool(GENERIC_NAME.match(info.basename))
    if other is not None:
        if served == info.basename and generic:
            s.add("exact_name", "exact file name")
            s.add("generic_name", f"{served} is a name many models use")
            s.ties_to_file = via in VOUCHED_VIA or c.hash_match
        elif served == info.basename:
            s.add("exact_name", "exact file name")
            s.ties_to_file = True
        elif served.lower() == info.basename.lower():
            s.add("name_other_case", f"same file name in another case ({served})")
            s.ties_to_file = True
        elif other.key == info.key and variant_set(other) == variant_set(info):
            s.add("name_other_spelling", f"same name spelt {served}")
        elif other.key == info.key:
            s.add("variant_mismatch",
                  f"variant mismatch: {other.variant_label} instead of {info.variant_label} ({served})")
        elif c.source == "huggingface" and c.repo and len(info.key) >= 6 and _repo_key(c) == info.key:
            s.add("saved_as_repo", f"{RENAMED[0]} ({served} saved under the repo's name)")
        elif via == "pack" and c.source == "huggingface" and c.repo:
            s.add("pack_repo_file", f"{RENAMED[1]} ({served})")
        elif c.source == "civitai" and via == "search" and _model_named(info, c):
            s.add("model_named", f"{RENAMED[2]} ({c.model_name})")
        else:
            sim = name_similarity(info, other)
            if sim >= 0.6:
                s.add("similar_name", f"similar name ({served}, {int(sim * 100)}% of the words)")
            else:
                s.add("different_name", f"different name ({served})")

    rel = _rel_path(ref.filename)
    if "/" in rel and c.path and _rel_path(c.path).endswith("/" + rel):
        s.add("sub_path", f"sub-path {rel} matches")

    want = canonical_folder(ref.folder) if ref.folder else None
    have = canonical_folder(c.folder) if c.folder else None
    if want and have:
        if want == have:
            s.add("folder_agrees", f"folder agrees ({have})")
        else:
            s.add("folder_differs", f"filed under {have}, the workflow loads it from {want}")

    agree = hash_agrees(ref, c.sha256)
    if c.hash_match or agree:
        s.add("hash_match", "hash matches the workflow's hash")
        s.ties_to_file = True
    elif agree is False:
        s.add("hash_mismatch", "hash differs from the workflow's hash")
        s.ties_to_file = False

    if is_official(c.publisher):
        s.add("official", f"official publisher ({c.publisher})")
    if c.source == "civitai" and want in CIVITAI_HOME:
        s.add("civitai_home", "on Civitai, where such files are first published")
    if c.source == "huggingface" and c.repo and MIRROR_WORDS.search(_repo_name(c)) and not is_official(c.publisher):
        s.add("mirror_shaped", f"{c.repo} looks like a mirror or collection")
    if c.repo and c.source in ("huggingface",) and not generic and _named_after(info, c):
        s.add("named_after", f"repo {c.repo} is named after the model")
    if c.downloads:
        w = min(W["popularity_max"], math.log10(c.downloads + 1) / 6 * W["popularity_max"])
        s.add("popularity_max", f"popular ({c.downloads:,} downloads)", w)
    if c.requires_auth:
        what = "early access" if c.early_access else "gated: needs " + (c.token_env or "a token")
        s.add("needs_sign_in", what)
    return s


def _merge(cands: Iterable[Candidate]) -> list[Candidate]:
    """One entry per URL: the facts of every provider that found it, merged."""
    by_url: dict[str, Candidate] = {}
    order: list[str] = []
    for c in cands:
        old = by_url.get(c.url)
        if old is None:
            by_url[c.url] = c
            order.append(c.url)
            continue
        upd = {}
        for f in ("size", "sha256", "repo", "path", "filename", "folder", "publisher", "downloads", "token_env"):
            if getattr(old, f) is None and getattr(c, f) is not None:
                upd[f] = getattr(c, f)
        for f in ("gated", "requires_auth", "hash_match", "early_access"):
            if getattr(c, f) and not getattr(old, f):
                upd[f] = True
        # the most trusted way of finding it wins
        if _VIA_RANK.get(c.via or c.source, 9) < _VIA_RANK.get(old.via or old.source, 9):
            upd["via"], upd["source"], upd["reasons"] = c.via, c.source, c.reasons  # with what it says about itself
        by_url[c.url] = old.model_copy(update=upd) if upd else old
    return [by_url[u] for u in order]


_VIA_RANK = {"workflow": 0, "hash": 1, "catalog": 2, "pack": 2, "manager": 3, "note": 4, "beside": 5, "sibling": 5,
             "listing": 6,
             "search": 7}


def _originality(scored: list[_Scored]) -> None:
    """Same name in several accounts' repos: which upload is the original? The earliest, the most
    downloaded, and the one the others' model cards name as their base; a card that names another
    candidate's repo as its base marks a derivative (a re-upload, a fork, a fine-tune)."""
    exact = [s for s in scored if "exact file name" in s.reasons and s.cand.source == "huggingface" and s.cand.repo]
    if not exact:  # the file saved under its repo's name: which of the repos so named is the original?
        exact = [s for s in scored if s.cand.source == "huggingface" and s.cand.repo
                 and any(r.startswith(RENAMED[0]) for r in s.reasons)]
    owners = {s.cand.publisher for s in exact}
    if len(owners) < 2:
        return
    repos = {s.cand.repo for s in exact}
    for s in exact:
        base = s.cand.base_model
        if base and base in repos and base != s.cand.repo:
            s.add("derivative", f"its model card names {base} as its base")
    named = {s.cand.base_model for s in exact if s.cand.base_model in repos}
    for s in exact:
        if s.cand.repo in named:
            s.add("named_as_base", "other uploads name this repo as their base")
    dated = [s for s in exact if s.cand.published]
    if len(dated) >= 2:
        first = min(dated, key=lambda s: s.cand.published)
        if sum(1 for s in dated if s.cand.published == first.cand.published) == 1:
            first.add("earliest", "the earliest upload of this name")
    counted = [s for s in exact if s.cand.downloads]
    if len(counted) >= 2:
        top = max(counted, key=lambda s: s.cand.downloads)
        top.add("most_downloaded", "the most downloaded upload of this name")


def _vouched(s: _Scored, corroborated: bool) -> bool:
    """Something beyond a matching name says this upload is the file: the way it was found (the
    workflow's link, its hash, the catalog, a pack's docs, beside the workflow's other models), an
    official publisher, Civitai (where community files are published), or the same bytes elsewhere."""
    c = s.cand
    return ((c.via or c.source) in VOUCHED_VIA or c.hash_match or "hash matches the workflow's hash" in s.reasons
            or is_official(c.publisher) or c.source == "civitai" or corroborated)


def rank(ref: ModelRef, candidates: Sequence[Candidate]) -> Decision:
    """Score, order and decide, for one model on its own. Which of several identical copies fits
    the workflow is decided afterwards, with the other models in view (affinity.py)."""
    info = analyse_name(ref.filename)
    merged = _merge(candidates)
    scored = [_score(ref, info, c) for c in merged]
    # Agreement: the same bytes offered at several places; the earliest upload is the original.
    for s in scored:
        same = [o for o in scored if o is not s and o.cand.sha256 and s.cand.sha256
                and o.cand.sha256.lower() == s.cand.sha256.lower()]
        others = {o.cand.repo or o.cand.url for o in same}
        if others:
            s.add("corroborated", f"same sha256 at {len(others)} other place(s)")
            # re-uploads by other accounts come after the original
            dates = [o.cand.published for o in same if o.cand.published and o.cand.publisher != s.cand.publisher]
            if s.cand.published and dates and s.cand.published < min(dates):
                s.add("original", "uploaded before the copies by other accounts")
    _originality(scored)
    # The only file with this exact name anywhere we looked is probably it.
    exact = [s for s in scored if "exact file name" in s.reasons]
    if exact and all(_same_file(exact[0].cand, o.cand) for o in exact[1:]):
        for s in exact:
            s.add("unique_name", "the only file of this name found")
    scored.sort(key=lambda s: (-s.score, s.cand.url))
    ranked = tuple(s.cand.model_copy(update={"confidence": confidence(s.score), "reasons": tuple(s.reasons)})
                   for s in scored)
    if not ranked:
        return Decision("not_found", (), message="no source knows this file")
    top = scored[0]
    top_conf = confidence(top.score)
    corroborated = any(o.cand.sha256 and top.cand.sha256 and o.cand.sha256.lower() == top.cand.sha256.lower()
                       for o in scored[1:])

    def rivals(o: _Scored) -> bool:
        if _same_file(top.cand, o.cand) or o.score < top.score - MARGIN:
            return False
        # Same name, bytes unknown, while the top's bytes are confirmed elsewhere: presumed a copy.
        if o.cand.sha256 is None and corroborated and o.cand.filename == top.cand.filename:
            return False
        return True

    rival = next((o for o in scored[1:] if rivals(o)), None)
    vouched = _vouched(top, corroborated)
    if top_conf >= CONFIDENT and top.ties_to_file and rival is None and vouched:
        return Decision("resolved", ranked, chosen=ranked[0])
    # Not chosen, so not confident: a rival almost as likely (or missing evidence) means the top
    # candidate is not >= CONFIDENT likely to be the file, whatever its own evidence scores.
    ranked = tuple(c if c.confidence < CONFIDENT else c.model_copy(update={"confidence": UNDECIDED_CAP})
                   for c in ranked)
    if not top.ties_to_file:
        msg = "no candidate has this exact file name or hash"
    elif not vouched:
        msg = f"only an upload by {top.cand.publisher or top.cand.repo} has this name, and nothing vouches for it"
    elif rival is not None:
        msg = f"{rival.cand.repo or rival.cand.url} is almost as likely"
    else:
        msg = f"best candidate is only {int(top_conf * 100)}% likely"
    return Decision("ambiguous", ranked, message=msg)
