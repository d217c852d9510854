"""Checks for the loader knowledge table (comfyui_model_resolver/data/loaders.json).

The table maps ComfyUI node types to the widgets that name model files and the models folder each
file belongs in. These tests only read JSON files: the table itself, the /object_info snapshot of a
real ComfyUI with one sentinel file per models folder, the ComfyUI frontend fixtures, and (when
installed) the official template workflows of comfyui-workflow-templates-json.
"""

import glob
import json
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TABLE_PATH = REPO / "comfyui_model_resolver" / "data" / "loaders.json"
FIXTURES = Path(os.environ.get("CMR_SHARED_FIXTURES", "/work/shared/fixtures"))
SENTINEL = FIXTURES / "object_info" / "comfyui-0.3.64-sentinel-models.json"
FRONTEND = FIXTURES / "comfyui-frontend"

NODE_KEYS = {"pack", "widgets", "models", "widgets_uncertain", "note", "input_patterns", "dict_widgets",
             "text_patterns", "implicit", "provenance"}
SPEC_KEYS = {"folder", "presets", "repo", "dir", "note", "ignore_values", "value_folders", "alt_folders", "match",
             "auto_download", "hardcoded", "root", "enabled_key"}
ITEM_KEYS = {"filename", "folder", "url", "variant", "kind", "repo", "note", "optional", "hardcoded", "root",
             "provenance"}  # provenance: the file and line of the pack code that loads it (read from code)
TEXT_PATTERN_KEYS = {"regex", "group", "folder", "match", "note"}
DIRNAMES = {"basename", "full", "replace_slash"}
MATCHES = {"exact", "substring", "fuzzy"}
ROOTS = {"models", "custom_nodes"}
# CheckpointLoader.config_name lists the yaml configs bundled with ComfyUI; they are not models.
NOT_MODEL_FOLDERS = {"configs"}
# Nodes whose widget list deliberately follows a newer ComfyUI than the 0.3.64 snapshot.
WIDGETS_CHANGED_SINCE_0_3_64 = {"TrainLoraNode"}


@pytest.fixture(scope="module")
def table():
    with open(TABLE_PATH, encoding="utf-8") as f:
        return json.load(f)


def canon(folder, aliases):
    return aliases.get(folder, folder)


def check_folder(folder, where):
    assert isinstance(folder, str) and folder.strip(), f"{where}: folder must be a non-empty string"
    assert not folder.startswith("/") and ".." not in folder.split("/"), f"{where}: folder must be relative: {folder!r}"


def check_item(item, where):
    assert isinstance(item, dict), f"{where}: preset item must be an object"
    assert set(item) <= ITEM_KEYS, f"{where}: unknown keys {set(item) - ITEM_KEYS}"
    assert isinstance(item.get("filename"), str) and item["filename"], f"{where}: filename required"
    check_folder(item.get("folder"), where)
    if "url" in item:
        assert re.match(r"^https?://", item["url"]), f"{where}: bad url {item['url']!r}"
    if "kind" in item:
        assert item["kind"] in ("file", "dir"), where
    if "root" in item:
        assert item["root"] in ROOTS, where
    for key in ("variant", "repo", "note"):
        if key in item:
            assert isinstance(item[key], str) and item[key], f"{where}: {key} must be a non-empty string"


