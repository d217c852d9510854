"""Lifecycle shared by the fakes: several aiohttp apps on loopback ports, async or in a thread.

A fake declares its servers as ``(name, advertised_hostname)`` pairs, e.g.
``("hub", "127.0.0.1"), ("cdn", "localhost")``. Every server binds to
``127.0.0.1`` on a free port; its base URL uses the advertised hostname, so the
CDN is a *different host* from the Hub's point of view (contract A.6.3). For a
``localhost`` server the same port is also bound on ``::1`` when possible.

Use from async tests::

    hub = FakeHub(); await hub.start(); ...; await hub.stop()   # or: async with FakeHub() as hub

or from sync code (own event loop in a daemon thread)::

    with FakeHub.running_in_thread() as hub: ...

Data-mutating methods of the fakes take ``self._lock`` so they can be called
from the test thread while the loop thread serves requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import socket
import threading
from collections.abc import Iterator
from urllib.parse import quote, urlencode

from aiohttp import web

from .reqlog import RequestLog, log_middleware
from .switches import Knobs, Switch, SwitchBoard

__all__ = ["SERVER_NAME", "FakeService", "UrlSigner"]

SERVER_NAME = web.AppKey("server_name", str)  # which of the fake's servers an app is ("hub", "cdn"...)


class UrlSigner:
    """HMAC signatures over a path + query, standing in for CloudFront/S3 pre-signed URLs."""

    def __init__(self, param: str = "sig") -> None:
        self.param = param
        self._key = secrets.token_bytes(32)

    def _mac(self, path: str, items: list[tuple[str, str]]) -> str:
        canonical = path + "?" + urlencode(sorted((k, v) for k, v in items if k != self.param))
        return hmac.new(self._key, canonical.encode(), hashlib.sha256).hexdigest()

    def sign(self, path: str, params: list[tuple[str, str]]) -> str:
        """Query string (without ``?``) for ``path`` including the signature parameter."""
        return urlencode([*params, (self.param, self._mac(path, params))], quote_via=quote, safe="")

    def verify(self, path: str, items: list[tuple[str, str]]) -> bool:
        given = [v for k, v in items if k == self.param]
        return len(given) == 1 and hmac.compare_digest(given[0], self._mac(path, items))


class FakeService:
    """Base class: owns the request log, the switchboard and the servers' lifecycle."""

    SERVERS: tuple[tuple[str, str], ...] = ()
    SHUTDOWN_TIMEOUT = 0.5  # seconds in-flight handlers (stalls!) get when the fake stops

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.log = RequestLog()
        self.switches = SwitchBoard()
        self.urls: dict[str, str] = {}
        self._runners: list[web.AppRunner] = []

    # -- subclass hooks --------------------------------------------------------------

    def _routes(self, server: str, app: web.Application) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- switches and log --------------------------------------------------------------

    def switch(self, target: str | int | None = None, *, on: str | None = None, times: int | None = None, **knobs) -> Switch:
        """Add a failure switch (see :mod:`fakes.switches`); returns it (``.fired``, ``.remaining``)."""
        return self.switches.add(self._switch_target(target), on=on, times=times, **knobs)

    def _switch_target(self, target):
        return target

    def clear_switches(self) -> None:
        self.switches.clear()

    def _take(self, request: web.Request, keys, applicable) -> Knobs:
        return self.switches.take(keys, request.app[SERVER_NAME], applicable)

    def reset_log(self) -> None:
        self.log.reset()

    def requests(self, path_prefix: str | None = None, **criteria) -> list[dict]:
        """Logged requests, optionally filtered (see :meth:`RequestLog.filter`)."""
        return self.log.filter(path_prefix, **criteria)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return bool(self._runners)

    async def start(self) -> tuple[str, ...]:
        """Bind every server on a free loopback port; returns their base URLs in declaration order."""
        if self._runners:
            raise RuntimeError("already started")
        for name, hostname in self.SERVERS:
            app = web.Application(middlewares=[log_middleware(self.log, name)])
            app[SERVER_NAME] = name
            self._routes(name, app)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.SHUTDOWN_TIMEOUT)
            await runner.setup()
            self._runners.append(runner)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            await web.SockSite(runner, sock).start()
            if hostname == "localhost":
                await self._also_bind_ipv6(runner, port)
            self.urls[name] = f"http://{hostname}:{port}"
        return tuple(self.urls[name] for name, _ in self.SERVERS)

    @staticmethod
    async def _also_bind_ipv6(runner: web.AppRunner, port: int) -> None:
        try:
            sock6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock6.bind(("::1", port))
        except OSError:
            return  # no IPv6 loopback or port taken: clients fall back to 127.0.0.1
        await web.SockSite(runner, sock6).start()

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator:
        """Run this fake on its own event loop in a daemon thread for the ``with`` block."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name=f"{type(self).__name__}-loop", daemon=True)
        thread.start()
        ready.wait()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=30)
            yield self
        finally:
            try:
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=30)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=30)
                loop.close()

    @classmethod
    @contextlib.contextmanager
    def running_in_thread(cls, *args, **kwargs) -> Iterator:
        """``with FakeX.running_in_thread(...) as fake:`` — construct, start in a thread, stop."""
        fake = cls(*args, **kwargs)
        with fake.in_thread():
            yield fake
