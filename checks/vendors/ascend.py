"""ascend: how Preflight finds, runs and reads this vendor's driver tool and container toolkit."""

from ..parsers.ascend import parse_npu_smi_info
from .spec import VendorSpec

SPEC = VendorSpec(
    "ascend",
    "Ascend",
    "0x19e5",
    "npu-smi",
    ("npu-smi",),
    lambda s: parse_npu_smi_info(s.get("npu-smi", "")),
    toolkit_tools=("ascend-docker-runtime",),
    toolkit_paths=("/usr/local/Ascend/Ascend-Docker-Runtime",),
    docs="https://www.hiascend.com/document/detail/zh/mindcluster/72rc1/clustersched/dlug/dlug_installation_017.html",
    path_dirs=("/usr/local/Ascend/driver/tools",),
    probe="""\
  pf_run npu-smi npu-smi info""",
)
