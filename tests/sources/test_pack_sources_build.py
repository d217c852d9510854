"""Building the pack-sources table: the extractor on text we write, the builder on a git repo we make."""
from __future__ import annotations

import json
import subprocess

from comfyui_model_resolver.sources import pack_sources_build as builder
from comfyui_model_resolver.sources.pack_sources import PackSources
from comfyui_model_resolver.sources.pack_sources_extract import extract, family_of

README = """# A pack
## Models
Put these in `ComfyUI/models/ipadapter`:
- [ip-adapter_sd15.safetensors](https://huggingface.co/h94/IP-Adapter/resolve/main/models/ip-adapter_sd15.safetensors)
- [CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors](https://huggingface.co/h94/IP-Adapter/resolve/main/models/image_encoder/model.safetensors?download=true), download and rename, goes to models/clip_vision
The [controlnet](https://huggingface.co/InstantX/InstantID/blob/main/ControlNetModel/diffusion_pytorch_model.safetensors) goes to the `ComfyUI/models/controlnet` folder.
Insightface: [here](https://huggingface.co/MonsterMMORPG/tools/tree/main) into models/insightface/models/antelopev2
LoRA: https://civitai.com/models/4201/realistic?modelVersionId=130072 and https://civitai.com/api/download/models/99
Paper: https://arxiv.org/abs/2308.06721 and the space https://huggingface.co/spaces/h94/demo
Upscaler: https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth
"""

CODE = '''import folder_paths
from huggingface_hub import hf_hub_download, snapshot_download

def load():
    path = os.path.join(folder_paths.models_dir, "pulid")
    hf_hub_download(
        repo_id="guozinan/PuLID",
        filename="pulid_flux_v0.9.1.safetensors",
        local_dir=path,
    )
    hf_hub_download("Kijai/x", "sub/{name}.safetensors")
    snapshot_download(repo_id="microsoft/Florence-2-base", local_dir=os.path.join(folder_paths.models_dir, "LLM"))
    MODELS = {"a": {"repo_id": "LayerDiffusion/layerdiffusion-v1", "filename": "layer_xl_fg2ble.safetensors", "subfolder": "v2"}}
'''


def _by_name(hits):
    return {h.filename: h for h in hits if h.filename}


def test_readme_links_folders_and_renames():
    hits = extract("README.md", README)
    files = _by_name(hits)
    ip = files["ip-adapter_sd15.safetensors"]
    assert ip.source == {"type": "hf", "repo": "h94/IP-Adapter", "path": "models/ip-adapter_sd15.safetensors", "revision": "main"}
    assert (ip.folder, ip.line) == ("ipadapter", 4)  # from the heading above; the URL's own models/ path never counts
    clip = files["CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"]
    assert clip.source["path"] == "models/image_encoder/model.safetensors" and clip.folder == "clip_vision"
    cn = files["diffusion_pytorch_model.safetensors"]
    assert cn.folder == "controlnet" and cn.source["path"] == "ControlNetModel/diffusion_pytorch_model.safetensors"
    repo = next(h for h in hits if h.source.get("repo") == "MonsterMMORPG/tools")
    assert repo.filename is None and (repo.folder, repo.subdir) == ("insightface", "models/antelopev2")
    civ = [h.source for h in hits if h.kind == "civitai"]
    assert {"type": "civitai", "model_id": 4201, "version_id": 130072} in civ
    assert {"type": "civitai", "model_id": None, "version_id": 99} in civ
    esr = files["RealESRGAN_x4plus.pth"]
    assert esr.source["url"].startswith("https://github.com/") and esr.kind == "url"
    assert not any("spaces" in str(h.source) or "arxiv" in str(h.source) for h in hits)