def check_spec(spec, where):
    if isinstance(spec, str):
        check_folder(spec, where)
        return
    assert isinstance(spec, dict), f"{where}: spec must be a string or an object"
    assert set(spec) <= SPEC_KEYS, f"{where}: unknown keys {set(spec) - SPEC_KEYS}"
    kinds = [k for k in ("folder", "presets", "repo", "dir") if k in spec]
    assert kinds, f"{where}: spec needs one of folder/presets/repo/dir"
    assert kinds in (["folder"], ["presets"], ["repo"], ["dir"], ["folder", "presets"]), f"{where}: conflicting kinds {kinds}"
    if "folder" in spec:
        check_folder(spec["folder"], where)
    if "presets" in spec:
        presets = spec["presets"]
        assert isinstance(presets, dict) and presets, f"{where}: presets must be a non-empty object"
        for value, items in presets.items():
            assert isinstance(items, list), f"{where}: preset {value!r} must list files"
            for i, item in enumerate(items):
                check_item(item, f"{where}.presets[{value!r}][{i}]")
    if "repo" in spec:
        repo = spec["repo"]
        assert isinstance(repo, dict) and set(repo) <= {"folder", "dirname"}, f"{where}: bad repo spec"
        check_folder(repo.get("folder"), where)
        assert repo.get("dirname") in DIRNAMES, f"{where}: repo.dirname must be one of {DIRNAMES}"
        if repo["dirname"] == "replace_slash":
            assert spec.get("note"), f"{where}: replace_slash needs a note with the exact rule"
    if "dir" in spec:
        check_folder(spec["dir"], where)
    for key in ("ignore_values",):
        if key in spec:
            assert isinstance(spec[key], list) and all(isinstance(v, str) for v in spec[key]), where
    if "alt_folders" in spec:
        assert isinstance(spec["alt_folders"], list) and spec["alt_folders"], where
        for f in spec["alt_folders"]:
            check_folder(f, where)
    if "value_folders" in spec:
        assert isinstance(spec["value_folders"], dict), where
        for rx, f in spec["value_folders"].items():
            re.compile(rx)
            check_folder(f, where)
    if "match" in spec:
        assert spec["match"] in MATCHES, where
    if "root" in spec:
        assert spec["root"] in ROOTS, where
    for key in ("auto_download", "hardcoded"):
        if key in spec:
            assert isinstance(spec[key], bool), where
    for key in ("note", "enabled_key"):
        if key in spec:
            assert isinstance(spec[key], str) and spec[key], where


def spec_folders(spec, aliases, value=None):
    """Folders a widget value may live in, as the table describes it (canonical names)."""
    if isinstance(spec, str):
        return {canon(spec, aliases)}
    out = set()
    presets = spec.get("presets") or {}
    if value is not None and value in presets:
        return {canon(item["folder"], aliases) for item in presets[value]}
    if "folder" in spec:
        out.add(canon(spec["folder"], aliases))
        out.update(canon(f, aliases) for f in spec.get("alt_folders", []))
        if value is not None:
            for rx, f in (spec.get("value_folders") or {}).items():
                if re.search(rx, value):
                    return {canon(f, aliases)}
    if "repo" in spec:
        out.add(canon(spec["repo"]["folder"], aliases))
    if "dir" in spec:
        out.add(canon(spec["dir"], aliases))
    if not out and value is None:
        for items in presets.values():
            out.update(canon(item["folder"], aliases) for item in items)
    return out


# ------------------------------------------------------------------ schema


def test_top_level_shape(table):
    assert table["version"] == 1
    assert table["folder_aliases"] == {"clip": "text_encoders", "unet": "diffusion_models", "t2i_adapter": "controlnet"}
    assert isinstance(table["nodes"], dict) and len(table["nodes"]) > 100
    assert isinstance(table["non_model"], dict)
    for name, reason in table["non_model"].items():
        assert isinstance(reason, str) and reason, name
        assert name not in table["nodes"], f"{name} is both a loader and non_model"


