"""Faults around a running job, with real worker processes: the sshd process serving the
worker killed, the SSH server away for 30 s, the job's output readers killed, Redis restarted
with jobs queued, PostgreSQL restarted. Each test asserts the final state, the exact numbered
lines and that no program is left on the server, and prints how long the job took to follow
again after the fault (``pytest -s`` shows it)."""

import contextlib
import datetime as dt
import itertools
import time

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from django_remote_submission.models import Job, Log
from tests.conftest import job_target, unavailable
from tests.live import LiveStack
from tests.postgres import PostgresCluster
from tests.test_live import submit
from tests.test_reattach import numbers, stored_lines, wait_for

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

#: Short leases, so that a job nobody follows is taken over within seconds.
WORKER_ENV = {"DRS_SWEEP": "1", "DRS_LEASE_SECONDS": "4"}
NOTE = "[django-remote-submission]"
#: Lines stored by the time a job is followed by its worker host's follower (the task
#: hands it over after REMOTE_SUBMISSION_HAND_OVER_AFTER, 1 s): faults hit the follower.
FOLLOWED = 100


def program(lines, pause):
    return f"""
import time
for i in range(1, {lines + 1}):
    print("n", i, flush=True)
    time.sleep({pause})
"""


@pytest.fixture
def stack(redis_url, tmp_path):
    live = LiveStack(redis_url, tmp_path / "stack")
    yield live
    live.stop()


@pytest.fixture
def own_sshd_target(start_openssh, tmp_path, transactional_db):
    """A job target on an sshd of its own, which the test may cut off and stop."""
    sshd, account = start_openssh()
    for target in job_target(account, tmp_path):
        target.sshd = sshd
        yield target
        if sshd.process is None:
            sshd.resume()
        target.transport.close()  # its connection may be one that was cut


def kill_follower_reader(target):
    """What an OOM killer or an admin's ``pkill perl`` does: the reader that reports the
    output of this login's jobs to the worker host's follower dies."""
    return target.transport.run(
        ["pkill", "-KILL", "-f", r"[p]erl .*\.drs-follow/.*reader"]
    ).exit_code


def ended(*jobs):
    return lambda: all(Job.objects.get(pk=job.pk).is_finished for job in jobs)


def notes(job):
    return list(
        Log.objects.filter(job=job, content__startswith=NOTE)
        .order_by("id")
        .values_list("content", flat=True)
    )


def assert_complete(job, lines, target):
    """Ended in success with each numbered line once, and nothing left running."""
    job.refresh_from_db()
    assert (job.state, job.status, job.exit_code) == ("success", "success", 0), job.error
    assert numbers(job) == list(range(1, lines + 1))
    target.transport.close()  # it may be a connection of before the fault
    assert target.live_processes(job.remote_pgid) == []


def report(fault, job, since):
    """How long the job's output stood still after the fault: the longest pause between
    two stored lines read from the fault on (the job follows again at its end)."""
    times = list(
        Log.objects.filter(job=job, time__gte=since - dt.timedelta(seconds=1))
        .exclude(content__startswith=NOTE)
        .order_by("id")
        .values_list("time", flat=True)
    )
    pause, resumed = max(
        ((b - a).total_seconds(), (b - since).total_seconds()) for a, b in itertools.pairwise(times)
    )
    print(
        f"\nRECOVERY {fault}: job {job.pk} stood still {pause:.2f} s, following again "
        f"{resumed:.2f} s after the fault; notes: {notes(job)}"
    )


def test_the_sshd_process_serving_the_worker_killed_mid_job(stack, own_sshd_target):
    target = own_sshd_target
    job = target.job(program(300, 0.02))
    stack.start_worker("only", concurrency=2, **WORKER_ENV)
    submit(stack, target, job)
    wait_for(stored_lines(job, FOLLOWED), what="the first lines")

    cut = timezone.now()
    target.sshd.drop_connections()
    assert Log.objects.filter(job=job).count() < 300  # it really was cut mid-job

    wait_for(ended(job), timeout=120, what="the job's end")
    report("sshd connection killed", job, cut)
    assert_complete(job, 300, target)


def test_a_server_away_for_30_s_is_waited_for(stack, own_sshd_target):
    target = own_sshd_target
    job = target.job(program(700, 0.05))  # about 35 s: it runs on through the outage
    stack.start_worker("only", concurrency=2, **WORKER_ENV)
    submit(stack, target, job)
    wait_for(stored_lines(job, FOLLOWED), what="the first lines")

    cut = timezone.now()
    target.sshd.halt()
    time.sleep(30)
    job.refresh_from_db()
    assert (job.state, job.status) == ("running", "submitted")
    target.sshd.resume()

    wait_for(ended(job), timeout=120, what="the job's end")
    report("sshd stopped 30 s", job, cut)
    assert_complete(job, 700, target)