def test_code_calls_and_literals():
    hits = extract("nodes.py", CODE)
    files = _by_name(hits)
    pulid = files["pulid_flux_v0.9.1.safetensors"]
    assert pulid.source["repo"] == "guozinan/PuLID" and pulid.folder == "pulid" and pulid.line == 6
    layer = files["layer_xl_fg2ble.safetensors"]
    assert layer.source["path"] == "v2/layer_xl_fg2ble.safetensors"
    assert not any("{name}" in (h.filename or "") for h in hits)  # a name built at run time is not a file
    flor = next(h for h in hits if h.source.get("repo") == "microsoft/Florence-2-base")
    assert flor.filename is None and flor.folder == "LLM"


def test_family_from_names():
    assert family_of("ip-adapter_sd15.safetensors") == "sd15"
    assert family_of("ip-adapter-plus_sdxl_vit-h.safetensors") == "sdxl"
    assert family_of("t5xxl_fp16.safetensors") is None  # not an SDXL file
    assert family_of("layer_xl_fg2ble.safetensors") == "sdxl"
    assert family_of("model.safetensors", "models/image_encoder/model.safetensors", "black-forest-labs/FLUX.1-dev") == "flux"
    assert family_of("wan2.1_i2v_480p.safetensors") == "video"


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@e", "HOME": str(cwd), "PATH": "/usr/bin:/bin"})


