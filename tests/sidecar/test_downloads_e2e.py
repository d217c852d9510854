"""End to end through the sidecar over loopback, against the fake Hub: resolve a workflow, start its
downloads from the resolve result, watch the SSE progress until the file is verified and in place,
control jobs (URL download, cancel), and read the figures in /metrics. Also through the Gradio UI."""
from __future__ import annotations

import asyncio
import hashlib
import json
import time

import httpx
import pytest

from comfyui_model_resolver.adapters.routes import SIDECAR_PREFIX
from fakes.blobs import FakeFile
from sidecar.main import create_app
from support.sources import fake_hosts, workflow

from .conftest import LiveServer, make_settings
from .test_live import read_events

REPO_ID = "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
SIZE = 256 * 1024


@pytest.fixture
def hub(fake_hub_thread):
    fake_hub_thread.add_repo(REPO_ID, [
        FakeFile.safetensors("split_files/vae/wan_2.1_vae.safetensors", SIZE, seed=1),
        FakeFile.safetensors("split_files/loras/extra.safetensors", SIZE, seed=2)], downloads=1000)
    return fake_hub_thread


@pytest.fixture
def server(hub, tmp_path):
    settings = make_settings(tmp_path, hf_endpoint=hub.url, allowed_hosts=fake_hosts(hub), disable_catalog=True)
    live = LiveServer(create_app(settings, enable_ui=True, sse_keepalive=0.5)).start()
    yield live
    live.stop()


WF = workflow(("VAELoader", ["wan_2.1_vae.safetensors"]))


def _wait_job(c: httpx.Client, job_id: str, states=("completed", "failed", "cancelled"), timeout=30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"{SIDECAR_PREFIX}/downloads/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stayed {job['state']}")


def test_resolve_then_download_with_sse_progress(server, hub, tmp_path):
    vae = tmp_path / "ComfyUI" / "models" / "vae" / "wan_2.1_vae.safetensors"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        resolution = c.post(f"{SIDECAR_PREFIX}/resolve", json=WF).json()
        [model] = resolution["models"]
        assert model["status"] == "resolved" and model["candidates"][0]["repo"] == REPO_ID
        with c.stream("GET", f"{SIDECAR_PREFIX}/downloads/events") as stream:
            lines = stream.iter_lines()
            assert read_events(lines, 1)[0] == ("snapshot", {"jobs": []})
            created = c.post(f"{SIDECAR_PREFIX}/downloads", json={"models": resolution["models"]})
            assert created.status_code == 202, created.text
            [job] = created.json()["jobs"]
            events = []
            for name, data in iter(lambda: read_events(lines, 1, timeout=30)[0], None):
                assert name == "progress"
                events.append(data)
                if data["state"] in ("completed", "failed"):
                    break
        assert events[-1]["state"] == "completed", events[-1]
        assert {e["job_id"] for e in events} == {job["id"]}
        assert events[-1]["bytes_done"] == SIZE and events[-1]["path"] == str(vae)
        assert hashlib.sha256(vae.read_bytes()).hexdigest() == model["candidates"][0]["sha256"]
        assert _wait_job(c, job["id"])["state"] == "completed"
        assert job["id"] in {j["id"] for j in c.get(f"{SIDECAR_PREFIX}/downloads").json()["jobs"]}
        metrics = c.get("/metrics").text
        assert "cmr_downloads_completed_total 1" in metrics and f"cmr_download_bytes_total {SIZE}" in metrics
        assert 'cmr_downloads{state="completed"} 1' in metrics
        assert 'cmr_route_duration_seconds_count{route="resolve"} 1' in metrics
        # analyzing again: the model is now present
        assert c.post(f"{SIDECAR_PREFIX}/analyze", json=WF).json()["models"][0]["status"] == "present"


def test_url_download_controls_and_errors(server, hub):
    url = f"{hub.url}/{REPO_ID}/resolve/main/split_files/loras/extra.safetensors"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post(f"{SIDECAR_PREFIX}/downloads", json={"url": url, "folder": "loras"})
        assert r.status_code == 202 and r.json()["folder"] == "loras"
        assert _wait_job(c, r.json()["id"])["state"] == "completed"
        bad = c.post(f"{SIDECAR_PREFIX}/downloads", json={"url": "https://evil.example/x.safetensors", "folder": "loras"})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "HostNotAllowed"
        up = c.post(f"{SIDECAR_PREFIX}/downloads", json={"url": url, "folder": "loras", "filename": "../../x.safetensors"})
        assert up.status_code == 400 and up.json()["error"]["type"] == "UnsafePath"
        missing = c.delete(f"{SIDECAR_PREFIX}/downloads/no-such-job")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "JobNotFound"
        assert c.post(f"{SIDECAR_PREFIX}/downloads/no-such-job/pause").status_code == 404


