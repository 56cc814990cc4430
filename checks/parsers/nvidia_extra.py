"""Further nvidia-smi outputs an operator pastes or Preflight may probe: `-q` text, `topo -m`, and MIG listings."""

import csv
import io
import re

from ..facts import Device, VendorReport
from .tables import box_cells, memory_mib, pci_address

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_nvidia_smi_q(text: str) -> VendorReport:
    """`nvidia-smi -q`: driver and CUDA versions, and per `GPU <bus id>` block its product name, UUID, FB total."""
    report = VendorReport(runtime_name="CUDA")
    # R610 and later: "KMD Version" / "CUDA UMD Version" (the old names remain for a while, marked deprecated)
    driver = re.search(r"^KMD Version\s*:\s*(\S+)", text, re.M) or re.search(r"^Driver Version\s*:\s*(\S+)", text, re.M)
    cuda = re.search(r"^CUDA UMD Version\s*:\s*(\S+)", text, re.M) or re.search(
        r"^CUDA Version\s*:\s*(\S+)", text, re.M
    )
    report.driver_version = driver.group(1) if driver else ""
    report.runtime_version = cuda.group(1) if cuda else ""
    blocks = re.split(r"^GPU ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)\s*$", text, flags=re.M)
    for index, (bus, body) in enumerate(zip(blocks[1::2], blocks[2::2], strict=False)):
        name = re.search(r"^\s+Product Name\s*:\s*(.+)$", body, re.M)
        uuid = re.search(r"^\s+GPU UUID\s*:\s*(\S+)", body, re.M)
        fb = re.search(r"FB Memory Usage\s*\n\s+Total\s*:\s*(.+)", body)
        minor = re.search(r"^\s+Minor Number\s*:\s*(\d+)", body, re.M)
        report.devices.append(
            Device(
                index=int(minor.group(1)) if minor else index,
                model=name.group(1).strip() if name else "",
                memory_mib=memory_mib(fb.group(1)) if fb else None,
                uuid=uuid.group(1) if uuid else "",
                pci_address=pci_address(bus),
            )
        )
    return report


def parse_nvidia_smi_topo(text: str) -> list[str]:
    """`nvidia-smi topo -m`: the GPU columns of the matrix header (GPU0, GPU1, ...)."""
    for line in text.splitlines():
        clean = _ANSI.sub("", line)
        if "CPU Affinity" in clean:
            return re.findall(r"\bGPU\d+\b", clean)
    return []


def parse_nvidia_mig_list(text: str) -> dict[int, list[str]]:
    """`nvidia-smi -L` with MIG: GPU index -> the MIG device profiles under it (e.g. ['2g.12gb', '1g.6gb'])."""
    devices: dict[int, list[str]] = {}
    current = None
    for line in text.splitlines():
        gpu = re.match(r"GPU (\d+):", line)
        if gpu:
            current = int(gpu.group(1))
            devices[current] = []
            continue
        mig = re.match(r"\s+MIG (\S+)\s+Device\s+\d+:", line)
        if mig and current is not None:
            devices[current].append(mig.group(1))
    return devices


def parse_nvidia_mig_table(text: str) -> list[dict[str, str]]:
    """`nvidia-smi mig -lgip | -lgi | -lci`: one dict per MIG row with the GPU index, profile name and the numbers."""
    rows = []
    for line in text.splitlines():
        cells = box_cells(line)
        if not cells:
            continue
        match = re.match(r"(\d+)\s+(?:(\d+)\s+)?MIG (\S+)\s+(.*)$", cells[0])
        if match:
            rows.append(
                {
                    "gpu": match.group(1),
                    "gpu_instance": match.group(2) or "",
                    "profile": match.group(3),
                    "values": match.group(4).split(),
                }
            )
    return rows


def parse_nvidia_mig_mode(text: str) -> dict[str, str]:
    """`--query-gpu=pci.bus_id,mig.mode.current --format=csv`: bus id -> Enabled / Disabled."""
    modes = {}
    try:
        for row in csv.reader(io.StringIO(text), skipinitialspace=True):
            if len(row) >= 2 and pci_address(row[0]):
                modes[pci_address(row[0])] = row[1].strip()
    except csv.Error:
        return {}
    return modes
