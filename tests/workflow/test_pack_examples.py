"""Detection on the example workflows the node packs themselves ship (`example_workflows/`, `examples/`,
`workflows/` … of every fetched pack): real files, not written by us. Needs the packs' git mirrors
(PACK_MIRROR=/work/.mirror, as `fetch` leaves them); skipped without them. Nothing is copied: the
workflows are read from the mirrors at test time.

No folder is ever guessed (a reference has a folder from a schema, the loader table or the workflow's
own `directory`, or none: "folder unknown" with candidates), and "folder unknown" stays rare.
Prints the figures; the README cites them."""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from comfyui_model_resolver.workflow.knowledge import Knowledge
from comfyui_model_resolver.workflow.mirrors import git, mirror_dir
from comfyui_model_resolver.workflow.parse import parse_workflow_object

PACK_MIRROR = os.environ.get("PACK_MIRROR")
PER_PACK = 6  # example workflows read per pack


def _examples(mirror: Path):
    for d in sorted(mirror.iterdir()):
        if "+" not in d.name or d.name.startswith("Comfy-Org+"):
            continue
        g = mirror_dir(mirror, d.name)
        if g is None:
            continue
        paths = [p for p in git(g, "ls-tree", "-r", "--name-only", "HEAD").splitlines()
                 if p.endswith(".json") and ("example" in p.lower() or "workflow" in p.lower())]
        for p in paths[:PER_PACK]:
            try:
                wf = json.loads(git(g, "show", f"HEAD:{p}"))
            except (ValueError, OSError):
                continue
            if isinstance(wf, dict) and ("nodes" in wf or (wf and all(isinstance(v, dict) and "class_type" in v
                                                                      for v in wf.values()))):
                yield d.name, p, wf


@pytest.mark.skipif(not PACK_MIRROR, reason="set PACK_MIRROR to the folder of the packs' git mirrors")
def test_pack_example_workflows_get_no_guessed_folder_and_few_unknown_ones():
    k = Knowledge()
    workflows = refs = implied = 0
    unknown: Counter = Counter()
    for pack, _, wf in _examples(Path(PACK_MIRROR)):
        try:
            found = parse_workflow_object(wf, k).refs
        except Exception:  # an example that is not a workflow ComfyUI can load
            continue
        workflows += 1
        for r in found:
            refs += 1
            implied += r.implied
            assert r.folder_source != "generic", (pack, r)
            if r.folder is None:
                assert r.note and r.note.startswith("folder unknown"), (pack, r)
                unknown[(pack, r.node_type)] += 1
    share = sum(unknown.values()) / refs
    print(f"\nPACK EXAMPLES: {workflows} workflows, {refs} model references, {implied} implied, "
          f"{sum(unknown.values())} folder unknown ({share:.1%}); most: {unknown.most_common(5)}")
    assert workflows >= 300 and refs >= 1000
    assert share <= 0.10
