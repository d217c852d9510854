"""The sidebar in CI: its pure logic under `node --test`, and the real modules in headless Chromium.

The browser test serves `web/js` as ComfyUI would (`/extensions/<name>/…`) with stand-ins for
`/scripts/app.js` and `/scripts/api.js` (tests/web/harness), runs a scripted session (open the tab,
alternatives, download with live progress, token form, relink inside a subgraph, embed sources,
workflow switch) and checks what the page reported. Both skip cleanly without node / chromium.
"""
from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from support.paths import REPO

WEB = REPO / "web" / "js"
HARNESS = REPO / "tests" / "web" / "harness"


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def test_sidebar_logic_with_node_test_runner():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    proc = subprocess.run([node, "--test", str(REPO / "tests" / "web")], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    summary = "\n".join(line for line in proc.stdout.splitlines() if line.startswith(("# pass", "# fail", "not ok")))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"^# pass [1-9]\d*$", proc.stdout, re.M), summary
    assert "# fail 0" in proc.stdout


def test_every_js_file_is_safe_to_import_as_an_extension():
    """ComfyUI imports every .js under WEB_DIRECTORY: only model_resolver.js may register anything."""
    files = sorted(WEB.glob("*.js"))
    assert {f.name for f in files} >= {"model_resolver.js", "cmr_logic.js", "cmr_view.js", "cmr_controller.js"}
    for f in files:
        src = f.read_text(encoding="utf-8")
        registers = "registerExtension(" in src
        assert registers == (f.name == "model_resolver.js"), f.name
        for pattern in (r"""from\s+["']https?:""", r"""import\(\s*["']https?:""", r"url\(\s*[\"']?https?:", r"""src=["']https?:"""):
            assert not re.search(pattern, src), f"{f.name} loads something from the network: {pattern}"


async def _serve() -> TestServer:
    app = web.Application()

    async def shim(request: web.Request) -> web.FileResponse:
        return web.FileResponse(HARNESS / request.match_info["name"])

    app.router.add_get("/scripts/{name:(app|api)\\.js}", shim)
    app.router.add_static("/extensions/cmr", WEB)
    app.router.add_static("/harness", HARNESS)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def _dump_dom(chromium: str, url: str) -> str:
    with tempfile.TemporaryDirectory(prefix="cmr-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--virtual-time-budget=60000", "--dump-dom", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 120)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    return out.decode("utf-8", "replace")


