"""Ways to reach a server: over SSH, or this host itself. The only code that runs commands."""

from django_remote_submission.transport.base import CommandResult, RemoteFile, Transport
from django_remote_submission.transport.detached import DetachedProcess
from django_remote_submission.transport.local import LocalTransport
from django_remote_submission.transport.ssh import SSHTransport

__all__ = [
    "CommandResult",
    "DetachedProcess",
    "LocalTransport",
    "RemoteFile",
    "SSHTransport",
    "Transport",
]