def test_every_node_entry_is_well_formed(table):
    for name, entry in table["nodes"].items():
        assert set(entry) <= NODE_KEYS, f"{name}: unknown keys {set(entry) - NODE_KEYS}"
        assert isinstance(entry["pack"], str) and entry["pack"], name
        widgets = entry["widgets"]
        assert isinstance(widgets, list) and all(isinstance(w, str) and w for w in widgets), name
        assert len(widgets) == len(set(widgets)), f"{name}: duplicate widget names"
        for w in widgets:
            if w.endswith(".control_after_generate"):
                base = w[: -len(".control_after_generate")]
                assert base in widgets and widgets.index(base) + 1 == widgets.index(w), \
                    f"{name}: {w} must follow {base}"
        models = entry["models"]
        assert isinstance(models, dict), name
        for key, spec in models.items():
            check_spec(spec, f"{name}.{key}")
            assert key in widgets, f"{name}: model input {key!r} missing from widgets"
        dynamic = {"input_patterns", "dict_widgets", "text_patterns", "implicit"} & set(entry)
        assert models or dynamic or entry.get("note"), f"{name}: names no model at all"
        for rx, spec in (entry.get("input_patterns") or {}).items():
            re.compile(rx)
            check_spec(spec, f"{name}.input_patterns[{rx!r}]")
        for key, spec in (entry.get("dict_widgets") or {}).items():
            check_spec(spec, f"{name}.dict_widgets[{key!r}]")
        for widget, patterns in (entry.get("text_patterns") or {}).items():
            assert widget in widgets, f"{name}: text pattern widget {widget!r} missing from widgets"
            for p in patterns:
                assert set(p) <= TEXT_PATTERN_KEYS, name
                re.compile(p["regex"])
                check_folder(p["folder"], name)
        for i, item in enumerate(entry.get("implicit") or []):
            check_item(item, f"{name}.implicit[{i}]")
        if "widgets_uncertain" in entry:
            assert isinstance(entry["widgets_uncertain"], bool), name


def test_canonical_folder_names_for_registered_keys(table):
    """Spec folders use canonical names, except where a pack hard-codes the legacy directory."""
    aliases = table["folder_aliases"]

    def walk(spec, where):
        if isinstance(spec, str):
            assert spec not in aliases, f"{where}: use {aliases[spec]!r} instead of {spec!r}"
            return
        if "folder" in spec and not spec.get("hardcoded"):
            assert spec["folder"] not in aliases, f"{where}: use {aliases[spec['folder']]!r}"
        for items in (spec.get("presets") or {}).values():
            for item in items:
                if not item.get("hardcoded"):
                    assert item["folder"] not in aliases, f"{where}: preset folder {item['folder']!r}"

    for name, entry in table["nodes"].items():
        for key, spec in entry["models"].items():
            walk(spec, f"{name}.{key}")


# ------------------------------------------------------------------ core ComfyUI vs. real /object_info


def _object_info():
    if not SENTINEL.exists():
        pytest.skip(f"sentinel object_info snapshot not found at {SENTINEL}")
    with open(SENTINEL, encoding="utf-8") as f:
        return json.load(f)


def _sentinel_folders(spec):
    opts = None
    if isinstance(spec, list) and spec:
        if isinstance(spec[0], list):
            opts = spec[0]
        elif spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
            opts = spec[1].get("options")
    if not isinstance(opts, list):
        return set()
    return {o[len("cmr-sentinel-"):].rsplit(".", 1)[0] for o in opts
            if isinstance(o, str) and o.startswith("cmr-sentinel-")}


def _frontend_widgets(entry):
    """Widget names in the order the ComfyUI frontend serialises them into widgets_values."""
    names = []
    order = entry.get("input_order") or {}
    for section in ("required", "optional"):
        inputs = entry["input"].get(section) or {}
        for name in order.get(section) or list(inputs):
            spec = inputs[name]
            typ = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            combo = isinstance(typ, list) or typ == "COMBO"
            if not (combo or typ in ("INT", "FLOAT", "STRING", "BOOLEAN")) or opts.get("forceInput"):
                continue
            names.append(name)
            cag = opts.get("control_after_generate")
            if cag is None and typ == "INT" and name in ("seed", "noise_seed"):
                cag = True
            if cag and (typ == "INT" or combo):
                names.append(f"{name}.control_after_generate")
    return names