async def test_sidebar_session_in_headless_chromium():
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (tests/run installs it with apt-get when run as root)")
    server = await _serve()
    try:
        dom = await _dump_dom(chromium, str(server.make_url("/harness/index.html")))
    finally:
        await server.close()
    m = re.search(r'<pre id="results">(.*?)</pre>', dom, re.S)
    assert m and m.group(1), dom[-3000:]
    out = json.loads(html.unescape(m.group(1)))
    assert out["done"] and out["errors"] == [], out["errors"]
    steps = {s["step"]: s for s in out["steps"]}

    assert out["tab"] == {"id": "model-resolver", "title": "Model Resolver", "icon": "pi pi-box", "type": "custom",
                          "viaStore": True}
    assert out["extensions"] == ["comfyui-model-resolver.sidebar"]
    # the badge comes from a cheap analyze; sources are only asked once the tab is open; one analysis
    # for the load, however many events and polls followed it
    assert steps["badge"] == {"step": "badge", "badge": "5", "analyzeCalls": 1, "resolveCalls": 0}

    opened = steps["open"]
    assert opened["groups"] == {"missing": 2, "misplaced": 1, "relocated": 2, "present": 1}
    # one count (the badge's), with its parts named
    assert ("5 models to fix: 2 missing (1 ready to download, 1 needs a token); 2 to relink; 1 in the wrong folder."
            in opened["summary"]), opened["summary"]
    assert "1 present" in opened["summary"]
    assert opened["analyzeBody"] == {"hasSubgraphs": True, "contentType": "application/json", "name": "wf-a"}
    assert opened["region"] == "region" and opened["heading"] == "Model Resolver"
    # pickle formats are marked (the server's `pickle: true`), with what it means on hover
    assert [item for item, _ in opened["pickle"]] == ["upscale_models|4x.pth"]
    assert "can run code" in opened["pickle"][0][1]
    miss = opened["missingText"]
    for part in ("detail.safetensors", "Hugging Face", "144 MB", "93% match", "exact file name", "acme/detail/detail.safetensors"):
        assert part in miss, part

    assert steps["alternatives-before"] == {"step": "alternatives-before", "expanded": "false", "altCount": 0}
    assert "Civitai" in steps["alternatives-after"]["altText"] and steps["alternatives-after"]["expanded"] == "true"

    prog = steps["progress"]
    assert prog["body"]["models"][0]["filename"] == "detail.safetensors"
    assert prog["body"]["models"][0]["candidates"][0]["source"] == "huggingface"
    assert prog["text"] == "50% · 72.0 MB of 144 MB · 12.0 MB/s · 6 s left"
    assert prog["ariaNow"] == "50" and prog["width"] == "50%" and prog["cancel"]

    done = steps["completed"]
    assert done["comboRefreshes"] >= 1 and done["analyzeCallsAfter"] >= 1 and done["badge"] == "4"
    assert done["groups"] == {"missing": 1, "misplaced": 1, "relocated": 2, "present": 2}
    assert "Model downloaded" in done["toasts"]

    assert steps["poll"]["refreshed"] and steps["poll"]["polled"] >= 2  # fallback when events stop

    gated = steps["gated"]["text"]
    assert "needs login" in gated and "Hugging Face token" in gated and "CMR_HF_TOKEN" in gated and "Settings" in gated

    settings = steps["settings"]
    assert settings["patch"] == {"hf_token": "hf_abc123"}
    assert settings["inputType"] == "password" and settings["inputValue"] == ""  # re-rendered: never shown again
    assert "Saved" in settings["form"] and "hf_abc123" not in settings["form"]

    relink = steps["relink"]
    assert relink["inner"] == "SD1.5/dream.safetensors" and relink["instance"] == "SD1.5/dream.safetensors"
    assert relink["dirty"] >= 1 and relink["checks"] >= 1

    # no false success: the node of a pack that is not installed keeps its value, and the panel says why
    missing_pack = steps["relink-missing-pack"]
    assert "Not relinked: ExoticLoader #6 comes from a node pack that is not installed" in missing_pack["text"]
    assert missing_pack["toast"] and missing_pack["toast"][0].startswith("warn: Nothing relinked: Not relinked: ExoticLoader #6")
    assert missing_pack["saved"] == ["exotic.safetensors"]

    move = steps["move"]
    assert "In another folder: /models/loras/t5xxl.safetensors. ComfyUI looks for it in text_encoders." in move["before"]
    assert move["body"] == {"path": "/models/loras/t5xxl.safetensors", "folder": "text_encoders", "filename": "t5xxl.safetensors"}
    assert move["badge"] == "3" and "/models/text_encoders/t5xxl.safetensors" in move["present"]

    embed = steps["embed"]
    # a present model with a workflow link, and the downloaded one with the link it was downloaded from
    assert embed["vae"] == [{"name": "vae.safetensors", "url": "https://huggingface.co/acme/vae/resolve/main/vae.safetensors",
                             "directory": "vae"}]
    assert embed["lora"] == [{"name": "detail.safetensors", "url": "https://huggingface.co/acme/detail/resolve/main/detail.safetensors",
                              "directory": "loras", "hash": "ab" * 32, "hash_type": "SHA256"}]
    assert embed["upscale"] == [{"name": "4x.pth", "url": "https://huggingface.co/acme/up/resolve/main/4x.pth",
                                 "directory": "upscale_models"}]
    assert steps["switch"]["name"] == "wf-b"

    menu = steps["node-menu"]
    assert menu["entries"] == ["Open Image", None, "Find this model: 4x.pth (Model Resolver)"]
    assert menu["focused"] == "upscale_models|4x.pth" and menu["opened"] == ["model-resolver"]

    dialog = steps["dialog"]
    assert "Model Resolver finds a source for every missing model" in dialog["offer"]
    assert dialog["closed"] == 1 and dialog["opened"] == ["model-resolver", "model-resolver"]

    overlay = steps["overlay"]
    assert overlay["text"].startswith(f"Model Resolver: {overlay['badge']} models to fix") and overlay["badge"] == "3"
    assert overlay["text"].endswith("Resolve with Model Resolver")

    offline = steps["offline"]
    assert offline["banners"] == ["can't reach huggingface.co or civitai.com — check the network or proxy"]
    assert offline["panel"].count("can't reach") == 1, "one banner, not one line per model"
    assert offline["states"] and set(offline["states"]) == {"unavailable"}
    assert offline["downloadAll"] == "Download all (0)" and offline["disabled"] is True
    assert offline["why"].startswith("Nothing to download yet: ") and "can't be looked up now" in offline["why"]
    assert offline["describedBy"] == "cmr-download-all-why"
    for leak in ("Errno", "SourceUnavailable", "ClientConnectorError", "Temporary failure"):
        assert leak not in offline["panel"]

    # issue 11: a row says when a preset implies its model, and the loader's node pack
    origins = steps["origins"]
    assert origins["implied"] == ["implied by IPAdapterUnifiedLoader (preset 'PLUS (high strength)')"]
    assert origins["impliedTitle"].startswith("preset 'PLUS (high strength)'")
    assert "implied" in origins["clip"] and "node pack ComfyUI_IPAdapter_plus" in origins["clip"]
    # ambiguous: every candidate with its reasons, each its own button, nothing offered as "the" match
    assert "Ambiguous: pick one of 2 candidates. None is certain" in origins["clip"]
    assert "linked by the workflow itself" in origins["choices"][0] and "pack documents" in origins["choices"][1]
    assert origins["clipButtons"] == ["Download this one", "Download this one"]
    assert "best match" not in origins["clip"]
    # folder unknown: said, the candidates offered, no download until one is picked; the pick is the folder
    assert "folder unknown" in origins["mystery"] and "no folder is guessed" in origins["mystery"]
    assert origins["options"] == [["", "choose a folder…"], ["checkpoints", "models/checkpoints"],
                                  ["diffusion_models", "models/diffusion_models"], ["loras", "models/loras"]]
    assert origins["disabledBefore"] is True
    assert "3 missing (1 ambiguous: choose a match, 2 folder unknown: choose a folder)" in origins["summary"]
    # no candidate folder at all: a typed folder, and still nothing before it
    assert origins["weirdBefore"] == {"control": "INPUT", "disabled": True}
    assert origins["typedBody"] == {"url": "https://huggingface.co/labs/odd/resolve/main/weird.bin", "folder": "upscale_models",
                                    "filename": "weird.bin", "source": "huggingface"}
    assert origins["downloadAll"] == "Download all (0)"
    assert origins["picked"] == "loras"
    assert origins["body"] == {"url": "https://huggingface.co/labs/mystery/resolve/main/mystery_adapter.safetensors",
                               "folder": "loras", "filename": "mystery_adapter.safetensors", "size": 8192,
                               "source": "huggingface"}
