"""Fetch a server's SSH host key, show its fingerprint and pin it on the Server."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_remote_submission.exceptions import TransportError
from django_remote_submission.models import Server
from django_remote_submission.transport.hostkeys import HostKey
from django_remote_submission.transport.ssh import fetch_host_key


class Command(BaseCommand):
    help = (
        "Fetch the SSH host key of a server, print its fingerprint and, once you confirm "
        "it matches what the server's administrator gave you, pin it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("server", help="The Server's id or its exact title.")
        parser.add_argument("--yes", action="store_true", help="Pin without asking (for scripts).")
        parser.add_argument(
            "--key",
            help="Pin this key ('ssh-ed25519 AAAA...') instead of fetching it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        server = self._server(options["server"])
        if options["key"]:
            try:
                key = HostKey.parse(options["key"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        else:
            try:
                key = fetch_host_key(server.hostname, server.port)
            except TransportError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(f"{server}: {key.key_type} {key.fingerprint}")
        if server.host_key:
            pinned = HostKey.parse(server.host_key)
            if pinned == key:
                self.stdout.write("This key is already pinned.")
                return
            self.stdout.write(
                self.style.WARNING(
                    f"It replaces the pinned key {pinned.key_type} {pinned.fingerprint}."
                )
            )
        if not options["yes"]:
            answer = input("Pin this key? Type 'yes' to confirm: ")
            if answer.strip().lower() != "yes":
                raise CommandError("Not pinned.")
        server.host_key = key.line
        server.save(update_fields=["host_key", "modified"])
        self.stdout.write(self.style.SUCCESS(f"Pinned the host key of {server}."))

    def _server(self, value: str) -> Server:
        servers = Server.objects.filter(title=value)
        if value.isdigit():
            servers = Server.objects.filter(pk=int(value)) | servers
        found = list(servers[:2])
        if len(found) != 1:
            reason = "No server" if not found else "More than one server"
            raise CommandError(f"{reason} has the id or title {value!r}.")
        return found[0]
