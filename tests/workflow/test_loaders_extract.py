"""The loader extractor on node-pack code we write: node types, widget order, folders, registrations."""
from __future__ import annotations

from comfyui_model_resolver.workflow.loaders_build import entry_of, folder_spec
from comfyui_model_resolver.workflow.loaders_extract import extract_pack

NODES = '''
import os
import folder_paths

folder_paths.add_model_folder_path("ipadapter-flux", os.path.join(folder_paths.models_dir, "ipadapter-flux"))
folder_paths.folder_names_and_paths["tensorrt"] = ([os.path.join(folder_paths.models_dir, "tensorrt")], {".engine"})
LLM_DIR = os.path.join(folder_paths.models_dir, "LLM")

def lora_list():
    return ["None"] + folder_paths.get_filename_list("loras")

class AnyType(str):
    pass

any_type = AnyType("*")

class Loader:
    @classmethod
    def INPUT_TYPES(s):
        vae = folder_paths.get_filename_list("vae")
        return {"required": {
                    "model": ("MODEL",),
                    "ckpt_name": (folder_paths.get_filename_list("checkpoints"), ),
                    "seed": ("INT", {"default": 0}),
                    "vae_name": (["Baked VAE"] + vae, ),
                    "strength": ("FLOAT", {"default": 1.0}),
                    "anything": (any_type, ),
                    "text": ("STRING", {"forceInput": True}),
                },
                "optional": {"lora": (lora_list(), ), "image": ("IMAGE",),
                             "clip": (folder_paths.get_filename_list("clip") + folder_paths.get_filename_list("clip_gguf"),)}}

class Derived(Loader):
    pass

class Engine:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"unet_name": (folder_paths.get_filename_list("tensorrt"),),
                             "llm": (os.listdir(LLM_DIR),), "mode": (["a", "b"],)}}

class AutoSam:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": (["sam2_hiera_large.safetensors", "sam2_hiera_small.safetensors"],)}}

    def load(self, model):
        path = os.path.join(folder_paths.models_dir, "sam2")
        return path

class Hidden:
    @classmethod
    def INPUT_TYPES(cls):
        spec = make_spec()
        return spec

NODE_CLASS_MAPPINGS = {"My Loader": Loader, "Derived": Derived, "Engine": Engine, "AutoSam": AutoSam, "Hidden": Hidden}
'''

V3 = '''
import folder_paths
from comfy_api.latest import io

class InpaintLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="INPAINT_LoadModel", inputs=[
            io.Combo.Input("model_name", folder_paths.get_filename_list("inpaint")),
            io.Int.Input("noise_seed", optional=True),
            io.Float.Input("weight"),
            io.Image.Input("image"),
        ])
'''


def _run(files):
    loaders, regs, problems = extract_pack(files)
    return {lo.node_type: lo for lo in loaders}, regs, problems


def test_v2_loader_widgets_models_and_provenance():
    got, _, _ = _run({"nodes.py": NODES})
    lo = got["My Loader"]
    # sockets (MODEL, IMAGE, an AnyType) and forceInput strings are no widgets; seed gets its control widget
    assert lo.widgets == ["ckpt_name", "seed", "seed.control_after_generate", "vae_name", "strength", "lora", "clip"]
    assert lo.models == {"ckpt_name": {"folder": ["checkpoints"]}, "vae_name": {"folder": ["vae"]},
                         "lora": {"folder": ["loras"]}, "clip": {"folder": ["clip", "clip_gguf"]}}
    assert (lo.file, lo.cls, lo.uncertain) == ("nodes.py", "Loader", [])
    assert NODES.splitlines()[lo.line - 1].startswith("class Loader")
    assert got["Derived"].models == lo.models and got["Derived"].cls == "Derived"  # INPUT_TYPES inherited


def test_listdir_auto_download_and_unreadable_nodes():
    got, regs, problems = _run({"nodes.py": NODES})
    assert got["Engine"].models == {"unet_name": {"folder": ["tensorrt"]}, "llm": {"listdir": "LLM"}}
    assert got["Engine"].widgets == ["unet_name", "llm", "mode"]
    assert got["AutoSam"].models == {"model": {"listdir": "sam2", "auto_download": True}}
    assert "Hidden" not in got  # nothing it reads could be followed: no entry rather than a guess
    assert {(r.folder, r.path) for r in regs} == {("ipadapter-flux", "ipadapter-flux"), ("tensorrt", "tensorrt")}
    assert problems == []


def test_v3_schema_nodes():
    got, _, _ = _run({"nodes.py": V3})
    lo = got["INPAINT_LoadModel"]
    assert lo.widgets == ["model_name", "weight", "noise_seed", "noise_seed.control_after_generate"]
    assert lo.models == {"model_name": {"folder": ["inpaint"]}}


