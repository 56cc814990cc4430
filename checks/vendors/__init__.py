"""The accelerator vendors: one module each (PCI id, driver tool and its parser, the probe lines that call it,
toolkit markers, docs). Adding a vendor is one module here, listed in `_MODULES`, plus fixtures and tests: the probe,
the facts, the check ids and the vendor lists elsewhere are derived from `VENDORS`."""

from __future__ import annotations

from . import amd, ascend, cambricon, hygon, iluvatar, metax, mthreads, nvidia, thead
from .spec import ACCELERATOR_CLASS_PREFIXES, VendorSpec

_MODULES = (nvidia, amd, ascend, hygon, mthreads, iluvatar, metax, cambricon, thead)
VENDORS: dict[str, VendorSpec] = {module.SPEC.key: module.SPEC for module in _MODULES}
VENDOR_BY_PCI_ID = {spec.pci_vendor_id: spec.key for spec in VENDORS.values()}


def probe_tools() -> tuple[str, ...]:
    """Every vendor binary whose path the probe reports."""
    names = [t for s in VENDORS.values() for t in (s.tool, *s.extra_tools, *s.toolkit_tools)]
    return tuple(dict.fromkeys(names))


def probe_paths() -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for s in VENDORS.values() for p in (*s.toolkit_paths, *s.probe_paths)))


def probe_path_dirs() -> tuple[str, ...]:
    return tuple(dict.fromkeys(d for s in VENDORS.values() for d in s.path_dirs))


def probe_blocks() -> str:
    return "\n".join(spec.probe_block for spec in VENDORS.values())


__all__ = ["ACCELERATOR_CLASS_PREFIXES", "VENDORS", "VENDOR_BY_PCI_ID", "VendorSpec", "probe_blocks"]
