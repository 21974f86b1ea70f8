"""Jobs of batch-scheduled servers on the pages: the where-line of a pending job, the
admin's scheduler settings and a job's resources, the operators' page, and the task that
refuses what a server's limits do not allow before anything is sent."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from django_remote_submission.exceptions import ResourcesRefused
from django_remote_submission.models import Job, Server
from django_remote_submission.overview import overview
from django_remote_submission.tasks import submit_job_to_server
from django_remote_submission.templatetags.remote_submission import shown_status
from django_remote_submission.where import where_html, where_text
from tests.factories import make_interpreter, make_job, make_server, make_user
from tests.test_admin import job_form

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
REASON = "waiting for free CPUs or memory"


def ago(seconds):
    return NOW - dt.timedelta(seconds=seconds)


def pending(scheduler="slurm", **fields):
    """A pending job's row as the pages read it; nothing is saved."""
    return Job(pk=7, title="t", state="pending", server=Server(scheduler=scheduler), **fields)


# The where-line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "text"),
    [
        (
            pending(pending_since=ago(125), scheduler_reason=REASON),
            f"Waiting at Slurm for 2 min 5 s: {REASON}",
        ),
        (pending(pending_since=ago(125)), "Waiting at Slurm for 2 min 5 s"),
        (
            pending("pbs", pending_since=ago(3700), scheduler_reason="held by an administrator"),
            "Waiting at PBS for 1 h 1 min: held by an administrator",
        ),
        (pending(), "Waiting at Slurm"),
        (pending(scheduler_reason=REASON), f"Waiting at Slurm: {REASON}"),
    ],
)
def test_a_pending_job_says_where_it_waits_since_when_and_why(job, text):
    assert where_text(job, now=NOW) == text


def test_the_pending_line_carries_what_the_script_needs_to_tick_and_follow_frames():
    job = pending(pending_since=ago(125), scheduler_reason=REASON, queued_at=ago(130))
    html = where_html(job, now=NOW)
    assert html.startswith('<span class="drs-where drs-where-pending" data-drs-where data-job="7"')
    for attribute in (
        'data-state="pending"',
        'data-scheduler="Slurm"',
        f'data-pending-since="{ago(125).isoformat()}"',
        f'data-reason="{REASON}"',
        f'data-now="{NOW.isoformat()}"',
    ):
        assert attribute in html
    assert html.endswith(
        f'Waiting at Slurm for <time datetime="PT125S">2 min 5 s</time>: {REASON}</span>'
    )


def test_a_reason_is_text_in_the_line_and_its_attribute():
    job = pending(pending_since=ago(5), scheduler_reason='<img src=x onerror="alert(1)">')
    html = where_html(job, now=NOW)
    assert "<img" not in html
    assert 'data-reason="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"' in html
    assert html.endswith(": &lt;img src=x onerror=&quot;alert(1)&quot;&gt;</span>")


def test_a_job_of_a_direct_server_or_an_ended_one_names_no_scheduler():
    running = Job(pk=7, state="running", server=Server(), started_at=ago(5))
    assert 'data-scheduler=""' in where_html(running, now=NOW)
    ended = Job(pk=7, state="success", status="success", server=Server(scheduler="slurm"))
    assert 'data-scheduler=""' in where_html(ended, now=NOW)
    queued = Job(pk=7, state="queued", server=Server(scheduler="pbs"))
    assert 'data-scheduler="PBS"' in where_html(queued, now=NOW, waiting="")


def test_the_shown_status_of_a_pending_job_is_pending():
    assert shown_status(pending(status="submitted")) == "pending"
    assert shown_status(Job(state="running", status="submitted")) == "submitted"


@pytest.mark.django_db
def test_the_job_user_status_page_shows_a_pending_job_in_words(client, django_assert_num_queries):
    owner = make_user()
    server = make_server(scheduler="slurm")
    for _ in range(3):
        make_job(
            owner=owner,
            server=server,
            state="pending",
            status="submitted",
            scheduler_reason=REASON,
            pending_since=timezone.now() - dt.timedelta(seconds=30),
        )
    client.force_login(owner)
    page = client.get("/api/job-user-status/").content.decode()
    assert page.count("<td>pending</td>") == 3
    assert page.count("Waiting at Slurm for <time") == 3
    assert page.count(f": {REASON}</span>") == 3
    # The servers come with the jobs, not one query each.
    with django_assert_num_queries(3):  # the session, the user, the jobs with their server
        client.get("/api/job-user-status/")


# The admin -------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, db):
    client.force_login(make_user("admin@example.com", is_staff=True, is_superuser=True))
    return client


def server_form(interpreter, **changes):
    """The server add form as the admin posts it, with ``changes`` on top."""
    data = {
        "title": "cluster",
        "hostname": "login.example.org",
        "port": "22",
        "username": "",
        "host_key": "",
        "interpreters": [interpreter.pk],
        "scheduler": "slurm",
        "scheduler_partition": "",
        "scheduler_account": "",
        "scheduler_qos": "",
        "scheduler_time_limit": "",
        "scheduler_directives": "",
        "scheduler_allowed_options": "",
        "max_cpus": "",
        "max_memory_mb": "",
        "max_time_limit": "",
        "max_gpus": "",
        "max_nodes": "",
        "scheduler_poll_interval": "10",
    }
    data.update(changes)
    return data


