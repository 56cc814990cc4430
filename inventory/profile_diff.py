"""What moved between two requirement profiles: ports added or removed, new minimums, vendors, changed rules.

An operator upgrading GPUStack sees on the profile's admin page and on the cluster dashboard why a node that was
ready against `gpustack-2.0` is not against the newer profile. `profile_diff` is pure (plain data in, plain data
out); `profile_rules` reads a RequirementProfile's rules into that plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .choices import PortCondition, Vendor

BASELINE_PROFILE = "gpustack-2.0"

_CONDITIONS = dict(PortCondition.choices)
_VENDORS = dict(Vendor.choices)
# The version floors of an accelerator rule, and how a sentence names each one.
_FLOORS = (
    ("min_version", "{of} >= {value}"),
    ("min_driver_version", "driver >= {value}"),
    ("min_compute_capability", "compute capability below {value} fails"),
    ("warn_compute_capability", "compute capability below {value} warns"),
)
_FLAGS = (
    ("os_table_advisory", "The OS table is advice: a distro below it or not in it warns", "The OS table is enforced"),
    ("docker_desktop_fails_on_worker", "Docker Desktop fails on a worker", "Docker Desktop only warns on a worker"),
    ("check_reserved_ports", "Workers' service and Ray ports must be out of the ephemeral range (warn)", ""),
)


@dataclass(frozen=True)
class PortRow:
    role: str
    first_port: int
    last_port: int
    protocol: str
    condition: str
    purpose: str = ""

    @property
    def key(self) -> tuple[str, int, int, str, str]:
        return (self.role, self.first_port, self.last_port, self.protocol, self.condition)


@dataclass(frozen=True)
class ProfileRules:
    """A profile's rules as plain data: what the diff compares."""

    key: str
    release: str = ""
    commit: str = ""
    ports: tuple[PortRow, ...] = ()
    # vendor -> floor field -> value (with "min_version_of" naming what min_version measures)
    accelerators: dict[str, dict[str, str]] = field(default_factory=dict)
    amd64_only: frozenset[str] = frozenset()
    os_minimums: dict[str, tuple[str, str]] = field(default_factory=dict)  # distro id -> (name, minimum)
    flags: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class PortChange:
    """Ports of one role and condition that were added or removed, compacted: "15000, 15010, 15020-15021"."""

    role: str
    ports: str
    when: str  # "" for always, else the condition's label

    def __str__(self) -> str:
        return f"{self.role} {self.ports}" + (f" ({self.when[:1].lower()}{self.when[1:]})" if self.when else "")


@dataclass(frozen=True)
class ProfileDiff:
    base: str
    key: str
    release: str
    commit: str
    ports_added: tuple[PortChange, ...] = ()
    ports_removed: tuple[PortChange, ...] = ()
    minimums: tuple[str, ...] = ()  # "NVIDIA GPU: CUDA >= 12.8 (was none)"
    vendors_added: tuple[str, ...] = ()
    vendors_removed: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()  # other rules that changed, one sentence each

    @property
    def port_change_count(self) -> int:
        return len(self.ports_added) + len(self.ports_removed)

    @property
    def empty(self) -> bool:
        return not (
            self.ports_added
            or self.ports_removed
            or self.minimums
            or self.vendors_added
            or self.vendors_removed
            or self.rules
        )


def _compact(rows: list[PortRow]) -> str:
    spans = sorted({(r.first_port, r.last_port) for r in rows})
    merged: list[list[int]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in merged)


def _port_changes(rows: list[PortRow]) -> tuple[PortChange, ...]:
    groups: dict[tuple[str, str], list[PortRow]] = {}
    for row in rows:
        groups.setdefault((row.role, row.condition), []).append(row)
    order = {"server": 0, "worker": 1}
    return tuple(
        PortChange(role, _compact(group), "" if condition == "always" else _CONDITIONS.get(condition, condition))
        for (role, condition), group in sorted(groups.items(), key=lambda item: (order.get(item[0][0], 2), item[0][1]))
    )


def _vendor(vendor: str) -> str:
    return str(_VENDORS.get(vendor, vendor))


