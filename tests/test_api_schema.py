"""A property-based run against the OpenAPI schema: no request makes the API answer 5xx."""

import base64

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings

from tests.factories import make_job, make_log, make_result, make_user

EXAMPLES_PER_OPERATION = 3


@pytest.fixture
def basic_auth(transactional_db):
    user = make_user("fuzz", is_staff=True, is_superuser=True)
    user.set_password("fuzz-password")
    user.save()
    job = make_job(owner=user)
    make_log(job=job)
    make_result(job=job)
    token = base64.b64encode(b"fuzz:fuzz-password").decode()
    return {"Authorization": f"Basic {token}"}


def test_no_request_makes_a_server_error(basic_auth):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    seen = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case):
            if case.path.endswith(("/submit/", "/resubmit/")) and isinstance(case.body, dict):
                # Keep the fuzzer from running real jobs: validation still runs, and a
                # job on the worker host needs a server error to pass.
                case.body = {**case.body, "remote": False, "timeout": 1}
            response = case.call(base_url="http://testserver/api", headers=basic_auth)
            seen.append(response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.text[:500])

        check()
    assert len(seen) >= len(operations)
