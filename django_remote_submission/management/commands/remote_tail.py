"""Print a job's stored log, and keep printing new lines until the job ends."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from django_remote_submission.logstream import LogRow
from django_remote_submission.models import Job, Log

POLL_SECONDS = 0.5


def write_logs(logs: Iterable[Log | LogRow], stdout: OutputWrapper, stderr: OutputWrapper) -> int:
    """Write rows to the terminal's matching stream; returns the last log id written."""
    last = 0
    for log in logs:
        (stderr if log.stream == "stderr" else stdout).write(log.content, ending="")
        last = log.id or last
    stdout.flush()
    stderr.flush()
    return last


def tail(
    job: Job,
    stdout: OutputWrapper,
    stderr: OutputWrapper,
    *,
    since: int = 0,
    follow: bool = True,
) -> Job:
    """Print the job's rows after ``since``; with ``follow``, until it has ended."""
    while True:
        finished = Job.objects.get(pk=job.pk).is_finished
        rows = job.logs.filter(pk__gt=since).order_by("pk")
        since = write_logs(rows.iterator(), stdout, stderr) or since
        if finished or not follow:
            return Job.objects.get(pk=job.pk)
        time.sleep(POLL_SECONDS)


def outcome(job: Job) -> str:
    text = f"Job {job.pk} ({job.title}): {job.status}"
    if job.exit_code is not None:
        text += f", exit code {job.exit_code}"
    if job.error:
        text += f". {job.error}"
    return text


class Command(BaseCommand):
    help = "Print the log of a job; with --follow (the default) until the job ends."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job", type=int, help="The job's id.")
        parser.add_argument("--since", type=int, default=0, help="Only lines after this log id.")
        parser.add_argument(
            "--no-follow",
            dest="follow",
            action="store_false",
            help="Print what is stored now and stop.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            job = Job.objects.get(pk=options["job"])
        except Job.DoesNotExist:
            raise CommandError(f"There is no job {options['job']}.") from None
        job = tail(job, self.stdout, self.stderr, since=options["since"], follow=options["follow"])
        if job.is_finished:
            self.stderr.write(outcome(job))
