"""The Celery app of the test suite; tests/conftest.py points it at a real Redis."""

import json
import os
from typing import Any

from celery import Celery

app = Celery("drs_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["tests"], related_name="tasks")

if os.environ.get("DRS_SIGNAL_RECORD"):
    # The worker processes of tests/test_signals.py write each signal they send to a file.
    from django_remote_submission.signals import job_status_changed, logs_stored

    def _record(line: str) -> None:
        with open(os.environ["DRS_SIGNAL_RECORD"], "a", encoding="utf-8") as record:
            record.write(line + "\n")

    def _logs(sender: Any, job_id: int, logs: Any, **kwargs: Any) -> None:
        _record(json.dumps({"logs": job_id, "ids": [log.pk for log in logs]}))

    def _status(sender: Any, job: Any, status: str, state: str, **kwargs: Any) -> None:
        _record(json.dumps({"job": job.pk, "status": status, "state": state}))

    logs_stored.connect(_logs, weak=False)
    job_status_changed.connect(_status, weak=False)
