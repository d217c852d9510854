"""What the Gradio UI shows, as pure functions: the merged model list of one or more workflows, the
counts per workflow, the downloads table, and the words for each status. No gradio, no I/O.

A batch is `[(workflow name, the analyze/resolve JSON of that workflow), ...]`. The merged list has one
row per model file (folder + file name), whichever workflows use it; `workflows` names them.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from comfyui_model_resolver.adapters.row_words import folder_words, implied_words, pack_words, unknown_folders

MODEL_HEADERS = ["Status", "File", "Used by", "Source", "Where"]
#: Per workflow: Models = On disk + Missing; after Find sources, Missing = Source found + No source + Offline.
WORKFLOW_HEADERS = ["Workflow", "Models", "On disk", "Missing", "Source found", "No source", "Offline"]
JOB_HEADERS = ["Job", "File", "State", "Progress", "Message"]

#: Status codes of the shared JSON, in the words the table shows.
STATUS_WORDS = {
    "present": "on disk",
    "relocated": "on disk (other folder)",
    "downloaded": "downloaded",
    "missing": "missing",
    "resolved": "source found",
    "ambiguous": "not certain: pick a source",
    "not_found": "no source found",
    "unavailable": "source offline",
    "error": "error",
}
ON_DISK = {"present", "relocated", "downloaded"}
_FOUND = {"resolved", "ambiguous"}
FINISHED = ("completed", "failed", "cancelled")


def model_key(model: dict) -> str:
    return f"{model.get('folder') or '?'}/{model.get('filename')}"


def chosen(model: dict) -> dict | None:
    candidates = model.get("candidates") or []
    return candidates[0] if candidates else None


def status_words(status: str) -> str:
    return STATUS_WORDS.get(status, status.replace("_", " "))


# ---- one merged list for a batch --------------------------------------------------------------
def merge(batch: Iterable[tuple[str, dict]]) -> list[dict]:
    """One model dict per folder/file across the batch, first occurrence kept, with `workflows` (the
    names of the workflows using it, in order) and `nodes` (how many nodes load it)."""
    merged: dict[str, dict] = {}
    for name, result in batch:
        for m in (result or {}).get("models", []):
            key = model_key(m)
            row = merged.get(key)
            if row is None:
                row = merged[key] = {**m, "workflows": [], "nodes": 0}
            if name not in row["workflows"]:
                row["workflows"].append(name)
            row["nodes"] += 1
    return list(merged.values())


def _used_by(m: dict, batch_size: int) -> str:
    origin = "".join(f"; {w}" for w in (implied_words(m), pack_words(m)) if w)  # implied by a preset, node pack
    if batch_size > 1:
        names = m.get("workflows") or []
        return (", ".join(names) if len(names) <= 2 else f"{len(names)} workflows: {', '.join(names[:2])}, …") + origin
    node = "/".join([*m.get("subgraph_path", []), str(m.get("node_id", ""))])
    text = f"{m.get('node_type', '')} #{node}".strip()
    more = m.get("nodes", 1) - 1
    return text + (f" (+{more} more node{'s' if more > 1 else ''})" if more > 0 else "") + origin


def _place(c: dict) -> str:
    """Where a candidate is: repo/path on the Hub, else its URL."""
    if c.get("repo") and c.get("path") and c.get("source") != "civitai":
        return f"{c['repo']}/{c['path']}"
    return c.get("repo") or c.get("url") or "?"


def _pct(c: dict) -> str:
    return f"{round(100 * c['confidence'])}%" if isinstance(c.get("confidence"), (int, float)) else "?"


def _choices_text(m: dict) -> str:
    """An ambiguous model's candidates, numbered, with their reasons: a choice, none pre-chosen."""
    cands = m.get("candidates") or []
    head = f"{len(cands)} candidates, none certain: " if len(cands) > 1 else "1 candidate, not certain: "
    return head + " ".join(f"({i}) {c.get('source', '')}: {_place(c)}, {_pct(c)}"
                           + (f" — {'; '.join(c.get('reasons') or ())}" if c.get("reasons") else "")
                           for i, c in enumerate(cands[:MAX_CHOICES], 1))


