"""T-Head PPU `ppu-smi`: the device list (`-L`) and the CSV query (`--query-ppu=... --format=csv,nounits`).

`ppu-smi` models `nvidia-smi` (Alibaba Cloud's PPU-SMI manual): `-L` prints `PPU <index>: <name> (UUID: <uuid>)`,
and the query prints a header row naming its fields, then one row per device, memory in MiB without units.
"""

import re

from ..facts import Device, VendorReport
from .nvidia import merge_reports, parse_nvidia_smi_query

PPU_QUERY_FIELDS = ("index", "name", "uuid", "pci.bus_id", "memory.total", "driver_version")
_LIST_LINE = re.compile(r"^PPU (\d{1,4}): (.{0,200}?) \(UUID: ([^)\s]{1,128})\)\s*$", re.M)


def parse_ppu_smi_list(text: str) -> VendorReport:
    """`ppu-smi -L`: one device per `PPU N: NAME (UUID: ...)` line; anything else (MIG lines, errors) is ignored."""
    report = VendorReport()
    for match in _LIST_LINE.finditer(text):
        report.devices.append(Device(index=int(match.group(1)), model=match.group(2).strip(), uuid=match.group(3)))
    return report


def parse_ppu_smi_query(text: str) -> VendorReport:
    """The CSV query: model, UUID, bus id and memory per device, and the driver version. Columns are read by the
    header row when there is one, else in the order Preflight asks for them."""
    report = parse_nvidia_smi_query(text, PPU_QUERY_FIELDS)
    report.runtime_name = ""
    return report


def parse_ppu(list_text: str, query_text: str) -> VendorReport:
    """The list is authoritative for which devices exist; the query fills model, memory, bus id and driver."""
    listed = parse_ppu_smi_list(list_text)
    queried = parse_ppu_smi_query(query_text) if query_text else VendorReport()
    by_index = {d.index: d for d in queried.devices}
    for device in listed.devices:
        other = by_index.get(device.index)
        if other and (not other.uuid or other.uuid == device.uuid):
            device.pci_address = device.pci_address or other.pci_address
            if other.model:
                device.model = other.model
    return merge_reports(listed, queried)
