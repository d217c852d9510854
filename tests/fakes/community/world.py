"""Build the community world on a FakeHub + FakeCivitai: the originals of seeds.py, then decoys
generated from them by rules (never placed by hand), with the noise real stats have.

Rules, per original file (a seeded RNG per file, so the world is the same every run):
  * byte-identical re-uploads (0-3) by other accounts: same repo name, `-comfyui`/`_backup` mirrors,
    or a collection repo; at the root or under `models/<folder>/`; created later; usually fewer
    downloads, but about one in eight is *more* popular than the original; some declare
    `cardData.base_model` = the original (as honest re-uploads do);
  * a re-saved copy (same name, other bytes: converted or pruned) half of the time;
  * a fork (the whole repo, fine-tuned: other bytes, base_model = the original) a third of the time;
  * precision siblings beside the original, fp8 copies and GGUF quantisations elsewhere;
  * collections ("every popular file in one repo") with a mix of identical and re-saved files;
  * for names many repos use (`model.safetensors`, `diffusion_pytorch_model.safetensors`,
    `ip-adapter.bin`, `lora.safetensors`, sharded `model-00001-of-00002.safetensors`…): unrelated
    models under the same name, some more popular than the one the workflow means;
  * Civitai originals get Hub re-uploads (identical or re-saved) and Civitai re-posts by other
    creators; some HF originals get a Civitai re-post under a Civitai download name.
Gated repos, login-only and early-access versions come from the seeds.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..blobs import FakeFile
from .seeds import CIV, HF, SEEDS, SHARDS

__all__ = ["CommunityWorld", "Truth", "build_world"]

USERS = ("ai-archive", "modelhoarder", "comfy-mirror", "randomuser123", "sd-fan", "civitai-backup", "lorasaver",
         "waifu-lab", "rxz", "jp-artist", "neuralx", "zhangsan", "pixel-wizard", "OpenModelsHub", "mirrorbot",
         "Aitrepreneur", "ckpt-archive", "public-models", "backupbot", "vrgamedevgirl", "stablediffusionapi",
         "Yuzu", "tiny-corp-ai", "nm-testing")
COLLECTIONS = ("everything-ai/ComfyUI-All-Models", "public-models/comfyui-models", "ai-archive/sd-collection",
               "mirrorbot/models-backup")
GENERIC = {"model.safetensors", "diffusion_pytorch_model.safetensors", "ip-adapter.bin", "lora.safetensors",
           "pytorch_lora_weights.safetensors", "ip_adapter.safetensors", "pytorch_model.bin",
           "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
           "model.safetensors.index.json", "config.json"}
GENERIC_DIRS = ("", "image_encoder/", "text_encoder/", "unet/", "controlnet/", "ControlNetModel/", "models/")
T0 = datetime(2023, 1, 1, tzinfo=timezone.utc)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(map(str, parts)).encode()).digest()[:6], "big")


def _size(name: str) -> int:
    return 1536 + _seed("size", name) % 2560


@dataclass
class Truth:
    """Where a workflow's file really comes from."""

    kind: str  # hf | civitai | shards
    name: str  # the name the workflow uses (may carry a sub-path: bbox/face_yolov8m.pt)
    folder: str
    family: str
    slot: str
    sha256: str
    repo: str | None = None  # hf: repo id; civitai: "modelId@versionId"
    path: str | None = None  # hf: path in repo; civitai: the download name
    files: tuple[str, ...] = ()  # shards: every path of the unit
    auth: bool = False  # gated / login / early access: the right answer is auth_required
    copies: set = field(default_factory=set)  # (repo, path) of official identical copies (Comfy-Org repackaging)

    def is_at(self, repo: str | None, path: str | None) -> bool:
        return (repo == self.repo and (self.kind == "civitai" or path == self.path)) or (repo, path) in self.copies


@dataclass
class _Repo:
    files: dict[str, FakeFile] = field(default_factory=dict)
    downloads: int = 0
    likes: int = 0
    created: datetime = T0
    card: dict | None = None
    gated: bool = False


@dataclass
class CommunityWorld:
    truths: list[Truth] = field(default_factory=list)
    by_sha: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # sha256 -> [(repo, path)]
    sha_at: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, path) -> sha256
    originals: set[str] = field(default_factory=set)
    decoys: set[str] = field(default_factory=set)
    civ_sha: dict[str, str] = field(default_factory=dict)  # "modelId@versionId" + name -> sha256

    def slot(self, slot: str, family: str) -> list[Truth]:
        return [t for t in self.truths if t.slot == slot and t.family in (family, "any")]

    def sha_of(self, repo: str | None, path: str | None) -> str | None:
        if repo is None:
            return None
        return self.sha_at.get((repo, path or "")) or self.civ_sha.get(f"{repo}|{path}")