def _short_path(path: str | None) -> str:
    """A local path from its models folder on ("…/models/vae/x.safetensors"): the part a user tells apart."""
    if not path:
        return ""
    head, sep, tail = path.replace("\\", "/").rpartition("/models/")
    return f"…/models/{tail}" if sep else path


def model_rows(models: list[dict], batch_size: int = 1) -> list[list]:
    rows = []
    for m in models:
        pick = chosen(m)
        source = ""
        if m.get("status") == "ambiguous" and pick:
            source = _choices_text(m)
        elif pick:
            source = pick.get("source", "") + (f": {pick['repo']}" if pick.get("repo") else "")
            if pick.get("confidence") is not None:  # of the chosen source (not of the node's detection)
                source += f" (confidence {pick['confidence']:.2f})"
        # (an ambiguous model has no one place: the server's words say why none is certain)
        where = _short_path(m.get("local_path")) or (m.get("message") if m.get("status") == "ambiguous" else None) \
            or (pick or {}).get("url") or m.get("url") or m.get("message") or ""
        status = status_words(m.get("status", ""))
        if folder_words(m) and m.get("status") not in ON_DISK:
            where = folder_words(m) + ("" if not pick else " — tick the one to download into below" if unknown_folders(m)
                                       else " — use Download from a URL with the folder you choose")
            status += ", folder unknown"
        if not m.get("active", True):
            status += " (bypassed node)"
        rows.append([status, model_key(m), _used_by(m, batch_size), source, where])
    return rows


def workflow_rows(batch: Iterable[tuple[str, dict]]) -> list[list]:
    """Counts per workflow (see WORKFLOW_HEADERS); a workflow that could not be read says why."""
    rows = []
    for name, result in batch:
        if "error" in (result or {}):
            rows.append([f"{name}: could not read it ({result['error'].get('message', '')})", 0, 0, 0, 0, 0, 0])
            continue
        statuses = [m.get("status", "") for m in (result or {}).get("models", [])]
        on_disk = sum(s in ON_DISK for s in statuses)
        rows.append([name, len(statuses), on_disk, len(statuses) - on_disk, sum(s in _FOUND for s in statuses),
                     statuses.count("not_found"), statuses.count("unavailable")])
    return rows


#: Candidates of an ambiguous model offered to tick; folders of a folder-unknown model.
MAX_CHOICES = 5


def downloadable(models: list[dict]) -> list[str]:
    """Keys of the models downloaded without asking: not on disk, a certain source, a known folder."""
    keys: list[str] = []
    for m in models:
        if m.get("status") == "resolved" and m.get("folder") and chosen(m) and model_key(m) not in keys:
            keys.append(model_key(m))
    return keys


def pick_value(m: dict, candidate: int, folder: str) -> str:
    """The value of a ticked pick: which candidate of which model, into which folder (JSON text)."""
    return json.dumps({"model": model_key(m), "candidate": candidate, "folder": folder})


def download_choices(models: list[dict]) -> list[tuple[str, str]]:
    """(label, value) of every tick the UI offers: each certain model (ticked by default, value = its key),
    each candidate of an ambiguous model, and for a model whose folder is unknown, each candidate folder
    (with each candidate when it is ambiguous). Nothing uncertain is ticked for the user."""
    out = [(k, k) for k in downloadable(models)]
    seen = set(out)
    for m in models:
        cands = m.get("candidates") or []
        if m.get("status") in ON_DISK or not cands or m.get("status") not in ("resolved", "ambiguous"):
            continue
        folders = unknown_folders(m)
        if folders is None and m.get("status") == "resolved":
            continue  # certain and a known folder: its key above
        name = str(m.get("filename", "")).replace("\\", "/")
        picks = cands[:1] if m.get("status") == "resolved" else cands[:MAX_CHOICES]
        for folder in folders if folders is not None else (m.get("folder"),):
            for i, c in enumerate(picks):
                label = f"{folder}/{name} from {_place(c)} ({_pct(c)})" + (
                    " — folder unknown, your pick" if folders is not None else f" — candidate {i + 1} of {len(cands)}")
                item = (label, pick_value(m, i, folder))
                if item not in seen:
                    seen.add(item)
                    out.append(item)
    return out


