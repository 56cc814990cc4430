"""Assemble a node's facts from its probe sections. Pure: sections in, `NodeFacts` out."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .facts import (
    Address,
    ChronyTracking,
    DockerInfo,
    Filesystem,
    GpustackContainer,
    Listener,
    OsRelease,
    PciDevice,
    ProxySetting,
    TimedatectlStatus,
    VendorReport,
)
from .parsers.amd import parse_rocm_version
from .parsers.daemons import parse_chronyc_tracking, parse_docker_info, parse_ntpq_peers, parse_timedatectl
from .parsers.firewall import detect_firewall
from .parsers.host import (
    parse_df,
    parse_gpustack_containers,
    parse_machine_id,
    parse_meminfo_total_kib,
    parse_nvidia_runtime_mode,
    parse_product_uuid,
)
from .parsers.network import (
    docker_info_proxies,
    parse_daemon_json_proxies,
    parse_environment_file,
    parse_environment_values,
    parse_ip_addresses,
    parse_route_source,
    parse_systemd_environment,
)
from .parsers.nvidia import parse_nvidia_ctk_version
from .parsers.system import parse_os_release, parse_pci_devices, parse_port_ranges, parse_ss_listeners, parse_uname
from .probe import Section
from .vendors import ACCELERATOR_CLASS_PREFIXES, VENDOR_BY_PCI_ID, VENDORS


@dataclass
class VendorFacts:
    vendor: str
    pci_devices: list[PciDevice]
    tool_path: str
    tool_rc: int | None  # None: the tool did not run (absent) or its section was cut off
    tool_output: str
    report: VendorReport
    toolkit_found: list[str]  # binaries and paths that show the toolkit is installed
    toolkit_version: str = ""
    rocm_version: str = ""
    cdi_specs: list[str] = field(default_factory=list)  # spec files in the vendor's CDI directory, if it uses CDI
    cdi_dir_present: bool = False


@dataclass
class NodeFacts:
    os: OsRelease
    kernel: str = ""
    machine: str = ""
    kernel_release: str = ""
    hostname: str = ""
    login_uid: int | None = None
    login_user: str = ""
    pci: list[PciDevice] = field(default_factory=list)
    pci_read: bool = False  # the probe could list /sys/bus/pci/devices (an empty bus is still read)
    tools: dict[str, str] = field(default_factory=dict)
    paths: set[str] = field(default_factory=set)
    vendors: dict[str, VendorFacts] = field(default_factory=dict)
    docker_path: str = ""
    docker: DockerInfo | None = None
    docker_output: str = ""
    ntp_implementations: list[str] = field(default_factory=list)
    timedatectl: TimedatectlStatus | None = None
    chrony: ChronyTracking | None = None
    ntpq_synced: bool | None = None
    time_evidence: str = ""
    clock: float | None = None
    listeners: list[Listener] | None = None
    listeners_output: str = ""
    port_range: list[tuple[int, int]] = field(default_factory=list)
    reserved_ports: list[tuple[int, int]] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # sections that began but never ended
    firewall: str = "none"
    firewall_evidence: str = ""
    python: str = ""  # python3 (or RHEL 8's platform-python) for the connectivity listener and prober
    # field checks
    machine_id: str = ""
    product_uuid: str = ""
    addresses: list[Address] | None = None  # None: `ip` missing or failed
    addresses_output: str = ""
    route_source: str = ""  # the source address of `ip route get <server>`; "" when not asked or not answered
    route_output: str = ""
    proxies: list[ProxySetting] = field(default_factory=list)  # every place a proxy setting was read
    mem_total_kib: int | None = None
    filesystems: list[Filesystem] = field(default_factory=list)
    df_output: str = ""
    gpustack_containers: list[GpustackContainer] | None = None  # None: `docker ps` did not answer
    docker_ps_output: str = ""
    nvidia_runtime_mode: str = ""  # mode in /etc/nvidia-container-runtime/config.toml; "" when there is none
    socket_ifname: dict[str, str] = field(default_factory=dict)  # NCCL_/GLOO_SOCKET_IFNAME in /etc/environment

    def accelerator_pci(self) -> list[PciDevice]:
        return [d for d in self.pci if d.class_code.startswith(ACCELERATOR_CLASS_PREFIXES)]

    def summary(self) -> dict[str, Any]:
        """The `facts` object of the audit output contract."""
        return {
            "os": {"id": self.os.id, "version_id": self.os.version_id, "pretty_name": self.os.pretty_name},
            "arch": self.machine,
            "kernel": self.kernel_release,
            "hostname": self.hostname,
            "accelerators": [
                {
                    "vendor": vendor,
                    "index": device.index,
                    "model": device.model,
                    "memory_mib": device.memory_mib,
                    "uuid": device.uuid,
                    "pci_address": device.pci_address,
                    "driver_version": facts.report.driver_version,
                }
                for vendor, facts in self.vendors.items()
                for device in facts.report.devices
            ],
            "drivers": {
                vendor: {
                    "driver_version": facts.report.driver_version,
                    "runtime": facts.report.runtime_name,
                    "runtime_version": facts.report.runtime_version or facts.rocm_version,
                    "toolkit": facts.toolkit_found,
                    "toolkit_version": facts.toolkit_version,
                }
                for vendor, facts in self.vendors.items()
            },
            "docker": asdict(self.docker) if self.docker else None,
            "ntp": self.ntp_implementations,
            "firewall": self.firewall,
            "firewall_evidence": self.firewall_evidence[:3000],
            "python": self.python,
            "identity": {"machine_id": self.machine_id, "product_uuid": self.product_uuid},
            "addresses": [f"{a.interface} {a.address}/{a.prefix}" for a in self.global_ipv4()][:32],
            "mem_total_kib": self.mem_total_kib,
            "gpustack_images": sorted({c.image for c in self.gpustack_containers or []})[:20],
        }

    def global_ipv4(self) -> list[Address]:
        return [a for a in self.addresses or [] if a.family == "inet" and a.scope == "global"]


_NTP_MARKERS = {
    "chrony": ("chronyd", "chronyc", "/usr/sbin/chronyd"),
    "ntpd": ("ntpd", "ntpq", "/usr/sbin/ntpd"),
    "systemd-timesyncd": ("/lib/systemd/systemd-timesyncd", "/usr/lib/systemd/systemd-timesyncd"),
    "openntpd": ("openntpd", "ntpctl", "/usr/sbin/openntpd"),
}


def _text(sections: dict[str, Section], name: str) -> str:
    section = sections.get(name)
    return section.text if section else ""


def _cdi_specs(text: str, directory: str) -> list[str]:
    """Spec files the probe listed in `directory` (at most 50, each a path directly in it)."""
    found = [line.strip() for line in text.splitlines() if line.strip().startswith(directory + "/")]
    return [path for path in found if path.endswith((".json", ".yaml", ".yml"))][:50]


def build_facts(sections: dict[str, Section]) -> NodeFacts:
    facts = NodeFacts(os=parse_os_release(_text(sections, "os-release")))
    facts.incomplete = [name for name, section in sections.items() if section.rc is None]
    uname = parse_uname(_text(sections, "uname"))
    facts.kernel, facts.machine, facts.kernel_release = uname["kernel"], uname["machine"], uname["release"]
    facts.hostname = _text(sections, "hostname").strip()
    meta: dict[str, str] = {}
    for line in _text(sections, "meta").splitlines():  # the first of each key counts: uid (from id -u) comes
        if "=" in line:  # before user, whose value (LOGNAME) could carry a newline and a second "uid="
            key, value = line.split("=", 1)
            meta.setdefault(key, value)
    facts.login_uid = int(meta["uid"]) if meta.get("uid", "").isdigit() else None
    facts.login_user = meta.get("user", "")
    facts.pci = parse_pci_devices(_text(sections, "pci"))
    facts.pci_read = "pci" in sections and sections["pci"].rc == 0
    for line in _text(sections, "tools").splitlines():
        name, _, path = line.partition(" ")
        if name == "path":
            facts.paths.add(path.strip())
        elif name and path:
            facts.tools[name] = path.strip()
    try:
        # `date +%s.%N` where %N is not supported (busybox) prints "1700000000.N" or "1700000000.%N"
        facts.clock = float(re.sub(r"\.%?N$", "", _text(sections, "clock").strip().split()[0]))
    except (ValueError, IndexError):
        facts.clock = None

    raw = {name: section.text for name, section in sections.items()}
    present = {
        spec.key for spec in VENDORS.values() if spec.tool in facts.tools or set(spec.extra_tools) & set(facts.tools)
    }
    by_vendor: dict[str, list[PciDevice]] = {}
    for device in facts.accelerator_pci():
        vendor = VENDOR_BY_PCI_ID.get(device.vendor_id)
        if vendor:
            by_vendor.setdefault(vendor, []).append(device)
    for vendor in sorted(present | set(by_vendor), key=list(VENDORS).index):
        spec = VENDORS[vendor]
        ran = [sections[name] for name in spec.sections if name in sections]
        first = ran[0] if ran else None
        toolkit = [t for t in spec.toolkit_tools if t in facts.tools] + [
            p for p in spec.toolkit_paths if p in facts.paths
        ]
        facts.vendors[vendor] = VendorFacts(
            vendor=vendor,
            pci_devices=by_vendor.get(vendor, []),
            tool_path=facts.tools.get(spec.tool)
            or next((facts.tools[t] for t in spec.extra_tools if t in facts.tools), ""),
            tool_rc=first.rc if first else None,
            tool_output=first.text if first else "",
            report=spec.parse(raw) if first and first.rc == 0 else VendorReport(),
            toolkit_found=toolkit,
            toolkit_version=parse_nvidia_ctk_version(_text(sections, "nvidia-ctk")) if vendor == "nvidia" else "",
            rocm_version=parse_rocm_version(_text(sections, "rocm-version")) if vendor == "amd" else "",
            cdi_specs=_cdi_specs(_text(sections, "cdi-specs"), spec.cdi_dir) if spec.cdi_dir else [],
            cdi_dir_present=bool(spec.cdi_dir) and f"dir {spec.cdi_dir}" in _text(sections, "cdi-specs").splitlines(),
        )

    facts.docker_path = facts.tools.get("docker", "")
    if "docker-info" in sections:
        facts.docker_output = _text(sections, "docker-info")
        facts.docker = parse_docker_info(facts.docker_output)
        if sections["docker-info"].rc is None:
            facts.docker.error = facts.docker.error or "docker info did not finish (timed out or cut off)"

    for implementation, markers in _NTP_MARKERS.items():
        if any(m in facts.tools or m in facts.paths for m in markers):
            facts.ntp_implementations.append(implementation)
    evidence = []
    if "timedatectl" in sections:
        facts.timedatectl = parse_timedatectl(_text(sections, "timedatectl"))
        evidence.append("timedatectl show:\n" + _text(sections, "timedatectl"))
    if "chronyc-tracking" in sections and sections["chronyc-tracking"].rc == 0:
        facts.chrony = parse_chronyc_tracking(_text(sections, "chronyc-tracking"))
        evidence.append("chronyc tracking:\n" + _text(sections, "chronyc-tracking"))
    if "ntpq" in sections:
        facts.ntpq_synced = parse_ntpq_peers(_text(sections, "ntpq"))
        evidence.append("ntpq -pn:\n" + _text(sections, "ntpq"))
    facts.time_evidence = "\n\n".join(evidence)

    if "ss" in sections and sections["ss"].rc == 0:
        facts.listeners_output = _text(sections, "ss")
        facts.listeners = parse_ss_listeners(facts.listeners_output)
    facts.firewall, facts.firewall_evidence = detect_firewall({n: (s.text, s.rc) for n, s in sections.items()})
    facts.python = facts.tools.get("python3") or facts.tools.get("platform-python", "")
    facts.port_range = parse_port_ranges(_text(sections, "port-range"))
    facts.reserved_ports = parse_port_ranges(_text(sections, "reserved-ports"))
    _field_facts(facts, sections)
    return facts


def _ok(sections: dict[str, Section], name: str) -> bool:
    return name in sections and sections[name].rc == 0


def _field_facts(facts: NodeFacts, sections: dict[str, Section]) -> None:
    """What the field checks read: identity, addresses, proxies, resources, GPUStack containers, NVIDIA mode."""
    facts.machine_id = parse_machine_id(_text(sections, "machine-id")) if _ok(sections, "machine-id") else ""
    facts.product_uuid = parse_product_uuid(_text(sections, "product-uuid")) if _ok(sections, "product-uuid") else ""
    if _ok(sections, "ip-addr"):
        facts.addresses_output = _text(sections, "ip-addr")
        facts.addresses = parse_ip_addresses(facts.addresses_output)
    if "ip-route" in sections:
        facts.route_output = _text(sections, "ip-route")
        facts.route_source = parse_route_source(facts.route_output) if sections["ip-route"].rc == 0 else ""
    if facts.docker and facts.docker.answering:
        info = facts.docker
        facts.proxies.append(docker_info_proxies(info.http_proxy, info.https_proxy, info.no_proxy))
    if _ok(sections, "docker-environment"):
        facts.proxies.append(parse_systemd_environment(_text(sections, "docker-environment")))
    if _ok(sections, "daemon-json"):
        facts.proxies.append(parse_daemon_json_proxies(_text(sections, "daemon-json")))
    if _ok(sections, "environment"):
        facts.proxies.append(parse_environment_file(_text(sections, "environment")))
        values = parse_environment_values(_text(sections, "environment"))
        facts.socket_ifname = {k: v for k, v in values.items() if k in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME")}
    facts.mem_total_kib = parse_meminfo_total_kib(_text(sections, "meminfo"))
    if "df" in sections:
        facts.df_output = _text(sections, "df")
        facts.filesystems = parse_df(facts.df_output)
    if _ok(sections, "docker-ps"):
        facts.docker_ps_output = _text(sections, "docker-ps")
        inspect = _text(sections, "gpustack-inspect") if _ok(sections, "gpustack-inspect") else ""
        facts.gpustack_containers = parse_gpustack_containers(facts.docker_ps_output, inspect)
    if _ok(sections, "nvidia-runtime-config"):
        facts.nvidia_runtime_mode = parse_nvidia_runtime_mode(_text(sections, "nvidia-runtime-config"))
