"""`time.ntp`, `time.synchronized`, `time.skew`."""

from ..node_facts import NodeFacts
from ..remediation import fix_ntp, fix_skew, fix_synchronized
from ..spec import NodeContext, ProfileSpec
from .registry import ERROR, FAIL, PASS, WARN
from .result import RuleResult, register


@register("time.ntp")
def evaluate_ntp(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    if facts.ntp_implementations:
        names = ", ".join(facts.ntp_implementations)
        return [RuleResult("time.ntp", PASS, f"{names} installed", "found: " + names)]
    status = FAIL if profile.ntp_required else WARN
    return [
        RuleResult(
            "time.ntp",
            status,
            "no NTP implementation installed: GPUStack requires one",
            "none of chronyd, ntpd, systemd-timesyncd, openntpd found",
            fix_ntp(facts.os),
        )
    ]


@register("time.synchronized")
def evaluate_synchronized(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    votes = []
    if facts.timedatectl and facts.timedatectl.synchronized is not None:
        votes.append(("timedatectl", facts.timedatectl.synchronized))
    if facts.chrony is not None:
        votes.append(("chronyc", facts.chrony.synchronized))
    if facts.ntpq_synced is not None:
        votes.append(("ntpq", facts.ntpq_synced))
    evidence = facts.time_evidence or "no timedatectl, chronyc or ntpq output"
    synced = [source for source, ok in votes if ok]
    if synced:
        return [RuleResult("time.synchronized", PASS, f"clock synchronized ({', '.join(synced)})", evidence)]
    if votes:
        sources = ", ".join(source for source, _ in votes)
        return [
            RuleResult(
                "time.synchronized",
                WARN,
                f"clock not synchronized ({sources})",
                evidence,
                fix_synchronized(facts.os, facts.ntp_implementations),
            )
        ]
    return [
        RuleResult(
            "time.synchronized",
            WARN,
            "synchronization state unknown",
            evidence,
            fix_synchronized(facts.os, facts.ntp_implementations),
        )
    ]


@register("time.skew")
def evaluate_skew(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    offset = context.clock_offset_seconds
    if offset is None:
        return [
            RuleResult(
                "time.skew",
                ERROR,
                "no clock reading from the node",
                "the probe's clock section was missing or unreadable",
            )
        ]
    rtt = context.round_trip_seconds
    evidence = f"node clock minus portal clock: {offset:+.3f} s" + (f" (SSH round trip {rtt:.3f} s)" if rtt else "")
    size = abs(offset)
    label = f"{offset:+.3f} s"
    if size < profile.time_skew_warn_seconds:
        return [
            RuleResult(
                "time.skew",
                PASS,
                f"clock within {profile.time_skew_warn_seconds:g} s of the portal ({label})",
                evidence,
            )
        ]
    status = WARN if size < profile.time_skew_fail_seconds else FAIL
    return [
        RuleResult(
            "time.skew",
            status,
            f"clock is {label} off the portal's",
            evidence,
            fix_skew(facts.os, facts.ntp_implementations, offset=label),
        )
    ]
