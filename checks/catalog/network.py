"""`network.proxy` and `network.address`: what a node's own configuration does to the paths GPUStack uses (the
paths themselves are proven by the connectivity matrix, checks/services/network.py)."""

import ipaddress

from ..node_facts import NodeFacts
from ..remediation import fix_address, fix_no_proxy
from ..spec import NodeContext, ProfileSpec
from .registry import ERROR, FAIL, PASS, WARN
from .result import RuleResult, register

# Docker's own bridges: their addresses are never the node's, and NCCL skips docker* itself.
_DOCKER_INTERFACES = ("docker", "br-", "veth")
_DOCKER_SOURCES = ("docker info", "Docker service environment (systemd)", "/etc/docker/daemon.json")


def _bypassed(address: str, no_proxy: list[str]) -> bool:
    """Whether NO_PROXY lists `address` the way GPUStack's HTTP client matches it: literally (or `*`)."""
    entries = {entry.strip().lower().strip("[]") for entry in no_proxy}
    return "*" in entries or address.lower() in entries


@register("network.proxy")
def evaluate_proxy(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    active = [p for p in facts.proxies if p.active]
    lines = [
        f"{p.source}: HTTP_PROXY={p.http or '-'} HTTPS_PROXY={p.https or '-'} NO_PROXY={','.join(p.no_proxy) or '-'}"
        for p in facts.proxies
    ]
    evidence = "\n".join(lines) or "no proxy setting in docker info, the Docker service, daemon.json, /etc/environment"
    if not active:
        return [RuleResult("network.proxy", PASS, "no HTTP(S) proxy configured", evidence)]
    needed = list(dict.fromkeys(a for a in (context.server_address, context.address) if a))
    failing: dict[str, list[str]] = {}
    for setting in active:
        missing = [address for address in needed if not _bypassed(address, setting.no_proxy)]
        if missing:
            failing[setting.source] = missing
    if not failing:
        return [
            RuleResult(
                "network.proxy",
                PASS,
                f"proxy configured, and NO_PROXY lists {', '.join(needed) or 'the cluster'}",
                evidence,
            )
        ]
    missing_all = list(dict.fromkeys(a for addresses in failing.values() for a in addresses))
    sources = list(failing)
    parts = [f"{source} lacks {', '.join(addresses)}" for source, addresses in failing.items()]
    current = ",".join(next((p.no_proxy for p in active if p.source in failing and p.no_proxy), []))
    return [
        RuleResult(
            "network.proxy",
            FAIL,
            f"HTTP(S) proxy set but NO_PROXY does not list {', '.join(missing_all)}: " + "; ".join(parts),
            evidence,
            fix_no_proxy(
                missing=missing_all,
                docker=any(source in _DOCKER_SOURCES for source in sources),
                sources=sources,
                current=current,
            ),
        )
    ]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@register("network.address")
def evaluate_address(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    if facts.addresses is None:
        return [
            RuleResult(
                "network.address",
                ERROR,
                "could not list the node's addresses (`ip` missing or failed)",
                facts.addresses_output or "ip: not found",
            )
        ]
    evidence = f"$ ip -o addr show\n{facts.addresses_output}"
    if facts.route_output:
        evidence += f"\n\n$ ip -o route get {context.server_address}\n{facts.route_output}"
    ipv4 = facts.global_ipv4()
    if not ipv4:
        return [
            RuleResult(
                "network.address",
                FAIL,
                "no global IPv4 address: GPUStack workers cannot register over IPv6 only (issue 5474)",
                evidence,
                fix_address(problems=["Give this node a global IPv4 address on the network the server reaches."]),
            )
        ]
    warnings, advice = [], []
    is_server_only = context.roles == ("server",)
    if facts.route_source and not is_server_only and _is_ip(context.address) and facts.route_source != context.address:
        warnings.append(
            f"the node reaches the server {context.server_address} from {facts.route_source}, "
            f"not from its inventory address {context.address}"
        )
        advice.append(
            f"GPUStack registers the worker with the address it connects from ({facts.route_source}), which the "
            f"server may not reach (a Docker bridge or WSL address; issues 1366, 3795): start the worker with "
            f"`--worker-ip {context.address}` or fix the route."
        )
    real = [a for a in ipv4 if not a.interface.startswith(_DOCKER_INTERFACES)]
    pinned = {"NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"} <= set(facts.socket_ifname)
    if len(real) > 1 and not pinned:
        names = ", ".join(f"{a.interface} ({a.address})" for a in real)
        warnings.append(f"{len(real)} global IPv4 interfaces ({names}) and no NCCL_SOCKET_IFNAME")
        advice.append(
            "Set `NCCL_SOCKET_IFNAME` and `GLOO_SOCKET_IFNAME` to the cluster network's interface in the worker's "
            "environment (for example `-e NCCL_SOCKET_IFNAME=<interface>` on the GPUStack container): otherwise "
            "distributed inference may pick the wrong interface and hang (issues 2125, 4182)."
        )
    if warnings:
        return [RuleResult("network.address", WARN, "; ".join(warnings), evidence, fix_address(problems=advice))]
    shown = ", ".join(f"{a.interface} {a.address}" for a in real or ipv4)
    return [RuleResult("network.address", PASS, f"global IPv4: {shown}", evidence)]
