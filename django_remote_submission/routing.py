"""WebSocket URL patterns, ready to mount in a project's ASGI application.

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django_remote_submission.routing import websocket_urlpatterns

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": AllowedHostsOriginValidator(
        AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    ),
})
"""

from django.urls import path

from django_remote_submission.consumers import JobLogConsumer, JobUserConsumer

websocket_urlpatterns = [
    path("ws/job-user/", JobUserConsumer.as_asgi(), name="drs-ws-job-user"),
    path("ws/job-log/<int:job_pk>/", JobLogConsumer.as_asgi(), name="drs-ws-job-log"),
    # The 2.x README's addresses, without the ws/ prefix.
    path("job-user/", JobUserConsumer.as_asgi()),
    path("job-log/<int:job_pk>/", JobLogConsumer.as_asgi()),
]