def pick_body(models: list[dict], value: str) -> dict | None:
    """The download (POST /downloads, a URL into a folder) a ticked pick asks for; None if it names nothing.
    The folder must be the model's own or one of its candidate folders; the server checks it like any folder."""
    try:
        pick = json.loads(value)
        m = next(x for x in models if model_key(x) == pick["model"])
        c = (m.get("candidates") or [])[int(pick["candidate"])]
    except (ValueError, KeyError, TypeError, IndexError, StopIteration):
        return None
    folders = unknown_folders(m)
    folder = pick.get("folder")
    if folder not in ((m.get("folder"),) if folders is None else folders):
        return None
    body = {"url": c["url"], "folder": folder, "filename": str(m["filename"]).replace("\\", "/").lstrip("/"),
            "source": c.get("source")}
    if isinstance(c.get("sha256"), str) and len(c["sha256"]) == 64:
        body["sha256"] = c["sha256"]
    if isinstance(c.get("size"), int) and c["size"] >= 0:
        body["size"] = c["size"]
    return body


def summary(models: list[dict]) -> str:
    counts: dict[str, int] = {}
    for m in models:
        word = status_words(m.get("status", "?"))
        counts[word] = counts.get(word, 0) + 1
    return ", ".join(f"{n} {w}" for w, n in sorted(counts.items())) or "no model files"


def mark_downloaded(models: list[dict], job: dict) -> bool:
    """A finished download makes its model present: status, path, no ticks. True if a model matched."""
    hit = False
    for m in models:
        if m.get("filename") == job.get("filename") and m.get("folder") in (job.get("folder"), None) \
                and m.get("status") not in ON_DISK:
            m["status"] = "downloaded"
            m["local_path"] = job.get("path") or m.get("local_path")
            hit = True
    return hit


# ---- downloads --------------------------------------------------------------------------------
def _bytes(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


def job_id(job: dict) -> str:
    return str(job.get("job_id") or job.get("id") or "")


def job_state(job: dict) -> str:
    state = str(job.get("state", ""))
    return "waiting for lease" if state == "queued" and job.get("lease") == "waiting" else state


def job_name(job: dict) -> str:
    return f"{job.get('folder')}/{job.get('filename')}"


def job_rows(jobs: list[dict]) -> list[list]:
    rows = []
    for j in jobs:
        done, total = j.get("bytes_done") or 0, j.get("total") or j.get("size")
        progress = f"{_bytes(done)} / {_bytes(total)}" + (f" ({100 * done / total:.0f}%)" if total else "")
        state = job_state(j)
        if state == "running":
            progress += f", {_bytes(j.get('speed') or 0)}/s"
            eta = j.get("eta")
            if isinstance(eta, (int, float)):
                progress += f", {eta:.0f} s left"
        if j.get("host"):
            state += f" on {j['host']}"
        error = j.get("error") or {}
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        rows.append([job_id(j)[:8], job_name(j), state, progress, message or j.get("detail") or ""])
    return rows


def find_job(jobs: list[dict], wanted: str) -> dict | None:
    """The job with id `wanted`, or the only one whose id starts with it (the table shows 8 characters)."""
    wanted = wanted.strip()
    exact = [j for j in jobs if job_id(j) == wanted]
    if exact:
        return exact[0]
    prefixed = [j for j in jobs if wanted and job_id(j).startswith(wanted)]
    return prefixed[0] if len(prefixed) == 1 else None


def table(headers: list[str], rows: list[list]) -> dict:
    return {"headers": headers, "data": rows}
