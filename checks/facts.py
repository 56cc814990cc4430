"""Typed facts about a node, produced by the parsers from probe output and read by the catalog rules.

Plain dataclasses, no ORM: a node's facts can be rebuilt from its stored raw probe output at any time.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OsRelease:
    id: str = ""
    version_id: str = ""
    id_like: list[str] = field(default_factory=list)
    name: str = ""
    pretty_name: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """Package-manager family for remediation: apt, dnf (dnf/yum), zypper, or unknown."""
        ids = [self.id.lower(), *(x.lower() for x in self.id_like)]
        for candidate in ids:
            if candidate in ("debian", "ubuntu", "linuxmint", "pop", "raspbian"):
                return "apt"
            if candidate in ("rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn", "openeuler", "kylin"):
                return "dnf"
            if candidate.startswith(("opensuse", "sles", "suse")):
                return "zypper"
        return "unknown"


@dataclass
class PciDevice:
    address: str
    vendor_id: str
    class_code: str
    device_id: str = ""


@dataclass
class Device:
    """One accelerator as a vendor tool reports it."""

    index: int
    model: str = ""
    memory_mib: int | None = None
    uuid: str = ""
    pci_address: str = ""
    compute_capability: str = ""  # NVIDIA `compute_cap`, e.g. "9.0"; empty where the tool does not say


@dataclass
class VendorReport:
    """What a vendor's driver tool said: its devices and versions."""

    devices: list[Device] = field(default_factory=list)
    driver_version: str = ""
    runtime_version: str = ""  # CUDA, ROCm, MACA, ... where the tool reports one
    runtime_name: str = ""
    tool_version: str = ""


@dataclass
class DockerInfo:
    server_version: str = ""
    runtimes: list[str] = field(default_factory=list)
    default_runtime: str = ""
    operating_system: str = ""
    error: str = ""
    cgroup_driver: str = ""
    root_dir: str = ""
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""

    @property
    def answering(self) -> bool:
        return bool(self.server_version) and not self.error

    @property
    def desktop(self) -> bool:
        return "docker desktop" in self.operating_system.lower()


@dataclass
class Listener:
    protocol: str
    address: str
    port: int
    process: str = ""
    pid: int | None = None


@dataclass
class ChronyTracking:
    reference_id: str = ""
    leap_status: str = ""
    offset_seconds: float | None = None
    stratum: int | None = None

    @property
    def synchronized(self) -> bool:
        return self.leap_status.lower() == "normal" and self.reference_id[:8] not in ("", "00000000", "7F7F0101")


@dataclass
class TimedatectlStatus:
    synchronized: bool | None = None
    ntp_service: str = ""
    time_zone: str = ""
    rtc_local: bool | None = None


@dataclass
class Address:
    """One address of `ip -o addr show`."""

    interface: str
    family: str  # inet or inet6
    address: str
    prefix: int
    scope: str


@dataclass
class ProxySetting:
    """A proxy configuration the node has, and where it was read: proxies as given, NO_PROXY split on commas."""

    source: str
    http: str = ""
    https: str = ""
    no_proxy: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.http or self.https)


@dataclass
class Filesystem:
    """One line of `df -Pk`."""

    mount: str
    size_kib: int
    available_kib: int


@dataclass
class GpustackContainer:
    """A container of a gpustack/gpustack image; `mirrored_name` is None when it could not be inspected."""

    name: str
    image: str
    mirrored_name: str | None = None
