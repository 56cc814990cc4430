"""What got worse between two audits of a cluster. Pure: plain data in, plain data out.

A node "went not ready" when its status was ready (pass, warn, skip) and is now fail or error. A check "newly
fails" on a node when it fails or errors now, not accepted by a waiver, and did not (or was waived) before. Only
nodes that both audits covered are compared: a node added since, or left out of a partial audit, is not news.
"""

from __future__ import annotations

from dataclasses import dataclass, field

READY = frozenset({"pass", "warn", "skip"})
BAD = frozenset({"fail", "error"})
NOT_CHECKED = "not checked: "


@dataclass(frozen=True)
class NodeState:
    name: str
    status: str
    failing: dict[str, tuple[str, str]]  # check id -> (status, summary), counted (not waived) fails and errors


@dataclass
class Regressions:
    went_not_ready: list[dict[str, str]] = field(default_factory=list)
    newly_failing: list[dict[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.went_not_ready or self.newly_failing)


def find_regressions(before: dict[int, NodeState], after: dict[int, NodeState], *, limit: int = 200) -> Regressions:
    found = Regressions()
    for node_id in sorted(set(before) & set(after), key=lambda n: after[n].name):
        old, new = before[node_id], after[node_id]
        if old.status in READY and new.status in BAD:
            found.went_not_ready.append({"node": new.name, "before": old.status, "after": new.status})
        for check_id, (status, summary) in sorted(new.failing.items()):
            if check_id not in old.failing and not summary.startswith(NOT_CHECKED):
                found.newly_failing.append({"node": new.name, "check": check_id, "status": status, "summary": summary})
    found.went_not_ready = found.went_not_ready[:limit]
    found.newly_failing = found.newly_failing[:limit]
    return found
