import pytest
from django.urls import reverse

from django_remote_submission.models import Interpreter, Job
from tests.factories import make_interpreter, make_job, make_log, make_result, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("admin@example.com", is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("model", ["interpreter", "server", "job", "log", "result"])
def test_every_model_has_a_changelist_and_a_change_page(admin_client, model):
    job = make_job(title="Listed <job>")
    objects = {
        "interpreter": job.interpreter,
        "server": job.server,
        "job": job,
        "log": make_log(job=job, content="x" * 200),
        "result": make_result(job=job),
    }
    changelist = admin_client.get(reverse(f"admin:django_remote_submission_{model}_changelist"))
    assert changelist.status_code == 200
    change = admin_client.get(
        reverse(f"admin:django_remote_submission_{model}_change", args=[objects[model].pk])
    )
    assert change.status_code == 200


def test_job_changelist_shows_status_and_filters(admin_client):
    make_job(title="first", status="failure", exit_code=2)
    make_job(title="second", status="success", exit_code=0)
    url = reverse("admin:django_remote_submission_job_changelist")
    page = admin_client.get(url, {"status__exact": "failure"}).content.decode()
    assert "first" in page
    assert "second" not in page
    assert admin_client.get(url, {"q": "second"}).content.decode().count(">second<") == 1


def test_job_admin_refuses_an_interpreter_the_server_does_not_offer(admin_client):
    job = make_job()
    other = make_interpreter(name="bash", path="/bin/bash")
    response = admin_client.post(
        reverse("admin:django_remote_submission_job_change", args=[job.pk]),
        {
            "title": job.title,
            "owner": job.owner.pk,
            "server": job.server.pk,
            "interpreter": other.pk,
            "program": job.program,
            "remote_directory": job.remote_directory,
            "remote_filename": job.remote_filename,
            "results-TOTAL_FORMS": "0",
            "results-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "The Interpreter picked is not valid for this server." in response.content.decode()
    job.refresh_from_db()
    assert job.interpreter_id != other.pk


def test_job_runtime_fields_are_read_only(admin_client):
    job = make_job()
    admin_client.post(
        reverse("admin:django_remote_submission_job_change", args=[job.pk]),
        {
            "title": "renamed",
            "owner": job.owner.pk,
            "server": job.server.pk,
            "interpreter": job.interpreter.pk,
            "program": job.program,
            "remote_directory": job.remote_directory,
            "remote_filename": job.remote_filename,
            "status": "success",
            "exit_code": "0",
            "results-TOTAL_FORMS": "0",
            "results-INITIAL_FORMS": "0",
        },
    )
    job = Job.objects.get(pk=job.pk)
    assert job.title == "renamed"
    assert (job.status, job.exit_code) == ("initial", None)


def test_interpreter_arguments_are_edited_as_shell_words(admin_client):
    response = admin_client.post(
        reverse("admin:django_remote_submission_interpreter_add"),
        {"name": "py", "path": "/usr/bin/python3", "arguments": "-u -X 'dev mode'"},
    )
    assert response.status_code == 302
    assert Interpreter.objects.get(name="py").arguments == ["-u", "-X", "dev mode"]
    page = admin_client.get(
        reverse(
            "admin:django_remote_submission_interpreter_change",
            args=[Interpreter.objects.get(name="py").pk],
        )
    ).content.decode()
    assert "-u -X &#x27;dev mode&#x27;" in page


def test_interpreter_arguments_that_do_not_split_are_an_error(admin_client):
    response = admin_client.post(
        reverse("admin:django_remote_submission_interpreter_add"),
        {"name": "py", "path": "/usr/bin/python3", "arguments": "-c 'unclosed"},
    )
    assert response.status_code == 200
    assert "Could not split the arguments" in response.content.decode()
    assert not Interpreter.objects.filter(name="py").exists()
