"""Benchmark: jobs through the suite's one-node Slurm, over the private sshd as an ordinary user.

Two measurements, on the Slurm of tests/slurm.py (2 CPUs, OverSubscribe=FORCE:4, so 8
jobs at once) joined as the tests join it:

1. The overhead of a trivial job (``print(1)``): ``run_job`` in this process on a server
   with ``scheduler="slurm"`` and a status interval of 1 s, against
   ``sbatch --wait --wrap 'python3 -c "print(1)"'`` run by hand over the same, already
   open, SSH login. Median and p90 of BENCH_SLURM_RUNS each, after one unmeasured run of
   each (the first pays for the SSH handshake).
2. BENCH_SLURM_JOBS jobs (``time.sleep(BENCH_SLURM_SLEEP); print(1)``) sent at once to
   one threads worker (BENCH_SLURM_SLOTS slots, the sweep on) on one login, with the
   default status interval (10 s): most wait for a CPU. Slurm's own RPC counters
   (``sdiag -r`` before, ``sdiag`` after) count the status calls the scheduler got.
   On Slurm 22.05 ``squeue --me`` is REQUEST_JOB_USER_INFO (plus REQUEST_FED_INFO and
   REQUEST_PARTITION_INFO), not REQUEST_JOB_INFO (plain ``squeue``); ``scontrol show
   job`` is REQUEST_JOB_INFO_SINGLE, ``sbatch`` REQUEST_SUBMIT_BATCH_JOB.

Run with `make bench` or `.venv/bin/python bench/bench_slurm.py` (as root: the private
sshd and the Slurm daemons). Prints its results; asserts only that jobs succeed. Exits 0
with a message when this machine can't run the test Slurm. The counters are machine-wide:
other users' calls (another test run sharing the cluster) are shown apart when seen.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from tests.slurm import SlurmCluster  # noqa: E402

RUNS = int(os.environ.get("BENCH_SLURM_RUNS", "10"))
JOBS = int(os.environ.get("BENCH_SLURM_JOBS", "200"))
SLEEP = int(os.environ.get("BENCH_SLURM_SLEEP", "20"))
SLOTS = int(os.environ.get("BENCH_SLURM_SLOTS", "4"))
#: The most seconds the many-jobs part waits for its jobs to end: the whole benchmark
#: stays under 15 minutes with the defaults.
DEADLINE = float(os.environ.get("BENCH_SLURM_DEADLINE", "720"))

TRIVIAL = "print(1)\n"
SLEEPER = "import time\ntime.sleep({sleep})\nprint(1)\n"
RAW = 'python3 -c "print(1)"'
ENDED = ("success", "failure", "canceled")
SHOWN_RPCS = (
    "REQUEST_JOB_USER_INFO",
    "REQUEST_JOB_INFO",
    "REQUEST_JOB_INFO_SINGLE",
    "REQUEST_SUBMIT_BATCH_JOB",
    "REQUEST_FED_INFO",
    "REQUEST_PARTITION_INFO",
)
_RPC_LINE = re.compile(r"^\s+(\S+)\s+\(\s*\d+\)\s+count:(\d+)", re.MULTILINE)


def sdiag_reset() -> None:
    subprocess.run(["sdiag", "-r"], check=True, capture_output=True)


def sdiag() -> tuple[dict[str, int], dict[str, int]]:
    """Slurm's RPC counts since the last reset: by message type, and by user."""
    out = subprocess.run(["sdiag"], check=True, capture_output=True, text=True).stdout
    by_type = out.split("statistics by message type", 1)[1].split("statistics by user", 1)
    by_user = by_type[1].split("Pending RPC", 1)[0]
    return (
        {name: int(count) for name, count in _RPC_LINE.findall(by_type[0])},
        {name: int(count) for name, count in _RPC_LINE.findall(by_user)},
    )


