"""A lost connection is the normal weather of SSH: the worker connects again and goes on
from the stored offsets, and gives up only after REMOTE_SUBMISSION_RECONNECT_TIMEOUT,
saying that the program may still be running. Against a private OpenSSH sshd that the
tests cut off and stop."""

import time

import pytest
from django.test import override_settings

from django_remote_submission.models import Job
from tests.conftest import job_target
from tests.test_output_integrity import RunningJob

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

#: Lines 1-100, then (once a file named "go" exists) lines 101-300.
PROGRAM = """
    import os, time
    for i in range(1, 101):
        print("line {:03d}".format(i), flush=True)
    deadline = time.time() + 120
    while not os.path.exists("go") and time.time() < deadline:
        time.sleep(0.05)
    for i in range(101, 301):
        print("line {:03d}".format(i), flush=True)
"""


@pytest.fixture
def cut_target(start_openssh, tmp_path, transactional_db):
    """A job target on an sshd of its own, which the test may cut off and stop."""
    sshd, account = start_openssh()
    for target in job_target(account, tmp_path):
        target.sshd = sshd
        yield target
        if sshd.process is None:
            sshd.resume()
        target.transport.close()  # its connection may be one that was cut


def go(target, job):
    target.transport.close()  # a connection of before the cut is dead
    target.transport.put_text("", f"{job.remote_directory}/go")


def stdout(job):
    return [log.content for log in job.logs.filter(stream="stdout").order_by("id")]


def notes(job):
    return [log.content for log in job.logs.filter(stream="stderr").order_by("id")]


def test_a_cut_connection_is_made_again(cut_target):
    target = cut_target
    job = target.job(PROGRAM)
    with RunningJob(target, job) as running:
        running.wait_for_lines(100)
        target.sshd.drop_connections()
        go(target, job)
    assert running.errors == []
    job.refresh_from_db()
    assert (job.status, job.exit_code, job.error) == ("success", 0, "")
    assert stdout(job) == [f"line {i:03d}\n" for i in range(1, 301)]
    [note] = notes(job)
    assert "connected again after" in note


def test_a_server_away_for_a_while_is_waited_for(cut_target):
    target = cut_target
    job = target.job(PROGRAM)
    with RunningJob(target, job) as running:
        running.wait_for_lines(100)
        target.sshd.halt()
        time.sleep(3)  # several tries at connecting fail meanwhile
        job.refresh_from_db()
        assert job.status == "submitted"
        target.sshd.resume()
        go(target, job)
    assert running.errors == []
    job.refresh_from_db()
    assert (job.status, job.exit_code) == ("success", 0), job.error
    assert stdout(job) == [f"line {i:03d}\n" for i in range(1, 301)]
    assert len(notes(job)) == 1


def test_a_server_that_stays_away_fails_the_job_and_its_program_runs_on(cut_target):
    target = cut_target
    job = target.job(PROGRAM)
    with override_settings(REMOTE_SUBMISSION_RECONNECT_TIMEOUT=2):
        with RunningJob(target, job) as running:
            running.wait_for_lines(100)
            target.sshd.halt()
        assert len(running.errors) == 1
    job.refresh_from_db()
    assert job.status == Job.STATUS.failure
    assert "REMOTE_SUBMISSION_RECONNECT_TIMEOUT" in job.error
    assert f"may still be running on the server, as process group {job.remote_pgid}" in (job.error)
    assert stdout(job) == [f"line {i:03d}\n" for i in range(1, 101)]
    # When the server is back, the program is still there, waiting for its "go".
    target.sshd.resume()
    target.transport.close()
    assert target.live_processes(job.remote_pgid)
    go(target, job)
    assert target.transport.wait_for_exit_code(_process(job)) == 0


def _process(job):
    from django_remote_submission.runner import control_directory
    from django_remote_submission.transport.detached import DetachedProcess

    return DetachedProcess(job.remote_pgid, job.remote_pid, control_directory(job))
