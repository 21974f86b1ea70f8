"""Many short commands from many threads on shared SSH connections, while long streams stay
open on the same connections: no command's end may disturb another session.

OpenSSH drops a whole connection, with every session on it, when a packet arrives for a
channel it has already let go of ("ieof packet referred to nonexistent channel"). A fast
command ends while the client is still sending it input or end-of-file: that was the race.
"""

import io
import select
import threading
import time
import uuid

import pytest
from django.test import override_settings

from django_remote_submission.transport.ssh import ConnectionPool
from tests.conftest import ssh_transport

pytestmark = pytest.mark.ssh

THREADS = 16
ROUNDS = 40
STREAMS = 3
#: Seconds the whole run may take before it is called stuck.
BOUND = 240
CONTENT = b"".join(b"line %d\n" % i for i in range(2000))
#: Prints a number every 0.05 s until the file "stop" exists, then "done".
TICKER = 'i=0; while [ ! -e stop ]; do echo "$i"; i=$((i+1)); sleep 0.05; done; echo done'


@pytest.fixture(scope="module")
def stress_server(start_openssh):
    """OpenSSH as installed (MaxSessions 10), for this module alone: what it logs is ours."""
    return start_openssh(max_sessions=10)


def read_stream(stream, deadline):
    """Everything a stream delivers until its command ends."""
    data = b""
    while time.monotonic() < deadline:
        select.select([stream.fileno()], [], [], 0.5)
        chunk = stream.read_available()
        if chunk == b"":
            return data
        if chunk:
            data += chunk
    raise AssertionError(f"the stream did not end; it delivered {data[-200:]!r}")


def short_commands(t, base, index, check):
    """Each kind of short command, over and over: their ends race with the client."""
    payload = b"%d-" % index * 2000
    for round_ in range(ROUNDS):
        kind = (index + round_) % 10
        if kind == 0:
            result = t.run(["true"])
            check(kind, (result.exit_code, result.stdout), (0, b""))
        elif kind == 1:
            result = t.run_shell("exit 3")
            check(kind, result.exit_code, 3)
        elif kind == 2:
            # Input the command never reads: it ends while the input is on its way.
            result = t.run(["sh", "-c", "echo early; exit 4"], input=payload)
            check(kind, (result.exit_code, result.stdout), (4, b"early\n"))
        elif kind == 3:
            result = t.run(["cat"], input=payload)
            check(kind, (result.exit_code, result.stdout), (0, payload))
        elif kind == 4:
            sink = io.BytesIO()
            t.get_fileobj(f"{base}/data", sink)
            check(kind, sink.getvalue(), CONTENT)
        elif kind == 5:
            check(kind, t.read_file(f"{base}/data", 5, 6), CONTENT[5:11])
        elif kind == 6:
            check(kind, t.run_shell("kill -0 $$ 2>/dev/null").exit_code, 0)
        elif kind == 7:
            stream = t._stream("printf ended")
            try:
                check(kind, read_stream(stream, time.monotonic() + 30), b"ended")
            finally:
                stream.close()
        elif kind == 8:
            name = f"{base}/written-{index}-{round_}"
            t.put_bytes(payload, name)
            check(kind, t.file_size(name), len(payload))
        else:
            result = t.run(["echo", str(round_)], cwd=base)
            check(kind, (result.exit_code, result.stdout), (0, b"%d\n" % round_))


@override_settings(REMOTE_SUBMISSION_MAX_CONNECTIONS_PER_HOST=4)
def test_short_commands_from_many_threads_never_drop_a_shared_connection(stress_server):
    server, account = stress_server
    pool = ConnectionPool()
    base = f"{account.remote_directory}/stress-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + BOUND
    failures = []
    delivered = {}

    def guarded(name, work):
        def run():
            try:
                work()
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")

        return threading.Thread(target=run, name=name)

    def follow(index):
        with ssh_transport(account, connection_pool=pool) as t:
            stream = t._stream(f"cd {base} && {TICKER}")
            try:
                delivered[index] = read_stream(stream, deadline)
            finally:
                stream.close()

    def hammer(index):
        def check(kind, got, expected):
            if got != expected:
                failures.append(f"thread {index}, kind {kind}: {got!r:.80} != {expected!r:.80}")

        with ssh_transport(account, connection_pool=pool) as t:
            short_commands(t, base, index, check)

    with ssh_transport(account, connection_pool=pool) as setup:
        setup.mkdir_p(base)
        setup.put_bytes(CONTENT, f"{base}/data")
        try:
            followers = [guarded(f"stream {i}", lambda i=i: follow(i)) for i in range(STREAMS)]
            for thread in followers:
                thread.start()
            hammers = [guarded(f"thread {i}", lambda i=i: hammer(i)) for i in range(THREADS)]
            for thread in hammers:
                thread.start()
            for thread in hammers:
                thread.join(max(0.0, deadline - time.monotonic()))
            # The long streams lived through it all on the same connections: they still
            # deliver, and end as their command does.
            setup.put_bytes(b"", f"{base}/stop")
            for thread in followers:
                thread.join(max(0.0, deadline - time.monotonic()))
            assert not any(thread.is_alive() for thread in hammers + followers)
        finally:
            setup.remove(base, recursive=True)
    pool.close_all()

    sshd_log = server.log_path.read_text()
    assert failures == [], "\n".join(failures[:20])
    assert "nonexistent channel" not in sshd_log
    for index in range(STREAMS):
        lines = delivered[index].decode().split()
        assert lines[-1] == "done"
        assert lines[:-1] == [str(n) for n in range(len(lines) - 1)]
        assert len(lines) > 2