def test_gradio_resolve_and_download_all(server, tmp_path):
    gradio_client = pytest.importorskip("gradio_client", reason="gradio_client is not installed")
    pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow(("VAELoader", ["wan_2.1_vae.safetensors"]),
                                        ("CheckpointLoaderSimple", ["nowhere_to_be_found.safetensors"]))))
    client = gradio_client.Client(f"{server.url}/gradio/", verbose=False)  # the default: downloads files
    table, per_workflow, choices, details, log = client.predict(gradio_client.handle_file(str(path)),
                                                                api_name="/resolve")
    assert table["data"][0][0] == "source found" and REPO_ID in table["data"][0][3]
    assert table["data"][1][0] == "source offline"  # Civitai (a closed port) could not be asked
    assert per_workflow["data"] == [["wf.json", 2, 0, 2, 1, 0, 1]]
    assert choices["value"] == ["vae/wan_2.1_vae.safetensors"]  # missing + resolved: offered, ticked
    jobs, details, log = client.predict(api_name="/download_all")
    assert "not queued checkpoints/nowhere_to_be_found.safetensors: no source could be asked (offline?)" in log
    assert "Queued 1 download: vae/wan_2.1_vae.safetensors" in log
    assert json.loads(details)["jobs"][0]["filename"].endswith("wan_2.1_vae.safetensors")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        jobs, log = client.predict(api_name="/jobs")
        if jobs["data"] and jobs["data"][0][2] == "completed":
            break
        time.sleep(0.1)
    assert jobs["data"][0][2] == "completed" and "(100%)" in jobs["data"][0][3]
    assert "Finished vae/wan_2.1_vae.safetensors" in log
    assert (tmp_path / "ComfyUI" / "models" / "vae" / "wan_2.1_vae.safetensors").is_file()


async def test_gradio_state_follows_finished_downloads(server, tmp_path):
    """The UI's own loop (its timer), over the sidecar's HTTP API: a finished download turns its
    model to 'downloaded' and takes its tick away; nothing stays 'source found'."""
    pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")
    from sidecar.backend import HttpBackend
    from sidecar.ui_actions import ResolverUI

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(workflow(("VAELoader", ["wan_2.1_vae.safetensors"]))))
    b.write_text(json.dumps(workflow(("VAELoader", ["wan_2.1_vae.safetensors"]),
                                     ("LoraLoaderModelOnly", ["extra.safetensors"]))))
    backend = HttpBackend(server.url)
    ui = ResolverUI(backend, 1 << 20)
    try:
        models, per_workflow, ticks, _, log, batch, lines = await ui.resolve([str(a), str(b)], [])
        assert per_workflow["data"] == [["a.json", 1, 0, 1, 1, 0, 0], ["b.json", 2, 0, 2, 2, 0, 0]]
        assert sorted(ticks["value"]) == ["loras/extra.safetensors", "vae/wan_2.1_vae.safetensors"]
        assert [row[2] for row in models["data"]] == ["a.json, b.json", "b.json"]  # one row per file
        await ui.download_all(batch, lines)
        seen: dict = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and ticks["value"]:
            out = await ui.poll(seen, batch, lines)
            _, log, seen, lines, _, models_out, per_workflow_out, ticks_out, batch_out = out
            if isinstance(ticks_out, dict) and "value" in ticks_out and "__type__" in ticks_out:
                ticks, models, per_workflow, batch = ticks_out, models_out, per_workflow_out, batch_out
            await asyncio.sleep(0.1)
        assert ticks["value"] == [] and ticks["choices"] == []
        assert [row[0] for row in models["data"]] == ["downloaded", "downloaded"]
        assert per_workflow["data"] == [["a.json", 1, 1, 0, 0, 0, 0], ["b.json", 2, 2, 0, 0, 0, 0]]
        assert [row[4] for row in models["data"]] == ["…/models/vae/wan_2.1_vae.safetensors",
                                                      "…/models/loras/extra.safetensors"]  # where it landed
        assert "Finished vae/wan_2.1_vae.safetensors" in log and "Finished loras/extra.safetensors" in log
    finally:
        await backend.close()


