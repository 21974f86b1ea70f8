"""Where a job is (django_remote_submission.where and its template tag), and what the pages
and the log template get to show it and the earlier lines."""

import datetime as dt

import pytest
from django.template.loader import render_to_string
from django.test import override_settings

from django_remote_submission import events
from django_remote_submission.models import Job, WorkerBeat
from django_remote_submission.views import log_context
from django_remote_submission.where import (
    alive_within,
    duration_text,
    last_outputs,
    where_html,
    where_text,
    with_last_output,
)
from tests.factories import make_job, make_log, make_user

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
#: A project that did not include the app's URLs (ROOT_URLCONF="tests.test_pages").
urlpatterns: list = []


def ago(seconds):
    return NOW - dt.timedelta(seconds=seconds)


def row(state, **fields):
    """A job's row as the pages read it; nothing is saved."""
    return Job(pk=7, title="t", state=state, **fields)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (0.9, "0 s"),
        (59, "59 s"),
        (60, "1 min 0 s"),
        (123, "2 min 3 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h 0 min"),
        (3600 + 5 * 60 + 59, "1 h 5 min"),
        (86399, "23 h 59 min"),
        (2 * 86400 + 3 * 3600 + 59, "2 d 3 h"),
        (-5, "0 s"),  # a clock a little behind never shows a negative time
    ],
)
def test_durations_are_to_the_second_while_short_coarser_as_they_grow(seconds, text):
    assert duration_text(seconds) == text


@pytest.mark.parametrize(
    ("job", "last_output", "text"),
    [
        (row("queued"), None, "Queued: not sent to a worker yet"),
        (row("starting"), None, "Starting: connecting to the server and uploading the program"),
        (row("running", started_at=ago(75)), None, "Running for 1 min 15 s; no output yet"),
        (
            row("running", started_at=ago(75), heartbeat=ago(1)),
            ago(4),
            "Running for 1 min 15 s; last output 4 s ago",
        ),
        (row("running"), None, "Running"),
        (
            row("finishing", started_at=ago(75)),
            ago(4),
            "Finishing: storing the last output and collecting result files",
        ),
        (
            row("success", started_at=ago(3700), finished_at=ago(20)),
            None,
            "Succeeded after 1 h 1 min",
        ),
        (row("success"), None, "Succeeded"),
        (row("failure", started_at=ago(10), finished_at=ago(7)), None, "Failed after 3 s"),
        (row("failure", finished_at=ago(7)), None, "Failed before it started"),
        (row("canceled", started_at=ago(10), finished_at=ago(5)), None, "Canceled after 5 s"),
        (row("canceled", finished_at=ago(5)), None, "Canceled before it started"),
    ],
)
def test_each_state_has_its_line(job, last_output, text):
    assert where_text(job, last_output=last_output, now=NOW) == text


def beat(last_sweep_at):
    """A worker's sweep, as the sweep writes it."""
    return WorkerBeat.objects.create(
        owner=f"host:1:{last_sweep_at.timestamp()}",
        host="host",
        pid=1,
        started_at=last_sweep_at,
        last_sweep_at=last_sweep_at,
    )


@pytest.mark.django_db
def test_a_queued_job_says_whether_a_worker_is_alive_to_take_it():
    job = row("queued", queued_at=ago(125))
    nobody = "Queued for 2 min 5 s: no worker is running: start one (celery worker)"
    assert where_text(job, now=NOW) == nobody
    beat(NOW - 10 * alive_within())  # a worker that stopped long ago is no help
    assert where_text(job, now=NOW) == nobody
    beat(NOW - alive_within() / 2)
    assert where_text(job, now=NOW) == "Queued for 2 min 5 s: waiting for a free worker"
    html = where_html(job, now=NOW)
    assert 'data-waiting="waiting for a free worker"' in html


@pytest.mark.django_db
def test_a_list_asks_once_whether_a_worker_is_alive(django_assert_num_queries):
    owner = make_user()
    jobs = [make_job(owner=owner, state="queued", queued_at=ago(5)) for _ in range(3)]
    with django_assert_num_queries(1):
        with_last_output(jobs)
    assert [job.waiting for job in jobs] == ["no worker is running: start one (celery worker)"] * 3
    with django_assert_num_queries(0):
        html = [where_html(job, waiting=job.waiting) for job in jobs]
    assert all("no worker is running" in line for line in html)


def test_an_ended_job_counts_from_start_to_end_whenever_it_is_read():
    job = row("success", started_at=ago(100), finished_at=ago(40))
    later = NOW + dt.timedelta(days=3)
    assert where_text(job, now=NOW) == where_text(job, now=later) == "Succeeded after 1 min 0 s"


def test_the_html_line_carries_times_and_what_the_script_needs():
    job = row("running", started_at=ago(75), queued_at=ago(80))
    html = where_html(job, last_output=ago(4), now=NOW)
    assert html.startswith('<span class="drs-where drs-where-running" data-drs-where data-job="7"')
    for attribute in (
        'data-state="running"',
        f'data-queued-at="{ago(80).isoformat()}"',
        f'data-started-at="{ago(75).isoformat()}"',
        'data-finished-at=""',
        f'data-last-output="{ago(4).isoformat()}"',
        f'data-now="{NOW.isoformat()}"',
    ):
        assert attribute in html
    assert html.endswith(
        'Running for <time datetime="PT75S">1 min 15 s</time>; '
        'last output <time datetime="PT4S">4 s</time> ago</span>'
    )


