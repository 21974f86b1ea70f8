"""The API against its OpenAPI schema, read as a client generator reads it.

schemathesis sends every operation requests that fit the schema and requests that break
it: every answer must be a status the operation documents, with the body it documents,
and never a server error; requests that break the schema are refused, and requests that
fit it are not. The tests after it make each documented error happen on purpose.
"""

import base64

import jsonschema
import pytest
import schemathesis
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from django_remote_submission.api import views
from django_remote_submission.models import Job
from tests.factories import make_job, make_log, make_result, make_server, make_user

CONFIG = {
    # Fixed: CI runs the same cases each time, and a failure is found again by running
    # the file again.
    "seed": 20260113,
    "generation": {
        "mode": "all",
        "max-examples": 100,
        "database": "none",
        # The API ignores query parameters and body fields it does not know, as DRF
        # does (a 2.x page's cache-buster "?_=..." keeps working).
        "allow-extra-parameters": False,
    },
    "phases": {"stateful": {"enabled": False}},
    # The schema's paths are relative to where the project mounts the API.
    "base-url": "http://testserver/api",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]

schema = schemathesis.openapi.from_wsgi(
    "/api/schema/", get_wsgi_application(), config=SchemathesisConfig.from_dict(CONFIG)
)


@pytest.fixture
def fuzz_world(transactional_db, settings, monkeypatch):
    """A superuser (so that no permission refuses) with a server, a job, a log line and
    a result file; nothing reaches a broker."""
    from django_remote_submission.tasks import submit_job_to_server

    # Basic authentication checks the password on every request: a fast hasher keeps
    # thousands of them cheap.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    monkeypatch.setattr(submit_job_to_server, "apply_async", lambda **kwargs: None)
    user = make_user("fuzz", is_staff=True, is_superuser=True)
    user.set_password("fuzz-password")
    user.save()
    server = make_server()
    job = make_job(owner=user, server=server)
    make_log(job=job)
    make_result(job=job).local_file.save("out.txt", ContentFile(b"out"))
    interpreter = server.interpreters.get()
    token = base64.b64encode(b"fuzz:fuzz-password").decode()
    return {
        "headers": {"Authorization": f"Basic {token}"},
        # What a schema cannot say of a valid body: which rows exist, which interpreters
        # a server offers, what a host key is, what a server's limits allow.
        "references": {
            "server": server.pk,
            "interpreter": interpreter.pk,
            "interpreters": [interpreter.pk],
            "host_key": "",
            "resources": {},
        },
    }


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_the_api_answers_as_its_schema_says(case, fuzz_world):
    if case.meta.generation.mode.is_positive and isinstance(case.body, dict):
        references = fuzz_world["references"]
        case.body = {**case.body, **{k: v for k, v in references.items() if k in case.body}}
    case.call_and_validate(headers=fuzz_world["headers"], checks=CHECKS)


# Each documented error, on purpose -------------------------------------------------------


@pytest.fixture
def world(db):
    owner = make_user("owner")
    job = make_job(owner=owner, title="mine")
    theirs = make_job(owner=make_user("other"), server=job.server, title="theirs")
    return {"owner": owner, "job": job, "theirs": theirs}


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def assert_documented(response, operation):
    """The operation ("GET /jobs/{id}/") documents the response's status, and its body
    has the shape documented for that status."""
    method, route = operation.split()
    document = APIClient().get("/api/schema/", {"format": "json"}).json()
    responses = document["paths"][route][method.lower()]["responses"]
    assert str(response.status_code) in responses, (operation, response.status_code)
    body_schema = responses[str(response.status_code)]["content"]["application/json"]["schema"]
    jsonschema.validate(response.json(), {**body_schema, "components": document["components"]})