def _floors(vendor: str, base: dict[str, str], other: dict[str, str]) -> list[str]:
    sentences = []
    for name, template in _FLOORS:
        before, after = base.get(name, ""), other.get(name, "")
        if before == after:
            continue
        of = other.get("min_version_of") or base.get("min_version_of") or "version"
        if after:
            sentence = template.format(of=of, value=after) + (f" (was {before})" if before else " (new)")
        else:
            sentence = template.format(of=of, value=before) + ": no longer"
        sentences.append(f"{_vendor(vendor)}: {sentence}")
    return sentences


def profile_diff(base: ProfileRules, other: ProfileRules) -> ProfileDiff:
    """What `other` requires that `base` did not, and what it no longer requires."""
    base_ports = {r.key: r for r in base.ports}
    other_ports = {r.key: r for r in other.ports}
    added = [r for k, r in other_ports.items() if k not in base_ports]
    removed = [r for k, r in base_ports.items() if k not in other_ports]
    minimums: list[str] = []
    for vendor in sorted(set(base.accelerators) & set(other.accelerators)):
        minimums += _floors(vendor, base.accelerators[vendor], other.accelerators[vendor])
    for vendor in sorted(set(other.accelerators) - set(base.accelerators)):
        minimums += _floors(vendor, {}, other.accelerators[vendor])
    rules: list[str] = []
    newly_amd64 = sorted(other.amd64_only - base.amd64_only)
    if newly_amd64:
        rules.append(f"AMD64 only: {', '.join(_vendor(v) for v in newly_amd64)}")
    no_longer_amd64 = sorted(base.amd64_only - other.amd64_only)
    if no_longer_amd64:
        rules.append(f"No longer AMD64 only: {', '.join(_vendor(v) for v in no_longer_amd64)}")
    for distro in sorted(set(base.os_minimums) | set(other.os_minimums)):
        before, after = base.os_minimums.get(distro), other.os_minimums.get(distro)
        if before == after:
            continue
        if after is None and before is not None:
            rules.append(f"OS table: {before[0]} no longer listed")
        elif after is not None and before is None:
            rules.append(f"OS table: {after[0]} >= {after[1]} listed")
        elif after is not None and before is not None:
            rules.append(f"OS table: {after[0]} >= {after[1]} (was {before[1]})")
    for flag, on, off in _FLAGS:
        before, after = base.flags.get(flag, False), other.flags.get(flag, False)
        if before != after and (on if after else off):
            rules.append(on if after else off)
    return ProfileDiff(
        base=base.key,
        key=other.key,
        release=other.release,
        commit=other.commit,
        ports_added=_port_changes(added),
        ports_removed=_port_changes(removed),
        minimums=tuple(minimums),
        vendors_added=tuple(_vendor(v) for v in sorted(set(other.accelerators) - set(base.accelerators))),
        vendors_removed=tuple(_vendor(v) for v in sorted(set(base.accelerators) - set(other.accelerators))),
        rules=tuple(rules),
    )


def profile_rules(profile: Any) -> ProfileRules:
    """Read a RequirementProfile (with its rules; prefetch them to keep it at one query per table)."""
    floors = (
        "min_version",
        "min_version_of",
        "min_driver_version",
        "min_compute_capability",
        "warn_compute_capability",
    )
    accelerators = list(profile.accelerator_rules.all())
    return ProfileRules(
        key=profile.key,
        release=profile.gpustack_release,
        commit=profile.gpustack_commit,
        ports=tuple(
            PortRow(r.role, r.first_port, r.last_port, r.protocol, r.condition, r.purpose)
            for r in profile.port_rules.all()
        ),
        accelerators={r.vendor: {name: getattr(r, name) for name in floors} for r in accelerators},
        amd64_only=frozenset(r.vendor for r in accelerators if r.amd64_only),
        os_minimums={r.distro_id: (r.name, r.min_version) for r in profile.os_rules.all()},
        flags={name: bool(getattr(profile, name)) for name, _, _ in _FLAGS},
    )


def profile_diff_from_baseline(profile: Any) -> ProfileDiff | None:
    """The diff of `profile` against `gpustack-2.0`; None for the baseline itself or when it is gone."""
    from .models import RequirementProfile

    if profile.key == BASELINE_PROFILE:
        return None
    base = (
        RequirementProfile.objects.prefetch_related("os_rules", "accelerator_rules", "port_rules")
        .filter(key=BASELINE_PROFILE)
        .first()
    )
    if base is None:
        return None
    return profile_diff(profile_rules(base), profile_rules(profile))
