"""Community test workflows, written by us after the shapes of public pack examples (IP-Adapter,
FaceID, InstantID, PuLID, PhotoMaker, AnimateDiff, ControlNet, detailers, FLUX tools, GGUF, video
wrappers, PixArt with a sharded T5, LoRA stacks on Civitai checkpoints). No pack file is copied:
each recipe lists the loader nodes such an example uses, and the generator fills their model slots
with files of the recipe's family from the world, several times with a seeded RNG.

`split` is "dev" or "holdout": whole recipes (about 30%, by a hash of the recipe's name) are held
out, so a held-out workflow's pack and loader shapes were never looked at while tuning; develop on
dev (its misses are what the report lists), report both.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from .world import CommunityWorld, Truth

#: recipe name -> (family, nodes). A node is (type, widgets) where "{slot}" marks a model slot.
RECIPES: dict[str, tuple[str, tuple]] = {
    "sd15-lora-stack": ("sd15", (("CheckpointLoaderSimple", ["{ckpt.sd15}"]),
                                 ("LoraLoader", ["{lora.sd15}", 0.8, 0.8]), ("LoraLoader", ["{lora.sd15}", 0.5, 0.5]),
                                 ("VAELoader", ["{vae.sd15}"]), ("UpscaleModelLoader", ["{upscale}"]))),
    "sdxl-lora-stack": ("sdxl", (("CheckpointLoaderSimple", ["{ckpt.sdxl}"]),
                                 ("LoraLoader", ["{lora.sdxl}", 1.0, 1.0]), ("LoraLoader", ["{lora.sdxl}", 0.7, 0.7]),
                                 ("VAELoader", ["{vae.sdxl}"]))),
    "ipadapter-sd15": ("sd15", (("CheckpointLoaderSimple", ["{ckpt.sd15}"]), ("IPAdapterModelLoader", ["{ipa.sd15}"]),
                                ("CLIPVisionLoader", ["{clipvision.h}"]))),
    "ipadapter-sdxl": ("sdxl", (("CheckpointLoaderSimple", ["{ckpt.sdxl}"]), ("IPAdapterModelLoader", ["{ipa.sdxl}"]),
                                ("CLIPVisionLoader", ["{clipvision.h}"]), ("LoraLoader", ["{lora.sdxl}", 1.0, 1.0]))),
    "faceid-sd15": ("sd15", (("CheckpointLoaderSimple", ["{ckpt.sd15}"]), ("IPAdapterModelLoader", ["{faceid.sd15}"]),
                             ("LoraLoaderModelOnly", ["{faceid_lora.sd15}", 0.6]), ("CLIPVisionLoader", ["{clipvision.h}"]))),
    "faceid-sdxl": ("sdxl", (("CheckpointLoaderSimple", ["{ckpt.sdxl}"]), ("IPAdapterModelLoader", ["{faceid.sdxl}"]),
                             ("LoraLoaderModelOnly", ["{faceid_lora.sdxl}", 0.6]), ("CLIPVisionLoader", ["{clipvision.h}"]))),
    "instantid": ("sdxl", (("CheckpointLoaderSimple", ["{ckpt.sdxl}"]), ("InstantIDModelLoader", ["{instantid.ipa}"]),
                           ("ControlNetLoader", ["{instantid.cn}"]), ("ControlNetLoader", ["{cn.sdxl}"]))),
    "pulid-sdxl": ("sdxl", (("CheckpointLoaderSimple", ["{ckpt.sdxl}"]), ("PulidModelLoader", ["{pulid.sdxl}"]),
                            ("LoraLoader", ["{lora.sdxl}", 1.0, 1.0]))),
    "photomaker": ("sdxl", (("CheckpointLoaderSimple", ["{ckpt.sdxl}"]), ("PhotoMakerLoader", ["{photomaker}"]))),
    "animatediff": ("sd15", (("CheckpointLoaderSimple", ["{ckpt.sd15}"]), ("ADE_LoadAnimateDiffModel", ["{ad.motion}"]),
                             ("ADE_AnimateDiffLoRALoader", ["{ad.motion_lora}", 0.8]),
                             ("ControlNetLoaderAdvanced", ["{cn.sd15}"]), ("LoraLoader", ["{lora.sd15}", 0.6, 0.6]))),
    "controlnet-sd15": ("sd15", (("CheckpointLoaderSimple", ["{ckpt.sd15}"]), ("ControlNetLoader", ["{cn.sd15}"]),
                                 ("ControlNetLoader", ["{cn.sd15}"]), ("UpscaleModelLoader", ["{upscale}"]))),
    "controlnet-sdxl": ("sdxl", (("CheckpointLoaderSimple", ["{ckpt.sdxl}"]), ("ControlNetLoader", ["{cn.sdxl}"]),
                                 ("VAELoader", ["{vae.sdxl}"]))),
    "face-detailer": ("sd15", (("CheckpointLoaderSimple", ["{ckpt.sd15}"]), ("UltralyticsDetectorProvider", ["{bbox}"]),
                               ("UltralyticsDetectorProvider", ["{segm}"]), ("UpscaleModelLoader", ["{upscale}"]))),
    "flux-lora": ("flux", (("UNETLoader", ["{flux.unet}", "default"]),
                           ("DualCLIPLoader", ["{flux.t5}", "{flux.clip_l}", "flux", "default"]),
                           ("VAELoader", ["{flux.vae}"]), ("LoraLoaderModelOnly", ["{lora.flux}", 1.0]),
                           ("LoraLoaderModelOnly", ["{lora.flux}", 0.7]))),
    "flux-gguf": ("flux", (("UnetLoaderGGUF", ["{flux.gguf}"]),
                           ("DualCLIPLoader", ["{flux.t5}", "{flux.clip_l}", "flux", "default"]),
                           ("VAELoader", ["{flux.vae}"]), ("LoraLoaderModelOnly", ["{lora.flux}", 1.0]))),
    "flux-tools": ("flux", (("UNETLoader", ["{flux.fill}", "default"]), ("StyleModelLoader", ["{flux.redux}"]),
                            ("CLIPVisionLoader", ["{flux.siglip}"]),
                            ("DualCLIPLoader", ["{flux.t5}", "{flux.clip_l}", "flux", "default"]),
                            ("VAELoader", ["{flux.vae}"]), ("ControlNetLoader", ["{cn.flux}"]))),
    "flux-identity": ("flux", (("UNETLoader", ["{flux.unet}", "default"]), ("PulidFluxModelLoader", ["{pulid.flux}"]),
                               ("LoadFluxIPAdapter", ["{flux.ipadapter}", "{clipvision.l}", "CPU"]),
                               ("VAELoader", ["{flux.vae}"]))),
    "wan-wrapper": ("wan", (("WanVideoModelLoader", ["{wan.model}", "bf16", "fp8_e4m3fn", "offload_device", "sdpa"]),
                            ("WanVideoVAELoader", ["{wan.vae}", "bf16"]),
                            ("LoadWanVideoT5TextEncoder", ["{wan.t5}", "bf16", "offload_device", "disabled"]),
                            ("WanVideoLoraSelect", ["{wan.lora}", 1.0, False, True]),
                            ("CLIPVisionLoader", ["{wan.clipvision}"]))),
    "hunyuan-wrapper": ("hunyuan", (("HyVideoModelLoader", ["{hy.model}", "bf16", "fp8_e4m3fn", "offload_device", "sdpa"]),
                                    ("HyVideoVAELoader", ["{hy.vae}", "bf16"]))),
    "pixart-t5": ("pixart", (("PixArtCheckpointLoader", ["{pixart}", "PixArtMS_XL_2"]),
                             ("T5v11Loader", ["{t5.sharded}", "xxl", "file", "cpu", "default"]))),
    # ---- held out: new packs and files, written before any tuning on them
    "h-fooocus-inpaint": ("sdxl", (("CheckpointLoaderSimple", ["{h.ckpt}"]),
                                   ("INPAINT_LoadFooocusInpaint", ["{h.inpaint}", "{h.inpaint_patch}"]),
                                   ("LoraLoader", ["{h.lora}", 0.7, 0.7]))),
    "h-supir": ("sdxl", (("SUPIR_model_loader_v2", ["{h.supir}", False, "auto", False]),
                         ("CheckpointLoaderSimple", ["{h.ckpt}"]), ("UpscaleModelLoader", ["{h.upscale}"]))),
    "h-iclight": ("sd15", (("CheckpointLoaderSimple", ["{ckpt.sd15}"]), ("LoadAndApplyICLightUnet", ["{h.iclight}"]),
                           ("VAELoader", ["{vae.sd15}"]))),
    "h-kolors-ipa": ("kolors", (("IPAdapterModelLoader", ["{h.kolors_ipa}"]), ("CLIPVisionLoader", ["{h.kolors_cv}"]))),
    "h-sdxl-composition": ("sdxl", (("CheckpointLoaderSimple", ["{h.ckpt}"]), ("IPAdapterModelLoader", ["{h.composition}"]),
                                    ("CLIPVisionLoader", ["{clipvision.h}"]), ("LoraLoader", ["{h.lora_hyper}", 1.0, 1.0]),
                                    ("ControlNetLoader", ["{h.cn_misto}"]))),
    "h-t2i-animatediff": ("sd15", (("CheckpointLoaderSimple", ["{ckpt.sd15}"]), ("ControlNetLoader", ["{h.t2i}"]),
                                   ("ADE_LoadAnimateDiffModel", ["{ad.motion}"]))),
    "h-animatediff-sdxl": ("sdxl", (("CheckpointLoaderSimple", ["{h.ckpt}"]),
                                    ("ADE_LoadAnimateDiffModel", ["{h.ad_sdxl}"]),
                                    ("LoraLoader", ["{h.lora}", 0.8, 0.8]))),
}
PER_RECIPE = 4
#: Recipes held out besides those the name hash picks: every "h-" recipe.
HOLDOUT_PREFIX = "h-"


@dataclass
class Expectation:
    """One model of one workflow and where it truly comes from."""

    workflow: str
    node_id: str
    truth: Truth


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def split_of(name: str) -> str:
    recipe = name.rsplit("-", 1)[0]
    return "holdout" if recipe.startswith(HOLDOUT_PREFIX) or _h("split:" + recipe) % 10 < 3 else "dev"


def build_workflows(world: CommunityWorld, per_recipe: int = PER_RECIPE) -> tuple[dict[str, dict], list[Expectation]]:
    workflows: dict[str, dict] = {}
    expected: list[Expectation] = []
    for recipe, (family, nodes) in RECIPES.items():
        for k in range(per_recipe):
            name = f"{recipe}-{k + 1}.json"
            rng = random.Random(_h(name))
            used: dict[str, set[str]] = {}
            out_nodes = []
            for i, (ntype, widgets) in enumerate(nodes):
                values = []
                for w in widgets:
                    if isinstance(w, str) and w.startswith("{"):
                        slot = w[1:-1]
                        pool = world.slot(slot, family)
                        if not pool:
                            raise ValueError(f"no seed for slot {slot} ({family})")
                        fresh = [t for t in pool if t.name not in used.setdefault(slot, set())] or pool
                        t = rng.choice(fresh)
                        used[slot].add(t.name)
                        values.append(t.name)
                        expected.append(Expectation(name, str(i + 1), t))
                    else:
                        values.append(w)
                out_nodes.append({"id": i + 1, "type": ntype, "mode": 0, "pos": [i * 320, 0], "size": [300, 100],
                                  "flags": {}, "order": i, "inputs": [], "outputs": [], "properties": {},
                                  "widgets_values": values})
            workflows[name] = {"last_node_id": len(out_nodes), "last_link_id": 0, "nodes": out_nodes, "links": [],
                               "groups": [], "config": {}, "extra": {}, "version": 0.4}
    return workflows, expected
