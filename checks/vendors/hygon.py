"""hygon: how Preflight finds, runs and reads this vendor's driver tool and container toolkit."""

from ..facts import VendorReport
from ..parsers.amd import parse_rocm_smi_json
from ..parsers.others import parse_hy_smi
from .spec import VendorSpec


def _parse(sections: dict[str, str]) -> VendorReport:
    report = parse_hy_smi(sections.get("hy-smi", ""))
    named = parse_rocm_smi_json(sections.get("hygon-rocm-smi", ""))
    by_index = {d.index: d for d in named.devices}
    for device in report.devices:
        if device.index in by_index:
            other = by_index[device.index]
            device.model, device.memory_mib, device.uuid = other.model or device.model, other.memory_mib, other.uuid
    return report


SPEC = VendorSpec(
    "hygon",
    "Hygon",
    "0x1d94",
    "hy-smi",
    ("hy-smi",),
    _parse,
    toolkit_paths=("/opt/dtk",),
    docs="https://developer.sourcefind.cn/tool/",
    path_dirs=("/opt/dtk/bin",),
    probe="""\
  pf_run hy-smi hy-smi
  if pf_has rocm-smi; then
    pf_run hygon-rocm-smi rocm-smi --showproductname --showmeminfo vram --showserial --json
  fi""",
)
