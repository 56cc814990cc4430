"""Tolerant version comparison for distro, driver and runtime versions ("22.03", "15.3", "12.8", "6.2.4-120")."""

import re


def version_tuple(text: str) -> tuple[int, ...]:
    """The leading dotted numbers of a version: "22.03 (LTS-SP1)" -> (22, 3); "" -> ()."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text or "")
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def version_at_least(current: str, minimum: str) -> bool | None:
    """True/False by numeric comparison (missing parts count as 0); None when either side has no number."""
    have, want = version_tuple(current), version_tuple(minimum)
    if not have or not want:
        return None
    width = max(len(have), len(want))
    return have + (0,) * (width - len(have)) >= want + (0,) * (width - len(want))
