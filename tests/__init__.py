# As a project's package does: the Celery app is set up whenever Django starts with the
# test settings (tasks' .delay() then goes to the suite's broker, and check reports no W004).
from tests.celery_app import app as celery_app

__all__ = ("celery_app",)
