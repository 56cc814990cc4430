"""The experimental vendors' tools: Hygon `hy-smi`, Iluvatar `ixsmi`, MetaX `mx-smi`, MThreads `mthreads-gmi`,
Cambricon `cnmon`. Their layouts follow nvidia-smi's loosely; each parser reads only the columns it needs."""

import re

from ..facts import Device, VendorReport
from .tables import box_cells, memory_mib, pci_address, used_total_mib


def parse_hy_smi(text: str) -> VendorReport:
    """`hy-smi`: a plain DCU table (index, temperature, power, ...); no names or memory totals."""
    report = VendorReport(runtime_name="DTK")
    in_table = False
    for line in text.splitlines():
        if re.match(r"\s*DCU\s+Temp", line):
            in_table = True
            continue
        if in_table:
            match = re.match(r"\s*(\d+)\s+[\d.]+C\s", line)
            if match:
                report.devices.append(Device(index=int(match.group(1)), model="Hygon DCU"))
            elif line.startswith("="):
                in_table = False
    return report


def _paired_rows(text: str, head: re.Pattern[str]) -> list[tuple[re.Match[str], list[str], list[str] | None]]:
    """Rows whose first cell matches `head`, each with its cells and the cells of the row below."""
    lines = text.splitlines()
    pairs = []
    for i, line in enumerate(lines):
        cells = box_cells(line)
        if not cells:
            continue
        match = head.match(cells[0])
        if match:
            below = box_cells(lines[i + 1]) if i + 1 < len(lines) else None
            pairs.append((match, cells, below))
    return pairs


def _box_table_devices(text: str, head: re.Pattern[str]) -> list[Device]:
    """nvidia-smi-style boxes: index and name in the first cell, bus id in the second, memory in the row below."""
    devices = []
    for match, cells, below in _paired_rows(text, head):
        if len(cells) < 2 or not pci_address(cells[1]):
            continue
        devices.append(
            Device(
                index=int(match.group(1)),
                model=match.group(2).strip(),
                memory_mib=used_total_mib(below[1]) if below and len(below) > 1 else None,
                pci_address=pci_address(cells[1]),
            )
        )
    return devices


def parse_ixsmi(text: str) -> VendorReport:
    report = VendorReport(runtime_name="CUDA (CoreX)")
    header = re.search(r"IX-ML:\s*([\w.]+)\s+Driver Version:\s*([\w.]+)\s+CUDA Version:\s*([\w.]+)", text)
    if header:
        report.tool_version, report.driver_version, report.runtime_version = header.groups()
    report.devices = _box_table_devices(text, re.compile(r"(\d+)\s+(\S.*)$"))
    return report


def parse_mx_smi(text: str) -> VendorReport:
    report = VendorReport(runtime_name="MACA")
    driver = re.search(r"Kernel Mode Driver Version:\s*([\w.\-]+)", text)
    maca = re.search(r"MACA Version:\s*([\w.\-]+)", text)
    tool = re.search(r"MX-SMI\s+([\w.\-]+)", text)
    report.driver_version = driver.group(1) if driver else ""
    report.runtime_version = maca.group(1) if maca else ""
    report.tool_version = tool.group(1) if tool else ""
    report.devices = _box_table_devices(text, re.compile(r"(\d+)\s+(\S.*)$"))
    return report


def parse_mthreads_gmi(text: str) -> VendorReport:
    """`mthreads-gmi`: `ID Name |PCIe |%GPU Mem` rows; memory is printed as `TOTALMiB(...)`."""
    report = VendorReport(runtime_name="MUSA")
    driver = re.search(r"Driver Version:\s*([\w.\-]+)", text)
    tool = re.search(r"mthreads-gmi:\s*([\w.\-]+)", text)
    report.driver_version = driver.group(1) if driver else ""
    report.tool_version = tool.group(1) if tool else ""
    for line in text.splitlines():
        match = re.match(r"(\d+)\s+(.+?)\s*\|\s*([0-9a-fA-F:.]+)\s*\|\s*\S+\s+(\S+)", line)
        if match and pci_address(match.group(3)):
            report.devices.append(
                Device(
                    index=int(match.group(1)),
                    model=match.group(2).strip(),
                    memory_mib=memory_mib(match.group(4)),
                    pci_address=pci_address(match.group(3)),
                )
            )
    return report


def parse_cnmon(text: str) -> VendorReport:
    """`cnmon` table: `Card VF Name Firmware | Bus-Id | ...`; masked memory (`xxxxx MiB`) stays unknown."""
    report = VendorReport(runtime_name="NeuWare")
    header = re.search(r"CNMON\s+v?([\w.\-]+)\s+Driver\s+v?([\w.\-]+)", text)
    if header:
        report.tool_version, report.driver_version = header.groups()
    report.devices = _box_table_devices(text, re.compile(r"(\d+)\s+\S+\s+(\S+)"))
    return report
