import datetime as dt
import time

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_remote_submission.diagnostics import ServerReport, record_report
from django_remote_submission.models import Job, Log, Server, WorkerBeat
from django_remote_submission.overview import overview, state_counts
from tests.factories import make_job, make_log, make_server, make_user

pytestmark = pytest.mark.django_db

OVERVIEW = "admin:django_remote_submission_overview_changelist"
DATA = "admin:django_remote_submission_overview_data"


def job_url(pk):
    return f"/job/{pk}/"


def staff(*codenames, username="operator"):
    user = make_user(username, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_remote_submission", codename__in=codenames
        )
    )
    return user


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def job_in(state, **kwargs):
    """A job in ``state``, its row written as the worker writes it (save() would derive
    the state from the 2.x status)."""
    fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("title", "server", "owner")}
    job = make_job(**kwargs)
    Job.objects.filter(pk=job.pk).update(state=state, **fields)
    job.refresh_from_db()
    return job


def ago(seconds):
    return timezone.now() - dt.timedelta(seconds=seconds)


def beat(owner="host:1:aa", seconds_ago=0.0, **kwargs):
    values = {
        "owner": owner,
        "host": owner.split(":")[0],
        "pid": int(owner.split(":")[1]),
        "started_at": ago(3600),
        "last_sweep_at": ago(seconds_ago),
        "jobs_followed": 0,
    }
    values.update(kwargs)
    return WorkerBeat.objects.create(**values)


# The data ------------------------------------------------------------------------------


def test_jobs_are_counted_by_state_per_server_in_one_query(django_assert_num_queries):
    one = make_server(title="one")
    two = make_server(title="two")
    for state in ("queued", "queued", "running", "success"):
        job_in(state, server=one)
    job_in("canceled", server=two)
    with django_assert_num_queries(1):
        counts = state_counts()
    assert counts == {
        one.pk: {"queued": 2, "running": 1, "success": 1},
        two.pk: {"canceled": 1},
    }
    [first, second] = overview(job_url)["servers"]
    assert first["title"] == "one"
    assert first["counts"] == {
        "queued": 2,
        "starting": 0,
        "pending": 0,
        "running": 1,
        "finishing": 0,
        "success": 1,
        "failure": 0,
        "canceled": 0,
    }
    assert second["counts"]["canceled"] == 1


def test_a_running_job_shows_its_duration_and_the_time_of_its_last_output():
    job = job_in("running", title="long", started_at=ago(125))
    make_log(job=job, content="early\n")
    last = make_log(job=job, content="late\n")
    Log.objects.filter(pk=last.pk).update(time=ago(40))
    Log.objects.exclude(pk=last.pk).update(time=ago(100))
    # A heartbeat comes at every store, output or not: it is not the last output.
    Job.objects.filter(pk=job.pk).update(heartbeat=timezone.now())
    job_in("success", title="done", started_at=ago(300), finished_at=ago(200))
    [row] = overview(job_url)["running"]
    assert (row["id"], row["title"], row["url"]) == (job.pk, "long", f"/job/{job.pk}/")
    assert row["duration"] in ("2 min 5 s", "2 min 6 s")
    assert row["since_output"] in ("40 s ago", "41 s ago")
    assert row["owner"] == job.owner.username


def test_a_running_job_without_output_says_so():
    job_in("running", started_at=ago(5), heartbeat=timezone.now())
    [row] = overview(job_url)["running"]
    assert row["since_output"] == "no output yet"
    assert row["last_output_at"] is None


def test_queued_jobs_are_stuck_after_the_setting():
    old = job_in("queued", title="old", queued_at=ago(700))
    job_in("queued", title="recent", queued_at=ago(100))
    job_in("queued", title="never sent", queued_at=None)
    job_in("running", title="running", queued_at=ago(5000), started_at=ago(10))
    assert [row["title"] for row in overview(job_url)["stuck"]] == ["old"]
    with override_settings(REMOTE_SUBMISSION_STUCK_AFTER=60):
        data = overview(job_url)
    assert [row["title"] for row in data["stuck"]] == ["old", "recent"]
    assert data["stuck"][0]["id"] == old.pk
    assert data["stuck_after"] == 60
    assert data["stuck"][0]["waiting"].startswith("11 min")


@override_settings(REMOTE_SUBMISSION_LEASE_SECONDS=20.0)
def test_a_worker_is_alive_while_its_sweep_beats():
    assert overview(job_url)["summary"] == "No worker is alive"
    assert overview(job_url)["last_sweep"] == "never"
    beat("dead:2:bb", seconds_ago=60)
    data = overview(job_url)
    assert (data["alive"], data["summary"]) == (0, "No worker is alive")
    assert data["workers"][0]["alive"] is False
    beat("live:3:cc", seconds_ago=2, jobs_followed=4)
    data = overview(job_url)
    assert (data["alive"], data["summary"]) == (1, "1 worker is alive")
    assert [(w["host"], w["alive"], w["jobs_followed"]) for w in data["workers"]] == [
        ("live", True, 4),
        ("dead", False, 0),
    ]
    assert data["last_sweep"] in ("2 s ago", "3 s ago")
    assert data["workers"][0]["started"].startswith("1 h 0 min")


def test_a_password_never_reaches_the_servers_report():
    server = make_server()
    report = ServerReport(server, notes=["Host key x."], problems=["Login refused: s3cret!"])
    record_report(server, report, secrets=["s3cret!"])
    server = Server.objects.get(pk=server.pk)
    assert "s3cret!" not in server.last_check_report
    assert server.last_check_report == "Host key x. Login refused: ********"
    assert server.last_check_ok is False
    assert server.last_checked_at is not None


