"""The eight accelerator vendors: PCI ids, driver tools and their parsers, toolkit markers. Data, not logic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .facts import VendorReport
from .parsers.amd import parse_amd_smi_static, parse_rocm_smi_json
from .parsers.ascend import parse_npu_smi_info
from .parsers.nvidia import merge_reports, parse_nvidia_smi_query, parse_nvidia_smi_table
from .parsers.others import parse_cnmon, parse_hy_smi, parse_ixsmi, parse_mthreads_gmi, parse_mx_smi

# PCI classes that make a device an accelerator: display (0x03), processing accelerator (0x12), co-processor (0x0b).
ACCELERATOR_CLASS_PREFIXES = ("0x03", "0x12", "0x0b")


@dataclass(frozen=True)
class VendorSpec:
    key: str
    label: str
    pci_vendor_id: str
    tool: str  # the driver tool whose presence makes the vendor apply
    sections: tuple[str, ...]  # probe sections holding the tool's output, first is authoritative
    parse: Callable[[dict[str, str]], VendorReport]
    toolkit_tools: tuple[str, ...] = ()
    toolkit_paths: tuple[str, ...] = ()
    docs: str = ""
    extra_tools: tuple[str, ...] = field(default=())


def _nvidia(sections: dict[str, str]) -> VendorReport:
    table = parse_nvidia_smi_table(sections.get("nvidia-smi", ""))
    return merge_reports(table, parse_nvidia_smi_query(sections.get("nvidia-smi-query", "")))


def _amd(sections: dict[str, str]) -> VendorReport:
    report = parse_amd_smi_static(sections["amd-smi"]) if sections.get("amd-smi") else VendorReport()
    if not report.devices and sections.get("rocm-smi"):
        fallback = parse_rocm_smi_json(sections["rocm-smi"])
        report.devices, report.driver_version = fallback.devices, report.driver_version or fallback.driver_version
    report.runtime_name = "ROCm"
    return report


def _hygon(sections: dict[str, str]) -> VendorReport:
    report = parse_hy_smi(sections.get("hy-smi", ""))
    named = parse_rocm_smi_json(sections.get("hygon-rocm-smi", ""))
    by_index = {d.index: d for d in named.devices}
    for device in report.devices:
        if device.index in by_index:
            other = by_index[device.index]
            device.model, device.memory_mib, device.uuid = other.model or device.model, other.memory_mib, other.uuid
    return report


VENDORS: dict[str, VendorSpec] = {
    spec.key: spec
    for spec in (
        VendorSpec(
            "nvidia",
            "NVIDIA",
            "0x10de",
            "nvidia-smi",
            ("nvidia-smi", "nvidia-smi-query"),
            _nvidia,
            toolkit_tools=("nvidia-ctk", "nvidia-container-runtime"),
            docs="https://docs.nvidia.com/datacenter/cloud-native/container-toolkit",
        ),
        VendorSpec(
            "amd",
            "AMD",
            "0x1002",
            "amd-smi",
            ("amd-smi", "rocm-smi"),
            _amd,
            toolkit_tools=("amd-ctk",),
            extra_tools=("rocm-smi",),
            docs="https://instinct.docs.amd.com/projects/container-toolkit/en/latest/container-runtime/overview.html",
        ),
        VendorSpec(
            "ascend",
            "Ascend",
            "0x19e5",
            "npu-smi",
            ("npu-smi",),
            lambda s: parse_npu_smi_info(s.get("npu-smi", "")),
            toolkit_tools=("ascend-docker-runtime",),
            toolkit_paths=("/usr/local/Ascend/Ascend-Docker-Runtime",),
            docs="https://www.hiascend.com/document/detail/zh/mindcluster/72rc1/clustersched/dlug/dlug_installation_017.html",
        ),
        VendorSpec(
            "hygon",
            "Hygon",
            "0x1d94",
            "hy-smi",
            ("hy-smi",),
            _hygon,
            toolkit_paths=("/opt/dtk",),
            docs="https://developer.sourcefind.cn/tool/",
        ),
        VendorSpec(
            "mthreads",
            "MThreads",
            "0x1ed5",
            "mthreads-gmi",
            ("mthreads-gmi",),
            lambda s: parse_mthreads_gmi(s.get("mthreads-gmi", "")),
            docs="https://developer.mthreads.com/sdk/download/CloudNative",
        ),
        VendorSpec(
            "iluvatar",
            "Iluvatar",
            "0x1e3e",
            "ixsmi",
            ("ixsmi",),
            lambda s: parse_ixsmi(s.get("ixsmi", "")),
            docs="https://github.com/Deep-Spark/ix-container-toolkit",
        ),
        VendorSpec(
            "metax",
            "MetaX",
            "0x9999",
            "mx-smi",
            ("mx-smi",),
            lambda s: parse_mx_smi(s.get("mx-smi", "")),
            toolkit_paths=("/opt/maca",),
            docs="https://developer.metax-tech.com/softnova/download?package_kind=SDK",
        ),
        VendorSpec(
            "cambricon",
            "Cambricon",
            "0xcabc",
            "cnmon",
            ("cnmon",),
            lambda s: parse_cnmon(s.get("cnmon", "")),
            toolkit_paths=("/usr/local/neuware",),
        ),
    )
}

VENDOR_BY_PCI_ID = {spec.pci_vendor_id: spec.key for spec in VENDORS.values()}
