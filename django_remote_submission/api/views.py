"""The API's viewsets: scoped to the requesting user, with actions that run jobs (after the
login policy allows them)."""

from __future__ import annotations

import posixpath
from typing import Any

from django.db.models import ProtectedError, QuerySet
from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import filters, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from django_remote_submission import scheduling
from django_remote_submission.api import serializers
from django_remote_submission.api.filters import ExactFilterBackend, SearchFilter
from django_remote_submission.api.permissions import (
    ModelPermissionsOrReadOnly,
    OwnerOrModelPermission,
)
from django_remote_submission.api.schema import APIAutoSchema
from django_remote_submission.exceptions import LoginRefused
from django_remote_submission.logins import check_login
from django_remote_submission.models import Interpreter, Job, Log, Result, Server
from django_remote_submission.tasks import cancel_job, enqueue_submission

#: Most log rows one ``jobs/{id}/logs/`` answer carries.
MAX_LOG_PAGE = 10_000
#: The largest id a database's big integer holds: larger cursors mean "the end".
MAX_LOG_ID = 2**63 - 1


class StandardPagination(PageNumberPagination):
    """2.x's pagination: ``?page=N``, ten to a page."""

    page_size = 10


class _ViewSet(viewsets.GenericViewSet[Any]):
    # Set here, and on each action, so that the schema works whatever the project's
    # REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] says.
    schema = APIAutoSchema()
    pagination_class = StandardPagination
    filter_backends = [ExactFilterBackend, filters.OrderingFilter, SearchFilter]
    #: The actions that answer 409 Conflict, and when (the schema documents them).
    conflicts: dict[str, str] = {}
    #: The actions that answer whatever the request's Accept header asks for (no 406).
    any_accept_actions: frozenset[str] = frozenset()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # The views read one value of each parameter (the last); ?status=a&status=b would
        # silently mean ?status=b.
        repeated = sorted(name for name, values in request.query_params.lists() if len(values) > 1)
        if repeated:
            raise ValidationError({name: ["Give this parameter once."] for name in repeated})

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        force = force or getattr(self, "action", None) in self.any_accept_actions
        return super().perform_content_negotiation(request, force=force)


class _InUseMixin:
    """Deleting a row that jobs still use answers 409, not 500."""

    conflicts = {"destroy": "Jobs still use this: delete them first."}

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            response: Response = super().destroy(request, *args, **kwargs)  # type: ignore[misc]
        except ProtectedError:
            return Response(
                {"detail": "Jobs still use this; delete them first."},
                status=status.HTTP_409_CONFLICT,
            )
        return response


class ServerViewSet(_InUseMixin, viewsets.ModelViewSet[Server], _ViewSet):
    queryset = Server.objects.prefetch_related("interpreters").order_by("title", "id")
    serializer_class = serializers.ServerSerializer
    permission_classes = [ModelPermissionsOrReadOnly]
    filterset_fields = ["title", "hostname", "port", "username"]
    ordering_fields = ["id", "title", "hostname", "created", "modified"]
    search_fields = ["title", "hostname"]


class InterpreterViewSet(_InUseMixin, viewsets.ModelViewSet[Interpreter], _ViewSet):
    queryset = Interpreter.objects.order_by("name", "id")
    serializer_class = serializers.InterpreterSerializer
    permission_classes = [ModelPermissionsOrReadOnly]
    filterset_fields = ["name", "path"]
    ordering_fields = ["id", "name", "created", "modified"]
    search_fields = ["name", "path"]


