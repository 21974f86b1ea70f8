"""Records what Slurm's commands print, into this folder: the fixtures parsers are tested on.

Run as root on a machine with the Slurm packages (see README.rst here):

    .venv/bin/python -m tests.schedulers.slurm.record

It joins the suite's one-node cluster (tests/slurm.py), makes a throw-away ordinary
account, submits jobs as that account and writes one file per case. Each file starts with
header lines beginning with ``# ``: the command line, then its exit code; everything after
the header is the command's output exactly as printed (stdout, then stderr if any).
"""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.slurm import SlurmCluster, job_fields

HERE = Path(__file__).resolve().parent


class Recorder:
    def __init__(self, user: str, home: Path) -> None:
        self.user = user
        self.home = home

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", self.user, "--", *argv],
            cwd=self.home, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def record(self, name: str, *argv: str) -> str:
        result = self.run(*argv)
        header = f"# $ {shlex.join(argv)}\n# exit {result.returncode}\n"
        (HERE / name).write_text(header + result.stdout + result.stderr)
        print(f"{name}: exit {result.returncode}")
        return result.stdout

    def sbatch(self, *options: str, wrap: str) -> str:
        result = self.run(
            "sbatch", "--parsable", "--job-name", f"drs-{uuid.uuid4()}",
            f"--output={self.home}/slurm-%j.out", *options, "--wrap", wrap,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def show(self, job_id: str) -> dict[str, str]:
        return job_fields(self.run("scontrol", "show", "job", "-o", job_id).stdout.strip())

    def state(self, job_id: str) -> str:
        return self.show(job_id).get("JobState", "")

    def wait_job(
        self, job: str, done: Callable[[dict[str, str]], bool], what: str, timeout: float = 60
    ) -> None:
        """Until ``done(fields of scontrol show job)`` holds."""
        self.wait(lambda: done(self.show(job)), f"job {job} {what}", timeout)

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            time.sleep(0.2)


def main() -> None:
    user = f"drs-rec-{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", user], check=True)
    try:
        with SlurmCluster() as cluster:
            record_all(Recorder(user, Path(f"/home/{user}")), cluster)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", user], check=False)
        subprocess.run(["userdel", "--remove", user], check=False, capture_output=True)


def record_all(r: Recorder, cluster: SlurmCluster) -> None:
    for command in ("sbatch", "squeue", "sinfo", "scontrol", "scancel"):
        r.record(f"{command}-version.txt", command, "--version")
    r.record("sinfo.txt", "sinfo")
    r.record("sinfo-node-state.txt", "sinfo", "-h", "-o", "%t")
    r.record("scontrol-show-node.txt", "scontrol", "show", "node", "-o", cluster.node)
    r.record("scontrol-show-partition.txt", "scontrol", "show", "partition", "-o")

    # A time limit of one minute (Slurm's least), left to expire while the rest is recorded.
    timeout = r.sbatch("--time=1", wrap="sleep 600")

    completed = r.sbatch(wrap="for i in $(seq 1 5); do echo line $i; done")
    failed = r.sbatch(wrap="echo failing; exit 3")
    signalled = r.sbatch(wrap="kill -KILL $$")
    for job in (completed, failed, signalled):
        r.wait_job(job, lambda f: f.get("JobState") not in ("PENDING", "RUNNING", None), "end")
    r.record("scontrol-show-job-completed.txt", "scontrol", "show", "job", "-o", completed)
    r.record("scontrol-show-job-failed.txt", "scontrol", "show", "job", "-o", failed)
    r.record("scontrol-show-job-killed-by-signal.txt", "scontrol", "show", "job", "-o", signalled)
    r.record("squeue-job-ended.txt", "squeue", "-h", "-j", completed, "-o", "%T")
    r.record("squeue-job-unknown.txt", "squeue", "-h", "-j", "999999", "-o", "%T")
    r.record("scontrol-show-job-unknown.txt", "scontrol", "show", "job", "-o", "999999")

    # Fill the node with jobs that take every CPU, until one waits for Resources; the
    # next one waits behind it (Priority).
    running: list[str] = []
    while True:
        job = r.sbatch("-c", str(cluster.cpus), wrap="sleep 600")
        r.wait_job(
            job,
            lambda f: f.get("JobState") == "RUNNING" or f.get("Reason") not in ("None", None),
            "to run or wait",
        )
        if r.state(job) != "RUNNING":
            resources = job
            break
        running.append(job)
    priority = r.sbatch("-c", "1", wrap="sleep 600")
    r.wait(lambda: r.show(priority).get("Reason") == "Priority", "a job waiting on Priority")
    assert r.show(resources)["Reason"] == "Resources", r.show(resources)

    r.record("sbatch-parsable.txt", "sbatch", "--parsable", "--output=/dev/null",
             "--wrap", "true")  # fmt: skip
    r.record("sbatch.txt", "sbatch", "--output=/dev/null", "--wrap", "true")
    r.record("squeue-state-reason.txt", "squeue", "-h", "-o", "%i|%T|%r")
    r.record("squeue-job-running.txt", "squeue", "-h", "-j", running[0], "-o", "%T")
    r.record("squeue-job-pending.txt", "squeue", "-h", "-j", resources, "-o", "%T")
    r.record("squeue-wide.txt", "squeue", "-h", "-u", r.user, "-o", "%i|%j|%T|%r|%M|%l|%S|%V")
    r.record("squeue.txt", "squeue")
    r.record("squeue-json.txt", "squeue", "--json", "-u", r.user)
    r.record("scontrol-show-job-running.txt", "scontrol", "show", "job", "-o", running[0])
    r.record("scontrol-show-job-pending-resources.txt", "scontrol", "show", "job", "-o", resources)
    r.record("scontrol-show-job-pending-priority.txt", "scontrol", "show", "job", "-o", priority)

    r.record("scancel-pending.txt", "scancel", priority)
    r.record("scancel-running.txt", "scancel", running[0])
    r.record("squeue-job-cancelled-completing.txt", "squeue", "-h", "-j", running[0], "-o", "%T")
    r.wait(lambda: r.state(running[0]) == "CANCELLED", "the cancelled job")
    r.record("scontrol-show-job-cancelled-running.txt", "scontrol", "show", "job", "-o", running[0])
    r.record("scontrol-show-job-cancelled-pending.txt", "scontrol", "show", "job", "-o", priority)
    r.run("scancel", *running, resources)

    r.wait(lambda: r.state(timeout) == "TIMEOUT", "the time limit", timeout=180)
    r.record("scontrol-show-job-timeout.txt", "scontrol", "show", "job", "-o", timeout)
    r.record("slurm-out-timeout.txt", "cat", f"{r.home}/slurm-{timeout}.out")


if __name__ == "__main__":
    main()
