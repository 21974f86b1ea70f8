"""Deploy and remove a public key in the remote account's ``~/.ssh/authorized_keys``."""

from __future__ import annotations

import os
from pathlib import Path

from django_remote_submission.exceptions import RemoteSubmissionError, TransportError
from django_remote_submission.transport.base import Transport
from django_remote_submission.transport.hostkeys import HostKey

#: Where the worker's public key is looked for when none is named, in this order.
DEFAULT_PUBLIC_KEYS = ("~/.ssh/id_ed25519.pub", "~/.ssh/id_ecdsa.pub", "~/.ssh/id_rsa.pub")

# The key arrives on standard input, never in the command line (where `ps` would show
# it). Lines are matched on the key's base64 blob, so the same key with another comment
# or with options in front of it counts as present.
_READ_KEY = r"""
umask 077
key=$(cat)
blob=$(printf '%s\n' "$key" | awk '{
  for (i = 1; i < NF; i++) if ($i ~ /^(ssh-|ecdsa-|sk-)/) { print $(i + 1); exit }
}')
[ -n "$blob" ] || { echo "not a public key" >&2; exit 2; }
"""

_DEPLOY = (
    _READ_KEY
    + r"""
mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" || exit 1
file="$HOME/.ssh/authorized_keys"
[ -e "$file" ] || : > "$file" || exit 1
chmod 600 "$file" || exit 1
if grep -qF -- "$blob" "$file"; then echo present; exit 0; fi
if [ -s "$file" ] && [ -n "$(tail -c 1 "$file")" ]; then echo >> "$file"; fi
printf '%s\n' "$key" >> "$file" && echo added
"""
)

_REMOVE = (
    _READ_KEY
    + r"""
file="$HOME/.ssh/authorized_keys"
[ -e "$file" ] || { echo absent; exit 0; }
grep -qF -- "$blob" "$file" || { echo absent; exit 0; }
tmp="$HOME/.ssh/.authorized_keys.drs.$$"
grep -vF -- "$blob" "$file" > "$tmp"
status=$?
if [ $status -gt 1 ]; then rm -f "$tmp"; exit 1; fi
# Rewrite in place: the file keeps its inode, owner and mode.
cat "$tmp" > "$file"; status=$?
rm -f "$tmp"
[ $status -eq 0 ] && echo removed
"""
)


def find_public_key(public_key_filename: str | os.PathLike[str] | None = None) -> str:
    """The public key line to deploy: from the named file, or the worker's default key.

    A private key path is accepted too when its ``.pub`` sits beside it.
    """
    if public_key_filename is not None:
        candidates = [Path(public_key_filename).expanduser()]
        if candidates[0].suffix != ".pub":
            candidates.insert(0, Path(f"{candidates[0]}.pub"))
    else:
        candidates = [Path(name).expanduser() for name in DEFAULT_PUBLIC_KEYS]
    for path in candidates:
        if path.is_file():
            line = path.read_text().strip()
            HostKey.parse(line)  # refuse anything that is not a public key
            return line
    names = ", ".join(str(path) for path in candidates)
    raise RemoteSubmissionError(
        f"No public key found (looked for {names}). Create one with ssh-keygen, "
        "or name it with public_key_filename."
    )


def deploy_key(transport: Transport, public_key: str) -> bool:
    """Add the key to the remote authorized_keys unless it is there; True if it was added."""
    return _edit(transport, _DEPLOY, public_key, "add the key to", b"added")


def remove_key(transport: Transport, public_key: str) -> bool:
    """Remove every line carrying this key from the remote authorized_keys; True if any."""
    return _edit(transport, _REMOVE, public_key, "remove the key from", b"removed")


def _edit(transport: Transport, script: str, public_key: str, doing: str, done: bytes) -> bool:
    HostKey.parse(public_key)  # refuse anything that is not a public key
    result = transport.run_shell(script, input=public_key.strip().encode() + b"\n", timeout=60)
    if not result.ok:
        raise TransportError(
            f"Could not {doing} ~/.ssh/authorized_keys on {transport.description}: "
            f"{result.reason()}"
        )
    return result.stdout.strip() == done
