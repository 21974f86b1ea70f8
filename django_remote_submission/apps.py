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
        from django_remote_submission import checks as app_checks

        checks.register(app_checks.check_settings)
