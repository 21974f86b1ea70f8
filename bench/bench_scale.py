"""Benchmark: many concurrent jobs through a real worker, on PostgreSQL.

Each job is a bash program printing one numbered, timestamped line a second for
``--seconds``; the jobs go through Celery (a private Redis) to one threads worker with the
sweep (so the host's follower follows them), over private sshd servers. Measured:
outcomes, lost and duplicated lines, the most SSH connections and database connections
seen (the worker's: this process's own are not counted), the worker's CPU at steady state
and its largest memory, the machine's highest load average, and how long a printed
line took to become a row this process could read (polled every 100 ms, so the figures
are at most 0.1 s pessimistic).

    python bench/bench_scale.py                  # 10 and 100 jobs (what `make bench` runs)
    python bench/bench_scale.py --jobs 1000 --seconds 300
    python bench/bench_scale.py --jobs 1000 --servers 10
    python bench/bench_scale.py --jobs 1000 --seconds 400 --slots 8

Needs root (the private sshd), PostgreSQL at BENCH_POSTGRES_URL (a scratch database is
made and dropped) and about 4 GB of memory for 1,000 bash programs. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
SCRATCH = "drs_bench_scale"
# bash builtins only, once started: `read -t` on a pipe nobody writes to waits a second
# without starting a `sleep` (a thousand of those a second would be the load measured).
PROGRAM = """\
pipe=$(mktemp -u) && mkfifo "$pipe" && exec 9<>"$pipe" && rm -f "$pipe"
for ((i = 1; i <= {seconds}; i++)); do
  printf 'n %d %s\\n' "$i" "$EPOCHREALTIME"
  read -r -t 1 -u 9 || :
