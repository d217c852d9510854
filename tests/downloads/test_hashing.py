"""The SHA-256 is computed from the written buffers in file order: no read-back for a fresh
download (single stream or segmented), read-back only for bytes it was not given (resume) or could
not keep (beyond the hold budget), and writers wait when hashing falls behind."""
from __future__ import annotations

import asyncio
import hashlib
import os
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from comfyui_model_resolver.downloads import transfer
from comfyui_model_resolver.downloads.hashing import OrderedHasher
from comfyui_model_resolver.downloads.partfile import PartFile
from comfyui_model_resolver.types import DownloadRequest, DownloadState
from support.downloads import sha256_of

MiB = 1 << 20


def chunks_of(data: bytes, size: int) -> list[tuple[int, bytes]]:
    return [(o, data[o:o + size]) for o in range(0, len(data), size)]


async def hash_written(tmp_path, data: bytes, order: list[tuple[int, bytes]], *, hold_budget: int,
                       on_disk_before: int = 0) -> OrderedHasher:
    """Write `order` (offset, bytes) to a part file, offering each buffer after its write the way
    the downloader does, and advancing the written prefix; bytes [0, on_disk_before) are on disk
    already (a resume) and never offered."""
    part = PartFile(str(tmp_path / "f.part"))
    with ThreadPoolExecutor(2) as pool:
        h = OrderedHasher(part, pool, hold_budget=hold_budget)
        h.start()
        try:
            if on_disk_before:
                part.write_at(0, data[:on_disk_before])
            written = [(0, on_disk_before)] if on_disk_before else []
            for off, b in order:
                part.write_buffers(off, [b[: len(b) // 2], b[len(b) // 2:]])
                h.offer(off, [b], len(b))
                written.append((off, off + len(b)))
                written.sort()
                prefix = 0
                for a, e in written:
                    if a > prefix:
                        break
                    prefix = max(prefix, e)
                h.advance_to(prefix)
                await asyncio.sleep(0)
            await h.wait_until(len(data))
            assert h.held_bytes == 0
            return h
        finally:
            await h.close()
            await part.aclose()


async def test_in_order_buffers_are_hashed_without_reading_back(tmp_path):
    data = random.Random(1).randbytes(5 * MiB + 123)
    h = await hash_written(tmp_path, data, chunks_of(data, 256 * 1024), hold_budget=MiB)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    assert h.read_back == 0


async def test_out_of_order_pieces_within_the_budget_are_kept_not_read_back(tmp_path):
    data = random.Random(2).randbytes(4 * MiB)
    pieces = chunks_of(data, 512 * 1024)
    order = pieces[1::2] + pieces[0::2]  # every odd piece first, as a second connection would
    h = await hash_written(tmp_path, data, order, hold_budget=8 * MiB)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    assert h.read_back == 0


async def test_pieces_beyond_the_budget_are_read_back_and_the_hash_is_still_right(tmp_path):
    data = random.Random(3).randbytes(4 * MiB)
    pieces = chunks_of(data, 512 * 1024)
    order = list(reversed(pieces))  # the whole file arrives before its first byte
    h = await hash_written(tmp_path, data, order, hold_budget=MiB)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    assert 0 < h.read_back <= len(data) - MiB


async def test_a_resume_reads_back_only_the_bytes_from_the_earlier_run(tmp_path):
    data = random.Random(4).randbytes(3 * MiB)
    before = MiB + 4096
    rest = [(o, data[o:o + 300_000]) for o in range(before, len(data), 300_000)]
    h = await hash_written(tmp_path, data, rest, hold_budget=MiB, on_disk_before=before)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    assert h.read_back == before


async def test_writers_wait_while_the_hash_is_behind(tmp_path):
    part = PartFile(str(tmp_path / "g.part"))
    with ThreadPoolExecutor(1) as pool:
        h = OrderedHasher(part, pool)
        blob = os.urandom(MiB)
        part.write_at(0, blob)
        h.offer(0, [blob], MiB)
        h.advance_to(MiB)  # the hash task is not started: the backlog cannot shrink
        waiter = asyncio.ensure_future(h.drain(limit=MiB // 2))
        await asyncio.sleep(0.05)
        assert not waiter.done() and h.backlog == MiB
        h.start()
        await asyncio.wait_for(waiter, 10)
        assert h.backlog <= MiB // 2
        await h.wait_until(MiB)
        assert h.hexdigest() == hashlib.sha256(blob).hexdigest() and h.read_back == 0
        await h.close()
        await part.aclose()


@pytest.mark.parametrize("segments", [1, 4])
async def test_a_fresh_download_is_verified_without_reading_the_file_back(env, monkeypatch, segments):
    hashers: list[OrderedHasher] = []

    class Recording(OrderedHasher):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            hashers.append(self)

    monkeypatch.setattr(transfer, "OrderedHasher", Recording)
    f = env.add(size=6 * MiB + 777)
    m = env.manager(env.with_settings(segments=segments))  # segments above 1 MiB in tests
    job = await m.submit(DownloadRequest(url=env.url("model.safetensors"), folder="checkpoints"))
    done = await m.wait(job.id, timeout=60)
    assert done.state == DownloadState.completed, done.error
    assert done.sha256 == f.sha256 == sha256_of(env.final())
    assert len(hashers) == 1 and hashers[0].read_back == 0
    if segments > 1:
        starts = [r["range"] for r in env.hub.requests(server="cdn") if r["method"] == "GET"]
        assert len(starts) > 1  # it really was fetched over several ranges
