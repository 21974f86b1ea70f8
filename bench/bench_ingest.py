"""Benchmark: one job's output into the database, on SQLite and on PostgreSQL.

Run with `make bench` (or on its own: it needs no SSH server). The bytes a program
printing "line N of the benchmark output" would write go through what the runner does
with them: a LineSplitter per stream, then a LogWriter with the default settings and
LOG_LIVE, in reads of 32 KiB. Prints one table; nothing here asserts anything.
The server's CPU time is that of the PostgreSQL backend serving the benchmark, when it
runs on this host (read from /proc); elsewhere, and for SQLite, it is left out.
`--repeat N` runs everything N times (each run its own rows).

PostgreSQL is reached at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/
postgres), where a scratch database is made and dropped; without it, that row says so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
SCRATCH = "drs_bench_ingest"
READ_SIZE = 32 * 1024
SIZES = (100_000, 1_000_000)
PATHS = ("runner", "follower")


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu() -> float | None:
    """CPU seconds used so far by the PostgreSQL backend of this connection, if local."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(n: int, path: str) -> dict[str, Any]:
    """One job's n lines through LineSplitter and LogWriter, in this process.

    ``path`` "runner": the writer stores each batch at once, as the worker that launched
    a job does (and a direct call). "follower": the writes of each pass of the follower's
    reader (at most PASS_CAP bytes) go to ``store_writes`` together, as a job's output
    is stored once a worker's follower has taken it over."""
    from django.utils import timezone

    from django_remote_submission.conf import conf
    from django_remote_submission.follower import PASS_CAP
    from django_remote_submission.logstream import (
        LineSplitter,
        LogPolicy,
        LogWriter,
        PendingWrite,
        store_writes,
    )
    from django_remote_submission.models import Job, Log
    from tests.factories import make_job, make_server, make_user

    output = b"".join(b"line %d of the benchmark output\n" % i for i in range(n))
    job = make_job(owner=make_user(f"ingest-{path}-{n}"), server=make_server())
    owner = f"bench:{path}"
    Job.objects.filter(pk=job.pk).update(lease_owner=owner)
    writes: list[PendingWrite] = []
    writer = LogWriter(
        job,
        LogPolicy.LOG_LIVE,
        batch_lines=conf.LOG_BATCH_LINES,
        batch_seconds=conf.LOG_BATCH_SECONDS,
        max_bytes=conf.LOG_MAX_BYTES,
        owner=owner,
        sink=writes.append if path == "follower" else None,
    )
    splitter = LineSplitter(conf.LOG_MAX_LINE_LENGTH)
    server_started = server_cpu()
    started, cpu_started = time.perf_counter(), cpu()
    for start in range(0, len(output), READ_SIZE):
        lines = splitter.feed(output[start : start + READ_SIZE])
        writer.add("stdout", lines, splitter.offset, timezone.now(), ends=splitter.ends)
        if (start + READ_SIZE) % PASS_CAP == 0:
            store_writes(writes, owner)
            writes.clear()
    writer.add("stdout", splitter.finish(), splitter.offset, timezone.now(), ends=splitter.ends)
    writer.close()
    store_writes(writes, owner)
    wall, used = time.perf_counter() - started, cpu() - cpu_started
    server_ended = server_cpu()
    server = None
    if server_started is not None and server_ended is not None:
        server = server_ended - server_started
    rows = Log.objects.filter(job=job).count()
    stored = Job.objects.values_list("stdout_offset", flat=True).get(pk=job.pk)
    assert (rows, stored) == (n, len(output)), (rows, stored)
    return {"path": path, "lines": n, "wall": wall, "cpu": used, "server": server, "rows": rows}


def child(database: str) -> None:
    """Set Django up on the given database and print one JSON line per size."""
    sys.path.insert(0, str(HERE))
    from common import prepare

    if database == "postgresql":
        os.environ["DATABASE_URL"] = POSTGRES_URL.rsplit("/", 1)[0] + f"/{SCRATCH}"
    else:
        os.environ.pop("DATABASE_URL", None)
    prepare(f"ingest-{database}")
    for path in PATHS:
        for n in SIZES:
            print(json.dumps(measure(n, path)), flush=True)


def scratch_database(action: str) -> str | None:
    """Make or drop PostgreSQL's scratch database; the reason when it can't be had."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
            name = psycopg.sql.Identifier(SCRATCH)
            connection.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(name))
            if action == "create":
                connection.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(name))
    except psycopg.Error as exc:
        return f"no PostgreSQL at {POSTGRES_URL}: {exc}".strip()
    return None


def run(database: str) -> list[dict[str, Any]] | str:
    if database == "postgresql":
        reason = scratch_database("create")
        if reason:
            return reason
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", database],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        if database == "postgresql":
            scratch_database("drop")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=1, help="run everything N times")
    repeat = parser.parse_args().repeat
    print(f"django-remote-submission ingest benchmark, one job, {os.cpu_count()} cores")
    print(
        f"  {'database':<12} {'path':<9} {'lines':>10}  {'wall':>8}  {'lines/s':>10}  {'cpu':>8}  "
        f"{'server cpu':>10}  rows"
    )
    for _ in range(repeat):
        for database in ("sqlite", "postgresql"):
            results = run(database)
            if isinstance(results, str):
                print(f"  {database:<12} skipped: {results}")
                continue
            for r in results:
                server = "" if r["server"] is None else f"{r['server']:6.2f} s"
                print(
                    f"  {database:<12} {r['path']:<9} {r['lines']:>10,}  {r['wall']:6.2f} s  "
                    f"{r['lines'] / r['wall']:>10,.0f}  {r['cpu']:6.2f} s  {server:>10}  "
                    f"{r['rows']:,}",
                    flush=True,
                )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    else:
        main()
