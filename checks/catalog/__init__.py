"""The check catalogue: pure rules, each registered under its public id (REQUIREMENTS.md), facts + profile in,
results out. Check ids are a public contract: never renamed, never reused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..node_facts import NodeFacts
from ..remediation import Remedy
from ..spec import NodeContext, ProfileSpec
from .registry import (
    BY_ID,
    CHECK_IDS,
    CHECKS,
    ERROR,
    FAIL,
    HOST_CHECK_IDS,
    NETWORK_CHECK_IDS,
    PASS,
    SEVERITY,
    SKIP,
    STATUSES,
    VENDOR_KEYS,
    WARN,
    position,
    worst,
)

EVIDENCE_LIMIT = 4000
__all__ = [
    "BY_ID",
    "CHECKS",
    "CHECK_IDS",
    "ERROR",
    "EVIDENCE_LIMIT",
    "FAIL",
    "HOST_CHECK_IDS",
    "NETWORK_CHECK_IDS",
    "PASS",
    "RULES",
    "SEVERITY",
    "SKIP",
    "STATUSES",
    "VENDOR_KEYS",
    "WARN",
    "CheckResult",
    "evaluate_node",
    "position",
    "register",
    "worst",
]


@dataclass
class CheckResult:
    """One check's verdict. `remediation` may be given as a `Remedy`: its text and commands are split apart here,
    so `remediation` is always the explanation and `commands` the template-built steps (REQUIREMENTS.md)."""

    check_id: str
    status: str
    summary: str
    evidence: str = ""
    remediation: str | Remedy = ""
    commands: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.check_id not in CHECK_IDS:
            raise ValueError(f"unknown check id {self.check_id!r}")
        if len(self.evidence) > EVIDENCE_LIMIT:
            cut = len(self.evidence) - EVIDENCE_LIMIT
            self.evidence = self.evidence[:EVIDENCE_LIMIT] + f"\n... ({cut} more characters trimmed)"
        if isinstance(self.remediation, Remedy):
            self.commands = [*self.commands, *self.remediation.commands]
            self.remediation = self.remediation.text
        if self.status == PASS:
            self.remediation = ""
            self.commands = []

    def as_dict(self) -> dict[str, str | list[str]]:
        return {
            "id": self.check_id,
            "status": self.status,
            "summary": self.summary,
            "evidence": self.evidence,
            "remediation": str(self.remediation),
            "commands": list(self.commands),
        }


Rule = Callable[[NodeFacts, ProfileSpec, NodeContext], list[CheckResult]]
RULES: list[tuple[str, Rule]] = []


def register(area: str) -> Callable[[Rule], Rule]:
    def wrap(rule: Rule) -> Rule:
        RULES.append((area, rule))
        return rule

    return wrap


def evaluate_node(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[CheckResult]:
    """Every host check for one node. A rule that raises yields `error` for its area, never a lost node."""
    from . import accelerators, container, os, ports, time  # noqa: F401  (registration)

    results: list[CheckResult] = []
    for area, rule in RULES:
        try:
            results.extend(rule(facts, profile, context))
        except Exception as exc:  # a bug in one rule must not hide the other checks
            results.append(CheckResult(_area_id(area), ERROR, f"internal error in the {area} rule: {exc!r}"))
    return results


def _area_id(area: str) -> str:
    return area if area in BY_ID else next(spec.id for spec in CHECKS if spec.area == area)