def test_the_output_readers_killed_mid_job(stack, openssh_target):
    target = openssh_target
    job = target.job(program(300, 0.02))
    stack.start_worker("only", concurrency=2, **WORKER_ENV)
    submit(stack, target, job)
    wait_for(stored_lines(job, FOLLOWED), what="the first lines")

    killed = timezone.now()
    assert kill_follower_reader(target) == 0, "no reader was running"

    wait_for(ended(job), timeout=120, what="the job's end")
    report("output readers killed", job, killed)
    assert_complete(job, 300, target)


def test_redis_restarted_with_jobs_running_and_queued(openssh_target, tmp_path):
    from django_remote_submission.testing import RedisServer

    target = openssh_target
    try:
        redis = RedisServer().start()
    except (RuntimeError, OSError) as exc:
        unavailable(f"no private Redis: {exc}")
    stack = LiveStack(redis.url, tmp_path / "stack")
    try:
        stack.start_worker("only", concurrency=1, DRS_QUEUE_GRACE="3", **WORKER_ENV)
        jobs = [target.job(program(100, 0.03)) for _ in range(3)]
        for job in jobs:
            submit(stack, target, job)
        wait_for(stored_lines(jobs[0], 20), what="the first job's first lines")
        states = [Job.objects.get(pk=job.pk).state for job in jobs]
        assert states == ["running", "queued", "queued"]

        # Without persistence: the queue, and the messages in it, are lost.
        redis.stop()
        restarted = timezone.now()
        redis = RedisServer(port=redis.port).start()

        worker = stack.processes["only"]
        wait_for(lambda: ended(*jobs)() or worker.poll() is not None, what="the jobs' end")
        if worker.poll() is not None:
            # Celery 5.7 with kombu 5.7: a worker holding unacknowledged messages exits
            # when Redis goes away (kombu's restore_unacked fails with an AttributeError).
            # Started again, as a supervisor (systemd's Restart=) does.
            print(f"\nWORKER EXITED with {worker.returncode} after the Redis restart")
            stack.processes.pop("only")
            stack.start_worker("again", concurrency=1, DRS_QUEUE_GRACE="3", **WORKER_ENV)
        wait_for(ended(*jobs), timeout=120, what="the jobs' end")
        for job in jobs:
            assert_complete(job, 100, target)
        assert b"waited in the queue too long" in stack.log("only") + stack.log("again")
        report("Redis restarted (running)", jobs[0], restarted)
        for job in jobs[1:]:
            waited = (job.started_at - restarted).total_seconds()
            print(f"\nRECOVERY Redis restarted (queued): job {job.pk} started {waited:.2f} s after")
    finally:
        stack.stop()
        redis.stop()


@pytest.fixture
def private_postgres(transactional_db):
    """The test's database on a PostgreSQL cluster of its own, which the test may restart:
    this process and the workers it starts use it; the shared server is left alone."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL runs only (DATABASE_URL=postgres://...)")
    reason = PostgresCluster.available()
    if reason:
        unavailable(reason)
    import psycopg

    cluster = PostgresCluster()
    saved = dict(connection.settings_dict)
    try:
        cluster.start()
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{saved["NAME"]}"')
        connection.close()
        connection.settings_dict.update(
            HOST="127.0.0.1", PORT=cluster.port, USER="postgres", PASSWORD=""
        )
        call_command("migrate", verbosity=0)
        yield cluster
    finally:
        # The test database of the run again, for pytest-django's flush.
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
        cluster.destroy()


@pytest.mark.postgresql
def test_postgresql_restarted_mid_job(private_postgres, stack, openssh_account, tmp_path):
    cluster = private_postgres
    with contextlib.contextmanager(job_target)(openssh_account, tmp_path) as target:
        job = target.job(program(300, 0.02))
        stack.start_worker("only", concurrency=2, DATABASE_URL=cluster.url(), **WORKER_ENV)
        submit(stack, target, job)
        wait_for(stored_lines(job, FOLLOWED), what="the first lines")

        stored = Log.objects.filter(job=job).count()
        connection.close()
        cluster.stop()
        stopped = time.monotonic()
        time.sleep(6)  # longer than a lease: the restart outlasts the worker's lease
        cluster.start()

        # Lines read meanwhile carry their read times: measure when they are stored.
        wait_for(stored_lines(job, stored + 1), what="lines stored again")
        back = time.monotonic() - stopped
        print(f"\nRECOVERY PostgreSQL restarted: lines stored again {back:.2f} s after the stop")
        wait_for(ended(job), timeout=120, what="the job's end")
        print(f"notes: {notes(job)}")
        assert_complete(job, 300, target)
