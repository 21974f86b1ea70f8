"""Benchmark: the job runner against plain `ssh`/`scp`, on the private OpenSSH server.

Run with `make bench` (as root, like the test suite, so the private sshd can log in a
test account). Prints one table; nothing here asserts anything.

    workload                     runner           raw ssh / scp     ratio
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import prepare, start_server

WORK = prepare("runner")


from django_remote_submission.models import Job, Log  # noqa: E402
from django_remote_submission.results import collect  # noqa: E402
from django_remote_submission.runner import RunOptions, remote_directory, run_job  # noqa: E402
from tests.conftest import ssh_transport  # noqa: E402

LINES_PROGRAM = (
    "import sys\nw = sys.stdout.write\n"
    "for i in range({n}):\n    w('line %d of the benchmark output\\n' % i)\n"
)
QUIET_PROGRAM = (
    "import time\nfor i in range(100):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"
)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Bench:
    def __init__(self) -> None:
        self.sshd, self.account, self.owner, self.server, self.interpreter = start_server(WORK)
        known = WORK / "known_hosts"
        known.write_text(self.account.known_hosts_line + "\n")
        self.ssh = [
            "ssh", "-p", str(self.account.port), "-i", str(self.account.key_filename),
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "StrictHostKeyChecking=yes", f"{self.account.username}@127.0.0.1",
        ]  # fmt: skip
        self.scp = [
            "scp", "-q", "-P", str(self.account.port), "-i", str(self.account.key_filename),
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
        ]  # fmt: skip
        self.directory = f"{self.account.remote_directory}/bench"
        self.rows: list[tuple[str, str, str, str]] = []

    def job(self, program: str) -> Job:
        return Job.objects.create(
            title="bench",
            program=program,
            remote_directory=self.directory,
            remote_filename="bench.py",
            owner=self.owner,
            server=self.server,
            interpreter=self.interpreter,
        )

    def run(self, program: str, **options: object) -> tuple[float, float, Job]:
        job = self.job(program)
        values = {"key_filename": str(self.account.key_filename), "username": self.account.username}
        values.update(options)
        started, cpu_started = time.perf_counter(), cpu()
        run_job(job, RunOptions(**values))  # type: ignore[arg-type]
        wall, used = time.perf_counter() - started, cpu() - cpu_started
        job.refresh_from_db()
        assert job.status == "success", job.error
        return wall, used, job

    def raw(self, command: str) -> tuple[float, float]:
        started, cpu_started = time.perf_counter(), children_cpu()
        subprocess.run([*self.ssh, command], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started, children_cpu() - cpu_started

    def add(self, workload: str, runner: str, raw: str, ratio: str) -> None:
        self.rows.append((workload, runner, raw, ratio))
        print(f"  {workload:<34} {runner:<40} {raw:<30} {ratio}", flush=True)

    def lines(self, n: int) -> None:
        program = LINES_PROGRAM.format(n=n)
        wall, used, job = self.run(program)
        rows = Log.objects.filter(job=job).count()
        self.raw(f"mkdir -p {self.directory}")
        subprocess.run(
            [*self.ssh, f"cat > {self.directory}/raw.py"], input=program.encode(), check=True
        )
        raw_wall, raw_cpu = self.raw(f"cd {self.directory} && python3 -u raw.py")
        self.add(
            f"{n:,} lines as fast as possible",
            f"{wall:6.2f} s, {n / wall:9,.0f} lines/s, cpu {used:5.2f} s, {rows:,} rows",
            f"{raw_wall:6.2f} s, {n / raw_wall:9,.0f} lines/s, cpu {raw_cpu:4.2f} s",
            f"{wall / raw_wall:4.1f}x",
        )

    def quiet(self) -> None:
        wall, used, _ = self.run(QUIET_PROGRAM)
        raw_wall, raw_cpu = self.raw(f"python3 -u -c {quote(QUIET_PROGRAM)}")
        self.add(
            "1 line / 100 ms for 10 s",
            f"{wall:6.2f} s, cpu {used:5.2f} s = {100 * used / wall:4.1f} % of a core",
            f"{raw_wall:6.2f} s, cpu {raw_cpu:4.2f} s",
            f"{wall / raw_wall:4.1f}x",
        )

    def trivial(self, runs: int = 20) -> None:
        times = [self.run("pass")[0] for _ in range(runs)]
        raw = [self.raw("true")[0] for _ in range(runs)]
        self.add(
            f"trivial job, median of {runs}",
            f"{statistics.median(times):6.3f} s (first, with handshake, {times[0]:.3f} s)",
            f"{statistics.median(raw):6.3f} s (ssh host true)",
            f"{statistics.median(times) / statistics.median(raw):4.1f}x",
        )

    def result_file(self, megabytes: int = 100) -> None:
        path = f"{self.directory}/big.bin"
        self.raw(
            f"mkdir -p {self.directory} && head -c {megabytes * 1024 * 1024} /dev/urandom > {path}"
        )
        job = self.job("pass")
        transport = ssh_transport(
            self.account, password=None, key_filename=self.account.key_filename
        )
        with transport:
            started = time.perf_counter()
            stored = collect(
                job,
                transport,
                remote_directory(job),
                {},
                patterns=["big.bin"],
                exclude=[],
                report=print,
            )
            wall = time.perf_counter() - started
        assert list(stored) == ["big.bin"]
        target = WORK / "scp.bin"
        started = time.perf_counter()
        subprocess.run(
            [*self.scp, f"{self.account.username}@127.0.0.1:{path}", str(target)], check=True
        )
        scp = time.perf_counter() - started
        self.add(
            f"one {megabytes} MB result file",
            f"{wall:6.2f} s, {megabytes / wall:6.1f} MB/s",
            f"{scp:6.2f} s, {megabytes / scp:6.1f} MB/s (scp)",
            f"{wall / scp:4.1f}x",
        )

    def close(self) -> None:
        self.sshd.stop()


def quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def main() -> None:
    bench = Bench()
    print(f"django-remote-submission benchmark, SQLite, {os.cpu_count()} cores")
    print(f"  {'workload':<34} {'runner':<40} {'raw ssh / scp':<30} ratio")
    try:
        bench.trivial()  # first: its first run pays for the SSH handshake, reported apart
        bench.lines(100_000)
        bench.lines(1_000_000)
        bench.quiet()
        bench.result_file()
    finally:
        bench.close()


if __name__ == "__main__":
    main()
