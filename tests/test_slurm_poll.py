"""The login's Slurm queue read once per interval for all its jobs (schedulers.poll), on the
suite's one-node Slurm, over SSH as an ordinary user."""

import uuid

import pytest

from django_remote_submission.exceptions import TransportError
from django_remote_submission.schedulers.base import Resources, job_name
from django_remote_submission.schedulers.poll import SlurmQueue
from tests import test_slurm_launch
from tests.test_slurm_cluster import wait_for
from tests.test_slurm_launch import exit_code, submit

pytestmark = [pytest.mark.slurm, pytest.mark.ssh]

place = test_slurm_launch.place


class Clock:
    """A clock the test moves by hand: the interval is passed when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_one_squeue_answers_for_every_job_of_the_login_within_an_interval(place):
    transport, directory = place
    clock = Clock()
    queue = SlurmQueue(min_interval=10, clock=clock)
    uuids = [uuid.uuid4() for _ in range(5)]
    # Each asks for both CPUs of the one node: at most a few run, the rest wait.
    ids = [
        submit(transport, directory, ["sleep", "60"], job_uuid=u, resources=Resources(cpus=2))[0]
        for u in uuids
    ]

    first = queue.view(transport, fresh=True)
    views = [queue.view(transport) for _ in range(20)]

    assert queue.calls == 1
    assert all(view is first for view in views)
    assert first.known
    assert {first.of(i).name for i in ids} == {job_name(u) for u in uuids}
    assert {first.of(i).state for i in ids} <= {"queued", "running"}
    waiting = [first.of(i) for i in ids if first.of(i).state == "queued"]
    assert waiting, "with 2 CPUs and 5 jobs that take both, some wait"
    assert all(entry.reason for entry in waiting)  # in words: "waiting for free CPUs ..."

    clock.now += 10  # the interval has passed: the next view asks again
    assert queue.view(transport) is not first
    assert queue.calls == 2


def test_a_submission_is_found_by_its_name_and_an_unknown_one_is_not(place):
    transport, directory = place
    queue = SlurmQueue()
    job_uuid = uuid.uuid4()
    job_id, _control = submit(transport, directory, ["sleep", "30"], job_uuid=job_uuid)

    found = queue.find(transport, job_uuid)

    assert found == job_id
    assert queue.find(transport, uuid.uuid4()) is None
    assert queue.calls == 2  # a look-up always asks anew


def test_endings_read_from_the_queue_and_from_scontrol(place):
    transport, directory = place
    queue = SlurmQueue(min_interval=0)
    done_id, done_control = submit(transport, directory, ["/bin/sh", "-c", "exit 0"])
    canceled_id, _ = submit(transport, directory, ["sleep", "60"])
    wait_for(lambda: (queue.view(transport).of(canceled_id) or 0) and True, what="the job listed")
    transport.check(["scancel", canceled_id], what="scancel")

    wait_for(lambda: exit_code(transport, done_control) is not None, what="the exit code")
    ended = wait_for(
        lambda: (
            (view := queue.view(transport)).of(done_id)
            and view.of(done_id).state == "ended"
            and view.of(canceled_id).state == "ended"
            and view
        ),
        what="both jobs ended in squeue",
    )

    assert ended.of(done_id).ending.kind == "completed"
    assert ended.of(canceled_id).ending.kind == "canceled"
    assert queue.ending(transport, canceled_id).kind == "canceled"
    assert queue.ending(transport, "999999").kind == "unknown"


def test_a_failed_status_call_means_unknown_never_ended(place):
    transport, directory = place
    job_id, _ = submit(transport, directory, ["sleep", "30"])
    # A login node whose Slurm configuration is missing: squeue looks for a controller
    # and hangs, as it does when the controller is unreachable.
    queue = SlurmQueue(env={"SLURM_CONF": f"{directory}/no-such-slurm.conf"}, timeout=2)

    view = queue.view(transport)

    assert not view.known
    assert view.of(job_id) is None
    assert view.error.startswith("squeue failed: ")
    assert queue.ending(transport, job_id).kind == "unknown"
    with pytest.raises(TransportError, match="not submitted again until that can be read"):
        queue.find(transport, uuid.uuid4())
