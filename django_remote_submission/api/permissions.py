"""Who may do what through the API: the admin's model permissions, and owners' own jobs."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission, DjangoModelPermissions
from rest_framework.request import Request

from django_remote_submission.models import Job


class ModelPermissionsOrReadOnly(DjangoModelPermissions):
    """Servers and interpreters: any logged-in user reads them; creating, changing and
    deleting need the model's add, change and delete permissions, as in the admin."""


class OwnerOrModelPermission(BasePermission):
    """Jobs, logs and results: the querysets hold what the user may see (``visible_to``:
    their own, or all with the view permission). Owners act on their own jobs; acting
    on another user's job needs the permission the admin asks for the same thing."""

    #: The job permission each action on another user's job needs.
    action_permissions = {
        "update": "change",
        "partial_update": "change",
        "destroy": "delete",
        "submit": "change",
        "cancel": "change",
        "resubmit": "add",
    }

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        job = obj if isinstance(obj, Job) else obj.job
        if job.owner_id == request.user.pk:
            return True
        needed = self.action_permissions.get(getattr(view, "action", None) or "")
        if needed is None:
            return False
        return bool(request.user.has_perm(f"{Job._meta.app_label}.{needed}_{Job._meta.model_name}"))
