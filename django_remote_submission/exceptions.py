"""The app's exceptions, all importable from here; messages are written for the person who
must act on them. Each is a ``RemoteSubmissionError``."""


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


class ServerGone(ConnectionLost):
    """The connection was lost and could not be made again in time: the program may
    still run on the server."""


class LoginRefused(RemoteSubmissionError):
    """The site's login policy does not let this user run jobs as this login."""


class LeaseLost(RemoteSubmissionError):
    """Another worker took the job over (this one was presumed dead): stop following it
    without writing anything more."""


class SecretError(RemoteSubmissionError):
    """A sealed secret could not be opened (another key, or it was tampered with)."""


class JobCanceled(RemoteSubmissionError):
    """The job was canceled while it ran: its program was stopped."""


class HandedOver(RemoteSubmissionError):
    """The task that launched the job handed it to its worker host's follower, which
    finishes it and stores its outcome for ``.get()``."""


class NotClaimed(RemoteSubmissionError):
    """The job was not queued when this run wanted it: another worker holds it, it was
    canceled, or it ended."""


class ResourcesRefused(RemoteSubmissionError, ValueError):
    """What a job asks of its server is more than the server allows, or can't be asked
    there: refused before anything is sent, each problem in words."""
