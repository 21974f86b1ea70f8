"""The operator's management commands."""

import io

import pytest
from django.core.management import CommandError, call_command

from django_remote_submission.testing import free_port, generate_key_pair
from django_remote_submission.transport.hostkeys import HostKey
from tests.factories import make_server

pytestmark = [pytest.mark.django_db, pytest.mark.ssh]


def pin(*args, answer=None, monkeypatch=None):
    out = io.StringIO()
    if answer is not None:
        monkeypatch.setattr("builtins.input", lambda prompt: answer)
    call_command("remote_pin_host_key", *args, stdout=out)
    return out.getvalue()


def test_pin_host_key_fetches_shows_and_pins(ssh_account):
    server = make_server(hostname=ssh_account.hostname, port=ssh_account.port, title="cluster")
    output = pin(str(server.pk), "--yes")
    expected = HostKey.parse(ssh_account.host_key)
    assert expected.fingerprint in output
    assert "Pinned" in output
    server.refresh_from_db()
    assert HostKey.parse(server.host_key) == expected
    assert "already pinned" in pin("cluster", "--yes")


def test_pin_host_key_asks_first(ssh_account, monkeypatch):
    server = make_server(hostname=ssh_account.hostname, port=ssh_account.port)
    with pytest.raises(CommandError, match="Not pinned"):
        pin(str(server.pk), answer="no", monkeypatch=monkeypatch)
    server.refresh_from_db()
    assert server.host_key == ""
    pin(str(server.pk), answer="yes", monkeypatch=monkeypatch)
    server.refresh_from_db()
    assert server.host_key


def test_pin_host_key_warns_when_replacing(ssh_account, tmp_path):
    _, old = generate_key_pair(tmp_path / "old")
    server = make_server(hostname=ssh_account.hostname, port=ssh_account.port, host_key=old)
    output = pin(str(server.pk), "--yes")
    assert f"replaces the pinned key ssh-ed25519 {HostKey.parse(old).fingerprint}" in output
    server.refresh_from_db()
    assert HostKey.parse(server.host_key) == HostKey.parse(ssh_account.host_key)


def test_pin_a_given_key_without_fetching(tmp_path):
    _, given = generate_key_pair(tmp_path / "given")
    server = make_server(hostname="unreachable.invalid")
    pin(str(server.pk), "--key", given, "--yes")
    server.refresh_from_db()
    assert server.host_key == given.split(" ", 2)[0] + " " + given.split()[1]


def test_pin_host_key_errors():
    with pytest.raises(CommandError, match="No server has the id or title 'ghost'"):
        pin("ghost", "--yes")
    server = make_server(hostname="127.0.0.1", port=free_port())
    with pytest.raises(CommandError, match="refused"):
        pin(str(server.pk), "--yes")
    with pytest.raises(CommandError, match="Not an SSH public key"):
        pin(str(server.pk), "--key", "garbage", "--yes")


# remote_submit and remote_tail --------------------------------------------------------


def run_command(name, *args, stdin=None, monkeypatch=None):
    import io
    import sys

    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        call_command(name, *args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        err.write(str(exc))
        code = exc.returncode
    return code, out.getvalue(), err.getvalue()


def test_remote_submit_runs_a_file_and_prints_its_output(
    ssh_target, tmp_path, monkeypatch, transactional_db
):
    target = ssh_target
    program = tmp_path / "hello.py"
    program.write_text(
        "import sys\nprint('to stdout')\nsys.stderr.write('to stderr\\n')\nopen('r.txt','w')\n"
    )
    arguments = [
        str(program),
        "--server", str(target.server.pk),
        "--interpreter", "python3",
        "--owner", target.owner.username,
        "--remote-directory", target.directory,
        "--username", target.account.username,
    ]  # fmt: skip
    if target.account.password:
        arguments.append("--password-stdin")
        stdin = target.account.password + "\n"
    else:
        arguments += ["--key", str(target.account.key_filename)]
        stdin = None
    code, out, err = run_command("remote_submit", *arguments, stdin=stdin, monkeypatch=monkeypatch)
    assert code == 0, err
    assert out == "to stdout\n"
    assert "to stderr\n" in err
    assert "success, exit code 0" in err
    assert "result r.txt -> results/" in err
    if target.account.password:
        assert target.account.password not in out + err
    from django_remote_submission.models import Job

    job = Job.objects.get(title="hello.py")
    assert job.owner == target.owner
    code, out, err = run_command("remote_tail", str(job.pk))
    assert (code, out) == (0, "to stdout\n")
    assert "to stderr\n" in err
    first = job.logs.order_by("id").first()
    code, out, err = run_command("remote_tail", str(job.pk), "--since", str(first.pk))
    assert out == ("" if first.stream == "stdout" else "to stdout\n")


def test_remote_submit_reports_a_failing_job(target, monkeypatch):
    job = target.job("import sys\nsys.exit(3)")
    arguments = ["--job", str(job.pk)]
    if target.account is None:
        arguments.append("--local")
    elif target.account.password:
        arguments += ["--username", target.account.username, "--password-stdin"]
    else:
        arguments += [
            "--username",
            target.account.username,
            "--key",
            str(target.account.key_filename),
        ]
    stdin = target.account.password + "\n" if target.account and target.account.password else None
    code, _, err = run_command("remote_submit", *arguments, stdin=stdin, monkeypatch=monkeypatch)
    assert code == 1
    assert "The program exited with code 3." in err


def test_remote_submit_explains_what_is_missing(monkeypatch):
    code, _, err = run_command("remote_submit", "x.py", "--server", "s")
    assert code == 1
    assert "--interpreter, --owner" in err
    code, _, err = run_command("remote_submit", "--job", "999999")
    assert "There is no job 999999" in err
    code, _, err = run_command("remote_submit", "--job", "1", "--timeout", "-5")
    assert "timeout must be positive" in err
    code, _, err = run_command("remote_tail", "999999")
    assert (code, "There is no job 999999" in err) == (1, True)
