"""Two sets of community workflows for measuring detection (filename + folder), written by us after
the shapes of public pack examples (the loader nodes those examples use, their widget order, the
files their READMEs name). Nothing is copied from a pack: node types and widget orders are facts
about the packs' interfaces; every value and expectation below is ours.

Set A: packs the loader table describes (IPAdapter plus, Impact, AnimateDiff-Evolved, rgthree,
Efficiency, Easy-Use, WanVideoWrapper, KJNodes, ReActor, SUPIR, Florence2, PuLID-Flux, InstantID).
Set B: other packs, and the traps seen on unseen workflows: LoRA-manager text/list widgets, nodes
whose widgets carry typed input slots (newer frontends), bypassed nodes with shifted values, prompts
that end in ".pt", config files beside models, and loaders of packs the table does not know (their
folder comes from the input's name or the node type, else "folder unknown" with candidates).

`expect`: (filename, folder) a reviewer reads off the workflow and the pack's docs; implied files
(a preset's models, insightface packs) are expected too. `ignore`: files a detector may list or not
without being wrong (another family's optional preset variant).
"""
from __future__ import annotations


def _node(i: int, ntype: str, widgets, mode: int = 0, slots: tuple = ()) -> dict:
    """slots: (name, type) of widget-backed input slots, as frontends >= 1.16 save them."""
    return {"id": i, "type": ntype, "mode": mode, "widgets_values": widgets, "properties": {},
            "inputs": [{"name": n, "type": t, "widget": {"name": n}, "link": None} for n, t in slots]}


def _wf(*nodes) -> dict:
    return {"last_node_id": len(nodes), "last_link_id": 0, "links": [], "version": 0.4,
            "nodes": [_node(i + 1, *n) for i, n in enumerate(nodes)]}


SD15_IPA_OPTIONAL = {("ip-adapter-plus_sdxl_vit-h.safetensors", "ipadapter"),
                     ("ip-adapter_sdxl_vit-h.safetensors", "ipadapter")}