def test_the_server_form_folds_the_scheduler_settings_away(admin_client):
    page = admin_client.get(reverse("admin:django_remote_submission_server_add")).content.decode()
    heading = page.index("Batch scheduler")
    fieldset = page[page.rindex("<fieldset", 0, heading) : page.index("</fieldset>", heading)]
    assert "collapse" in fieldset
    assert "By default jobs start directly" in fieldset
    for name in ("scheduler", "scheduler_partition", "max_cpus", "scheduler_poll_interval"):
        assert f'name="{name}"' in fieldset
    assert 'name="allowed_users"' in page


def test_the_server_form_saves_the_scheduler_settings(admin_client):
    interpreter = make_interpreter()
    response = admin_client.post(
        reverse("admin:django_remote_submission_server_add"),
        server_form(
            interpreter,
            scheduler_partition="debug",
            scheduler_account="proj-42",
            scheduler_time_limit="30",
            scheduler_directives="--constraint=haswell\n--exclusive",
            scheduler_allowed_options="--constraint --mail-type",
            max_cpus="16",
            max_memory_mb="64000",
            max_time_limit="120",
            scheduler_poll_interval="30",
        ),
    )
    assert response.status_code == 302
    server = Server.objects.get(title="cluster")
    assert server.is_scheduled
    assert (server.scheduler, server.scheduler_partition, server.scheduler_account) == (
        "slurm",
        "debug",
        "proj-42",
    )
    assert (server.max_cpus, server.max_memory_mb, server.max_time_limit) == (16, 64000, 120)
    assert server.max_gpus is None
    assert server.scheduler_poll_interval == 30.0


