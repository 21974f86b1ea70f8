"""A launch that fails says which step failed and why: its first error, not a later one."""

import pytest

from django_remote_submission.exceptions import TransportError
from django_remote_submission.runner import control_directory, run_job

pytestmark = pytest.mark.ssh


def test_a_control_directory_that_cannot_be_made_is_the_reason(target):
    job = target.job("print('never')")
    target.transport.mkdir_p(target.directory)
    # A file where the job's control directory must go.
    target.transport.put_text("in the way\n", control_directory(job))
    with pytest.raises(TransportError):
        run_job(job, target.options())
    job.refresh_from_db()
    assert job.status == "failure"
    # Staging makes the control directory (to keep the listing a worker taking the job
    # over needs), so that is the step that fails, and says so.
    assert job.error.startswith("Creating directory "), job.error
    assert f".drs-{job.uuid}' failed on " in job.error, job.error
    assert "File exists" in job.error, job.error
    assert "monitor.pid" not in job.error
    assert not job.logs.exists()


def test_a_job_directory_that_cannot_be_entered_is_the_reason(openssh_target):
    # An ordinary login (root enters any directory): the job's directory has lost its
    # search permission, so the first step that touches it fails, and says so.
    target = openssh_target
    job = target.job("print('never')")
    target.transport.mkdir_p(target.directory)
    target.transport.run(["chmod", "a-x", "--", target.directory])
    try:
        with pytest.raises(TransportError):
            run_job(job, target.options())
    finally:
        target.transport.run(["chmod", "u+x", "--", target.directory])
    job.refresh_from_db()
    assert job.status == "failure"
    assert "Permission denied" in job.error, job.error
    assert "monitor.pid" not in job.error
