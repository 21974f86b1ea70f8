"""The login policy: who may run jobs as which login, decided before anything is queued."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.test import override_settings
from rest_framework.test import APIClient

from django_remote_submission.exceptions import LoginRefused, RemoteSubmissionError
from django_remote_submission.logins import (
    check_login,
    check_server_login,
    default_policy,
    login_policy,
)
from django_remote_submission.models import Job
from django_remote_submission.testing import generate_key_pair
from tests.factories import make_job, make_server, make_user
from tests.sshagent import worker_ssh_agent

#: A program that leaves a file behind: its absence proves it never ran.
CANARY = "open('canary', 'w').write('ran')\nprint('ran')\n"


def grant(user, codename):
    user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="django_remote_submission", codename=codename
        )
    )
    return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached


def cluster_logins(user, server, login, *, secret, remote):
    """Site user alice runs as cluster login alice with the worker's key; nobody as root."""
    if login == "root":
        raise LoginRefused("Nobody runs jobs as root here.")
    if remote and login == user.get_username():
        return True
    return default_policy(user, server, login, secret=secret, remote=remote)


def no_secrets_on_tuesdays(user, server, login, *, secret, remote):
    raise PermissionDenied("The cluster is closed for maintenance.")


def refuse_everyone(user, server, login, *, secret, remote):
    return False


# The decision table, without a network ---------------------------------------------------


@pytest.mark.django_db
class TestDefaultPolicy:
    def test_a_secret_allows_any_login(self):
        server = make_server()
        user = make_user()
        assert default_policy(user, server, "anyone", secret=True, remote=True)

    def test_the_workers_credentials_are_for_nobody_by_default(self):
        server = make_server()
        for user in (make_user(), make_user(is_staff=True)):
            assert not default_policy(user, server, "alice", secret=False, remote=True)

    def test_the_workers_credentials_are_granted_per_server_or_everywhere(self):
        server, elsewhere = make_server(), make_server(title="elsewhere")
        listed, member, holder = make_user(), make_user(), make_user()
        server.allowed_users.add(listed)
        group = Group.objects.create(name="cluster users")
        member.groups.add(group)
        server.allowed_groups.add(group)
        holder = grant(holder, "use_worker_credentials")
        for user in (listed, member, holder):
            assert default_policy(user, server, "alice", secret=False, remote=True)
        assert default_policy(holder, elsewhere, "alice", secret=False, remote=True)
        for user in (listed, member):
            assert not default_policy(user, elsewhere, "alice", secret=False, remote=True)

    def test_the_worker_host_needs_its_own_permission_secret_or_not(self):
        server = make_server()
        user, staff = make_user(), make_user(is_staff=True)
        server.allowed_users.add(user, staff)
        for who in (user, staff):
            for secret in (False, True):
                assert not default_policy(who, server, "x", secret=secret, remote=False)
        user = grant(user, "run_on_worker_host")
        assert default_policy(user, server, "x", secret=False, remote=False)

    def test_superusers_have_every_permission_inactive_users_none(self):
        server = make_server()
        root = make_user(is_superuser=True)
        assert default_policy(root, server, "alice", secret=False, remote=True)
        assert default_policy(root, server, "alice", secret=False, remote=False)
        gone = make_user(is_active=False)
        server.allowed_users.add(gone)
        assert not default_policy(gone, server, "alice", secret=True, remote=True)


