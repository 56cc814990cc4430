"""Reads shaped for the web pages: what a node page summarises, how statuses rank, how the matrix rolls up."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Worst first: the order an operator wants to read statuses in (node list sort, summaries, matrix rollup).
SEVERITY_ORDER = ["error", "fail", "warn", "pass", "skip", "unknown"]
RANK = {status: i for i, status in enumerate(SEVERITY_ORDER)}
BAD = ("fail", "error")

NOT_CHECKED = "not checked: "
_DOUBLED = re.compile(r"^(?P<p>[^:]{2,60}): (?P=p)(?=:|\b)", re.IGNORECASE)


def undouble(summary: str) -> str:
    """ "host key changed: host key changed: ..." -> "host key changed: ..." (audits recorded before the fix)."""
    return _DOUBLED.sub(r"\g<p>", summary or "", count=1)


def worst_status(statuses) -> str:
    return min(statuses, key=lambda s: RANK.get(s, len(RANK)), default="unknown")


@dataclass
class NodeSummary:
    """The top of a node page: whether the probe ran at all, and what fails and why."""

    unreachable: object | None = None  # the ssh.connect result when the node could not be reached
    not_run_reason: str = ""  # why the host checks did not run (one line instead of one per check)
    not_run_count: int = 0
    problems: list = field(default_factory=list)  # failing and erroring checks, worst first
    warnings: list = field(default_factory=list)
    shown: list = field(default_factory=list)  # results to list per check (the "not checked" ones folded away)

    @property
    def verdict(self) -> str:
        if self.unreachable is not None:
            return "error"
        if self.not_run_count:
            return "error"
        if self.problems:
            return worst_status(r.status for r in self.problems)
        return "warn" if self.warnings else "pass"


def node_summary(results: list) -> NodeSummary:
    """Fold the results of one node audit into a summary; every summary loses a doubled prefix on the way."""
    summary = NodeSummary()
    for result in results:
        result.summary = undouble(result.summary)
    not_run = [r for r in results if r.status == "error" and r.summary.startswith(NOT_CHECKED)]
    connect = next((r for r in results if r.check_id == "ssh.connect"), None)
    if connect is not None and connect.status in BAD:
        summary.unreachable = connect
    if not_run:
        summary.not_run_count = len(not_run)
        summary.not_run_reason = undouble(not_run[0].summary[len(NOT_CHECKED) :])
    folded = {id(r) for r in not_run}
    if summary.unreachable is not None:
        folded.add(id(summary.unreachable))
    summary.shown = [r for r in results if id(r) not in folded]
    summary.problems = sorted((r for r in summary.shown if r.status in BAD), key=lambda r: (RANK[r.status], r.position))
    summary.warnings = [r for r in summary.shown if r.status == "warn"]
    return summary
