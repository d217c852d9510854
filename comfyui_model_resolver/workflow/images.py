"""Read the text metadata ComfyUI embeds in PNG and WebP files. Pure: bytes in, strings out.

PNG: `tEXt`, `iTXt` and `zTXt` chunks keyed `workflow` and `prompt` (ComfyUI's SaveImage).
WebP: an `EXIF` chunk whose IFD0 ASCII/UNDEFINED entries hold "workflow:<json>" and
"prompt:<json>" (ComfyUI's SaveAnimatedWEBP writes tags 0x010F and 0x0110).
A1111-style `parameters` text: PNG text chunk `parameters`; WebP EXIF UserComment or XMP.
"""
from __future__ import annotations

import re
import struct
import zlib

from ..errors import WorkflowError, too_large

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(data: bytes) -> bool:
    return data[:8] == PNG_SIGNATURE


def is_webp(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def _inflate(blob: bytes, limit: int, what: str) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(blob, limit + 1)
    except zlib.error:
        raise WorkflowError(f"The compressed {what} text in this PNG is corrupt.") from None
    if len(out) > limit or d.unconsumed_tail:
        raise too_large(f"{what} text in this PNG", len(out), limit, "CMR_MAX_WORKFLOW_BYTES", at_least=True)
    return out


#: The text entries ComfyUI writes, and A1111's `parameters`; the others are never decompressed.
WORKFLOW_KEYS = ("workflow", "prompt", "parameters")


def png_text_chunks(data: bytes, *, limit: int, keys: tuple[str, ...] | None = WORKFLOW_KEYS) -> dict[str, str]:
    """The text chunks of a PNG as {keyword: text} — only `keys` (all when None). Raises
    WorkflowError on a broken file.

    Memory stays bounded by `limit` whatever the file holds: chunks with other keywords are skipped
    without inflating them, and all the text kept, compressed or not, counts against one budget
    (a 2 MB PNG of a thousand small zTXt chunks each inflating to the limit needed 2 GB before)."""
    if not is_png(data):
        raise WorkflowError("Not a PNG file.")
    out: dict[str, str] = {}
    budget = limit
    pos, end = 8, len(data)
    while True:
        if pos + 8 > end:
            raise WorkflowError("The PNG file is truncated (no IEND chunk).",
                                hint="The image was probably cut off while downloading; fetch it again.")
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body_start, body_end = pos + 8, pos + 8 + length
        if body_end + 4 > end:
            raise WorkflowError(f"The PNG file is truncated inside its {ctype.decode('latin-1', 'replace')!r} chunk.",
                                hint="The image was probably cut off while downloading; fetch it again.")
        body = data[body_start:body_end]
        if ctype == b"IEND":
            return out
        if ctype in (b"tEXt", b"zTXt", b"iTXt"):
            key, _, rest = body.partition(b"\0")
            name = key.decode("latin-1")
            if keys is None or name in keys:
                if ctype == b"tEXt":
                    raw, text_codec = rest, "latin-1"
                elif ctype == b"zTXt":
                    raw, text_codec = _inflate(rest[1:], budget, name), "latin-1"
                else:
                    if len(rest) < 2:
                        raise WorkflowError(f"The PNG iTXt chunk {name!r} is malformed.")
                    compressed = rest[0] == 1
                    rest = rest[2:]
                    _lang, _, rest = rest.partition(b"\0")
                    _translated, _, raw = rest.partition(b"\0")
                    if compressed:
                        raw = _inflate(raw, budget, name)
                    text_codec = "utf-8"
                budget -= len(raw)
                if budget < 0:
                    raise WorkflowError(f"The text in this PNG adds up to more than the {limit}-byte limit.")
                out[name] = raw.decode(text_codec, "replace")
        pos = body_end + 4  # skip CRC


def _tiff_strings(tiff: bytes, prefixes: tuple[bytes, ...] | None = None) -> list[str]:
    """ASCII/UNDEFINED/BYTE values of IFD0 (and any chained IFDs) of a TIFF/EXIF block; only those
    starting with one of `prefixes` when given.

    Bounded: a value is copied only if its prefix matches, and the values kept add up to at most
    the block's size — honest EXIF values never overlap, while a hostile block can point thousands
    of entries at one large value (a 150 KB WebP needed 400 MB before)."""
    budget = len(tiff)
    if len(tiff) < 8:
        raise WorkflowError("The WebP EXIF block is truncated.")
    order = tiff[:2]
    if order == b"II":
        e = "<"
    elif order == b"MM":
        e = ">"
    else:
        raise WorkflowError("The WebP EXIF block has no TIFF header.")
    (offset,) = struct.unpack(e + "I", tiff[4:8])
    values: list[str] = []
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) < 16:
        seen.add(offset)
        if offset + 2 > len(tiff):
            raise WorkflowError("The WebP EXIF block is truncated.")
        (count,) = struct.unpack(e + "H", tiff[offset:offset + 2])
        base = offset + 2
        if base + count * 12 > len(tiff):
            raise WorkflowError("The WebP EXIF block is truncated.")
        for i in range(count):
            _tag, typ, n, raw = struct.unpack(e + "HHI4s", tiff[base + i * 12: base + i * 12 + 12])
            if typ not in (1, 2, 7):  # BYTE, ASCII, UNDEFINED: one byte per element
                continue
            if n <= 4:
                blob = raw[:n]
            else:
                (voff,) = struct.unpack(e + "I", raw)
                if voff + n > len(tiff):
                    raise WorkflowError("The WebP EXIF block is truncated.")
                if prefixes is not None and not tiff[voff:voff + 16].startswith(prefixes):
                    continue
                budget -= n
                if budget < 0:
                    raise WorkflowError("The WebP EXIF block's values add up to more than the block itself.")
                blob = tiff[voff:voff + n]
            if prefixes is not None and not blob.startswith(prefixes):
                continue
            values.append(blob.rstrip(b"\0").decode("utf-8", "replace"))
        next_pos = base + count * 12
        offset = struct.unpack(e + "I", tiff[next_pos:next_pos + 4])[0] if next_pos + 4 <= len(tiff) else 0
    return values