@pytest.mark.django_db
class TestCheckLogin:
    def test_the_login_checked_is_the_one_the_runner_would_use(self):
        server = make_server(username="shared")
        job = make_job(server=server, owner=make_user("alice"))
        user = make_user("bob")
        with pytest.raises(LoginRefused) as refused:
            check_login(user, job)
        message = str(refused.value)
        assert "'shared'" in message
        assert str(server) in message
        assert "password" in message
        assert "ask an administrator" in message
        with pytest.raises(LoginRefused, match="'other'"):
            check_login(user, job, username="other")
        server.username = ""
        with pytest.raises(LoginRefused, match="'alice'"):
            check_login(user, job)
        assert isinstance(refused.value, RemoteSubmissionError)

    def test_a_password_or_the_passphrase_of_a_locked_key_is_a_secret(self, tmp_path):
        plain, _ = generate_key_pair(tmp_path / "plain")
        locked, _ = generate_key_pair(tmp_path / "locked", passphrase="open sesame")
        job = make_job()
        user = make_user()
        check_login(user, job, password="typed by the user")
        check_login(user, job, passphrase="open sesame", key_filename=str(locked))
        check_login(user, job, passphrase="open sesame", key_filename=f"{locked}.pub")
        refused = [
            {"password": ""},
            {"passphrase": "x"},  # without a key file it opens nothing
            # A key file that needs no passphrase logs in whatever secret comes with it.
            {"password": "x", "key_filename": str(plain)},
            {"passphrase": "x", "key_filename": str(plain)},
            {"passphrase": "x", "key_filename": str(tmp_path / "missing")},
            {"key_filename": str(locked)},
            {"passphrase": "wrong", "key_filename": str(locked)},
        ]
        for options in refused:
            with pytest.raises(LoginRefused):
                check_login(user, job, **options)

    def test_the_worker_host_refusal_says_what_is_missing(self):
        job = make_job()
        with pytest.raises(LoginRefused) as refused:
            check_login(make_user(is_staff=True), job, password="x", remote=False)
        assert "worker host" in str(refused.value)
        assert "run_on_worker_host" in str(refused.value)

    def test_a_projects_policy_replaces_the_default(self):
        job = make_job(owner=make_user("alice"))
        alice, bob = job.owner, make_user("bob")
        with override_settings(REMOTE_SUBMISSION_LOGIN_POLICY="tests.test_logins.cluster_logins"):
            check_login(alice, job)
            with pytest.raises(LoginRefused, match="may not run jobs as 'alice'"):
                check_login(bob, job)
            with pytest.raises(LoginRefused, match="^Nobody runs jobs as root here.$"):
                check_login(alice, job, username="root", password="secret")
        with (
            override_settings(
                REMOTE_SUBMISSION_LOGIN_POLICY="tests.test_logins.no_secrets_on_tuesdays"
            ),
            pytest.raises(LoginRefused, match="^The cluster is closed for maintenance.$"),
        ):
            check_login(alice, job, password="secret")
        with (
            override_settings(REMOTE_SUBMISSION_LOGIN_POLICY="tests.test_logins.refuse_everyone"),
            pytest.raises(LoginRefused, match="the site's login policy"),
        ):
            check_login(alice, job, password="secret")

    def test_the_policy_in_use_is_read_at_call_time(self):
        assert login_policy() is default_policy
        with override_settings(REMOTE_SUBMISSION_LOGIN_POLICY="tests.test_logins.cluster_logins"):
            assert login_policy() is cluster_logins
        assert login_policy() is default_policy

    def test_a_server_login_is_checked_the_same_way(self):
        server = make_server(username="shared")
        user = make_user()
        with pytest.raises(LoginRefused, match="'shared'"):
            check_server_login(user, server)
        check_server_login(user, server, password="secret")
        server.allowed_users.add(user)
        check_server_login(user, server)


# Over the real sshd, through the REST API and a real worker ------------------------------


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def wait_for_end(job, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} is still {job.status}")


def assert_nothing_ran(target, job):
    job.refresh_from_db()
    assert (job.status, job.task_id, job.started_at) == (Job.STATUS.initial, "", None)
    assert not target.transport.exists(f"{target.directory}/canary")


@pytest.fixture
def worker_agent(openssh_account, monkeypatch):
    with worker_ssh_agent(openssh_account, monkeypatch) as socket:
        yield socket


@pytest.mark.ssh
@pytest.mark.worker
@pytest.mark.redis
@pytest.mark.parametrize("who", ["user", "staff"])
@pytest.mark.parametrize("login", ["the server's login", "a username"])
def test_an_ungranted_user_is_refused_the_workers_credentials_before_anything_is_queued(
    openssh_target, celery_worker, worker_agent, transactional_db, who, login
):
    target = openssh_target
    user = make_user(is_staff=(who == "staff"))
    job = target.job(CANARY, owner=user)
    body = {}
    if login == "a username":
        body["username"] = target.account.username
    else:
        target.server.username = target.account.username
        target.server.save()
    response = client_for(user).post(f"/api/jobs/{job.pk}/submit/", body, format="json")
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert f"may not run jobs as '{target.account.username}' on {target.server}" in detail
    assert "password" in detail
    resubmitted = client_for(user).post(f"/api/jobs/{job.pk}/resubmit/", body, format="json")
    assert resubmitted.status_code == 403
    assert Job.objects.count() == 1
    assert_nothing_ran(target, job)


@pytest.mark.ssh
@pytest.mark.worker
@pytest.mark.redis
def test_the_accounts_password_proves_the_login(openssh_target, celery_worker, transactional_db):
    target = openssh_target
    if not target.account.password:
        pytest.skip("the OpenSSH server offers no password login here")
    user = make_user()
    job = target.job(CANARY, owner=user)
    body = {"username": target.account.username, "password": target.account.password}
    response = client_for(user).post(f"/api/jobs/{job.pk}/submit/", body, format="json")
    assert response.status_code == 202, response.json()
    assert wait_for_end(job).status == Job.STATUS.success, job.error
    assert target.transport.exists(f"{target.directory}/canary")