# The page and its JSON -----------------------------------------------------------------


def test_the_page_shows_every_part(admin_client):
    server = make_server(title="cluster")
    job = job_in("running", title="<b>busy</b>", server=server, started_at=ago(30))
    job_in("queued", title="waiting", server=server, queued_at=ago(3600))
    beat("node1:42:aa", seconds_ago=1)
    page = admin_client.get(reverse(OVERVIEW)).content.decode()
    assert "1 worker is alive" in page
    assert f'data-job="{job.pk}"' in page
    assert "&lt;b&gt;busy&lt;/b&gt;" in page
    assert "<b>busy</b>" not in page
    assert "waiting" in page
    assert "never tested" in page
    assert "Test now" in page
    assert "django_remote_submission/overview.js" in page
    assert reverse(DATA) in page


def test_the_json_has_the_same_data(admin_client):
    job_in("running", started_at=ago(30))
    response = admin_client.get(reverse(DATA))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    data = response.json()
    assert data["summary"] == "No worker is alive"
    [row] = data["running"]
    assert row["url"] == reverse("admin:django_remote_submission_job_change", args=[row["id"]])


def test_the_admin_index_and_the_job_list_link_to_the_page(admin_client):
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse(OVERVIEW) in index
    assert "Operators&#x27; overview" in index
    changelist = admin_client.get(reverse("admin:django_remote_submission_job_changelist"))
    assert reverse(OVERVIEW) in changelist.content.decode()


@pytest.mark.parametrize("name", [OVERVIEW, DATA])
def test_anonymous_and_non_staff_users_are_sent_to_the_login(client, name):
    url = reverse(name)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    client.force_login(make_user("plain"))
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("name", [OVERVIEW, DATA])
def test_staff_who_may_not_view_jobs_are_refused(client, name):
    client.force_login(staff("view_server"))
    assert client.get(reverse(name)).status_code == 403


def test_staff_who_may_view_jobs_see_it_without_test_buttons(client):
    client.force_login(staff("view_job"))
    make_server()
    page = client.get(reverse(OVERVIEW)).content.decode()
    assert "Workers" in page
    assert "Test now" not in page
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse(OVERVIEW) in index


# Test now ------------------------------------------------------------------------------


def url_of_test_now(server):
    return reverse("admin:django_remote_submission_overview_test", args=[server.pk])


def test_test_now_takes_only_a_post(admin_client):
    assert admin_client.get(url_of_test_now(make_server())).status_code == 405


def test_test_now_needs_the_change_permission_of_servers(client):
    server = make_server()
    client.force_login(staff("view_job", "view_server"))
    assert client.post(url_of_test_now(server)).status_code == 403
    server.refresh_from_db()
    assert server.last_checked_at is None


def test_test_now_asks_the_login_policy_first(client):
    server = make_server(username="svc")
    client.force_login(staff("view_job", "change_server"))
    response = client.post(url_of_test_now(server), follow=True)
    [message] = [str(m) for m in response.context["messages"]]
    assert f"may not run jobs as 'svc' on {server}" in message
    server.refresh_from_db()
    assert server.last_checked_at is None


@pytest.mark.ssh
def test_test_now_tests_with_the_workers_key_and_records_the_outcome(openssh_target, admin_client):
    target = openssh_target
    server = target.server
    server.username = target.account.username
    server.save()
    with override_settings(REMOTE_SUBMISSION_KEY_FILENAME=str(target.account.key_filename)):
        response = admin_client.post(url_of_test_now(server), follow=True)
    assert response.redirect_chain[-1][0] == reverse(OVERVIEW)
    [message] = [str(m) for m in response.context["messages"]]
    assert f"Logged in as '{target.account.username}'" in message
    server.refresh_from_db()
    assert server.last_check_ok is True
    assert "ran `true`" in server.last_check_report
    page = response.content.decode()
    assert "passed" in page
    assert "ran `true`" in page

    server.hostname, server.port = "127.0.0.1", 9  # nothing listens on the discard port
    server.save()
    response = admin_client.post(url_of_test_now(server), follow=True)
    [message] = [str(m) for m in response.context["messages"]]
    assert any(m.level_tag == "error" for m in response.context["messages"])
    server.refresh_from_db()
    assert server.last_check_ok is False
    assert server.last_check_report
    assert "FAILED" in response.content.decode()


# The sweep's beat ----------------------------------------------------------------------


@override_settings(REMOTE_SUBMISSION_LEASE_SECONDS=2.0)
def test_a_running_sweep_beats_and_its_row_goes_when_it_stops(transactional_db):
    import os
    import socket

    from django_remote_submission.worker import Sweep

    beat("gone:7:dd", seconds_ago=2 * 86400)  # a worker killed long ago
    sweep = Sweep(resend=lambda job: None, on_end=lambda job, results, error: None)
    sweep.start()
    try:
        deadline = time.monotonic() + 30
        while sweep.beats < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sweep.beats >= 3
        row = WorkerBeat.objects.get()
        assert (row.owner, row.host, row.pid, row.jobs_followed) == (
            sweep.owner,
            socket.gethostname()[:150],
            os.getpid(),
            0,
        )
        assert row.last_sweep_at > row.started_at
        data = overview(job_url)
        assert data["summary"] == "1 worker is alive"
    finally:
        sweep.stop()
        sweep._thread.join(10)
    assert not WorkerBeat.objects.exists()
    assert overview(job_url)["summary"] == "No worker is alive"
