"""Models a node's code loads without a widget naming them (insightface face analysis), read with `ast`.
The pack code below is ours, written in the shapes identity packs use (a loader node calling a helper in
another file, a module constant for the root, presets choosing the model, cache tests)."""
from __future__ import annotations

import textwrap

from comfyui_model_resolver.workflow.loaders_build import entry_of, implied_entry
from comfyui_model_resolver.workflow.loaders_extract import extract_pack


def _pack(**files: str) -> dict[str, str]:
    return {name.replace("__", "/") + ".py": textwrap.dedent(text) for name, text in files.items()}


def _implied(files: dict[str, str]) -> dict[str, list[tuple]]:
    loaders, _, _ = extract_pack(files)
    return {ld.node_type: [(i.filename, i.widget, i.folder, f"{i.file}:{i.line}") for i in ld.implied] for ld in loaders}


HELPER = """
    import os
    import folder_paths
    from insightface.app import FaceAnalysis

    def face_loader(provider, model_name="buffalo_l"):
        path = os.path.join(folder_paths.models_dir, "insightface")
        model = FaceAnalysis(name=model_name, root=path, providers=[provider + "ExecutionProvider"])
        return model
"""


def test_a_literal_name_through_a_helper_in_another_file_is_implied_with_its_line():
    files = _pack(helpers=HELPER, nodes="""
        from .helpers import face_loader

        class FaceLoaderNode:
            @classmethod
            def INPUT_TYPES(s):
                return {"required": {"provider": (["CPU", "CUDA"],)}}
            FUNCTION = "load"
            def load(self, provider):
                return (face_loader(provider),)

        NODE_CLASS_MAPPINGS = {"FaceLoaderNode": FaceLoaderNode}
    """)
    assert _implied(files) == {"FaceLoaderNode": [("buffalo_l", None, "insightface/models", "helpers.py:8")]}


def test_a_module_constant_root_and_an_explicit_name():
    files = _pack(nodes="""
        import os, folder_paths
        from insightface.app import FaceAnalysis
        models_path = folder_paths.models_dir
        INSIGHTFACE_DIR = os.path.join(models_path, "insightface")

        class IdLoader:
            @classmethod
            def INPUT_TYPES(s):
                return {"required": {"provider": (["CPU"],)}}
            FUNCTION = "go"
            def go(self, provider):
                if self.model is None:  # a cache test: the model is still always needed
                    self.model = FaceAnalysis(name="antelopev2", root=INSIGHTFACE_DIR)
                return (self.model,)

        NODE_CLASS_MAPPINGS = {"IdLoader": IdLoader}
    """)
    assert _implied(files) == {"IdLoader": [("antelopev2", None, "insightface/models", "nodes.py:14")]}


def test_a_name_from_a_widget_makes_that_widget_a_folder_of_models():
    files = _pack(helpers=HELPER, nodes="""
        from .helpers import face_loader

        class PickFace:
            @classmethod
            def INPUT_TYPES(s):
                return {"required": {"provider": (["CPU"],), "model_name": (["buffalo_l", "antelopev2"],)}}
            FUNCTION = "load"
            def load(self, provider, model_name):
                return (face_loader(provider, model_name=model_name),)

        NODE_CLASS_MAPPINGS = {"PickFace": PickFace}
    """)
    loaders, _, _ = extract_pack(files)
    (ld,) = loaders
    assert [(i.filename, i.widget) for i in ld.implied] == [(None, "model_name")]
    entry = entry_of(ld, "pack", core={}, registered={})
    assert entry["models"]["model_name"]["dir"] == "insightface/models"
    assert "implicit" not in entry


def test_a_model_chosen_by_a_preset_is_not_implied_by_the_node():
    files = _pack(helpers=HELPER, nodes="""
        from .helpers import face_loader

        def file_for(preset):
            return "x.bin", "faceid" in preset.lower()

        class Unified:
            @classmethod
            def INPUT_TYPES(s):
                return {"required": {"preset": (["LIGHT", "FACEID"],), "provider": (["CPU"],)}}
            FUNCTION = "load"
            def load(self, preset, provider):
                ipadapter_file, is_faceid = file_for(preset)
                if is_faceid:
                    return (face_loader(provider),)
                if preset == "FACEID KOLORS":
                    return (face_loader(provider, "antelopev2"),)
                return (None,)

        NODE_CLASS_MAPPINGS = {"Unified": Unified}
    """)
    assert _implied(files) == {}


def test_a_root_outside_the_models_folder_is_left_out_and_said_so():
    files = _pack(nodes="""
        import os
        from insightface.app import FaceAnalysis
        here = os.path.dirname(__file__)

        class Local:
            @classmethod
            def INPUT_TYPES(s):
                return {"required": {"provider": (["CPU"],)}}
            FUNCTION = "go"
            def go(self, provider):
                return (FaceAnalysis(name="antelopev2", root=here),)

        NODE_CLASS_MAPPINGS = {"Local": Local}
    """)
    loaders, _, problems = extract_pack(files)
    assert loaders == []
    assert any("Local" in p and "root is not a literal folder under models" in p for p in problems)


def test_the_table_entry_cites_the_call():
    files = _pack(helpers=HELPER, nodes="""
        from .helpers import face_loader
        class N:
            @classmethod
            def INPUT_TYPES(s):
                return {"required": {"provider": (["CPU"],)}}
            FUNCTION = "f"
            def f(self, provider):
                return (face_loader(provider),)
        NODE_CLASS_MAPPINGS = {"N": N}
    """)
    (ld,) = extract_pack(files)[0]
    entry = entry_of(ld, "somepack", core={}, registered={})
    assert entry["models"] == {} and entry["widgets"] == ["provider"]
    assert entry["implicit"] == [implied_entry(ld.implied[0])]
    assert entry["implicit"][0]["provenance"] == {"file": "helpers.py", "line": 8}
    assert entry["implicit"][0]["kind"] == "dir" and entry["implicit"][0]["filename"] == "buffalo_l"