_EXIF_PREFIXES = (b"workflow:", b"prompt:", b"Workflow:", b"Prompt:")


_EXIF_IFD_POINTER = 0x8769
_USER_COMMENT = 0x9286


def _user_comment(tiff: bytes) -> str | None:
    """EXIF UserComment (A1111/Forge write their `parameters` there): in the Exif sub-IFD that IFD0
    points to, or in IFD0 itself. 8 bytes name the charset: "UNICODE\0" (UTF-16, big-endian as
    piexif writes it; little-endian accepted), "ASCII\0\0\0", or none."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    e = "<" if tiff[:2] == b"II" else ">"

    def entries(offset: int):
        if offset + 2 > len(tiff):
            return
        (count,) = struct.unpack(e + "H", tiff[offset:offset + 2])
        for i in range(min(count, (len(tiff) - offset - 2) // 12)):
            yield struct.unpack(e + "HHI4s", tiff[offset + 2 + i * 12: offset + 14 + i * 12])

    (ifd0,) = struct.unpack(e + "I", tiff[4:8])
    ifds = [ifd0]
    for tag, typ, n, raw in entries(ifd0):
        if tag == _EXIF_IFD_POINTER and typ == 4:
            ifds.append(struct.unpack(e + "I", raw)[0])
    for ifd in ifds[::-1]:
        for tag, typ, n, raw in entries(ifd):
            if tag != _USER_COMMENT or n <= 8:
                continue
            (voff,) = struct.unpack(e + "I", raw)
            blob = tiff[voff:voff + n]
            head, body = blob[:8], blob[8:]
            if head.startswith(b"UNICODE"):
                codec = "utf-16-be" if (len(body) > 1 and body[0] == 0 and body[1] != 0) else "utf-16-le"
                return body.decode(codec, "replace").rstrip("\0")
            return body.decode("utf-8", "replace").rstrip("\0")
    return None


_XMP_PARAMETERS = re.compile(r"(?s)<(?:exif:UserComment|sd:parameters|[\w-]+:parameters)\b[^>]*>(.*?)</"
                             r"|\b(?:exif:UserComment|[\w-]+:parameters)=\"([^\"]*)\"")


def _xmp_parameters(xmp: bytes) -> str | None:
    """`parameters` text kept in an XMP packet (exif:UserComment, or a `*:parameters` property)."""
    m = _XMP_PARAMETERS.search(xmp.decode("utf-8", "replace"))
    if m is None:
        return None
    text = m.group(1) if m.group(1) is not None else m.group(2)
    inner = re.search(r"(?s)<rdf:li\b[^>]*>(.*?)</rdf:li>", text)
    import html  # only for XMP packets (html.entities is a large table)

    return html.unescape(inner.group(1) if inner else re.sub(r"<[^>]+>", "", text)).strip() or None


def webp_text_entries(data: bytes) -> dict[str, str]:
    """{"workflow": json, "prompt": json, "parameters": text…} from a WebP's EXIF and XMP chunks
    (empty if none)."""
    if not is_webp(data):
        raise WorkflowError("Not a WebP file.")
    (riff_size,) = struct.unpack("<I", data[4:8])
    end = min(len(data), 8 + riff_size)
    if 8 + riff_size > len(data):
        raise WorkflowError("The WebP file is truncated.",
                            hint="The image was probably cut off while downloading; fetch it again.")
    pos = 12
    out: dict[str, str] = {}
    while pos + 8 <= end:
        fourcc, size = struct.unpack("<4sI", data[pos:pos + 8])
        body = data[pos + 8: pos + 8 + size]
        if len(body) < size:
            raise WorkflowError("The WebP file is truncated inside a chunk.")
        if fourcc == b"EXIF":
            if body.startswith(b"Exif\0\0"):
                body = body[6:]
            for value in _tiff_strings(body, _EXIF_PREFIXES):
                key, sep, text = value.partition(":")
                if sep and key in {"workflow", "prompt", "Workflow", "Prompt"}:
                    out.setdefault(key.lower(), text)
            comment = _user_comment(body)
            if comment:
                out.setdefault("parameters", comment)
        elif fourcc == b"XMP ":
            found = _xmp_parameters(body)
            if found:
                out.setdefault("parameters", found)
        pos += 8 + size + (size & 1)
    return out