async def test_gradio_offers_candidates_and_folders_to_choose_and_downloads_the_choice(server, hub, tmp_path):
    """Issue 11 in the Gradio UI: an implied model says so (and its node pack); an ambiguous model lists its
    candidates with their reasons and none is ticked; a loader nobody describes says "folder unknown" and
    offers its candidate folders. What the user ticks is downloaded: that candidate, into that folder."""
    pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")
    from sidecar.backend import HttpBackend
    from sidecar.ui_actions import ResolverUI

    alice = FakeFile.safetensors("style.safetensors", 4096, seed=11)
    bob = FakeFile.safetensors("style.safetensors", 4096, seed=12)
    mystery = FakeFile.safetensors("mystery_adapter.safetensors", 4096, seed=13)
    hub.add_repo("alice99/style-lora", [alice], downloads=41)
    hub.add_repo("bobmirror/style-lora", [bob], downloads=38)
    hub.add_repo("labs/mystery-adapter", [mystery], downloads=500)
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow(("VAELoader", ["wan_2.1_vae.safetensors"]),
                                        ("LoraLoaderModelOnly", ["style.safetensors", 1.0]),
                                        ("IPAdapterUnifiedLoader", ["PLUS (high strength)"]),
                                        ("MysteryAdapterLoader", ["mystery_adapter.safetensors"]))))
    backend = HttpBackend(server.url)
    ui = ResolverUI(backend, 1 << 20)
    try:
        models, _, ticks, _, log, batch, lines = await ui.resolve([str(path)], [])
        rows = {row[1]: row for row in models["data"]}
        clip = rows["clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"]
        assert ("IPAdapterUnifiedLoader #3; implied by IPAdapterUnifiedLoader (preset 'PLUS (high strength)'); "
                "node pack ComfyUI_IPAdapter_plus") == clip[2]
        style = rows["loras/style.safetensors"]
        assert style[0] == "not certain: pick a source" and style[3].startswith("2 candidates, none certain: (1) huggingface: ")
        assert "alice99/style-lora/style.safetensors" in style[3] and "bobmirror/style-lora/style.safetensors" in style[3]
        assert "— exact file name" in style[3]  # each candidate with its reasons
        unknown = rows["?/mystery_adapter.safetensors"]
        assert unknown[0].endswith(", folder unknown")
        assert unknown[4] == ("folder unknown: one of checkpoints, diffusion_models, loras — tick the one to download "
                              "into below")
        # only the certain model is ticked; the choices are offered, not made
        assert ticks["value"] == ["vae/wan_2.1_vae.safetensors"]
        labels = {label: value for label, value in ticks["choices"]}
        style_picks = [label for label in labels if label.startswith("loras/style.safetensors from ")]
        assert len(style_picks) == 2 and all(" — candidate " in label for label in style_picks)
        folder_picks = sorted(label.split("/")[0] for label in labels if "mystery_adapter" in label)
        assert folder_picks == ["checkpoints", "diffusion_models", "loras"]
        assert all(label.endswith("— folder unknown, your pick") for label in labels if "mystery_adapter" in label)

        bob_pick = next(labels[x] for x in style_picks if "bobmirror" in x)
        into_loras = next(v for x, v in labels.items() if x.startswith("loras/mystery_adapter"))
        forged = json.dumps({"model": "?/mystery_adapter.safetensors", "candidate": 0, "folder": "../../outside"})
        _, details, log = (await ui.download_selected(["vae/wan_2.1_vae.safetensors", bob_pick, into_loras, forged],
                                                      batch, lines))[:3]
        assert "A ticked choice no longer matches the list" in log  # a folder that was not offered is never used
        assert "Queued 1 download: loras/mystery_adapter.safetensors" in log and "Queued 1 download: loras/style.safetensors" in log
        seen: dict = {}
        loras = tmp_path / "ComfyUI" / "models" / "loras"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ((loras / "style.safetensors").exists()
                                                   and (loras / "mystery_adapter.safetensors").exists()):
            await ui.poll(seen, batch, lines)
            await asyncio.sleep(0.1)
        # the ticked candidate (bob's bytes, not alice's) and the ticked folder
        assert hashlib.sha256((loras / "style.safetensors").read_bytes()).hexdigest() == bob.sha256
        assert hashlib.sha256((loras / "mystery_adapter.safetensors").read_bytes()).hexdigest() == mystery.sha256
        assert not (tmp_path / "outside").exists()
    finally:
        await backend.close()
