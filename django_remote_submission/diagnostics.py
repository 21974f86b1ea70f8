"""Checks a server as an operator would: reachable, its host key, a login, its interpreters."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from django_remote_submission.exceptions import RemoteSubmissionError
from django_remote_submission.models import Interpreter, Server
from django_remote_submission.runner import server_login_name
from django_remote_submission.transport import SSHTransport
from django_remote_submission.transport.hostkeys import HostKey
from django_remote_submission.transport.ssh import fetch_host_key


@dataclass
class ServerReport:
    server: Server
    host_key: HostKey | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interpreters: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        parts = [*self.notes, *self.problems]
        return f"{self.server}: " + " ".join(parts)


def check_server(
    server: Server, *, username: str | None = None, password: str | None = None
) -> ServerReport:
    """Connect, report the host key's fingerprint, run ``true``, and look for every
    interpreter the server offers. Logs in with the password, else the worker's keys."""
    report = ServerReport(server)
    try:
        report.host_key = fetch_host_key(server.hostname, server.port)
    except RemoteSubmissionError as exc:
        report.problems.append(str(exc))
        return report
    report.notes.append(f"Host key {report.host_key}.")
    if server.host_key:
        pinned = HostKey.parse(server.host_key)
        if pinned == report.host_key:
            report.notes.append("It matches the pinned key.")
        else:
            report.problems.append(f"It does NOT match the pinned key {pinned}.")
            return report
    else:
        report.notes.append("No key is pinned.")
    login = server_login_name(server, username)
    transport = SSHTransport(
        server.hostname, server.port, login, password=password, host_key=server.host_key or None
    )
    try:
        with transport:
            result = transport.run(["true"])
            if not result.ok:
                report.problems.append(f"`true` failed: {result.reason()}.")
                return report
            report.notes.append(f"Logged in as {login!r} and ran `true`.")
            for interpreter in server.interpreters.order_by("name"):
                found = _has(transport, interpreter)
                report.interpreters[interpreter.name] = found
                if found:
                    report.notes.append(f"Interpreter {interpreter} found.")
                else:
                    report.problems.append(f"Interpreter {interpreter} is MISSING.")
    except RemoteSubmissionError as exc:
        report.problems.append(str(exc))
    return report


#: The longest report kept on the server's row.
REPORT_MAX_LENGTH = 4000


def check_and_record_server(
    server: Server, *, username: str | None = None, password: str | None = None
) -> ServerReport:
    """:func:`check_server`, and its outcome recorded on the server's row for the
    operators' page. The caller has checked the login policy first."""
    report = check_server(server, username=username, password=password)
    record_report(server, report, secrets=[password] if password else [])
    return report


def record_report(server: Server, report: ServerReport, *, secrets: list[str]) -> None:
    text = " ".join([*report.notes, *report.problems])
    # An error message may quote what the server or a library echoed back: the
    # password given for the test never reaches the database, whatever quoted it.
    for secret in secrets:
        text = text.replace(secret, "********")
    values = {
        "last_checked_at": timezone.now(),
        "last_check_ok": report.ok,
        "last_check_report": text[:REPORT_MAX_LENGTH],
    }
    # A test changes nothing of the server's settings: its "modified" stays.
    Server.objects.filter(pk=server.pk).update(**values)
    for name, value in values.items():
        setattr(server, name, value)


def _has(transport: SSHTransport, interpreter: Interpreter) -> bool:
    program = interpreter.command[0] if interpreter.command else ""
    return bool(program) and transport.run(["sh", "-c", 'command -v -- "$1"', "sh", program]).ok
