"""The example project: a site that uses django-remote-submission as a real project would."""

from server.celery import app as celery_app

__all__ = ["celery_app"]
