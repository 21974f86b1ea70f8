"""The Celery app of the test suite; tests/conftest.py points it at a real Redis."""

from celery import Celery

app = Celery("drs_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["tests"], related_name="tasks")
