"""NVIDIA `nvidia-smi`: the default table, `--query-gpu` CSV, `-L`, `--version`, and `-q -x` XML."""

import csv
import io
import re
from xml.etree import ElementTree

from ..facts import Device, VendorReport
from .tables import box_cells, colon_pairs, memory_mib, pci_address, used_total_mib

# The table header names the versions "Driver Version" / "CUDA Version" up to R590 and "KMD Version" / "CUDA UMD
# Version" from R610 on; drivers before R410 print no CUDA version at all.
_HEADER_DRIVER = re.compile(r"\b(?:Driver|KMD) Version:\s*([\w.\-]+)")
_HEADER_CUDA = re.compile(r"\bCUDA (?:UMD )?Version:\s*([\w.]+)")
_SMI_VERSION = re.compile(r"NVIDIA-SMI\s+([\w.\-]+)")


def parse_nvidia_smi_table(text: str) -> VendorReport:
    """The default `nvidia-smi` table: driver and CUDA version from the header, one device per GPU row pair."""
    report = VendorReport(runtime_name="CUDA")
    top = "\n".join(text.splitlines()[:8])  # the header box; device rows never carry these labels
    driver, cuda = _HEADER_DRIVER.search(top), _HEADER_CUDA.search(top)
    report.driver_version = driver.group(1) if driver else ""
    report.runtime_version = cuda.group(1) if cuda else ""
    smi = _SMI_VERSION.search(text)
    report.tool_version = smi.group(1) if smi else ""
    lines = text.splitlines()
    in_processes = False
    for i, line in enumerate(lines):
        if "Processes:" in line:
            in_processes = True
        cells = box_cells(line)
        if in_processes or not cells or len(cells) < 2:
            continue
        # The last word is Persistence-M (On/Off) on Linux, the driver model (WDDM/TCC/MCDM) on Windows.
        first = re.match(r"(\d+)\s+(.+?)\s+(On|Off|WDDM|TCC|MCDM)$", cells[0])
        if not first:
            continue
        device = Device(index=int(first.group(1)), model=first.group(2).strip(), pci_address=pci_address(cells[1]))
        following = box_cells(lines[i + 1]) if i + 1 < len(lines) else None
        if following and len(following) >= 2:
            device.memory_mib = used_total_mib(following[1])
        report.devices.append(device)
    return report


QUERY_FIELDS = ("index", "name", "uuid", "memory.total", "driver_version")


def parse_nvidia_smi_query(text: str, fields: tuple[str, ...] = QUERY_FIELDS) -> VendorReport:
    """`--query-gpu=...` CSV, with or without header and units; `[N/A]` cells become empty."""
    report = VendorReport(runtime_name="CUDA")
    try:
        rows = [r for r in csv.reader(io.StringIO(text), skipinitialspace=True) if r and any(c.strip() for c in r)]
    except csv.Error:  # not CSV at all (a giant line, binary garbage)
        return report
    if rows and any(cell.strip().startswith(("name", "index", "timestamp", "uuid")) for cell in rows[0][:3]):
        fields = tuple(re.sub(r"\s*\[.*\]$", "", cell.strip()) for cell in rows[0])
        rows = rows[1:]
    for position, row in enumerate(rows):
        values = {f: (row[i].strip() if i < len(row) else "") for i, f in enumerate(fields)}
        values = {k: ("" if v in ("[N/A]", "N/A", "[Not Supported]") else v) for k, v in values.items()}
        index = values.get("index", "")
        if values.get("name") is None or (index and not index.isdigit()):
            continue
        report.devices.append(
            Device(
                index=int(index) if index.isdigit() else position,
                model=values.get("name", ""),
                memory_mib=memory_mib(values["memory.total"] + " MiB") if values.get("memory.total") else None,
                uuid=values.get("uuid", ""),
                pci_address=pci_address(values.get("pci.bus_id", "")),
                compute_capability=values.get("compute_cap", "")
                if re.fullmatch(r"\d+\.\d+", values.get("compute_cap", ""))
                else "",
            )
        )
        report.driver_version = report.driver_version or values.get("driver_version", "")
    return report


