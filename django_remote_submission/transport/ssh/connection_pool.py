"""The pool of SSH connections shared by one process's transports, and their sessions' count."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paramiko

from django_remote_submission.conf import conf
from django_remote_submission.exceptions import ConnectionFailed

logger = logging.getLogger(__name__)

#: Seconds an unused pooled connection stays open for the next job on the same host.
IDLE_SECONDS = 60.0
#: The most sessions opened at once on one pooled connection. A running job keeps three
#: (two ``tail -f`` and SFTP) and opens one more for each short command. OpenSSH allows 10
#: (``MaxSessions``) and lets go of a closed session only a moment later, once it has read
#: the close and the command has ended: 8 leaves a margin for that. A server that allows
#: fewer refuses a session, and the pool then opens no more on that connection than it
#: had open.
SESSIONS_PER_CONNECTION = 8
#: Refusals in a row, while fewer sessions are open than were before, after which a
#: connection is taken to allow no more than are open.
REFUSALS_TO_LEARN = 3


@dataclass(eq=False)
class _Connection:
    client: paramiko.SSHClient
    #: Transports holding it.
    users: int = 0
    #: Sessions taken on it: those open and those being opened.
    sessions: int = 0
    #: Sessions open on it, and the most it ever had open at once.
    opened: int = 0
    peak: int = 0
    #: The most sessions taken on it at once: lowered to what the server allows.
    room: int = SESSIONS_PER_CONNECTION
    #: Refusals in a row, and until when it is not asked again after one.
    refusals: int = 0
    resting_until: float = 0.0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    @property
    def free(self) -> int:
        return self.room - self.sessions

    def ready(self, now: float) -> bool:
        return self.free > 0 and now >= self.resting_until


class ConnectionPool:
    """SSH connections shared by the transports of one process.

    Transports that log in to the same account with the same credentials share their
    connections (SSH multiplexes their sessions), at most ``SESSIONS_PER_CONNECTION``
    sessions on each, fewer where the server refused one; beyond that a session is opened
    on another connection of the same account. At most ``MAX_CONNECTIONS_PER_HOST``
    connections per host:port are open at once; beyond that a transport waits for a free
    one instead of opening a connection storm. An unused connection stays open for
    ``IDLE_SECONDS`` so that the next job on the host skips the handshake.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._connections: dict[tuple[Any, ...], list[_Connection]] = {}
        self._opening: set[tuple[Any, ...]] = set()

    def _per_host(self, host: tuple[str, int]) -> int:
        count = sum(len(group) for key, group in self._connections.items() if key[:2] == host)
        return count + sum(1 for key in self._opening if key[:2] == host)

    def _remove(self, key: tuple[Any, ...], connection: _Connection) -> None:
        group = self._connections.get(key, [])
        if connection in group:
            group.remove(connection)
            if not group:
                del self._connections[key]
        connection.client.close()

    def _evict(self, host: tuple[str, int] | None = None, *, expired_only: bool) -> bool:
        now = time.monotonic()
        for key, group in list(self._connections.items()):
            if host is not None and key[:2] != host:
                continue
            for connection in group:
                if connection.users:
                    continue
                if expired_only and now - connection.last_used < IDLE_SECONDS and connection.alive:
                    continue
                self._remove(key, connection)
                return True
        return False

    def lease(
        self, key: tuple[Any, ...], connect: Callable[[], paramiko.SSHClient], wait: float
    ) -> _Connection:
        """A connection of ``key`` for one more transport: the one with the most room for
        sessions, or a new one. Give it back with ``release``."""
        return self._acquire(key, connect, wait, held=None)

    def take_session(
        self,
        key: tuple[Any, ...],
        connect: Callable[[], paramiko.SSHClient],
        wait: float,
        held: list[_Connection],
    ) -> _Connection:
        """A connection with room for one more session, which is counted as taken: one of
        the transport's ``held`` connections if one has room, else another, leased and
        added to ``held``. Report the outcome with ``opened_session`` or
        ``refused_session``, and ``end_session`` once it is closed."""
        return self._acquire(key, connect, wait, held=held)

    def _acquire(
        self,
        key: tuple[Any, ...],
        connect: Callable[[], paramiko.SSHClient],
        wait: float,
        held: list[_Connection] | None,
    ) -> _Connection:
        host = (key[0], key[1])
        session = int(held is not None)
        deadline = time.monotonic() + wait
        with self._condition:
            while True:
                while self._evict(expired_only=True):
                    pass
                for connection in list(self._connections.get(key, [])):
                    if not connection.alive:
                        self._remove(key, connection)
                now = time.monotonic()
                for connection in held or []:
                    if connection.alive and connection.ready(now):
                        connection.sessions += 1
                        return connection
                group = self._connections.get(key, [])
                ready = [c for c in group if c.ready(now)]
                if ready:
                    connection = max(ready, key=lambda c: c.free)
                    connection.users += 1
                    connection.sessions += session
                    if held is not None:
                        held.append(connection)
                    return connection
                # One that refused a session a moment ago soon has room again: cheaper
                # than a new connection.
                resting = [c.resting_until for c in group if c.free > 0]
                if not resting and key not in self._opening:
                    limit = conf.MAX_CONNECTIONS_PER_HOST
                    if self._per_host(host) < limit or self._evict(host, expired_only=False):
                        self._opening.add(key)
                        break
                remaining = deadline - now
                if remaining <= 0:
                    raise ConnectionFailed(
                        f"All {conf.MAX_CONNECTIONS_PER_HOST} connections to "
                        f"{host[0]}:{host[1]} allowed by REMOTE_SUBMISSION_MAX_CONNECTIONS_"
                        f"PER_HOST stayed busy for {wait:g} s."
                    )
                self._condition.wait(min([remaining, *(t - now for t in resting)]))
        try:
            client = connect()
        except BaseException:
            with self._condition:
                self._opening.discard(key)
                self._condition.notify_all()
            raise
        connection = _Connection(client, users=1, sessions=session)
        with self._condition:
            self._opening.discard(key)
            self._connections.setdefault(key, []).append(connection)
            self._condition.notify_all()
        if held is not None:
            held.append(connection)
        return connection

    def opened_session(self, connection: _Connection) -> None:
        with self._condition:
            connection.opened += 1
            connection.peak = max(connection.peak, connection.opened)
            connection.refusals = 0

    def refused_session(self, key: tuple[Any, ...], connection: _Connection) -> bool:
        """The server refused the session taken on ``connection``. False if it refused a
        connection's first session: it allows none."""
        with self._condition:
            connection.sessions -= 1
            self._condition.notify_all()
            if not connection.peak and not connection.sessions:
                return False
            connection.refusals += 1
            if connection.opened < connection.peak and connection.refusals <= REFUSALS_TO_LEARN:
                # It had more open before: sessions closed here that the server has not
                # let go of yet (it does so after it has read the close, not at once).
                pause = 0.05 * 2**connection.refusals
                connection.resting_until = time.monotonic() + pause
            else:
                connection.room = connection.opened
                connection.refusals = 0
                logger.info(
                    "%s@%s:%s allows %s sessions on a connection: using another for more",
                    key[2],
                    key[0],
                    key[1],
                    connection.room,
                )
            return True

    def end_session(self, connection: _Connection, *, opened: bool = True) -> None:
        with self._condition:
            connection.sessions -= 1
            connection.opened -= int(opened)
            self._condition.notify_all()

    def release(self, key: tuple[Any, ...], connection: _Connection) -> None:
        """A transport gives back a connection it leased."""
        with self._condition:
            connection.users -= 1
            connection.last_used = time.monotonic()
            if not connection.alive:
                self._remove(key, connection)
            self._condition.notify_all()

    def discard(self, hostname: str, port: int, username: str) -> None:
        """Close the idle connections of one account, e.g. after its keys changed."""
        with self._condition:
            for key, group in list(self._connections.items()):
                if key[:3] != (hostname, port, username):
                    continue
                for connection in list(group):
                    if not connection.users:
                        self._remove(key, connection)
            self._condition.notify_all()

    def close_all(self) -> None:
        with self._condition:
            for group in self._connections.values():
                for connection in group:
                    connection.client.close()
            self._connections.clear()
            self._condition.notify_all()

    def forget_after_fork(self) -> None:
        """In a forked child (a prefork worker's pool process): the parent's connections
        belong to the parent, whose threads serve them; start empty, and leave their
        sockets alone."""
        self._condition = threading.Condition()
        self._connections = {}
        self._opening = set()

    def __len__(self) -> int:
        return sum(len(group) for group in self._connections.values())


pool = ConnectionPool()
atexit.register(pool.close_all)
os.register_at_fork(after_in_child=pool.forget_after_fork)
