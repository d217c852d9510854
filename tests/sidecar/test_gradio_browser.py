"""The Gradio UI in a real browser (Debian's chromium, driven by Python's playwright): drop three
workflows at once, find sources, download, pick a download by clicking its row, pause and resume it,
and check the page at 1400 and 800 px wide (no header broken into letters, no column cut off).

Screenshots go to $SHOTS_DIR (else the test's tmp dir). Skips without chromium or playwright."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from fakes.blobs import FakeFile
from sidecar.main import create_app
from support.images import make_png
from support.sources import fake_hosts, workflow

from .conftest import LiveServer, make_settings

pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the 'dev' extra)")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.timeout(400),
              pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed (tests/run installs Debian's)")]

REPO_ID = "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
BIG = 6 * 1024 * 1024

#: For every table: each header's text, its size and what it needs, each column's width.
MEASURE = """() => [...document.querySelectorAll('.cmr-table')].map(t => {
  const label = (t.querySelector('[data-testid="block-info"], .label, span') || {}).textContent || '';
  const wrap = t.querySelector('.table-wrap') || t;
  const ths = [...t.querySelectorAll('thead th')].filter(th => th.offsetWidth > 0);
  const cut = [...t.querySelectorAll('.virtual-body [role=gridcell]')]
                .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent.trim());
  return {label: label.trim(), scrollable: wrap.scrollWidth > wrap.clientWidth + 1,
          visibleWidth: wrap.clientWidth, cut,
          headers: ths.map(th => {
            const text = th.innerText.trim();
            const span = document.createElement('span');
            span.style.cssText = 'position:absolute;visibility:hidden;white-space:nowrap;font:' +
                                 getComputedStyle(th).font;
            span.textContent = text; document.body.appendChild(span);
            const needed = span.getBoundingClientRect().width; span.remove();
            const lineHeight = parseFloat(getComputedStyle(th).lineHeight) || 20;
            const textBox = [...th.querySelectorAll('*')].filter(e => e.innerText && e.innerText.trim() === text)
                              .map(e => e.getBoundingClientRect()).pop() || th.getBoundingClientRect();
            return {text, width: th.getBoundingClientRect().width, needed, textHeight: textBox.height, lineHeight};
          })};
})"""


@pytest.fixture
def world(fake_hub_thread, tmp_path):
    hub = fake_hub_thread
    hub.add_repo(REPO_ID, [FakeFile.safetensors("split_files/vae/wan_2.1_vae.safetensors", 256 * 1024, seed=1),
                           FakeFile.safetensors("split_files/loras/extra.safetensors", 256 * 1024, seed=2),
                           FakeFile.safetensors("split_files/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors",
                                                BIG, seed=3)], downloads=1000)
    settings = make_settings(tmp_path, hf_endpoint=hub.url, allowed_hosts=fake_hosts(hub), disable_catalog=True)
    server = LiveServer(create_app(settings, enable_ui=True)).start()
    files = tmp_path / "drop"
    files.mkdir()
    (files / "t2v.json").write_text(json.dumps(workflow(
        ("UNETLoader", ["wan2.1_t2v_1.3B_fp16.safetensors", "default"]), ("VAELoader", ["wan_2.1_vae.safetensors"]))))
    (files / "lora.json").write_text(json.dumps(workflow(
        ("VAELoader", ["wan_2.1_vae.safetensors"]), ("LoraLoaderModelOnly", ["extra.safetensors", 1.0]),
        ("CheckpointLoaderSimple", ["SD1.5/fake_model.safetensors"]))))
    (files / "shared.png").write_bytes(make_png({"workflow": json.dumps(workflow(
        ("VAELoader", ["wan_2.1_vae.safetensors"]), ("CheckpointLoaderSimple", ["nowhere_at_all.safetensors"])))}))
    yield server, hub, sorted(files.iterdir()), tmp_path
    server.stop()


def _shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SHOTS_DIR") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _table_rows(page, label: str) -> list[list[str]]:
    return page.evaluate("""(label) => {
      const t = [...document.querySelectorAll('.cmr-table')].find(t => t.innerText.includes(label));
      return t ? [...t.querySelectorAll('.virtual-body [role=row]')].map(r => [...r.querySelectorAll('[role=gridcell]')]
                   .map(c => c.textContent.trim())).filter(r => r.some(c => c)) : [];
    }""", label)


def _wait(page, predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(200)
    if os.environ.get("SHOTS_DIR"):
        page.screenshot(path=str(Path(os.environ["SHOTS_DIR"]) / "gradio-failure.png"), full_page=True)
    raise AssertionError(f"the page never showed {what}")


def _assert_readable(page, width: int) -> None:
    for table in page.evaluate(MEASURE):
        # every column on screen (no sideways scrolling) and no cell content cut off
        assert not table["scrollable"], f"{width}px: table {table['label']!r} is wider than the page"
        assert not table["cut"], f"{width}px: table {table['label']!r} cuts {table['cut']}"
        for h in table["headers"]:
            # a header broken into letters is as tall as several lines; a cut one narrower than its words
            assert h["textHeight"] < 2 * h["lineHeight"] + 1, f"{width}px: header {h['text']!r} wraps: {h}"
            assert h["width"] + 1 >= h["needed"], f"{width}px: header {h['text']!r} is cut: {h}"


def test_batch_drop_row_click_and_widths(world):
    server, hub, files, tmp_path = world
    shots = _shots(tmp_path)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/gradio/")  # never network-idle: the downloads table polls
        page.get_by_role("button", name="Find sources").wait_for()
        # drop three workflows at once (the file input takes several), then find their sources
        page.locator("input[type=file]").first.set_input_files([str(f) for f in files])
        _wait(page, lambda: len(_table_rows(page, "Workflow")) == 3, "three workflows analyzed")
        page.get_by_role("button", name="Find sources").click()
        per_workflow = _wait(page, lambda: (rows := _table_rows(page, "Workflow")) and
                             sum(int(r[4]) for r in rows) == 5 and rows, "sources found")
        # models, on disk, missing, source found, no source, offline
        assert per_workflow == [["lora.json", "3", "1", "2", "2", "0", "0"], ["shared.png", "2", "0", "2", "1", "0", "1"],
                                ["t2v.json", "2", "0", "2", "2", "0", "0"]]
        models = _table_rows(page, "Status")
        assert sorted(r[1] for r in models) == [  # one row per file
            "checkpoints/SD1.5/fake_model.safetensors", "checkpoints/nowhere_at_all.safetensors",
            "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors", "loras/extra.safetensors", "vae/wan_2.1_vae.safetensors"]
        vae = next(r for r in models if r[1] == "vae/wan_2.1_vae.safetensors")
        assert vae[2].startswith("3 workflows") and vae[0] == "source found" and REPO_ID in vae[3]
        _assert_readable(page, 1400)
        page.screenshot(path=str(shots / "gradio-batch-1400.png"), full_page=True)

        # download all; the big one is throttled so it is still running when its row is clicked
        hub.switch(f"{REPO_ID}/split_files/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors", on="cdn", throttle_bps=256 * 1024)
        page.get_by_role("button", name="Download all missing").click()
        _wait(page, lambda: any(r[2] == "running" and "t2v" in r[1] for r in _table_rows(page, "Progress")),
              "the big download running")
        row = page.locator(".cmr-table", has_text="Progress").locator(".virtual-body [role=row]", has_text="t2v").first
        row.locator("[role=gridcell]").nth(1).click()
        _wait(page, lambda: "wan2.1_t2v_1.3B_fp16.safetensors" in page.get_by_text("Selected:").inner_text(),
              "the clicked download selected")
        page.get_by_role("button", name="Pause").click()
        _wait(page, lambda: any(r[2] == "paused" and "t2v" in r[1] for r in _table_rows(page, "Progress")),
              "the download paused")
        hub.clear_switches()
        page.get_by_role("button", name="Resume").click()
        _wait(page, lambda: (rows := _table_rows(page, "Progress")) and len(rows) == 3 and
              all(r[2] == "completed" for r in rows), "all downloads completed", timeout=120)
        # the models table follows: nothing stays "source found", no ticks left
        _wait(page, lambda: not any("source found" in r[0] for r in _table_rows(page, "Status")),
              "the finished models marked downloaded")
        statuses = {r[1]: r[0] for r in _table_rows(page, "Status")}
        assert statuses["diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors"] == "downloaded"
        assert page.locator("input[type=checkbox]:checked").count() == 0
        log = page.get_by_label("Log").input_value()
        assert "Paused diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors" in log
        assert "Finished diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors" in log
        assert "_download" not in log and "create_" not in log
        for name in ("vae/wan_2.1_vae.safetensors", "loras/extra.safetensors",
                     "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors"):
            assert log.count(f"Finished {name}") == 1, log
        page.screenshot(path=str(shots / "gradio-downloads-1400.png"), full_page=True)

        page.set_viewport_size({"width": 800, "height": 1000})
        page.wait_for_timeout(500)
        _assert_readable(page, 800)
        page.screenshot(path=str(shots / "gradio-800.png"), full_page=True)
        assert not errors, errors
        browser.close()


def test_implied_ambiguous_and_folder_unknown_in_the_browser(fake_hub_thread, tmp_path):
    """Issue 11 on the page: the implied model and its node pack in *Used by*, an ambiguous model's candidates
    with their reasons and nothing ticked, a folder-unknown model's candidate folders as ticks; ticking one
    folder downloads there. Readable at 1400 and 800 px with these long cells."""
    hub = fake_hub_thread
    mystery = FakeFile.safetensors("mystery_adapter.safetensors", 64 * 1024, seed=13)
    hub.add_repo("alice99/style-lora", [FakeFile.safetensors("style.safetensors", 64 * 1024, seed=11)], downloads=41)
    hub.add_repo("bobmirror/style-lora", [FakeFile.safetensors("style.safetensors", 64 * 1024, seed=12)], downloads=38)
    hub.add_repo("labs/mystery-adapter", [mystery], downloads=500)
    hub.add_repo("h94/IP-Adapter", [FakeFile.safetensors(p, 32 * 1024, seed=20 + i) for i, p in enumerate((
        "models/ip-adapter-plus_sd15.safetensors", "sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors",
        "models/image_encoder/model.safetensors"))], downloads=500_000)
    settings = make_settings(tmp_path, hf_endpoint=hub.url, allowed_hosts=fake_hosts(hub), disable_catalog=True)
    server = LiveServer(create_app(settings, enable_ui=True)).start()
    path = tmp_path / "origins.json"
    path.write_text(json.dumps(workflow(("LoraLoaderModelOnly", ["style.safetensors", 1.0]),
                                        ("IPAdapterUnifiedLoader", ["PLUS (high strength)"]),
                                        ("MysteryAdapterLoader", ["mystery_adapter.safetensors"]))))
    shots = _shots(tmp_path)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/gradio/")
            page.get_by_role("button", name="Find sources").wait_for()
            page.locator("input[type=file]").first.set_input_files([str(path)])
            _wait(page, lambda: len(_table_rows(page, "Workflow")) == 1, "the workflow analyzed")
            page.get_by_role("button", name="Find sources").click()
            _wait(page, lambda: any("candidates, none certain" in r[3] for r in _table_rows(page, "Status")), "sources found")
            rows = {r[1]: r for r in _table_rows(page, "Status")}
            assert "implied by IPAdapterUnifiedLoader (preset 'PLUS (high strength)'); node pack ComfyUI_IPAdapter_plus" \
                in rows["clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"][2]
            style = rows["loras/style.safetensors"]
            assert style[0] == "not certain: pick a source" and "alice99" in style[3] and "bobmirror" in style[3]
            assert "://" not in style[4]  # no one URL for a model that has no one answer: why, in words
            unknown = rows["?/mystery_adapter.safetensors"]
            assert unknown[0].endswith("folder unknown") and unknown[4].startswith("folder unknown: one of checkpoints, ")
            # nothing uncertain is ticked for you: only certain models with a known folder
            ticked = page.evaluate("() => [...document.querySelectorAll('input[type=checkbox]:checked')]"
                                   ".map(i => i.closest('label').innerText.trim())")
            assert ticked and all(" from " not in label and not label.startswith(("?/", "loras/style")) for label in ticked), ticked
            _assert_readable(page, 1400)
            page.screenshot(path=str(shots / "gradio-origins-1400.png"), full_page=True)
            pick = page.get_by_label(f"loras/mystery_adapter.safetensors from labs/mystery-adapter/mystery_adapter.safetensors",
                                     exact=False)
            pick.check()
            for label in ticked:  # only the pick this time
                page.get_by_label(label, exact=True).uncheck()
            page.get_by_role("button", name="Download selected").click()
            _wait(page, lambda: any(r[2] == "completed" and "mystery" in r[1] for r in _table_rows(page, "Progress")),
                  "the picked download completed")
            target = tmp_path / "ComfyUI" / "models" / "loras" / "mystery_adapter.safetensors"
            assert target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == mystery.sha256
            page.set_viewport_size({"width": 800, "height": 1000})
            page.wait_for_timeout(500)
            _assert_readable(page, 800)
            assert not errors, errors
            browser.close()
    finally:
        server.stop()
