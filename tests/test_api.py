"""The REST API: access for anonymous users, owners, others, staff and permission holders;
jobs run from it."""

import logging

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from django_remote_submission.models import Job, Log, Result
from tests.factories import (
    make_interpreter,
    make_job,
    make_log,
    make_result,
    make_user,
)

pytestmark = pytest.mark.django_db


def grant(user, *codenames):
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_remote_submission", codename__in=codenames
        )
    )
    return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def world():
    owner = make_user("owner@example.com")
    other = make_user("other")
    staff = make_user("staff", is_staff=True)
    viewer = grant(make_user("viewer"), "view_job", "view_log", "view_result")
    job = make_job(owner=owner, title="mine")
    theirs = make_job(owner=other, title="theirs", server=job.server)
    log = make_log(job=job, content="my line\n")
    their_log = make_log(job=theirs, content="their line\n")
    result = make_result(job=job, remote_filename="out/1.txt")
    result.local_file.save("out/1.txt", ContentFile(b"result bytes"))
    their_result = make_result(job=theirs, remote_filename="2.txt")
    return {
        "owner": owner,
        "other": other,
        "staff": staff,
        "viewer": viewer,
        "objects": {
            "jobs": (job, theirs),
            "logs": (log, their_log),
            "results": (result, their_result),
        },
    }


@pytest.mark.parametrize("route", ["servers", "interpreters", "jobs", "logs", "results"])
def test_anonymous_is_refused(route, world):
    response = client_for().get(f"/api/{route}/")
    assert response.status_code in (401, 403)


@pytest.mark.parametrize("route", ["jobs", "logs", "results"])
def test_owners_see_their_own_rows_only(route, world):
    mine, theirs = world["objects"][route]
    client = client_for(world["owner"])
    listing = client.get(f"/api/{route}/").json()
    assert [row["id"] for row in listing["results"]] == [mine.pk]
    assert client.get(f"/api/{route}/{mine.pk}/").status_code == 200
    assert client.get(f"/api/{route}/{theirs.pk}/").status_code == 404


@pytest.mark.parametrize("route", ["jobs", "logs", "results"])
def test_staff_read_other_users_rows_with_the_view_permission_only(route, world):
    """As in the admin: being staff shows nothing; the model's view permission does."""
    mine, theirs = world["objects"][route]
    staff = client_for(world["staff"])
    assert staff.get(f"/api/{route}/").json()["count"] == 0
    assert staff.get(f"/api/{route}/{theirs.pk}/").status_code == 404
    viewer = client_for(world["viewer"])
    listing = viewer.get(f"/api/{route}/").json()
    assert {row["id"] for row in listing["results"]} == {mine.pk, theirs.pk}
    assert viewer.get(f"/api/{route}/{theirs.pk}/").status_code == 200


def test_staff_without_view_job_do_not_read_another_users_job_or_its_log(world):
    theirs = world["objects"]["jobs"][1]
    staff = client_for(world["staff"])
    assert staff.get(f"/api/jobs/{theirs.pk}/").status_code == 404
    assert staff.get(f"/api/jobs/{theirs.pk}/logs/").status_code == 404
    assert staff.get(f"/api/jobs/?owner={theirs.owner_id}").json()["count"] == 0
    page = client_for(world["viewer"]).get(f"/api/jobs/{theirs.pk}/logs/").json()
    assert [row["content"] for row in page["results"]] == ["their line\n"]


def test_acting_on_another_users_job_needs_the_model_permission(world):
    theirs = world["objects"]["jobs"][1]
    viewer = client_for(world["viewer"])
    assert viewer.patch(f"/api/jobs/{theirs.pk}/", {"title": "x"}).status_code == 403
    assert viewer.delete(f"/api/jobs/{theirs.pk}/").status_code == 403
    assert viewer.post(f"/api/jobs/{theirs.pk}/cancel/").status_code == 403
    assert viewer.post(f"/api/jobs/{theirs.pk}/submit/", {}, format="json").status_code == 403
    assert viewer.post(f"/api/jobs/{theirs.pk}/resubmit/", {}, format="json").status_code == 403
    theirs.refresh_from_db()
    assert (theirs.title, theirs.cancel_requested_at, theirs.task_id) == ("theirs", None, "")
    assert Job.objects.count() == 2

    changer = client_for(grant(world["viewer"], "change_job"))
    assert changer.patch(f"/api/jobs/{theirs.pk}/", {"title": "x"}).status_code == 200
    assert changer.post(f"/api/jobs/{theirs.pk}/cancel/").status_code == 202
    deleter = client_for(grant(world["viewer"], "delete_job"))
    assert deleter.delete(f"/api/jobs/{theirs.pk}/").status_code == 204


