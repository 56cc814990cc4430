"""What a vendor module declares: data, not logic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..facts import VendorReport

# PCI classes that make a device an accelerator: display (0x03), processing accelerator (0x12), co-processor (0x0b).
ACCELERATOR_CLASS_PREFIXES = ("0x03", "0x12", "0x0b")


@dataclass(frozen=True)
class VendorSpec:
    key: str
    label: str
    pci_vendor_id: str
    tool: str  # the driver tool whose presence makes the vendor apply
    sections: tuple[str, ...]  # probe sections holding the tool's output, first is authoritative
    parse: Callable[[dict[str, str]], VendorReport]
    toolkit_tools: tuple[str, ...] = ()
    toolkit_paths: tuple[str, ...] = ()
    docs: str = ""
    extra_tools: tuple[str, ...] = field(default=())
    path_dirs: tuple[str, ...] = ()  # where the vendor installs its tools, added to the probe's PATH
    probe_paths: tuple[str, ...] = ()  # files whose presence the probe reports (besides the toolkit paths)
    # The probe's lines for this vendor (POSIX sh, run when its device is on the bus or its tool on PATH); by default
    # the tool run bare into the first section.
    probe: str = ""
    # A directory that must hold a CDI spec (*.json, *.yaml) for containers to get the devices: the vendor's probe
    # lines list its spec files into the `cdi-specs` section.
    cdi_dir: str = ""
    # A vendor that only profiles naming it support (T-Head: GPUStack v2.2 on): without an AcceleratorRule for it in
    # the profile, its devices are reported but not judged.
    needs_rule: bool = False

    @property
    def probe_block(self) -> str:
        condition = " || ".join(
            [f"pf_vendor {self.pci_vendor_id}", *(f"pf_has {t}" for t in (self.tool, *self.extra_tools))]
        )
        body = self.probe or f"  pf_run {self.sections[0]} {self.tool}"
        return f"if {condition}; then\n{body}\nfi"