class _Builder:
    def __init__(self, hub, civ) -> None:
        self.hub, self.civ = hub, civ
        self.repos: dict[str, _Repo] = {}
        self.world = CommunityWorld()

    # ---- Hub side ------------------------------------------------------------------------
    def repo(self, repo_id: str, **stats) -> _Repo:
        r = self.repos.get(repo_id)
        if r is None:
            r = self.repos[repo_id] = _Repo(**stats)
        return r

    def original(self, s: HF | SHARDS, rng: random.Random) -> list[FakeFile]:
        r = self.repo(s.repo, downloads=int(10 ** rng.uniform(4.0, 6.5)), created=T0 + timedelta(days=rng.randint(0, 540)),
                      gated=getattr(s, "gated", False))
        r.likes = max(r.likes, r.downloads // rng.randint(40, 300))
        if "README.md" not in r.files:
            r.files["README.md"] = FakeFile("README.md", f"# {s.repo}\n".encode(), lfs=False)
        self.world.originals.add(s.repo)
        if isinstance(s, SHARDS):
            top = f"{s.subdir}/" if s.subdir else ""  # shards in a sub-folder (text_encoder/) or at the root
            names = [f"{top}model-{i:05d}-of-{s.n:05d}.safetensors" for i in range(1, s.n + 1)]
            out = [FakeFile.safetensors(p, _size(s.repo + p), seed=_seed(s.repo, p)) for p in names]
            index = {"metadata": {"total_size": sum(f.size for f in out)},
                     "weight_map": {f"encoder.block.{i}.weight": n.rsplit("/", 1)[-1] for i, n in enumerate(names)}}
            out.append(FakeFile(f"{top}model.safetensors.index.json", json.dumps(index).encode(), lfs=False))
            out += [FakeFile(f"{top}{x}", f'{{"model": "{s.repo}"}}'.encode(), lfs=False) for x in s.extra]
        else:
            base = s.path.rsplit("/", 1)[-1]
            out = [FakeFile.safetensors(s.path, _size(s.repo + s.path), seed=_seed(s.repo, s.path))]
            if rng.random() < 0.4 and "fp16" not in base and not base.endswith(".gguf"):
                stem, _, ext = s.path.rpartition(".")
                sib = f"{stem}_fp16.{ext}"
                out.append(FakeFile.safetensors(sib, _size(sib), seed=_seed(s.repo, sib)))
        for f in out:
            r.files.setdefault(f.path, f)
        return out

    def decoys_for(self, orig_repo: str, f: FakeFile, folder: str, rng: random.Random) -> None:
        base = f.path.rsplit("/", 1)[-1]
        o = self.repos[orig_repo]
        name = orig_repo.split("/", 1)[1]
        stem = base.rsplit(".", 1)[0]

        def stats(more_popular: float = 0.12) -> dict:
            factor = rng.uniform(1.2, 4.0) if rng.random() < more_popular else 10 ** rng.uniform(-3.5, -0.5)
            return {"downloads": max(1, int(o.downloads * factor)), "created": o.created + timedelta(days=rng.randint(3, 600))}

        def place(repo_id: str, path: str, same: bool, card: bool, **st) -> None:
            if repo_id == orig_repo or repo_id in self.world.originals:
                return
            r = self.repo(repo_id, **st)
            if card and r.card is None:
                r.card = {"base_model": orig_repo, "license": "other"}
            seed = f.seed if same else _seed("resaved", repo_id, path)
            r.files.setdefault(path, FakeFile.safetensors(path, f.size if same else f.size + 64, seed=seed)
                               if f.lfs else FakeFile(path, f.data if same else f.data + b" ", lfs=False))
            self.world.decoys.add(repo_id)

        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):  # byte-identical re-uploads
            user = rng.choice(USERS)
            repo_id = rng.choice((f"{user}/{name}", f"{user}/{name}-comfyui", f"{user}/{name}_backup",
                                  f"{user}/{stem}", f"{user}/ComfyUI-{name}"))
            path = rng.choice((base, f"models/{folder}/{base}", f.path))
            place(repo_id, path, True, rng.random() < 0.35, **stats())
        if rng.random() < 0.5:  # re-saved: same name, other bytes
            user = rng.choice(USERS)
            place(f"{user}/{rng.choice((name, stem, name + '-fp16'))}", base, False, rng.random() < 0.2, **stats())
        if rng.random() < 0.3:  # a fork: fine-tuned from the original
            place(f"{rng.choice(USERS)}/{name}", f.path, False, True, **stats(0.05))
        if rng.random() < 0.35:  # collections
            place(rng.choice(COLLECTIONS), f"{folder}/{base}", rng.random() < 0.6, False,
                  downloads=int(10 ** rng.uniform(3, 5.5)), created=T0 + timedelta(days=rng.randint(200, 800)))
        if folder in ("diffusion_models", "text_encoders", "unet") and rng.random() < 0.6:  # quantised siblings
            user = rng.choice(USERS)
            for q in ("Q4_K_M", "Q8_0"):
                place(f"{user}/{name}-GGUF", f"{stem}-{q}.gguf", False, True, **stats(0.2))
            place(f"{user}/{name}-fp8", f"{stem}_fp8_e4m3fn.safetensors", False, True, **stats(0.2))

    def same_named(self, base: str, rng: random.Random) -> None:
        """Unrelated models that use the same generic name."""
        for i in range(rng.randint(5, 9)):
            user = rng.choice(USERS + ("stabilityai-community", "some-lab", "kandinsky-community", "org-research"))
            repo_id = f"{user}/{rng.choice(('vision-encoder', 'controlnet-depth', 'my-adapter', 'text-encoder', 'ft-model', 'sd-variant', 'lora-style'))}-{i}"
            path = rng.choice(GENERIC_DIRS) + base
            r = self.repo(repo_id, downloads=int(10 ** rng.uniform(2, 6.8)), created=T0 + timedelta(days=rng.randint(0, 900)))
            r.files.setdefault(path, FakeFile.safetensors(path, _size(repo_id + path), seed=_seed(repo_id, path, "other")))
            self.world.decoys.add(repo_id)

    # ---- Civitai side ---------------------------------------------------------------------
    def civitai(self, s: CIV, rng: random.Random) -> list[Truth]:
        from ..civitai import CivFile, CivVersion, download_filename

        versions, truths = [], []
        downloads = int(10 ** rng.uniform(4, 6))
        for i, (vname, fname, flags) in enumerate(s.versions):
            blob = FakeFile.safetensors(fname, _size(s.model + fname), seed=_seed(s.model, fname)) \
                if fname.endswith(".safetensors") else FakeFile(fname, data=_seed(s.model, fname).to_bytes(8, "big") * 200)
            deadline = datetime.now(timezone.utc) + timedelta(days=30) if "ea" in flags else None
            versions.append(CivVersion(name=vname, files=[CivFile(blob)], base_model=s.base,
                                       published_at=T0 + timedelta(days=100 + 60 * i), require_auth="login" in flags,
                                       early_access_deadline=deadline, downloads=downloads // (i + 1),
                                       trained_words=[fname.rsplit(".", 1)[0]] if s.type == "TextualInversion" else []))
        model = self.civ.add_model(s.model, s.type, versions=versions, creator=s.creator, downloads=downloads)
        for v, (vname, fname, flags) in zip(model.versions, s.versions):
            f = v.files[0]
            served = download_filename(s.model, s.type, vname, v.trained_words, fname, f.type, f.override_name)
            sha = f.blob.sha256
            key = f"{model.id}@{v.id}"
            self.world.civ_sha[f"{key}|{served}"] = sha
            t = Truth("civitai", s.as_ or served, _CIV_FOLDERS[s.type], s.family, s.slot, sha, repo=key, path=served,
                      auth=bool(flags))
            truths.append(t)
            self.hub_reuploads_of(served, f.blob, s, rng)
        if rng.random() < 0.3:  # a re-post on Civitai by someone else, later
            v0 = model.versions[-1]
            blob = v0.files[0].blob
            m = self.civ.add_model(s.model + " (reupload)", s.type, creator=rng.choice(USERS), downloads=downloads // 50,
                                   versions=[CivVersion(name="v1", base_model=s.base, files=[CivFile(FakeFile(blob.path, blob.data))],
                                                        published_at=T0 + timedelta(days=700))])
            self._civ_copies(m)
        return truths

    def hub_reuploads_of(self, served: str, blob: FakeFile, s: CIV, rng: random.Random) -> None:
        stem = served.rsplit(".", 1)[0]
        for _ in range(rng.choice((0, 1, 1, 2))):
            user = rng.choice(USERS)
            repo_id = rng.choice((f"{user}/{stem}", f"{user}/civitai-{_slug(s.model)}", f"{user}/loras",
                                  f"{user}/checkpoints"))
            same = rng.random() < 0.7
            r = self.repo(repo_id, downloads=int(10 ** rng.uniform(1.5, 5.2)),
                          created=T0 + timedelta(days=rng.randint(150, 800)))
            seed = blob.seed if same else _seed("resaved", repo_id, served)
            r.files.setdefault(served, FakeFile(served, blob.data if same else blob.data[:-8] + seed.to_bytes(8, "big")))
            self.world.decoys.add(repo_id)

    def civitai_repost(self, t: Truth, f: FakeFile, rng: random.Random) -> None:
        from ..civitai import CivFile, CivVersion

        if rng.random() < 0.2 and t.folder in _FOLDER_CIV:
            m = self.civ.add_model(t.name.rsplit("/", 1)[-1].rsplit(".", 1)[0].replace("_", " ") + " mirror",
                                   _FOLDER_CIV[t.folder], creator=rng.choice(USERS), downloads=int(10 ** rng.uniform(2, 4.5)),
                                   versions=[CivVersion(name="v1", base_model="Other",
                                                        files=[CivFile(FakeFile(f.path.rsplit("/", 1)[-1], f.data))])])
            self._civ_copies(m)

    def _civ_copies(self, model) -> None:
        from ..civitai import download_filename

        for v in model.versions:
            for f in v.files:
                served = download_filename(model.name, model.type, v.name, v.trained_words, f.blob.name, f.type,
                                           f.override_name)
                self.world.civ_sha[f"{model.id}@{v.id}|{served}"] = f.blob.sha256

    def finish(self) -> None:
        for repo_id, r in sorted(self.repos.items()):
            self.hub.add_repo(repo_id, list(r.files.values()), downloads=r.downloads, likes=r.likes,
                              created_at=r.created, card_data=r.card, gated="manual" if r.gated else False)
            for p, f in r.files.items():
                if f.lfs:
                    self.world.sha_at[(repo_id, p)] = f.sha256
                    self.world.by_sha.setdefault(f.sha256, []).append((repo_id, p))


