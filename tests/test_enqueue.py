"""Jobs are queued after the transaction that asks for them commits, and a task waits for a
job row its sender has not committed yet, with a real worker over a real sshd."""

import time

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from rest_framework.test import APIClient

from django_remote_submission.models import Job
from django_remote_submission.tasks import submit_job_to_server
from tests.factories import make_job

pytestmark = pytest.mark.ssh

PROGRAM = "print('ran')\n"


def password_options(target):
    return {"password": target.account.password, "username": target.account.username}


def test_a_task_waits_for_the_row_its_sender_has_not_committed(
    openssh_target, celery_worker, transactional_db
):
    # The project's own code, 2.x style: the job is created and queued in one transaction
    # (ATOMIC_REQUESTS, or a transaction.atomic() around a view's work).
    target = openssh_target
    with transaction.atomic():
        job = make_job(
            program=PROGRAM,
            remote_directory=target.directory,
            server=target.server,
            interpreter=target.interpreter,
            owner=target.owner,
        )
        result = submit_job_to_server.delay(job_pk=job.pk, **password_options(target))
        time.sleep(1)  # the worker has the message, and no row to read yet
    assert result.get(timeout=60) == {}
    job.refresh_from_db()
    assert (job.status, job.error) == ("success", "")
    assert [log.content for log in job.logs.all()] == ["ran\n"]


@pytest.fixture
def api_user(openssh_target):
    user = openssh_target.owner
    user.user_permissions.add(Permission.objects.get(codename="add_job"))
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_queues_nothing_when_the_request_rolls_back(
    openssh_target, celery_worker, transactional_db, api_user
):
    target = openssh_target
    job = target.job(PROGRAM)
    url = f"/api/jobs/{job.pk}/submit/"

    class RolledBack(Exception):
        pass

    try:
        with transaction.atomic():
            response = api_user.post(url, password_options(target), format="json")
            assert response.status_code == 202
            time.sleep(1)  # a message sent now would reach the worker
            raise RolledBack
    except RolledBack:
        pass
    time.sleep(1)
    job.refresh_from_db()
    assert (job.status, job.task_id, job.started_at) == ("initial", "", None)
    assert not job.logs.exists()
    # Nothing is "queued already": the same request, committed, runs the job.
    response = api_user.post(url, password_options(target), format="json")
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    assert response.json()["job"]["task_id"] == task_id
    deadline = time.monotonic() + 60
    while not Job.objects.get(pk=job.pk).is_finished and time.monotonic() < deadline:
        time.sleep(0.1)
    job.refresh_from_db()
    assert (job.status, job.task_id) == ("success", task_id)
    assert [log.content for log in job.logs.all()] == ["ran\n"]


def test_the_api_queues_at_commit(openssh_target, celery_worker, transactional_db, api_user):
    target = openssh_target
    job = target.job(PROGRAM)
    program = f"{target.directory}/{job.remote_filename}"
    with transaction.atomic():
        response = api_user.post(
            f"/api/jobs/{job.pk}/submit/", password_options(target), format="json"
        )
        assert response.status_code == 202
        time.sleep(2)  # a message sent now would have reached the worker
        # Nothing has happened on the server while the request's transaction is open.
        assert not target.transport.exists(program)
    deadline = time.monotonic() + 60
    while not Job.objects.get(pk=job.pk).is_finished and time.monotonic() < deadline:
        time.sleep(0.1)
    job.refresh_from_db()
    assert job.status == "success", job.error
    assert target.transport.exists(program)
