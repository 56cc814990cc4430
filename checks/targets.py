"""Where audits may connect: resolve a node's name once, check that address against PREFLIGHT_TARGET_NETWORKS, and
hand the caller that very address to connect to, so no second DNS answer (rebinding) can move the connection.

The SSH login of a node audit, the matrix's listener login and the matrix's prober targets all take their address
from `target_address`; nothing downstream is given a name to resolve.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from django.conf import settings
from django.utils.module_loading import import_string

from .transport import ConnectFailure


def system_resolve(host: str, port: int) -> list[str]:
    """The operating system's resolver: every address `host` has, in its order."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def resolver() -> Callable[[str, int], list[str]]:
    return import_string(settings.PREFLIGHT_TARGET_RESOLVER)


def networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """The allowed networks, or None when any address is allowed (`*`, or an empty list under DEBUG)."""
    configured = [n.strip() for n in settings.PREFLIGHT_TARGET_NETWORKS if n.strip()]
    if not configured or "*" in configured:
        return None
    return [ipaddress.ip_network(n, strict=False) for n in configured]


def target_address(address: str, port: int) -> str:
    """The one IP address to connect to for `address` (an IP or a name), checked against the policy: the first of
    target_addresses (the matrix listens and connects at one address per node)."""
    return target_addresses(address, port)[0]


def target_addresses(address: str, port: int) -> list[str]:
    """Every IP address `address` (an IP or a name) may be reached at, checked against the policy, in the
    resolver's order (an IPv6 answer usually first).

    A name is resolved exactly once, here; the caller connects to these addresses and to nothing else. Raises
    ConnectFailure ("dns" or "policy") before anything is sent.
    """
    allowed = networks()
    try:
        candidates = [ipaddress.ip_address(address)]
    except ValueError:
        if allowed is not None and not settings.PREFLIGHT_TARGET_ALLOW_NAMES:
            raise ConnectFailure(
                "policy",
                f"{address} is a name, and this portal only audits IP addresses (PREFLIGHT_TARGET_ALLOW_NAMES)",
            ) from None
        try:
            answers = resolver()(address, port)
        except OSError as exc:
            raise ConnectFailure("dns", f"cannot resolve {address}: {exc}") from None
        candidates = []
        for answer in answers:
            try:
                candidates.append(ipaddress.ip_address(str(answer).split("%", 1)[0]))
            except ValueError:
                continue
        if not candidates:
            raise ConnectFailure("dns", f"cannot resolve {address}: no address in the answer") from None
    inside = [a for a in candidates if allowed is None or any(a in network for network in allowed)]
    if not inside:
        shown = ", ".join(dict.fromkeys(str(a) for a in candidates))
        named = f"{address} ({shown})" if shown != address else address
        raise ConnectFailure(
            "policy",
            f"{named} is outside the networks this portal may audit "
            f"({', '.join(settings.PREFLIGHT_TARGET_NETWORKS)}); nothing was sent",
        )
    return list(dict.fromkeys(str(a) for a in inside))
