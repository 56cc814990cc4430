"""Shared readers for the box-drawn tables and `key : value` blocks that most vendor tools print."""

import re

_MEM = re.compile(r"(\d+(?:\.\d+)?)\s*(MiB|MB|GiB|GB|KiB|KB|B)\b", re.I)
_FACTORS = {"b": 1 / 1048576, "kib": 1 / 1024, "kb": 1 / 1024, "mib": 1, "mb": 1, "gib": 1024, "gb": 1024}
# No accelerator has an exbibyte of memory: a larger figure is a broken or hostile tool, never a device.
MAX_MEMORY_MIB = 1 << 40


class OutOfRange(ValueError):
    """A tool printed a number no real device has; the node's audit ends as `error` saying so."""


def _bounded_mib(value: float, printed: str) -> int:
    if not value < MAX_MEMORY_MIB:  # also catches inf and nan
        shown = printed if len(printed) <= 24 else f"{printed[:12]}...{printed[-6:]} ({len(printed)} digits)"
        raise OutOfRange(f"a memory size of {shown} is beyond any real device (at most {MAX_MEMORY_MIB} MiB)")
    return int(round(value))


def colon_pairs(text: str) -> dict[str, str]:
    """`Key : value` lines (first occurrence wins), whitespace around both trimmed."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            if key and key not in pairs:
                pairs[key] = value.strip()
    return pairs


def box_cells(line: str) -> list[str] | None:
    """The cells of a `| a | b |` table row, or None for rules, borders and non-table lines."""
    stripped = line.strip()
    if not stripped.startswith("|") or set(stripped) <= set("|+-=: "):
        return None
    return [cell.strip() for cell in stripped.strip("|").split("|")]


def memory_mib(text: str) -> int | None:
    """The first size in text as MiB (`81559MiB`, `64289 MB`, `32 GB`); None when absent or masked."""
    match = _MEM.search(text)
    if not match:
        return None
    return _bounded_mib(float(match.group(1)) * _FACTORS[match.group(2).lower()], match.group(1))


def used_total_mib(text: str) -> int | None:
    """The total of a `used / total` memory cell (`0MiB / 81559MiB`, `1867 / 15077`, `810/65536 MiB`)."""
    match = re.search(r"(\d+)\s*(?:MiB|MB)?\s*/\s*(\d+)\s*(MiB|MB|GiB|GB)?", text)
    if not match:
        return None
    unit = (match.group(3) or "MiB").lower()
    total = match.group(2)
    if len(total) > 18:
        return _bounded_mib(float("inf"), total)
    return _bounded_mib(int(total) * int(_FACTORS.get(unit, 1)), total)


def pci_address(text: str) -> str:
    """Normalise `00000000:01:00.0` and `0000:4F:00.0` to the kernel's `0000:01:00.0` / `0000:4f:00.0`."""
    match = re.search(r"(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])", text)
    if not match:
        return ""
    domain = (match.group(1) or "0000")[-4:]
    return f"{domain}:{match.group(2)}:{match.group(3)}.{match.group(4)}".lower()
