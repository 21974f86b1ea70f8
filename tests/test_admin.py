import datetime as dt
import time

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from django_remote_submission.models import Interpreter, Job, Log
from tests.factories import make_interpreter, make_job, make_log, make_result, make_user
from tests.sshagent import worker_ssh_agent

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("admin@example.com", is_staff=True, is_superuser=True))
    return client


def job_form(job, **changes):
    """The job change form as the admin posts it, with ``changes`` on top."""
    data = {
        "title": job.title,
        "owner": job.owner.pk,
        "server": job.server.pk,
        "interpreter": job.interpreter.pk,
        "resources": "{}",
        "program": job.program,
        "remote_directory": job.remote_directory,
        "remote_filename": job.remote_filename,
        "results-TOTAL_FORMS": "0",
        "results-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return data


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
        job_form(job, interpreter=other.pk),
    )
    assert response.status_code == 200
    assert "The Interpreter picked is not valid for this server." in response.content.decode()
    job.refresh_from_db()
    assert job.interpreter_id != other.pk


def test_job_runtime_fields_are_read_only(admin_client):
    job = make_job()
    admin_client.post(
        reverse("admin:django_remote_submission_job_change", args=[job.pk]),
        job_form(job, title="renamed", status="success", exit_code="0"),
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


# Actions --------------------------------------------------------------------------------


def run_action(client, model, action, objects, **data):
    return client.post(
        reverse(f"admin:django_remote_submission_{model}_changelist"),
        {"action": action, "_selected_action": [obj.pk for obj in objects], **data},
        follow=True,
    )


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


@pytest.mark.ssh
@pytest.mark.worker
@pytest.mark.redis
def test_submit_action_asks_then_runs_with_the_owners_login_when_blank(
    openssh_target, celery_worker, transactional_db, client
):
    target = openssh_target
    if not target.account.password:
        from tests.conftest import unavailable

        unavailable("the OpenSSH server offers no password login here")
    admin_user = make_user("root-admin", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    owner = make_user(target.account.username)  # the owner's name is the remote login
    job = target.job("print('ran as', __import__('getpass').getuser())", owner=owner)

    page = run_action(client, "job", "submit_to_server", [job])
    assert page.status_code == 200
    assert b'name="password"' in page.content
    assert b'value="Run these jobs"' in page.content
    # The output choices say what they do, not the 2.x constants' names.
    assert b"Store each line as it comes (live)" in page.content
    assert b"LOG_LIVE" not in page.content

    response = run_action(
        client,
        "job",
        "submit_to_server",
        [job],
        apply="1",
        username="",
        password=target.account.password,
        log_policy="1",
        remote="on",
    )
    assert "Successfully submitted 1 job." in messages_of(response)
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            break
        time.sleep(0.2)
    assert job.status == "success", job.error
    assert job.logs.get().content == f"ran as {target.account.username}\n"
    assert target.account.password.encode() not in response.content


@pytest.mark.ssh
def test_test_connection_reports_a_missing_interpreter(openssh_target, client):
    target = openssh_target
    client.force_login(make_user("admin2", is_staff=True, is_superuser=True))
    target.server.interpreters.add(make_interpreter(name="ghost", path="/no/such/python -u"))
    data = {"apply": "1", "username": target.account.username}
    if target.account.password:
        data["password"] = target.account.password
    else:
        from tests.conftest import unavailable

        unavailable("the OpenSSH server offers no password login here")
    response = run_action(client, "server", "test_connection", [target.server], **data)
    [report] = messages_of(response)
    assert "matches the pinned key" in report
    assert f"Logged in as '{target.account.username}'" in report
    assert "Interpreter python3" in report
    assert "found" in report
    assert "Interpreter ghost (/no/such/python -u) is MISSING." in report


@pytest.mark.ssh
def test_pin_host_key_action_shows_then_stores_the_key(openssh_target, client):
    from django_remote_submission.transport.hostkeys import HostKey

    target = openssh_target
    client.force_login(make_user("admin3", is_staff=True, is_superuser=True))
    server = target.server
    server.host_key = ""
    server.save()
    page = run_action(client, "server", "pin_host_key", [server])
    expected = HostKey.parse(target.account.host_key)
    assert expected.fingerprint in page.content.decode()
    server.refresh_from_db()
    assert server.host_key == ""  # nothing pinned before the confirmation
    response = run_action(
        client, "server", "pin_host_key", [server], apply="1", **{f"key-{server.pk}": expected.line}
    )
    server.refresh_from_db()
    assert HostKey.parse(server.host_key) == expected
    assert any("pinned" in message for message in messages_of(response))


def test_cancel_action(admin_client):
    job = make_job(status="submitted")
    done = make_job(status="success", server=job.server)
    response = run_action(admin_client, "job", "cancel", [job, done])
    assert "Asked 1 job to stop." in messages_of(response)
    job.refresh_from_db()
    assert job.cancel_requested_at is not None


def test_resubmit_action_copies_the_job(admin_client, settings):
    job = make_job(status="failure")
    before = Job.objects.count()
    page = run_action(admin_client, "job", "resubmit", [job])
    assert page.status_code == 200
    response = run_action(
        admin_client, "job", "resubmit", [job], apply="1", log_policy="1", store_results="*.txt"
    )
    assert "Successfully submitted 1 job." in messages_of(response)
    assert Job.objects.count() == before + 1
    copy = Job.objects.latest("id")
    assert (copy.program, copy.server_id, copy.owner_id) == (
        job.program,
        job.server_id,
        job.owner_id,
    )


def test_job_page_shows_the_log_tail_escaped_and_the_live_script(admin_client):
    job = make_job()
    for i in range(3):
        make_log(job=job, content=f"line {i}\n")
    last = make_log(job=job, content="<script>alert(1)</script>\n", stream="stderr")
    page = admin_client.get(
        reverse("admin:django_remote_submission_job_change", args=[job.pk])
    ).content.decode()
    assert "line 0" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
    assert f'data-since="{last.pk}"' in page
    assert f'data-socket="/ws/job-log/{job.pk}/"' in page
    assert "django_remote_submission/job-log.js" in page


def test_job_page_tails_a_long_log(admin_client):
    from django_remote_submission.admin import JobAdmin

    job = make_job()
    Log.objects.bulk_create([Log(job=job, content=f"{i}\n") for i in range(JobAdmin.log_tail + 50)])
    page = admin_client.get(
        reverse("admin:django_remote_submission_job_change", args=[job.pk])
    ).content.decode()
    assert "50 earlier lines are not shown." in page
    assert '<div class="drs-line drs-stdout">49\n</div>' not in page
    assert '<div class="drs-line drs-stdout">50\n</div>' in page


def test_actions_need_the_change_permission(client):
    from django.contrib.auth.models import Permission

    viewer = make_user("viewer", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_job"), Permission.objects.get(codename="view_server")
    )
    client.force_login(viewer)
    page = client.get(reverse("admin:django_remote_submission_job_changelist")).content.decode()
    assert "submit_to_server" not in page
    assert 'value="cancel"' not in page
    page = client.get(reverse("admin:django_remote_submission_server_changelist")).content.decode()
    assert "pin_host_key" not in page


# The login policy ---------------------------------------------------------------------

CANARY = "open('canary', 'w').write('ran')\nprint('ran')\n"


@pytest.fixture
def worker_agent(openssh_account, monkeypatch):
    """The worker's own credentials work: a refusal is the policy's, not the server's."""
    with worker_ssh_agent(openssh_account, monkeypatch) as socket:
        yield socket


def clerk(*codenames):
    """A staff user with some of the app's model permissions, and no login granted."""
    user = make_user("clerk", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_remote_submission", codename__in=codenames
        )
    )
    return user


def errors_of(response):
    return [str(m) for m in response.context["messages"] if m.level == messages.ERROR]


@pytest.mark.ssh
@pytest.mark.worker
@pytest.mark.redis
def test_submit_and_copy_actions_refuse_a_login_the_user_may_not_use(
    openssh_target, celery_worker, worker_agent, transactional_db, client
):
    target = openssh_target
    target.server.username = target.account.username
    target.server.save()
    client.force_login(clerk("view_job", "change_job", "add_job"))
    job = target.job(CANARY)
    options = {"apply": "1", "username": "", "password": "", "log_policy": "1", "remote": "on"}
    refusal = f"may not run jobs as '{target.account.username}' on {target.server}"
    for action in ("submit_to_server", "resubmit"):
        response = run_action(client, "job", action, [job], **options)
        [error] = errors_of(response)
        assert refusal in error
        assert str(job) in error
        assert not any("Successfully" in message for message in messages_of(response))
    job.refresh_from_db()
    assert (Job.objects.count(), job.status, job.task_id) == (1, "initial", "")
    assert not target.transport.exists(f"{target.directory}/canary")

    if not target.account.password:
        pytest.skip("the OpenSSH server offers no password login here")
    response = run_action(
        client, "job", "submit_to_server", [job], **{**options, "password": target.account.password}
    )
    assert "Successfully submitted 1 job." in messages_of(response)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not job.is_finished:
        time.sleep(0.2)
        job.refresh_from_db()
    assert job.status == "success", job.error


@pytest.mark.ssh
def test_test_connection_refuses_a_login_the_user_may_not_use(openssh_target, worker_agent, client):
    target = openssh_target
    target.server.username = target.account.username
    target.server.save()
    client.force_login(clerk("view_server", "change_server"))
    response = run_action(
        client, "server", "test_connection", [target.server], apply="1", username="", password=""
    )
    [error] = errors_of(response)
    assert f"may not run jobs as '{target.account.username}' on {target.server}" in error
    assert not any("Logged in" in message for message in messages_of(response))


# The job's page ------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["success", "failure"])
def test_an_ended_job_changes_only_its_title(admin_client, status):
    job = make_job(status=status, program="print('ran')\n", exit_code=0)
    url = reverse("admin:django_remote_submission_job_change", args=[job.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="title"' in page
    assert 'name="program"' not in page
    assert 'name="remote_directory"' not in page
    response = admin_client.post(
        url,
        job_form(job, title="renamed", program="print('changed')\n", remote_directory="/elsewhere"),
    )
    assert response.status_code == 302
    job = Job.objects.get(pk=job.pk)
    assert job.title == "renamed"
    assert (job.program, job.remote_directory) == ("print('ran')\n", "/tmp/drs")


def test_saving_a_job_writes_only_what_the_form_changed(admin_client):
    job = make_job()
    url = reverse("admin:django_remote_submission_job_change", args=[job.pk])
    form = job_form(job, title="renamed")
    # The worker stores output meanwhile: the admin's save must not put back what it read.
    Job.objects.filter(pk=job.pk).update(stdout_offset=123, lease_owner="worker:1:x")
    assert admin_client.post(url, form).status_code == 302
    job = Job.objects.get(pk=job.pk)
    assert (job.title, job.stdout_offset, job.lease_owner) == ("renamed", 123, "worker:1:x")


def test_the_job_page_leads_with_status_and_log_and_folds_the_internals(admin_client):
    job = make_job(status="submitted", started_at=timezone.now())
    make_log(job=job, content="hello\n")
    page = admin_client.get(
        reverse("admin:django_remote_submission_job_change", args=[job.pk])
    ).content.decode()
    status = page.index("Started At")
    log = page.index("data-drs-log")
    program = page.index('name="program"')
    internals = page.index("Internals")
    assert status < log < program < internals
    assert "collapse" in page[page.rindex("<fieldset", 0, internals) : internals]
    for name in ("Remote PID", "Stdout Offset", "Lease Owner", "Celery Task Id"):
        assert page.index(name) > internals
    assert "Run Options" not in page  # the run's sealed secrets stay out of sight
    assert 'id="drs-cancel-job"' in page
    assert "django_remote_submission/admin-job.js" in page


def test_an_ended_job_has_no_cancel_button(admin_client):
    job = make_job(status="success")
    page = admin_client.get(
        reverse("admin:django_remote_submission_job_change", args=[job.pk])
    ).content.decode()
    assert "drs-cancel-job" not in page
    assert "data-drs-log" in page


def test_the_cancel_button_cancels_the_job(admin_client):
    job = make_job(status="submitted")
    url = reverse("admin:django_remote_submission_job_cancel", args=[job.pk])
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse(
        "admin:django_remote_submission_job_change", args=[job.pk]
    )
    assert "Asked the job to stop." in messages_of(response)
    job.refresh_from_db()
    assert job.cancel_requested_at is not None
    response = admin_client.post(
        reverse("admin:django_remote_submission_job_cancel", args=[make_job(status="success").pk]),
        follow=True,
    )
    assert "The job had already ended." in messages_of(response)


def test_cancel_needs_the_change_permission(client):
    viewer = make_user("looker", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)
    job = make_job(status="submitted")
    page = client.get(
        reverse("admin:django_remote_submission_job_change", args=[job.pk])
    ).content.decode()
    assert "drs-cancel-job" not in page
    response = client.post(reverse("admin:django_remote_submission_job_cancel", args=[job.pk]))
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.cancel_requested_at is None


def test_the_job_list_shows_what_matters(admin_client):
    job = make_job(title="listed", status="success")
    Job.objects.filter(pk=job.pk).update(
        started_at=timezone.now() - dt.timedelta(seconds=75), finished_at=timezone.now()
    )
    page = admin_client.get(reverse("admin:django_remote_submission_job_changelist"))
    assert page.context["cl"].list_display == [
        "action_checkbox",
        *("id", "title", "state", "owner", "server", "started_at", "duration"),
    ]
    assert "1 min 15 s" in page.content.decode()


def test_a_new_job_is_asked_only_what_it_is(admin_client):
    page = admin_client.get(reverse("admin:django_remote_submission_job_add")).content.decode()
    assert 'name="program"' in page
    assert "Internals" not in page
    assert "drs-cancel-job" not in page
