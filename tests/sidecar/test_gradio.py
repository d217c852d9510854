"""The Gradio UI through the real `gradio_client`: mounted at /gradio on the sidecar (in-process core),
and standalone over the sidecar's HTTP API. Skips cleanly where gradio is not installed."""
from __future__ import annotations

import json
import re

import httpx
import pytest

pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")
gradio_client = pytest.importorskip("gradio_client", reason="gradio_client is not installed")

from comfyui_model_resolver.adapters.routes import SIDECAR_PREFIX  # noqa: E402
from sidecar.backend import HttpBackend  # noqa: E402
from sidecar.gradio_ui import create_ui_app  # noqa: E402
from sidecar.ui_tables import JOB_HEADERS, MODEL_HEADERS, WORKFLOW_HEADERS, job_rows  # noqa: E402
from sidecar.main import create_app  # noqa: E402
from support.paths import FRONTEND_FIXTURES  # noqa: E402

from .conftest import LiveServer, make_settings, running  # noqa: E402
from .test_security import PUBLIC  # noqa: E402

ENDPOINTS = {"/analyze", "/resolve", "/analyze_batch", "/resolve_batch", "/download_selected", "/download_all", "/download_url", "/jobs", "/cancel",
             "/pause", "/resume"}
WF_PATH = FRONTEND_FIXTURES / "missing/missing_models.json"


def _client(url: str, **kw):
    return gradio_client.Client(url, verbose=False, download_files=False, analytics_enabled=False, **kw)


@pytest.fixture
def ui_live(tmp_path):
    server = LiveServer(create_app(make_settings(tmp_path), enable_ui=True)).start()
    yield server
    server.stop()


def _named_endpoints(client) -> set[str]:
    return set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_mounted_ui_is_a_headless_api(ui_live):
    client = _client(f"{ui_live.url}/gradio/")
    assert _named_endpoints(client) >= ENDPOINTS
    table, per_workflow, choices, details, log = client.predict(gradio_client.handle_file(str(WF_PATH)),
                                                                api_name="/analyze")
    assert table["headers"] == MODEL_HEADERS and per_workflow["headers"] == WORKFLOW_HEADERS
    # two nodes load the same file: one row, both nodes counted
    [row] = table["data"]
    assert row[0] == "on disk (other folder)" and row[2].endswith("(+1 more node)")
    assert per_workflow["data"] == [[WF_PATH.name, 2, 2, 0, 0, 0, 0]]
    # the same JSON as the HTTP route (as text): one core, no logic of the UI's own
    direct = httpx.post(f"{ui_live.url}{SIDECAR_PREFIX}/analyze",
                        files={"file": (WF_PATH.name, WF_PATH.read_bytes())}).json()
    assert json.loads(details) == direct
    assert f"Analyzed {WF_PATH.name}: 2 models (2 on disk (other folder))" in log
    assert choices["choices"] == [] and choices["value"] == []  # relocated models are not offered for download
    jobs_table, log_after = client.predict(api_name="/jobs")
    assert jobs_table["headers"] == JOB_HEADERS and log_after.startswith(log)  # the session keeps its log


def test_ui_reports_errors_in_its_log_in_plain_words(ui_live):
    client = _client(f"{ui_live.url}/gradio/")
    bad = ui_live.app.state.settings.data_dir / "bad.json"
    bad.write_text("{not json")
    table, per_workflow, _, details, log = client.predict(gradio_client.handle_file(str(bad)), api_name="/analyze")
    assert not any(any(cell for cell in row) for row in table["data"])
    assert json.loads(details)["error"]["type"] == "WorkflowError"
    assert per_workflow["data"][0][0].startswith("bad.json: could not read it (The workflow is not valid JSON")
    assert "Could not read bad.json: The workflow is not valid JSON" in log
    _, _, log = client.predict([], api_name="/download_selected")
    assert "Nothing selected" in log
    _, _, log = client.predict("  ", api_name="/cancel")
    assert "Cancel: click a download in the table first." in log
    _, _, log = client.predict("0123abcd", api_name="/pause")
    assert "Pause: no download '0123abcd'" in log
    # no route or function names in what the user reads
    for word in ("create_download", "cancel_download", "pause_download", "list_downloads", "analyze bad.json"):
        assert word not in log


