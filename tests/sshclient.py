"""A plain paramiko client for the harness tests (the app's own transport comes later)."""

from __future__ import annotations

import base64

import paramiko

from tests.sshd import SSHAccount


def connect(account: SSHAccount, *, auth: str) -> paramiko.SSHClient:
    """Log in with only the named method: "password" or "key". Unknown host keys fail."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if account.host_key:
        key_type, key_data = account.host_key.split()[:2]
        key = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_data))
        host = account.hostname if account.port == 22 else f"[{account.hostname}]:{account.port}"
        client.get_host_keys().add(host, key_type, key)
    else:
        client.load_system_host_keys()
    options: dict[str, object] = {"allow_agent": False, "look_for_keys": False, "timeout": 10}
    if auth == "password":
        options["password"] = account.password
    else:
        options["key_filename"] = str(account.key_filename)
    try:
        client.connect(account.hostname, account.port, account.username, **options)
    except BaseException:
        client.close()
        raise
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, bytes, bytes]:
    _, stdout, stderr = client.exec_command(command, timeout=30)
    out, err = stdout.read(), stderr.read()
    return stdout.channel.recv_exit_status(), out, err
