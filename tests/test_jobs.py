"""The life of a job: conditional status changes that one actor wins, and cancel's rules."""

import datetime as dt
import threading
import time

import pytest
from django.db import connection
from django.db.models.signals import post_save
from django.test import override_settings
from django.utils import timezone

from django_remote_submission import jobs
from django_remote_submission.exceptions import AuthenticationFailed
from django_remote_submission.models import Job
from django_remote_submission.tasks import cancel_job, submit_job_to_server
from tests.factories import make_job


@pytest.fixture
def saves():
    seen = []

    def record(sender, instance, **kwargs):
        seen.append((instance.pk, instance.status))

    post_save.connect(record, sender=Job)
    yield seen
    post_save.disconnect(record, sender=Job)


def running(**fields):
    values = {
        "status": "submitted",
        "state": "running",
        "heartbeat": timezone.now(),
        "remote_pgid": 4242,
        "lease_owner": "elsewhere:1:abcd",
        "lease_expires": timezone.now() + dt.timedelta(seconds=60),
    }
    values.update(fields)
    return make_job(**values)


def test_a_job_ended_by_one_actor_is_not_ended_again(db, saves):
    job = running()
    saves.clear()
    assert jobs.fail(job, "The connection was lost.") is True
    other = Job.objects.get(pk=job.pk)
    other.status, other.state = "submitted", "running"  # what a late worker still believes
    assert jobs.finish(other, 0, "") is False
    job.refresh_from_db()
    assert (job.status, job.error, job.exit_code) == ("failure", "The connection was lost.", None)
    # One status change, one post_save (2.x receivers see it as from a save()).
    assert saves == [(job.pk, "failure")]


def test_of_many_concurrent_actors_exactly_one_wins(transactional_db):
    job = running()
    wins = []
    barrier = threading.Barrier(8)

    def act(i):
        try:
            mine = Job.objects.get(pk=job.pk)
            barrier.wait()
            # Odd ones end it as its worker would, even ones as a failure or a cancel.
            won = jobs.finish(mine, i, f"reason {i}") if i % 2 else jobs.fail(mine, f"reason {i}")
            if won:
                wins.append(i)
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    job.refresh_from_db()
    assert (job.status, job.error) == ("failure", f"reason {wins[0]}")


def test_cancel_of_a_job_whose_worker_reports_only_asks(db):
    job = running()
    assert cancel_job(job.pk) is True
    job.refresh_from_db()
    assert job.status == "submitted"  # its worker stops it, and ends it
    assert job.cancel_requested_at is not None


def test_cancel_of_a_job_nobody_follows_and_whose_server_is_away_ends_it(db):
    # Its lease expired (its worker died) and its server cannot be reached: the cancel
    # ends it, saying its program may still run. (Over a real server, the cancel stops
    # the program: tests/test_reattach.py.)
    job = running(lease_expires=timezone.now() - dt.timedelta(seconds=1))
    job.server.hostname, job.server.port = "127.0.0.1", 9  # nothing listens there
    job.server.save()
    assert cancel_job(job.pk) is True
    job.refresh_from_db()
    assert (job.status, job.state) == ("failure", "canceled")
    assert job.error.startswith("Canceled, but stopping the job failed")
    assert "4242" in job.error
    assert (job.lease_owner, job.lease_expires) == ("", None)


def test_cancel_of_a_queued_job_ends_it_and_of_an_ended_job_is_refused(db):
    job = make_job()
    assert cancel_job(job.pk) is True
    job.refresh_from_db()
    assert (job.status, job.state, job.error) == (
        "failure",
        "canceled",
        "Canceled before it started.",
    )
    assert cancel_job(job.pk) is False


def test_a_new_run_queues_an_ended_job_again(db, saves):
    job = make_job(status="success", state="success", exit_code=0, finished_at=timezone.now())
    saves.clear()
    jobs.begin_run(job.pk, "task-2")
    job.refresh_from_db()
    assert (job.status, job.state, job.exit_code, job.finished_at, job.task_id) == (
        "initial",
        "queued",
        None,
        None,
        "task-2",
    )
    assert saves == [(job.pk, "initial")]


@pytest.mark.ssh
def test_a_run_again_that_fails_early_records_its_own_failure(openssh_target):
    # The job succeeded once; run again with a wrong password, it must not keep
    # showing the earlier success.
    target = openssh_target
    job = target.job("print('once')")
    submit_job_to_server(job_pk=job.pk, **target.submit_kwargs)
    job.refresh_from_db()
    assert job.status == "success"
    with pytest.raises(AuthenticationFailed):
        submit_job_to_server(
            job_pk=job.pk, password="not-" + (target.account.password or "x"), username="x"
        )
    job.refresh_from_db()
    assert job.status == "failure"
    assert "refused the password" in job.error


@pytest.mark.django_db
@override_settings(REMOTE_SUBMISSION_QUEUE_GRACE=60)
def test_only_sent_jobs_that_waited_too_long_are_sent_again():
    old = timezone.now() - dt.timedelta(minutes=5)
    never_sent = make_job()  # made, never submitted: nobody's to run
    Job.objects.filter(pk=never_sent.pk).update(created=old)
    lost = make_job(task_id="t-1", queued_at=old)
    fresh = make_job(task_id="t-2", queued_at=timezone.now())
    resent = jobs.requeue_lost()
    assert [job.pk for job in resent] == [lost.pk]
    # Marked as sent again now, by this sweep only: another finds nothing.
    assert jobs.requeue_lost() == []
    assert fresh.pk not in [job.pk for job in resent]


