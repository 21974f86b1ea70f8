"""Ways to reach a server: over SSH, or this host itself. The only code that runs commands."""

from collections.abc import Callable
from typing import Any

from django_remote_submission.transport.base import CommandResult, RemoteFile, Transport
from django_remote_submission.transport.detached import DetachedProcess
from django_remote_submission.transport.local import LocalTransport
from django_remote_submission.transport.ssh import SSHTransport

#: When set, every SSH connection the app opens for a job or a key task is made by this
#: callable instead, with ``SSHTransport``'s arguments: ``testing.FakeServers`` sets it
#: for a project's unit tests. None (the default) means SSH.
ssh_stand_in: Callable[..., Transport] | None = None


def connect_ssh(hostname: str, port: int, username: str, **options: Any) -> Transport:
    """An ``SSHTransport`` to the server, or what ``ssh_stand_in`` makes in its place."""
    if ssh_stand_in is not None:
        return ssh_stand_in(hostname, port, username, **options)
    return SSHTransport(hostname, port, username, **options)


__all__ = [
    "CommandResult",
    "DetachedProcess",
    "LocalTransport",
    "RemoteFile",
    "SSHTransport",
    "Transport",
    "connect_ssh",
]