_CIV_FOLDERS = {"Checkpoint": "checkpoints", "LORA": "loras", "TextualInversion": "embeddings",
                "Upscaler": "upscale_models"}
_FOLDER_CIV = {"upscale_models": "Upscaler", "loras": "LORA", "controlnet": "Controlnet", "checkpoints": "Checkpoint"}


def _slug(text: str) -> str:
    return "-".join(w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split())


def build_world(hub, civ) -> CommunityWorld:
    b = _Builder(hub, civ)
    w = b.world
    generic_seen: set[str] = set()
    for s in SEEDS:
        rng = random.Random(_seed("seed", s))
        if isinstance(s, CIV):
            w.truths.extend(b.civitai(s, rng))
            continue
        files = b.original(s, rng)
        main = files[0]
        if isinstance(s, SHARDS):
            unit = tuple(f.path for f in files)
            w.truths.append(Truth("shards", main.path.rsplit("/", 1)[-1], s.folder, s.family, s.slot, main.sha256,
                                  repo=s.repo, path=main.path, files=unit))
        else:
            w.truths.append(Truth("hf", s.as_ or main.path.rsplit("/", 1)[-1], s.folder, s.family, s.slot,
                                  main.sha256, repo=s.repo, path=s.path, auth=s.gated))
        for f in files:
            if f.lfs:
                b.decoys_for(s.repo, f, s.folder if isinstance(s, HF) else "text_encoders", rng)
            fbase = f.path.rsplit("/", 1)[-1]
            if fbase in GENERIC and fbase not in generic_seen:
                generic_seen.add(fbase)
                b.same_named(fbase, random.Random(_seed("generic", fbase)))
        if isinstance(s, HF):
            b.civitai_repost(w.truths[-1], main, rng)
    _official_copies(b)
    b.finish()
    return w


