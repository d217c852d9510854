"""URL normalisation, Hub/Civitai URL parsing (pure); the allowlist is tested in tests/test_hosts.py."""
from __future__ import annotations

from hypothesis import example, given, strategies as st

from comfyui_model_resolver.sources.urls import (
    civitai_version_id, clean_link, normalise_url, parse_hf_url, url_basename)


def test_blob_becomes_resolve_and_download_param_is_dropped():
    url = "https://huggingface.co/Comfy-Org/Wan/blob/main/split_files/vae/wan_2.1_vae.safetensors?download=true"
    assert normalise_url(url) == "https://huggingface.co/Comfy-Org/Wan/resolve/main/split_files/vae/wan_2.1_vae.safetensors"


def test_credentials_never_survive_normalisation():
    url = "https://civitai.com/api/download/models/123?type=Model&token=SECRET"
    out = normalise_url(url)
    assert "SECRET" not in out and "type=Model" in out


def test_mirror_endpoint_is_treated_like_the_hub():
    url = "http://127.0.0.1:8080/org/repo/blob/main/x.safetensors?download=true"
    assert normalise_url(url, ("http://127.0.0.1:8080",)) == "http://127.0.0.1:8080/org/repo/resolve/main/x.safetensors"
    assert parse_hf_url("http://127.0.0.1:8080/org/repo/resolve/main/a/b.gguf", ("http://127.0.0.1:8080",)).path == "a/b.gguf"


def test_links_in_prose_lose_trailing_punctuation():
    assert clean_link("https://hf.co/a/b/resolve/main/x.safetensors).") == "https://hf.co/a/b/resolve/main/x.safetensors"


def test_parse_hf_url():
    f = parse_hf_url("https://huggingface.co/Comfy-Org/flux2-dev/resolve/main/split_files/vae/flux2-vae.safetensors")
    assert (f.repo, f.revision, f.path, f.basename) == ("Comfy-Org/flux2-dev", "main", "split_files/vae/flux2-vae.safetensors",
                                                        "flux2-vae.safetensors")
    assert parse_hf_url("https://huggingface.co/Comfy-Org/flux2-dev") is None
    assert parse_hf_url("https://huggingface.co/a/b/resolve/main/../../etc/passwd") is None
    assert parse_hf_url("https://example.com/a/b/resolve/main/x.safetensors") is None


def test_civitai_version_ids():
    assert civitai_version_id("https://civitai.com/api/download/models/4711?type=Model") == 4711
    assert civitai_version_id("https://civitai.com/models/12?modelVersionId=99") == 99
    assert civitai_version_id("https://civitai.com/models/12") is None
    assert url_basename("https://x.org/a/b%20c.safetensors?x=1") == "b c.safetensors"


@given(st.text(max_size=200))
@example("0 .")  # junk after a space: the space must go too
@example("< <https://huggingface.co/a/b/blob/main/x.safetensors> >.")
def test_normalise_never_raises_and_is_idempotent(text):
    once = normalise_url(text)
    assert normalise_url(once) == once
