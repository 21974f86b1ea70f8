"""A remote path is never an option, nor code: hostile directory, file and result names
work as the literal names they are, and nothing outside the job's directory is touched."""

import uuid

import pytest

from django_remote_submission.runner import remote_directory
from django_remote_submission.tasks import submit_job_to_server

pytestmark = pytest.mark.ssh

#: (remote directory relative to the login's home, remote file name). A directory named
#: "-delete" once emptied the whole home directory, ~/.ssh/authorized_keys included.
NAMES = [
    ("-delete", "-rf"),
    ("-rf", "--help"),
    ("--help", "-exec"),
    ("-exec", "-delete.py"),
    ("dir with spaces", "file with spaces.py"),
    ('it\'s "quoted"', 'it\'s "quoted".py'),
    ("new\nline", "new\nline.py"),
    ("$(touch PWNED-1)", "$(touch PWNED-2).py"),
    ("`touch PWNED-3`;x", "`touch PWNED-4`;.py"),
    ("~/-delete-tilde", "-x"),
    ("-delete/-rf", "-"),
]

PROGRAM = """
import os
with open("result.out", "w") as f:
    f.write("result\\n")
with open("-dash.out", "w") as f:
    f.write("dash\\n")
print("ran")
"""

#: Result patterns of the same kind: data for fnmatch, never a command line.
PATTERNS = ["-delete", "$(touch PWNED-5)", "--help", "*.out"]


def home_files(target):
    """Every file of the login's home (the transport's working directory), by path."""
    return {f.path: f.size for f in target.transport.list_tree(".")}


@pytest.mark.parametrize(("directory", "filename"), NAMES, ids=[repr(n) for n, _ in NAMES])
def test_hostile_names_are_literal_names(target, directory, filename, monkeypatch):
    transport = target.transport
    if target.account is None:
        # Local jobs start in the worker's home, as SSH ones start in the login's.
        monkeypatch.setenv("HOME", str(transport.workdir))
    canary = f"canary-{uuid.uuid4().hex[:8]}"
    transport.mkdir_p(f"{canary}/inside")
    transport.put_text("keep me\n", f"{canary}/inside/file.txt")
    transport.put_text("keep me too\n", f"{canary}.txt")
    before = home_files(target)
    job = target.job(PROGRAM, remote_directory=directory, remote_filename=filename)
    place = remote_directory(job)
    try:
        results = submit_job_to_server(
            job_pk=job.pk, store_results=PATTERNS, **target.submit_kwargs
        )
        job.refresh_from_db()
        assert (job.status, job.exit_code, job.error) == ("success", 0, "")
        assert [log.content for log in job.logs.order_by("id")] == ["ran\n"]
        assert sorted(results) == ["-dash.out", "result.out"]
        contents = {}
        for result in job.results.all():
            with result.local_file.open("rb") as stored:
                contents[result.remote_filename] = stored.read()
        assert contents == {"result.out": b"result\n", "-dash.out": b"dash\n"}

        # The job's files are where their names say, under those very names.
        assert transport.read_file(f"{place}/{filename}") == job.program.encode()
        after = home_files(target)
        # No command ran that a name spelled out ($(touch PWNED-1) and the like).
        assert not [path for path in after if path.rsplit("/", 1)[-1].startswith("PWNED")]
        # Nothing that was there before is gone or changed (.ssh/authorized_keys included).
        assert {path: after.get(path) for path in before} == before
        assert transport.read_file(f"{canary}/inside/file.txt") == b"keep me\n"
    finally:
        transport.remove(place.split("/")[0], recursive=True)
        transport.remove(canary, recursive=True)
        transport.remove(f"{canary}.txt")


def test_an_account_with_ssh_keys_keeps_them(openssh_target):
    """The case of the report: `-delete` as the directory, on a real sshd, where the login's
    authorized_keys is what lets the worker in again afterwards."""
    target = openssh_target
    keys = target.transport.read_file(".ssh/authorized_keys")
    job = target.job(PROGRAM, remote_directory="-delete", remote_filename="-delete")
    try:
        submit_job_to_server(job_pk=job.pk, **target.submit_kwargs)
        job.refresh_from_db()
        assert job.status == "success", job.error
        assert target.transport.read_file(".ssh/authorized_keys") == keys
    finally:
        target.transport.remove("-delete", recursive=True)
    # A new connection still logs in with the key.
    from tests.conftest import ssh_transport

    with ssh_transport(
        target.account, password=None, key_filename=target.account.key_filename
    ) as t:
        assert t.run(["true"]).ok
