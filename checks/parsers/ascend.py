"""Huawei Ascend `npu-smi info`: the device table (driver version, chips, memory, bus ids)."""

import re

from ..facts import Device, VendorReport
from .tables import box_cells, pci_address

_VERSION = re.compile(r"Version:\s*([\w.\-]+)")


def parse_npu_smi_info(text: str) -> VendorReport:
    """`npu-smi info`: each chip is a pair of rows (NPU/name/health, then chip/bus/memory). HBM wins over DDR."""
    report = VendorReport(runtime_name="CANN")
    version = _VERSION.search(text)
    report.driver_version = version.group(1) if version else ""
    tool = re.search(r"npu-smi\s+([\w.\-]+)", text)
    report.tool_version = tool.group(1) if tool else ""
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        cells = box_cells(line)
        below = box_cells(lines[i + 1])
        if not cells or not below or len(cells) < 3 or len(below) < 3:
            continue
        head = re.match(r"(\d+)\s+(\S+)$", cells[0])
        bus = pci_address(below[1])
        if not head or not bus:
            continue
        sizes = re.findall(r"(\d+)\s*/\s*(\d+)", below[2])
        totals = [int(total) for _, total in sizes]
        memory = totals[1] if len(totals) > 1 and totals[1] > 0 else (totals[0] if totals else None)
        report.devices.append(
            Device(index=len(report.devices), model=f"Ascend {head.group(2)}", memory_mib=memory, pci_address=bus)
        )
    return report