SET_A: list[dict] = [
    {"name": "ipadapter-unified-sd15", "after": "ComfyUI_IPAdapter_plus examples (unified loader)",
     "wf": _wf(("CheckpointLoaderSimple", ["SD1.5/realisticVisionV51_v51VAE.safetensors"]),
               ("IPAdapterUnifiedLoader", ["PLUS (high strength)"]),
               ("CLIPTextEncode", ["a portrait, embedding:EasyNegative"])),
     "expect": {("SD1.5/realisticVisionV51_v51VAE.safetensors", "checkpoints"),
                ("ip-adapter-plus_sd15.safetensors", "ipadapter"),
                ("CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "clip_vision"), ("EasyNegative", "embeddings")},
     "ignore": SD15_IPA_OPTIONAL},
    {"name": "ipadapter-faceid", "after": "ComfyUI_IPAdapter_plus examples (FaceID)",
     "wf": _wf(("CheckpointLoaderSimple", ["dreamshaper_8.safetensors"]),
               ("IPAdapterModelLoader", ["ip-adapter-faceid-plusv2_sd15.bin"]),
               ("CLIPVisionLoader", ["CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"]),
               ("IPAdapterInsightFaceLoader", ["CPU", "buffalo_l"]),
               ("LoraLoaderModelOnly", ["ip-adapter-faceid-plusv2_sd15_lora.safetensors", 0.6])),
     "expect": {("dreamshaper_8.safetensors", "checkpoints"), ("ip-adapter-faceid-plusv2_sd15.bin", "ipadapter"),
                ("CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "clip_vision"), ("buffalo_l", "insightface/models"),
                ("ip-adapter-faceid-plusv2_sd15_lora.safetensors", "loras")}},
    {"name": "impact-face-detailer", "after": "ComfyUI-Impact-Pack example workflows (FaceDetailer)",
     "wf": _wf(("CheckpointLoaderSimple", ["juggernautXL_v9Rdphoto2Lightning.safetensors"]),
               ("UltralyticsDetectorProvider", ["bbox/face_yolov8m.pt"]),
               ("SAMLoader", ["sam_vit_b_01ec64.pth", "AUTO"]),
               ("UpscaleModelLoader", ["4x-UltraSharp.pth"]),
               ("FaceDetailer", [384, True, 1024, 0, "fixed", 20, 8, "euler", "normal", 0.5, 5, True, True, 0.5, 10,
                                 3, "center-1", 0, 0.93, 0, 0.7, "False", 10, "", 1, False, 20])),
     "expect": {("juggernautXL_v9Rdphoto2Lightning.safetensors", "checkpoints"),
                ("bbox/face_yolov8m.pt", "ultralytics"), ("sam_vit_b_01ec64.pth", "sams"),
                ("4x-UltraSharp.pth", "upscale_models")}},
    {"name": "animatediff-evolved", "after": "ComfyUI-AnimateDiff-Evolved README examples",
     "wf": _wf(("CheckpointLoaderSimple", ["revAnimated_v122EOL.safetensors"]),
               ("ADE_LoadAnimateDiffModel", ["v3_sd15_mm.ckpt"]),
               ("ADE_AnimateDiffLoRALoader", ["v2_lora_ZoomIn.ckpt", 0.8]),
               ("ControlNetLoaderAdvanced", ["control_v11p_sd15_openpose.pth"]),
               ("VAELoader", ["vae-ft-mse-840000-ema-pruned.safetensors"])),
     "expect": {("revAnimated_v122EOL.safetensors", "checkpoints"), ("v3_sd15_mm.ckpt", "animatediff_models"),
                ("v2_lora_ZoomIn.ckpt", "animatediff_motion_lora"), ("control_v11p_sd15_openpose.pth", "controlnet"),
                ("vae-ft-mse-840000-ema-pruned.safetensors", "vae")}},
    {"name": "rgthree-power-lora", "after": "rgthree-comfy README (Power Lora Loader)",
     "wf": _wf(("CheckpointLoaderSimple", ["ponyDiffusionV6XL_v6StartWithThisOne.safetensors"]),
               ("Power Lora Loader (rgthree)", [{}, {"type": "PowerLoraLoaderHeaderWidget"},
                                                {"on": True, "lora": "pony/add-detail-xl.safetensors", "strength": 1},
                                                {"on": False, "lora": "pony/pixel-art-xl.safetensors", "strength": 0.5},
                                                {}, ""]),
               ("Lora Loader Stack (rgthree)", ["None", 1, "xl_more_art-full_v1.safetensors", 0.7, "None", 1, "None", 1])),
     "expect": {("ponyDiffusionV6XL_v6StartWithThisOne.safetensors", "checkpoints"),
                ("pony/add-detail-xl.safetensors", "loras"), ("pony/pixel-art-xl.safetensors", "loras"),
                ("xl_more_art-full_v1.safetensors", "loras")}},
    {"name": "efficiency-loader", "after": "efficiency-nodes-comfyui README (Efficient Loader + LoRA Stacker)",
     "wf": _wf(("Efficient Loader", ["epicrealism_naturalSinRC1VAE.safetensors", "Baked VAE", -1, "more_details.safetensors",
                                     0.6, 0.6, "a photo", "blurry", "none", "comfy", 512, 768, 1]),
               ("LoRA Stacker", ["simple", 2, "epiNoiseoffset_v2.safetensors", 0.5, 1, 1, "add_detail.safetensors",
                                 0.4, 1, 1] + ["None", 1, 1, 1] * 3)),
     "expect": {("epicrealism_naturalSinRC1VAE.safetensors", "checkpoints"), ("more_details.safetensors", "loras"),
                ("epiNoiseoffset_v2.safetensors", "loras"), ("add_detail.safetensors", "loras")}},
    {"name": "wanvideo-wrapper", "after": "ComfyUI-WanVideoWrapper example_workflows (T2V)",
     "wf": _wf(("WanVideoModelLoader", ["Wan2_1-T2V-14B_fp8_e4m3fn.safetensors", "bf16", "fp8_e4m3fn",
                                        "offload_device", "sdpa"]),
               ("WanVideoVAELoader", ["Wan2_1_VAE_bf16.safetensors", "bf16"]),
               ("LoadWanVideoT5TextEncoder", ["umt5-xxl-enc-bf16.safetensors", "bf16", "offload_device", "disabled"]),
               ("WanVideoLoraSelect", ["Wan21_CausVid_14B_T2V_lora_rank32.safetensors", 0.3, False, True])),
     "expect": {("Wan2_1-T2V-14B_fp8_e4m3fn.safetensors", "diffusion_models"), ("Wan2_1_VAE_bf16.safetensors", "vae"),
                ("umt5-xxl-enc-bf16.safetensors", "text_encoders"),
                ("Wan21_CausVid_14B_T2V_lora_rank32.safetensors", "loras")}},
    {"name": "kjnodes-loaders", "after": "ComfyUI-KJNodes example workflows",
     "wf": _wf(("DiffusionModelLoaderKJ", ["flux1-dev-fp8.safetensors", "fp8_e4m3fn", "default", False, "disabled", False]),
               ("VAELoaderKJ", ["ae.safetensors", "main_device", "bf16"]),
               ("DualCLIPLoader", ["clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors", "flux", "default"])),
     "expect": {("flux1-dev-fp8.safetensors", "diffusion_models"), ("ae.safetensors", "vae"),
                ("clip_l.safetensors", "text_encoders"), ("t5xxl_fp8_e4m3fn.safetensors", "text_encoders")}},
    {"name": "reactor-faceswap", "after": "comfyui-reactor-node README",
     "wf": _wf(("CheckpointLoaderSimple", ["realvisxlV40_v40Bakedvae.safetensors"]),
               ("ReActorFaceSwap", [True, "inswapper_128.onnx", "retinaface_resnet50", "codeformer-v0.1.0.pth", 1, 0.5,
                                    "no", "no", "0", "0", 1])),
     "expect": {("realvisxlV40_v40Bakedvae.safetensors", "checkpoints"), ("inswapper_128.onnx", "insightface"),
                ("codeformer-v0.1.0.pth", "facerestore_models"),
                ("buffalo_l", "insightface/models")}},  # implied: ReActor's face analysis model
    {"name": "supir-upscale", "after": "ComfyUI-SUPIR README",
     "wf": _wf(("SUPIR_model_loader_v2", ["SUPIR-v0Q_fp16.safetensors", False, "auto", False]),
               ("CheckpointLoaderSimple", ["SDXL/juggernautXL_v8Rundiffusion.safetensors"])),
     "expect": {("SUPIR-v0Q_fp16.safetensors", "checkpoints"), ("SDXL/juggernautXL_v8Rundiffusion.safetensors", "checkpoints")}},
    {"name": "pulid-flux", "after": "ComfyUI-PuLID-Flux examples",
     "wf": _wf(("UNETLoader", ["flux1-dev.safetensors", "default"]),
               ("PulidFluxModelLoader", ["pulid_flux_v0.9.1.safetensors"]),
               ("PulidFluxInsightFaceLoader", ["CPU"]), ("PulidFluxEvaClipLoader", [])),
     "expect": {("flux1-dev.safetensors", "diffusion_models"), ("pulid_flux_v0.9.1.safetensors", "pulid"),
                ("antelopev2", "insightface/models")}},
    {"name": "instantid", "after": "ComfyUI_InstantID examples",
     "wf": _wf(("CheckpointLoaderSimple", ["sdxl/RealVisXL_V4.0.safetensors"]),
               ("InstantIDModelLoader", ["ip-adapter.bin"]), ("InstantIDFaceAnalysis", ["CPU"]),
               ("ControlNetLoader", ["instantid/diffusion_pytorch_model.safetensors"])),
     "expect": {("sdxl/RealVisXL_V4.0.safetensors", "checkpoints"), ("ip-adapter.bin", "instantid"),
                ("antelopev2", "insightface/models"), ("instantid/diffusion_pytorch_model.safetensors", "controlnet")}},
]

SET_B: list[dict] = [
    {"name": "lora-manager", "after": "ComfyUI-Lora-Manager example_workflows (basic)",
     "wf": _wf(("Checkpoint Loader (LoraManager)", ["Illustrious/waiIllustriousSDXL_v140.safetensors"],
                0, (("ckpt_name", "COMBO"),)),
               ("Lora Loader (LoraManager)", ["<lora:detail_slider_v4:0.6> <lora:flat_color:0.4>",
                                              [{"name": "detail_slider_v4", "strength": 0.6, "active": True},
                                               {"name": "flat_color", "strength": 0.4, "active": True}]]),
               ("Prompt (LoraManager)", ["1girl, <lora:mentioned_only:1>, embedding:lazyneg"]),
               ("Lora Info (LoraManager)", [{"name": "detail_slider_v4", "notes": ""}])),
     "expect": {("Illustrious/waiIllustriousSDXL_v140.safetensors", "checkpoints"), ("detail_slider_v4", "loras"),
                ("flat_color", "loras"), ("lazyneg", "embeddings")}},
    {"name": "bypassed-shifted", "after": "a bypassed sampler pack node saved by an older frontend",
     "wf": _wf(("CheckpointLoaderSimple", ["sd_xl_base_1.0.safetensors"]),
               ("SamplerCustomAdvancedPlus", [True, "sd_xl_base_1.0.safetensors", 25, 7.0], 4,
                (("enable_preview", "BOOLEAN"), ("add_noise", "BOOLEAN"), ("steps", "INT"), ("cfg", "FLOAT"))),
               ("ShowText|pysssss", ["masterpiece, best quality, by artist, style of embedding.pt"])),
     "expect": {("sd_xl_base_1.0.safetensors", "checkpoints")}},
    {"name": "config-files", "after": "a downloader pack listing a model's companion files",
     "wf": _wf(("HFModelFileFetcher", ["config.json", "model.safetensors.index.json", "inference.cfg.py"], 0,
                (("config_file", "COMBO"), ("index_file", "COMBO"), ("script", "COMBO"))),
               ("UNETLoader", ["hidream_i1_full_fp8.safetensors", "default"])),
     "expect": {("hidream_i1_full_fp8.safetensors", "diffusion_models")}},
    {"name": "face-restore-unknown-pack", "after": "facerestore_cf README",
     "wf": _wf(("FaceRestoreModelLoader", ["codeformer.pth"], 0, (("model_name", "COMBO"),)),
               ("FaceRestoreCFWithModel", ["retinaface_resnet50", 0.5], 0,
                (("facedetection", "COMBO"), ("codeformer_fidelity", "FLOAT")))),
     "expect": {("codeformer.pth", "facerestore_models")}},
    {"name": "ipadapter-flux-unknown-pack", "after": "ComfyUI-IPAdapter-Flux README",
     "wf": _wf(("UNETLoader", ["flux1-dev.safetensors", "default"]),
               ("IPAdapterFluxLoader", ["ip-adapter.bin", "google/siglip-so400m-patch14-384", "cuda"], 0,
                (("ipadapter", "COMBO"), ("clip_vision", "COMBO"), ("provider", "COMBO")))),
     # the pack reads models/ipadapter-flux: a folder no rule can know for a pack outside the table
     "expect": {("flux1-dev.safetensors", "diffusion_models"), ("ip-adapter.bin", "ipadapter-flux")}},
    {"name": "ultimate-upscale", "after": "ComfyUI_UltimateSDUpscale README",
     "wf": _wf(("CheckpointLoaderSimple", ["v1-5-pruned-emaonly-fp16.safetensors"]),
               ("UpscaleModelLoader", ["4x_NMKD-Siax_200k.pth"]),
               ("UltimateSDUpscale", [2, 0, "fixed", 20, 8, "euler", "normal", 0.2, "Linear", 512, 512, 8, 32, "None",
                                      1, 64, 8, 16, True, False])),
     "expect": {("v1-5-pruned-emaonly-fp16.safetensors", "checkpoints"), ("4x_NMKD-Siax_200k.pth", "upscale_models")}},
    {"name": "gguf-clip", "after": "ComfyUI-GGUF README",
     "wf": _wf(("UnetLoaderGGUF", ["flux1-dev-Q4_K_S.gguf"]),
               ("DualCLIPLoaderGGUF", ["t5-v1_1-xxl-encoder-Q5_K_M.gguf", "clip_l.safetensors", "flux"]),
               ("VAELoader", ["ae.safetensors"])),
     "expect": {("flux1-dev-Q4_K_S.gguf", "diffusion_models"), ("t5-v1_1-xxl-encoder-Q5_K_M.gguf", "text_encoders"),
                ("clip_l.safetensors", "text_encoders"), ("ae.safetensors", "vae")}},
    {"name": "lora-stack-unknown-pack", "after": "a LoRA stacker of a pack outside the table",
     "wf": _wf(("CheckpointLoaderSimple", ["animagineXLV31_v31.safetensors"]),
               ("SimpleLoraStackMini", ["anime_lineart_xl.safetensors", 0.8, "None", 1.0], 0,
                (("lora_name_1", "COMBO"), ("weight_1", "FLOAT"), ("lora_name_2", "COMBO"), ("weight_2", "FLOAT")))),
     "expect": {("animagineXLV31_v31.safetensors", "checkpoints"), ("anime_lineart_xl.safetensors", "loras")}},
    {"name": "photomaker-v2", "after": "ComfyUI-PhotoMaker-Plus README",
     "wf": _wf(("CheckpointLoaderSimple", ["RealVisXL_V3.0.safetensors"]),
               ("PhotoMakerLoaderPlus", ["photomaker-v2.bin"], 0, (("photomaker_model_name", "COMBO"),)),
               ("PhotoMakerInsightFaceLoader", ["CPU"], 0, (("provider", "COMBO"),))),
     "expect": {("RealVisXL_V3.0.safetensors", "checkpoints"), ("photomaker-v2.bin", "photomaker"),
                # implied by the pack's InsightFace loader: its code loads buffalo_l (insightface_package.py:45
                # at 459f5c0), not antelopev2 as this set said before the code was read
                ("buffalo_l", "insightface/models")}},
    {"name": "checkpoint-with-vae-word", "after": "a merged checkpoint whose name mentions its VAE",
     "wf": _wf(("CheckpointLoader|pysssss", ["sd15/realisticVAEmix_v20.safetensors", "", "[none]"]),
               ("MysteryModelPicker", ["dreamshaperXL_sfwLightningDPMSDE.safetensors"], 0, (("ckpt", "COMBO"),))),
     "expect": {("sd15/realisticVAEmix_v20.safetensors", "checkpoints"),
                ("dreamshaperXL_sfwLightningDPMSDE.safetensors", "checkpoints")}},
]