def test_every_core_loader_in_object_info_is_covered(table):
    info = _object_info()
    aliases = table["folder_aliases"]
    checked = 0
    for node_type, entry in info.items():
        for section in ("required", "optional"):
            for inp, spec in (entry["input"].get(section) or {}).items():
                folders = {canon(f, aliases) for f in _sentinel_folders(spec)} - NOT_MODEL_FOLDERS
                if not folders:
                    continue
                assert node_type in table["nodes"], f"core loader {node_type} missing"
                models = table["nodes"][node_type]["models"]
                assert inp in models, f"{node_type}.{inp} ({folders}) missing"
                assert spec_folders(models[inp], aliases) == folders, f"{node_type}.{inp}"
                checked += 1
    assert checked >= 30


def test_core_widget_order_matches_object_info(table):
    info = _object_info()
    for node_type, entry in table["nodes"].items():
        if entry["pack"] != "comfyui" or node_type not in info or node_type in WIDGETS_CHANGED_SINCE_0_3_64:
            continue
        assert entry["widgets"] == _frontend_widgets(info[node_type]), node_type


def test_api_nodes_with_model_widgets_are_non_model(table):
    info = _object_info()
    for node_type, entry in info.items():
        if entry.get("python_module", "").startswith("comfy_api_nodes"):
            names = [n for s in ("required", "optional") for n in (entry["input"].get(s) or {})]
            if any("model" in n.lower() for n in names):
                assert node_type in table["non_model"], node_type


# ------------------------------------------------------------------ frontend fixtures


def test_native_lora_api_inputs_match_input_patterns(table):
    path = FRONTEND / "inputs" / "native_lora_sparse_api.json"
    if not path.exists():
        pytest.skip("frontend fixtures not available")
    prompt = json.loads(path.read_text(encoding="utf-8"))
    aliases = table["folder_aliases"]
    found = []
    for node in prompt.values():
        entry = table["nodes"][node["class_type"]] if node["class_type"] in table["nodes"] else None
        if not entry:
            continue
        for key, value in node["inputs"].items():
            for rx, spec in (entry.get("input_patterns") or {}).items():
                if re.search(rx, key):
                    found.append((value, spec_folders(spec, aliases)))
    assert found == [("native-lora-e2e/A.safetensors", {"loras"}), ("native-lora-e2e/C.safetensors", {"loras"})]


def test_checkpoint_loader_fixture_maps_first_widget(table):
    path = FRONTEND / "inputs" / "checkpoint_loader.json"
    if not path.exists():
        pytest.skip("frontend fixtures not available")
    wf = json.loads(path.read_text(encoding="utf-8"))
    node = wf["nodes"][0]
    entry = table["nodes"][node["type"]]
    pairs = dict(zip(entry["widgets"], node["widgets_values"]))
    assert pairs["ckpt_name"] == "sd_xl_base_1.0.safetensors"
    assert entry["models"]["ckpt_name"] == "checkpoints"


# ------------------------------------------------------------------ official template workflows


def _template_nodes():
    try:
        import comfyui_workflow_templates_json as pkg
    except ImportError:
        pytest.skip("comfyui-workflow-templates-json is not installed")
    base = Path(pkg.__file__).parent / "templates"
    files = sorted(glob.glob(str(base / "*.json")))
    if not files:
        pytest.skip("no template workflows found")
    for path in files:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            continue  # index files
        nodes = list(data.get("nodes") or [])
        for sg in (data.get("definitions") or {}).get("subgraphs") or []:
            nodes.extend(sg.get("nodes") or [])
        for node in nodes:
            yield os.path.basename(path), node


