"""Real processes for the live tests: daphne serving tests.asgi, and a Celery worker.

Both share the test run's database and a Redis (broker, result backend and channel
layer), as a deployed site's processes do.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.db import connection

from django_remote_submission.testing import free_port

ROOT = Path(__file__).resolve().parent.parent


class LiveStack:
    def __init__(self, redis_url: str, directory: Path) -> None:
        self.redis_url = redis_url
        self.directory = directory
        self.queue = f"drs-live-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DRS_", "PYTEST_", "REQUIRE_SERVICES"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            DRS_DATABASE_NAME=str(connection.settings_dict["NAME"]),
            DRS_REDIS_URL=self.redis_url,
            DRS_CELERY_QUEUE=self.queue,
            DRS_CHANNEL_PREFIX=f"drs-{self.queue}",
            PYTHONPATH=str(ROOT),
        )
        return env

    def start(self, *, worker: bool = True, server: bool = True) -> LiveStack:
        self.directory.mkdir(parents=True, exist_ok=True)
        if server and "daphne" not in self.processes:
            self._spawn(
                "daphne",
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                 "tests.asgi:application"],
            )  # fmt: skip
            self._wait_for_port()
        if worker and "worker" not in self.processes:
            self._spawn(
                "worker",
                [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
                 "-P", "solo", "-c", "1", "-Q", self.queue, "--without-gossip",
                 "--without-mingle", "--without-heartbeat", "-l", "INFO"],
            )  # fmt: skip
            self._wait_for_log("worker", b"ready")
        return self

    def start_worker(
        self, name: str, *, pool: str = "threads", concurrency: int = 4, **env: str
    ) -> subprocess.Popen[bytes]:
        """One more worker on the stack's queue, in a session of its own (so that a test
        can kill it with all its pool processes, as a deploy or the OOM killer would)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._spawn(
            name,
            [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
             "-P", pool, "-c", str(concurrency), "-Q", self.queue, "-n", f"{name}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
            env=env,
            new_session=True,
        )  # fmt: skip
        self._wait_for_log(name, b"ready")
        return self.processes[name]

    def kill(self, name: str) -> None:
        """SIGKILL a worker and every process of its session, and forget it."""
        import signal

        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def _spawn(
        self,
        name: str,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        new_session: bool = False,
    ) -> None:
        with (self.directory / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**self.environment, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
            )

    def log(self, name: str) -> bytes:
        path = self.directory / f"{name}.log"
        return path.read_bytes() if path.exists() else b""

    def _wait_for_port(self) -> None:
        import socket

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self._check_alive("daphne")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not listen: {self.log('daphne')[-2000:]!r}")

    def _wait_for_log(self, name: str, marker: bytes) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            self._check_alive(name)
            if marker in self.log(name):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start: {self.log(name)[-2000:]!r}")

    def _check_alive(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}): {self.log(name)[-3000:]!r}")

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def websocket_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"
