from datetime import datetime
from typing import Literal

from ninja import Field, Schema
from pydantic import field_validator

from .validators import is_valid_address

Role = Literal["server", "worker"]
Gateway = Literal["embedded", "disabled"]
ProxyMode = Literal["direct", "worker", "tunnel"]
Plan = Literal["auto", "full", "sampled"]
GROUP = r"^[A-Za-z0-9_.:/-]*$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ErrorOut(Schema):
    code: str
    message: str
    errors: list[dict] = []


class ClusterIn(Schema):
    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = Field("", max_length=2000)
    profile: str | None = Field(None, max_length=64, description="Requirement profile key; default profile if empty")
    tls_enabled: bool = False
    distributed_vllm: bool = False
    server_runs_worker: bool = False
    gateway: Gateway = Field("embedded", description="GPUStack's gateway on the server (--gateway-mode)")
    external_database: bool = Field(False, description="The server uses --database-url: no embedded PostgreSQL")
    builtin_observability: bool = Field(True, description="The server runs the built-in Prometheus and Grafana")
    proxy_mode: ProxyMode = Field("worker", description="How the server reaches model instances (--proxy-mode)")
    connectivity_plan: Plan = Field(
        "auto", description="Worker pairs per audit: full, sampled, auto (sampled above 50)"
    )
    sampled_peers: int = Field(3, ge=1, le=64, description="Sampled plan: peers per worker per audit (k)")
    group_full_mesh_limit: int = Field(64, ge=0, le=1000, description="A network group this small gets its full mesh")


class ClusterPatch(Schema):
    description: str | None = Field(None, max_length=2000)
    profile: str | None = Field(None, max_length=64)
    tls_enabled: bool | None = None
    distributed_vllm: bool | None = None
    server_runs_worker: bool | None = None
    gateway: Gateway | None = None
    external_database: bool | None = None
    builtin_observability: bool | None = None
    proxy_mode: ProxyMode | None = None
    connectivity_plan: Plan | None = None
    sampled_peers: int | None = Field(None, ge=1, le=64)
    group_full_mesh_limit: int | None = Field(None, ge=0, le=1000)


class ClusterOut(Schema):
    id: int
    name: str
    description: str
    profile: str
    tls_enabled: bool
    distributed_vllm: bool
    server_runs_worker: bool
    gateway: str
    external_database: bool
    builtin_observability: bool
    proxy_mode: str
    connectivity_plan: str
    sampled_peers: int
    group_full_mesh_limit: int
    node_count: int
    created: datetime


class CredentialIn(Schema):
    kind: Literal["private_key", "password"]
    secret: str = Field(..., min_length=1, max_length=65536, description="Never returned by any endpoint")
    passphrase: str = Field("", max_length=1024)


class AddressMixin(Schema):
    @field_validator("address", check_fields=False)
    @classmethod
    def address_is_host(cls, value):
        if value is not None and not is_valid_address(value):
            raise ValueError("not an IP address or DNS host name")
        return value


class NodeIn(AddressMixin):
    cluster: int
    name: str = Field(..., min_length=1, max_length=128, pattern=NAME)
    address: str = Field(..., min_length=1, max_length=253)
    ssh_port: int = Field(22, ge=1, le=65535)
    ssh_user: str = Field("root", min_length=1, max_length=32, pattern=r"^[a-z_][a-z0-9_.-]*\$?$")
    role: Role = "worker"
    network_group: str = Field("", max_length=64, pattern=GROUP, description="Rack, subnet or switch")
    enabled: bool = True
    credential: CredentialIn | None = None


class NodePatch(AddressMixin):
    address: str | None = Field(None, min_length=1, max_length=253)
    ssh_port: int | None = Field(None, ge=1, le=65535)
    ssh_user: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[a-z_][a-z0-9_.-]*\$?$")
    role: Role | None = None
    network_group: str | None = Field(None, max_length=64, pattern=GROUP)
    enabled: bool | None = None
    credential: CredentialIn | None = None


class AcceleratorOut(Schema):
    vendor: str
    index: int
    model: str
    memory_mib: int | None
    uuid: str
    pci_address: str
    driver_version: str


class NodeOut(Schema):
    id: int
    cluster: str
    cluster_id: int
    name: str
    address: str
    ssh_port: int
    ssh_user: str
    role: str
    network_group: str
    enabled: bool
    transport: str
    has_credential: bool
    # Results (checks.view_audit): null when the caller may not read results, never a made-up value.
    last_audit_status: str | None = Field(None, description="null without the view_results rule (checks.view_audit)")
    readiness: Literal["ready", "not-ready", "unreachable", "not-audited"] | None = Field(
        None,
        description="the node's state as every page shows it: ready, not-ready (failing, or reached but its checks "
        "could not run), unreachable (not reached) or not-audited; null without the view_results rule",
    )
    last_audited_at: datetime | None = Field(None, description="null without the view_results rule")
    accelerators: list[AcceleratorOut] | None = Field(
        None, description="devices audits found; null without the view_results rule, [] when none"
    )


class HostKeyOut(Schema):
    id: int
    key_type: str
    fingerprint: str
    state: str
    first_seen: datetime
    accepted_at: datetime | None
    accepted_by: str | None


class HostKeyAcceptIn(Schema):
    fingerprint: str = Field(
        ..., min_length=1, max_length=128, description="the pending key to trust, as the audit showed it (SHA256:...)"
    )


class OsRuleOut(Schema):
    distro_id: str
    name: str
    min_version: str
    note: str


class AcceleratorRuleOut(Schema):
    vendor: str
    experimental: bool
    driver_name: str
    driver_url: str
    toolkit_name: str
    toolkit_url: str
    docker_runtime: str
    min_version: str
    min_version_of: str
    min_driver_version: str
    min_compute_capability: str
    warn_compute_capability: str
    amd64_only: bool


class PortRuleOut(Schema):
    role: str
    first_port: int
    last_port: int
    protocol: str
    purpose: str
    condition: str
    worker_to_worker: bool
    reach: str


class ProfileOut(Schema):
    key: str
    name: str
    description: str
    source: str
    gpustack_release: str
    gpustack_commit: str
    is_default: bool
    architectures: list[str]
    check_reserved_ports: bool
    os_table_advisory: bool
    docker_desktop_fails_on_worker: bool
    os_rules: list[OsRuleOut]
    accelerator_rules: list[AcceleratorRuleOut]
    port_rules: list[PortRuleOut]


class ImportOut(Schema):
    cluster: str
    profile: str
    cluster_created: bool
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    skipped: list[str]
    key_files_not_read: list[str]
    credentials_removed: list[str] = []
    summary: str