def _official_copies(b: _Builder) -> None:
    """Where the shipped catalog or a pack's docs name an official repo for a (non-generic) file of
    the world, the real Hub has that file there too (Comfy-Org repackages one VAE into many repos;
    FLUX.1-schnell ships FLUX.1-dev's ae.safetensors): add it, same bytes, and count it as a right
    answer."""
    from comfyui_model_resolver.sources.catalog import load_catalog
    from comfyui_model_resolver.sources.pack_sources import PackSources
    from comfyui_model_resolver.sources.publishers import is_official
    from comfyui_model_resolver.sources.urls import parse_hf_url

    by_name = {t.name.rsplit("/", 1)[-1]: t for t in b.world.truths if t.kind == "hf"}
    places = [(str(e["name"]), parse_hf_url(e["url"], ())) for e in load_catalog()]
    table = PackSources.load()
    for name in by_name:
        if name not in GENERIC:
            places += [(name, parse_hf_url(e.url, ())) for e in table.files_named(name) if e.url]
    for name, hf in places:
        t = by_name.get(name.rsplit("/", 1)[-1])
        if t is None or hf is None or hf.repo == t.repo or not is_official(hf.repo.split("/")[0]):
            continue
        src = b.repos[t.repo].files[t.path]
        r = b.repo(hf.repo, downloads=b.repos[t.repo].downloads // 3, created=b.repos[t.repo].created + timedelta(days=200))
        r.files.setdefault(hf.path, FakeFile(hf.path, src.data))
        t.copies.add((hf.repo, hf.path))
