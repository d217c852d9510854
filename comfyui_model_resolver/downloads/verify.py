"""Checks a finished part file must pass before it gets its final name, and what happens otherwise.

* `check_safetensors(path)`: the 8-byte little-endian header length, a JSON object header, and
  tensors whose data offsets lie inside the file and cover the data section exactly (what the
  safetensors loader itself demands), with shapes that match their dtype sizes.
* `finalize(part, final)`: atomic `os.replace` (with fsync of file and directory when durable).
* `quarantine(part, dir, …)`: move a file that failed a check out of the models folder, so the
  final name never holds unverified bytes and the evidence is kept for inspection.

All functions block; call them from a worker thread.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import time

from ..errors import IntegrityError

__all__ = ["check_safetensors", "finalize", "quarantine", "MAX_SAFETENSORS_HEADER"]

MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the format's own limit
_DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
               "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64,
               "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


def _bad(name: str, why: str) -> IntegrityError:
    return IntegrityError(f"{name} is not a valid safetensors file: {why}.",
                          hint="The download is corrupt or the server sent another file; it was quarantined.")


def check_safetensors(path: str, name: str | None = None) -> int:
    """Validate the header of a safetensors file; returns the number of tensors."""
    name = name or os.path.basename(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _bad(name, f"only {size} bytes long")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > MAX_SAFETENSORS_HEADER:
            raise _bad(name, f"header length {n} is out of range")
        if 8 + n > size:
            raise _bad(name, f"header length {n} exceeds the file size {size}")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad(name, "the JSON header does not parse") from None
    if not isinstance(header, dict):
        raise _bad(name, "the header is not a JSON object")
    data_size = size - 8 - n
    spans = []
    for key, info in header.items():
        if key == "__metadata__":
            if not isinstance(info, dict):
                raise _bad(name, "__metadata__ is not an object")
            continue
        if not isinstance(info, dict):
            raise _bad(name, f"tensor {key!r} is not described by an object")
        offsets, shape, dtype = info.get("data_offsets"), info.get("shape"), info.get("dtype")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise _bad(name, f"tensor {key!r} has no valid data_offsets")
        start, end = offsets
        if not 0 <= start <= end <= data_size:
            raise _bad(name, f"tensor {key!r} data_offsets {offsets} lie outside the {data_size}-byte data section")
        if isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape) and dtype in _DTYPE_BITS:
            count = 1
            for d in shape:
                count *= d
            if (count * _DTYPE_BITS[dtype] + 7) // 8 != end - start:
                raise _bad(name, f"tensor {key!r} ({dtype}{shape}) does not match its {end - start} data bytes")
        spans.append((start, end))
    spans.sort()
    pos = 0
    for start, end in spans:
        if start != pos:
            raise _bad(name, "tensor data has gaps or overlaps")
        pos = end
    if pos != data_size:
        raise _bad(name, f"the tensors cover {pos} of {data_size} data bytes")
    return len(spans)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def finalize(part: str, final: str, *, durable: bool = False) -> None:
    """Give the verified part file its final name atomically.

    The rename is atomic for every other process and survives a crash of ours. With `durable`
    (CMR_DOWNLOAD_FSYNC) the data and the directory entry are also fsynced, so the name survives
    a power cut too — at the cost of waiting for the disk (about half of loopback download speed
    on a typical VM disk, which is why it is off by default, as in curl, wget and huggingface_hub).
    """
    if durable:
        fd = os.open(part, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(part, final)
    if durable:
        _fsync_dir(os.path.dirname(final))


def quarantine(part: str, quarantine_dir: str, job_id: str, name: str) -> str | None:
    """Move `part` into `quarantine_dir`; returns the new path (None if it could only be deleted)."""
    os.makedirs(quarantine_dir, exist_ok=True)
    dest = os.path.join(quarantine_dir, f"{time.strftime('%Y%m%d-%H%M%S')}-{job_id[:8]}-{os.path.basename(name)}")
    try:
        os.replace(part, dest)
        return dest
    except OSError:
        pass
    try:  # another file system: copy, then delete
        shutil.move(part, dest)
        return dest
    except OSError:
        try:
            os.unlink(part)
        except OSError:
            pass
        try:
            os.unlink(dest)
        except OSError:
            pass
        return None