def test_another_users_job_is_not_found_on_every_route(world):
    client, theirs = client_for(world["owner"]), world["theirs"].pk
    for operation, response in [
        ("GET /jobs/{id}/", client.get(f"/api/jobs/{theirs}/")),
        ("PATCH /jobs/{id}/", client.patch(f"/api/jobs/{theirs}/", {"title": "x"}, "json")),
        ("DELETE /jobs/{id}/", client.delete(f"/api/jobs/{theirs}/")),
        ("POST /jobs/{id}/submit/", client.post(f"/api/jobs/{theirs}/submit/", {}, "json")),
        ("POST /jobs/{id}/cancel/", client.post(f"/api/jobs/{theirs}/cancel/")),
        ("GET /jobs/{id}/logs/", client.get(f"/api/jobs/{theirs}/logs/")),
    ]:
        assert response.status_code == 404, operation
        assert response.json() == {"detail": "No Job matches the given query."}
        assert_documented(response, operation)
    assert Job.objects.get(pk=theirs).title == "theirs"


def test_a_page_past_the_last_is_not_found(world):
    response = client_for(world["owner"]).get("/api/jobs/", {"page": 2})
    assert (response.status_code, response.json()) == (404, {"detail": "Invalid page."})
    assert_documented(response, "GET /jobs/")


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("server=1.5", {"server": ["Enter a whole number."]}),
        (
            "owner=99999999999999999999",
            {"owner": ["Ensure this value is less than or equal to 9223372036854775807."]},
        ),
        (
            "status=done",
            {"status": ["Select a valid choice. done is not one of the available choices."]},
        ),
        ("status=failure&status=success", {"status": ["Give this parameter once."]}),
        ("search=a%00b", {"search": ["Null characters are not allowed."]}),
        ("title=a%00b", {"title": ["Null characters are not allowed."]}),
    ],
)
def test_a_query_the_schema_refuses_is_a_bad_request(world, query, errors):
    response = client_for(world["owner"]).get(f"/api/jobs/?{query}")
    assert (response.status_code, response.json()) == (400, errors)
    assert_documented(response, "GET /jobs/")


def test_a_reference_filter_does_not_tell_a_hidden_job_from_a_missing_one(world):
    client = client_for(world["owner"])
    hidden = client.get("/api/logs/", {"job": world["theirs"].pk})
    missing = client.get("/api/logs/", {"job": 999999})
    assert hidden.status_code == missing.status_code == 200
    assert (
        hidden.json()
        == missing.json()
        == {
            "count": 0,
            "next": None,
            "previous": None,
            "results": [],
        }
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", 5, "Not a valid string."),
        ("server", "1", "Incorrect type. Expected pk value, received str."),
        ("program", "print(1)\x00", "Null characters are not allowed."),
    ],
)
def test_a_json_body_takes_the_types_of_the_schema(world, field, value, message):
    job = world["job"]
    body = {
        "title": "t",
        "program": "print(1)",
        "remote_directory": "/tmp",
        "remote_filename": "p.py",
        "server": job.server_id,
        "interpreter": job.interpreter_id,
        field: value,
    }
    response = client_for(world["owner"]).post("/api/jobs/", body, format="json")
    assert (response.status_code, response.json()) == (400, {field: [message]})
    assert_documented(response, "POST /jobs/")
    assert Job.objects.count() == 2


