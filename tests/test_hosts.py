"""The host allowlist, token routing and redaction (comfyui_model_resolver.hosts)."""
from __future__ import annotations

import pytest

from comfyui_model_resolver.errors import HostNotAllowed
from comfyui_model_resolver.hosts import check_url, is_allowed, redact_text, redact_url, token_for, token_kind
from comfyui_model_resolver.settings import Settings


def S(**kw) -> Settings:
    return Settings(**kw)


@pytest.mark.parametrize("url", [
    "https://huggingface.co/org/m/resolve/main/x.safetensors",
    "https://cdn-lfs.huggingface.co/repos/ab/cd?sig=1",
    "https://cas-bridge.xethub.hf.co/xet-bridge-us/abc",
    "https://us.aws.cdn.hf.co/x",
    "https://civitai.com/api/download/models/1",
    "https://civitai-delivery-worker-prod.abc.r2.cloudflarestorage.com/x?X-Amz-Signature=s",
    "https://HuggingFace.CO./org/m",  # case and trailing dot normalised
])
def test_default_allowlist_accepts_known_hosts(url):
    assert check_url(url, S()) == url


@pytest.mark.parametrize("url, why", [
    ("http://huggingface.co/x", "https"),  # built-in hosts need https
    ("https://huggingface.co:8443/x", "allowlist"),  # a bare host matches only the default port
    ("https://evil.example/x", "allowlist"),
    ("https://huggingface.co.evil.example/x", "allowlist"),
    ("https://nothuggingface.co/x", "allowlist"),  # *.huggingface.co is not a suffix match on the name
    ("file:///etc/passwd", "http and https"),
    ("ftp://huggingface.co/x", "http and https"),
    ("huggingface.co/x", "http and https"),
    ("https://user:pw@huggingface.co/x", "user name"),
    ("https://127.0.0.1/x", "allowlist"),
    ("", "Empty"),
    ("https://huggingface.co/x\r\nHost: evil", "control"),
])
def test_refusals_say_why(url, why):
    with pytest.raises(HostNotAllowed) as info:
        check_url(url, S())
    assert why in info.value.message
    assert info.value.hint is None or "CMR_ALLOWED_HOSTS" in info.value.hint or info.value.hint


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                "0.0.0.0", "[::1]", "[fc00::1]", "[fe80::1]", "[::ffff:127.0.0.1]"])
def test_internal_ips_need_exact_host_port_entry(ip):
    host = ip.strip("[]")
    # A bare entry is not enough for an internal address …
    assert not is_allowed(f"http://{ip}/x", S(allowed_hosts=(host,)))
    assert not is_allowed(f"http://{ip}:8080/x", S(allowed_hosts=(host,)))
    # … an exact host:port is.
    entry = f"{ip}:8080" if ip.startswith("[") else f"{host}:8080"
    assert is_allowed(f"http://{ip}:8080/x", S(allowed_hosts=(entry,)))
    assert not is_allowed(f"http://{ip}:8081/x", S(allowed_hosts=(entry,)))


def test_explicit_entries_allow_http_and_wildcards_and_ports():
    s = S(allowed_hosts=("models.example.org", "*.mirror.example", "localhost:9000"))
    assert is_allowed("http://models.example.org/x", s)
    assert is_allowed("https://models.example.org/x", s)
    assert not is_allowed("https://models.example.org:444/x", s)
    assert is_allowed("https://a.b.mirror.example/x", s)
    assert not is_allowed("https://mirror.example/x", s)
    assert is_allowed("http://localhost:9000/x", s)
    assert not is_allowed("http://localhost:9001/x", s)


def test_configured_endpoints_are_allowed_on_their_port():
    s = S(hf_endpoint="http://127.0.0.1:5555", civitai_base_url="http://127.0.0.1:6666")
    assert is_allowed("http://127.0.0.1:5555/org/m/resolve/main/x", s)
    assert is_allowed("http://127.0.0.1:6666/api/download/models/1", s)
    assert not is_allowed("http://127.0.0.1:7777/x", s)


def test_tokens_go_only_to_their_own_hosts():
    s = S(hf_token="hf_secret", civitai_api_key="civ_secret", hf_endpoint="http://127.0.0.1:5555",
          civitai_base_url="http://127.0.0.1:6666", allowed_hosts=("localhost:5556",))
    assert token_for("http://127.0.0.1:5555/org/m/resolve/main/x", s) == "hf_secret"
    assert token_for("https://huggingface.co/org/m", s) == "hf_secret"
    assert token_for("https://hf.co/org/m", s) == "hf_secret"
    assert token_for("http://127.0.0.1:6666/api/download/models/1", s) == "civ_secret"
    for cdn in ("http://localhost:5556/blobs/x", "https://cdn-lfs.huggingface.co/x", "https://us.aws.cdn.hf.co/x",
                "http://huggingface.co/x", "http://127.0.0.1:5557/x", "https://civitai.com/api/x",
                "https://abc.r2.cloudflarestorage.com/x"):
        assert token_for(cdn, s) is None, cdn
    assert token_kind("https://huggingface.co/x", s) == "hf"
    assert token_kind("http://127.0.0.1:6666/x", s) == "civitai"
    assert token_for("https://huggingface.co/x", S()) is None  # no token configured


def test_redaction_removes_secrets():
    url = ("https://x.r2.cloudflarestorage.com/f?X-Amz-Credential=AK%2F1&X-Amz-Signature=deadbeef"
           "&response-content-disposition=attachment&token=civ_secret")
    red = redact_url(url)
    assert "deadbeef" not in red and "civ_secret" not in red and "AK" not in red
    assert "response-content-disposition=attachment" in red
    assert redact_url("https://u:p@h.example/x") == "https://***@h.example/x"
    text = "GET https://civitai.com/api/download/models/1?token=abc123&x=1 Authorization: Bearer hf_abcdefghijkl"
    out = redact_text(text)
    assert "abc123" not in out and "hf_abcdefghijkl" not in out and "x=1" in out
