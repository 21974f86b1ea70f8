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


@pytest.mark.parametrize(
    "name", ["job-log.js", "job-status.js", "job-where.js", "remote-submission.css"]
)
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


def test_the_whole_log_downloads_as_text_streamed_in_chunks(client, django_assert_num_queries):
    from django.contrib.auth.models import Permission

    from django_remote_submission.logstream import _line as line
    from django_remote_submission.logstream import insert_logs
    from django_remote_submission.views import DOWNLOAD_CHUNK, log_lines

    job = make_job()
    lines = 2 * DOWNLOAD_CHUNK + 7
    from django.utils import timezone

    now = timezone.now()
    insert_logs(
        job.pk,
        [
            line("stderr" if i % 100 == 0 else "stdout", now, f"line {i}\n")
            for i in range(1, lines + 1)
        ],
    )
    client.force_login(job.owner)
    response = client.get(f"/api/jobs/{job.pk}/log.txt")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="job-{job.pk}-log.txt"'
    text = b"".join(response.streaming_content).decode()
    assert text.splitlines() == [f"line {i}" for i in range(1, lines + 1)]
    # One query per chunk of rows (and one that finds none): never the whole log at once.
    with django_assert_num_queries(4):
        chunks = list(log_lines(job.pk))
    assert [c.count("\n") for c in chunks] == [DOWNLOAD_CHUNK, DOWNLOAD_CHUNK, 7]

    # Another user's job looks missing; the view permission opens it; anonymous logs in.
    stranger = make_user("mallory")
    client.force_login(stranger)
    assert client.get(f"/api/jobs/{job.pk}/log.txt").status_code == 404
    stranger.user_permissions.add(Permission.objects.get(codename="view_job"))
    stranger = type(stranger).objects.get(pk=stranger.pk)
    client.force_login(stranger)
    assert client.get(f"/api/jobs/{job.pk}/log.txt").status_code == 200
    client.logout()
    assert client.get(f"/api/jobs/{job.pk}/log.txt").status_code == 302
