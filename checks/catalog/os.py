"""`os.supported` and `os.architecture`."""

from ..node_facts import NodeFacts
from ..remediation import fix_architecture, fix_os_supported
from ..spec import NodeContext, ProfileSpec
from ..versions import version_at_least
from .registry import FAIL, PASS, WARN
from .result import RuleResult, register

AMD64 = {"x86_64", "amd64"}
ARM64 = {"aarch64", "arm64"}


def _os_evidence(facts: NodeFacts) -> str:
    fields = facts.os.fields
    keys = [k for k in ("ID", "ID_LIKE", "VERSION_ID", "PRETTY_NAME") if k in fields]
    return "\n".join(f'{k}="{fields[k]}"' if k != "ID" else f"ID={fields[k]}" for k in keys)


@register("os.supported")
def evaluate_os_supported(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    table = ", ".join(f"{r.name} >= {r.min_version}{f' ({r.note})' if r.note else ''}" for r in profile.os_rules)
    current = facts.os.pretty_name or f"{facts.os.id} {facts.os.version_id}".strip() or "an unknown OS"
    evidence = _os_evidence(facts)
    if facts.kernel and facts.kernel != "Linux":
        return [
            RuleResult(
                "os.supported",
                FAIL,
                f"{facts.kernel} is not Linux",
                f"uname -s: {facts.kernel}",
                fix_os_supported(table=table, current=facts.kernel),
            )
        ]
    if profile.os_table_advisory:
        return [_os_advisory(facts, profile, table=table, current=current, evidence=evidence)]
    if not facts.os.id:
        return [
            RuleResult(
                "os.supported",
                FAIL,
                "no /etc/os-release: cannot tell the distribution",
                evidence,
                fix_os_supported(table=table, current=current),
            )
        ]
    rules = {r.distro_id.lower(): r for r in profile.os_rules}
    rule = rules.get(facts.os.id)
    if rule is None:
        parent = next((rules[like] for like in facts.os.id_like if like in rules), None)
        hint = f"; closest listed parent: {parent.name}" if parent else ""
        return [
            RuleResult(
                "os.supported",
                WARN,
                f"{current} is not tested by GPUStack{hint}",
                evidence,
                fix_os_supported(table=table, current=current),
            )
        ]
    ok = version_at_least(facts.os.version_id, rule.min_version)
    label = f"{rule.name} {facts.os.version_id}"
    if ok:
        return [RuleResult("os.supported", PASS, f"{label} (>= {rule.min_version})", evidence)]
    if ok is None:
        return [
            RuleResult(
                "os.supported",
                WARN,
                f"{rule.name} with no readable VERSION_ID",
                evidence,
                fix_os_supported(table=table, current=current),
            )
        ]
    return [
        RuleResult(
            "os.supported",
            FAIL,
            f"{label} is below GPUStack's minimum {rule.name} {rule.min_version}",
            evidence,
            fix_os_supported(table=table, current=current),
        )
    ]


ADVISORY = "not in the list GPUStack 2.0 tested"


def _os_advisory(facts: NodeFacts, profile: ProfileSpec, *, table: str, current: str, evidence: str) -> RuleResult:
    """Profiles after GPUStack v2.0.1 ("most modern Linux distributions"): the old table is advice, not a gate. A
    listed distro at or above its old minimum passes; anything else that is Linux warns."""
    fix = fix_os_supported(table=table, current=current)
    rules = {r.distro_id.lower(): r for r in profile.os_rules}
    rule = rules.get(facts.os.id.lower()) if facts.os.id else None
    if rule is None:
        parent = next((rules[like] for like in facts.os.id_like if like in rules), None)
        hint = f"; closest listed parent: {parent.name}" if parent else ""
        what = current if facts.os.id else "a Linux without /etc/os-release"
        return RuleResult("os.supported", WARN, f"{what} is {ADVISORY}{hint}", evidence, fix)
    label = f"{rule.name} {facts.os.version_id}".strip()
    ok = version_at_least(facts.os.version_id, rule.min_version)
    if ok:
        return RuleResult("os.supported", PASS, f"{label} (>= {rule.min_version})", evidence)
    below = "with no readable VERSION_ID" if ok is None else f"below {rule.name} {rule.min_version}"
    return RuleResult("os.supported", WARN, f"{label} is {below}: {ADVISORY}", evidence, fix)


@register("os.architecture")
def evaluate_architecture(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    machine = facts.machine
    evidence = f"uname -m: {machine or '(nothing)'}"
    allowed = {a.lower() for a in profile.architectures}
    if machine.lower() not in allowed:
        return [
            RuleResult(
                "os.architecture",
                FAIL,
                f"{machine or 'unknown architecture'} is not AMD64 or ARM64",
                evidence,
                fix_architecture(machine=machine or "unknown"),
            )
        ]
    if machine.lower() in ARM64:
        amd64_only = [v for v, r in profile.accelerator_rules.items() if r.amd64_only and v in facts.vendors]
        if amd64_only:
            names = ", ".join(amd64_only)
            return [
                RuleResult(
                    "os.architecture",
                    FAIL,
                    f"{machine} with {names} accelerators, which {profile.key} supports on AMD64 only",
                    evidence,
                    fix_architecture(machine=machine, extra=f"{names} accelerators are supported on AMD64 only."),
                )
            ]
    arch = "AMD64" if machine.lower() in AMD64 else "ARM64"
    return [RuleResult("os.architecture", PASS, f"{machine} ({arch})", evidence)]
