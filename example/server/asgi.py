"""The example's ASGI application: Django for HTTP, the app's consumers for websockets.

Run it with `daphne server.asgi:application` from example/ (make demo does).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")

from django.core.asgi import get_asgi_application

# Set Django up before anything imports models.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from server.routing import websocket_urlpatterns  # noqa: E402

# The demo has no web server in front of it, so the ASGI server serves the static files.
# Behind nginx or a CDN, set EXAMPLE_SERVE_STATIC=off and run collectstatic instead.
http_application = (
    ASGIStaticFilesHandler(django_application)
    if settings.EXAMPLE_SERVE_STATIC
    else django_application
)

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