def test_template_model_nodes_are_covered_with_the_right_folder(table):
    aliases = table["folder_aliases"]
    checked = 0
    for fname, node in _template_nodes():
        models = (node.get("properties") or {}).get("models")
        if not models:
            continue
        node_type = node["type"]
        assert node_type in table["nodes"], f"{fname}: {node_type} missing from the table"
        entry = table["nodes"][node_type]
        values = node.get("widgets_values")
        for model in models:
            if not isinstance(values, list) or model["name"] not in values:
                continue
            index = values.index(model["name"])
            assert index < len(entry["widgets"]), f"{fname}: {node_type} has no widget #{index}"
            widget = entry["widgets"][index]
            assert widget in entry["models"], f"{fname}: {node_type}.{widget} should name a model ({model['name']})"
            folders = spec_folders(entry["models"][widget], aliases, model["name"])
            assert canon(model["directory"], aliases) in folders, \
                f"{fname}: {node_type}.{widget}={model['name']} expected {model['directory']}, table says {folders}"
            checked += 1
    assert checked > 100


# ------------------------------------------------------------------ packs read from their own code (loaders_build)

MIN_PACKS = 150  # issue 11: loaders of at least 150 packs, by popularity


def test_at_least_150_packs_have_loader_entries(table):
    packs = {e["pack"] for e in table["nodes"].values()} - {"comfyui"}
    assert len(packs) >= MIN_PACKS, f"only {len(packs)} packs have loader entries"
    read = table["packs"]
    # every pack with an entry is either hand-checked (listed in loaders_provenance.md) or read by the builder
    provenance_md = (TABLE_PATH.parent / "loaders_provenance.md").read_text(encoding="utf-8")
    for pack in packs:
        assert pack in read or f"| {pack} |" in provenance_md, f"{pack}: no provenance"


def test_packs_section_says_what_was_read(table):
    stars = []
    for name, p in table["packs"].items():
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", p["repo"]) and p["repo"].split("/")[1] == name, name
        assert re.fullmatch(r"[0-9a-f]{40}", p["commit"]), name
        assert p["stars"] is None or isinstance(p["stars"], int)
        assert isinstance(p["loaders"], int) and 0 <= p["extracted"] <= p["loaders"], name
        for r in p["registers"]:
            assert r["key"] and r["file"].endswith(".py") and r["line"] >= 1, (name, r)
            assert r["path"] is None or not r["path"].startswith("/"), (name, r)
        stars.append(p["stars"] or 0)
    assert stars == sorted(stars, reverse=True), "packs are listed by popularity"
    assert len(table["packs"]) >= MIN_PACKS


def test_extracted_entries_cite_the_class_that_defines_them(table):
    extracted = {k: e for k, e in table["nodes"].items() if "provenance" in e}
    assert len(extracted) > 200
    for name, e in extracted.items():
        assert e["pack"] in table["packs"], name
        prov = e["provenance"]
        assert prov["file"].endswith(".py") and prov["line"] >= 1, name
        if e.get("widgets_uncertain"):
            assert "extractor:" in e.get("note", ""), f"{name}: an uncertain entry says why"
    counted = {}
    for e in extracted.values():
        counted[e["pack"]] = counted.get(e["pack"], 0) + 1
    for pack, n in counted.items():
        assert table["packs"][pack]["extracted"] == n, pack


def test_extracted_spot_checks(table):
    """Real entries, read from the packs' code."""
    n = table["nodes"]
    assert n["IPAdapterFluxLoader"]["models"] == {"ipadapter": {"folder": "ipadapter-flux"}}
    assert n["IPAdapterFluxLoader"]["pack"] == "ComfyUI-IPAdapter-Flux"
    assert n["TensorRTLoader"]["models"]["unet_name"] == {"folder": "tensorrt"}  # .engine files
    assert n["TensorRTLoader"]["widgets"][0] == "unet_name"
    flux_train = n["FluxTrainModelSelect"]["models"]
    assert flux_train["transformer"] == {"folder": "diffusion_models"} and flux_train["t5"] == {"folder": "text_encoders"}
    assert n["LoadChatGLM3"]["models"] == {"chatglm3_checkpoint": {"folder": "LLM"}}
    regs = {r["key"]: r["path"] for r in table["packs"]["ComfyUI-IPAdapter-Flux"]["registers"]}
    assert regs["ipadapter-flux"] == "ipadapter-flux"
    # hand-checked entries are never replaced by extracted ones
    assert "provenance" not in n["IPAdapterModelLoader"] and "provenance" not in n["CheckpointLoaderSimple"]


