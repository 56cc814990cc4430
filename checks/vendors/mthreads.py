"""mthreads: how Preflight finds, runs and reads this vendor's driver tool and container toolkit."""

from ..parsers.others import parse_mthreads_gmi
from .spec import VendorSpec

SPEC = VendorSpec(
    "mthreads",
    "MThreads",
    "0x1ed5",
    "mthreads-gmi",
    ("mthreads-gmi",),
    lambda s: parse_mthreads_gmi(s.get("mthreads-gmi", "")),
    docs="https://developer.mthreads.com/sdk/download/CloudNative",
)
