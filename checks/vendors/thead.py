"""thead: T-Head PPU (Alibaba). Found by PCI vendor id 0x1ded (gpustack/runtime `detector/thead.py`), read with
`ppu-smi`, which ships in the PPU SDK under /usr/local/PPU_SDK. GPUStack hands the devices (/dev/alixpu,
/dev/alixpu_ctl, /dev/alixpu_ppu<N>) to containers through CDI, so there is no Docker runtime: the toolkit is the
SDK directory plus the CDI directory /var/run/cdi. GPUStack's runtime writes the PPU spec there itself at deployment
(`GPUSTACK_RUNTIME_DOCKER_CDI_SPECS_GENERATE`, on by default, "requires GPUSTACK_RUNTIME_DEPLOY_CDI_SPECS_DIRECTORY
to exist": gpustack/runtime `envs.py`, `deployer/docker.py`, `deployer/cdi/thead.py`), so the directory is required
and a spec already there is reported, not required (the code wins over the spec's "must hold a spec")."""

from ..facts import VendorReport
from ..parsers.ppu import PPU_QUERY_FIELDS, parse_ppu
from .spec import VendorSpec

SDK_DIR = "/usr/local/PPU_SDK"
CDI_DIR = "/var/run/cdi"


def _parse(sections: dict[str, str]) -> VendorReport:
    return parse_ppu(sections.get("ppu-smi", ""), sections.get("ppu-smi-query", ""))


SPEC = VendorSpec(
    "thead",
    "T-Head PPU",
    "0x1ded",
    "ppu-smi",
    ("ppu-smi", "ppu-smi-query"),
    _parse,
    toolkit_paths=(SDK_DIR,),
    docs="https://help.aliyun.com/zh/document_detail/2879821.html",
    path_dirs=(f"{SDK_DIR}/bin", f"{SDK_DIR}/ppu-smi/bin"),
    probe_paths=("/dev/alixpu", "/dev/alixpu_ctl"),
    cdi_dir=CDI_DIR,
    needs_rule=True,
    probe=f"""\
  pf_run ppu-smi ppu-smi -L
  pf_run ppu-smi-query ppu-smi --query-ppu={",".join(PPU_QUERY_FIELDS)} --format=csv,nounits
  pf_begin cdi-specs
  if [ -d {CDI_DIR} ]; then echo "dir {CDI_DIR}"; fi
  for f in {CDI_DIR}/*; do case "$f" in *.json|*.yaml|*.yml) [ -f "$f" ] && echo "$f" ;; esac; done
  pf_end cdi-specs 0""",
)
