"""The check catalogue: pure rules, each registered under its public id (REQUIREMENTS.md), facts + profile in,
results out. Check ids are a public contract: never renamed, never reused."""

from __future__ import annotations

from ..node_facts import NodeFacts
from ..spec import NodeContext, ProfileSpec
from . import accelerators, container, host, network, os, ports, time  # noqa: F401  (each registers its rules)
from .registry import (
    BY_ID,
    CHECK_IDS,
    CHECKS,
    CLUSTER_CHECK_IDS,
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
from .result import EVIDENCE_LIMIT, RULES, RuleResult, register

__all__ = [
    "BY_ID",
    "CHECKS",
    "CHECK_IDS",
    "CLUSTER_CHECK_IDS",
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
    "RuleResult",
    "evaluate_node",
    "position",
    "register",
    "worst",
]


def evaluate_node(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    """Every host check for one node. A rule that raises yields `error` for its area, never a lost node."""

    results: list[RuleResult] = []
    for area, rule in RULES:
        try:
            results.extend(rule(facts, profile, context))
        except Exception as exc:  # a bug in one rule must not hide the other checks
            results.append(RuleResult(_area_id(area), ERROR, f"internal error in the {area} rule: {exc!r}"))
    return results


def _area_id(area: str) -> str:
    return area if area in BY_ID else next(spec.id for spec in CHECKS if spec.area == area)
