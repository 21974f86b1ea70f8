"""Who may run jobs as which login: the site's login policy, checked before anything is queued.

A user who gives a login's secret (its password, or the passphrase of a locked key) proves
they may use it. A login the worker opens with its own credentials (a key file, its
ssh-agent or its default keys) is the site's, and is used only by the users the site grants
it to. Running on the worker host itself (``remote=False``) needs a permission of its own.
The app's pages, admin actions and API call :func:`check_login`; the tasks do not, since
code that calls ``submit_job_to_server.delay(...)`` has decided already.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_ssh_private_key,
)
from django.core.exceptions import PermissionDenied
from django.utils.module_loading import import_string

from django_remote_submission.conf import conf
from django_remote_submission.exceptions import LoginRefused
from django_remote_submission.runner import login_name, server_login_name

if TYPE_CHECKING:
    from django_remote_submission.models import Job, Server

#: The permission that grants the worker's own credentials on every server.
USE_WORKER_CREDENTIALS = "django_remote_submission.use_worker_credentials"
#: The permission to run jobs on the worker host, as the worker's own OS user.
RUN_ON_WORKER_HOST = "django_remote_submission.run_on_worker_host"


class LoginPolicy(Protocol):
    """What ``REMOTE_SUBMISSION_LOGIN_POLICY`` names: True lets ``user`` run a job as
    ``login`` on ``server``. ``secret`` says whether the user gave the login's secret;
    ``remote`` is False for a job on the worker host, where ``login`` is not used."""

    def __call__(
        self, user: Any, server: Server, login: str, *, secret: bool, remote: bool
    ) -> bool: ...


def default_policy(user: Any, server: Server, login: str, *, secret: bool, remote: bool) -> bool:
    """The app's own rule: the worker host needs ``run_on_worker_host``; a secret opens
    any login; the worker's credentials need ``use_worker_credentials``, or the user (or
    one of their groups) among the server's ``allowed_users`` (``allowed_groups``).
    Staff get nothing of this implicitly; superusers have every permission."""
    if not (user.is_authenticated and user.is_active):
        return False
    if not remote:
        return bool(user.has_perm(RUN_ON_WORKER_HOST))
    if secret:
        return True
    if user.has_perm(USE_WORKER_CREDENTIALS):
        return True
    if server.allowed_users.filter(pk=user.pk).exists():
        return True
    groups = getattr(user, "groups", None)  # a custom user model may have none
    return groups is not None and server.allowed_groups.filter(pk__in=groups.values("pk")).exists()


def login_policy() -> LoginPolicy:
    """The policy in force: the project's (check E006 vouches for the path), else the app's."""
    path = conf.LOGIN_POLICY
    if path is None:
        return default_policy
    policy: LoginPolicy = import_string(path)
    return policy


def check_login(
    user: Any,
    job: Job,
    *,
    username: str | None = None,
    password: str | None = None,
    passphrase: str | None = None,
    remote: bool = True,
    key_filename: str | None = None,
) -> None:
    """Raise :class:`LoginRefused` unless ``user`` may run ``job`` with these options of
    ``submit_job_to_server``. The login checked is the one the runner would use: the
    ``username`` given, else the server's, else the job owner's username."""
    secret = has_secret(password=password, passphrase=passphrase, key_filename=key_filename)
    _check(user, job.server, login_name(job, username), secret=secret, remote=remote)


def check_server_login(
    user: Any,
    server: Server,
    *,
    username: str | None = None,
    password: str | None = None,
    passphrase: str | None = None,
    key_filename: str | None = None,
) -> None:
    """The same check for logging in to ``server`` outside a job, as a connection test
    does: the login is ``username``, else the server's, else this process's OS user."""
    login = server_login_name(server, username)
    secret = has_secret(password=password, passphrase=passphrase, key_filename=key_filename)
    _check(user, server, login, secret=secret, remote=True)


def has_secret(*, password: str | None, passphrase: str | None, key_filename: str | None) -> bool:
    """Whether these credentials rest on something the user had to know.

    A key file logs in by itself, whatever password comes with it (the transport tries
    the key first): only a passphrase that opens a locked key counts then. Without a key
    file, a password does; a passphrase alone opens nothing.
    """
    if key_filename:
        return bool(passphrase) and _unlocks(Path(key_filename), str(passphrase))
    return bool(password)


def _unlocks(path: Path, passphrase: str) -> bool:
    """True when the key file is encrypted and the passphrase opens it."""
    path = path.expanduser()
    if path.suffix == ".pub":
        path = path.with_suffix("")  # as the transport reads it, the private key beside it
    try:
        data = path.read_bytes()
    except OSError:
        return False
    load = load_ssh_private_key if b"OPENSSH PRIVATE KEY" in data else load_pem_private_key
    try:
        load(data, password=None)
    except TypeError:
        pass  # locked: the passphrase has something to prove
    except (ValueError, UnsupportedAlgorithm):
        return False
    else:
        return False  # not locked: whoever holds the file logs in
    try:
        load(data, password=passphrase.encode())
    except (TypeError, ValueError, UnsupportedAlgorithm):
        return False
    return True


def _check(user: Any, server: Server, login: str, *, secret: bool, remote: bool) -> None:
    try:
        allowed = login_policy()(user, server, login, secret=secret, remote=remote)
    except LoginRefused:
        raise
    except PermissionDenied as exc:
        raise LoginRefused(
            str(exc) or refusal(server, login, secret=secret, remote=remote)
        ) from exc
    if not allowed:
        raise LoginRefused(refusal(server, login, secret=secret, remote=remote))


def refusal(server: Server, login: str, *, secret: bool, remote: bool) -> str:
    """The standard message of a refusal: what was refused, and what to do about it."""
    if not remote:
        return (
            "You may not run jobs on the worker host itself (remote=False): that needs the "
            f"permission {RUN_ON_WORKER_HOST}. Ask an administrator for it, or run the job "
            "on its server."
        )
    if secret:
        return (
            f"You may not run jobs as {login!r} on {server}: the site's login policy does "
            "not allow it. Ask an administrator."
        )
    return (
        f"You may not run jobs as {login!r} on {server} with the worker's own SSH "
        "credentials: give that login's password, or ask an administrator to grant you "
        "this server (its allowed users or groups) or the permission "
        f"{USE_WORKER_CREDENTIALS}."
    )
