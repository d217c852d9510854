"""Model URLs: normalisation and Hugging Face / Civitai URL parsing. Pure.

The host allowlist lives in `comfyui_model_resolver.hosts`, shared with the download manager.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Query parameters that carry credentials: never kept in a URL we store, show or write back.
_SECRET_PARAMS = {"token", "access_token", "api_key", "apikey", "key", "sig_token"}
_HF_HOSTS = {"huggingface.co", "www.huggingface.co", "hf.co"}
_TRAILING_JUNK = ".,;:!?)]}>'\"`*_"


@dataclass(frozen=True, slots=True)
class HfFile:
    """A file on a Hugging Face Hub: repo id, revision and the path inside the repo."""

    repo: str
    revision: str
    path: str

    @property
    def basename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def clean_link(text: str) -> str:
    """A URL as it appears in prose (markdown, notes): trailing punctuation and brackets removed."""
    url, before = text, None
    while url != before:  # to a fixed point: "<x >." -> "x", and cleaning a clean link changes nothing
        before = url
        url = url.strip().strip("<>")
        while url and url[-1] in _TRAILING_JUNK:
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break
            url = url[:-1]
    return url


def normalise_url(url: str, hub_origins: Iterable[str] = ()) -> str:
    """Hub `/blob/` -> `/resolve/`, `?download=true` and credential parameters dropped.

    `hub_origins` are extra Hub origins (a mirror from CMR_HF_ENDPOINT) treated like huggingface.co.
    """
    url = clean_link(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k.lower() not in _SECRET_PARAMS]
    path = parts.path
    if _is_hub(parts, hub_origins):
        query = [(k, v) for k, v in query if k.lower() != "download"]
        segs = path.split("/")
        # /{ns}/{name}/blob/{rev}/{path} -> /{ns}/{name}/resolve/{rev}/{path}
        if len(segs) > 4 and segs[3] == "blob":
            segs[3] = "resolve"
            path = "/".join(segs)
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


def _origin(parts) -> str:
    return f"{parts.scheme}://{parts.netloc}".lower()


def _is_hub(parts, hub_origins: Iterable[str]) -> bool:
    host = (parts.hostname or "").lower()
    return host in _HF_HOSTS or _origin(parts) in {o.rstrip("/").lower() for o in hub_origins}


def parse_hf_url(url: str, hub_origins: Iterable[str] = ()) -> HfFile | None:
    """`https://huggingface.co/{ns}/{name}/resolve/{rev}/{path}` (or /blob/) -> HfFile."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not _is_hub(parts, hub_origins):
        return None
    segs = [unquote(s) for s in parts.path.split("/")]
    if len(segs) < 6 or segs[3] not in ("resolve", "blob") or not segs[1] or not segs[2]:
        return None
    path = "/".join(segs[5:])
    if not path or ".." in path.split("/"):
        return None
    return HfFile(repo=f"{segs[1]}/{segs[2]}", revision=segs[4], path=path)


def hf_resolve_url(endpoint: str, repo: str, path: str, revision: str = "main") -> str:
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"


_CIVITAI_VERSION = re.compile(r"/api/download/models/(\d+)")


def civitai_version_id(url: str) -> int | None:
    """The model-version id of a Civitai download URL or a model page with `?modelVersionId=`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    m = _CIVITAI_VERSION.search(parts.path)
    if m:
        return int(m.group(1))
    for k, v in parse_qsl(parts.query):
        if k == "modelVersionId" and v.isdigit():
            return int(v)
    return None


def url_basename(url: str) -> str:
    """The file name at the end of a URL's path (percent-decoded), '' when there is none."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    return unquote(path.rsplit("/", 1)[-1])


def origin_of(url: str) -> str:
    """scheme://host[:port], lower-case, default ports dropped."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def to_endpoint(url: str, endpoint: str) -> str:
    """A huggingface.co file URL on the configured Hub endpoint (a mirror, or a test server)."""
    endpoint = endpoint.rstrip("/")
    if endpoint == HF_PUBLIC:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if (parts.hostname or "").lower() not in _HF_HOSTS:
        return url
    return endpoint + urlunsplit(("", "", parts.path, parts.query, ""))


HF_PUBLIC = "https://huggingface.co"


def to_public(url: str, endpoint: str) -> str:
    """The huggingface.co form of a URL on the configured endpoint: what a shared workflow should carry."""
    endpoint = endpoint.rstrip("/")
    if endpoint == HF_PUBLIC or not url.startswith(endpoint + "/"):
        return url
    return HF_PUBLIC + url[len(endpoint):]
