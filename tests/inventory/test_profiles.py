"""The built-in profiles against their sources: `gpustack-2.0` row by row against GPUStack's requirements page."""

import re

import pytest

from inventory.choices import Vendor
from inventory.models import RequirementProfile
from inventory.services import profile_duplicate

pytestmark = pytest.mark.django_db

VENDOR_BY_LABEL = {label: value for value, label in Vendor.choices}


def _section(text: str, heading: str) -> str:
    """The lines under a markdown heading, up to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(heading)}\s*$(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert match, f"heading {heading!r} not found in the seed page"
    return match.group(1)


def _table_rows(section: str) -> list[list[str]]:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.strip().startswith("|")
    ]
    return [row for row in rows[2:]]  # header and the |---| rule


def _seed_os_table(text: str) -> set[tuple[str, str, str]]:
    rows = set()
    for name, versions in _table_rows(_section(text, "Operating System Requirements")):
        match = re.fullmatch(r"\\?>=\s*([\d.]+)\s*(?:\((.+)\))?", versions)
        assert match, f"unexpected version cell {versions!r}"
        rows.add((name, match.group(1), match.group(2) or ""))
    return rows


def _seed_ports(text: str) -> set[tuple[str, int, int, str, str]]:
    rules = set()
    for heading, role, condition in [
        ("Server Ports", "server", "always"),
        ("Worker Ports", "worker", "always"),
        ("Distributed vLLM with Ray Ports", "worker", "distributed_vllm"),
    ]:
        for port, purpose in _table_rows(_section(text, heading)):
            match = re.fullmatch(r"TCP (\d+)(?:-(\d+))?", port)
            if not match:
                assert port == "TCP <random>", f"unexpected port cell {port!r}"
                continue
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            cond = "tls" if "(TLS enabled)" in purpose else condition
            rules.add((role, first, last, purpose, cond))
    return rules


def _seed_vendors(text: str) -> dict[str, tuple[bool, str, str, str, str]]:
    checklist = re.findall(
        r"^- \[x\] (.+?)( \(Experimental\))?$", _section(text, "Accelerator Runtime Requirements"), re.M
    )
    vendors = {}
    for label, experimental in checklist:
        items = re.findall(r"^- (?:\[(.+?)\]\((.+?)\)|(.+))$", _section(text, label), re.M)
        assert len(items) == 2, f"{label}: expected a driver and a toolkit, got {items}"
        (d_link, d_url, d_plain), (t_link, t_url, t_plain) = items
        vendors[VENDOR_BY_LABEL[label]] = (bool(experimental), d_link or d_plain, d_url, t_link or t_plain, t_url)
    return vendors


def test_gpustack_2_0_os_table_matches_seed(seed_text):
    # given
    profile = RequirementProfile.objects.get(key="gpustack-2.0")
    # when
    ours = {(rule.name, rule.min_version, rule.note) for rule in profile.os_rules.all()}
    # then
    assert ours == _seed_os_table(seed_text)
    assert len(ours) == 7


def test_gpustack_2_0_vendors_match_seed(seed_text):
    profile = RequirementProfile.objects.get(key="gpustack-2.0")
    ours = {
        rule.vendor: (rule.experimental, rule.driver_name, rule.driver_url, rule.toolkit_name, rule.toolkit_url)
        for rule in profile.accelerator_rules.all()
    }
    seed = _seed_vendors(seed_text)
    assert ours == seed
    assert set(ours) == set(Vendor.values)


def test_gpustack_2_0_ports_match_seed(seed_text):
    profile = RequirementProfile.objects.get(key="gpustack-2.0")
    ours = {(r.role, r.first_port, r.last_port, r.purpose, r.condition) for r in profile.port_rules.all()}
    assert ours == _seed_ports(seed_text)
    assert {r.protocol for r in profile.port_rules.all()} == {"tcp"}


def test_gpustack_2_0_architectures_and_ntp(seed_text):
    profile = RequirementProfile.objects.get(key="gpustack-2.0")
    assert "**AMD64** and **ARM64**" in seed_text
    assert set(profile.architectures) == {"x86_64", "amd64", "aarch64", "arm64"}
    assert "NTP" in seed_text and profile.ntp_required
    assert profile.is_default and not profile.check_reserved_ports


def test_gpustack_2_2_differs_as_specified():
    # given
    profile = RequirementProfile.objects.get(key="gpustack-2.2")
    ports = {(r.role, r.first_port, r.last_port, r.condition) for r in profile.port_rules.all()}
    rules = {r.vendor: r for r in profile.accelerator_rules.all()}
    # then
    assert {("server", 30080, 30080, "always"), ("server", 5432, 5432, "always")} <= ports
    assert ("worker", 41000, 41999, "distributed_vllm") in ports
    assert not {p for p in ports if p[1] in (40064, 6379, 10001, 8265, 52365, 10002)}
    assert (rules["nvidia"].min_version, rules["nvidia"].min_version_of) == ("12.8", "CUDA")
    assert (rules["amd"].min_version, rules["amd"].min_version_of) == ("7.0", "ROCm")
    assert {v for v, r in rules.items() if r.amd64_only} == {"hygon", "iluvatar", "metax", "mthreads", "cambricon"}
    assert profile.check_reserved_ports and not profile.is_default


def test_profile_duplicate_copies_every_rule_and_leaves_original():
    # given
    original = RequirementProfile.objects.get(key="gpustack-2.0")
    counts = (original.os_rules.count(), original.accelerator_rules.count(), original.port_rules.count())
    # when
    copy = profile_duplicate(profile=original)
    again = profile_duplicate(profile=original)
    # then
    assert copy.key == "gpustack-2.0-copy" and again.key == "gpustack-2.0-copy-2"
    assert (copy.os_rules.count(), copy.accelerator_rules.count(), copy.port_rules.count()) == counts
    assert not copy.is_default and RequirementProfile.objects.get(key="gpustack-2.0").is_default
    assert (original.os_rules.count(), original.accelerator_rules.count(), original.port_rules.count()) == counts
