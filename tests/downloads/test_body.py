"""downloads/body.py: a download connection receives up to RECV_SIZE bytes at a time.

Against a real loopback server: the bytes are already waiting in the socket when the body is read,
so one receive returns as much as it asks for.
"""
from __future__ import annotations

import asyncio
import statistics

from aiohttp import web

from comfyui_model_resolver.downloads.body import RECV_SIZE, widen_receive
from comfyui_model_resolver.upstream import open_session

BODY = bytes(range(256)) * (32 * 1024)  # 8 MiB


async def _serve():
    async def handler(request):
        return web.Response(body=BODY, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/blob", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/blob"


async def _chunks(widen: bool) -> list[int]:
    runner, url = await _serve()
    session = open_session(downloads=True, read_bufsize=RECV_SIZE)
    try:
        async with session.get(url) as resp:
            if widen:
                widen_receive(resp)
            sizes, got = [], bytearray()
            await asyncio.sleep(0.3)  # let the server fill the socket buffers
            while chunk := await resp.content.readany():
                sizes.append(len(chunk))
                got += chunk
            assert bytes(got) == BODY
            return sizes
    finally:
        await session.close()
        await runner.cleanup()


async def test_a_widened_connection_receives_more_than_asyncios_256_kib_at_a_time():
    # asyncio receives transport.max_size bytes per call (256 KiB by default); with the bytes already
    # waiting in the socket, each of our reads gets a whole widened receive (or more, joined)
    widened = await _chunks(widen=True)
    assert len(widened) > 1
    assert statistics.median(widened) > 256 * 1024


async def test_widening_is_idempotent_and_never_shrinks_a_larger_setting():
    runner, url = await _serve()
    session = open_session(downloads=True, read_bufsize=RECV_SIZE)
    try:
        async with session.get(url) as resp:
            transport = resp.connection.transport
            widen_receive(resp)
            widen_receive(resp)
            assert transport.max_size == RECV_SIZE
            transport.max_size = 2 * RECV_SIZE
            widen_receive(resp)
            assert transport.max_size == 2 * RECV_SIZE
            await resp.read()
            widen_receive(resp)  # the connection went back to the pool: nothing to widen, no error
    finally:
        await session.close()
        await runner.cleanup()
