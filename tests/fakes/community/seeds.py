"""The originals of the community world: where pack docs and ComfyUI-Manager's model list say the
models that community workflows load come from. Authored by us from public knowledge (repo ids,
paths, Civitai model names); no pack code or workflow is copied.

Each seed has a *slot* (what part of a workflow it can fill: `ipa.sd15`, `lora.sdxl`…) and a
*family*; the workflow generator (workflows.py) fills the slots of pack-example recipes with seeds
of the recipe's family. The decoys (world.py) are generated from these by rules, never by hand.

    HF(slot, family, repo, path, folder, as_=None, gated=False, pack=None)
        `as_`: the name workflows use when it differs from the repo file's (a Manager/pack rename).
    CIV(slot, family, model, type, creator, versions, base, as_=None)
        versions: [(version name, uploaded file name, flags)], flags ⊂ {"ea", "login"}; the last
        version is the newest. `as_`: a workflow name that differs from Civitai's (a local rename).
    SHARDS(slot, family, repo, folder_in_repo, n, folder)
        a sharded model: model-0000i-of-0000n.safetensors + model.safetensors.index.json.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HF:
    slot: str
    family: str
    repo: str
    path: str
    folder: str
    as_: str | None = None
    gated: bool = False
    pack: str | None = None


@dataclass(frozen=True)
class CIV:
    slot: str
    family: str
    model: str
    type: str
    creator: str
    versions: tuple = ()
    base: str = "SD 1.5"
    as_: str | None = None


@dataclass(frozen=True)
class SHARDS:
    slot: str
    family: str
    repo: str
    subdir: str
    n: int
    folder: str
    extra: tuple = field(default=("config.json",))


IPA = "ComfyUI_IPAdapter_plus"
SEEDS: tuple = (
    # ---- IP-Adapter (h94), FaceID; image encoders renamed by the pack docs / Manager list
    HF("ipa.sd15", "sd15", "h94/IP-Adapter", "models/ip-adapter_sd15.safetensors", "ipadapter", pack=IPA),
    HF("ipa.sd15", "sd15", "h94/IP-Adapter", "models/ip-adapter-plus_sd15.safetensors", "ipadapter", pack=IPA),
    HF("ipa.sd15", "sd15", "h94/IP-Adapter", "models/ip-adapter-plus-face_sd15.safetensors", "ipadapter", pack=IPA),
    HF("ipa.sd15", "sd15", "h94/IP-Adapter", "models/ip-adapter-full-face_sd15.safetensors", "ipadapter", pack=IPA),
    HF("ipa.sdxl", "sdxl", "h94/IP-Adapter", "sdxl_models/ip-adapter_sdxl_vit-h.safetensors", "ipadapter", pack=IPA),
    HF("ipa.sdxl", "sdxl", "h94/IP-Adapter", "sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors", "ipadapter",
       pack=IPA),
    HF("ipa.sdxl", "sdxl", "h94/IP-Adapter", "sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors",
       "ipadapter", pack=IPA),
    HF("clipvision.h", "any", "h94/IP-Adapter", "models/image_encoder/model.safetensors", "clip_vision",
       as_="CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", pack=IPA),
    HF("clipvision.g", "sdxl", "h94/IP-Adapter", "sdxl_models/image_encoder/model.safetensors", "clip_vision",
       as_="CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors", pack=IPA),
    HF("faceid.sd15", "sd15", "h94/IP-Adapter-FaceID", "ip-adapter-faceid-plusv2_sd15.bin", "ipadapter", pack=IPA),
    HF("faceid.sd15", "sd15", "h94/IP-Adapter-FaceID", "ip-adapter-faceid_sd15.bin", "ipadapter", pack=IPA),
    HF("faceid_lora.sd15", "sd15", "h94/IP-Adapter-FaceID", "ip-adapter-faceid-plusv2_sd15_lora.safetensors",
       "loras", pack=IPA),
    HF("faceid.sdxl", "sdxl", "h94/IP-Adapter-FaceID", "ip-adapter-faceid-plusv2_sdxl.bin", "ipadapter", pack=IPA),
    HF("faceid_lora.sdxl", "sdxl", "h94/IP-Adapter-FaceID", "ip-adapter-faceid-plusv2_sdxl_lora.safetensors",
       "loras", pack=IPA),
    # ---- identity adapters
    HF("instantid.ipa", "sdxl", "InstantX/InstantID", "ip-adapter.bin", "instantid", pack="ComfyUI_InstantID"),
    HF("instantid.cn", "sdxl", "InstantX/InstantID", "ControlNetModel/diffusion_pytorch_model.safetensors",
       "controlnet", pack="ComfyUI_InstantID"),
    HF("pulid.sdxl", "sdxl", "huchenlei/ipadapter_pulid", "ip-adapter_pulid_sdxl_fp16.safetensors", "pulid",
       pack="PuLID_ComfyUI"),
    HF("pulid.flux", "flux", "guozinan/PuLID", "pulid_flux_v0.9.1.safetensors", "pulid", pack="ComfyUI-PuLID-Flux"),
    HF("photomaker", "sdxl", "TencentARC/PhotoMaker", "photomaker-v1.bin", "photomaker"),
    HF("photomaker", "sdxl", "TencentARC/PhotoMaker-V2", "photomaker-v2.bin", "photomaker"),
    # ---- AnimateDiff
    HF("ad.motion", "sd15", "guoyww/animatediff", "mm_sd_v15_v2.ckpt", "animatediff_models"),
    HF("ad.motion", "sd15", "guoyww/animatediff", "v3_sd15_mm.ckpt", "animatediff_models"),
    HF("ad.motion", "sd15", "ByteDance/AnimateDiff-Lightning", "animatediff_lightning_4step_comfyui.safetensors",
       "animatediff_models"),
    HF("ad.motion", "sd15", "wangfuyun/AnimateLCM", "AnimateLCM_sd15_t2v.ckpt", "animatediff_models"),
    HF("ad.motion_lora", "sd15", "guoyww/animatediff", "v2_lora_ZoomIn.ckpt", "animatediff_motion_lora"),
    HF("ad.motion_lora", "sd15", "guoyww/animatediff", "v2_lora_PanLeft.ckpt", "animatediff_motion_lora"),
    # ---- ControlNet
    HF("cn.sd15", "sd15", "lllyasviel/ControlNet-v1-1", "control_v11p_sd15_openpose.pth", "controlnet"),
    HF("cn.sd15", "sd15", "lllyasviel/ControlNet-v1-1", "control_v11f1p_sd15_depth.pth", "controlnet"),
    HF("cn.sd15", "sd15", "lllyasviel/ControlNet-v1-1", "control_v11p_sd15_canny.pth", "controlnet"),
    HF("cn.sd15", "sd15", "lllyasviel/ControlNet-v1-1", "control_v11f1e_sd15_tile.pth", "controlnet"),
    HF("cn.sd15", "sd15", "comfyanonymous/ControlNet-v1-1_fp16_safetensors",
       "control_v11p_sd15_lineart_fp16.safetensors", "controlnet"),
    HF("cn.sdxl", "sdxl", "xinsir/controlnet-union-sdxl-1.0", "diffusion_pytorch_model_promax.safetensors",
       "controlnet"),
    HF("cn.sdxl", "sdxl", "thibaud/controlnet-openpose-sdxl-1.0", "OpenPoseXL2.safetensors", "controlnet"),
    HF("cn.sdxl", "sdxl", "diffusers/controlnet-canny-sdxl-1.0", "diffusion_pytorch_model.fp16.safetensors",
       "controlnet"),
    HF("cn.flux", "flux", "InstantX/FLUX.1-dev-Controlnet-Union", "diffusion_pytorch_model.safetensors",
       "controlnet"),
    HF("cn.flux", "flux", "XLabs-AI/flux-controlnet-canny-v3", "flux-canny-controlnet-v3.safetensors", "controlnet"),
    # ---- upscalers, detectors
    HF("upscale", "any", "Kim2091/UltraSharp", "4x-UltraSharp.pth", "upscale_models"),
    HF("upscale", "any", "ai-forever/Real-ESRGAN", "RealESRGAN_x4.pth", "upscale_models"),
    HF("upscale", "any", "gemasai/4x_NMKD-Siax_200k", "4x_NMKD-Siax_200k.pth", "upscale_models"),
    HF("upscale", "any", "FacehugmanIII/4x_foolhardy_Remacri", "4x_foolhardy_Remacri.pth", "upscale_models"),
    HF("bbox", "any", "Bingsu/adetailer", "face_yolov8m.pt", "ultralytics", as_="bbox/face_yolov8m.pt"),
    HF("bbox", "any", "Bingsu/adetailer", "hand_yolov8s.pt", "ultralytics", as_="bbox/hand_yolov8s.pt"),
    HF("segm", "any", "Bingsu/adetailer", "person_yolov8m-seg.pt", "ultralytics", as_="segm/person_yolov8m-seg.pt"),
    # ---- SD base components
    HF("vae.sd15", "sd15", "stabilityai/sd-vae-ft-mse-original", "vae-ft-mse-840000-ema-pruned.safetensors", "vae"),
    HF("vae.sdxl", "sdxl", "madebyollin/sdxl-vae-fp16-fix", "sdxl_vae.safetensors", "vae"),
    HF("lora.sdxl", "sdxl", "ByteDance/SDXL-Lightning", "sdxl_lightning_4step_lora.safetensors", "loras"),
    HF("lora.sd15", "sd15", "latent-consistency/lcm-lora-sdv1-5", "pytorch_lora_weights.safetensors", "loras",
       as_="lcm-lora-sdv1-5.safetensors"),
    HF("ckpt.sdxl", "sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "sd_xl_base_1.0.safetensors", "checkpoints"),
    # ---- FLUX and its tools
    HF("flux.unet", "flux", "black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors", "diffusion_models", gated=True),
    HF("flux.vae", "flux", "black-forest-labs/FLUX.1-dev", "ae.safetensors", "vae", gated=True),
    HF("flux.fill", "flux", "black-forest-labs/FLUX.1-Fill-dev", "flux1-fill-dev.safetensors", "diffusion_models",
       gated=True),
    HF("flux.redux", "flux", "black-forest-labs/FLUX.1-Redux-dev", "flux1-redux-dev.safetensors", "style_models",
       gated=True),
    HF("flux.t5", "flux", "comfyanonymous/flux_text_encoders", "t5xxl_fp16.safetensors", "text_encoders"),
    HF("flux.t5", "flux", "comfyanonymous/flux_text_encoders", "t5xxl_fp8_e4m3fn.safetensors", "text_encoders"),
    HF("flux.clip_l", "flux", "comfyanonymous/flux_text_encoders", "clip_l.safetensors", "text_encoders"),
    HF("flux.siglip", "flux", "Comfy-Org/sigclip_vision_384", "sigclip_vision_patch14_384.safetensors", "clip_vision"),
    HF("flux.gguf", "flux", "city96/FLUX.1-dev-gguf", "flux1-dev-Q4_K_S.gguf", "diffusion_models"),
    HF("flux.gguf", "flux", "city96/FLUX.1-dev-gguf", "flux1-dev-Q8_0.gguf", "diffusion_models"),
    HF("flux.ipadapter", "flux", "XLabs-AI/flux-ip-adapter", "ip_adapter.safetensors", "xlabs/ipadapters",
       as_="flux-ip-adapter.safetensors"),
    HF("clipvision.l", "flux", "openai/clip-vit-large-patch14", "model.safetensors", "clip_vision",
       as_="clip_vision_l.safetensors"),
    HF("lora.flux", "flux", "XLabs-AI/flux-RealismLora", "lora.safetensors", "loras",
       as_="flux_realism_lora.safetensors"),
    HF("lora.flux", "flux", "ByteDance/Hyper-SD", "Hyper-FLUX.1-dev-8steps-lora.safetensors", "loras"),
    HF("lora.flux", "flux", "alimama-creative/FLUX.1-Turbo-Alpha", "diffusion_pytorch_model.safetensors", "loras",
       as_="FLUX.1-Turbo-Alpha.safetensors"),
    # ---- video wrappers (Kijai)
    HF("wan.model", "wan", "Kijai/WanVideo_comfy", "Wan2_1-T2V-14B_fp8_e4m3fn.safetensors", "diffusion_models"),
    HF("wan.model", "wan", "Kijai/WanVideo_comfy", "Wan2_1-I2V-14B-480P_fp8_e4m3fn.safetensors", "diffusion_models"),
    HF("wan.vae", "wan", "Kijai/WanVideo_comfy", "Wan2_1_VAE_bf16.safetensors", "vae"),
    HF("wan.t5", "wan", "Kijai/WanVideo_comfy", "umt5-xxl-enc-bf16.safetensors", "text_encoders"),
    HF("wan.clipvision", "wan", "Kijai/WanVideo_comfy", "open-clip-xlm-roberta-large-vit-huge-14_visual_fp16.safetensors",
       "clip_vision"),
    HF("wan.lora", "wan", "Kijai/WanVideo_comfy",
       "Lightx2v/lightx2v_T2V_14B_cfg_step_distill_v2_lora_rank64_bf16.safetensors", "loras"),
    HF("hy.model", "hunyuan", "Kijai/HunyuanVideo_comfy", "hunyuan_video_720_cfgdistill_fp8_e4m3fn.safetensors",
       "diffusion_models"),
    HF("hy.vae", "hunyuan", "Kijai/HunyuanVideo_comfy", "hunyuan_video_vae_bf16.safetensors", "vae"),
    HF("pixart", "pixart", "PixArt-alpha/PixArt-alpha", "PixArt-XL-2-1024-MS.pth", "checkpoints"),
    # ---- sharded
    # T5v11Loader reads models/t5; ComfyUI_ExtraModels' README (T5v11 section) names DeepFloyd/t5-v1_1-xxl and,
    # for the `model-0000N-of-00002.safetensors` layout, theunlikely/t5-v1_1-xxl-fp16 (index + config beside)
    SHARDS("t5.sharded", "pixart", "theunlikely/t5-v1_1-xxl-fp16", "", 2, "t5"),
    # ---- Civitai: checkpoints, LoRAs, embeddings (download names as Civitai builds them)
    CIV("ckpt.sd15", "sd15", "DreamShaper", "Checkpoint", "Lykon",
        (("6", "dreamshaper_6.safetensors", ()), ("8", "dreamshaper_8.safetensors", ()))),
    CIV("ckpt.sd15", "sd15", "Realistic Vision V6.0 B1", "Checkpoint", "SG_161222",
        (("V5.1 (VAE)", "realisticVisionV51_v51VAE.safetensors", ()),
         ("V6.0 B1 (VAE)", "realisticVisionV60B1_v51VAE.safetensors", ()))),
    CIV("ckpt.sd15", "sd15", "epiCRealism", "Checkpoint", "epinikion",
        (("Natural Sin RC1 VAE", "epicrealism_naturalSinRC1VAE.safetensors", ()),
         ("pure Evolution V6", "epicrealism_pureEvolutionV6.safetensors", ("ea",)))),
    CIV("ckpt.sd15", "sd15", "ReV Animated", "Checkpoint", "Zovya",
        (("v1.2.2-EOL", "revAnimated_v122EOL.safetensors", ()),)),
    CIV("ckpt.sdxl", "sdxl", "Juggernaut XL", "Checkpoint", "KandooAI",
        (("Version 8 + RunDiffusion", "juggernautXL_v8Rundiffusion.safetensors", ()),
         ("Jugg_IX + RunDiffusion Photo 2 Lightning", "juggernautXL_v9Rdphoto2Lightning.safetensors", ())),
        base="SDXL 1.0"),
    CIV("ckpt.sdxl", "sdxl", "Pony Diffusion V6 XL", "Checkpoint", "PurpleSmartAI",
        (("V6 (start with this one)", "ponyDiffusionV6XL_v6StartWithThisOne.safetensors", ("login",)),),
        base="Pony"),
    CIV("ckpt.sdxl", "sdxl", "RealVisXL V4.0", "Checkpoint", "SG_161222",
        (("V4.0 (BakedVAE)", "realvisxlV40_v40Bakedvae.safetensors", ()),), base="SDXL 1.0"),
    CIV("lora.sd15", "sd15", "Detail Tweaker LoRA", "LORA", "OedoSoldier",
        (("v1.0", "add_detail.safetensors", ()),), as_="detail_tweaker_sd15.safetensors"),
    CIV("lora.sd15", "sd15", "epi_noiseoffset", "LORA", "epinikion",
        (("v2", "epiNoiseoffset_v2.safetensors", ()),)),
    CIV("lora.sd15", "sd15", "Add More Details - Detail Enhancer", "LORA", "Lykon",
        (("v1.0", "more_details.safetensors", ()),)),
    CIV("lora.sd15", "sd15", "Ghibli Style LoRA", "LORA", "anime_artist",
        (("v1", "ghibli_style_offset.safetensors", ()), ("v2", "ghibli_style_v2.safetensors", ()))),
    CIV("lora.sdxl", "sdxl", "XL More Art Full", "LORA", "ArtMaster",
        (("v1", "xl_more_art-full_v1.safetensors", ()),), base="SDXL 1.0"),
    CIV("lora.sdxl", "sdxl", "Add Detail XL", "LORA", "Lykon",
        (("v1.0", "add-detail-xl.safetensors", ()),), base="SDXL 1.0"),
    CIV("lora.sdxl", "sdxl", "Pixel Art XL", "LORA", "nerijs",
        (("v1.1", "pixel-art-xl.safetensors", ()), ("v2.0", "pixel-art-xl-v2.safetensors", ("ea",))),
        base="SDXL 1.0"),
    CIV("lora.sdxl", "sdxl", "Aesthetic Anime LoRA", "LORA", "Neon",
        (("v1", "aesthetic_anime_v1s.safetensors", ()),), base="SDXL 1.0", as_="anime_aesthetic.safetensors"),
    CIV("lora.flux", "flux", "Flux Detailer", "LORA", "TheLastBen",
        (("v1", "flux_detailer_v1.safetensors", ()),), base="Flux.1 D"),
    CIV("lora.flux", "flux", "Midjourney Mimic Flux", "LORA", "ArtGuy",
        (("v1.0", "mjV6_flux.safetensors", ()), ("v2.0", "mjV6_flux_v2.safetensors", ())), base="Flux.1 D"),
    CIV("emb.sd15", "sd15", "EasyNegative", "TextualInversion", "rqdwdw",
        (("EasyNegative", "easynegative.safetensors", ()),)),
    CIV("emb.sd15", "sd15", "badhandv4", "TextualInversion", "Nerfgun3",
        (("badhandv4", "badhandv4.pt", ()),)),
    CIV("upscale", "any", "4x-UltraMix", "Upscaler", "Kim2091",
        (("Balanced", "4x-UltraMix_Balanced.pth", ()),)),
    # ---- held out: written before any tuning on them, used only by the held-out recipes
    HF("h.inpaint", "sdxl", "lllyasviel/fooocus_inpaint", "fooocus_inpaint_head.pth", "inpaint",
       pack="comfyui-inpaint-nodes"),
    HF("h.inpaint_patch", "sdxl", "lllyasviel/fooocus_inpaint", "inpaint_v26.fooocus.patch", "inpaint",
       pack="comfyui-inpaint-nodes"),
    HF("h.supir", "sdxl", "Kijai/SUPIR_pruned", "SUPIR-v0Q_fp16.safetensors", "checkpoints", pack="ComfyUI-SUPIR"),
    HF("h.supir", "sdxl", "Kijai/SUPIR_pruned", "SUPIR-v0F_fp16.safetensors", "checkpoints", pack="ComfyUI-SUPIR"),
    HF("h.iclight", "sd15", "lllyasviel/ic-light", "iclight_sd15_fc.safetensors", "diffusion_models"),
    HF("h.iclight", "sd15", "lllyasviel/ic-light", "iclight_sd15_fbc.safetensors", "diffusion_models"),
    HF("h.kolors_ipa", "kolors", "Kwai-Kolors/Kolors-IP-Adapter-Plus", "ip_adapter_plus_general.bin", "ipadapter",
       as_="Kolors-IP-Adapter-Plus.bin", pack=IPA),
    HF("h.kolors_cv", "kolors", "Kwai-Kolors/Kolors-IP-Adapter-Plus", "image_encoder/pytorch_model.bin", "clip_vision",
       as_="clip-vit-large-patch14-336.bin", pack=IPA),
    HF("h.composition", "sdxl", "ostris/ip-composition-adapter", "ip_plus_composition_sdxl.safetensors", "ipadapter",
       pack=IPA),
    HF("h.lora_hyper", "sdxl", "ByteDance/Hyper-SD", "Hyper-SDXL-8steps-lora.safetensors", "loras"),
    HF("h.cn_misto", "sdxl", "TheMistoAI/MistoLine", "mistoLine_rank256.safetensors", "controlnet"),
    HF("h.t2i", "sd15", "TencentARC/T2I-Adapter", "models/t2iadapter_depth_sd15v2.pth", "controlnet"),
    HF("h.ad_sdxl", "sdxl", "guoyww/animatediff", "mm_sdxl_v10_beta.ckpt", "animatediff_models"),
    HF("h.upscale", "any", "gemasai/4x_NMKD-Superscale-SP_178000_G", "4x_NMKD-Superscale-SP_178000_G.pth",
       "upscale_models"),
    CIV("h.ckpt", "sdxl", "CyberRealistic XL", "Checkpoint", "Cyberdelia",
        (("v1.1", "cyberrealisticXL_v11.safetensors", ()), ("v2.0", "cyberrealisticXL_v20.safetensors", ())),
        base="SDXL 1.0"),
    CIV("h.lora", "sdxl", "Film Grain Style", "LORA", "Lykon",
        (("v1", "film_grain_xl.safetensors", ()),), base="SDXL 1.0", as_="filmgrain_sdxl_v1.safetensors"),
    CIV("h.lora", "sdxl", "Neon Style XL", "LORA", "Neon",
        (("v1.0", "neon_style_xl.safetensors", ()),), base="SDXL 1.0"),
)
