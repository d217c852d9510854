"""FakeFile content model and the hash kinds of contract section C (its test vectors)."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import pytest

from fakes import hashes
from fakes.blobs import BLOCK, FakeFile, git_blob_sha1, lfs_pointer, make_safetensors, safetensors_prefix

HELLO = b"hello world"
# 66-byte safetensors vector: header {"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}, data 1.0f LE
_HDR = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
TINY_ST = struct.pack("<Q", len(_HDR)) + _HDR + struct.pack("<f", 1.0)
TWO_MIB = bytes(range(256)) * 8192


def _parse_safetensors(data: bytes) -> dict:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    tensor = header["weight"]
    start, end = tensor["data_offsets"]
    assert 8 + n + end == len(data) and start == 0
    return header


class TestFakeFile:
    def test_generated_content_is_deterministic_and_sliceable(self):
        a = FakeFile("a.bin", size=3 * BLOCK + 123, seed=7)
        b = FakeFile("b.bin", size=3 * BLOCK + 123, seed=7)
        whole = b"".join(a.iter_bytes(chunk_size=BLOCK // 3))
        assert len(whole) == a.size and whole == b.data
        for offset, length in [(0, 10), (BLOCK - 5, 10), (2 * BLOCK + 1, BLOCK), (a.size - 3, 100)]:
            assert a.read(offset, length) == whole[offset : offset + length]
        assert a.read(a.size, 10) == b""

    def test_blocks_differ_so_misplaced_resumes_are_detectable(self):
        f = FakeFile("a.bin", size=2 * BLOCK, seed=1)
        assert f.read(0, BLOCK) != f.read(BLOCK, BLOCK)
        assert FakeFile("a", size=100, seed=1).data != FakeFile("a", size=100, seed=2).data

    def test_digests_match_hashlib(self):
        f = FakeFile("a.bin", size=BLOCK + 17, seed=3)
        assert f.sha256 == hashlib.sha256(f.data).hexdigest()
        assert f.content_sha1 == git_blob_sha1(f.data)

    def test_git_blob_id_and_lfs_pointer(self):
        # `printf 'hello world' | git hash-object --stdin`
        assert git_blob_sha1(HELLO) == "95d09f2b10159347eece71399a7e2e907ea3df4f"
        small = FakeFile("README.md", HELLO, lfs=False)
        assert small.blob_id == "95d09f2b10159347eece71399a7e2e907ea3df4f"
        lfs = FakeFile("m.bin", HELLO, lfs=True)
        assert lfs.pointer == lfs_pointer(lfs.sha256, 11)
        assert lfs.pointer.startswith(b"version https://git-lfs.github.com/spec/v1\noid sha256:")
        assert lfs.blob_id == git_blob_sha1(lfs.pointer)

    def test_large_files_are_not_materialised(self):
        f = FakeFile("huge.bin", size=1 << 40)  # 1 TiB costs nothing until read
        assert len(f.read((1 << 40) - 4, 100)) == 4
        with pytest.raises(MemoryError):
            _ = f.data

    def test_argument_validation(self):
        with pytest.raises(ValueError):
            FakeFile("x")
        with pytest.raises(ValueError):
            FakeFile("x", data=b"ab", size=3)
        with pytest.raises(ValueError):
            FakeFile("x", size=2, prefix=b"abc")


class TestSafetensors:
    @pytest.mark.parametrize("size", [80, 100, 1000, 4097])
    def test_make_safetensors_exact_size_and_valid(self, size):
        data = make_safetensors(size, seed=1)
        assert len(data) == size
        _parse_safetensors(data)
        assert (8 + struct.unpack("<Q", data[:8])[0]) % 8 == 0  # header padded to 8 bytes

    def test_too_small(self):
        with pytest.raises(ValueError):
            make_safetensors(20)

    def test_large_generated_safetensors(self):
        f = FakeFile.safetensors("big.safetensors", 5 * BLOCK + 3, seed=4, metadata={"format": "pt"})
        assert f.size == 5 * BLOCK + 3
        prefix = safetensors_prefix(f.size, {"format": "pt"})
        assert f.read(0, len(prefix)) == prefix
        header = _parse_safetensors(f.read(0, len(prefix)) + b"\0" * (f.size - len(prefix)))
        assert header["__metadata__"] == {"format": "pt"}
        assert hashes.autov3(f, full=True) == hashlib.sha256(f.read(len(prefix), f.size)).hexdigest().upper()


class TestContractVectors:
    def test_hello_world(self):
        h = hashes.civitai_hashes(HELLO)
        assert h["SHA256"].startswith("B94D27B9934D3E08")
        assert h["AutoV2"] == "B94D27B993"
        assert "AutoV1" not in h and hashes.autov1(HELLO) is None  # Civitai: null below 2 MiB
        assert hashes.autov1_a1111(HELLO) == "e3b0c442"
        assert h["CRC32"] == "85114A0D"
        assert f"{zlib.crc32(HELLO):08X}" == "0D4A1185"  # the byte-reversed zlib order
        assert "AutoV3" not in h  # not safetensors

    def test_tiny_safetensors(self):
        assert len(TINY_ST) == 66
        h = hashes.civitai_hashes(TINY_ST)
        assert h["SHA256"].startswith("79704046079ABF4A")
        assert h["AutoV2"] == "7970404607"
        assert h["CRC32"] == "DA9F46F0"
        assert h["AutoV3"] == "E00E5EB94441"
        assert hashes.autov3(TINY_ST, full=True).startswith("E00E5EB94441")
        assert hashes.autov1_a1111(TINY_ST) == "e3b0c442"

    def test_two_mib_pattern(self):
        f = FakeFile("pattern.bin", TWO_MIB)
        assert hashes.autov2(f) == "91D3BEB88A"
        assert hashes.autov1(f) == "7DACA209"
        assert hashes.autov1_a1111(f) == "7daca209"
        assert hashes.crc32_civitai(f) == "A404A9F2"

    def test_blake3(self):
        if not hashes.HAS_BLAKE3:
            assert "BLAKE3" not in hashes.civitai_hashes(HELLO) and hashes.blake3_hex(HELLO) is None
            pytest.skip("blake3 module not installed: BLAKE3 is omitted")
        assert hashes.blake3_hex(HELLO).startswith("D74981EFA70A0C88")
        assert hashes.blake3_hex(TINY_ST).startswith("AF45B7539632ACCC")

    def test_generated_file_hashes_match_materialised_bytes(self):
        f = FakeFile("g.safetensors", size=3 * BLOCK, seed=11, prefix=safetensors_prefix(3 * BLOCK))
        assert hashes.civitai_hashes(f) == hashes.civitai_hashes(f.data)