class JobViewSet(viewsets.ModelViewSet[Job], _ViewSet):
    serializer_class = serializers.JobSerializer
    permission_classes = [OwnerOrModelPermission]
    filterset_fields = ["title", "status", "state", "server", "interpreter", "owner"]
    ordering_fields = ["id", "title", "status", "created", "modified", "started_at"]
    search_fields = ["title", "remote_directory", "remote_filename"]
    conflicts = {
        "update": "The job is running: cancel it first.",
        "partial_update": "The job is running: cancel it first.",
        "destroy": "The job is running: cancel it first.",
        "submit": "The job is running, or queued already: cancel it first.",
        "cancel": "The job has ended already.",
    }

    def get_queryset(self) -> QuerySet[Job]:
        jobs = Job.objects.visible_to(self.request.user)
        return jobs.select_related("server", "interpreter").order_by("-created", "-id")

    def perform_create(self, serializer: Any) -> None:
        serializer.save(owner=self.request.user)

    def _refuse_while_running(self, job: Job) -> Response | None:
        if job.status == Job.STATUS.submitted:
            return Response(
                {"detail": "The job is running: cancel it first."}, status=status.HTTP_409_CONFLICT
            )
        return None

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._refuse_while_running(self.get_object()) or super().update(
            request, *args, **kwargs
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._refuse_while_running(self.get_object()) or super().destroy(
            request, *args, **kwargs
        )

    def get_serializer_class(self) -> Any:
        if self.action in ("submit", "resubmit"):
            return serializers.SubmitSerializer  # the browsable API's form for the options
        return serializers.JobSerializer

    def _options(self, request: Request) -> dict[str, Any]:
        options = serializers.SubmitSerializer(data=request.data, context={"request": request})
        options.is_valid(raise_exception=True)
        values = dict(options.validated_data)
        values["username"] = values.get("username") or None
        return values

    def _check_resources(self, job: Job, options: dict[str, Any]) -> None:
        """Refuse with 400, before anything is queued, a run its server's scheduler would
        refuse: a timeout over its longest time limit, or resources over a limit lowered
        since the job was written."""
        problems = scheduling.resource_problems(job.server, job.resources)
        if problems:
            raise ValidationError({"resources": problems})
        problems = scheduling.resource_problems(job.server, job.resources, options.get("timeout"))
        if problems:
            raise ValidationError({"timeout": problems})

    def _check_login(self, request: Request, job: Job, options: dict[str, Any]) -> None:
        """Refuse with 403, before anything is created or queued, a login the
        requesting user may not use (see :mod:`django_remote_submission.logins`)."""
        try:
            check_login(
                request.user,
                job,
                username=options["username"],
                password=options.get("password"),
                remote=options["remote"],
            )
        except LoginRefused as exc:
            raise PermissionDenied(str(exc)) from exc

    def _enqueue(self, job: Job, options: dict[str, Any]) -> Response:
        task_id = enqueue_submission(job.pk, **options)
        job.refresh_from_db()
        data = serializers.JobSerializer(job, context=self.get_serializer_context()).data
        return Response({"job": data, "task_id": task_id}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=serializers.SubmitSerializer, responses={202: serializers.SubmittedSerializer}
    )
    @action(detail=True, methods=["post"], schema=APIAutoSchema())
    def submit(self, request: Request, pk: Any = None) -> Response:
        """Run the job on its server, as a login the requesting user may use."""
        job = self.get_object()
        refused = self._refuse_while_running(job)
        if refused is None and job.status == Job.STATUS.initial and job.task_id:
            refused = Response(
                {"detail": "The job is queued already: cancel it, or resubmit a copy."},
                status=status.HTTP_409_CONFLICT,
            )
        if refused is not None:
            return refused
        options = self._options(request)
        self._check_resources(job, options)
        self._check_login(request, job, options)
        return self._enqueue(job, options)

    @extend_schema(request=None, responses={202: serializers.JobSerializer})
    @action(detail=True, methods=["post"], schema=APIAutoSchema())
    def cancel(self, request: Request, pk: Any = None) -> Response:
        """Stop the job: TERM to its process group, KILL after the grace period."""
        job = self.get_object()
        if not cancel_job(job.pk):
            return Response(
                {"detail": "The job has ended already."}, status=status.HTTP_409_CONFLICT
            )
        job.refresh_from_db()
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=serializers.SubmitSerializer, responses={202: serializers.SubmittedSerializer}
    )
    @action(detail=True, methods=["post"], schema=APIAutoSchema())
    def resubmit(self, request: Request, pk: Any = None) -> Response:
        """Run a copy of the job (same program, server and place) as a new job."""
        job = self.get_object()
        # Before the copy: a bad body or a refused login leaves nothing behind.
        options = self._options(request)
        self._check_resources(job, options)
        self._check_login(request, job, options)
        return self._enqueue(job.duplicate(), options)

    @extend_schema(
        parameters=[
            OpenApiParameter("since", int, description="Only rows after this log id."),
            OpenApiParameter(
                "before",
                int,
                description=(
                    "Only rows before this log id: the last ones of them, oldest first "
                    "(to read a log backwards; with since, the rows between the two)."
                ),
            ),
            OpenApiParameter("limit", int, description=f"At most this many rows ({MAX_LOG_PAGE})."),
        ],
        responses=serializers.LogPageSerializer,
    )
    @action(detail=True, methods=["get"], schema=APIAutoSchema())
    def logs(self, request: Request, pk: Any = None) -> Response:
        """The job's log after a cursor, to catch up without a websocket; or before one,
        to read it backwards."""
        job = self.get_object()
        params = request.query_params
        try:
            since = _log_id(params.get("since", 0))
            before = _log_id(params["before"]) if "before" in params else None
            limit = min(MAX_LOG_PAGE, max(1, int(params.get("limit", MAX_LOG_PAGE))))
        except ValueError:
            return Response(
                {"detail": "since, before and limit must be integers."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        logs = job.logs.filter(pk__gt=since)
        if before is None:
            rows = list(logs.order_by("pk")[: limit + 1])
            more = len(rows) > limit
            rows = rows[:limit]
        else:
            # Newest first, so that the query reads only what it answers (and one more,
            # to tell whether earlier rows exist) from the (job, id) index.
            rows = list(logs.filter(pk__lt=before).order_by("-pk")[: limit + 1])
            more = len(rows) > limit
            rows = rows[:limit][::-1]
        return Response(
            {
                "results": serializers.LogSerializer(rows, many=True).data,
                "last_log_id": rows[-1].pk if rows else since,
                "more": more,
                "finished": job.is_finished,
            }
        )


def _log_id(value: Any) -> int:
    """A log id cursor: below 0 counts as 0, beyond the database's integers as their end."""
    return min(MAX_LOG_ID, max(0, int(value)))


class LogViewSet(viewsets.ReadOnlyModelViewSet[Log], _ViewSet):
    serializer_class = serializers.LogSerializer
    permission_classes = [OwnerOrModelPermission]
    filterset_fields = ["job", "stream"]
    ordering_fields = ["id", "time"]
    search_fields = ["content"]

    def get_queryset(self) -> QuerySet[Log]:
        return Log.objects.visible_to(self.request.user).select_related("job").order_by("id")


class ResultViewSet(viewsets.ReadOnlyModelViewSet[Result], _ViewSet):
    serializer_class = serializers.ResultSerializer
    permission_classes = [OwnerOrModelPermission]
    filterset_fields = ["job", "remote_filename"]
    ordering_fields = ["id", "remote_filename", "size", "created"]
    search_fields = ["remote_filename"]
    # A client generated from the schema asks for the file with
    # "Accept: application/octet-stream", a type no renderer has: the file is sent
    # whatever the client accepts (and an error, as JSON).
    any_accept_actions = frozenset({"download"})

    def get_queryset(self) -> QuerySet[Result]:
        results = Result.objects.visible_to(self.request.user).select_related("job")
        return results.order_by("job", "remote_filename", "id")

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"], schema=APIAutoSchema())
    def download(self, request: Request, pk: Any = None) -> FileResponse:
        """The file itself, to the owner of its job, or with the view permission on results."""
        result = self.get_object()
        if not result.local_file:
            raise Http404("This result has no file.")
        return FileResponse(
            result.local_file.open("rb"),
            as_attachment=True,
            filename=posixpath.basename(result.remote_filename),
        )
