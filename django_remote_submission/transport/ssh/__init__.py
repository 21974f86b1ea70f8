"""SSHTransport: the Transport contract over SSH and SFTP (paramiko), with a connection pool."""

# The only package that knows paramiko: its exceptions are turned into the app's own here,
# with messages a user can act on and without any secret in them.

from django_remote_submission.transport.ssh.connect import (
    HANDSHAKE_BACKOFF,
    HANDSHAKE_TRIES,
    fetch_host_key,
)
from django_remote_submission.transport.ssh.connection_pool import (
    IDLE_SECONDS,
    REFUSALS_TO_LEARN,
    SESSIONS_PER_CONNECTION,
    ConnectionPool,
    pool,
)
from django_remote_submission.transport.ssh.transport import CHUNK, SSHTransport

__all__ = [
    "CHUNK",
    "HANDSHAKE_BACKOFF",
    "HANDSHAKE_TRIES",
    "IDLE_SECONDS",
    "REFUSALS_TO_LEARN",
    "SESSIONS_PER_CONNECTION",
    "ConnectionPool",
    "SSHTransport",
    "fetch_host_key",
    "pool",
]
