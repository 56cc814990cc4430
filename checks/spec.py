"""What the rules judge against: a requirement profile and a node's place in its cluster, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OsRuleSpec:
    distro_id: str
    name: str
    min_version: str
    note: str = ""


@dataclass(frozen=True)
class AcceleratorRuleSpec:
    vendor: str
    driver_name: str
    driver_url: str
    toolkit_name: str
    toolkit_url: str
    docker_runtime: str = ""
    min_version: str = ""
    min_version_of: str = ""
    amd64_only: bool = False
    min_driver_version: str = ""
    min_compute_capability: str = ""
    warn_compute_capability: str = ""


@dataclass(frozen=True)
class PortRuleSpec:
    role: str
    first_port: int
    last_port: int
    protocol: str
    purpose: str
    condition: str = "always"
    worker_to_worker: bool = False
    reach: str = "peers"  # peers | direct_mode | none: which server<->worker paths prove it (inventory PortReach)

    @property
    def label(self) -> str:
        return str(self.first_port) if self.first_port == self.last_port else f"{self.first_port}-{self.last_port}"


@dataclass(frozen=True)
class ProfileSpec:
    key: str
    architectures: tuple[str, ...] = ("x86_64", "amd64", "aarch64", "arm64")
    os_rules: tuple[OsRuleSpec, ...] = ()
    accelerator_rules: dict[str, AcceleratorRuleSpec] = field(default_factory=dict)
    port_rules: tuple[PortRuleSpec, ...] = ()
    ntp_required: bool = True
    time_skew_warn_seconds: float = 1.0
    time_skew_fail_seconds: float = 30.0
    check_reserved_ports: bool = False
    worker_disk_warn_gib: int = 100
    worker_disk_fail_gib: int = 20
    worker_memory_warn_gib: int = 32
    server_disk_warn_gib: int = 20
    duplicate_product_uuid_fails: bool = False
    os_table_advisory: bool = False
    docker_desktop_fails_on_worker: bool = False


CLUSTER_OPTIONS = (
    "tls_enabled",
    "distributed_vllm",
    "server_runs_worker",
    "gateway",
    "external_database",
    "builtin_observability",
    "proxy_mode",
)


def cluster_options(cluster: Any) -> dict[str, Any]:
    """A Cluster's options as NodeContext keywords."""
    return {name: getattr(cluster, name) for name in CLUSTER_OPTIONS}


@dataclass(frozen=True)
class NodeContext:
    """The node's role and its cluster's options, and what the portal measured (clock offset)."""

    name: str
    role: str
    tls_enabled: bool = False
    distributed_vllm: bool = False
    server_runs_worker: bool = False
    gateway: str = "embedded"  # embedded | disabled (GPUStack's gateway on the server; never on a pure worker)
    external_database: bool = False
    builtin_observability: bool = True
    proxy_mode: str = "worker"  # direct | worker | tunnel
    clock_offset_seconds: float | None = None
    round_trip_seconds: float | None = None
    address: str = ""  # the node's inventory address (an IP literal or a DNS name)
    server_address: str = ""  # the inventory address of the cluster's server node, "" when it has none

    @property
    def roles(self) -> tuple[str, ...]:
        if self.role == "server" and self.server_runs_worker:
            return ("server", "worker")
        return (self.role,)

    def applies(self, rule: PortRuleSpec) -> bool:
        if rule.role not in self.roles:
            return False
        if rule.condition == "tls":
            return self.tls_enabled
        if rule.condition == "distributed_vllm":
            return self.distributed_vllm
        if rule.condition == "gateway_enabled":
            return self.gateway != "disabled"
        if rule.condition == "gateway_embedded":
            return self.gateway == "embedded"
        if rule.condition == "builtin_database":
            return not self.external_database
        if rule.condition == "observability":
            return self.builtin_observability
        return True


def profile_spec_from_model(profile: Any) -> ProfileSpec:
    """Snapshot a RequirementProfile (with its rules) into plain data; one query per rule table."""
    return ProfileSpec(
        key=profile.key,
        architectures=tuple(profile.architectures or ()),
        os_rules=tuple(OsRuleSpec(r.distro_id, r.name, r.min_version, r.note) for r in profile.os_rules.all()),
        accelerator_rules={
            r.vendor: AcceleratorRuleSpec(
                r.vendor,
                r.driver_name,
                r.driver_url,
                r.toolkit_name,
                r.toolkit_url,
                r.docker_runtime,
                r.min_version,
                r.min_version_of,
                r.amd64_only,
                r.min_driver_version,
                r.min_compute_capability,
                r.warn_compute_capability,
            )
            for r in profile.accelerator_rules.all()
        },
        port_rules=tuple(
            PortRuleSpec(
                r.role, r.first_port, r.last_port, r.protocol, r.purpose, r.condition, r.worker_to_worker, r.reach
            )
            for r in profile.port_rules.all()
        ),
        ntp_required=profile.ntp_required,
        time_skew_warn_seconds=profile.time_skew_warn_seconds,
        time_skew_fail_seconds=profile.time_skew_fail_seconds,
        check_reserved_ports=profile.check_reserved_ports,
        worker_disk_warn_gib=profile.worker_disk_warn_gib,
        worker_disk_fail_gib=profile.worker_disk_fail_gib,
        worker_memory_warn_gib=profile.worker_memory_warn_gib,
        server_disk_warn_gib=profile.server_disk_warn_gib,
        duplicate_product_uuid_fails=profile.duplicate_product_uuid_fails,
        os_table_advisory=profile.os_table_advisory,
        docker_desktop_fails_on_worker=profile.docker_desktop_fails_on_worker,
    )