def test_builder_applies_the_review_and_cites_lines(tmp_path):
    repo = tmp_path / "mirror" / "someone+APack"
    (repo / "tests").mkdir(parents=True)
    (repo / "README.md").write_text(README)
    (repo / "nodes.py").write_text(CODE)
    (repo / "tests" / "test_x.py").write_text('hf_hub_download(repo_id="x/y", filename="ignored.safetensors")\n')
    (repo / "requirements.txt").write_text("https://example.org/wheel.pt\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "x")
    review = {"packs": {
        "APack": {"repo": "someone/APack", "folder": "ipadapter",
                  "folders": {"RealESRGAN": "upscale_models", "civitai.*4201|\\b99\\b": "loras", "Florence": "-"},
                  "drop": ["Kijai/x"],
                  "add": [{"file": "README.md", "match": "Paper:", "filename": "extra.safetensors", "folder": "loras",
                           "source": {"type": "hf", "repo": "h94/extra", "path": "extra.safetensors"}, "family": "sdxl"}]},
        "Missing": {"repo": "nobody/Missing"}}}
    previous = {"packs": {"Missing": {"repo": "nobody/Missing", "commit": "3" * 40, "popularity": 1, "files": [], "repos": []}}}
    doc = builder.build(review, tmp_path / "mirror", previous)
    pack = doc["packs"]["APack"]
    assert doc["packs"]["Missing"] == previous["packs"]["Missing"]  # no mirror: the previous entry is kept
    assert len(pack["commit"]) == 40 and pack["repo"] == "someone/APack"
    files = {f["filename"]: f for f in pack["files"]}
    assert files["CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"]["provenance"] == {"file": "README.md", "line": 5}
    assert files["RealESRGAN_x4plus.pth"]["folder"] == "upscale_models"
    assert files["pulid_flux_v0.9.1.safetensors"]["provenance"] == {"file": "nodes.py", "line": 6}
    assert files["extra.safetensors"]["provenance"] == {"file": "README.md", "line": 9} and files["extra.safetensors"]["family"] == "sdxl"
    assert "ignored.safetensors" not in files  # tests/ is not documentation
    assert not any("Kijai/x" in json.dumps(f) for f in pack["files"])
    repos = {r["source"].get("repo") or r["source"].get("model_id"): r for r in pack["repos"]}
    assert repos["MonsterMMORPG/tools"]["subdir"] == "models/antelopev2" and 4201 in repos
    assert "microsoft/Florence-2-base" not in repos  # "-" dropped it
    out = tmp_path / "pack_sources.json"
    builder.write(doc, out)
    table = PackSources.load(out)
    assert table.files_named("clip-vit-h-14-laion2b-s32b-b79k.safetensors")[0].is_rename
    prov = tmp_path / "prov.md"
    prov.write_text("# head\n\n" + builder.TABLE_START + "\nold\n" + builder.TABLE_END + "\ntail\n")
    builder.write_provenance(doc, prov)
    text = prov.read_text()
    assert text.startswith("# head") and text.endswith("tail\n") and "| APack | someone/APack |" in text and "old" not in text


def test_split_place():
    assert builder.split_place("ipadapter/sd15") == ("ipadapter", "sd15")
    assert builder.split_place("clip") == ("text_encoders", None)
    assert builder.split_place("custom_nodes/P/ckpts/yzd-v/DWPose") == ("custom_nodes/P/ckpts", "yzd-v/DWPose")
    assert builder.split_place("-") == (None, None)


def test_names_are_tidied_and_templates_dropped():
    text = ("Put it in models/LLM/Florence-2.0-large.\n"
            "Get [model.safetensors.](https://huggingface.co/o/r/resolve/main/model.safetensors). Then "
            "https://huggingface.co/o/r/resolve/main/{}.safetensors and https://example.org/w/%s.pth\n")
    hits = extract("README.md", text)
    names = [h.filename for h in hits if h.filename]
    assert names == ["model.safetensors"]  # no trailing dot; templated names are not files
    h = next(h for h in hits if h.filename)
    assert (h.folder, h.subdir, h.distance) == ("LLM", "Florence-2.0-large", 1)  # a dotted sub-folder is kept


def test_strict_packs_hold_back_far_or_contradicted_folders(tmp_path):
    text = "\n".join([
        "Put the text encoders in models/text_encoders:",
        "- [t5.safetensors](https://huggingface.co/o/r/resolve/main/t5.safetensors)",
        "", "", "",
        "- [far.safetensors](https://huggingface.co/o/r/resolve/main/far.safetensors)",
        "- [vae.safetensors](https://huggingface.co/Comfy-Org/x/resolve/main/split_files/vae/vae.safetensors) models/loras",
    ])
    other = "- [enc.safetensors](https://huggingface.co/Comfy-Org/x/resolve/main/split_files/text_encoders/enc.safetensors)"
    files = [("README.md", extract("README.md", text), text.splitlines()),
             ("docs.md", extract("docs.md", other), [other])]  # no folder in the text: the repo's layout names it
    body, dropped = builder.apply_review({"repo": "o/P", "strict": True}, "1" * 40, files)
    kept = {f["filename"]: f["folder"] for f in body["files"]}
    assert kept == {"t5.safetensors": "text_encoders", "enc.safetensors": "text_encoders"}
    why = {h.filename: w for _, h, w in dropped}
    assert why["far.safetensors"].startswith("uncertain: folder 'text_encoders' is written 5 lines away from the link, in another block")
    assert why["vae.safetensors"] == "uncertain: the text says loras, the repo's layout says vae"
    loose, _ = builder.apply_review({"repo": "o/P"}, "1" * 40, files)  # a hand-reviewed pack keeps its old rule
    assert "far.safetensors" in {f["filename"] for f in loose["files"]}


def test_strict_folders_must_be_read_by_the_packs_own_loaders():
    text = "\n".join([
        "Put [a.safetensors](https://huggingface.co/o/r/resolve/main/a.safetensors) in models/pulid",
        "Put [b.pth](https://huggingface.co/o/r/resolve/main/b.pth) in models/t5",
    ])
    files = [("README.md", extract("README.md", text), text.splitlines())]
    loaders = {"nodes": {"PulidLoader": {"pack": "P", "widgets": ["f"], "models": {"f": {"folder": "pulid"}}}},
               "packs": {"P": {"registers": [{"key": "eva", "path": "eva_clip", "file": "x.py", "line": 1}]}}}
    reads = builder.pack_reads(loaders, "P")
    assert reads == {"pulid", "eva", "eva_clip"}
    body, dropped = builder.apply_review({"repo": "o/P", "strict": True, "_reads": reads}, "1" * 40, files)
    assert [f["filename"] for f in body["files"]] == ["a.safetensors"]
    assert [w for _, _, w in dropped] == ["uncertain: neither ComfyUI nor the pack's code reads 't5'"]


def test_a_list_under_its_folder_heading_is_one_block():
    text = "\n".join(["## Models go to models/facerestore_models", *[
        f"- [f{i}.pth](https://github.com/o/r/releases/download/v1/f{i}.pth)" for i in range(6)],
        "", "- [after.pth](https://github.com/o/r/releases/download/v1/after.pth)"])
    hits = {h.filename: h for h in extract("README.md", text)}
    assert hits["f5.pth"].distance == 6 and hits["f5.pth"].same_block
    assert hits["after.pth"].folder == "facerestore_models" and not hits["after.pth"].same_block
    files = [("README.md", list(hits.values()), text.splitlines())]
    body, dropped = builder.apply_review({"repo": "o/P", "strict": True, "_reads": {"facerestore_models"}}, "1" * 40, files)
    assert sorted(f["filename"] for f in body["files"]) == [f"f{i}.pth" for i in range(6)]
    assert [h.filename for _, h, _ in dropped] == ["after.pth"]


def test_a_folder_on_the_items_next_line_or_above_a_table_of_links_ships():
    """Two ways READMEs say where a file goes that the strict review used to hold back: on the line
    after the link, in its own list item ("…(url)\\nand copy it into models/x"), and as an instruction
    above a table of links under the same heading. A link between the instruction and the table, or a
    heading, still holds it back."""
    text = "\n".join([
        "## Models",
        "- download [Refiner](https://huggingface.co/o/r/resolve/main/refiner.safetensors)",
        "and copy it into `ComfyUI/models/checkpoints`",
        "",
        "- download [Upscaler](https://huggingface.co/o/u/resolve/main/4x.pth)",
        "and copy it into `ComfyUI/models/upscale_models`",
        "",
        "### SAM",
        "Download the model files to `models/sams`, without renaming them.",
        "",
        "| name | file |",
        "|-|-|",
        "| b | [link](https://huggingface.co/o/s/resolve/main/sam_b.pth) |",
        "| l | [link](https://huggingface.co/o/s/resolve/main/sam_l.pth) |",
        "",
        "### Other",
        "| x | [link](https://huggingface.co/o/s/resolve/main/other.pth) |",
    ])
    hits = {h.filename: h for h in extract("README.md", text) if h.filename}
    assert (hits["refiner.safetensors"].folder, hits["4x.pth"].folder) == ("checkpoints", "upscale_models")
    assert hits["sam_l.pth"].folder == "sams" and hits["sam_l.pth"].same_section
    assert not hits["other.pth"].same_section  # a heading between: another section's folder
    body, dropped = builder.apply_review({"repo": "o/P", "strict": True}, "1" * 40, [("README.md", list(hits.values()),
                                                                                     text.splitlines())])
    kept = {f["filename"]: f["folder"] for f in body["files"]}
    assert kept == {"refiner.safetensors": "checkpoints", "4x.pth": "upscale_models", "sam_b.pth": "sams",
                    "sam_l.pth": "sams"}
    assert {h.filename for _, h, _ in dropped} == {"other.pth"}


def test_an_import_line_between_the_folder_and_the_download_is_no_other_source():
    code = "\n".join([
        "def load(self):",
        "    path = os.path.join(folder_paths.models_dir, 'clip_seg', 'clipseg-rd64')",
        "    if not os.path.exists(path):",
        "        from huggingface_hub import snapshot_download",
        "        snapshot_download(repo_id='o/clipseg-rd64', local_dir=path)",
    ])
    (h,) = [h for h in extract("nodes.py", code) if h.source.get("repo") == "o/clipseg-rd64"]
    assert (h.folder, h.same_block) == ("clip_seg", True)