def others(by_user: dict[str, int], login: str) -> str:
    """Other users' calls (root's are sdiag's own and the cluster's checks)."""
    seen = {user: n for user, n in by_user.items() if user not in (login, "root")}
    return ", ".join(f"{user} {n}" for user, n in sorted(seen.items())) or "none"


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def spread(values: list[float]) -> str:
    each = " ".join(f"{value:.1f}" for value in sorted(values))
    return f"median {statistics.median(values):6.2f} s, p90 {p90(values):6.2f} s  ({each})"


def login_squeues(by_type: dict[str, int], login_rpcs: int, submitted: int) -> float:
    """The login's ``squeue --me`` calls, from its RPC count (sdiag counts by type only
    machine-wide): 3 RPCs a call, less one per submission and 2 per ``scontrol show job``
    (all of the machine's counted as the login's: an upper bound)."""
    singles = by_type.get("REQUEST_JOB_INFO_SINGLE", 0)
    return (login_rpcs - submitted - 2 * singles) / 3


def peak(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one time."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def main() -> None:
    reason = SlurmCluster.available()
    if reason:
        print(f"bench_slurm skipped: {reason}")
        return
    with SlurmCluster() as cluster:
        Bench(cluster).run()


class Bench:
    def __init__(self, cluster: SlurmCluster) -> None:
        from common import prepare, start_server

        self.cluster = cluster
        self.work = prepare("slurm")
        # The runner's INFO lines (connected, submitted, ended) would bury the results.
        logging.getLogger("django_remote_submission").setLevel(logging.WARNING)
        self.sshd, self.account, self.owner, self.server, self.interpreter = start_server(self.work)
        self.login = self.account.username

    def run(self) -> None:
        from tests.conftest import ssh_transport

        print(
            f"django-remote-submission Slurm benchmark, SQLite, {os.cpu_count()} cores, "
            f"one-node Slurm ({self.cluster.cpus} CPUs x {self.cluster.jobs_per_cpu} jobs), "
            f"login {self.login}",
            flush=True,
        )
        self.transport = ssh_transport(self.account)
        try:
            with self.transport:
                self.trivial()
                self.many()
        finally:
            self.transport.run(["scancel", "-u", self.login], timeout=60)
            self.sshd.stop()

    # 1. One trivial job --------------------------------------------------------------

    def trivial(self) -> None:
        from django_remote_submission.runner import RunOptions, run_job
        from tests.factories import make_job

        self.server.scheduler = "slurm"
        self.server.scheduler_partition = self.cluster.partition
        self.server.scheduler_poll_interval = 1.0
        self.server.save()
        options = RunOptions(password=self.account.password, username=self.login)
        directory = f"{self.account.remote_directory}/trivial"

        def app() -> tuple[float, object]:
            job = make_job(
                program=TRIVIAL, remote_directory=directory, remote_filename="trivial.py",
                server=self.server, interpreter=self.interpreter, owner=self.owner,
            )  # fmt: skip
            started = time.perf_counter()
            run_job(job, options)
            wall = time.perf_counter() - started
            job.refresh_from_db()
            assert job.status == "success", job.error
            assert list(job.logs.values_list("content", flat=True)) == ["1\n"]
            return wall, job

        raw_argv = [
            "sbatch", "--wait", f"--partition={self.cluster.partition}",
            f"--chdir={directory}", "--output=/dev/null", "--wrap", RAW,
        ]  # fmt: skip

        def raw() -> float:
            started = time.perf_counter()
            result = self.transport.run(raw_argv, timeout=120)
            wall = time.perf_counter() - started
            assert result.ok, result.reason()
            return wall

        app()  # the SSH handshake, the first status queue: not measured
        self.transport.run(["mkdir", "-p", directory])
        raw()
        sdiag_reset()
        runs = [app() for _ in range(RUNS)]
        app_rpcs = sdiag()
        sdiag_reset()
        raw_times = [raw() for _ in range(RUNS)]
        raw_rpcs = sdiag()
        app_times = [wall for wall, _ in runs]
        submit, wait, after = [], [], []
        for wall, job in runs:
            created = job.created.timestamp()  # type: ignore[attr-defined]
            pending = job.pending_since.timestamp()  # type: ignore[attr-defined]
            begun = job.started_at.timestamp()  # type: ignore[attr-defined]
            submit.append(pending - created)
            wait.append(begun - pending)
            after.append(created + wall - begun)
        print(f"\n1. A trivial job (print(1)), {RUNS} runs each, one after the other")
        print(f"  run_job, Slurm, 1 s status interval   {spread(app_times)}")
        print(f"  sbatch --wait --wrap, by hand         {spread(raw_times)}")
        difference = statistics.median(app_times) - statistics.median(raw_times)
        print(
            f"  difference                            median {difference:+6.2f} s, "
            f"p90 {p90(app_times) - p90(raw_times):+6.2f} s"
        )
        print(
            f"  run_job's time, medians: {statistics.median(submit):.2f} s to submit, "
            f"{statistics.median(wait):.2f} s pending, "
            f"{statistics.median(after):.2f} s from its start to run_job's return"
        )
        for what, (by_type, by_user) in (("run_job", app_rpcs), ("sbatch --wait", raw_rpcs)):
            counts = ", ".join(f"{name} {by_type.get(name, 0)}" for name in SHOWN_RPCS)
            print(
                f"  slurmctld RPCs, {what}: {by_user.get(self.login, 0) / RUNS:.1f} a job "
                f"from the login ({counts}; other users: {others(by_user, self.login)})"
            )

    # 2. Many jobs waiting, then running ----------------------------------------------

    def many(self) -> None:
        from celery import Celery
        from django.db import connection
        from django.db.models import Count

        from django_remote_submission.models import Job
        from django_remote_submission.tasks import submit_job_to_server
        from django_remote_submission.testing import RedisServer
        from tests.factories import make_job, make_server
        from tests.live import LiveStack

        server = make_server(
            interpreters=[self.interpreter], title="slurm, default interval",
            hostname="127.0.0.1", port=self.account.port, host_key=self.account.host_key,
            scheduler="slurm", scheduler_partition=self.cluster.partition,
        )  # fmt: skip
        interval = server.scheduler_poll_interval
        redis = RedisServer().start()
        stack = LiveStack(redis.url, self.work / "stack")
        client = Celery("bench-slurm", broker=redis.url, set_as_current=False)
        client.conf.update(
            task_serializer="json", accept_content=["json"], result_backend=redis.url
        )
        try:
            stack.start_worker("bench", pool="threads", concurrency=SLOTS, DRS_SWEEP="1")
            task = client.tasks[submit_job_to_server.name]
            busy = {"most": 0, "samples": 0}
            stop = threading.Event()

            def sample_slots() -> None:
                # Tasks the worker runs at the moment: a slot is held from the claim to the
                # hand-over to the host's follower, just after sbatch.
                inspect = client.control.inspect(timeout=1.0)
                while not stop.is_set():
                    active = inspect.active() or {}
                    busy["most"] = max(busy["most"], sum(len(t) for t in active.values()))
                    busy["samples"] += 1
                    stop.wait(0.5)

            made = [
                make_job(
                    program=SLEEPER.format(sleep=SLEEP),
                    remote_directory=f"{self.account.remote_directory}/many",
                    remote_filename=f"job-{index}.py",
                    server=server, interpreter=self.interpreter, owner=self.owner,
                ).pk
                for index in range(JOBS)
            ]  # fmt: skip
            sampler = threading.Thread(target=sample_slots, daemon=True)
            sampler.start()
            sdiag_reset()
            started = time.monotonic()
            for pk in made:
                task.apply_async(
                    kwargs={"job_pk": pk, "password": self.account.password,
                            "username": self.login},
                    queue=stack.queue,
                )  # fmt: skip
            sent = time.monotonic() - started
            states: dict[str, int] = {}
            mark: tuple[float, dict[str, int], dict[str, int]] | None = None
            most = {"pending": 0, "running": 0}
            while time.monotonic() - started < DEADLINE:
                rows = Job.objects.filter(pk__in=made).values("state").annotate(n=Count("id"))
                states = {row["state"]: row["n"] for row in rows}
                for state in most:
                    most[state] = max(most[state], states.get(state, 0))
                if mark is None and not states.get("queued") and not states.get("starting"):
                    # Every job submitted: from here on the login's RPCs are status calls.
                    mark = (time.monotonic(), *sdiag())
                if sum(states.get(state, 0) for state in ENDED) == JOBS:
                    break
                time.sleep(1)
            wall = time.monotonic() - started
            by_type, by_user = sdiag()
            ended_at = time.monotonic()
            stop.set()
            sampler.join()
        finally:
            stack.stop()
            client.close()
            redis.stop()
        jobs = list(Job.objects.filter(pk__in=made))
        connection.close()
        outcomes = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
        intervals = [
            (job.started_at.timestamp(), job.finished_at.timestamp())
            for job in jobs
            if job.started_at and job.finished_at
        ]
        waits = [
            (job.started_at - job.pending_since).total_seconds()
            for job in jobs
            if job.started_at and job.pending_since
        ]
        minutes = wall / 60
        squeue = by_type.get("REQUEST_JOB_USER_INFO", 0)
        ours = login_squeues(by_type, by_user.get(self.login, 0), JOBS)
        if mark is not None:
            since, type_then, user_then = mark
            steady_minutes = (ended_at - since) / 60
            delta = {name: by_type.get(name, 0) - type_then.get(name, 0) for name in by_type}
            steady = login_squeues(
                delta, by_user.get(self.login, 0) - user_then.get(self.login, 0), 0
            )
        ids = {job.scheduler_job_id for job in jobs}
        print(
            f"\n2. {JOBS} jobs (sleep {SLEEP} s, print 1) sent at once to one threads worker "
            f"({SLOTS} slots, sweep on), one login, status interval {interval:g} s"
        )
        print(f"  outcomes                       {outcomes}")
        print(
            f"  wall time                      {wall:6.1f} s until all ended "
            f"(sent in {sent:.1f} s; at least {JOBS * SLEEP / 8:.0f} s at 8 at a time)"
        )
        print(
            f"  concurrency                    worker slots busy at most {busy['most']} of "
            f"{SLOTS} ({busy['samples']} samples); running at once in the app's rows "
            f"(started_at to finished_at, which lags Slurm's end) at most "
            f"{peak(intervals)}, pending at most {most['pending']}"
        )
        print(
            f"  time pending                   median {statistics.median(waits):6.1f} s, "
            f"longest {max(waits):6.1f} s"
        )
        print(
            f"  squeue --me calls              {squeue} = {squeue / minutes:.1f} a minute "
            f"(expected: one per {interval:g} s per login = {60 / interval:.0f} a minute)"
        )
        print(
            f"  of this login                  {ours:.0f} = {ours / minutes:.1f} a minute; once "
            f"all were submitted: {steady:.0f} in {steady_minutes:.1f} min = "
            f"{steady / steady_minutes:.1f} a minute ({len(ids)} distinct Slurm job ids)"
            if mark is not None
            else f"  of this login                  {ours:.0f} = {ours / minutes:.1f} a minute"
        )
        print(
            f"  all RPCs of the login          {by_user.get(self.login, 0)} = "
            f"{by_user.get(self.login, 0) / minutes:.1f} a minute; other users: "
            f"{others(by_user, self.login)}"
        )
        print("  by type: " + ", ".join(f"{name} {by_type.get(name, 0)}" for name in SHOWN_RPCS))


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"\nbench_slurm took {time.monotonic() - started:.0f} s")
