"""Server, Interpreter, Job, Log, Result, WorkerBeat: the state of remote jobs, no network I/O."""

from __future__ import annotations

import shlex
import uuid
from typing import Any, Self, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from model_utils import Choices, FieldTracker
from model_utils.fields import AutoCreatedField
from model_utils.models import TimeStampedModel

_Row = TypeVar("_Row", bound=models.Model)


def validate_argument_list(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(
            _('Arguments must be a list of strings, e.g. ["-u"].'), code="invalid_arguments"
        )


def validate_host_key(value: str) -> None:
    from django_remote_submission.transport.hostkeys import HostKey

    try:
        HostKey.parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid_host_key") from exc


class Interpreter(TimeStampedModel):
    name = models.CharField(
        _("Interpreter Name"),
        max_length=100,
        help_text=_("The human-readable name of the interpreter"),
    )
    path = models.CharField(
        _("Command Full Path"),
        max_length=256,
        help_text=_(
            "The full path of the interpreter. It may carry arguments "
            "(e.g. '/usr/bin/python3 -u'); they are split as a shell would split them."
        ),
    )
    arguments = models.JSONField(
        _("Command Arguments"),
        default=list,
        blank=True,
        validators=[validate_argument_list],
        help_text=_("The arguments used when running the interpreter, as a list"),
    )

    class Meta:
        verbose_name = _("interpreter")
        verbose_name_plural = _("interpreters")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.path})"

    @property
    def command(self) -> list[str]:
        """The argv that runs a program with this interpreter, without the program."""
        return shlex.split(self.path) + [str(a) for a in self.arguments or []]


