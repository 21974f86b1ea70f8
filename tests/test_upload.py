"""Uploads over SSH are checked: a full disk fails them with the real cause, and never
leaves a short file behind a claim of success."""

import os
import pwd
import subprocess
import uuid
from pathlib import Path

import pytest

from django_remote_submission.exceptions import TransportError
from django_remote_submission.runner import run_job
from django_remote_submission.transport.shell import qpath
from django_remote_submission.transport.ssh import ConnectionPool
from tests.conftest import job_target, ssh_transport, unavailable

pytestmark = pytest.mark.ssh

#: The size of the small filesystem; what is uploaded to it is larger.
TINY = 64 * 1024


@pytest.fixture
def tiny_disk(ssh_account):
    """A directory of the login's own on a 64 KiB filesystem, in the account's home."""
    if os.geteuid() != 0:
        unavailable("mounting a small filesystem needs root")
    if not ssh_account.home:
        unavailable(f"the home of the {ssh_account.name} server is not on this machine")
    directory = Path(ssh_account.home) / f"tiny-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TINY},mode=0755", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        directory.rmdir()
        unavailable(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        entry = pwd.getpwnam(ssh_account.username)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        yield str(directory)
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=False)
        directory.rmdir()


def fill(transport, directory):
    """Fills the disk of ``directory``: writing more than fits fails, and leaves it full."""
    transport.run_shell(f"head -c {4 * TINY} /dev/zero > {qpath(directory)}/filler")


def test_an_upload_larger_than_the_free_space_fails_with_the_cause(ssh_account, tiny_disk):
    data = b"print('x')\n" * (TINY // 4)
    path = f"{tiny_disk}/program.py"
    with ssh_transport(ssh_account, connection_pool=ConnectionPool()) as t:
        with pytest.raises(TransportError) as excinfo:
            t.put_bytes(data, path)
        size = t.file_size(path)
        where = t.description
    assert size < len(data)
    assert str(excinfo.value) == (
        f"Could not write {path!r} on {where}: No space left on device "
        f"(wrote {size} of {len(data)} bytes)."
    )


def test_an_upload_to_a_full_disk_fails_with_the_cause(ssh_account, tiny_disk):
    path = f"{tiny_disk}/program.py"
    with ssh_transport(ssh_account, connection_pool=ConnectionPool()) as t:
        fill(t, tiny_disk)
        with pytest.raises(TransportError) as excinfo:
            t.put_text("print('hello')\n", path, mode=0o755)
        where = t.description
    assert str(excinfo.value) == (
        f"Could not write {path!r} on {where}: No space left on device (wrote 0 of 15 bytes)."
    )


def test_an_upload_that_fits_still_works_there(ssh_account, tiny_disk):
    path = f"{tiny_disk}/program.py"
    with ssh_transport(ssh_account, connection_pool=ConnectionPool()) as t:
        assert t.put_text("print('hello')\n", path, mode=0o700) == 15
        assert t.read_file(path) == b"print('hello')\n"
        assert t.run(["stat", "-c", "%a", path]).stdout == b"700\n"


def test_a_job_on_a_full_disk_fails_naming_the_upload(ssh_account, tiny_disk, tmp_path, db):
    for target in job_target(ssh_account, tmp_path):
        directory = f"{tiny_disk}/job"
        target.transport.mkdir_p(directory)
        fill(target.transport, tiny_disk)
        job = target.job("print('never')\n", remote_directory=directory)
        with pytest.raises(TransportError):
            run_job(job, target.options())
        job.refresh_from_db()
        assert job.status == "failure"
        assert f"Could not write '{directory}/program.py'" in job.error, job.error
        assert "No space left on device" in job.error, job.error
        assert "monitor.pid" not in job.error


@pytest.fixture
def local_tiny_disk(tmp_path):
    """A directory on a 64 KiB filesystem, for the local transport (remote=False)."""
    if os.geteuid() != 0:
        unavailable("mounting a small filesystem needs root")
    directory = tmp_path / "tiny"
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TINY}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        unavailable(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield str(directory)
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=False)


def test_a_local_job_on_a_full_disk_fails_naming_the_upload(local_tiny_disk, tmp_path, db):
    # The local transport keeps the same promise: a short write fails, with its cause.
    for target in job_target(None, tmp_path):
        directory = f"{local_tiny_disk}/job"
        target.transport.mkdir_p(directory)
        fill(target.transport, local_tiny_disk)
        job = target.job("print('never')\n" * 2000, remote_directory=directory)
        with pytest.raises(TransportError):
            run_job(job, target.options())
        job.refresh_from_db()
        assert job.status == "failure"
        assert f"Could not write '{directory}/program.py'" in job.error, job.error
        assert "No space left on device" in job.error, job.error
        assert not target.transport.exists(f"{directory}/program.py") or (
            target.transport.file_size(f"{directory}/program.py") < len(job.program)
        )
