"""Secrets at rest: Fernet tokens (cryptography's MultiFernet), keyed from settings.PREFLIGHT_FERNET_KEYS.

The first key encrypts and every key decrypts, so an operator rotates by prepending a new key and re-saving.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with any configured key (wrong or rotated-away key)."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("PREFLIGHT_FERNET_KEYS is empty: set at least one Fernet key")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"PREFLIGHT_FERNET_KEYS holds an invalid Fernet key: {exc}") from exc


def _current() -> MultiFernet:
    return _fernet(tuple(k.strip() for k in settings.PREFLIGHT_FERNET_KEYS if k.strip()))


def secret_encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _current().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("stored secret cannot be decrypted with the configured PREFLIGHT_FERNET_KEYS") from exc


def encrypted_property(column: str) -> property:
    """A model attribute that reads and writes the Fernet-encrypted text field `column`: `secret =
    encrypted_property("secret_encrypted")`. A real `property`, so Django's `Model(secret=...)` accepts it."""

    def read(instance: object) -> str:
        return secret_decrypt(getattr(instance, column))

    def write(instance: object, value: str) -> None:
        setattr(instance, column, secret_encrypt(value))

    return property(read, write, doc=f"the decrypted {column}")
