"""Submit a job from the terminal and follow its log while it runs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_remote_submission.exceptions import RemoteSubmissionError
from django_remote_submission.logstream import LogPolicy, LogRow
from django_remote_submission.management.commands.remote_tail import outcome, tail, write_logs
from django_remote_submission.models import Interpreter, Job, Server
from django_remote_submission.runner import RunOptions, run_job, timeout_seconds

POLICIES = {"live": LogPolicy.LOG_LIVE, "total": LogPolicy.LOG_TOTAL, "none": LogPolicy.LOG_NONE}


class Command(BaseCommand):
    help = (
        "Run a program on a server as a new job (or run an existing job with --job) and "
        "print its output as it is stored. Exits 0 when the job succeeds, 1 otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "program", nargs="?", help="The program file to run; '-' reads it from stdin."
        )
        parser.add_argument("--job", type=int, help="Run this existing job instead.")
        parser.add_argument("--server", help="The Server's id or title.")
        parser.add_argument("--interpreter", help="The Interpreter's id or name.")
        parser.add_argument("--owner", help="The username that owns the new job.")
        parser.add_argument("--title", help="The job's title (default: the file name).")
        parser.add_argument("--remote-directory", default="~/django-remote-submission")
        parser.add_argument("--remote-filename", help="Default: the program's file name.")
        parser.add_argument("--username", help="The SSH login (default: server's, owner's).")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the SSH password from the first line of stdin.",
        )
        parser.add_argument("--key", help="A private key file to log in with.")
        parser.add_argument("--timeout", type=float, help="Seconds before the job is stopped.")
        parser.add_argument("--log-policy", choices=sorted(POLICIES), default="live")
        parser.add_argument(
            "--store-results",
            action="append",
            metavar="PATTERN",
            help="A results pattern (repeat it; '!' negates). Default: every new file.",
        )
        parser.add_argument("--local", action="store_true", help="Run on this host.")
        parser.add_argument(
            "--celery",
            action="store_true",
            help="Send the job to a Celery worker instead of running it here, then follow.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            options["timeout"] = timeout_seconds(options["timeout"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        password = None
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\r\n")
        job = self._job(options)
        self.stderr.write(f"Job {job.pk} ({job.title}) on {job.server}")
        if options["celery"]:
            from django_remote_submission.tasks import submit_job_to_server

            submit_job_to_server.delay(
                job_pk=job.pk,
                password=password,
                public_key_filename=options["key"],
                username=options["username"],
                timeout=options["timeout"],
                log_policy=POLICIES[options["log_policy"]],
                store_results=options["store_results"],
                remote=not options["local"],
            )
            job = tail(job, self.stdout, self.stderr)
        else:
            job = self._run_here(job, password, options)
        self.stderr.write(outcome(job))
        for result in job.results.order_by("remote_filename"):
            self.stderr.write(f"  result {result.remote_filename} -> {result.local_file.name}")
        if job.status != Job.STATUS.success:
            raise CommandError(job.error or "The job failed.", returncode=1)

    def _run_here(self, job: Job, password: str | None, options: dict[str, Any]) -> Job:
        def show(rows: Sequence[LogRow]) -> None:
            write_logs(rows, self.stdout, self.stderr)

        # A failure is recorded on the job and reported by handle().
        with contextlib.suppress(RemoteSubmissionError):
            run_job(
                job,
                RunOptions(
                    username=options["username"],
                    password=password,
                    key_filename=options["key"],
                    timeout=options["timeout"],
                    log_policy=POLICIES[options["log_policy"]],
                    store_results=options["store_results"],
                    remote=not options["local"],
                    on_batch=show,
                ),
            )
        job.refresh_from_db()
        return job

    def _job(self, options: dict[str, Any]) -> Job:
        if options["job"] is not None:
            try:
                return Job.objects.select_related("server", "interpreter", "owner").get(
                    pk=options["job"]
                )
            except Job.DoesNotExist:
                raise CommandError(f"There is no job {options['job']}.") from None
        missing = [
            name for name in ("program", "server", "interpreter", "owner") if not options[name]
        ]
        if missing:
            raise CommandError(
                "Give --job, or a program and "
                + ", ".join(f"--{name}" for name in missing if name != "program")
                + (" and the program file" if "program" in missing else "")
                + "."
            )
        if options["program"] == "-":
            program, name = sys.stdin.read(), "program"
        else:
            path = Path(options["program"])
            try:
                program, name = path.read_text(), path.name
            except OSError as exc:
                raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        server = _one(Server, options["server"], "title")
        interpreter = _one(Interpreter, options["interpreter"], "name")
        try:
            owner = get_user_model().objects.get_by_natural_key(options["owner"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"There is no user {options['owner']!r}.") from None
        job = Job(
            title=options["title"] or name,
            program=program,
            remote_directory=options["remote_directory"],
            remote_filename=options["remote_filename"] or name,
            owner=owner,
            server=server,
            interpreter=interpreter,
        )
        try:
            job.full_clean()
        except Exception as exc:
            raise CommandError(f"The job is not valid: {exc}") from None
        job.save()
        return job


def _one(model: Any, value: str, field: str) -> Any:
    matches = model.objects.filter(**{field: value})
    if value.isdigit():
        matches = model.objects.filter(pk=int(value)) | matches
    found = list(matches[:2])
    if len(found) != 1:
        what = model._meta.verbose_name
        reason = "No" if not found else "More than one"
        raise CommandError(f"{reason} {what} has the id or {field} {value!r}.")
    return found[0]