def test_standalone_ui_over_the_sidecar_http_api(live, tmp_path):
    settings = make_settings(tmp_path)
    ui = LiveServer(create_ui_app(settings, HttpBackend(live.url))).start()
    try:
        client = _client(f"{ui.url}/")
        assert _named_endpoints(client) >= ENDPOINTS
        table, _, _, details, log = client.predict(gradio_client.handle_file(str(WF_PATH)), api_name="/analyze")
        assert [row[0] for row in table["data"]] == ["on disk (other folder)"]
        details = json.loads(details)
        assert details["workflow"] == WF_PATH.name and len(details["models"]) == 2
        # the calls went through the sidecar's API
        assert 'cmr_route_requests_total{route="analyze",status="200"} 1' in httpx.get(f"{live.url}/metrics").text
    finally:
        ui.stop()


def test_ui_beyond_loopback_asks_for_the_api_key(tmp_path):
    app = create_app(make_settings(tmp_path, api_host="0.0.0.0", api_key="ui-secret"), enable_ui=True)
    server = LiveServer(app).start()
    try:
        with pytest.raises(Exception):
            _client(f"{server.url}/gradio/").predict(gradio_client.handle_file(str(WF_PATH)), api_name="/analyze")
        client = _client(f"{server.url}/gradio/", auth=("cmr", "ui-secret"))
        table, per_workflow, *_ = client.predict(gradio_client.handle_file(str(WF_PATH)), api_name="/analyze")
        assert len(table["data"]) == 1 and per_workflow["data"][0][1] == 2
    finally:
        server.stop()


async def test_ui_without_login_is_loopback_only(tmp_path):
    app = create_app(make_settings(tmp_path), enable_ui=True)
    async with running(app, PUBLIC) as c:
        r = await c.get("/gradio/")
        assert r.status_code == 403 and r.json()["error"]["code"] == "ui_loopback_only"
    async with running(app) as c:
        assert (await c.get("/gradio/")).status_code == 200
        assert json.loads((await c.get("/")).text)["ui"] == "/gradio/"


def test_the_jobs_table_shows_fleet_hosts_and_jobs_waiting_for_a_lease():
    rows = job_rows([{"id": "a" * 32, "filename": "x.safetensors", "folder": "loras", "state": "queued", "lease": "waiting"},
                     {"id": "b", "filename": "y.safetensors", "folder": "vae", "state": "running", "lease": "held",
                      "host": "gpu-2", "bytes_done": 50, "total": 100, "speed": 10, "eta": 5},
                     {"id": "c", "filename": "z.safetensors", "folder": "vae", "state": "queued"}])
    col = {h: i for i, h in enumerate(JOB_HEADERS)}
    assert [r[col["State"]] for r in rows] == ["waiting for lease", "running on gpu-2", "queued"]
    assert rows[1][col["Progress"]] == "50 B / 100 B (50%), 10 B/s, 5 s left"
    assert [r[col["Job"]] for r in rows] == ["a" * 8, "b", "c"] and rows[0][col["File"]] == "loras/x.safetensors"


def _file_like(value) -> list:
    """Every dict in `value` that gradio_client would take for a file (a string `path` key)."""
    if isinstance(value, dict):
        own = [value] if isinstance(value.get("path"), str) else []
        return own + [d for v in value.values() for d in _file_like(v)]
    if isinstance(value, (list, tuple)):
        return [d for v in value for d in _file_like(v)]
    return []


def test_every_named_endpoint_returns_plain_data_to_the_default_client(ui_live, tmp_path):
    """The default Client(url) fetches every dict with a `path` key as a file (a 403 on resolve results
    before); each endpoint is called the way a user would and answers without one."""
    client = gradio_client.Client(f"{ui_live.url}/gradio/", verbose=False, analytics_enabled=False)
    wf = gradio_client.handle_file(str(WF_PATH))
    url = "https://huggingface.co/org/repo/resolve/main/lora_for_test.safetensors"
    calls = {"/analyze": (wf,), "/resolve": (wf,), "/analyze_batch": ([wf, wf],), "/resolve_batch": ([wf],),
             "/download_selected": ([],), "/download_all": (), "/download_url": (url, "loras", "", ""), "/jobs": ()}
    answers = {name: client.predict(*args, api_name=name) for name, args in calls.items()}
    job = json.loads(answers["/download_url"][1])  # the job JSON, as text: it has a `path`
    assert job["path"].endswith("lora_for_test.safetensors")
    short = answers["/jobs"][0]["data"][0][0]
    assert len(short) == 8 and job["id"].startswith(short)  # the Job column's id works for the controls
    for name in ("/pause", "/resume", "/cancel"):
        answers[name] = client.predict(short, api_name=name)
    assert set(answers) == _named_endpoints(client)  # a new endpoint must be added here
    for name, answer in answers.items():
        assert not _file_like(answer), (name, _file_like(answer))
    # in words, whatever state the job reached (it may have failed already: no network here)
    assert re.search(r"(Cancelled|Cancel) loras/lora_for_test\.safetensors", answers["/cancel"][2])
