# Unchanged since the development version: the app's own migration, reused.
from importlib import import_module

Migration = import_module("django_remote_submission.migrations.0005_log_job_no_constraint").Migration
