"""The Transport contract, run against every transport: local, OpenSSH, embedded (, .env)."""

import hashlib
import io
import os
import time
import uuid

import pytest

from django_remote_submission.exceptions import CommandTimedOut, TransportError
from django_remote_submission.transport.base import quote

pytestmark = pytest.mark.ssh

HOSTILE_NAMES = [
    "with space",
    'it\'s "quoted"',
    "$(touch pwned)",
    "`touch pwned`",
    "; touch pwned",
    "a&&touch pwned",
    "-rf",
    "new\nline",
    "ünïcødé",
]


def live_processes(transport, pgid):
    """Processes left in the program's session, not counting zombies (which a slow init
    may leave around for a moment after they were killed)."""
    result = transport.run(["ps", "-o", "pid=,stat=", "-s", str(pgid)])
    lines = result.stdout.decode().split("\n")
    return [line for line in lines if line.strip() and not line.split()[1].startswith("Z")]


def follow_all(transport, process, offsets=(0, 0)):
    """Everything a detached program wrote, by stream, read with follow()."""
    chunks = {0: b"", 1: b""}
    files = [(process.stdout_path, offsets[0]), (process.stderr_path, offsets[1])]
    for item in transport.follow(files, process=process):
        if item is not None:
            chunks[item[0]] += item[1]
    return chunks[0], chunks[1]


def test_run_returns_exit_code_and_both_streams(any_transport):
    t = any_transport.transport
    result = t.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
    assert not result.ok
    assert result.reason() == "err"


