"""The app's exception hierarchy; messages are written for the person who must act on them."""


class RemoteSubmissionError(Exception):
    """Base class of every error this app raises on purpose."""


class TransportError(RemoteSubmissionError):
    """Talking to the server, or to this host in local mode, failed."""


class ConnectionFailed(TransportError):
    """The server could not be reached (DNS, refused, unreachable, timed out)."""


class ConnectionLost(ConnectionFailed):
    """A connection that was open is gone (closed by the server, reset, cut): what was
    started over it may still be running on the server."""


class AuthenticationFailed(TransportError):
    """The server refused the credentials."""


class HostKeyRejected(TransportError):
    """The server's host key is unknown or does not match the pinned key."""


class CommandTimedOut(TransportError):
    """A command did not finish in the time it was given."""


class LoginRefused(RemoteSubmissionError):
    """The site's login policy does not let this user run jobs as this login."""


class LeaseLost(RemoteSubmissionError):
    """Another worker took the job over (this one was presumed dead): stop following it
    without writing anything more."""
