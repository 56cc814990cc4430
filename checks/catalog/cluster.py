"""`cluster.unique`: the nodes of one audit compared with each other. Pure: every node's identity in, one result per
node out; checks.services.finish runs it once every node audit of the audit is final."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..remediation import fix_deployment, fix_unique
from ..spec import ProfileSpec
from .host import image_tag
from .registry import FAIL, PASS, WARN
from .result import RuleResult


@dataclass(frozen=True)
class NodeIdentity:
    """What a node says it is: its inventory name, and the hostname, machine-id and product UUID its probe read."""

    name: str
    hostname: str = ""
    machine_id: str = ""
    product_uuid: str = ""
    gpustack_images: tuple[str, ...] = ()


def evaluate_cluster_unique(nodes: list[NodeIdentity], profile: ProfileSpec) -> dict[str, RuleResult]:
    """One `cluster.unique` result per node: fail on a hostname or machine-id another node shares, naming the
    others; a shared product UUID fails when the profile says so (GPUStack before v2.1.0), else warns."""
    keys: dict[str, Callable[[NodeIdentity], str]] = {
        "hostname": lambda n: n.hostname.strip().lower(),
        "machine-id": lambda n: n.machine_id,
        "product UUID": lambda n: n.product_uuid,
    }
    holders: dict[tuple[str, str], list[str]] = {}
    for node in nodes:
        for label, key in keys.items():
            value = key(node)
            if value:
                holders.setdefault((label, value), []).append(node.name)
    results = {}
    for node in nodes:
        shared = []
        for label, key in keys.items():
            value = key(node)
            others = [name for name in holders.get((label, value), []) if name != node.name] if value else []
            if others:
                shared.append((label, value, others))
        evidence = (
            f"hostname: {node.hostname or '(unknown)'}\nmachine-id (SHA-256): {node.machine_id or '(unreadable)'}\n"
            f"product UUID (SHA-256): {node.product_uuid or '(unreadable: audit as root to read it)'}\n"
            f"compared with: {', '.join(n.name for n in nodes if n.name != node.name) or 'no other node'}"
        )
        if not shared:
            results[node.name] = RuleResult(
                "cluster.unique", PASS, f"hostname and machine-id unique among {len(nodes)} node(s)", evidence
            )
            continue
        fails = [s for s in shared if s[0] != "product UUID" or profile.duplicate_product_uuid_fails]
        summary = "; ".join(f"same {label} as {', '.join(others)}" for label, _, others in shared)
        detail = "; ".join(f"{label} is also that of {', '.join(others)}" for label, _, others in shared)
        results[node.name] = RuleResult(
            "cluster.unique",
            FAIL if fails else WARN,
            summary,
            evidence,
            fix_unique(
                detail=f"This node's {detail}.",
                hostname=node.name if any(label == "hostname" for label, _, _ in shared) else "",
            ),
        )
    return results


def evaluate_cluster_deployment(nodes: list[NodeIdentity]) -> dict[str, RuleResult]:
    """`gpustack.deployment` across the cluster: when the GPUStack containers of the audit's nodes run different
    image tags (issue 4790), a warn for each node that runs any, naming the tags of the others. Nodes judged alike
    get nothing here (their own result stands)."""
    tags = {node.name: sorted({image_tag(image) for image in node.gpustack_images}) for node in nodes}
    every = sorted({tag for found in tags.values() for tag in found})
    if len(every) < 2:
        return {}
    results = {}
    for node in nodes:
        if not tags[node.name]:
            continue
        others = [f"{name} runs {', '.join(found)}" for name, found in tags.items() if found and name != node.name]
        detail = f"GPUStack image tags differ across the cluster: this node runs {', '.join(tags[node.name])}; " + (
            "; ".join(others)
        )
        results[node.name] = RuleResult(
            "gpustack.deployment",
            WARN,
            detail,
            "\n".join(f"{name}: {', '.join(found) or '(no GPUStack container)'}" for name, found in tags.items()),
            fix_deployment(detail=detail + "."),
        )
    return results
