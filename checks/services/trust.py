"""Trust: which address a node may be reached at (the target policy), its host key (trust on first use), and
the credential and transport to log in with. Used by the node audit and the connectivity matrix alike."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from inventory.choices import HostKeyState, Transport
from inventory.crypto import SecretUnreadable
from inventory.models import HostKey, Node
from portal.faults import retry_db_write

from ..targets import target_addresses
from ..transport import ConnectFailure, LocalTransport, SshTransport, Target


def host_key_verifier(node: Node):
    """Trust on first use: the first key a node offers is trusted; a different one later is refused (and waits
    under Host keys in the admin) before anything runs."""

    def verify(key_type: str, fingerprint: str, key_b64: str) -> None:
        # The usual case, a key already trusted, is one read, outside the process's SQLite write turn (it waited
        # there behind other nodes' writes); anything else is written with retries: a database that is locked or
        # full for a moment delays the login instead of failing the node.
        try:
            if HostKey.objects.filter(
                node=node, state=HostKeyState.TRUSTED, key_type=key_type, fingerprint=fingerprint
            ).exists():
                return
        except DatabaseError:
            pass  # tried again below, with retries
        retry_db_write(
            lambda: _verify(key_type, fingerprint, key_b64),
            budget=min(30.0, settings.PREFLIGHT_DB_WRITE_BUDGET),
            what=f"checking the host key of {node.name}",
        )

    def _verify(key_type: str, fingerprint: str, key_b64: str) -> None:
        known = list(HostKey.objects.filter(node=node))
        trusted = [k for k in known if k.state == HostKeyState.TRUSTED]
        if any(k.key_type == key_type and k.fingerprint == fingerprint for k in trusted):
            return
        if not trusted:
            HostKey.objects.create(
                node=node,
                key_type=key_type,
                fingerprint=fingerprint,
                public_key=key_b64,
                state=HostKeyState.TRUSTED,
                accepted_at=timezone.now(),
            )
            return
        HostKey.objects.get_or_create(
            node=node,
            key_type=key_type,
            fingerprint=fingerprint,
            defaults={"public_key": key_b64, "state": HostKeyState.PENDING},
        )
        was = ", ".join(f"{k.key_type} {k.fingerprint}" for k in trusted)
        raise ConnectFailure(
            "host key changed",
            f"host key changed: {node.address} offered {key_type} {fingerprint}, trusted is {was}. Nothing was run. "
            "If the change is expected (reinstall), accept the new key under Host keys in the admin.",
        )

    return verify


def login_target(node: Node, address: str | None = None) -> Target:
    """How to log in to `node`. `address`: one already resolved and checked by target_address (the matrix resolves
    each node once for its listener and prober); otherwise the node's name is resolved and checked here, once."""
    alternatives: tuple[str, ...] = ()
    if node.transport != Transport.LOCAL and address is None:
        address, *others = target_addresses(node.address, node.ssh_port)
        alternatives = tuple(others)
    credential = node.credential
    if credential is None and node.transport != Transport.LOCAL:
        raise ConnectFailure("credential", "the node has no credential: set a key or a password")
    try:
        password = credential.secret if credential and credential.kind == "password" else ""
        key = credential.secret if credential and credential.kind == "private_key" else ""
        passphrase = credential.passphrase if credential and key else ""
    except SecretUnreadable as exc:
        raise ConnectFailure("credential", str(exc)) from None
    return Target(
        address=address or node.address,
        alternatives=alternatives,
        port=node.ssh_port,
        user=node.ssh_user,
        password=password,
        private_key=key,
        passphrase=passphrase,
        verify_host_key=host_key_verifier(node),
    )


def transport_for(node: Node) -> LocalTransport | SshTransport:
    if node.transport == Transport.LOCAL:
        return LocalTransport()
    return SshTransport(
        connect_timeout=settings.PREFLIGHT_SSH_CONNECT_TIMEOUT, auth_timeout=settings.PREFLIGHT_SSH_AUTH_TIMEOUT
    )
