"""The worker's own ssh-agent for tests: a real OpenSSH agent holding a key an account takes.

With it, a job submitted without any password or key file logs in with "the worker's own
credentials", as on a site whose worker has an agent or default keys. The tests of the
login policy need that: a refusal proves something only if the login would have worked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.sshd import SSHAccount


@contextmanager
def worker_ssh_agent(account: SSHAccount, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An ssh-agent holding the account's key, named by SSH_AUTH_SOCK for this process
    (where the in-thread Celery worker runs); the agent and the connections it opened
    are gone afterwards."""
    from django_remote_submission.transport.ssh import pool

    if account.key_filename is None or not shutil.which("ssh-agent"):
        pytest.skip("no ssh-agent here, or the account takes no key")
    # A socket path must stay under about 100 bytes: not under pytest's long tmp_path.
    directory = Path(tempfile.mkdtemp(prefix="drs-agent-"))
    socket = str(directory / "agent.sock")
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", socket],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(socket):
            assert agent.poll() is None, "ssh-agent did not start"
            assert time.monotonic() < deadline, "ssh-agent did not open its socket"
            time.sleep(0.05)
        subprocess.run(
            ["ssh-add", "-q", str(account.key_filename)],
            env={**os.environ, "SSH_AUTH_SOCK": socket},
            check=True,
            capture_output=True,
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", socket)
        yield socket
    finally:
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        # A pooled connection the agent logged in must not serve a later test without it.
        pool.discard(account.hostname, account.port, account.username)
        agent.terminate()
        agent.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
