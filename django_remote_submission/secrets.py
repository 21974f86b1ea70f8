"""Seal secrets (passwords, passphrases) for their trip through the Celery broker.

A sealed value is a Fernet token: encrypted and authenticated with a key derived from
``REMOTE_SUBMISSION_SECRET_KEY``, or else from Django's ``SECRET_KEY`` (and its
``SECRET_KEY_FALLBACKS``, so rotating the key does not break queued tasks).
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from django_remote_submission.conf import conf
from django_remote_submission.exceptions import SecretError

MARKER = "__drs_sealed__"
MASK = "********"


def _fernet(material: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"django-remote-submission",
        info=b"broker secrets v1",
    ).derive(material.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _keys() -> MultiFernet:
    if conf.SECRET_KEY:
        materials = [conf.SECRET_KEY]
    else:
        materials = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(m) for m in materials])


def seal(value: str) -> dict[str, str]:
    """A JSON-friendly sealed form of ``value``."""
    return {MARKER: _keys().encrypt(value.encode()).decode()}


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {MARKER}


def unseal(value: Any) -> Any:
    """The clear value of a sealed one; anything else is returned as it is."""
    if not is_sealed(value):
        return value
    try:
        return _keys().decrypt(value[MARKER].encode()).decode()
    except InvalidToken:
        raise SecretError(
            "A secret sent to the worker could not be decrypted: the worker and the web "
            "process must share SECRET_KEY (or REMOTE_SUBMISSION_SECRET_KEY)."
        ) from None
