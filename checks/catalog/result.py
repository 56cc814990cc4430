"""A check's result and the rule registry: what the rule modules import (never the package itself)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..node_facts import NodeFacts
from ..remediation import Remedy
from ..spec import NodeContext, ProfileSpec
from .registry import CHECK_IDS, PASS

EVIDENCE_LIMIT = 4000


@dataclass
class RuleResult:
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


Rule = Callable[[NodeFacts, ProfileSpec, NodeContext], list[RuleResult]]
RULES: list[tuple[str, Rule]] = []


def register(area: str) -> Callable[[Rule], Rule]:
    def wrap(rule: Rule) -> Rule:
        RULES.append((area, rule))
        return rule

    return wrap