def test_unparsable_file_is_reported_not_fatal():
    got, _, problems = _run({"bad.py": "def (:\n", "nodes.py": NODES})
    assert "My Loader" in got and problems == ["bad.py: not parsed (SyntaxError)"]


def test_folder_keys_become_folders():
    core = {"checkpoints": "checkpoints", "text_encoders": "text_encoders", "diffusion_models": "unet", "vae": "vae"}
    registered = {"ultralytics_bbox": "ultralytics/bbox", "ipadapter-flux": "ipadapter-flux"}
    spec, notes = folder_spec(["clip", "clip_gguf"], core=core, registered=registered)
    assert spec == {"folder": "text_encoders", "alt_folders": ["clip_gguf"]} and "clip_gguf" in notes[0]
    assert folder_spec(["ultralytics_bbox"], core=core, registered=registered)[0] == {"folder": "ultralytics/bbox"}
    assert folder_spec(["unet"], core=core, registered=registered) == ({"folder": "diffusion_models"}, [])
    assert folder_spec(["video_formats"], core=core, registered=registered) == (None, [])


def test_table_entry_carries_provenance_and_doubts():
    got, _, _ = _run({"nodes.py": NODES, "more.py": "import folder_paths\nclass X:\n    @classmethod\n"
                      "    def INPUT_TYPES(s):\n        return {'required': {'m': (folder_paths.get_filename_list('loras'),),"
                      " 'k': (KINDS,)}}\nNODE_CLASS_MAPPINGS = {'X': X}\n"})
    core = {"checkpoints": "checkpoints", "loras": "loras", "vae": "vae", "text_encoders": "text_encoders"}
    e = entry_of(got["Engine"], "Pack", core=core, registered={"tensorrt": "tensorrt"})
    assert e["models"]["llm"] == {"folder": "LLM", "hardcoded": True, "note": "the node lists models/LLM itself"}
    assert e["provenance"]["file"] == "nodes.py" and e["pack"] == "Pack" and "widgets_uncertain" not in e
    x = entry_of(got["X"], "Pack", core=core, registered={})
    assert x["widgets_uncertain"] is True and "type of input 'k' not literal" in x["note"]
    assert x["models"] == {"m": {"folder": "loras"}}


def test_options_from_a_helper_method_of_the_class_are_followed():
    """`(Loader.get_names(),)` and `(cls.get_names(),)` in INPUT_TYPES: the method's get_filename_list
    names the folder (InfiniteYou's loaders, with models/infinite_you registered by the pack)."""
    code = '''
import os
import folder_paths
folder_paths.add_model_folder_path("infinite_you", os.path.join(folder_paths.models_dir, "infinite_you"))

class ProjLoader:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"proj_name": (ProjLoader.get_names(), ), "tokens": ([8, 16], )}}
    FUNCTION = "load"
    def get_names():
        names = ["stage1/proj.bin", *folder_paths.get_filename_list("infinite_you")]
        return [n for n in names if n.endswith(".bin")]
    def load(self, proj_name, tokens):
        return (None,)

NODE_CLASS_MAPPINGS = {"ProjLoader": ProjLoader}
'''
    loaders, regs, _ = extract_pack({"nodes.py": code})
    (ld,) = loaders
    assert ld.models == {"proj_name": {"folder": ["infinite_you"]}} and not ld.uncertain
    assert ld.widgets == ["proj_name", "tokens"]
    assert [(r.folder, r.path) for r in regs] == [("infinite_you", "infinite_you")]


def test_helper_methods_of_another_files_class_and_f_string_node_names():
    """`(UI.CHECKPOINTS(),)` where UI is a class of another file of the pack, and node types mapped
    with f-strings without placeholders (SeargeSDXL's shapes)."""
    ui = '''
import folder_paths
class UI:
    @staticmethod
    def CHECKPOINTS():
        return folder_paths.get_filename_list("checkpoints")
    @staticmethod
    def UPSCALERS_WITH_NONE():
        return ["none"] + folder_paths.get_filename_list("upscale_models")
'''
    nodes = '''
from .ui import UI
class Selector:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"base": (UI.CHECKPOINTS(),), "upscaler": (UI.UPSCALERS_WITH_NONE(),),
                             "data": ("SRG_DATA_STREAM",)}}
    FUNCTION = "get"
    def get(self, base, upscaler, data=None):
        return (None,)
NODE_CLASS_MAPPINGS = {f"Selector": Selector}
'''
    (ld,), _, _ = extract_pack({"modules/ui.py": ui, "modules/nodes.py": nodes})
    assert ld.node_type == "Selector" and ld.widgets == ["base", "upscaler"] and not ld.uncertain
    assert ld.models == {"base": {"folder": ["checkpoints"]}, "upscaler": {"folder": ["upscale_models"]}}
