"""SSH host keys as text: parsing OpenSSH key lines and computing their fingerprints."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class HostKey:
    """A public host key: its type (``ssh-ed25519``) and its base64 blob."""

    key_type: str
    blob: str

    @classmethod
    def parse(cls, line: str) -> HostKey:
        """Read ``"ssh-ed25519 AAAA... [comment]"`` or a known_hosts line (host first)."""
        fields = line.split()
        for index in range(len(fields) - 1):
            candidate = fields[index]
            if candidate.startswith(("ssh-", "ecdsa-", "sk-")):
                blob = fields[index + 1]
                try:
                    base64.b64decode(blob, validate=True)
                except (binascii.Error, ValueError):
                    break
                return cls(candidate, blob)
        raise ValueError(
            "Not an SSH public key: expected 'TYPE BASE64' such as 'ssh-ed25519 AAAA...'."
        )

    @property
    def fingerprint(self) -> str:
        """The SHA256 fingerprint, written as OpenSSH writes it."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    @property
    def line(self) -> str:
        return f"{self.key_type} {self.blob}"

    def __str__(self) -> str:
        return f"{self.key_type} {self.fingerprint}"


def known_hosts_name(hostname: str, port: int) -> str:
    """How known_hosts files name a host: ``host`` on port 22, else ``[host]:port``."""
    return hostname if port == 22 else f"[{hostname}]:{port}"
