"""iluvatar: how Preflight finds, runs and reads this vendor's driver tool and container toolkit."""

from ..parsers.others import parse_ixsmi
from .spec import VendorSpec

SPEC = VendorSpec(
    "iluvatar",
    "Iluvatar",
    "0x1e3e",
    "ixsmi",
    ("ixsmi",),
    lambda s: parse_ixsmi(s.get("ixsmi", "")),
    docs="https://github.com/Deep-Spark/ix-container-toolkit",
)
