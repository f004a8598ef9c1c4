"""A `tritonserver` process on a model repository: started, waited for with a deadline, stopped cleanly.

A Python-backend stub that cannot start leaves the server "loading" for ever, so readiness is awaited with a
deadline and a failure reports the end of the server's log. Stopping sends SIGTERM: Triton then waits for
unfinished sequences up to ``--exit-timeout-secs`` and exits; past that (and a grace period) it is killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from dff.errors import DFFError
from dff.serve.environment import InstalledServer, ServerEnvironment


#: Errors a server without a usable GPU always logs; they hide the one that matters.
_NOISE = ("CudaDriverHelper", "NVML", "DCGM")


class ServerError(DFFError):
    """The server did not start, did not become ready in time, or exited."""


@dataclass(frozen=True)
class Endpoints:
    """Where a server listens."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002

    @property
    def grpc(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def metrics(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @classmethod
    def free(cls, host: str = "127.0.0.1") -> Endpoints:
        """Three ports free on ``host`` now (the OS picks them)."""
        sockets = [socket.socket() for _ in range(3)]
        try:
            for s in sockets:
                s.bind((host, 0))
            http, grpc, metrics = (s.getsockname()[1] for s in sockets)
        finally:
            for s in sockets:
                s.close()
        return cls(host, http, grpc, metrics)


class TritonServer:
    """``tritonserver`` from ``environment`` serving ``repository`` at ``endpoints``; a context manager."""

    def __init__(
        self,
        repository: str | Path,
        *,
        environment: ServerEnvironment | InstalledServer,
        endpoints: Endpoints = Endpoints(),
        exit_timeout_s: int = 5,
        log_path: str | Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.repository = Path(repository)
        self.environment = environment
        self.endpoints = endpoints
        self.exit_timeout_s = exit_timeout_s
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkdtemp(prefix="dff-triton-")) / "tritonserver.log"
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None
        self._log_start = 0

    def command(self) -> list[str]:
        e, backends = self.endpoints, self.environment.backend_directory
        return [
            str(self.environment.tritonserver),
            f"--model-repository={self.repository.resolve()}",
            *([f"--backend-directory={backends}"] if backends is not None else []),
            f"--http-address={e.host}",
            f"--http-port={e.http_port}",
            f"--grpc-address={e.host}",
            f"--grpc-port={e.grpc_port}",
            f"--metrics-address={e.host}",
            f"--metrics-port={e.metrics_port}",
            "--allow-cpu-metrics=true",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            *self.extra_args,
        ]

    def start(self, *, ready_timeout_s: float = 60.0) -> TritonServer:
        """Start the server and wait until it and its models are ready; ServerError with its log's end otherwise."""
        if not self.repository.is_dir():
            raise ServerError(
                f"model repository {self.repository} does not exist: write one with `dff triton EXPORT --out {self.repository}`"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # appended to: a log the user named keeps its earlier runs
            self._log_start = log.tell()
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment.process_environment(),
                start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop the server in order
            )
        try:
            self.wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(
                    f"tritonserver exited with status {self.process.returncode} before it was ready; "
                    f"the end of its log {self.log_path}: {self.log_tail()}"
                )
            if self.ready():
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    f"tritonserver was not ready after {timeout_s:g} s (a model still loading: its Python-backend "
                    f"stub may not start); the end of its log {self.log_path}: {self.log_tail()}"
                )
            time.sleep(0.1)

    def ready(self) -> bool:
        """Whether the server and all its models are ready (HTTP /v2/health/ready)."""
        try:
            with urllib.request.urlopen(f"{self.endpoints.http}/v2/health/ready", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 6) -> str:
        """This run's error lines (Triton's start with E), else its last lines, joined on one line."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_start)
                text = log.read().decode(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [line for line in text if (line.startswith("E") or "rror" in line) and not any(n in line for n in _NOISE)]
        return " | ".join(line.strip() for line in (errors or text)[-lines:]) or "(empty)"

    def stop(self, *, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then wait up to the exit timeout and ``grace_s``; SIGKILL past that. The exit status."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(self.exit_timeout_s + grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the stubs go with it
            return process.wait()

    def __enter__(self) -> TritonServer:
        return self if self.process is not None else self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