def test_servers_and_interpreters_are_read_by_users_and_written_with_model_permissions(world):
    user, staff = client_for(world["owner"]), client_for(world["staff"])
    server = world["objects"]["jobs"][0].server
    assert user.get("/api/servers/").json()["count"] == 1
    assert user.get("/api/interpreters/").status_code == 200
    for client in (user, staff):
        assert client.post("/api/servers/", {"title": "x", "hostname": "h"}).status_code == 403
        assert client.patch(f"/api/servers/{server.pk}/", {"title": "y"}).status_code == 403
        assert client.delete(f"/api/servers/{server.pk}/").status_code == 403
    manager = client_for(
        grant(make_user("manager"), "add_interpreter", "add_server", "change_server")
    )
    assert manager.patch(f"/api/servers/{server.pk}/", {"title": "y"}).status_code == 200
    assert manager.delete(f"/api/servers/{server.pk}/").status_code == 403
    created = manager.post(
        "/api/interpreters/",
        {"name": "bash", "path": "/bin/bash", "arguments": ["-e"]},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["arguments"] == ["-e"]
    response = manager.post(
        "/api/servers/",
        {"title": "new", "hostname": "h.example", "interpreters": [created.json()["id"]]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["port"] == 22


def test_2x_response_shape_pagination_and_ordering(world):
    owner = world["owner"]
    server = world["objects"]["jobs"][0].server
    for i in range(12):
        make_job(owner=owner, server=server, title=f"job {i:02d}")
    client = client_for(owner)
    first = client.get("/api/jobs/?ordering=title").json()
    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == 13
    assert len(first["results"]) == 10
    assert [row["title"] for row in first["results"]][:2] == ["job 00", "job 01"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 3
    row = first["results"][0]
    assert {"id", "title", "program", "status", "owner", "server"} <= set(row)


def test_exact_filters(world):
    job = world["objects"]["jobs"][0]
    make_log(job=job, content="oops\n", stream="stderr")
    client = client_for(world["owner"])
    assert [r["content"] for r in client.get("/api/logs/?stream=stderr").json()["results"]] == [
        "oops\n"
    ]
    assert client.get(f"/api/jobs/?status=initial&server={job.server_id}").json()["count"] == 1
    assert client.get("/api/jobs/?status=failure").json()["count"] == 0
    assert client.get("/api/jobs/?title=mine").json()["count"] == 1


def test_create_a_job_owner_is_the_requester_and_runtime_fields_are_read_only(world):
    owner, job = world["owner"], world["objects"]["jobs"][0]
    client = client_for(owner)
    response = client.post(
        "/api/jobs/",
        {
            "title": "new",
            "program": "print(1)",
            "remote_directory": "/tmp/x",
            "remote_filename": "p.py",
            "server": job.server_id,
            "interpreter": job.interpreter_id,
            "owner": world["other"].pk,
            "status": "success",
            "exit_code": 0,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    created = Job.objects.get(pk=response.json()["id"])
    assert created.owner == owner
    assert (created.status, created.exit_code) == ("initial", None)


def test_create_refuses_an_interpreter_the_server_does_not_offer(world):
    job = world["objects"]["jobs"][0]
    other = make_interpreter(name="bash", path="/bin/bash")
    response = client_for(world["owner"]).post(
        "/api/jobs/",
        {
            "title": "bad",
            "program": "x",
            "remote_directory": "/tmp",
            "remote_filename": "x.sh",
            "server": job.server_id,
            "interpreter": other.pk,
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "interpreter": ["The Interpreter picked is not valid for this server."]
    }


def test_results_download_only_for_their_owner(world):
    result, theirs = world["objects"]["results"]
    client = client_for(world["owner"])
    row = client.get(f"/api/results/{result.pk}/").json()
    assert row["local_file"].endswith(f"/api/results/{result.pk}/download/")
    download = client.get(f"/api/results/{result.pk}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"result bytes"
    assert 'filename="1.txt"' in download["Content-Disposition"]
    assert client.get(f"/api/results/{theirs.pk}/download/").status_code == 404
    assert client_for().get(f"/api/results/{result.pk}/download/").status_code in (401, 403)


def test_logs_after_a_cursor(world):
    job = world["objects"]["jobs"][0]
    first = job.logs.get()
    more = [make_log(job=job, content=f"{i}\n") for i in range(3)]
    client = client_for(world["owner"])
    page = client.get(f"/api/jobs/{job.pk}/logs/?since={first.pk}&limit=2").json()
    assert [r["content"] for r in page["results"]] == ["0\n", "1\n"]
    assert (page["more"], page["finished"], page["last_log_id"]) == (True, False, more[1].pk)
    rest = client.get(f"/api/jobs/{job.pk}/logs/?since={page['last_log_id']}").json()
    assert [r["content"] for r in rest["results"]] == ["2\n"]
    assert rest["more"] is False
    assert client.get(f"/api/jobs/{job.pk}/logs/?since=x").status_code == 400
    theirs = world["objects"]["jobs"][1]
    assert client.get(f"/api/jobs/{theirs.pk}/logs/").status_code == 404


def test_logs_before_a_cursor_page_backwards_exactly(world):
    job = world["objects"]["jobs"][0]
    job.logs.all().delete()
    rows = [make_log(job=job, content=f"{i}\n") for i in range(25)]
    ids = [row.pk for row in rows]
    client = client_for(world["owner"])
    url = f"/api/jobs/{job.pk}/logs/"

    def numbers(page):
        return [int(r["content"]) for r in page["results"]]

    # Backwards from past the end, 10 at a time: each page the 10 rows before the
    # first of the last, oldest first, and "more" while earlier rows exist.
    pages, before = [], ids[-1] + 1
    while True:
        page = client.get(url, {"before": before, "limit": 10}).json()
        pages.append(numbers(page))
        if not page["more"]:
            break
        before = page["results"][0]["id"]
    assert pages == [list(range(15, 25)), list(range(5, 15)), list(range(0, 5))]
    assert page["last_log_id"] == ids[4]

    # Bounds: before the first row, nothing; a page that ends exactly at the first row
    # says there is no more; a huge or negative cursor is the end or the start.
    page = client.get(url, {"before": ids[0]}).json()
    assert (page["results"], page["more"]) == ([], False)
    page = client.get(url, {"before": ids[10], "limit": 10}).json()
    assert (numbers(page), page["more"]) == (list(range(10)), False)
    page = client.get(url, {"before": ids[10], "limit": 9}).json()
    assert (numbers(page), page["more"]) == (list(range(1, 10)), True)
    assert numbers(client.get(url, {"before": 10**30, "limit": 2}).json()) == [23, 24]
    assert client.get(url, {"before": -5}).json()["results"] == []
    assert numbers(client.get(url, {"since": 10**30}).json()) == []

    # With since too: the rows strictly between, the last ones first if they are many.
    page = client.get(url, {"since": ids[3], "before": ids[8]}).json()
    assert (numbers(page), page["more"]) == ([4, 5, 6, 7], False)
    page = client.get(url, {"since": ids[3], "before": ids[8], "limit": 3}).json()
    assert (numbers(page), page["more"]) == ([5, 6, 7], True)

    # Bad input, and another user's job.
    for bad in ("x", "1.5", ""):
        response = client.get(url, {"before": bad})
        assert response.status_code == 400, bad
        assert response.json() == {"detail": "since, before and limit must be integers."}
    theirs = world["objects"]["jobs"][1]
    assert client.get(f"/api/jobs/{theirs.pk}/logs/", {"before": 10**6}).status_code == 404


def test_running_jobs_cannot_be_changed_or_deleted(world):
    job = world["objects"]["jobs"][0]
    job.status = Job.STATUS.submitted
    job.save()
    client = client_for(world["owner"])
    assert client.patch(f"/api/jobs/{job.pk}/", {"title": "x"}).status_code == 409
    assert client.delete(f"/api/jobs/{job.pk}/").status_code == 409
    assert client.post(f"/api/jobs/{job.pk}/submit/", {}).status_code == 409


@pytest.mark.parametrize("who", ["owner", "staff"])
def test_the_worker_host_needs_the_run_on_worker_host_permission(world, who):
    user = world[who]
    job = make_job(owner=user, server=world["objects"]["jobs"][0].server)
    response = client_for(user).post(
        f"/api/jobs/{job.pk}/submit/", {"remote": False, "password": "x"}, format="json"
    )
    assert response.status_code == 403
    assert "django_remote_submission.run_on_worker_host" in response.json()["detail"]
    job.refresh_from_db()
    assert job.task_id == ""


def test_cancel_of_an_ended_job_is_a_conflict(world):
    job = world["objects"]["jobs"][0]
    job.status = Job.STATUS.success
    job.save()
    assert client_for(world["owner"]).post(f"/api/jobs/{job.pk}/cancel/").status_code == 409


def test_the_schema_is_served(world):
    response = client_for(world["owner"]).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/jobs/{id}/submit/" in paths or "/jobs/{id}/submit/" in paths


# Through a real worker, over the private sshd ------------------------------------------


@pytest.mark.ssh
@pytest.mark.worker
@pytest.mark.redis
def test_create_submit_logs_and_results_through_the_api(
    openssh_target, celery_worker, caplog, transactional_db
):
    target = openssh_target
    caplog.set_level(logging.DEBUG)
    client = client_for(target.owner)
    created = client.post(
        "/api/jobs/",
        {
            "title": "from the API",
            "program": "print('hello from the API')\nopen('out.txt', 'w').write('done')\n",
            "remote_directory": target.directory,
            "remote_filename": "api.py",
            "server": target.server.pk,
            "interpreter": target.interpreter.pk,
        },
        format="json",
    ).json()
    body = {"store_results": ["*.txt"], "timeout": 60, **target.submit_kwargs}
    submitted = client.post(f"/api/jobs/{created['id']}/submit/", body, format="json")
    assert submitted.status_code == 202
    password = target.account.password
    if password:
        assert password not in submitted.content.decode()
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{created['id']}/").json()
        if job["status"] in ("success", "failure"):
            break
        time.sleep(0.2)
    assert job["status"] == "success", job["error"]
    logs = client.get(f"/api/jobs/{created['id']}/logs/").json()
    assert [r["content"] for r in logs["results"]] == ["hello from the API\n"]
    results = client.get(f"/api/results/?job={created['id']}").json()["results"]
    assert [r["remote_filename"] for r in results] == ["out.txt"]
    download = client.get(results[0]["local_file"].replace("http://testserver", ""))
    assert b"".join(download.streaming_content) == b"done"
    if password:
        assert all(password not in record.getMessage() for record in caplog.records)
        for model in (Job, Log, Result):
            for row in model.objects.values():
                assert password not in str(row)


def test_deleting_a_server_in_use_is_a_conflict(world):
    job = world["objects"]["jobs"][0]
    staff = client_for(grant(world["staff"], "delete_server", "delete_interpreter"))
    assert staff.delete(f"/api/servers/{job.server_id}/").status_code == 409
    assert staff.delete(f"/api/interpreters/{job.interpreter_id}/").status_code == 409


def test_resubmit_with_a_bad_body_leaves_no_copy_and_submit_twice_is_refused(world):
    job = world["objects"]["jobs"][0]
    client = client_for(world["owner"])
    before = Job.objects.count()
    assert (
        client.post(f"/api/jobs/{job.pk}/resubmit/", {"log_policy": 9}, format="json").status_code
        == 400
    )
    assert Job.objects.count() == before
    Job.objects.filter(pk=job.pk).update(task_id="queued-task")
    assert client.post(f"/api/jobs/{job.pk}/submit/", {}, format="json").status_code == 409


@pytest.mark.ssh
@pytest.mark.worker
@pytest.mark.redis
def test_cancel_through_the_api_stops_a_running_job(
    openssh_target, celery_worker, transactional_db
):
    import time

    target = openssh_target
    client = client_for(target.owner)
    job = target.job(
        "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)\n"
    )
    assert (
        client.post(f"/api/jobs/{job.pk}/submit/", target.submit_kwargs, format="json").status_code
        == 202
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not job.logs.exists():
        time.sleep(0.1)
    assert client.get(f"/api/jobs/{job.pk}/").json()["status"] == "submitted"
    assert client.post(f"/api/jobs/{job.pk}/cancel/").status_code == 202
    while time.monotonic() < deadline:
        state = client.get(f"/api/jobs/{job.pk}/").json()
        if state["status"] != "submitted":
            break
        time.sleep(0.1)
    assert (state["status"], state["error"]) == ("failure", "Canceled at the request of a user.")
    job.refresh_from_db()
    assert target.live_processes(job.remote_pgid) == []