@pytest.mark.django_db
def test_last_output_reads_only_the_running_jobs_in_one_query(django_assert_num_queries):
    owner = make_user()
    running = make_job(owner=owner, state="running", status="submitted", started_at=ago(60))
    quiet = make_job(owner=owner, server=running.server, state="running", status="submitted")
    ended = make_job(owner=owner, server=running.server, state="success", status="success")
    for i in range(3):
        make_log(job=running, content=f"{i}\n")
    last = make_log(job=running, content="last\n")
    make_log(job=ended, content="ended\n")
    jobs = list(Job.objects.filter(owner=owner).order_by("pk"))
    with django_assert_num_queries(1):
        with_last_output(jobs)
    assert [job.last_output for job in jobs] == [last.time, None, None]
    with django_assert_num_queries(0):
        assert last_outputs([]) == {}
    assert last_outputs([quiet.pk, ended.pk]) == {ended.pk: ended.logs.get().time}


@pytest.mark.django_db
def test_the_log_template_shows_where_the_job_is_and_offers_earlier_lines():
    job = make_job(state="running", status="submitted", started_at=ago(60))
    rows = [make_log(job=job, content=f"line {i}\n") for i in range(5)]
    context = log_context(job.pk, tail=3)
    assert context["last_output"] == rows[-1].time
    assert context["omitted"] == 2
    assert context["earlier"] == f"/api/jobs/{job.pk}/logs/"
    assert context["download"] == f"/api/jobs/{job.pk}/log.txt"
    page = render_to_string("django_remote_submission/log.html", {"job": job, **context})
    assert f'data-first="{rows[2].pk}"' in page
    assert f'data-earlier="/api/jobs/{job.pk}/logs/"' in page
    assert "data-drs-earlier hidden>Earlier lines</button>" in page  # its script shows it
    assert "Running for " in page
    assert "; last output <time" in page
    assert "django_remote_submission/job-where.js" in page


@pytest.mark.django_db
def test_a_log_shown_whole_offers_no_earlier_lines():
    job = make_job()
    make_log(job=job)
    page = render_to_string(
        "django_remote_submission/log.html", {"job": job, **log_context(job.pk)}
    )
    assert "data-drs-earlier" not in page
    assert "Queued: not sent to a worker yet" in page


@pytest.mark.django_db
def test_the_state_line_leaves_the_error_to_a_page_that_shows_it():
    job = make_job(state="failure", status="failure", error="The program exited with code 3.")
    context = {"job": job, **log_context(job.pk)}
    page = render_to_string("django_remote_submission/log.html", context)
    assert page.count("The program exited with code 3.") == 1
    assert "data-error-elsewhere" not in page
    page = render_to_string(
        "django_remote_submission/log.html", {**context, "error_elsewhere": True}
    )
    assert "The program exited with code 3." not in page
    assert "data-error-elsewhere" in page
    canceled = make_job(state="canceled", status="failure", error="Canceled.")
    page = render_to_string(
        "django_remote_submission/log.html", {"job": canceled, **log_context(canceled.pk)}
    )
    assert "data-drs-state>canceled: Canceled.</p>" in page


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.urls_namespaced")
def test_the_log_links_work_under_the_namespace_too():
    job = make_job()
    context = log_context(job.pk)
    assert context["download"] == f"/api/jobs/{job.pk}/log.txt"
    assert context["earlier"] == f"/api/jobs/{job.pk}/logs/"


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.test_pages")  # its urlpatterns: none of the app's
def test_without_the_apps_urls_the_log_has_no_links():
    job = make_job()
    make_log(job=job)
    context = log_context(job.pk, tail=0)
    assert (context["download"], context["earlier"]) == (None, None)
    page = render_to_string("django_remote_submission/log.html", {"job": job, **context})
    assert "Download" not in page
    assert "data-earlier" not in page


@pytest.mark.django_db
def test_the_job_user_status_page_has_a_where_column(client):
    owner = make_user()
    job = make_job(owner=owner, state="running", status="submitted", started_at=ago(60))
    make_log(job=job, content="out\n")
    client.force_login(owner)
    page = client.get("/api/job-user-status/").content.decode()
    assert "<th>Where</th>" in page
    assert "Running for " in page
    assert "; last output <time" in page
    assert page.index("job-where.js") < page.index("job-status.js")


def test_status_frames_carry_the_times_of_the_where_line_after_the_2x_keys():
    job = row(
        "running", queued_at=ago(90), started_at=ago(60), heartbeat=ago(2), status="submitted"
    )
    payload = events.status_payload(job)
    assert list(payload)[:4] == ["job_id", "title", "status", "modified"]
    assert payload["queued_at"] == ago(90).isoformat()
    assert payload["heartbeat"] == ago(2).isoformat()
    assert payload["started_at"] == ago(60).isoformat()
    assert payload["state"] == "running"
