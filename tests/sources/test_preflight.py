"""Pre-flight (HEAD) states and the free-space check."""
from __future__ import annotations

import shutil

from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.sources.preflight import disk_checks
from fakes.blobs import FakeFile
from support.sources import make_settings, workflow


def test_disk_check_compares_the_sum_with_free_space(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    target = tmp_path / "models" / "vae"  # does not exist yet: its nearest existing parent is measured
    ok = disk_checks([("vae", str(target), 1000), ("vae", str(target), None)])
    assert ok[0].needed == 1000 and ok[0].unknown_sizes == 1 and ok[0].enough is True
    too_big = disk_checks([("vae", str(target), free // 2 + 1), ("loras", str(tmp_path / "models" / "loras"), free // 2 + 1)])
    assert all(c.enough is False for c in too_big)  # each fits alone, not both on one filesystem
    assert disk_checks([("vae", None, 5)])[0].enough is None


async def test_resolution_reports_disk_for_the_install(fake_hub, tmp_path):
    fake_hub.add_repo("Comfy-Org/Wan", [FakeFile.safetensors("split_files/vae/wan_2.1_vae.safetensors", 2048, seed=1)])
    root = tmp_path / "ComfyUI"
    (root / "models").mkdir(parents=True)
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, comfyui_root=str(root)))
    try:
        res = await r.resolve(workflow(("VAELoader", ["wan_2.1_vae.safetensors"])), "wf")
    finally:
        await r.close()
    (d,) = res.disk
    assert d.folder == "vae" and d.directory == str(root / "models" / "vae") and d.needed == 2048 and d.enough


async def test_redirect_off_the_allowlist_is_refused(fake_hub, tmp_path):
    fake_hub.add_repo("Comfy-Org/Wan", [FakeFile.safetensors("split_files/vae/wan_2.1_vae.safetensors", 2048, seed=1)])
    fake_hub.switch("resolve", no_size=True)  # no X-Linked-Size: the pre-flight must follow to the CDN
    settings = make_settings(tmp_path, hub=fake_hub)
    settings = settings.with_overrides(allowed_hosts=(settings.allowed_hosts[0],))  # the Hub, not its CDN
    r = await build_resolver(settings)
    try:
        m = (await r.resolve(workflow(("VAELoader", ["wan_2.1_vae.safetensors"])), "wf")).models[0]
    finally:
        await r.close()
    assert m.preflight.state == "not_allowed" and "not on the allowlist" in m.preflight.message
    assert m.status == "ambiguous"
    assert not fake_hub.log.filter(server="cdn")


async def test_a_chosen_file_that_is_gone_says_so_once_in_plain_words(fake_hub, tmp_path):
    fake_hub.add_repo("Comfy-Org/Wan", [FakeFile.safetensors("split_files/vae/wan_2.1_vae.safetensors", 2048, seed=1)])
    fake_hub.switch("resolve", status=404)  # listed in the tree, but the file answers 404 when checked
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub))
    try:
        m = (await r.resolve(workflow(("VAELoader", ["wan_2.1_vae.safetensors"])), "wf")).models[0]
    finally:
        await r.close()
    assert m.preflight.state == "not_found" and m.status == "ambiguous"
    assert m.message.startswith("the chosen file could not be fetched when checked (127.0.0.1: ")
    assert m.message.endswith("): pick another candidate")
    # one account of where it failed, not "preflight: pre-flight:"
    assert "preflight" not in m.message.lower() and "pre-flight" not in m.message and m.message.count("127.0.0.1") == 1