@pytest.mark.django_db
def test_a_lease_is_taken_over_only_once_it_expired_and_by_one_actor():
    job = running(lease_expires=timezone.now() + dt.timedelta(seconds=30))
    assert jobs.take_over(job, "b:2:x") is False
    Job.objects.filter(pk=job.pk).update(lease_expires=timezone.now() - dt.timedelta(seconds=1))
    assert jobs.take_over(job, "b:2:x") is True
    assert jobs.take_over(job, "c:3:y") is False
    job.refresh_from_db()
    assert job.lease_owner == "b:2:x"
    # Handed over: the host's name stays, so a job only it can reach stays there.
    assert jobs.hand_over(job, "b:2:x") is True
    job.refresh_from_db()
    assert job.lease_owner == "b:released"
    assert jobs.was_released(job)
    assert list(jobs.orphaned()) == [job]


def test_a_job_waiting_for_a_finisher_stays_followed_and_keeps_its_lease(transactional_db):
    """A thousand jobs ending at once wait for the finishers longer than a lease: the
    sweep must not take them over from their own worker meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    from django_remote_submission.follower import Engine, Followed
    from django_remote_submission.logstream import LineSplitter, LogPolicy, LogWriter
    from django_remote_submission.runner import RunOptions
    from django_remote_submission.transport.detached import DetachedProcess

    ended = []
    engine = Engine(
        "here:1:abcd",
        lambda job, results, error: ended.append(error),
        _finishers=ThreadPoolExecutor(1),
    )
    soon = timezone.now() + dt.timedelta(seconds=1)
    job = running(lease_owner=engine.owner, lease_expires=soon)
    busy = threading.Event()
    engine._finishers.submit(busy.wait, 30)  # the only finisher is busy
    writer = LogWriter(job, LogPolicy.LOG_LIVE, batch_lines=10, batch_seconds=1, max_bytes=None)
    process = DetachedProcess(4242, 4243, f".drs-{job.uuid}")
    followed = Followed(job, RunOptions(), process, writer, [LineSplitter(100)] * 2, [0, 0])
    engine._finish(followed)
    try:
        assert engine.follows(job.pk)
        jobs.renew_kept()  # as the sweep of its process does
        job.refresh_from_db()
        assert job.lease_expires > soon + dt.timedelta(seconds=10)
        # Not the sweep's to take over: its lease is live, and its engine holds it.
        assert job.pk not in set(jobs.orphaned().values_list("pk", flat=True))
    finally:
        busy.set()
        engine._finishers.shutdown(wait=True)
    # Its finisher ran (and failed: there is no such server) and let go of it.
    assert len(ended) == 1
    assert not engine.follows(job.pk)


@override_settings(REMOTE_SUBMISSION_LEASE_SECONDS=0.4)  # renewed every 0.1 s
def test_a_job_being_launched_keeps_its_lease_from_a_thread_of_its_own(transactional_db):
    """Staging on a slow server writes nothing for the job: without a kept lease, the
    sweep took such a job for an orphan and launched it a second time."""
    owner = "here:1:abcd"
    job = running(state="starting", lease_owner=owner, lease_expires=timezone.now())
    seen = {job.lease_expires}
    with jobs.keep(job.pk, owner):
        assert any(t.name == f"drs-lease-{job.pk}" for t in threading.enumerate())
        deadline = time.monotonic() + 30
        while len(seen) < 4 and time.monotonic() < deadline:
            seen.add(Job.objects.values_list("lease_expires", flat=True).get(pk=job.pk))
            time.sleep(0.05)
    assert len(seen) >= 4  # renewed again and again, each time further
    assert not any(t.name == f"drs-lease-{job.pk}" for t in threading.enumerate())


def test_a_job_being_launched_in_a_sweeping_process_is_renewed_by_the_sweep(db, monkeypatch):
    import os

    monkeypatch.setattr(jobs, "sweep_pid", os.getpid())
    owner = "here:1:abcd"
    past = timezone.now() - dt.timedelta(seconds=5)
    job = running(state="starting", lease_owner=owner, lease_expires=past)
    assert job.pk in set(jobs.orphaned().values_list("pk", flat=True))
    with jobs.keep(job.pk, owner):
        assert not any(t.name == f"drs-lease-{job.pk}" for t in threading.enumerate())
        assert jobs.renew_kept() == 1
        job.refresh_from_db()
        assert job.lease_expires > past
        assert job.pk not in set(jobs.orphaned().values_list("pk", flat=True))
    assert jobs.renew_kept() == 0  # let go of once the block ends


def test_an_idle_sweep_keeps_one_database_connection(transactional_db):
    """Four passes a second: a connection each would be most of what an idle sweep
    costs the database (the fork of a server process each time, on PostgreSQL)."""
    from django.db.backends.signals import connection_created

    from django_remote_submission.worker import Sweep

    opened = []

    def record(sender, connection, **kwargs):
        opened.append(threading.current_thread().name)

    sweep = Sweep(resend=lambda job: None, on_end=lambda job, results, error: None)
    connection_created.connect(record)
    try:
        sweep.start()
        deadline = time.monotonic() + 30
        while sweep.passes < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweep.stop()
        connection_created.disconnect(record)
    assert sweep.passes >= 8
    assert opened.count("drs-sweep") == 1
