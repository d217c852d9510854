"""Build real PNG and WebP files in tests, the way ComfyUI writes them (no Pillow needed)."""
from __future__ import annotations

import struct
import zlib


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def make_png(texts: dict[str, str], *, itxt: bool = False, compress: bool = False) -> bytes:
    """A 1x1 RGB PNG with text chunks (tEXt, or iTXt optionally compressed)."""
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    for key, text in texts.items():
        if itxt:
            data = text.encode("utf-8")
            if compress:
                data = zlib.compress(data)
            body = key.encode("latin-1") + b"\0" + bytes([1 if compress else 0, 0]) + b"\0" + b"\0" + data
            out += _chunk(b"iTXt", body)
        else:
            out += _chunk(b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1"))
    out += _chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
    out += _chunk(b"IEND", b"")
    return out


def _exif(entries: list[tuple[int, str]], little: bool = True) -> bytes:
    """A TIFF block with one IFD of ASCII entries, as PIL writes ComfyUI's WebP EXIF."""
    e = "<" if little else ">"
    header = (b"II" if little else b"MM") + struct.pack(e + "HI", 42, 8)
    count = len(entries)
    data_offset = 8 + 2 + count * 12 + 4
    ifd = struct.pack(e + "H", count)
    blobs = b""
    for tag, text in sorted(entries):
        raw = text.encode("utf-8") + b"\0"
        if len(raw) <= 4:
            ifd += struct.pack(e + "HHI", tag, 2, len(raw)) + raw.ljust(4, b"\0")
        else:
            ifd += struct.pack(e + "HHII", tag, 2, len(raw), data_offset + len(blobs))
            blobs += raw
            if len(blobs) % 2:
                blobs += b"\0"
    ifd += struct.pack(e + "I", 0)
    return header + ifd + blobs


def make_webp(workflow: str | None = None, prompt: str | None = None, *, little: bool = True) -> bytes:
    """A lossless 1x1 WebP with ComfyUI's EXIF: 0x010F "workflow:<json>", 0x0110 "prompt:<json>"."""
    vp8l = b"\x2f\x00\x00\x00\x00\x88\x88\x08\x00"  # minimal VP8L bitstream for a 1x1 image
    chunks = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l + (b"\0" if len(vp8l) % 2 else b"")
    entries = []
    if workflow is not None:
        entries.append((0x010F, "workflow:" + workflow))
    if prompt is not None:
        entries.append((0x0110, "prompt:" + prompt))
    if entries:
        exif = _exif(entries, little)
        chunks += b"EXIF" + struct.pack("<I", len(exif)) + exif + (b"\0" if len(exif) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


def _exif_user_comment(text: str, *, little: bool = False, utf16_le: bool = False) -> bytes:
    """A TIFF block whose IFD0 points (0x8769) to an Exif IFD holding UserComment (0x9286) with the
    "UNICODE\\0" charset prefix and UTF-16 text, as piexif writes it for A1111/Forge WebP files."""
    e = "<" if little else ">"
    comment = b"UNICODE\0" + text.encode("utf-16-le" if utf16_le else "utf-16-be")
    ifd0_at, exif_at = 8, 8 + 2 + 12 + 4
    data_at = exif_at + 2 + 12 + 4
    ifd0 = struct.pack(e + "H", 1) + struct.pack(e + "HHII", 0x8769, 4, 1, exif_at) + struct.pack(e + "I", 0)
    exif = struct.pack(e + "H", 1) + struct.pack(e + "HHII", 0x9286, 7, len(comment), data_at) + struct.pack(e + "I", 0)
    return (b"II" if little else b"MM") + struct.pack(e + "HI", 42, ifd0_at) + ifd0 + exif + comment


def make_webp_parameters(parameters: str, *, xmp: bool = False, little: bool = False) -> bytes:
    """A 1x1 WebP carrying A1111-style `parameters`: in an EXIF UserComment, or (xmp=True) in an
    XMP packet's exif:UserComment."""
    vp8l = b"\x2f\x00\x00\x00\x00\x88\x88\x08\x00"
    chunks = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l + b"\0"
    if xmp:
        from html import escape

        body = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                '<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/"><exif:UserComment><rdf:Alt>'
                f'<rdf:li xml:lang="x-default">{escape(parameters)}</rdf:li></rdf:Alt></exif:UserComment>'
                '</rdf:Description></rdf:RDF></x:xmpmeta>').encode("utf-8")
        fourcc = b"XMP "
    else:
        body, fourcc = b"Exif\0\0" + _exif_user_comment(parameters, little=little), b"EXIF"
    chunks += fourcc + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks
