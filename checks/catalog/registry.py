"""Every check id, declared once: its order, title, the roles it applies to and how it is run (REQUIREMENTS.md).

Check ids are a public contract: never renamed, never reused. Every other list of ids (the result order, the checks
an unreachable node reports as not checked, the node page's areas) is derived from `CHECKS`. The statuses and their
display severity live here too. This module imports nothing from the rule modules; they import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..vendors import VENDORS

PASS, WARN, FAIL, ERROR, SKIP = "pass", "warn", "fail", "error", "skip"
STATUSES = (PASS, WARN, FAIL, ERROR, SKIP)
# Display severity: error counts as worse than fail, never as pass; `unknown` is a node never audited.
SEVERITY = {PASS: 0, SKIP: 0, "unknown": 1, WARN: 2, FAIL: 3, ERROR: 4}

BOTH = ("server", "worker")
VENDOR_KEYS = tuple(VENDORS)


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    roles: tuple[str, ...] = BOTH
    # connect: the SSH login itself; host: judged from the node's own probe; vendor: per accelerator vendor found;
    # network: the connectivity matrix between nodes; cluster: compares the nodes of one audit.
    kind: str = "host"
    profiles: str = "all"  # "all", or the one profile key family it belongs to ("2.2")

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]


def _vendor_checks(vendor: str) -> tuple[CheckSpec, ...]:
    label = VENDORS[vendor].label
    return (
        CheckSpec(f"accelerator.{vendor}.driver", f"{label} driver", kind="vendor"),
        CheckSpec(f"accelerator.{vendor}.toolkit", f"{label} container toolkit", kind="vendor"),
        CheckSpec(f"accelerator.{vendor}.version", f"{label} driver version", kind="vendor", profiles="2.2"),
    )


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("ssh.connect", "SSH connection", kind="connect"),
    CheckSpec("os.supported", "Operating system"),
    CheckSpec("os.architecture", "Architecture"),
    CheckSpec("time.ntp", "NTP installed"),
    CheckSpec("time.synchronized", "Clock synchronized"),
    CheckSpec("time.skew", "Clock skew"),
    CheckSpec("container.docker", "Docker Engine"),
    # Field checks (REQUIREMENTS.md "Field checks"): the failures GPUStack users report beyond its requirements page.
    CheckSpec("container.runtime", "Vendor runtime is Docker's default", kind="vendor"),
    CheckSpec("container.cgroup", "GPUs survive a systemd reload", kind="vendor"),
    CheckSpec("host.resources", "Disk and memory"),
    CheckSpec("gpustack.deployment", "Existing GPUStack containers"),
    CheckSpec("accelerator.present", "Accelerators present"),
    *(spec for vendor in VENDOR_KEYS for spec in _vendor_checks(vendor)),
    CheckSpec("ports.available", "Required ports free"),
    CheckSpec("ports.reserved", "Ports reserved from the ephemeral range", roles=("worker",), profiles="2.2"),
    CheckSpec("network.proxy", "Proxy bypasses the cluster"),
    CheckSpec("network.address", "Node address"),
    CheckSpec("network.server_to_worker", "Server to worker", roles=("worker",), kind="network"),
    CheckSpec("network.worker_to_server", "Worker to server", roles=("worker",), kind="network"),
    CheckSpec("network.worker_to_worker", "Worker to worker", roles=("worker",), kind="network"),
    # cluster: judged over all nodes of one audit when the audit finishes (checks.services.finish)
    CheckSpec("cluster.unique", "Unique host identity", kind="cluster"),
)
BY_ID = {spec.id: spec for spec in CHECKS}
CHECK_IDS: tuple[str, ...] = tuple(spec.id for spec in CHECKS)
# What every node reports from its own probe in every profile: when the node cannot be reached (or its probe fails),
# these are `error` with the reason.
HOST_CHECK_IDS: tuple[str, ...] = tuple(s.id for s in CHECKS if s.kind == "host" and s.profiles == "all")
NETWORK_CHECK_IDS: tuple[str, ...] = tuple(s.id for s in CHECKS if s.kind == "network")
CLUSTER_CHECK_IDS: tuple[str, ...] = tuple(s.id for s in CHECKS if s.kind == "cluster")


def position(check_id: str) -> int:
    """Where a check's result sorts: the catalogue's order."""
    return CHECK_IDS.index(check_id)


def worst(statuses: Iterable[str]) -> str:
    """A node's (or path group's) status: the most severe of `statuses`; `unknown` when there are none."""
    seen = list(statuses)
    if not seen:
        return "unknown"
    return max(seen, key=lambda s: (SEVERITY.get(s, 0), s == PASS))
