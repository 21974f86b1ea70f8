"""What a project imports: the exceptions from one module, the routes under a namespace,
and FakeServers for its own unit tests."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.test import Client, override_settings
from django.urls import NoReverseMatch, reverse

from django_remote_submission import exceptions
from django_remote_submission.models import Result
from django_remote_submission.tasks import submit_job_to_server
from django_remote_submission.testing import FakeServers
from tests.factories import make_interpreter, make_job, make_result, make_server, make_user


def test_every_exception_the_app_defines_is_in_the_exceptions_module() -> None:
    import django_remote_submission as package

    defined = {
        name: value
        for name, value in vars(exceptions).items()
        if inspect.isclass(value) and issubclass(value, exceptions.RemoteSubmissionError)
    }
    for name in ("JobCanceled", "SecretError", "HandedOver", "NotClaimed", "ServerGone"):
        assert name in defined
    # No module of the package defines an error class of its own any more.
    root = Path(package.__file__).parent
    for path in root.rglob("*.py"):
        if path.name == "exceptions.py" or "migrations" in path.parts:
            continue
        text = path.read_text()
        for line in text.splitlines():
            if line.startswith("class ") and ("Error)" in line or "Error):" in line):
                raise AssertionError(f"{path}: {line}")
    # The old places still give the same classes.
    from django_remote_submission.runner import JobCanceled
    from django_remote_submission.secrets import SecretError

    assert JobCanceled is exceptions.JobCanceled
    assert SecretError is exceptions.SecretError


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.urls_namespaced")
def test_the_routes_under_their_namespace(tmp_path: Path) -> None:
    assert reverse("remote_submission:job-list") == "/api/jobs/"
    assert reverse("remote_submission:job-user-status") == "/api/job-user-status/"
    with pytest.raises(NoReverseMatch):
        reverse("job-list")
    owner = make_user("nina")
    result = make_result(job=make_job(owner=owner))
    result.local_file.save("1.txt", ContentFile(b"one"))
    client = Client()
    client.force_login(owner)
    root = client.get("/api/").json()
    assert root["jobs"] == "http://testserver/api/jobs/"
    listed = client.get("/api/results/").json()["results"]
    assert listed[0]["local_file"] == f"http://testserver/api/results/{result.pk}/download/"
    download = client.get(f"/api/results/{result.pk}/download/")
    assert (download.status_code, b"".join(download.streaming_content)) == (200, b"one")
    assert Result.objects.count() == 1


def test_the_global_2x_names_stay() -> None:
    assert reverse("job-list") == "/api/jobs/"
    assert reverse("job-detail", args=[3]) == "/api/jobs/3/"


NUMBERED = """
import sys
for i in range(1, 21):
    print("line", i)
print("warning", file=sys.stderr)
open("out.txt", "w").write("42")
"""


@pytest.fixture
def cluster(db: None) -> dict[str, object]:
    python = make_interpreter(name="python3", path="/usr/bin/python3", arguments=["-u"])
    server = make_server(
        interpreters=[python], title="Cluster", hostname="cluster.invalid", port=22
    )
    return {"server": server, "interpreter": python, "owner": make_user("alice")}


def test_fake_servers_run_a_job_and_record_what_the_app_did(cluster: dict[str, object]) -> None:
    job = make_job(
        program=NUMBERED,
        remote_directory="jobs/hello",
        remote_filename="hello.py",
        **cluster,
    )
    with FakeServers() as fake:
        results = submit_job_to_server(job.pk, password="pw-not-recorded")
        home = fake.home("cluster.invalid", "alice")
        assert (home / "jobs" / "hello" / "out.txt").read_text() == "42"
    job.refresh_from_db()
    assert (job.status, job.exit_code, job.error) == ("success", 0, "")
    stdout = [log.content for log in job.logs.filter(stream="stdout").order_by("id")]
    assert stdout == [f"line {i}\n" for i in range(1, 21)]
    assert [log.content for log in job.logs.filter(stream="stderr")] == ["warning\n"]
    assert list(results) == ["out.txt"]
    with job.results.get().local_file.open("rb") as stored:
        assert stored.read() == b"42"

    connection = fake.connections[0]
    assert (connection.hostname, connection.port, connection.username) == (
        "cluster.invalid",
        22,
        "alice",
    )
    assert connection.with_password
    [program] = [u for u in fake.uploads if u.path.endswith("hello.py")]
    assert program.data.decode() == job.program
    assert fake.commands
    recorded = repr((fake.connections, fake.uploads, fake.commands))
    assert "pw-not-recorded" not in recorded
    assert not home.exists()  # the temporary homes are gone


def test_fake_servers_fail_jobs_as_real_ones_would(cluster: dict[str, object]) -> None:
    unreachable = make_job(program="print(1)", remote_directory="a", **cluster)
    refused = make_job(program="print(1)", remote_directory="b", **cluster)
    outside = make_job(program="print(1)", remote_directory="/etc/drs-fake-test", **cluster)
    with (
        FakeServers(unreachable=["cluster.invalid"]),
        pytest.raises(exceptions.ConnectionFailed),
    ):
        submit_job_to_server(unreachable.pk)
    with (
        FakeServers(refused=[("cluster.invalid", "alice")]),
        pytest.raises(exceptions.AuthenticationFailed),
    ):
        submit_job_to_server(refused.pk)
    with FakeServers(), pytest.raises(exceptions.TransportError):
        submit_job_to_server(outside.pk)
    for job, words in (
        (unreachable, "unreachable"),
        (refused, "refused the login 'alice'"),
        (outside, "outside the home directory"),
    ):
        job.refresh_from_db()
        assert job.status == "failure"
        assert words in job.error
    assert not Path("/etc/drs-fake-test").exists()
