"""Run one official ``huggingface_hub`` call in a fresh interpreter; print ``RESULT <json>``.

``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET`` and ``HF_HOME`` at import time,
so the tests run it in a subprocess with a clean environment (see :func:`run_hf`) while the fake
serves from a thread of the test process. The script depends only on the client, so any
interpreter with any client version can run it: set ``FAKES_HF_PYTHON=/path/to/python``.

Usage: ``python hf_driver.py '{"op": "download", "args": {...}}'``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(h, repo_id, filename, local_dir, token=None, revision=None):
    path = h.hf_hub_download(repo_id, filename, local_dir=local_dir, token=token, revision=revision)
    return {"path": path, "size": os.path.getsize(path), "sha256": _sha256(path)}


def _list_models(h, token=None, **kwargs):
    models = h.HfApi(token=token).list_models(**kwargs)
    return [{"id": m.id, "downloads": m.downloads,
             "siblings": None if m.siblings is None else [s.rfilename for s in m.siblings]} for m in models]


def _model_info(h, repo_id, files_metadata=False, token=None, revision=None):
    info = h.HfApi(token=token).model_info(repo_id, files_metadata=files_metadata, revision=revision)
    siblings = [{"rfilename": s.rfilename, "size": s.size, "blob_id": s.blob_id,
                 "lfs_sha256": s.lfs.sha256 if s.lfs else None} for s in info.siblings or []]
    return {"id": info.id, "sha": info.sha, "gated": info.gated, "siblings": siblings}


def _list_repo_tree(h, repo_id, recursive=False, path_in_repo=None, token=None, revision=None):
    entries = h.HfApi(token=token).list_repo_tree(repo_id, path_in_repo=path_in_repo, recursive=recursive,
                                                  revision=revision)
    out = []
    for e in entries:
        lfs = getattr(e, "lfs", None)
        out.append({"path": e.path, "kind": type(e).__name__, "size": getattr(e, "size", None),
                    "lfs_sha256": lfs.sha256 if lfs else None})
    return out


def _snapshot(h, repo_id, local_dir, token=None):
    path = h.snapshot_download(repo_id, local_dir=local_dir, token=token)
    files = sorted(str(p.relative_to(path)) for p in Path(path).rglob("*") if p.is_file() and ".cache" not in p.parts)
    return {"path": path, "files": files}


OPS = {
    "download": _download,
    "list_models": _list_models,
    "model_info": _model_info,
    "list_repo_tree": _list_repo_tree,
    "snapshot": _snapshot,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    import huggingface_hub as h

    out: dict = {"version": h.__version__}
    try:
        out["result"] = OPS[spec["op"]](h, **spec.get("args", {}))
    except Exception as exc:  # reported to the test, which asserts on the class names
        out["error"] = type(exc).__name__
        out["mro"] = [c.__name__ for c in type(exc).__mro__]
        out["message"] = str(exc)[:4000]
    print("RESULT " + json.dumps(out), flush=True)


def run_hf(hub_url: str, home: Path, op: str, timeout: float = 120, extra_env: dict | None = None, **args) -> dict:
    """Run ``op`` with the official client against ``hub_url`` in a subprocess; return the RESULT dict."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=hub_url,
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        **(extra_env or {}),
    )
    python = os.environ.get("FAKES_HF_PYTHON", sys.executable)
    proc = subprocess.run([python, __file__, json.dumps({"op": op, "args": args})], env=env,
                          capture_output=True, text=True, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            result["stderr"] = proc.stderr[-4000:]
            return result
    raise AssertionError(f"driver crashed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


if __name__ == "__main__":
    main()
