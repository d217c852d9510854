"""Prometheus metrics in the text exposition format (no client library: a few counters suffice).

* Route latency and counts: every call of a shared route, over HTTP or from the in-process Gradio UI
  (`cmr_route_duration_seconds{route="resolve"}` is the resolve latency).
* Downloads: jobs by state from `resolver.downloads.jobs()`; completed/failed totals and bytes
  transferred from the progress events on `resolver.events`.
* Process (psutil, when installed) and the free space where models land.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections import defaultdict
from typing import Any, Iterable

log = logging.getLogger(__name__)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TERMINAL = {"completed", "failed", "cancelled"}
_ACTIVE = {"queued", "running", "verifying"}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _state(obj: Any) -> str:
    state = getattr(obj, "state", None)
    if state is None and isinstance(obj, dict):
        state = obj.get("state")
    return str(getattr(state, "value", state))


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Histogram:
    __slots__ = ("counts", "total", "n")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.n += 1
        self.total += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.latency: dict[str, _Histogram] = defaultdict(_Histogram)
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.finished: dict[str, int] = defaultdict(int)  # completed / failed / cancelled totals
        self.bytes_total = 0
        self._bytes_seen: dict[str, int] = {}
        self._terminal: dict[str, str] = {}
        self._task: asyncio.Task | None = None

    # ---- recording -----------------------------------------------------------------------
    def observe(self, route: str, status: int, seconds: float) -> None:
        self.latency[route].observe(seconds)
        self.requests[(route, status)] += 1

    def on_progress(self, event: Any) -> None:
        job_id = getattr(event, "job_id", None)
        if job_id is None:
            return
        done = int(getattr(event, "bytes_done", 0) or 0)
        last = self._bytes_seen.get(job_id, 0)
        if done > last:
            self.bytes_total += done - last
        state = _state(event)
        if state in _TERMINAL:
            self._bytes_seen.pop(job_id, None)
            if self._terminal.get(job_id) != state:
                self._terminal[job_id] = state
                self.finished[state] += 1
            if len(self._terminal) > 100_000:  # bounded memory on very long runs
                self._terminal.pop(next(iter(self._terminal)))
        else:
            self._bytes_seen[job_id] = done
            self._terminal.pop(job_id, None)

    def start(self, events: Any) -> None:
        """Follow the progress events of `events` (an EventBus) until `stop()` or the bus closes."""
        sub = events.subscribe(maxsize=10_000)

        async def follow() -> None:
            try:
                async for event in sub:
                    self.on_progress(event)
            finally:
                sub.close()

        self._task = asyncio.get_running_loop().create_task(follow(), name="cmr-metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, StopAsyncIteration):
                pass
            self._task = None

    # ---- exposition ----------------------------------------------------------------------
    def render(self, resolver: Any, *, version: str) -> str:
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: Iterable[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {_num(value)}")

        metric("cmr_build_info", "gauge", "Version of the resolver.", [(f'{{version="{_label(version)}"}}', 1)])
        metric("cmr_uptime_seconds", "gauge", "Seconds since the app started.", [("", time.time() - self.started)])

        jobs = _jobs(resolver)
        by_state: dict[str, int] = defaultdict(int)
        for job in jobs or ():
            by_state[_state(job)] += 1
        states = ("queued", "running", "paused", "verifying", "completed", "failed", "cancelled")
        metric("cmr_downloads", "gauge", "Download jobs known to the manager, by state.",
               [(f'{{state="{s}"}}', by_state.get(s, 0)) for s in states])
        metric("cmr_downloads_active", "gauge", "Downloads queued, running or verifying.",
               [("", sum(by_state.get(s, 0) for s in _ACTIVE))])
        metric("cmr_downloads_completed_total", "counter", "Downloads completed and verified since start.",
               [("", self.finished.get("completed", 0))])
        metric("cmr_downloads_failed_total", "counter", "Downloads that failed since start.",
               [("", self.finished.get("failed", 0))])
        metric("cmr_downloads_cancelled_total", "counter", "Downloads cancelled since start.",
               [("", self.finished.get("cancelled", 0))])
        metric("cmr_download_bytes_total", "counter", "Bytes downloaded since start.", [("", self.bytes_total)])
        metric("cmr_downloads_available", "gauge", "1 when this build has the download manager.",
               [("", 0 if jobs is None else 1)])
        events = getattr(resolver, "events", None)
        metric("cmr_event_subscribers", "gauge", "Progress subscribers (SSE clients, UI, metrics).",
               [("", getattr(events, "subscriber_count", 0))])

        metric("cmr_route_requests_total", "counter", "Calls of the shared routes, by route and status.",
               [(f'{{route="{_label(r)}",status="{s}"}}', n) for (r, s), n in sorted(self.requests.items())])
        out.append("# HELP cmr_route_duration_seconds Latency of the shared routes (resolve latency: route=\"resolve\").")
        out.append("# TYPE cmr_route_duration_seconds histogram")
        for route, h in sorted(self.latency.items()):
            lab = _label(route)
            for bound, count in zip(BUCKETS, h.counts):
                out.append(f'cmr_route_duration_seconds_bucket{{route="{lab}",le="{bound}"}} {count}')
            out.append(f'cmr_route_duration_seconds_bucket{{route="{lab}",le="+Inf"}} {h.n}')
            out.append(f'cmr_route_duration_seconds_sum{{route="{lab}"}} {_num(h.total)}')
            out.append(f'cmr_route_duration_seconds_count{{route="{lab}"}} {h.n}')

        root = _models_root(resolver)
        if root is not None:
            try:
                usage = shutil.disk_usage(root)
            except OSError:
                usage = None
            if usage is not None:
                lab = f'{{path="{_label(root)}"}}'
                metric("cmr_models_disk_free_bytes", "gauge", "Free bytes where models land.", [(lab, usage.free)])
                metric("cmr_models_disk_total_bytes", "gauge", "Size of the models filesystem.", [(lab, usage.total)])
        out.extend(_process_metrics())
        return "\n".join(out) + "\n"


def _num(value: float) -> str:
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def _jobs(resolver: Any) -> list | None:
    downloads = getattr(resolver, "downloads", None)
    if downloads is None:
        return None
    try:
        return list(downloads.jobs())
    except Exception:  # noqa: BLE001 - metrics never fail a scrape
        log.exception("could not list download jobs for metrics")
        return None


def _models_root(resolver: Any) -> str | None:
    layout = getattr(resolver, "layout", None)
    root = getattr(layout, "models_root", None)
    return str(root) if root else None


def _process_metrics() -> list[str]:
    try:
        import psutil
    except ImportError:
        return ["# psutil is not installed: install the 'monitor' extra for process metrics"]
    p = psutil.Process()
    with p.oneshot():
        mem = p.memory_info()
        cpu = p.cpu_times()
        lines = [
            "# HELP process_resident_memory_bytes Resident memory size in bytes.",
            "# TYPE process_resident_memory_bytes gauge",
            f"process_resident_memory_bytes {mem.rss}",
            "# HELP process_virtual_memory_bytes Virtual memory size in bytes.",
            "# TYPE process_virtual_memory_bytes gauge",
            f"process_virtual_memory_bytes {mem.vms}",
            "# HELP process_cpu_seconds_total Total user and system CPU time in seconds.",
            "# TYPE process_cpu_seconds_total counter",
            f"process_cpu_seconds_total {_num(cpu.user + cpu.system)}",
            "# HELP process_start_time_seconds Start time of the process since the epoch in seconds.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {_num(p.create_time())}",
            "# HELP process_threads Number of OS threads.",
            "# TYPE process_threads gauge",
            f"process_threads {p.num_threads()}",
        ]
        try:
            lines += ["# HELP process_open_fds Number of open file descriptors.", "# TYPE process_open_fds gauge",
                      f"process_open_fds {p.num_fds()}"]
        except (AttributeError, psutil.Error):  # Windows has no num_fds
            pass
    return lines