def test_run_in_a_directory_with_input_and_environment(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    result = t.run(
        ["sh", "-c", 'pwd; cat; echo "$GREETING"'],
        cwd=workdir,
        input=b"from stdin\n",
        env={"GREETING": "hello $(world)"},
    )
    assert result.ok
    assert result.stdout.decode().splitlines() == [workdir, "from stdin", "hello $(world)"]


def test_run_times_out(any_transport):
    with pytest.raises(CommandTimedOut, match="longer than 0.5 s"):
        any_transport.transport.run(["sleep", "5"], timeout=0.5)


def test_mkdir_p_exists_and_remove(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    nested = f"{workdir}/a/b/c"
    t.mkdir_p(nested)
    t.mkdir_p(nested)
    assert t.exists(nested)
    t.put_text("x", f"{nested}/file.txt")
    t.remove(f"{nested}/file.txt")
    assert not t.exists(f"{nested}/file.txt")
    t.remove(f"{nested}/file.txt")  # already gone: not an error
    t.remove(f"{workdir}/a", recursive=True)
    assert not t.exists(f"{workdir}/a")


def test_mkdir_p_reports_why_it_failed(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    t.put_text("a file", f"{workdir}/blocker")
    with pytest.raises(TransportError, match="Creating directory .*blocker/sub.* failed"):
        t.mkdir_p(f"{workdir}/blocker/sub")


def test_files_round_trip_byte_for_byte(any_transport, tmp_path):
    t, workdir = any_transport.transport, any_transport.workdir
    payload = os.urandom(3 * 1024 * 1024 + 17)
    assert t.put_bytes(payload, f"{workdir}/blob.bin", mode=0o640) == len(payload)
    out = io.BytesIO()
    assert t.get_fileobj(f"{workdir}/blob.bin", out) == len(payload)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(payload).digest()
    mode = t.run(["stat", "-c", "%a", f"{workdir}/blob.bin"]).stdout.strip()
    assert mode == b"640"

    local = tmp_path / "local.txt"
    local.write_text("é\n")
    t.put_file(str(local), f"{workdir}/copy.txt")
    t.get_file(f"{workdir}/copy.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "é\n"
    t.put_text("text ✓", f"{workdir}/t.txt")
    assert t.read_file(f"{workdir}/t.txt") == "text ✓".encode()


def test_read_file_from_an_offset_returns_exactly_the_new_bytes(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    path = f"{workdir}/grow.log"
    t.put_bytes(b"first\n", path)
    seen = t.read_file(path)
    t.run(["sh", "-c", 'printf "second\\nthird" >> "$1"', "sh", path])
    assert t.read_file(path, offset=len(seen)) == b"second\nthird"
    assert t.read_file(path, offset=len(seen), length=3) == b"sec"
    assert t.read_file(path, offset=100) == b""


def test_reading_a_missing_file_is_a_transport_error(any_transport):
    with pytest.raises(TransportError, match="missing.txt"):
        any_transport.transport.read_file(f"{any_transport.workdir}/missing.txt")


def test_list_tree_sees_files_in_subdirectories(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    t.mkdir_p(f"{workdir}/sub/deeper")
    t.put_bytes(b"12345", f"{workdir}/top.txt")
    t.put_bytes(b"", f"{workdir}/sub/empty")
    t.put_bytes(b"abc", f"{workdir}/sub/deeper/x.dat")
    t.run(["ln", "-s", "top.txt", f"{workdir}/link"])
    before = time.time()
    listing = t.list_tree(workdir)
    assert [(f.path, f.size) for f in listing] == [
        ("sub/deeper/x.dat", 3),
        ("sub/empty", 0),
        ("top.txt", 5),
    ]
    assert all(abs(f.mtime - before) < 120 for f in listing)
    assert t.list_tree(f"{workdir}/nope") == []


def test_list_tree_leaves_out_the_control_directories_at_its_top(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    for control in (f".drs-{uuid.uuid4()}", ".drs-follow", ".drs-tracker"):
        t.mkdir_p(f"{workdir}/{control}")
        t.put_bytes(b"out", f"{workdir}/{control}/out")
    # Only those names, and only right under the listed directory.
    for kept in (".drs-notes/a", ".drs-follow.txt", f"sub/.drs-{uuid.uuid4()}/b", "c"):
        t.mkdir_p(f"{workdir}/{kept}".rsplit("/", 1)[0])
        t.put_bytes(b"x", f"{workdir}/{kept}")
    listing = [f.path for f in t.list_tree(workdir)]
    assert sorted(p.split("/")[0] for p in listing) == [".drs-follow.txt", ".drs-notes", "c", "sub"]
    assert len(listing) == 4
    if hasattr(t, "_sftp_list_tree"):
        assert [f.path for f in t._sftp_list_tree(workdir)] == listing
        # The listing came from find (SFTP would have said whole seconds), pruned there.
        assert any(f.mtime != int(f.mtime) for f in t.list_tree(workdir))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_data_never_code(any_transport, name):
    t, workdir = any_transport.transport, any_transport.workdir
    directory = f"{workdir}/{name}"
    t.mkdir_p(directory)
    t.put_text("content", f"{directory}/{name}.txt")
    listing = t.list_tree(workdir)
    assert [f.path for f in listing] == [f"{name}/{name}.txt"]
    result = t.run(["cat", "--", f"{name}.txt"], cwd=directory)
    assert result.stdout == b"content"
    process = t.start_detached(
        ["sh", "-c", 'echo "$1"; ls', "sh", name],
        cwd=directory,
        control_directory=f"{directory}/.ctl",
    )
    stdout, _ = follow_all(t, process)
    assert stdout.startswith(f"{name}\n".encode())
    assert t.wait_for_exit_code(process) == 0
    for place in (workdir, directory, ".", f"{directory}/.ctl"):
        assert not t.exists(f"{place}/pwned")
    t.remove(directory, recursive=True)
    assert t.list_tree(workdir) == []


def test_quote_keeps_every_argument_whole():
    assert quote(["echo", "a b", "$(x)", "it's"]) == "echo 'a b' '$(x)' 'it'\"'\"'s'"


def test_a_detached_program_reports_output_and_exit_code(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    program = "for i in 1 2 3; do echo out $i; echo err $i >&2; sleep 0.1; done; exit 3"
    process = t.start_detached(
        ["sh", "-c", program], cwd=workdir, control_directory=f"{workdir}/.c"
    )
    assert process.pgid > 1
    assert process.monitor_pid > 1
    stdout, stderr = follow_all(t, process)
    assert stdout == b"out 1\nout 2\nout 3\n"
    assert stderr == b"err 1\nerr 2\nerr 3\n"
    assert t.wait_for_exit_code(process) == 3
    assert not t.exists(process.timed_out_path)


def test_follow_from_offsets_returns_only_what_is_new(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    process = t.start_detached(
        ["sh", "-c", "echo one; echo uno >&2; echo two"],
        cwd=workdir,
        control_directory=f"{workdir}/.c",
    )
    follow_all(t, process)
    assert follow_all(t, process, offsets=(4, 0)) == (b"two\n", b"uno\n")
    assert follow_all(t, process, offsets=(8, 4)) == (b"", b"")


def test_a_detached_program_outlives_the_transport_that_started_it(any_transport):
    case = any_transport
    starter = case.reopen()
    with starter:
        process = starter.start_detached(
            ["sh", "-c", "echo started; sleep 1; echo finished"],
            cwd=case.workdir,
            control_directory=f"{case.workdir}/.c",
        )
    assert not starter.is_open
    follower = case.reopen()
    with follower:
        assert follower.is_group_alive(process.pgid)
        stdout, _ = follow_all(follower, process)
        assert stdout == b"started\nfinished\n"
        assert follower.wait_for_exit_code(process) == 0


def test_terminating_the_group_ends_the_program_and_its_children(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    program = 'sleep 300 & echo $! > child.pid; echo ready; trap "" HUP; wait'
    process = t.start_detached(
        ["sh", "-c", program], cwd=workdir, control_directory=f"{workdir}/.c"
    )
    for item in t.follow([(process.stdout_path, 0)], process=process):
        if item is not None:
            break  # "ready": the child is running
    child = t.read_file(f"{workdir}/child.pid").decode().strip()
    assert child in [line.split()[0] for line in live_processes(t, process.pgid)]
    assert t.is_group_alive(process.pgid)
    assert t.signal_group(process.pgid, "CONT")
    t.terminate_group(process.pgid, grace=2)
    assert t.wait_for_exit_code(process) == 128 + 15
    assert live_processes(t, process.pgid) == []


def test_a_program_that_ignores_term_is_killed_after_the_grace_period(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    program = 'trap "" TERM; echo ready; while :; do sleep 0.1; done'
    process = t.start_detached(
        ["sh", "-c", program], cwd=workdir, control_directory=f"{workdir}/.c"
    )
    for item in t.follow([(process.stdout_path, 0)], process=process):
        if item is not None:
            break
    t.terminate_group(process.pgid, grace=0.5)
    assert t.wait_for_exit_code(process) == 128 + 9
    assert live_processes(t, process.pgid) == []


def test_the_time_limit_is_enforced_by_the_server(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    program = "sleep 30 & wait; echo never"
    process = t.start_detached(
        ["sh", "-c", program],
        cwd=workdir,
        control_directory=f"{workdir}/.c",
        time_limit=1,
        grace=1,
    )
    stdout, _ = follow_all(t, process)
    assert stdout == b""
    assert t.wait_for_exit_code(process) == 128 + 15
    assert t.read_file(process.timed_out_path).strip() == b"1"
    assert live_processes(t, process.pgid) == []


def test_a_missing_program_fails_with_the_shells_reason(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    process = t.start_detached(
        ["/no/such/interpreter", "x.py"], cwd=workdir, control_directory=f"{workdir}/.c"
    )
    _, stderr = follow_all(t, process)
    assert t.wait_for_exit_code(process) in (126, 127)
    assert b"/no/such/interpreter" in stderr


def test_start_in_a_missing_directory_is_a_transport_error(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    with pytest.raises(TransportError, match="Could not start the program"):
        t.start_detached(["true"], cwd=f"{workdir}/missing", control_directory=f"{workdir}/.c")


def test_nested_with_opens_once_and_closes_at_the_outermost(any_transport):
    fresh = any_transport.reopen()
    assert not fresh.is_open  # constructing connects to nothing
    with fresh:
        assert fresh.is_open
        identity = getattr(fresh, "client", None)
        with fresh:
            assert fresh.is_open
            assert getattr(fresh, "client", None) is identity
            fresh.run(["true"])
        assert fresh.is_open
    assert not fresh.is_open
    fresh.close()  # closing twice is harmless


def test_operations_open_a_closed_transport_lazily(any_transport):
    fresh = any_transport.reopen()
    assert fresh.run(["echo", "lazy"]).stdout == b"lazy\n"
    assert fresh.is_open
    fresh.close()
    assert not fresh.is_open


def test_signalling_a_group_that_is_gone_says_so(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    process = t.start_detached(["true"], cwd=workdir, control_directory=f"{workdir}/.c")
    follow_all(t, process)
    assert t.wait_for_exit_code(process) == 0
    with pytest.raises(ValueError, match="not a signal name"):
        t.signal_group(process.pgid, "TERM; rm -rf ~")
    assert live_processes(t, process.pgid) == []


def test_a_control_directory_used_before_does_not_answer_for_the_next_run(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    ctl = f"{workdir}/.c"
    first = t.start_detached(["sh", "-c", "echo first; exit 3"], cwd=workdir, control_directory=ctl)
    assert follow_all(t, first) == (b"first\n", b"")
    assert t.wait_for_exit_code(first) == 3
    second = t.start_detached(
        ["sh", "-c", "sleep 0.5; echo second"], cwd=workdir, control_directory=ctl
    )
    assert second.pgid != first.pgid
    assert follow_all(t, second) == (b"second\n", b"")
    assert t.wait_for_exit_code(second) == 0


def test_relative_paths_start_in_the_login_directory(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    home = t.run(["pwd"]).stdout.decode().strip()
    relative = os.path.relpath(workdir, home)
    assert not relative.startswith("/")
    t.put_text("hello", f"{relative}/rel.txt")
    assert t.read_file(f"{workdir}/rel.txt") == b"hello"
    assert [f.path for f in t.list_tree(relative)] == ["rel.txt"]
    process = t.start_detached(["pwd"], cwd=relative, control_directory=f"{relative}/.c")
    assert follow_all(t, process) == (f"{workdir}\n".encode(), b"")
    assert t.wait_for_exit_code(process) == 0
