"""The PBS queue of a login (schedulers.poll.PbsQueue) over a real transport, its commands
played by scripts that print outputs written from PBS's documentation (no PBS server is
packaged for Debian: see tests/schedulers/pbs/README.rst). Each run of qstat or qselect is
a real process, logged, so the tests count what PBS would have been asked."""

import os
from pathlib import Path

import pytest

from django_remote_submission.exceptions import TransportError
from django_remote_submission.schedulers.poll import PbsQueue
from django_remote_submission.transport.local import LocalTransport

RECORDED = Path(__file__).parent / "schedulers" / "pbs"
#: Prints what the test put in <name>.out and exits with <name>.code, after logging how
#: it was called; <name>.sleep makes it hang first.
STAND_IN = """#!/bin/sh
name=$(basename "$0")
printf '%s\\n' "$name $*" >> "$DRS_PBS_LOG"
[ -e "$DRS_PBS_DIR/$name.sleep" ] && sleep "$(cat "$DRS_PBS_DIR/$name.sleep")"
cat "$DRS_PBS_DIR/$name.out"
exit "$(cat "$DRS_PBS_DIR/$name.code")"
"""
MANY = ["1001.pbs-head", "1002.pbs-head", "1003.pbs-head", "1006.pbs-head"]


def stand_in_transport(directory, workdir, scripts):
    """A transport on this host whose PATH finds ``scripts`` (name: text) first, each
    logging its calls to ``directory/calls.log`` (``$DRS_PBS_LOG``); ``$DRS_PBS_DIR`` is
    ``directory``."""
    log = directory / "calls.log"
    log.touch()
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return LocalTransport(
        workdir,
        environment={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "DRS_PBS_DIR": str(directory),
            "DRS_PBS_LOG": str(log),
        },
    )


class PBS:
    """The stand-in commands and what they were asked."""

    def __init__(self, directory):
        self.directory = directory
        self.log = directory / "calls.log"
        self.transport = stand_in_transport(
            directory, directory, {"qstat": STAND_IN, "qselect": STAND_IN}
        )
        for name in ("qstat", "qselect"):
            self.answer(name, "")

    def answer(self, name, output, *, code=0, hang=None):
        (self.directory / f"{name}.out").write_text(output)
        (self.directory / f"{name}.code").write_text(str(code))
        if hang is not None:
            (self.directory / f"{name}.sleep").write_text(str(hang))

    def calls(self):
        return self.log.read_text().splitlines()


@pytest.fixture
def server(tmp_path):
    return PBS(tmp_path)


def recorded(name):
    return (RECORDED / name).read_text()


def test_one_qstat_names_every_job_and_answers_for_the_interval(server):
    clock = [0.0]
    queue = PbsQueue(min_interval=10, clock=lambda: clock[0])
    server.answer("qstat", recorded("qstat-many.json"))

    views = [queue.view(server.transport, MANY) for _ in range(5)]

    assert server.calls() == [f"qstat -f -F json -x {' '.join(MANY)}"]
    view = views[0]
    assert all(other is view for other in views)
    assert [view.of(job_id).state for job_id in MANY] == ["queued", "running", "held", "ended"]
    assert view.of("1001.pbs-head").reason  # in words, from the scheduler's comment
    assert view.of("1006.pbs-head").ending.kind == "timeout"
    clock[0] = 10.0
    queue.view(server.transport, MANY)
    assert len(server.calls()) == 2


def test_no_job_to_ask_about_costs_no_call(server):
    view = PbsQueue().view(server.transport, [])

    assert view.known
    assert view.entries == {}
    assert server.calls() == []


def test_qstat_failing_on_one_forgotten_id_still_answers_for_the_others(server):
    # qstat exits 35 ("Unknown Job Id") for an id whose history expired, and prints the rest.
    server.answer("qstat", recorded("qstat-running.json"), code=35)

    view = PbsQueue().view(server.transport, ["1002.pbs-head", "999.pbs-head"])

    assert view.known
    assert view.of("1002.pbs-head").state == "running"
    assert view.of("999.pbs-head") is None  # not listed: not known to have ended


@pytest.mark.parametrize(
    ("output", "code"),
    [
        ("", 1),  # the server is down: nothing on stdout
        ('{"timestamp": 1, "pbs_version": "23.06.06", "Jobs": {"1": ', 0),  # cut short
        ("qstat: cannot connect to server pbs-head (errno=15010)\n", 0),
    ],
)
def test_a_status_call_that_cannot_be_read_means_unknown_never_ended(server, output, code):
    server.answer("qstat", output, code=code)

    view = PbsQueue().view(server.transport, MANY)

    assert not view.known
    assert view.entries == {}
    assert view.error.startswith("qstat failed: ")


def test_a_hung_qstat_is_unknown_not_a_stuck_worker(server):
    server.answer("qstat", recorded("qstat-many.json"), hang=30)

    view = PbsQueue(timeout=1).view(server.transport, MANY)

    assert not view.known
    assert "qstat failed" in view.error


def test_a_submission_is_found_by_its_name_before_submitting_again(server):
    queue = PbsQueue(user="alice")
    job_uuid = "6f1c1b8e-2f43-4a57-9a3e-3d1f0c7e2a01"
    server.answer("qselect", recorded("qselect.txt"))

    assert queue.find(server.transport, job_uuid) == "1009.pbs-head"  # the latest
    assert server.calls() == [f"qselect -x -u alice -N drs-{job_uuid}"]

    server.answer("qselect", "")
    assert queue.find(server.transport, job_uuid) is None

    server.answer("qselect", "", code=1)
    with pytest.raises(TransportError, match="not submitted again until that can be read"):
        queue.find(server.transport, job_uuid)


@pytest.mark.parametrize(
    ("fixture", "job_id", "kind"),
    [
        ("qstat-finished-0.json", "1004.pbs-head", "completed"),
        ("qstat-finished-3.json", "1005.pbs-head", "failed"),
        ("qstat-finished-walltime.json", "1006.pbs-head", "timeout"),
        ("qstat-deleted-while-queued.json", "1008.pbs-head", "canceled"),
        ("qstat-none.json", "1004.pbs-head", "unknown"),  # its history has expired
    ],
)
def test_endings_come_from_the_jobs_history(server, fixture, job_id, kind):
    server.answer("qstat", recorded(fixture))

    ending = PbsQueue().ending(server.transport, job_id)

    assert ending.kind == kind
    assert ending.message


def test_a_hung_command_is_stopped_with_what_it_started(server):
    server.answer("qstat", recorded("qstat-many.json"), hang=30)

    PbsQueue(timeout=1).view(server.transport, MANY)

    # The stand-in and its sleep ran in the command's session: nothing of it is left.
    assert processes_with(f"DRS_PBS_DIR={server.directory}") == []


def processes_with(variable):
    """The pids of this host's processes with this NAME=value in their environment."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if variable.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found
