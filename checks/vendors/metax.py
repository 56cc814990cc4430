"""metax: how Preflight finds, runs and reads this vendor's driver tool and container toolkit."""

from ..parsers.others import parse_mx_smi
from .spec import VendorSpec

SPEC = VendorSpec(
    "metax",
    "MetaX",
    "0x9999",
    "mx-smi",
    ("mx-smi",),
    lambda s: parse_mx_smi(s.get("mx-smi", "")),
    toolkit_paths=("/opt/maca",),
    docs="https://developer.metax-tech.com/softnova/download?package_kind=SDK",
    path_dirs=("/opt/mxdriver/bin", "/opt/maca/bin"),
)
