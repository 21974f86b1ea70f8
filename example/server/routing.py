"""The example's websocket routes: the app's, as a project mounts them (see server/asgi.py)."""

from django_remote_submission.routing import websocket_urlpatterns

__all__ = ["websocket_urlpatterns"]
