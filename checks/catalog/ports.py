"""`ports.available` and `ports.reserved`."""

from ..node_facts import NodeFacts
from ..remediation import fix_ports_available, fix_ports_reserved
from ..spec import NodeContext, ProfileSpec
from .registry import ERROR, FAIL, PASS, SKIP, WARN
from .result import RuleResult, register


def compact(ports: list[int]) -> list[tuple[int, int]]:
    """Sorted ports as runs: [40000, 40001, 40002, 10151] -> [(10151, 10151), (40000, 40002)]."""
    runs: list[tuple[int, int]] = []
    for port in sorted(set(ports)):
        if runs and port == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], port)
        else:
            runs.append((port, port))
    return runs


def label(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


@register("ports.available")
def evaluate_ports_available(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    rules = [r for r in profile.port_rules if context.applies(r)]
    if not rules:
        return [RuleResult("ports.available", SKIP, f"no port rules for a {context.role} in {profile.key}")]
    if facts.listeners is None:
        return [
            RuleResult(
                "ports.available",
                ERROR,
                "could not list listening sockets (`ss` missing or failed)",
                facts.listeners_output or "ss: not found",
            )
        ]
    wanted = {(r.protocol, p) for r in rules for p in range(r.first_port, r.last_port + 1)}
    holders: dict[tuple[str, int], tuple[str, int | None]] = {}
    for listener in facts.listeners:
        key = (listener.protocol, listener.port)
        if key in wanted:
            who = (
                f"{listener.process} (pid {listener.pid})"
                if listener.process
                else "an unknown process (audit as root to see it)"
            )
            holders.setdefault(key, (who, listener.pid if listener.process else None))
    checked = ", ".join(f"{r.label}/{r.protocol}" for r in rules)
    if not holders:
        return [RuleResult("ports.available", PASS, f"all {len(wanted)} required ports free", f"checked: {checked}")]
    by_holder: dict[tuple[str, int | None], list[int]] = {}
    for (_, port), holder in holders.items():
        by_holder.setdefault(holder, []).append(port)
    # GPUStack's embedded PostgreSQL port held by a PostgreSQL already: the fix is the cluster option to use it (or
    # another database) through --database-url, not stopping a database. Only the wording depends on the name a node
    # printed; no command is built from it.
    database_rules = [r for r in rules if r.condition == "builtin_database"]
    database_ports = {p for r in database_rules for p in range(r.first_port, r.last_port + 1)}
    postgres = {
        holder
        for holder, ports in by_holder.items()
        if set(ports) <= database_ports and holder[0].lower().startswith(("postgres", "postmaster", '"postgres'))
    }
    holders_fix = [(sorted(ports), who, pid) for (who, pid), ports in by_holder.items() if (who, pid) not in postgres]
    parts = [
        f"{', '.join(label(a, b) for a, b in compact(ports))} held by {who}" for (who, _), ports in by_holder.items()
    ]
    parts.sort()
    evidence = "conflicts:\n" + "\n".join(parts) + f"\nchecked: {checked}\n\n$ ss -Hltnp\n{facts.listeners_output}"
    return [
        RuleResult(
            "ports.available",
            FAIL,
            "; ".join(parts),
            evidence,
            fix_ports_available(
                holders=holders_fix,
                summary="; ".join(parts),
                database_ports=sorted({p for holder in postgres for p in by_holder[holder]}),
            ),
        )
    ]


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int] | None:
    first, last = max(a[0], b[0]), min(a[1], b[1])
    return (first, last) if first <= last else None


@register("ports.reserved")
def evaluate_ports_reserved(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    if not profile.check_reserved_ports:
        return []
    if "worker" not in context.roles:
        return [RuleResult("ports.reserved", SKIP, "server node: only workers run inference services")]
    if not facts.port_range:
        return [RuleResult("ports.reserved", ERROR, "could not read net.ipv4.ip_local_port_range")]
    ephemeral = facts.port_range[0]
    reserved: set[int] = set()
    for first, last in facts.reserved_ports:
        reserved.update(range(first, last + 1))
    exposed: list[int] = []
    for rule in (r for r in profile.port_rules if r.role == "worker"):
        span = _overlap((rule.first_port, rule.last_port), ephemeral)
        if span:
            exposed.extend(p for p in range(span[0], span[1] + 1) if p not in reserved)
    evidence = (
        f"net.ipv4.ip_local_port_range = {ephemeral[0]} {ephemeral[1]}\n"
        f"net.ipv4.ip_local_reserved_ports = {','.join(label(a, b) for a, b in facts.reserved_ports) or '(empty)'}"
    )
    if not exposed:
        return [
            RuleResult(
                "ports.reserved", PASS, "service and Ray ports are outside the ephemeral range or reserved", evidence
            )
        ]
    runs = ",".join(label(a, b) for a, b in compact(exposed))
    return [
        RuleResult(
            "ports.reserved",
            WARN,
            f"ephemeral range {ephemeral[0]}-{ephemeral[1]} overlaps unreserved GPUStack ports {runs}",
            evidence,
            fix_ports_reserved(ranges=compact(exposed), already=facts.reserved_ports),
        )
    ]
