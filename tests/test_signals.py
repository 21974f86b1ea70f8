"""The signals that replace 2.x's post_save on Log: one per stored batch, one per change
of a job's status or state, each after commit, through real jobs on this host."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from django_remote_submission.logstream import LogPolicy
from django_remote_submission.models import Job, Log
from django_remote_submission.signals import job_status_changed, logs_stored
from django_remote_submission.tasks import submit_job_to_server
from tests.conftest import JobTarget, job_target

LINES = 2000
PROGRAM = f"""
import sys, time
for i in range(1, {LINES} + 1):
    print("line", i)
    if i % 500 == 0:
        sys.stdout.flush()
        time.sleep(0.3)
print("warning", file=sys.stderr)
"""


@pytest.fixture
def local(tmp_path: Path, transactional_db: None) -> Iterator[JobTarget]:
    yield from job_target(None, tmp_path)


class Received:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append({"sender": sender, **kwargs})


@pytest.fixture
def received_logs() -> Iterator[Received]:
    receiver = Received()
    logs_stored.connect(receiver)
    yield receiver
    logs_stored.disconnect(receiver)


@pytest.fixture
def received_status() -> Iterator[Received]:
    receiver = Received()
    job_status_changed.connect(receiver)
    yield receiver
    job_status_changed.disconnect(receiver)


def test_logs_stored_is_sent_once_per_batch_with_every_row(
    local: JobTarget, received_logs: Received
) -> None:
    job = local.job(PROGRAM)
    submit_job_to_server(job.pk, remote=False)
    job.refresh_from_db()
    assert job.status == "success"

    stored = list(job.logs.order_by("id"))
    assert len(stored) == LINES + 1
    calls = [call for call in received_logs.calls if call["job_id"] == job.pk]
    # Batches, not rows: the program printed in four bursts, each stored in few writes.
    assert 1 < len(calls) < 100
    sent = [log for call in calls for log in call["logs"]]
    # Every stored row exactly once, in order, with its values, as saved Log instances.
    assert [log.pk for log in sent] == [log.pk for log in stored]
    assert [(log.content, log.stream, log.time) for log in sent] == [
        (log.content, log.stream, log.time) for log in stored
    ]
    assert all(call["sender"] is Log for call in calls)
    assert all(isinstance(log, Log) and not log._state.adding for log in sent)
    assert sent[0].job == job
    numbers = [int(log.content.split()[1]) for log in sent if log.stream == "stdout"]
    assert numbers == list(range(1, LINES + 1))


def test_job_status_changed_follows_a_job_from_creation_to_its_end(
    local: JobTarget, received_status: Received
) -> None:
    job = local.job("print('hello')")
    submit_job_to_server(job.pk, remote=False)
    job.refresh_from_db()

    changes = [
        (c["previous_status"], c["status"], c["previous_state"], c["state"])
        for c in received_status.calls
        if c["job"].pk == job.pk
    ]
    assert changes[0] == (None, "initial", None, "queued")
    statuses = [change[1] for change in changes]
    assert statuses[-1] == "success"
    assert "submitted" in statuses
    states = [change[3] for change in changes]
    assert states[-1] == "success"
    assert "running" in states
    # One call per change: no two calls in a row report the same status and state.
    assert all(a[1:4:2] != b[1:4:2] for a, b in itertools.pairwise(changes))
    for before, after in itertools.pairwise(changes):
        assert (after[0], after[2]) == (before[1], before[3])


def test_an_admin_edit_of_the_status_is_a_change_too(
    local: JobTarget, received_status: Received
) -> None:
    job = local.job("print('x')")
    received_status.calls.clear()
    job.title = "renamed"
    job.save()
    assert received_status.calls == []  # no change of status or state
    job.status = Job.STATUS.failure
    job.save()
    [call] = received_status.calls
    assert (call["previous_status"], call["status"]) == ("initial", "failure")


def test_a_failing_receiver_does_not_stop_the_job(
    local: JobTarget, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    logs_stored.connect(broken)
    job_status_changed.connect(broken)
    try:
        job = local.job("for i in range(3): print(i)")
        with caplog.at_level(logging.ERROR, logger="django_remote_submission.signals"):
            submit_job_to_server(job.pk, remote=False)
    finally:
        logs_stored.disconnect(broken)
        job_status_changed.disconnect(broken)
    job.refresh_from_db()
    assert (job.status, job.error) == ("success", "")
    assert [log.content for log in job.logs.order_by("id")] == ["0\n", "1\n", "2\n"]
    assert "A receiver of logs_stored failed" in caplog.text
    assert "A receiver of job_status_changed failed" in caplog.text


def test_log_total_sends_its_rows_at_the_end(local: JobTarget, received_logs: Received) -> None:
    job = local.job("for i in range(1, 6): print(i)")
    submit_job_to_server(job.pk, remote=False, log_policy=LogPolicy.LOG_TOTAL)
    calls = [call for call in received_logs.calls if call["job_id"] == job.pk]
    assert len(calls) == 1
    assert [log.content for log in calls[0]["logs"]] == ["1\n2\n3\n4\n5\n"]


@pytest.mark.ssh
@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_followed_job_sends_them_from_the_worker(redis_url, tmp_path, openssh_target):
    """Handed over to the worker's follower, a job's batches are stored with those of
    other jobs in one transaction: each job still gets its own ``logs_stored``."""
    from tests.live import LiveStack
    from tests.test_live import submit
    from tests.test_reattach import wait_for

    record = tmp_path / "signals.jsonl"
    stack = LiveStack(redis_url, tmp_path / "stack")
    try:
        jobs = [
            openssh_target.job(
                "import time\nfor i in range(1, 41):\n    print(i, flush=True)\n"
                "    time.sleep(0.05)\n",
                remote_filename=f"program-{i}.py",
            )
            for i in range(3)
        ]
        stack.start_worker(
            "only",
            pool="threads",
            concurrency=2,
            DRS_SWEEP="1",
            DRS_LEASE_SECONDS="4",
            DRS_HAND_OVER_AFTER="0",
            DRS_SIGNAL_RECORD=str(record),
        )
        for job in jobs:
            submit(stack, openssh_target, job)
        for job in jobs:
            wait_for(lambda job=job: Job.objects.get(pk=job.pk).is_finished, what="the jobs")
        assert b"handed over to this host's follower" in stack.log("only")
    finally:
        stack.stop()

    events = [json.loads(line) for line in record.read_text().splitlines()]
    for job in jobs:
        job.refresh_from_db()
        assert job.state == "success", job.error
        ids = [i for e in events if e.get("logs") == job.pk for i in e["ids"]]
        stored = list(job.logs.order_by("id").values_list("id", flat=True))
        assert len(stored) == 40
        assert ids == stored
        states = [e["state"] for e in events if e.get("job") == job.pk]
        assert states[-1] == "success"
        assert "running" in states
