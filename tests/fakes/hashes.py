"""Model-file hash conventions (contract section C), computed over a :class:`FakeFile` or bytes.

Civitai stores upper-case hex; the A1111 variants are lower-case. All full-file
digests are computed in a single streaming pass and cached per content.

| kind   | definition                                                                 |
|--------|----------------------------------------------------------------------------|
| SHA256 | sha256 of the whole file                                                   |
| AutoV1 | sha256 of 64 KiB at offset 1 MiB, first 8 hex; Civitai: None below 2 MiB   |
| AutoV2 | first 10 hex of SHA256                                                     |
| AutoV3 | sha256 of the safetensors tensor bytes (after the header); 12 hex shown    |
| CRC32  | zlib CRC-32, bytes little-endian (.NET order): hex byte-reversed vs zlib   |
| BLAKE3 | blake3 of the whole file, only when the ``blake3`` module is importable   |
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from .blobs import BLOCK, FakeFile

try:  # optional: only present if someone installed it
    import blake3 as _blake3  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _blake3 = None

HAS_BLAKE3 = _blake3 is not None
AUTOV1_OFFSET = 0x100000
AUTOV1_LENGTH = 0x10000
AUTOV3_HEADER_CAP = 16 << 20  # the scanner skips only the 8 length bytes when the header claims >= 16 MiB
AUTOV3_SHOWN = 12

__all__ = [
    "HAS_BLAKE3",
    "autov1",
    "autov1_a1111",
    "autov2",
    "autov3",
    "blake3_hex",
    "civitai_hashes",
    "crc32_civitai",
    "sha256_hex",
]


def _blob(x: FakeFile | bytes) -> FakeFile:
    return x if isinstance(x, FakeFile) else FakeFile("inline.bin", data=bytes(x))


def _autov3_start(f: FakeFile) -> int | None:
    """Offset of the tensor bytes of a safetensors file, or None if it is not one."""
    if f.size < 8:
        return None
    (n,) = struct.unpack("<Q", f.read(0, 8))
    if n >= AUTOV3_HEADER_CAP:  # implausible header: the scanner still hashes, but only .safetensors files
        return 8 if f.path.lower().endswith((".safetensors", ".sft")) else None
    if 8 + n > f.size:
        return None
    head = f.read(8, min(n, 64)).lstrip()
    if not head.startswith(b"{"):
        return None
    return 8 + n


def _full_pass(f: FakeFile) -> dict[str, str | None]:
    """One streaming pass: sha256, crc32, the AutoV3 sha256 and blake3."""
    sha = hashlib.sha256()
    crc = 0
    v3_start = _autov3_start(f)
    v3 = hashlib.sha256() if v3_start is not None else None
    b3 = _blake3.blake3() if _blake3 is not None else None
    pos = 0
    for chunk in f.iter_bytes(chunk_size=4 * BLOCK):
        sha.update(chunk)
        crc = zlib.crc32(chunk, crc)
        if b3 is not None:
            b3.update(chunk)
        if v3 is not None:
            end = pos + len(chunk)
            if end > v3_start:
                v3.update(memoryview(chunk)[max(0, v3_start - pos) :])
        pos += len(chunk)
    return {
        "sha256": sha.hexdigest(),
        "crc32": struct.pack("<I", crc).hex(),
        "autov3": v3.hexdigest() if v3 is not None else None,
        "blake3": b3.hexdigest() if b3 is not None else None,
    }


def _digests(x: FakeFile | bytes) -> dict[str, str | None]:
    f = _blob(x)
    return f.digest("civitai_full_pass", lambda: _full_pass(f))


def sha256_hex(x: FakeFile | bytes) -> str:
    """SHA-256, 64 lower-case hex."""
    return _blob(x).sha256 if isinstance(x, FakeFile) else hashlib.sha256(x).hexdigest()


def autov1_a1111(x: FakeFile | bytes) -> str:
    """A1111's old "model hash": sha256 of whatever 64 KiB it reads at 1 MiB, 8 lower-case hex."""
    f = _blob(x)
    return hashlib.sha256(f.read(AUTOV1_OFFSET, AUTOV1_LENGTH)).hexdigest()[:8]


def autov1(x: FakeFile | bytes) -> str | None:
    """Civitai AutoV1: like :func:`autov1_a1111` upper-cased, but None for files < 2 MiB."""
    f = _blob(x)
    if f.size < 2 * AUTOV1_OFFSET:
        return None
    return autov1_a1111(f).upper()


def autov2(x: FakeFile | bytes) -> str:
    """AutoV2 = first 10 hex of the SHA-256, upper-case."""
    return sha256_hex(x)[:10].upper()


def autov3(x: FakeFile | bytes, *, full: bool = False) -> str | None:
    """AutoV3 (kohya ``sshs_model_hash``): sha256 of the safetensors tensor bytes, upper-case.

    Returns the 12-hex short form Civitai shows unless ``full``; None when the
    content is not a safetensors file.
    """
    value = _digests(x)["autov3"]
    if value is None:
        return None
    return value.upper() if full else value[:AUTOV3_SHOWN].upper()


def crc32_civitai(x: FakeFile | bytes) -> str:
    """CRC-32 in Civitai's (.NET little-endian) byte order, 8 upper-case hex."""
    return _digests(x)["crc32"].upper()


def blake3_hex(x: FakeFile | bytes) -> str | None:
    """BLAKE3-256 upper-case, or None when the ``blake3`` module is not installed."""
    value = _digests(x)["blake3"]
    return value.upper() if value is not None else None


def civitai_hashes(x: FakeFile | bytes, *, autov3_full: bool = False) -> dict[str, str]:
    """The ``hashes`` object Civitai shows for a file: only the kinds that exist."""
    f = _blob(x)
    d = _digests(f)
    out = {
        "AutoV1": autov1(f),
        "AutoV2": d["sha256"][:10].upper(),
        "SHA256": d["sha256"].upper(),
        "CRC32": d["crc32"].upper(),
        "BLAKE3": d["blake3"].upper() if d["blake3"] else None,
        "AutoV3": autov3(f, full=autov3_full),
    }
    return {k: v for k, v in out.items() if v is not None}
