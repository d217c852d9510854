"""A real nginx on loopback serving files at a capped rate per connection (`limit_rate`), with an
access log that says how many body bytes each request got. Skips the test without nginx."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .redis_server import free_port

CONF = """
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    log_format served '$request_uri $status $body_bytes_sent "$http_range"';
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    default_type application/octet-stream;
    sendfile off;
    server {{
        listen 127.0.0.1:{port};
        access_log {dir}/access.log served;
        root {root};
        limit_rate {rate};
    }}
}}
"""


class Nginx:
    def __init__(self, workdir: Path, *, rate_bytes: int) -> None:
        exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if exe is None:
            pytest.skip("nginx is not installed (apt-get install nginx)")
        self.exe = exe
        self.dir = workdir
        self.root = workdir / "files"
        (workdir / "tmp").mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.rate = rate_bytes
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Nginx":
        # As root, nginx's workers would drop to "nobody", which cannot read pytest's 0700 tmp dirs.
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = self.dir / "nginx.conf"
        conf.write_text(CONF.format(user=user, dir=self.dir, port=self.port, root=self.root, rate=self.rate))
        self.proc = subprocess.Popen([self.exe, "-c", str(conf), "-p", str(self.dir), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    pytest.skip(f"nginx did not start: {err.strip()[:300]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start on port {self.port}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def served(self, name: str) -> list[tuple[int, int, str]]:
        """(status, body bytes sent, Range header) of every request for /<name>, oldest first."""
        log = self.dir / "access.log"
        if not log.exists():
            return []
        out = []
        for line in log.read_text().splitlines():
            uri, status, sent, rng = line.split(" ", 3)
            if uri == "/" + name:
                out.append((int(status), int(sent), rng.strip('"')))
        return out

    def bytes_served(self, name: str) -> int:
        return sum(sent for _, sent, _ in self.served(name))
