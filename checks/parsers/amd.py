"""AMD (and Hygon, which ships a rocm-smi fork): `amd-smi static`, `rocm-smi --json`, `/opt/rocm/.info/version`."""

import json
import re

from ..facts import Device, VendorReport
from .tables import memory_mib, pci_address


def _indented_tree(text: str) -> dict:
    """`KEY: value` lines nested by indentation, as `amd-smi static` prints them."""
    root: dict = {}
    stack: list[tuple[int, dict]] = [(-1, root)]
    for line in text.splitlines():
        if not line.strip() or ":" not in line:
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else root
        value = value.strip()
        if value:
            parent.setdefault(key.strip(), value)
        else:
            child: dict = {}
            parent[key.strip()] = child
            stack.append((indent, child))
    return root


def parse_amd_smi_static(text: str) -> VendorReport:
    report = VendorReport(runtime_name="ROCm")
    blocks = re.split(r"^(?=GPU: \d+)", text, flags=re.M)
    for block in blocks:
        head = re.match(r"GPU: (\d+)", block)
        if not head:
            continue
        tree = _indented_tree(block[head.end() :])
        asic, board, vram = tree.get("ASIC", {}), tree.get("BOARD", {}), tree.get("VRAM", {})
        model = asic.get("MARKET_NAME") or board.get("PRODUCT_NAME") or ""
        serial = asic.get("ASIC_SERIAL") or board.get("PRODUCT_SERIAL") or ""
        report.devices.append(
            Device(
                index=int(head.group(1)),
                model=model,
                memory_mib=memory_mib(vram.get("SIZE", "")) if isinstance(vram, dict) else None,
                uuid="" if serial == "N/A" else serial,
                pci_address=pci_address(tree.get("BUS", {}).get("BDF", ""))
                if isinstance(tree.get("BUS"), dict)
                else "",
            )
        )
        driver = tree.get("DRIVER", {})
        if isinstance(driver, dict) and not report.driver_version:
            report.driver_version = driver.get("VERSION", "")
    return report


def parse_rocm_smi_json(text: str) -> VendorReport:
    """`rocm-smi --showproductname --showmeminfo vram --showbus --showserial --json`, across ROCm 4 to 6 and DTK."""
    report = VendorReport(runtime_name="ROCm")
    try:
        data = json.loads(text)
    except ValueError:
        return report
    if not isinstance(data, dict):
        return report
    system = data.get("system", {})
    if isinstance(system, dict):
        report.driver_version = system.get("Driver version", "")
    for key, card in data.items():
        match = re.fullmatch(r"card(\d+)", key)
        if not match or not isinstance(card, dict):
            continue
        fields = {k.lower(): v for k, v in card.items() if isinstance(v, str)}
        # "Card model" is often only the PCI device id (0x0c34); a hex id is no model name.
        model = next(
            (
                fields[k]
                for k in ("card series", "device name", "card model")
                if fields.get(k) and fields[k] != "N/A" and not fields[k].startswith("0x")
            ),
            "",
        )
        memory = None
        if fields.get("vram total memory (b)", "").isdigit():
            memory = int(fields["vram total memory (b)"]) // 1048576
        elif fields.get("vram total memory (mib)", "").isdigit():
            memory = int(fields["vram total memory (mib)"])
        serial = fields.get("serial number", "")
        uuid = serial if serial not in ("", "N/A") else fields.get("unique id", "")
        uuid = "" if uuid == "N/A" else uuid
        report.devices.append(
            Device(
                index=int(match.group(1)),
                model=model,
                memory_mib=memory,
                uuid=uuid,
                pci_address=pci_address(fields.get("pci bus", "")),
            )
        )
    report.devices.sort(key=lambda d: d.index)
    return report


def parse_rocm_version(text: str) -> str:
    """`/opt/rocm/.info/version` (e.g. `6.2.4-120`) to `6.2.4`."""
    match = re.search(r"\d+\.\d+(?:\.\d+)?", text)
    return match.group(0) if match else ""


def parse_rocminfo_agents(text: str) -> list[str]:
    """GPU agent names (`gfx1101`) from `rocminfo`: the ISA names of agents whose Device Type is GPU."""
    names = []
    for block in re.split(r"\*{5,}\s*\nAgent \d+\s*\n\*{5,}", text)[1:]:
        if re.search(r"Device Type:\s+GPU", block):
            name = re.search(r"^\s+Name:\s+(\S+)", block, re.M)
            if name:
                names.append(name.group(1))
    return names