done
"""
TICK = re.compile(r"n (\d+) (\d+\.\d+)\n")


def scratch(action: str) -> str:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
        name = psycopg.sql.Identifier(SCRATCH)
        connection.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if action == "create":
            connection.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(name))
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + SCRATCH


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def ssh_connections(usernames: list[str]) -> int:
    out = subprocess.run(["ps", "-eo", "user:32,args"], capture_output=True, text=True).stdout
    return sum(
        1
        for line in out.splitlines()
        if line.split(None, 1)[0] in usernames and re.search(r"sshd: \S+@notty", line)
    )


#: This process's own connections say so (libpq's PGAPPNAME), and are not counted.
APPLICATION = "drs-bench-scale"


def db_connections() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name <> %s",
            [SCRATCH, APPLICATION],
        )
        return int(cursor.fetchone()[0])


def run(jobs: int, servers: int, seconds: int, work: Path, slots: int) -> dict[str, object]:
    from celery import Celery
    from django.db import connection

    from django_remote_submission.models import Job, Log
    from django_remote_submission.tasks import submit_job_to_server
    from django_remote_submission.testing import RedisServer
    from tests.factories import make_interpreter, make_job, make_server, make_user
    from tests.sshd import OpenSSHServer

    redis = RedisServer().start()
    sshds, accounts, targets = [], [], []
    owner = make_user(f"bench-{uuid.uuid4().hex[:6]}")
    bash = make_interpreter(name="bash", path="/bin/bash")
    for index in range(servers):
        sshd = OpenSSHServer(work / f"sshd-{jobs}-{index}")
        account = sshd.start()
        sshds.append(sshd)
        accounts.append(account)
        server = make_server(
            interpreters=[bash],
            hostname="127.0.0.1",
            port=account.port,
            host_key=account.host_key,
            title=f"server {index}",
        )
        targets.append((server, account))
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if k != "PGAPPNAME"},
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DRS_REDIS_URL": redis.url,
        "DRS_CELERY_QUEUE": queue,
        "DRS_SWEEP": "1",
        "DRS_HAND_OVER_AFTER": "0",
        "PYTHONPATH": str(ROOT),
    }
    log = (work / f"worker-{jobs}.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "-P", "threads",
         "-c", str(slots), "-Q", queue, "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = Celery("bench", broker=redis.url, set_as_current=False)
    client.conf.update(task_serializer="json", accept_content=["json"], result_backend=redis.url)
    task = client.tasks[submit_job_to_server.name]
    time.sleep(3)  # the worker starts

    samples: dict[str, float] = {"ssh": 0, "db": 0, "rss": 0, "load": 0.0}
    stop = threading.Event()
    usernames = [account.username for account in accounts]

    def sample() -> None:
        while not stop.is_set():
            samples["ssh"] = max(samples["ssh"], ssh_connections(usernames))
            samples["rss"] = max(samples["rss"], proc_rss(worker.pid))
            samples["db"] = max(samples["db"], db_connections())
            samples["load"] = max(samples["load"], os.getloadavg()[0])
            stop.wait(1)
        connection.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    # Rows of an earlier run of this process (10 jobs, then 100) are not this run's.
    first_id = Log.objects.order_by("-id").values_list("id", flat=True).first() or 0
    started = time.monotonic()
    made = []
    for index in range(jobs):
        server, account = targets[index % servers]
        job = make_job(
            program=PROGRAM.format(seconds=seconds),
            remote_directory=f"{account.remote_directory}/bench",
            remote_filename=f"job-{index}.sh",
            server=server,
            interpreter=bash,
            owner=owner,
        )
        task.apply_async(
            kwargs={"job_pk": job.pk, "password": account.password, "username": account.username},
            queue=queue,
        )
        made.append(job.pk)
    submitted = time.monotonic() - started

    delays: list[float] = []
    printed: list[float] = []
    last_id = first_id
    steady_from = steady_to = None
    cpu_from = cpu_to = 0.0
    while True:
        now = time.time()
        rows = list(Log.objects.filter(id__gt=last_id).order_by("id").values_list("id", "content"))
        for pk, content in rows:
            match = TICK.fullmatch(content)
            if match:
                delays.append(now - float(match.group(2)))
                printed.append(float(match.group(2)))
            last_id = pk
        elapsed = time.monotonic() - started
        # The steady state: every job launched, none ended yet (at most 20 s of it).
        launched_all = (
            steady_from is None
            and int(elapsed * 10) % 10 == 0
            and Job.objects.filter(pk__in=made, started_at__isnull=False).count() == jobs
        )
        if launched_all:
            steady_from, cpu_from = time.monotonic(), proc_cpu(worker.pid)
        if (
            steady_to is None
            and steady_from is not None
            and (
                time.monotonic() - steady_from > 20
                or Job.objects.filter(pk__in=made, finished_at__isnull=False).exists()
            )
        ):
            steady_to, cpu_to = time.monotonic(), proc_cpu(worker.pid)
        if not Job.objects.filter(pk__in=made, finished_at__isnull=True).exists():
            break
        if elapsed > seconds + 600:
            break
        time.sleep(0.1)
    total = time.monotonic() - started
    stop.set()
    sampler.join()

    from django.db.models import Max, Min

    span = Job.objects.filter(pk__in=made).aggregate(first=Min("created"), last=Max("started_at"))
    launched = (span["last"] - span["first"]).total_seconds() if span["last"] else float("nan")
    outcomes: dict[str, int] = {}
    lost = duplicated = 0
    for job in Job.objects.filter(pk__in=made):
        outcomes[job.state] = outcomes.get(job.state, 0) + 1
        numbers = [
            int(m.group(1))
            for c in Log.objects.filter(job=job).values_list("content", flat=True)
            if (m := TICK.fullmatch(c))
        ]
        lost += len(set(range(1, seconds + 1)) - set(numbers))
        duplicated += len(numbers) - len(set(numbers))
    worker.terminate()
    worker.wait(60)
    redis.stop()
    for sshd in sshds:
        sshd.stop()
    # Lines printed once every job was launched: the steady state, without the ramp.
    all_started = span["last"].timestamp() if span["last"] else float("inf")
    steady = sorted(d for d, t in zip(delays, printed, strict=True) if t > all_started)
    delays.sort()
    window = (steady_to or 0) - (steady_from or 0)
    return {
        "jobs": jobs,
        "servers": servers,
        "outcomes": outcomes,
        "lost": lost,
        "duplicated": duplicated,
        "ssh": samples["ssh"],
        "db": samples["db"],
        "cpu": (cpu_to - cpu_from) / window if window > 0 else float("nan"),
        "rss": samples["rss"],
        "load": samples["load"],
        "p50": delays[len(delays) // 2] if delays else float("nan"),
        "p95": delays[int(len(delays) * 0.95)] if delays else float("nan"),
        "p95_steady": steady[int(len(steady) * 0.95)] if steady else float("nan"),
        "submitted": submitted,
        "launched": launched,
        "total": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, action="append")
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--slots", type=int, default=4, help="the worker's threads (-c)")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_scale needs root: the private sshd logs in its own test account")
    sys.path.insert(0, str(ROOT))
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="drs-bench-scale-"))
    os.environ["DATABASE_URL"] = scratch("create")
    os.environ["PGAPPNAME"] = APPLICATION
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    print(f"django-remote-submission scale benchmark, PostgreSQL, {os.cpu_count()} cores")
    print(
        f"  {'jobs':>5} {'servers':>7}  {'outcomes':<18} {'lost':>4} {'dup':>4} {'ssh':>4} "
        f"{'db':>3}  {'cpu':>6}  {'rss':>7}  {'p50':>6}  {'p95':>6}  {'p95 st':>6}  "
        f"{'launch':>7}  {'total':>7}  {'load':>5}"
    )
    try:
        for jobs in arguments.jobs or [10, 100]:
            r = run(jobs, arguments.servers, arguments.seconds, work, arguments.slots)
            outcomes = ",".join(f"{k}:{v}" for k, v in sorted(r["outcomes"].items()))  # type: ignore[attr-defined]
            print(
                f"  {r['jobs']:>5} {r['servers']:>7}  {outcomes:<18} {r['lost']:>4} "
                f"{r['duplicated']:>4} {r['ssh']:>4} {r['db']:>3}  {r['cpu']:6.1%}  "
                f"{r['rss'] / 2**20:5.0f} MB  {r['p50']:5.2f}s  {r['p95']:5.2f}s  "
                f"{r['p95_steady']:5.2f}s  "
                f"{r['launched']:6.1f}s  {r['total']:6.1f}s  {r['load']:5.1f}",
                flush=True,
            )
    finally:
        from django.db import connections

        connections.close_all()
        scratch("drop")


if __name__ == "__main__":
    main()