class Server(TimeStampedModel):
    title = models.CharField(
        _("Server Name"), max_length=100, help_text=_("The human-readable name of the server")
    )
    hostname = models.CharField(
        _("Server Hostname"),
        max_length=255,
        help_text=_("The hostname used to connect to the server"),
    )
    port = models.IntegerField(
        _("Server Port"),
        default=22,
        help_text=_("The port to connect to for SSH (usually 22)"),
    )
    interpreters = models.ManyToManyField(
        Interpreter,
        verbose_name=_("List of interpreters available for this Server"),
        help_text=_("The interpreters a job on this server may use"),
    )
    username = models.CharField(
        _("Default Login Username"),
        max_length=150,
        blank=True,
        help_text=_(
            "The SSH login used when a submission names none. "
            "Blank: the job owner's username, as in 2.x."
        ),
    )
    host_key = models.TextField(
        _("Pinned Host Key"),
        blank=True,
        validators=[validate_host_key],
        help_text=_(
            "The server's SSH host key in OpenSSH format ('ssh-ed25519 AAAA...'). "
            "When set, a server presenting any other key is refused."
        ),
    )
    last_checked_at = models.DateTimeField(
        _("Last Connection Test"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("When the connection to the server was last tested (Test connection)"),
    )
    last_check_ok = models.BooleanField(
        _("Last Test Passed"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("Whether every step of the last connection test passed; empty: never tested"),
    )
    last_check_report = models.TextField(
        _("Last Test Report"),
        blank=True,
        editable=False,
        help_text=_("What the last connection test found, step by step (never a password)"),
    )
    scheduler = models.CharField(
        _("Launch Through"),
        max_length=10,
        choices=[
            ("direct", _("directly (no batch scheduler)")),
            ("slurm", _("Slurm (sbatch)")),
            ("pbs", _("PBS (qsub: OpenPBS, PBS Pro)")),
        ],
        default="direct",
        help_text=_(
            "How jobs start on this server: directly on the machine the app logs in to, "
            "or through its batch scheduler (then the program runs where the scheduler "
            "puts it, and the login node only submits and reads files)"
        ),
    )
    scheduler_partition = models.CharField(
        _("Partition or Queue"),
        max_length=100,
        blank=True,
        help_text=_("Slurm's partition (--partition) or PBS's queue (-q); blank: the default"),
    )
    scheduler_account = models.CharField(
        _("Account"),
        max_length=100,
        blank=True,
        help_text=_("The account jobs are charged to (--account, -A); blank: the login's default"),
    )
    scheduler_qos = models.CharField(
        _("QOS"),
        max_length=100,
        blank=True,
        help_text=_("Slurm's quality of service (--qos); PBS has none"),
    )
    scheduler_time_limit = models.PositiveIntegerField(
        _("Default Time Limit (minutes)"),
        null=True,
        blank=True,
        help_text=_(
            "The time limit of a job that asks for none and has no timeout; blank: the "
            "partition's or queue's default"
        ),
    )
    scheduler_directives = models.TextField(
        _("Extra Directives"),
        blank=True,
        help_text=_(
            "Directives written into every job's batch script, one a line, without "
            "#SBATCH or #PBS (e.g. --constraint=haswell)"
        ),
    )
    scheduler_allowed_options = models.CharField(
        _("Options Jobs May Set"),
        max_length=500,
        blank=True,
        help_text=_(
            "The directive options a job may add itself, separated by spaces or commas "
            "(e.g. --constraint --mail-type); blank: none"
        ),
    )
    max_cpus = models.PositiveIntegerField(
        _("Most CPUs"), null=True, blank=True, help_text=_("The most CPUs a job may ask for")
    )
    max_memory_mb = models.PositiveIntegerField(
        _("Most Memory (MB)"),
        null=True,
        blank=True,
        help_text=_("The most memory a job may ask for, in MB per node"),
    )
    max_time_limit = models.PositiveIntegerField(
        _("Longest Time Limit (minutes)"),
        null=True,
        blank=True,
        help_text=_("The longest time limit (or timeout) a job may ask for"),
    )
    max_gpus = models.PositiveIntegerField(
        _("Most GPUs"), null=True, blank=True, help_text=_("The most GPUs a job may ask for")
    )
    max_nodes = models.PositiveIntegerField(
        _("Most Nodes"), null=True, blank=True, help_text=_("The most nodes a job may ask for")
    )
    scheduler_poll_interval = models.FloatField(
        _("Status Interval (seconds)"),
        default=10.0,
        validators=[MinValueValidator(1.0)],
        help_text=_(
            "The least time between two status calls (squeue, qstat) for one login; one "
            "call answers for all its jobs. The live log does not wait for it."
        ),
    )
    allowed_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="remote_servers_granted",
        verbose_name=_("Users Granted the Worker's Credentials"),
        help_text=_(
            "These users may run jobs here without a password: the worker logs in with its "
            "own SSH credentials (its key file, ssh-agent or default keys), as any login "
            "those open. Everyone else must give the login's password."
        ),
    )
    allowed_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="remote_servers_granted",
        verbose_name=_("Groups Granted the Worker's Credentials"),
        help_text=_(
            "The members of these groups may run jobs here with the worker's own SSH "
            "credentials, as the users above may."
        ),
    )

    class Meta:
        verbose_name = _("server")
        verbose_name_plural = _("servers")
        ordering = ["title", "id"]
        permissions = [
            (
                "use_worker_credentials",
                _("Can run jobs on every server with the worker's own SSH credentials"),
            ),
            ("run_on_worker_host", _("Can run jobs on the worker host itself (remote=False)")),
        ]

    def __str__(self) -> str:
        return f"{self.title} <{self.hostname}:{self.port}>"

    @property
    def is_scheduled(self) -> bool:
        """Whether jobs start through a batch scheduler (Slurm, PBS)."""
        return self.scheduler != "direct"

    def clean(self) -> None:
        super().clean()
        from django_remote_submission import scheduling

        problems = scheduling.server_problems(self)
        if problems:
            raise ValidationError(problems)


class _VisibleQuerySet(models.QuerySet[_Row]):
    """Rows of jobs a user may see: their own jobs', or every row with the model's view
    permission, as in the admin (superusers have it; being staff alone does not)."""

    #: The lookup from a row to its job's owner.
    owner_lookup = "owner_id"

    def visible_to(self, user: Any) -> Self:
        """``user`` is any user model's instance, or AnonymousUser (who sees nothing)."""
        opts = self.model._meta
        if user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
            return self
        if not user.is_authenticated:
            return self.none()
        return self.filter(**{self.owner_lookup: user.pk})


class JobQuerySet(_VisibleQuerySet["Job"]):
    owner_lookup = "owner_id"


class LogQuerySet(_VisibleQuerySet["Log"]):
    owner_lookup = "job__owner_id"


class ResultQuerySet(_VisibleQuerySet["Result"]):
    owner_lookup = "job__owner_id"


