"""cambricon: how Preflight finds, runs and reads this vendor's driver tool and container toolkit."""

from ..parsers.others import parse_cnmon
from .spec import VendorSpec

SPEC = VendorSpec(
    "cambricon",
    "Cambricon",
    "0xcabc",
    "cnmon",
    ("cnmon",),
    lambda s: parse_cnmon(s.get("cnmon", "")),
    toolkit_paths=("/usr/local/neuware",),
    path_dirs=("/usr/local/neuware/bin",),
)