_COMPUTE_CAP = re.compile(r"^\s*(\d+)\s*,\s*(\d+\.\d+)\s*$")


def parse_nvidia_smi_compute_cap(text: str) -> dict[int, str]:
    """`--query-gpu=index,compute_cap --format=csv,noheader`: GPU index -> compute capability ("6.0"). Drivers that
    do not know the field print `Field "compute_cap" is not a valid field to query.` and no row: an empty answer."""
    found: dict[int, str] = {}
    for line in text.splitlines()[:1024]:
        match = _COMPUTE_CAP.match(line[:200])
        if match:
            found.setdefault(int(match.group(1)), match.group(2))
    return found


def with_compute_capability(report: VendorReport, capabilities: dict[int, str]) -> VendorReport:
    for device in report.devices:
        device.compute_capability = device.compute_capability or capabilities.get(device.index, "")
    return report


def parse_nvidia_smi_list(text: str) -> VendorReport:
    """`nvidia-smi -L`: `GPU 0: NAME (UUID: GPU-...)`; MIG instances are listed under their GPU and not counted."""
    report = VendorReport(runtime_name="CUDA")
    for match in re.finditer(r"^GPU (\d+): (.+?) \(UUID: ([^)]+)\)", text, re.M):
        report.devices.append(Device(index=int(match.group(1)), model=match.group(2), uuid=match.group(3)))
    return report


def parse_nvidia_smi_version(text: str) -> VendorReport:
    """`nvidia-smi --version`. From R610 on, "DRIVER version" and "CUDA version" say `Deprecated, see ...` and
    the versions are under "KMD version" and "CUDA UMD version"."""
    pairs = {key.lower(): value for key, value in colon_pairs(text).items() if not value.startswith("Deprecated")}
    return VendorReport(
        driver_version=pairs.get("kmd version") or pairs.get("driver version", ""),
        runtime_version=pairs.get("cuda umd version") or pairs.get("cuda version", ""),
        runtime_name="CUDA",
        tool_version=pairs.get("nvidia-smi version", ""),
    )


def parse_nvidia_smi_xml(text: str) -> VendorReport:
    """`nvidia-smi -q -x`: driver and CUDA version, and per GPU the product name, UUID, bus id and FB memory."""
    report = VendorReport(runtime_name="CUDA")
    try:
        root = ElementTree.fromstring(re.sub(r"<!DOCTYPE[^>]*>", "", text))
    except ElementTree.ParseError:
        return report
    report.driver_version = (root.findtext("driver_version") or "").strip()
    report.runtime_version = (root.findtext("cuda_version") or "").strip()
    for index, gpu in enumerate(root.findall("gpu")):
        total = gpu.findtext("fb_memory_usage/total") or ""
        report.devices.append(
            Device(
                index=int(gpu.findtext("minor_number") or index)
                if (gpu.findtext("minor_number") or "").isdigit()
                else index,
                model=(gpu.findtext("product_name") or "").strip(),
                memory_mib=memory_mib(total),
                uuid=(gpu.findtext("uuid") or "").strip(),
                pci_address=pci_address(gpu.get("id", "")),
            )
        )
    return report


def merge_reports(primary: VendorReport, secondary: VendorReport) -> VendorReport:
    """Fill what the table lacks (UUIDs) from the query CSV, matching devices by index."""
    by_index = {d.index: d for d in secondary.devices}
    for device in primary.devices:
        other = by_index.get(device.index)
        if other:
            device.uuid = device.uuid or other.uuid
            device.memory_mib = device.memory_mib or other.memory_mib
            device.model = device.model or other.model
    if not primary.devices:
        primary.devices = secondary.devices
    primary.driver_version = primary.driver_version or secondary.driver_version
    primary.runtime_version = primary.runtime_version or secondary.runtime_version
    return primary


def parse_nvidia_ctk_version(text: str) -> str:
    """`nvidia-ctk --version`: "NVIDIA Container Toolkit CLI version 1.17.8" -> "1.17.8"."""
    match = re.search(r"version\s+v?(\d+(?:\.\d+)+)", text)
    return match.group(1) if match else ""
