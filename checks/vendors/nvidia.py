"""nvidia: how Preflight finds, runs and reads this vendor's driver tool and container toolkit."""

from ..facts import VendorReport
from ..parsers.nvidia import (
    merge_reports,
    parse_nvidia_smi_compute_cap,
    parse_nvidia_smi_query,
    parse_nvidia_smi_table,
    with_compute_capability,
)
from .spec import VendorSpec


def _parse(sections: dict[str, str]) -> VendorReport:
    table = parse_nvidia_smi_table(sections.get("nvidia-smi", ""))
    report = merge_reports(table, parse_nvidia_smi_query(sections.get("nvidia-smi-query", "")))
    return with_compute_capability(report, parse_nvidia_smi_compute_cap(sections.get("nvidia-smi-cc", "")))


SPEC = VendorSpec(
    "nvidia",
    "NVIDIA",
    "0x10de",
    "nvidia-smi",
    ("nvidia-smi", "nvidia-smi-query", "nvidia-smi-cc"),
    _parse,
    toolkit_tools=("nvidia-ctk", "nvidia-container-runtime"),
    docs="https://docs.nvidia.com/datacenter/cloud-native/container-toolkit",
    probe="""\
  pf_run nvidia-smi nvidia-smi
  pf_run nvidia-smi-query nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version --format=csv,noheader
  pf_run nvidia-smi-cc nvidia-smi --query-gpu=index,compute_cap --format=csv,noheader
  if pf_has nvidia-ctk; then pf_run nvidia-ctk nvidia-ctk --version; fi""",
)
