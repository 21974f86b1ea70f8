"""`success` means every byte was stored: a job whose output reader dies on the server still
stores every line exactly once, and a job whose output cannot be read fully says so."""

import threading
import time

import pytest

from django_remote_submission.models import Job
from django_remote_submission.runner import control_directory
from django_remote_submission.tasks import submit_job_to_server

pytestmark = pytest.mark.ssh

#: Prints lines 1-100, waits for a file named "go" in its directory, then prints 101-300.
WAITS_FOR_GO = """
    import os, sys, time
    for i in range(1, 101):
        print("line {:03d}".format(i), flush=True)
        sys.stderr.write("err {:03d}\\n".format(i))
        sys.stderr.flush()
    deadline = time.time() + 120
    while not os.path.exists("go") and time.time() < deadline:
        time.sleep(0.05)
    for i in range(101, 301):
        print("line {:03d}".format(i), flush=True)
        time.sleep(0.002)
"""


class RunningJob:
    """A job run by the runner in a thread of its own, as a worker would run it."""

    def __init__(self, target, job):
        self.target = target
        self.job = job
        self.errors = []
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        from django.db import connection

        try:
            submit_job_to_server(job_pk=self.job.pk, **self.target.submit_kwargs)
        except Exception as exc:  # the job's own outcome is asserted by the tests
            self.errors.append(exc)
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.thread.join(120)
        assert not self.thread.is_alive()

    def wait_for_lines(self, count, stream="stdout"):
        deadline = time.monotonic() + 60
        while self.job.logs.filter(stream=stream).count() < count:
            assert time.monotonic() < deadline, f"fewer than {count} lines arrived"
            time.sleep(0.05)


def kill_readers(target, job):
    """What an OOM killer or an admin's `pkill tail` does: the job's output readers die."""
    ctl = control_directory(job).rsplit("/", 1)[-1]  # .drs-<uuid>: only this job's readers
    # "[t]ail" does not match the pkill command's own line.
    return target.transport.run(["pkill", "-KILL", "-f", f"[t]ail -c .*{ctl}/std"]).exit_code


def go(target, job):
    target.transport.put_text("", f"{job.remote_directory}/go")


def contents(job, stream):
    return [log.content for log in job.logs.filter(stream=stream).order_by("id")]


def test_a_killed_reader_loses_no_line(target, transactional_db):
    job = target.job(WAITS_FOR_GO)
    with RunningJob(target, job) as running:
        running.wait_for_lines(100)
        running.wait_for_lines(100, "stderr")
        assert kill_readers(target, job) == 0, "no reader was running"
        go(target, job)
    assert running.errors == []
    job.refresh_from_db()
    assert (job.status, job.exit_code, job.error) == ("success", 0, "")
    assert contents(job, "stdout") == [f"line {i:03d}\n" for i in range(1, 301)]
    assert contents(job, "stderr") == [f"err {i:03d}\n" for i in range(1, 101)]
    assert job.stdout_offset == 300 * len("line 001\n")


def test_readers_killed_as_the_program_ends_lose_no_line(target, transactional_db):
    # The program writes its last 200 lines and ends while nobody reads: what the readers
    # did not deliver is read at the end, from the stored offsets.
    job = target.job(WAITS_FOR_GO.replace("time.sleep(0.002)", "pass"))
    with RunningJob(target, job) as running:
        running.wait_for_lines(100)
        for _ in range(3):
            kill_readers(target, job)
            time.sleep(0.05)
        go(target, job)
        for _ in range(15):
            kill_readers(target, job)
    assert running.errors == []
    job.refresh_from_db()
    assert (job.status, job.exit_code, job.error) == ("success", 0, "")
    assert contents(job, "stdout") == [f"line {i:03d}\n" for i in range(1, 301)]


def test_output_that_cannot_be_read_is_not_a_success(target, transactional_db):
    job = target.job(WAITS_FOR_GO)
    with RunningJob(target, job) as running:
        running.wait_for_lines(100)
        running.wait_for_lines(100, "stderr")
        # Its output file is gone (someone cleaned up), then its readers die: what the
        # program writes from now on cannot be stored.
        target.transport.remove(f"{control_directory(job)}/stdout")
        assert kill_readers(target, job) == 0, "no reader was running"
        go(target, job)
    job.refresh_from_db()
    assert job.status == Job.STATUS.failure
    assert "stdout" in job.error, job.error
    assert "is gone" in job.error, job.error
    assert len(running.errors) == 1
    assert contents(job, "stdout") == [f"line {i:03d}\n" for i in range(1, 101)]