@pytest.mark.parametrize(
    ("options", "field"), [({"remote": 1}, "remote"), ({"timeout": "60"}, "timeout")]
)
def test_submit_options_take_the_types_of_the_schema(world, options, field):
    job = world["job"]
    response = client_for(world["owner"]).post(
        f"/api/jobs/{job.pk}/submit/", options, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert_documented(response, "POST /jobs/{id}/submit/")
    job.refresh_from_db()
    assert job.task_id == ""


def server_manager():
    manager = make_user("manager")
    manager.user_permissions.add(Permission.objects.get(codename="add_server"))
    return type(manager).objects.get(pk=manager.pk)  # a fresh instance: permissions are cached


def test_a_form_still_sends_its_values_as_text(world):
    response = client_for(server_manager()).post(
        "/api/servers/",
        {
            "title": "form",
            "hostname": "h",
            "port": "2222",
            "interpreters": [world["job"].interpreter_id],
        },
    )
    assert response.status_code == 201, response.json()
    assert response.json()["port"] == 2222


def test_a_port_is_a_tcp_port(world):
    response = client_for(server_manager()).post(
        "/api/servers/",
        {
            "title": "x",
            "hostname": "h",
            "port": 70000,
            "interpreters": [world["job"].interpreter_id],
        },
        format="json",
    )
    assert (response.status_code, response.json()) == (
        400,
        {"port": ["Ensure this value is less than or equal to 65535."]},
    )
    assert_documented(response, "POST /servers/")


def test_anonymous_requests_are_forbidden_with_drf_s_default_authentication(world):
    response = client_for().get("/api/jobs/")
    assert response.status_code == 403
    assert_documented(response, "GET /jobs/")


def test_a_challenging_authentication_class_makes_it_401(world, monkeypatch):
    monkeypatch.setattr(
        views._ViewSet, "authentication_classes", [BasicAuthentication, SessionAuthentication]
    )
    response = client_for().get("/api/jobs/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="api"'
    assert_documented(response, "GET /jobs/")


def test_missing_permissions_are_forbidden(world):
    response = client_for(world["owner"]).post("/api/servers/", {"title": "x"}, format="json")
    assert response.status_code == 403
    assert_documented(response, "POST /servers/")


def test_conflicts(world):
    client, job = client_for(world["owner"]), world["job"]
    job.status = Job.STATUS.success
    job.save()
    cancel = client.post(f"/api/jobs/{job.pk}/cancel/")
    assert (cancel.status_code, cancel.json()) == (409, {"detail": "The job has ended already."})
    assert_documented(cancel, "POST /jobs/{id}/cancel/")
    job.status = Job.STATUS.submitted
    job.save()
    change = client.patch(f"/api/jobs/{job.pk}/", {"title": "x"}, format="json")
    assert change.status_code == 409
    assert_documented(change, "PATCH /jobs/{id}/")
    superuser = client_for(make_user("root", is_superuser=True))
    in_use = superuser.delete(f"/api/servers/{job.server_id}/")
    assert in_use.status_code == 409
    assert_documented(in_use, "DELETE /servers/{id}/")


def test_an_accept_header_the_api_cannot_satisfy(world):
    response = client_for(world["owner"]).get("/api/jobs/", HTTP_ACCEPT="text/csv")
    assert response.status_code == 406
    assert_documented(response, "GET /jobs/")


def test_a_download_is_sent_whatever_the_client_accepts(world):
    result = make_result(job=world["job"], remote_filename="out.csv")
    result.local_file.save("out.csv", ContentFile(b"a,b\n"))
    client = client_for(world["owner"])
    for accept in ("application/octet-stream", "text/csv", "*/*"):
        response = client.get(f"/api/results/{result.pk}/download/", HTTP_ACCEPT=accept)
        assert response.status_code == 200, accept
        assert b"".join(response.streaming_content) == b"a,b\n"
    missing = client.get("/api/results/999999/download/", HTTP_ACCEPT="application/octet-stream")
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/json"
    assert_documented(missing, "GET /results/{id}/download/")


def test_a_body_in_a_type_the_api_does_not_read(world):
    response = client_for(world["owner"]).post("/api/jobs/", "title=x", content_type="text/plain")
    assert response.status_code == 415
    assert_documented(response, "POST /jobs/")


def test_throttling_answers_429_when_the_project_sets_it(world, monkeypatch):
    class OnePerMinute(UserRateThrottle):
        rate = "1/min"

    cache.clear()

    monkeypatch.setattr(views._ViewSet, "throttle_classes", [OnePerMinute])
    client = client_for(world["owner"])
    assert client.get("/api/jobs/").status_code == 200
    response = client.get("/api/jobs/")
    assert response.status_code == 429
    assert_documented(response, "GET /jobs/")


def test_the_schema_documents_json_bodies_and_every_error():
    document = APIClient().get("/api/schema/", {"format": "json"}).json()
    jobs = document["paths"]["/jobs/{id}/"]
    assert list(jobs["patch"]["requestBody"]["content"]) == ["application/json"]
    assert sorted(jobs["patch"]["responses"]) == ["200", "400", "403", "404", "406", "409", "415"]
    assert sorted(jobs["get"]["responses"]) == ["200", "403", "404", "406"]
    download = document["paths"]["/results/{id}/download/"]["get"]["responses"]
    assert sorted(download) == ["200", "403", "404"]
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert len(operations) == 27
    assert all("403" in op["responses"] for op in operations)
