"""Jobs of one account in one worker process against OpenSSH's limit on sessions per connection.

Each running job keeps three sessions open (two ``tail -f`` and SFTP) and opens more for
short commands; OpenSSH allows 10 per connection by default (``MaxSessions``). These run
jobs in threads of this process, as a threads-pool worker does, on servers of their own.
"""

import subprocess
import textwrap
import threading

import pytest

from django_remote_submission.exceptions import ConnectionFailed
from django_remote_submission.tasks import submit_job_to_server
from django_remote_submission.transport.ssh import pool
from tests.conftest import job_target

pytestmark = pytest.mark.ssh

#: Waits (at most a minute) until ``count`` jobs have started, so that all of them run at
#: once; exits with 3 if they never did.
TOGETHER = """
    import os, sys, time
    os.close(os.open("{barrier}/{index}", os.O_CREAT | os.O_WRONLY))
    deadline = time.monotonic() + 60
    while len(os.listdir("{barrier}")) < {count} and time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit(0 if len(os.listdir("{barrier}")) >= {count} else 3)
"""


@pytest.fixture(scope="module")
def default_sessions_account(start_openssh):
    """OpenSSH as installed: MaxSessions 10."""
    return start_openssh(max_sessions=10)[1]


@pytest.fixture(scope="module")
def two_sessions_account(start_openssh):
    """A server stricter than OpenSSH's default: two sessions per connection."""
    return start_openssh(max_sessions=2)[1]


@pytest.fixture
def default_sessions_target(default_sessions_account, tmp_path, transactional_db):
    yield from job_target(default_sessions_account, tmp_path)


@pytest.fixture
def two_sessions_target(two_sessions_account, tmp_path, transactional_db):
    yield from job_target(two_sessions_account, tmp_path)


@pytest.fixture
def closing_server(start_openssh, tmp_path, transactional_db):
    """A two-session server of this test's own, which it may stop listening, and a target
    on it whose transport holds a connection to it open."""
    server, account = start_openssh(max_sessions=2)
    for target in job_target(account, tmp_path):
        yield server, target


@pytest.fixture(autouse=True)
def _forget_pooled_connections():
    """This process's pool must not hand one test's connections to the next."""
    yield
    pool.close_all()


def run_together(target, count):
    """Submits ``count`` jobs of the target's account at once, each in a thread of its own,
    as a threads-pool worker runs them. Returns the jobs, reloaded, and what was raised."""
    barrier = f"{target.directory}/started"
    target.transport.mkdir_p(barrier)
    jobs = [
        target.job(
            textwrap.dedent(TOGETHER).format(barrier=barrier, index=index, count=count),
            remote_directory=f"{target.directory}/{index}",
        )
        for index in range(count)
    ]
    errors = []

    def submit(job):
        from django.db import connection

        try:
            submit_job_to_server(job_pk=job.pk, **target.submit_kwargs)
        except Exception as exc:  # recorded on the job too; asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not any(thread.is_alive() for thread in threads)
    for job in jobs:
        job.refresh_from_db()
    return jobs, errors


def test_more_jobs_of_one_account_than_one_connection_carries(default_sessions_target):
    # Six jobs need at least 18 sessions at once: more than one connection may carry.
    jobs, errors = run_together(default_sessions_target, 6)
    assert errors == []
    assert [(job.status, job.error) for job in jobs] == [("success", "")] * 6


def test_a_server_allowing_fewer_sessions_than_a_job_needs(two_sessions_target):
    jobs, errors = run_together(two_sessions_target, 2)
    assert errors == []
    assert [(job.status, job.error) for job in jobs] == [("success", "")] * 2


def test_a_follower_that_cannot_open_stops_the_program(closing_server):
    server, target = closing_server
    # The job rides on the target's pooled connection. With the server listening no
    # more, no other can be opened when the second follower finds that one full.
    server.process.terminate()
    server.process.wait()
    job = target.job("import time\nprint('started', flush=True)\ntime.sleep(600)")
    with pytest.raises(ConnectionFailed):
        submit_job_to_server(job_pk=job.pk, **target.submit_kwargs)
    job.refresh_from_db()
    assert job.status == "failure"
    assert job.remote_pgid is not None
    assert "session" in job.error
    assert str(target.account.port) in job.error
    left = subprocess.run(
        ["ps", "-o", "pid=,stat=,args=", "-s", str(job.remote_pgid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    assert [line for line in left if not line.split()[1].startswith("Z")] == []
