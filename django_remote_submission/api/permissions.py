"""Who may do what through the API."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request


class ReadOnlyUnlessStaff(BasePermission):
    """Servers and interpreters: any logged-in user reads, staff change."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or bool(user.is_staff)


class OwnerOrStaff(BasePermission):
    """Jobs, logs and results: their owner and staff only (querysets are scoped too)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        owner_id = getattr(obj, "owner_id", None)
        if owner_id is None and hasattr(obj, "job"):
            owner_id = obj.job.owner_id
        return bool(request.user.is_staff or owner_id == request.user.pk)
