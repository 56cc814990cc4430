"""The facts summary an audit stored for a node (`Node.last_facts`, `NodeAudit.facts`), read through one typed view.

The stored JSON is the `facts` object of the audit output contract (`checks.node_facts.NodeFacts.summary`), but a
row may be older than a field, or hold anything a node printed: every reader goes through `FactsSummary.from_json`,
which tolerates missing and ill-typed values (they read as empty) and bounds every string and list. Pure: no
import of Django or of the apps, so both apps (and the pure core's tests) can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TEXT_LIMIT = 256  # a name, a version, a model, an image reference
EVIDENCE_LIMIT = 3000  # the firewall's evidence, as stored
ITEMS_LIMIT = 256  # accelerators, drivers, runtimes, images


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object, limit: int = TEXT_LIMIT) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return str(value)[:limit]


def _texts(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else []
    return tuple(item[:TEXT_LIMIT] for item in items[:ITEMS_LIMIT] if isinstance(item, str) and item)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class StoredAccelerator:
    vendor: str
    index: int | None
    model: str

    @property
    def text(self) -> str:
        """'nvidia[0] NVIDIA H100 80GB HBM3'"""
        return f"{self.vendor}[{'' if self.index is None else self.index}] {self.model}".strip()


@dataclass(frozen=True)
class StoredDriver:
    vendor: str
    driver_version: str
    toolkit: tuple[str, ...]


@dataclass(frozen=True)
class FactsSummary:
    os_id: str = ""
    os_version_id: str = ""
    os_pretty_name: str = ""
    arch: str = ""
    kernel: str = ""
    hostname: str = ""
    machine_id: str = ""
    product_uuid: str = ""
    python: str = ""
    firewall: str = ""
    firewall_evidence: str = ""
    docker_version: str = ""
    docker_default_runtime: str = ""
    docker_runtimes: tuple[str, ...] = ()
    accelerators: tuple[StoredAccelerator, ...] = ()
    drivers: tuple[StoredDriver, ...] = ()
    gpustack_images: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, value: object) -> FactsSummary:
        facts = _map(value)
        os, identity, docker = _map(facts.get("os")), _map(facts.get("identity")), _map(facts.get("docker"))
        devices = facts.get("accelerators")
        return cls(
            os_id=_text(os.get("id")),
            os_version_id=_text(os.get("version_id")),
            os_pretty_name=_text(os.get("pretty_name")),
            arch=_text(facts.get("arch")),
            kernel=_text(facts.get("kernel")),
            hostname=_text(facts.get("hostname")),
            machine_id=_text(identity.get("machine_id")),
            product_uuid=_text(identity.get("product_uuid")),
            python=_text(facts.get("python")),
            firewall=_text(facts.get("firewall")),
            firewall_evidence=_text(facts.get("firewall_evidence"), EVIDENCE_LIMIT),
            docker_version=_text(docker.get("server_version")),
            docker_default_runtime=_text(docker.get("default_runtime")),
            docker_runtimes=_texts(docker.get("runtimes")),
            accelerators=tuple(
                StoredAccelerator(_text(d.get("vendor")), _int(d.get("index")), _text(d.get("model")))
                for d in (devices if isinstance(devices, list) else [])[:ITEMS_LIMIT]
                if isinstance(d, Mapping)
            ),
            drivers=tuple(
                StoredDriver(_text(vendor), _text(_map(info).get("driver_version")), _texts(_map(info).get("toolkit")))
                for vendor, info in list(_map(facts.get("drivers")).items())[:ITEMS_LIMIT]
            ),
            gpustack_images=_texts(facts.get("gpustack_images")),
        )

    @property
    def os_text(self) -> str:
        """'Ubuntu 22.04.4 LTS', else 'ubuntu 22.04', else ''."""
        return self.os_pretty_name or " ".join(filter(None, [self.os_id, self.os_version_id]))
