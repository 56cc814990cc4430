"""AMD (and Hygon, which ships a rocm-smi fork): `amd-smi static`, `rocm-smi --json`, `/opt/rocm/.info/version`."""

import json
import re
from typing import TypeAlias

from ..facts import Device, VendorReport
from .tables import memory_mib, pci_address

# `amd-smi static` as a tree: `KEY: value` leaves, `KEY:` branches holding the indented lines below them.
Tree: TypeAlias = dict[str, "str | Tree"]


def _indented_tree(text: str) -> Tree:
    """`KEY: value` lines nested by indentation, as `amd-smi static` prints them."""
    root: Tree = {}
    stack: list[tuple[int, Tree]] = [(-1, root)]
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
            child: Tree = {}
            parent[key.strip()] = child
            stack.append((indent, child))
    return root


def _branch(tree: Tree, key: str) -> Tree:
    """The section under `key`; empty when the node printed none, or printed a value where a section belongs."""
    value = tree.get(key)
    return value if isinstance(value, dict) else {}


def _leaf(tree: Tree, key: str) -> str:
    value = tree.get(key, "")
    return value if isinstance(value, str) else ""


def parse_amd_smi_static(text: str) -> VendorReport:
    report = VendorReport(runtime_name="ROCm")
    blocks = re.split(r"^(?=GPU: \d+)", text, flags=re.M)
    for block in blocks:
        head = re.match(r"GPU: (\d+)", block)
        if not head:
            continue
        tree = _indented_tree(block[head.end() :])
        asic, board = _branch(tree, "ASIC"), _branch(tree, "BOARD")
        serial = _leaf(asic, "ASIC_SERIAL") or _leaf(board, "PRODUCT_SERIAL")
        report.devices.append(
            Device(
                index=int(head.group(1)),
                model=_leaf(asic, "MARKET_NAME") or _leaf(board, "PRODUCT_NAME"),
                memory_mib=memory_mib(_leaf(_branch(tree, "VRAM"), "SIZE")),
                uuid="" if serial == "N/A" else serial,
                pci_address=pci_address(_leaf(_branch(tree, "BUS"), "BDF")),
            )
        )
        if not report.driver_version:
            report.driver_version = _leaf(_branch(tree, "DRIVER"), "VERSION")
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