class Job(TimeStampedModel):
    STATUS = Choices(
        ("initial", _("initial")),
        ("submitted", _("submitted")),
        ("success", _("success")),
        ("failure", _("failure")),
    )
    FINAL_STATUSES = frozenset({STATUS.success, STATUS.failure})

    class State(models.TextChoices):
        """Where the job is, in more detail than 2.x's ``status`` (see docs/architecture)."""

        QUEUED = "queued", _("queued")
        STARTING = "starting", _("starting")
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        FINISHING = "finishing", _("finishing")
        SUCCESS = "success", _("success")
        FAILURE = "failure", _("failure")
        CANCELED = "canceled", _("canceled")

    title = models.CharField(_("Job Name"), max_length=250, help_text=_("The name of the job"))
    uuid = models.UUIDField(
        _("Job UUID"),
        default=uuid.uuid4,
        editable=False,
        unique=True,
        help_text=_("A unique identifier for use in grouping Result files"),
    )
    program = models.TextField(
        _("Job Program"),
        help_text=_(
            "The program to run. It is saved as the remote file name and run by the "
            "interpreter, so it needs no #! line."
        ),
    )
    status = models.CharField(
        _("Job Status"),
        max_length=100,
        choices=STATUS,
        default=STATUS.initial,
        help_text=_("initial, then submitted while it runs, then success or failure"),
    )
    remote_directory = models.CharField(
        _("Job Remote Directory"),
        max_length=250,
        help_text=_("The directory on the remote host to store the program"),
    )
    remote_filename = models.CharField(
        _("Job Remote Filename"),
        max_length=250,
        help_text=_("The filename to store the program to (e.g. reduce.py)"),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        related_name="jobs",
        verbose_name=_("Job Owner"),
        help_text=_("The user who owns this job"),
    )
    server = models.ForeignKey(
        Server,
        models.PROTECT,
        related_name="jobs",
        verbose_name=_("Job Server"),
        help_text=_("The server the job runs on"),
    )
    interpreter = models.ForeignKey(
        Interpreter,
        models.PROTECT,
        related_name="jobs",
        verbose_name=_("Job Interpreter"),
        help_text=_("The interpreter that runs the program; the server must offer it"),
    )

    exit_code = models.IntegerField(
        _("Exit Code"), null=True, blank=True, help_text=_("The program's exit code, once known")
    )
    error = models.TextField(
        _("Error"), blank=True, help_text=_("Why the job failed, in words a person can act on")
    )
    started_at = models.DateTimeField(
        _("Started At"), null=True, blank=True, help_text=_("When the program was launched")
    )
    finished_at = models.DateTimeField(
        _("Finished At"), null=True, blank=True, help_text=_("When the job reached its outcome")
    )
    remote_pid = models.IntegerField(
        _("Remote PID"),
        null=True,
        blank=True,
        help_text=_("The process id of the shell that watches the program and records its exit"),
    )
    remote_pgid = models.IntegerField(
        _("Remote Process Group"),
        null=True,
        blank=True,
        help_text=_("The program's process group id, signalled to cancel it and its children"),
    )
    stdout_offset = models.BigIntegerField(
        _("Stdout Offset"),
        default=0,
        help_text=_("Bytes of standard output already stored"),
    )
    stderr_offset = models.BigIntegerField(
        _("Stderr Offset"),
        default=0,
        help_text=_("Bytes of standard error already stored"),
    )
    heartbeat = models.DateTimeField(
        _("Heartbeat"),
        null=True,
        blank=True,
        help_text=_("Last time a worker following this job reported progress"),
    )
    cancel_requested_at = models.DateTimeField(
        _("Cancel Requested At"),
        null=True,
        blank=True,
        help_text=_("When someone asked to cancel the job; the worker following it acts on it"),
    )
    task_id = models.CharField(
        _("Celery Task Id"),
        max_length=255,
        blank=True,
        help_text=_("The id of the Celery task that runs the job"),
    )
    state = models.CharField(
        _("State"),
        max_length=20,
        choices=State.choices,
        default=State.QUEUED,
        help_text=_(
            "queued, starting, pending (at a batch scheduler), running, finishing, then "
            "success, failure or canceled; "
            "status keeps the 2.x values"
        ),
    )
    queued_at = models.DateTimeField(
        _("Queued At"),
        null=True,
        blank=True,
        help_text=_("When the job's task was last sent to the broker"),
    )
    lease_owner = models.CharField(
        _("Lease Owner"),
        max_length=200,
        blank=True,
        help_text=_("The worker process that follows the job now (host:pid:random)"),
    )
    lease_expires = models.DateTimeField(
        _("Lease Expires"),
        null=True,
        blank=True,
        help_text=_("Until when the lease owner holds the job without renewing it"),
    )
    watched_until = models.DateTimeField(
        _("Watched Until"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "Until when a job-log socket watches the job: its worker sends log events "
            "while someone watches (see events.watch)"
        ),
    )
    resources = models.JSONField(
        _("Resources"),
        default=dict,
        blank=True,
        help_text=_(
            "What the job asks its server's batch scheduler for: cpus, memory_mb, "
            'time_limit_s, gpus, nodes, directives (e.g. {"cpus": 4, "memory_mb": 2000}); '
            "empty: the server's defaults"
        ),
    )
    scheduler_job_id = models.CharField(
        _("Scheduler Job Id"),
        max_length=100,
        blank=True,
        help_text=_("The batch scheduler's id of the job (Slurm's, PBS's), once submitted"),
    )
    scheduler_reason = models.CharField(
        _("Scheduler Reason"),
        max_length=300,
        blank=True,
        help_text=_("Why the batch scheduler has not started the job yet, in words"),
    )
    pending_since = models.DateTimeField(
        _("Pending Since"),
        null=True,
        blank=True,
        help_text=_("When the job was submitted to its server's batch scheduler"),
    )
    run_options = models.JSONField(
        _("Run Options"),
        default=dict,
        blank=True,
        help_text=_(
            "How this run was asked for (login, timeout, log policy, result patterns), "
            "secrets sealed; kept while the job runs, so another worker can take it over"
        ),
    )

    #: The 2.x status each state shows, and the state a status set by 2.x code means.
    _STATES_OF_STATUS: dict[str, tuple[str, ...]] = {
        State.QUEUED: ("initial",),
        State.STARTING: ("submitted",),
        State.PENDING: ("submitted",),
        State.RUNNING: ("submitted",),
        State.FINISHING: ("submitted",),
        State.SUCCESS: ("success",),
        State.FAILURE: ("failure",),
        State.CANCELED: ("failure",),
    }
    _STATE_OF_STATUS: dict[str, str] = {
        "initial": State.QUEUED,
        "submitted": State.RUNNING,
        "success": State.SUCCESS,
        "failure": State.FAILURE,
    }

    objects = JobQuerySet.as_manager()
    tracker = FieldTracker(fields=["status", "state", "scheduler_reason"])

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["owner", "-modified"], name="drs_job_owner_modified_idx"),
            models.Index(fields=["status"], name="drs_job_status_idx"),
            models.Index(fields=["state", "lease_expires"], name="drs_job_state_lease_idx"),
            # "Which of my jobs are watched now?", asked by followers twice a second.
            models.Index(
                fields=["watched_until"],
                name="drs_job_watched_idx",
                condition=models.Q(watched_until__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        super().clean()
        if self.server_id is None or self.interpreter_id is None:
            return
        if not self.server.interpreters.filter(pk=self.interpreter_id).exists():
            raise ValidationError(
                {"interpreter": _("The Interpreter picked is not valid for this server.")},
                code="invalid_interpreter",
            )
        from django_remote_submission import scheduling

        problems = scheduling.resource_problems(self.server, self.resources)
        if problems:
            raise ValidationError({"resources": problems}, code="invalid_resources")

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINAL_STATUSES

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Code written for 2.x sets ``status`` and saves: the state follows it.
        if self.status not in self._STATES_OF_STATUS.get(self.state, ()):
            self.state = self._STATE_OF_STATUS.get(self.status, self.state)
            update_fields = kwargs.get("update_fields")
            if update_fields is not None and "status" in update_fields:
                kwargs["update_fields"] = {*update_fields, "state"}
        super().save(*args, **kwargs)

    def duplicate(self) -> Job:
        """A new job with this one's program, server, interpreter, place and owner."""
        return Job.objects.create(
            title=self.title,
            program=self.program,
            remote_directory=self.remote_directory,
            remote_filename=self.remote_filename,
            owner_id=self.owner_id,
            server_id=self.server_id,
            interpreter_id=self.interpreter_id,
            resources=self.resources,
        )


class Log(models.Model):
    STREAMS = Choices(("stdout", _("stdout")), ("stderr", _("stderr")))

    time = AutoCreatedField(_("Log Time"), help_text=_("The time this log was created"))
    content = models.TextField(_("Log Content"), help_text=_("The content of this log message"))
    stream = models.CharField(
        _("Output Stream"),
        max_length=6,
        choices=STREAMS,
        default=STREAMS.stdout,
        help_text=_("Output communication channels. Either stdout or stderr."),
    )
    job = models.ForeignKey(
        Job,
        models.CASCADE,
        related_name="logs",
        verbose_name=_("Job"),
        help_text=_("The job this log came from"),
        # drs_log_job_id_idx (job, id) serves every lookup by job: a second index on
        # job alone would only slow each inserted row.
        db_index=False,
        # No foreign key in the database: PostgreSQL would check it with a query for
        # each stored line, half the cost of storing it. A writer locks the job's row
        # before it stores rows and deleting a job locks it first (``lock_deleted_job``),
        # so rows of a deleted job are never left behind; Django still cascades.
        db_constraint=False,
    )

    objects = LogQuerySet.as_manager()

    class Meta:
        verbose_name = _("log")
        verbose_name_plural = _("logs")
        ordering = ["id"]
        indexes = [
            # "Logs of job J after id N", the query of every catch-up and cursor.
            models.Index(fields=["job", "id"], name="drs_log_job_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.time} {self.job}"


class WorkerBeat(models.Model):
    """One row per running sweep (one per Celery worker), written as it sweeps: the
    operators' page tells from it whether any worker is alive."""

    owner = models.CharField(
        _("Sweep Owner"),
        max_length=200,
        unique=True,
        help_text=_("The name the sweep holds job leases by (host:pid:random)"),
    )
    host = models.CharField(
        _("Worker Host"), max_length=150, help_text=_("The host name of the worker")
    )
    pid = models.IntegerField(_("Worker PID"), help_text=_("The worker's process id"))
    started_at = models.DateTimeField(_("Started At"), help_text=_("When the sweep started"))
    last_sweep_at = models.DateTimeField(
        _("Last Sweep"), help_text=_("When the sweep last looked for jobs to take over")
    )
    jobs_followed = models.IntegerField(
        _("Jobs Followed"),
        default=0,
        help_text=_("How many jobs the worker's followers followed at the last sweep"),
    )

    class Meta:
        verbose_name = _("worker beat")
        verbose_name_plural = _("worker beats")
        ordering = ["host", "pid", "id"]

    def __str__(self) -> str:
        return self.owner


class Overview(Job):
    """No data of its own: the operators' page appears in the admin, at
    ``admin/django_remote_submission/overview/``, as the page of this proxy."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = _("operators' overview")
        verbose_name_plural = _("operators' overview")


def job_result_path(instance: Result, filename: str) -> str:
    """Where a result file is stored: ``results/<job uuid>/<filename>`` under MEDIA_ROOT."""
    return f"results/{instance.job.uuid}/{filename}"


class Result(TimeStampedModel):
    remote_filename = models.TextField(
        _("Remote Filename"),
        help_text=_(
            "The filename on the remote server for this result, "
            "relative to the remote directory of the job"
        ),
    )
    local_file = models.FileField(
        _("Local Filename"),
        upload_to=job_result_path,
        max_length=1024,
        help_text=_("The local filename of this result"),
    )
    job = models.ForeignKey(
        Job,
        models.CASCADE,
        related_name="results",
        verbose_name=_("Job"),
        help_text=_("The job this result came from"),
    )
    size = models.BigIntegerField(
        _("Size"), null=True, blank=True, help_text=_("The size of the file in bytes")
    )
    checksum = models.CharField(
        _("Checksum"),
        max_length=64,
        blank=True,
        help_text=_("The SHA-256 digest of the file, in hex"),
    )

    objects = ResultQuerySet.as_manager()

    class Meta:
        verbose_name = _("result")
        verbose_name_plural = _("results")
        ordering = ["job", "remote_filename", "id"]

    def __str__(self) -> str:
        return f"{self.remote_filename} <{self.job}>"
