import contextlib
import datetime as dt
import io
import json
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils.dateparse import parse_datetime

from django_remote_submission.models import Interpreter, Job, Log, Result, Server, job_result_path
from tests.factories import (
    make_interpreter,
    make_job,
    make_log,
    make_result,
    make_server,
    make_user,
)

pytestmark = pytest.mark.django_db


def test_server_string_representation():
    server = make_server(title="Remote", hostname="foo.invalid", port=2222)
    assert str(server) == "Remote <foo.invalid:2222>"


def test_interpreter_string_representation():
    interpreter = make_interpreter(name="Python 3", path="/usr/bin/python3")
    assert str(interpreter) == "Python 3 (/usr/bin/python3)"


def test_job_string_representation():
    assert str(make_job(title="My Job")) == "My Job"


def test_log_string_representation():
    job = make_job(title="My Job")
    when = dt.datetime(2017, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    log = make_log(job=job, time=when)
    assert str(log) == f"{when} My Job"
    assert "2017-01-02 03:04:05" in str(log)


def test_result_string_representation():
    result = make_result(job=make_job(title="My Job"), remote_filename="1.txt")
    assert str(result) == "1.txt <My Job>"


def test_defaults():
    interpreter = Interpreter.objects.create(name="bash", path="/bin/bash")
    server = Server.objects.create(title="s", hostname="h")
    server.interpreters.set([interpreter])
    job = Job.objects.create(
        title="t",
        program="echo hi",
        remote_directory="/tmp",
        remote_filename="a.sh",
        owner=make_user(),
        server=server,
        interpreter=interpreter,
    )
    log = Log.objects.create(job=job, content="x")
    job.refresh_from_db()
    assert interpreter.arguments == []
    assert server.port == 22
    assert server.username == ""
    assert server.host_key == ""
    assert job.status == "initial"
    assert isinstance(job.uuid, uuid.UUID)
    assert (job.exit_code, job.error, job.started_at, job.finished_at) == (None, "", None, None)
    assert (job.stdout_offset, job.stderr_offset, job.remote_pid, job.task_id) == (0, 0, None, "")
    assert log.stream == "stdout"
    assert log.time is not None


def test_job_status_choices_are_the_2x_values():
    assert [value for value, _ in Job.STATUS] == ["initial", "submitted", "success", "failure"]
    assert Job.STATUS.success == "success"
    assert [value for value, _ in Log.STREAMS] == ["stdout", "stderr"]


def test_status_outside_choices_is_rejected_by_validation():
    job = make_job()
    job.status = "running"
    with pytest.raises(ValidationError) as excinfo:
        job.full_clean()
    assert "status" in excinfo.value.message_dict


def test_uuid_is_unique():
    job = make_job()
    with pytest.raises(IntegrityError), transaction.atomic():
        make_job(uuid=job.uuid, server=job.server, owner=job.owner)


def test_job_clean_refuses_an_interpreter_the_server_does_not_offer():
    other = make_interpreter(name="bash", path="/bin/bash")
    job = make_job()
    job.interpreter = other
    with pytest.raises(ValidationError) as excinfo:
        job.clean()
    assert excinfo.value.message_dict == {
        "interpreter": ["The Interpreter picked is not valid for this server."]
    }


def test_job_clean_accepts_an_offered_interpreter_and_tolerates_missing_server():
    job = make_job()
    job.clean()
    unsaved = Job(title="x", program="y", remote_directory="/", remote_filename="z")
    unsaved.clean()


def test_related_names():
    job = make_job()
    log = make_log(job=job)
    result = make_result(job=job)
    assert list(job.owner.jobs.all()) == [job]
    assert list(job.server.jobs.all()) == [job]
    assert list(job.interpreter.jobs.all()) == [job]
    assert list(job.logs.all()) == [log]
    assert list(job.results.all()) == [result]
    assert job.interpreter in job.server.interpreters.all()
    assert list(job.interpreter.server_set.all()) == [job.server]


def test_result_upload_path():
    job = make_job()
    result = Result(job=job, remote_filename="sub/1.txt")
    assert job_result_path(result, "1.txt") == f"results/{job.uuid}/1.txt"
    result.local_file.save("sub/1.txt", ContentFile(b"line: 1\n"))
    assert result.local_file.name == f"results/{job.uuid}/sub/1.txt"
    with result.local_file.open("rb") as stream:
        assert stream.read() == b"line: 1\n"


def test_result_upload_path_refuses_to_leave_the_job_directory():
    result = Result(job=make_job(), remote_filename="x")
    with pytest.raises(Exception, match=r"(?i)path traversal|detected"):
        result.local_file.save("../escape.txt", ContentFile(b"x"))


def test_arguments_are_a_json_list():
    interpreter = make_interpreter(arguments=["-u", "-X", "dev mode"])
    interpreter.refresh_from_db()
    assert interpreter.arguments == ["-u", "-X", "dev mode"]
    interpreter.arguments = "-u"
    with pytest.raises(ValidationError):
        interpreter.full_clean()


def test_interpreter_command_splits_a_path_that_carries_arguments():
    assert make_interpreter(path="/usr/bin/python3 -u", arguments=[]).command == [
        "/usr/bin/python3",
        "-u",
    ]
    assert make_interpreter(path="'/opt/my python/bin/python'", arguments=["-B"]).command == [
        "/opt/my python/bin/python",
        "-B",
    ]


def test_2x_quickstart_get_or_create_works_as_written():
    server = Server.objects.get_or_create(title="My Server Title", hostname="example.com", port=22)[
        0
    ]
    python3 = Interpreter.objects.get_or_create(name="python3", path="/usr/bin/python3.5 -u")[0]
    server.interpreters.set([python3])
    job = Job.objects.get_or_create(
        title="My Job Title",
        program='print("hello world")',
        remote_directory="/tmp/",
        remote_filename="test.py",
        owner=make_user(),
        server=server,
        interpreter=python3,
    )[0]
    assert job.pk is not None
    assert python3.arguments == []


@pytest.mark.parametrize("username", ["bob@example.com", "a+b@example.com", "x.y-z_1"])
def test_any_valid_username_owns_jobs(username):
    user = make_user(username)
    job = make_job(owner=user)
    job.status = Job.STATUS.submitted
    job.save()
    assert list(user.jobs.values_list("status", flat=True)) == ["submitted"]


def with_times(dump):
    """A dump's objects, with their timestamps as datetimes: Django writes them to the
    millisecond, and a time on the second as ``...:52.000Z`` before the round trip,
    ``...:52Z`` after, the same time."""

    def times(fields):
        for name, value in fields.items():
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    fields[name] = parse_datetime(value) or value
        return fields

    return json.loads(dump, object_hook=times)


def test_dumpdata_loaddata_round_trips_every_model(tmp_path):
    job = make_job(remote_directory="/tmp/x y", error="boom")
    job.server.host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE"
    job.server.username = "alice"
    job.server.save()
    make_log(job=job, content="é\n", stream="stderr")
    result = make_result(job=job, size=5, checksum="ab" * 32)
    result.local_file.save("1.txt", ContentFile(b"hello"))
    job.interpreter.arguments = ["-u", "--flag=a b"]
    job.interpreter.save()

    models = ["django_remote_submission"]
    before = io.StringIO()
    call_command("dumpdata", *models, "auth.user", format="json", stdout=before)
    dump = tmp_path / "dump.json"
    dump.write_text(before.getvalue())

    Result.objects.all().delete()
    Log.objects.all().delete()
    Job.objects.all().delete()
    Server.objects.all().delete()
    Interpreter.objects.all().delete()
    call_command("loaddata", str(dump), verbosity=0)

    after = io.StringIO()
    call_command("dumpdata", *models, "auth.user", format="json", stdout=after)
    assert with_times(after.getvalue()) == with_times(before.getvalue())
    assert Interpreter.objects.get().arguments == ["-u", "--flag=a b"]
    assert len(json.loads(before.getvalue())) >= 6


def test_a_pinned_host_key_must_be_a_key():
    server = make_server()
    server.host_key = "not a key"
    with pytest.raises(ValidationError) as excinfo:
        server.full_clean()
    assert "host_key" in excinfo.value.message_dict
    server.host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOv1"
    server.full_clean()


def test_visible_to_is_the_owners_rows_or_all_with_the_view_permission():
    from django.contrib.auth.models import AnonymousUser, Permission

    mine = make_job()
    theirs = make_job(server=mine.server)
    rows = {
        Job: (mine, theirs),
        Log: (make_log(job=mine), make_log(job=theirs)),
        Result: (make_result(job=mine), make_result(job=theirs)),
    }
    staff = make_user(is_staff=True)
    for model, (own, other) in rows.items():
        assert list(model.objects.visible_to(mine.owner)) == [own]
        assert list(model.objects.visible_to(staff)) == []
        assert list(model.objects.visible_to(AnonymousUser())) == []
        viewer = make_user()
        viewer.user_permissions.add(
            Permission.objects.get(codename=f"view_{model._meta.model_name}")
        )
        assert set(model.objects.visible_to(viewer)) == {own, other}
        assert set(model.objects.visible_to(make_user(is_superuser=True))) == {own, other}


def test_servers_grant_the_workers_credentials_to_users_and_groups():
    from django.contrib.auth.models import Group

    server = make_server()
    user, group = make_user(), Group.objects.create(name="cluster")
    server.allowed_users.add(user)
    server.allowed_groups.add(group)
    assert list(user.remote_servers_granted.all()) == [server]
    assert list(group.remote_servers_granted.all()) == [server]
    codenames = {codename for codename, _ in Server._meta.permissions}
    assert codenames == {"use_worker_credentials", "run_on_worker_host"}