@pytest.mark.parametrize("partition", ["debug\n#SBATCH --uid=0", "$(id)", "a b"])
def test_the_server_form_refuses_a_partition_that_would_write_more_than_a_name(
    admin_client, partition
):
    interpreter = make_interpreter()
    response = admin_client.post(
        reverse("admin:django_remote_submission_server_add"),
        server_form(interpreter, scheduler_partition=partition),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors == {
        "scheduler_partition": [
            f"The partition {partition!r} can't be used: use letters, digits and . _ + @ - only."
        ]
    }
    assert not Server.objects.exists()


def test_a_direct_server_ignores_the_scheduler_fields(admin_client):
    interpreter = make_interpreter()
    response = admin_client.post(
        reverse("admin:django_remote_submission_server_add"),
        server_form(interpreter, scheduler="direct", scheduler_partition="$(id)"),
    )
    assert response.status_code == 302
    assert not Server.objects.get().is_scheduled


def test_the_job_form_takes_resources_within_the_limits_and_refuses_more(admin_client):
    job = make_job(server=make_server(scheduler="slurm", max_cpus=4, max_time_limit=60))
    url = reverse("admin:django_remote_submission_job_change", args=[job.pk])
    refused = admin_client.post(url, job_form(job, resources='{"cpus": 8, "time_limit_s": 7200}'))
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors == {
        "resources": [
            "8 CPUs asked, this server allows at most 4.",
            "7200 seconds of time asked, this server allows at most 3600.",
        ]
    }
    job.refresh_from_db()
    assert job.resources == {}
    taken = admin_client.post(url, job_form(job, resources='{"cpus": 4}'))
    assert taken.status_code == 302
    job.refresh_from_db()
    assert job.resources == {"cpus": 4}
    # Blank is the server's defaults.
    assert admin_client.post(url, job_form(job, resources="")).status_code == 302
    job.refresh_from_db()
    assert job.resources == {}


def test_the_job_form_refuses_resources_on_a_direct_server(admin_client):
    job = make_job()
    response = admin_client.post(
        reverse("admin:django_remote_submission_job_change", args=[job.pk]),
        job_form(job, resources='{"cpus": 2}'),
    )
    assert response.context["adminform"].form.errors == {
        "resources": [
            "This server runs jobs directly, not through a batch scheduler: it takes no resources."
        ]
    }


def test_a_new_job_is_asked_its_resources(admin_client):
    page = admin_client.get(reverse("admin:django_remote_submission_job_add")).content.decode()
    assert 'name="resources"' in page


def test_a_sent_job_shows_its_scheduler_fields_and_keeps_its_resources(admin_client):
    since = timezone.now() - dt.timedelta(minutes=3)
    server = make_server(scheduler="slurm", max_cpus=8)
    job = make_job(
        server=server,
        state="pending",
        status="submitted",
        resources={"cpus": 8},
        scheduler_job_id="4242",
        scheduler_reason=REASON,
        pending_since=since,
    )
    url = reverse("admin:django_remote_submission_job_change", args=[job.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="resources"' not in page
    status = page[page.index("Status") : page.index("data-drs-log")]
    for shown in ("Scheduler Job Id", "4242", "Scheduler Reason", REASON, "Pending Since"):
        assert shown in status
    # A limit lowered after it was sent does not keep its title from changing.
    Server.objects.filter(pk=server.pk).update(max_cpus=2)
    response = admin_client.post(url, job_form(job, title="renamed", resources='{"cpus": 1}'))
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.title, job.resources) == ("renamed", {"cpus": 8})


def test_the_run_actions_refuse_a_timeout_over_the_servers_limit(admin_client):
    job = make_job(server=make_server(scheduler="slurm", max_time_limit=10), title="long")
    url = reverse("admin:django_remote_submission_job_changelist")
    for action in ("submit_to_server", "resubmit"):
        response = admin_client.post(
            url,
            {
                "action": action,
                "_selected_action": [job.pk],
                "apply": "1",
                "timeout": "3600",
                "log_policy": "1",
                "remote": "on",
            },
            follow=True,
        )
        shown = [str(message) for message in response.context["messages"]]
        assert f"{job}: 3600 seconds of time asked, this server allows at most 600." in shown
        assert "No job was submitted." in shown
    job.refresh_from_db()
    assert (job.task_id, job.state) == ("", "queued")
    assert Job.objects.count() == 1


def test_the_job_list_filters_pending_jobs(admin_client):
    server = make_server(scheduler="slurm")
    make_job(server=server, title="at slurm", state="pending", status="submitted")
    make_job(server=server, title="on its way", state="starting", status="submitted")
    url = reverse("admin:django_remote_submission_job_changelist")
    page = admin_client.get(url, {"state__exact": "pending"}).content.decode()
    assert "at slurm" in page
    assert "on its way" not in page


def test_the_operators_page_lists_pending_jobs_with_their_reason(admin_client):
    server = make_server(scheduler="slurm", title="cluster")
    job = make_job(
        server=server,
        title="waits",
        state="pending",
        status="submitted",
        scheduler_job_id="77",
        scheduler_reason=REASON,
        pending_since=NOW - dt.timedelta(seconds=125),
    )
    data = overview(lambda pk: f"/jobs/{pk}/", now=NOW)
    assert data["servers"][0]["counts"]["pending"] == 1
    assert data["pending"] == [
        {
            "id": job.pk,
            "title": "waits",
            "url": f"/jobs/{job.pk}/",
            "server": "cluster",
            "owner": job.owner.get_username(),
            "scheduler_job_id": "77",
            "pending_since": (NOW - dt.timedelta(seconds=125)).isoformat(),
            "waiting": "2 min 5 s",
            "reason": REASON,
        }
    ]
    page = admin_client.get(
        reverse("admin:django_remote_submission_overview_changelist")
    ).content.decode()
    table = page[page.index('id="drs-pending"') :]
    table = table[: table.index("</table>")]
    assert f'data-job="{job.pk}"' in table
    assert f"<td>{REASON}</td>" in table


# The task --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("server", "resources", "timeout", "error"),
    [
        (
            {"scheduler": "slurm", "max_cpus": 4},
            {"cpus": 8},
            None,
            "8 CPUs asked, this server allows at most 4.",
        ),
        (
            {"scheduler": "pbs", "max_time_limit": 10},
            {},
            3600,
            "3600 seconds of time asked, this server allows at most 600.",
        ),
        (
            {"scheduler": "slurm"},
            {"cpus": 1, "cores": 2},
            None,
            "Unknown resources: cores (known: cpus, memory_mb, time_limit_s, gpus, nodes, "
            "directives).",
        ),
        (
            {},
            {"cpus": 2},
            None,
            "This server runs jobs directly, not through a batch scheduler: it takes no resources.",
        ),
    ],
)
def test_the_task_refuses_what_the_server_would_not_take_before_sending_it(
    server, resources, timeout, error
):
    # Written as a row the admin or the API would have refused, or with a timeout the
    # server's limit does not allow: the task is the last check before anything is sent.
    job = make_job(server=make_server(hostname="never.invalid", **server))
    Job.objects.filter(pk=job.pk).update(resources=resources)
    with pytest.raises(ValueError, match=f"^{re.escape(error)}$"):
        submit_job_to_server(job_pk=job.pk, timeout=timeout)
    job.refresh_from_db()
    assert (job.state, job.status) == ("failure", "failure")
    assert job.error == error
    assert job.started_at is None
    assert job.scheduler_job_id == ""


@pytest.mark.django_db
def test_the_task_joins_every_problem_in_one_failure():
    job = make_job(server=make_server(scheduler="slurm", max_cpus=2, max_memory_mb=100))
    Job.objects.filter(pk=job.pk).update(resources={"cpus": 3, "memory_mb": 200})
    with pytest.raises(ResourcesRefused, match="at most 2. 200 MB of memory"):
        submit_job_to_server(job_pk=job.pk)
    job.refresh_from_db()
    assert job.state == "failure"
    assert job.error == (
        "3 CPUs asked, this server allows at most 2. "
        "200 MB of memory asked, this server allows at most 100."
    )
