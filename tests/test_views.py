import pytest
from django.contrib.staticfiles import finders

from tests.factories import make_job, make_user

pytestmark = pytest.mark.django_db


def test_job_user_status_needs_a_login(client):
    response = client.get("/api/job-user-status/")
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_job_user_status_lists_the_users_jobs_escaped(client):
    owner = make_user()
    mine = make_job(owner=owner, title="<b>mine</b>")
    make_job(title="someone else's", server=mine.server)
    client.force_login(owner)
    page = client.get("/api/job-user-status/").content.decode()
    assert "&lt;b&gt;mine&lt;/b&gt;" in page
    assert "someone else" not in page
    assert 'data-socket="/ws/job-user/"' in page
    assert "django_remote_submission/job-status.js" in page


@pytest.mark.parametrize("name", ["job-log.js", "job-status.js", "remote-submission.css"])
def test_the_pages_assets_ship_with_the_app(name):
    path = finders.find(f"django_remote_submission/{name}")
    assert path is not None
    with open(path) as stream:
        text = stream.read()
    assert "innerHTML" not in text
    assert "http" not in text.replace("https:", "").replace("http:", "")  # no CDN


def test_the_browsable_api_renders(client):
    client.force_login(make_user())
    response = client.get("/api/jobs/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Job List" in response.content
