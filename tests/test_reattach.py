"""Jobs outlive their workers: a worker process killed mid-job (threads pool, prefork
pool, a prefork pool process alone), a job canceled while no worker is alive, and a queued
task lost with Redis. Real worker processes on a real Redis, over the private sshd; each
test asserts the final state, the exact numbered lines and that no program is left."""

import re
import time

import pytest
from django.db import connection

from django_remote_submission.models import Job, Log, Result
from django_remote_submission.tasks import cancel_job
from tests.live import LiveStack
from tests.test_live import submit
from tests.test_reconnect import cut_target  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

#: Short leases, so that a dead worker's jobs are taken over within seconds.
WORKER_ENV = {"DRS_SWEEP": "1", "DRS_LEASE_SECONDS": "4"}

LINES = 300
PROGRAM = f"""
import time
for i in range(1, {LINES + 1}):
    print("n", i, flush=True)
    time.sleep(0.05)
with open("result.txt", "w") as out:
    out.write("done\\n")
raise SystemExit(3)
"""
FOREVER = """
import itertools, time
for i in itertools.count(1):
    print("n", i, flush=True)
    time.sleep(0.05)
"""


@pytest.fixture
def stack(redis_url, tmp_path):
    live = LiveStack(redis_url, tmp_path / "stack")
    yield live
    live.stop()


def numbers(job):
    """The numbered lines stored for the job, in order (the app's own notes left out)."""
    found = []
    for content in Log.objects.filter(job=job).order_by("id").values_list("content", flat=True):
        match = re.fullmatch(r"n (\d+)\n", content)
        if match:
            found.append(int(match.group(1)))
    return found


def wait_for(predicate, *, timeout=90.0, what="it"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        connection.close()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stored_lines(job, at_least):
    return lambda: Log.objects.filter(job=job).count() >= at_least


def lease_pid(job):
    owner = Job.objects.get(pk=job.pk).lease_owner
    return int(owner.split(":")[1]) if owner else None


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_killed_worker_s_job_is_taken_over_and_every_line_stored_once(
    stack, openssh_target, pool
):
    target = openssh_target
    job = target.job(PROGRAM)
    stack.start_worker("first", pool=pool, concurrency=2, **WORKER_ENV)
    task = submit(stack, target, job)
    wait_for(stored_lines(job, 40), what="the first lines")
    # Another worker host is up; the first one dies with its whole process tree.
    stack.start_worker("second", pool=pool, concurrency=2, **WORKER_ENV)
    stack.kill("first")
    killed_at = Log.objects.filter(job=job).count()
    assert killed_at < LINES  # it really died mid-job

    results = task.get(timeout=120)
    job.refresh_from_db()
    assert (job.state, job.status, job.exit_code) == ("failure", "failure", 3)
    assert job.error == "The program exited with code 3."
    assert numbers(job) == list(range(1, LINES + 1))
    assert results == {"result.txt": Result.objects.get(job=job).pk}
    notes = Log.objects.filter(job=job, content__contains="another took it over")
    assert notes.count() == 1
    assert (job.lease_owner, job.run_options.get("password")) == ("", None)
    assert target.live_processes(job.remote_pgid) == []


def test_a_killed_prefork_pool_process_is_replaced_and_its_job_taken_over(stack, openssh_target):
    # Only the pool process running the task dies (the OOM killer's choice): the
    # message comes back to the queue instead of a WorkerLostError for .get().
    target = openssh_target
    job = target.job(PROGRAM)
    # The task follows its job all along here (no hand-over to the host's follower).
    stack.start_worker(
        "only", pool="prefork", concurrency=2, **WORKER_ENV, DRS_HAND_OVER_AFTER="600"
    )
    task = submit(stack, target, job)
    wait_for(stored_lines(job, 40), what="the first lines")
    import os
    import signal

    os.kill(lease_pid(job), signal.SIGKILL)

    assert task.get(timeout=120) == {"result.txt": Result.objects.get(job=job).pk}
    job.refresh_from_db()
    assert (job.state, job.exit_code) == ("failure", 3)
    assert numbers(job) == list(range(1, LINES + 1))
    assert target.live_processes(job.remote_pgid) == []


def test_a_job_canceled_while_its_worker_is_dead_is_stopped_by_the_cancel(stack, openssh_target):
    target = openssh_target
    job = target.job(FOREVER)
    stack.start_worker("only", pool="threads", concurrency=2, **WORKER_ENV)
    submit(stack, target, job)
    wait_for(stored_lines(job, 20), what="the first lines")
    stack.kill("only")
    job.refresh_from_db()
    assert target.live_processes(job.remote_pgid) != []  # it runs on, orphaned
    wait_for(lambda: Job.objects.get(pk=job.pk).lease_expires < _now(), what="the lease")

    assert cancel_job(job.pk) is True  # one call, with no worker alive

    job.refresh_from_db()
    assert (job.state, job.status) == ("canceled", "failure")
    assert job.error.startswith("Canceled at the request of a user.")
    assert target.live_processes(job.remote_pgid) == []
    seen = numbers(job)
    assert seen == list(range(1, len(seen) + 1))  # none lost, none twice, up to the stop
    assert len(seen) >= 20


def test_a_queued_task_lost_with_redis_is_sent_again(stack, openssh_target, redis_url):
    import redis

    target = openssh_target
    job = target.job("for i in range(1, 51):\n    print('n', i)\n")
    submit(stack, target, job)
    # Redis restarted without persistence: the queue, and the task in it, are gone.
    with redis.Redis.from_url(redis_url) as client:
        assert client.delete(stack.queue) == 1
    stack.start_worker("late", pool="threads", concurrency=2, DRS_QUEUE_GRACE="2", **WORKER_ENV)

    wait_for(lambda: Job.objects.get(pk=job.pk).state == "success", what="the job")
    job.refresh_from_db()
    assert numbers(job) == list(range(1, 51))
    assert b"waited in the queue too long" in stack.log("late")


def _now():
    from django.utils import timezone

    return timezone.now()


def test_a_job_failed_while_its_server_was_away_is_taken_up_when_it_is_back(
    stack,
    cut_target,  # noqa: F811
):
    from tests.test_reconnect import PROGRAM as WAITS_FOR_GO
    from tests.test_reconnect import go

    target = cut_target
    job = target.job(WAITS_FOR_GO)
    stack.start_worker(
        "only", pool="threads", concurrency=2, DRS_RECONNECT_TIMEOUT="2", **WORKER_ENV
    )
    # A key, not a password: a job's password is erased when it ends (here, failed).
    account = target.account
    login = {"public_key_filename": str(account.key_filename), "username": account.username}
    submit(stack, target, job, login)
    wait_for(stored_lines(job, 100), what="the first lines")
    target.sshd.halt()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, what="the job to give up")
    job.refresh_from_db()
    assert job.state == "failure"
    assert "may still be running" in job.error

    target.sshd.resume()
    go(target, job)  # the program goes on with lines 101-300

    wait_for(lambda: Job.objects.get(pk=job.pk).state == "success", what="the re-attach")
    job.refresh_from_db()
    assert (job.exit_code, job.error) == (0, "")
    lines = [
        c
        for c in Log.objects.filter(job=job, stream="stdout")
        .order_by("id")
        .values_list("content", flat=True)
    ]
    assert lines == [f"line {i:03d}\n" for i in range(1, 301)]
    assert Log.objects.filter(job=job, content__contains="answered again").count() == 1
    assert target.live_processes(job.remote_pgid) == []
