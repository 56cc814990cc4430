"""amd: how Preflight finds, runs and reads this vendor's driver tool and container toolkit."""

from ..facts import VendorReport
from ..parsers.amd import parse_amd_smi_static, parse_rocm_smi_json
from .spec import VendorSpec


def _parse(sections: dict[str, str]) -> VendorReport:
    report = parse_amd_smi_static(sections["amd-smi"]) if sections.get("amd-smi") else VendorReport()
    if not report.devices and sections.get("rocm-smi"):
        fallback = parse_rocm_smi_json(sections["rocm-smi"])
        report.devices, report.driver_version = fallback.devices, report.driver_version or fallback.driver_version
    report.runtime_name = "ROCm"
    return report


SPEC = VendorSpec(
    "amd",
    "AMD",
    "0x1002",
    "amd-smi",
    ("amd-smi", "rocm-smi"),
    _parse,
    toolkit_tools=("amd-ctk",),
    extra_tools=("rocm-smi",),
    docs="https://instinct.docs.amd.com/projects/container-toolkit/en/latest/container-runtime/overview.html",
    path_dirs=("/opt/rocm/bin",),
    probe_paths=("/opt/rocm/.info/version",),
    probe="""\
  if pf_has amd-smi; then pf_run amd-smi amd-smi static; fi
  if pf_has rocm-smi; then
    pf_run rocm-smi rocm-smi --showproductname --showmeminfo vram --showbus --showserial --showdriverversion --json
  fi
  if [ -r /opt/rocm/.info/version ]; then pf_cat rocm-version /opt/rocm/.info/version; fi""",
)
