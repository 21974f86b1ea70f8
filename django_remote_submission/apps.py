"""The Django application configuration."""

from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class RemoteSubmissionConfig(AppConfig):
    name = "django_remote_submission"
    verbose_name = _("Remote Submission")
    # 2.x used AutoField; pinning it keeps migrations stable whatever the
    # host project's DEFAULT_AUTO_FIELD says.
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save, pre_delete

        from django_remote_submission import checks as app_checks
        from django_remote_submission import events, logstream
        from django_remote_submission.models import Job, Log

        checks.register(app_checks.check_settings)
        post_save.connect(events.job_saved, sender=Job, dispatch_uid="drs-job-status")
        post_save.connect(events.log_saved, sender=Log, dispatch_uid="drs-log-row")
        pre_delete.connect(logstream.lock_deleted_job, sender=Job, dispatch_uid="drs-job-delete")
