"""The webhook target policy: https by default; never a loopback, link-local, cloud metadata, unspecified,
multicast or reserved address unless its network is in PREFLIGHT_WEBHOOK_ALLOW_NETWORKS. A name is resolved here,
every answer checked, and the caller connects to the returned address (so a DNS answer that changes between the
check and the connection cannot move the request: DNS rebinding). Checked when an endpoint is saved and again at
every send."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

# Cloud instance metadata services (AWS/GCP/Azure IMDS and OpenStack, AWS IPv6, ECS task metadata, Alibaba, Azure
# wire server): credentials live there, whatever network they sit in.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "168.63.129.16")
)


class WebhookRefused(Exception):
    """The URL or the address it resolves to is not allowed; the message says why. Nothing was sent."""


@dataclass(frozen=True)
class WebhookTarget:
    scheme: str
    host: str  # as written in the URL (the Host header and the TLS server name)
    port: int
    path: str  # path and query
    address: str  # the checked IP address to connect to


def _allowed_networks():
    return [ipaddress.ip_network(n.strip(), strict=False) for n in settings.PREFLIGHT_WEBHOOK_ALLOW_NETWORKS if n]


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Why the policy refuses this address ("" when it does not)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _allowed_networks()):
        return ""
    if address in METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "not a unicast address"
    return ""


def webhook_target(url: str, *, resolve=None) -> WebhookTarget:
    """Check `url` and resolve it once; raise WebhookRefused naming the reason."""
    parts = urlsplit(url or "")
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise WebhookRefused(f"{url!r} is not an http(s) URL")
    if scheme == "http" and not settings.PREFLIGHT_WEBHOOK_ALLOW_HTTP:
        raise WebhookRefused("webhooks must use https (PREFLIGHT_WEBHOOK_ALLOW_HTTP allows http)")
    if parts.username or parts.password:
        raise WebhookRefused("a webhook URL must not carry a user name or password")
    host = parts.hostname or ""
    if not host:
        raise WebhookRefused(f"{url!r} names no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused(f"{url!r} has an invalid port") from None
    try:
        answers = [ipaddress.ip_address(host)]
    except ValueError:
        if resolve is None:
            from ..targets import resolver

            resolve = resolver()
        try:
            answers = [ipaddress.ip_address(str(a).split("%", 1)[0]) for a in resolve(host, port)]
        except (OSError, ValueError) as exc:
            raise WebhookRefused(f"cannot resolve {host}: {exc}") from None
        if not answers:
            raise WebhookRefused(f"cannot resolve {host}: no address") from None
    for answer in answers:  # every answer must be allowed: a name with one bad answer is refused whole
        why = address_refusal(answer)
        if why:
            shown = host if str(answer) == host else f"{host} ({answer})"
            raise WebhookRefused(
                f"{shown} is {why}: webhooks may not go there (PREFLIGHT_WEBHOOK_ALLOW_NETWORKS); nothing was sent"
            )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return WebhookTarget(scheme, host, port, path, str(answers[0]))