PACK_MIRROR = os.environ.get("PACK_MIRROR")


@pytest.mark.skipif(not PACK_MIRROR, reason="set PACK_MIRROR to the folder of the packs' git mirrors to check provenance")
def test_extracted_provenance_lines_define_the_class(table):
    import subprocess

    checked = 0
    for name, e in table["nodes"].items():
        if "provenance" not in e:
            continue
        p = table["packs"][e["pack"]]
        git_dir = Path(PACK_MIRROR) / p["repo"].replace("/", "+") / "repo"
        if (git_dir / ".git").is_dir():
            git_dir = git_dir / ".git"
        if not git_dir.is_dir():
            continue
        text = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{p['commit']}:{e['provenance']['file']}"],
                              check=True, capture_output=True, text=True, errors="replace").stdout.splitlines()
        assert text[e["provenance"]["line"] - 1].lstrip().startswith("class "), name
        checked += 1
        for imp in e.get("implicit") or ():  # implied models read from code cite the call that loads them
            if "provenance" in imp:
                src = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{p['commit']}:{imp['provenance']['file']}"],
                                     check=True, capture_output=True, text=True, errors="replace").stdout.splitlines()
                assert "FaceAnalysis" in src[imp["provenance"]["line"] - 1], (name, imp)
    assert checked > 200


def test_models_a_node_implies_are_read_from_the_packs_code(table):
    """insightface face-analysis models that identity packs' loader nodes load without a widget naming
    them: read from each pack's code (the call's file and line), not written by hand per pack."""
    n = table["nodes"]
    implied = {name: [(i["filename"], i["folder"]) for i in e.get("implicit") or () if "provenance" in i]
               for name, e in n.items()}
    implied = {k: v for k, v in implied.items() if v}
    assert len(implied) >= 8 and len({n[k]["pack"] for k in implied}) >= 7
    assert implied["PhotoMakerInsightFaceLoader"] == [("buffalo_l", "insightface/models")]
    assert implied["IDEmbeddingModelLoader"] == [("antelopev2", "insightface/models")]  # InfiniteYou
    prov = n["PhotoMakerInsightFaceLoader"]["implicit"][0]["provenance"]
    assert prov == {"file": "insightface_package.py", "line": 45}
    # hand-checked entries keep what a person wrote (presets per provider)
    assert all("provenance" not in i for i in n["InstantIDFaceAnalysis"].get("implicit") or ())


def test_candidate_folders_for_an_unknown_node_of_a_known_pack(table):
    """Detection's fallback without /object_info: a node the table lacks, of a pack it knows, gets that
    pack's folders as candidates; a pack it does not know gets none (the folder is unknown, not guessed)."""
    from comfyui_model_resolver.workflow.knowledge import LoaderTable

    t = LoaderTable.from_json(table)
    assert t.pack_folders("ComfyUI-IPAdapter-Flux")[0] == "ipadapter-flux"
    assert t.pack_folders("shakker-labs/comfyui-ipadapter-flux") == t.pack_folders("ComfyUI-IPAdapter-Flux")
    rid = table["packs"]["ComfyUI_TensorRT"]["registry_id"]
    if rid:
        assert "tensorrt" in t.pack_folders(rid)
    assert "tensorrt" in t.pack_folders("https://github.com/comfyanonymous/ComfyUI_TensorRT")
    assert t.pack_folders("someone/NeverHeardOf") == [] and t.pack_folders(None) == []
