"""Benchmark: from a line printed on the server to its frame at a websocket client.

A Celery worker process runs jobs over the private OpenSSH server, daphne serves the
consumers, Redis carries tasks and events; the client is logged in with a session
cookie, as a browser is. Each line carries the time it was printed; the client notes
when its frame arrives (same machine, same clock). Run with `make bench` (as root).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import prepare, start_server

WORK = prepare("ws")

import websockets  # noqa: E402
from celery import Celery  # noqa: E402
from django.test import Client  # noqa: E402

from django_remote_submission.models import Job  # noqa: E402
from django_remote_submission.tasks import submit_job_to_server  # noqa: E402
from django_remote_submission.testing import RedisServer  # noqa: E402
from tests.live import LiveStack  # noqa: E402

QUIET = """
import time
for i in range(100):
    print(repr(time.time()), flush=True)
    time.sleep(0.1)
"""
CHATTY = """
import sys, time
start = time.time()
for i in range(50000):
    sys.stdout.write(repr(time.time()) + "\\n")
    if i % 100 == 99:
        sys.stdout.flush()
        time.sleep(max(0.0, start + (i + 1) / 10000 - time.time()))
"""


def percentiles(delays: list[float]) -> str:
    cuts = statistics.quantiles(delays, n=100)
    return (
        f"p50 {1000 * statistics.median(delays):6.1f} ms, p95 {1000 * cuts[94]:6.1f} ms, "
        f"p99 {1000 * cuts[98]:6.1f} ms ({len(delays):,} lines)"
    )


class Bench:
    def __init__(self) -> None:
        self.sshd, self.account, self.owner, self.server, self.interpreter = start_server(WORK)
        self.redis = RedisServer().start()
        self.stack = LiveStack(self.redis.url, WORK / "stack").start()
        client = Client()
        client.force_login(self.owner)
        self.cookie = f"sessionid={client.cookies['sessionid'].value}"
        self.celery = Celery("drs-bench-client", broker=self.redis.url, set_as_current=False)
        self.celery.conf.update(task_serializer="json", result_backend=self.redis.url)

    def submit(self, program: str) -> Job:
        from django.db import connection

        job = Job.objects.create(
            title="bench",
            program=program,
            remote_directory=f"{self.account.remote_directory}/bench-ws",
            remote_filename="bench.py",
            owner=self.owner,
            server=self.server,
            interpreter=self.interpreter,
        )
        connection.close()  # this runs in a thread of its own
        return job

    async def measure(self, program: str, batch: bool) -> list[float]:
        job = await asyncio.to_thread(self.submit, program)
        delays: list[float] = []
        url = self.stack.websocket_url(f"/ws/job-log/{job.pk}/" + ("?batch=1" if batch else ""))
        async with websockets.connect(
            url,
            additional_headers={"Cookie": self.cookie},
            origin=self.stack.origin,
            max_size=None,
        ) as socket:
            await asyncio.to_thread(self._send, job)
            while True:
                frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=120))
                arrived = time.time()
                rows = frame if isinstance(frame, list) else [frame]
                for row in rows:
                    if row.get("event") == "log" and row["stream"] == "stdout":
                        delays.append(arrived - float(row["content"]))
                if isinstance(frame, dict) and frame.get("event") == "status" and frame["finished"]:
                    return delays

    def _send(self, job: Job) -> None:
        from django.db import connection

        task = self.celery.tasks[submit_job_to_server.name]
        task.apply_async(
            kwargs={
                "job_pk": job.pk,
                "password": self.account.password,
                "username": self.account.username,
            },
            queue=self.stack.queue,
        )
        connection.close()  # this runs in a thread of its own

    def close(self) -> None:
        self.stack.stop()
        self.redis.stop()
        self.sshd.stop()


def main() -> None:
    bench = Bench()
    print("django-remote-submission websocket latency (printed on the server -> frame at client)")
    try:
        for name, program, batch in [
            ("quiet: 1 line / 100 ms", QUIET, False),
            ("10,000 lines/s, a frame per line", CHATTY, False),
            ("10,000 lines/s, ?batch=1", CHATTY, True),
        ]:
            delays = asyncio.run(bench.measure(program, batch))
            print(f"  {name:<36} {percentiles(delays)}", flush=True)
    finally:
        bench.close()


if __name__ == "__main__":
    main()
