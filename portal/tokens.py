"""Personal API tokens: create (the clear text once), revoke, and authenticate a bearer token."""

from __future__ import annotations

import hashlib
import secrets

from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from .faults import db_fault
from .models import ApiToken


def _token_digest(token: str) -> str:
    # Tokens carry 256 bits of randomness, so a plain SHA-256 is enough (no slow hash needed to resist guessing).
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user, name: str, expires=None) -> tuple[ApiToken, str]:
    """Create a token and return it with its clear text, which is never stored and cannot be shown again."""
    prefix = secrets.token_hex(4)
    token = f"pf_{prefix}_{secrets.token_urlsafe(32)}"
    record = ApiToken.objects.create(user=user, name=name, prefix=prefix, digest=_token_digest(token), expires=expires)
    return record, token


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked__isnull=True).update(revoked=timezone.now())


def api_token_authenticate(raw: str):
    """The active user behind a bearer token, or None (unknown, revoked, expired, or the user is inactive)."""
    if not raw or not raw.startswith("pf_") or len(raw) > 200:
        return None
    now = timezone.now()
    record = (
        ApiToken.objects.select_related("user")
        .filter(digest=_token_digest(raw), revoked__isnull=True)
        .filter(Q(expires__isnull=True) | Q(expires__gt=now))
        .first()
    )
    if record is None or not record.user.is_active:
        return None
    if record.last_used is None or (now - record.last_used).total_seconds() > 60:
        try:
            ApiToken.objects.filter(pk=record.pk).update(last_used=now)
        except DatabaseError as exc:  # a full or locked database must not turn reads away: it is only a note
            if db_fault(exc) is None:
                raise
    return record.user