@pytest.mark.ssh
@pytest.mark.worker
@pytest.mark.redis
def test_a_wrong_password_does_not_ride_a_connection_the_right_one_opened(
    openssh_target, celery_worker, transactional_db
):
    """Any password passes the policy: the server must still check it every time."""
    target = openssh_target
    if not target.account.password:
        pytest.skip("the OpenSSH server offers no password login here")
    user = make_user()
    good = target.job("print('ran')\n", owner=user)
    body = {"username": target.account.username, "password": target.account.password}
    assert client_for(user).post(f"/api/jobs/{good.pk}/submit/", body, format="json").status_code
    assert wait_for_end(good).status == Job.STATUS.success, good.error
    bad = target.job(CANARY, owner=make_user())
    body["password"] = "not " + target.account.password
    response = client_for(bad.owner).post(f"/api/jobs/{bad.pk}/submit/", body, format="json")
    assert response.status_code == 202
    assert wait_for_end(bad).status == Job.STATUS.failure
    assert "password" in bad.error
    assert not target.transport.exists(f"{target.directory}/canary")


@pytest.mark.ssh
@pytest.mark.worker
@pytest.mark.redis
@pytest.mark.parametrize("how", ["allowed_users", "allowed_groups", "permission"])
def test_a_granted_user_runs_with_the_workers_credentials(
    openssh_target, celery_worker, worker_agent, transactional_db, how
):
    target = openssh_target
    user = make_user()
    if how == "allowed_users":
        target.server.allowed_users.add(user)
    elif how == "allowed_groups":
        group = Group.objects.create(name="cluster users")
        user.groups.add(group)
        target.server.allowed_groups.add(group)
    else:
        user = grant(user, "use_worker_credentials")
    target.server.username = target.account.username
    target.server.save()
    job = target.job(CANARY, owner=user)
    response = client_for(user).post(f"/api/jobs/{job.pk}/submit/", {}, format="json")
    assert response.status_code == 202, response.json()
    assert wait_for_end(job).status == Job.STATUS.success, job.error
    assert target.transport.exists(f"{target.directory}/canary")


@pytest.mark.ssh
@pytest.mark.worker
@pytest.mark.redis
def test_the_worker_host_needs_the_run_on_worker_host_permission(
    openssh_target, celery_worker, transactional_db, tmp_path
):
    staff = make_user(is_staff=True)
    here = tmp_path / "on-the-worker"
    job = openssh_target.job(CANARY, owner=staff, remote_directory=str(here))
    response = client_for(staff).post(
        f"/api/jobs/{job.pk}/submit/", {"remote": False}, format="json"
    )
    assert response.status_code == 403
    assert "run_on_worker_host" in response.json()["detail"]
    job.refresh_from_db()
    assert (job.status, job.task_id) == (Job.STATUS.initial, "")
    assert not here.exists()

    user = grant(make_user(), "run_on_worker_host")
    job = openssh_target.job(CANARY, owner=user, remote_directory=str(here))
    response = client_for(user).post(
        f"/api/jobs/{job.pk}/submit/", {"remote": False}, format="json"
    )
    assert response.status_code == 202, response.json()
    assert wait_for_end(job).status == Job.STATUS.success, job.error
    assert (here / "canary").read_text() == "ran"


@pytest.mark.ssh
@pytest.mark.worker
@pytest.mark.redis
@override_settings(REMOTE_SUBMISSION_LOGIN_POLICY="tests.test_logins.cluster_logins")
def test_a_projects_policy_decides_over_the_api(
    openssh_target, celery_worker, worker_agent, transactional_db
):
    target = openssh_target
    alice = make_user(target.account.username)  # her site name is her cluster login
    job = target.job(CANARY, owner=alice)
    response = client_for(alice).post(f"/api/jobs/{job.pk}/submit/", {}, format="json")
    assert response.status_code == 202, response.json()
    assert wait_for_end(job).status == Job.STATUS.success, job.error

    bob = make_user("bob")
    theirs = target.job(CANARY, owner=bob, remote_directory=target.directory + "-bob")
    refused = client_for(bob).post(
        f"/api/jobs/{theirs.pk}/submit/", {"username": target.account.username}, format="json"
    )
    assert refused.status_code == 403
    assert f"may not run jobs as '{target.account.username}'" in refused.json()["detail"]
    as_root = client_for(bob).post(
        f"/api/jobs/{theirs.pk}/submit/", {"username": "root", "password": "pw"}, format="json"
    )
    assert as_root.status_code == 403
    assert as_root.json() == {"detail": "Nobody runs jobs as root here."}
    theirs.refresh_from_db()
    assert (theirs.status, theirs.task_id) == (Job.STATUS.initial, "")
