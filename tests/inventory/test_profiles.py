"""The built-in profiles against their sources: `gpustack-2.0` row by row against GPUStack's requirements page."""

import re

import pytest

from checks.spec import NodeContext, profile_spec_from_model
from inventory.choices import Vendor
from inventory.models import RequirementProfile
from inventory.services import profile_duplicate, profile_get_default

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


GATEWAY_PORTS = {18443, 15000, 9876, 15010, 15012, 8888, 15051, 15021, 15090, 15020}
# What GPUStack's prerun (`ports_for_services`, v2.2.3 and v2.3.0) binds on a server with default options: embedded
# PostgreSQL, the embedded gateway, built-in observability, then the server's own ports and the internal API.
SERVER_DEFAULT = {5432, *GATEWAY_PORTS, 13000, 19090, 80, 30079, 10161, 30080}
# prerun checks 10150 and 10151 on a worker; the inference range is the docs' (prerun reserves it against the
# ephemeral range, and a process holding one of its ports breaks a model instance later).
WORKER_DEFAULT = {10150, 10151, *range(40000, 40064)}


def _required(key: str, role: str, **options) -> set[int]:
    spec = profile_spec_from_model(RequirementProfile.objects.get(key=key))
    context = NodeContext("n", role, **options)
    return {p for r in spec.port_rules if context.applies(r) for p in range(r.first_port, r.last_port + 1)}


@pytest.mark.parametrize("key", ["gpustack-2.2", "gpustack-2.3"])
@pytest.mark.parametrize(
    ("_case", "role", "options", "expected"),
    [
        ("server, defaults", "server", {}, SERVER_DEFAULT),
        ("server with TLS", "server", {"tls_enabled": True}, SERVER_DEFAULT | {443}),
        ("gateway disabled", "server", {"gateway": "disabled"}, SERVER_DEFAULT - GATEWAY_PORTS - {30080}),
        ("external database", "server", {"external_database": True}, SERVER_DEFAULT - {5432}),
        ("no observability", "server", {"builtin_observability": False}, SERVER_DEFAULT - {19090, 13000}),
        ("worker, defaults", "worker", {}, WORKER_DEFAULT),
        ("worker, gateway embedded on the server", "worker", {"gateway": "embedded"}, WORKER_DEFAULT),
        ("worker, distributed vLLM", "worker", {"distributed_vllm": True}, WORKER_DEFAULT | set(range(41000, 42000))),
        ("server running a worker", "server", {"server_runs_worker": True}, SERVER_DEFAULT | WORKER_DEFAULT),
    ],
)
def test_refreshed_profiles_require_what_prerun_binds(key, _case, role, options, expected):
    # when
    required = _required(key, role, **options)
    # then
    assert required == expected


def test_gpustack_2_2_refreshed_to_v2_2_3():
    # given
    profile = RequirementProfile.objects.get(key="gpustack-2.2")
    ports = {(r.role, r.first_port, r.last_port) for r in profile.port_rules.all()}
    rules = {r.vendor: r for r in profile.accelerator_rules.all()}
    # then
    assert (profile.gpustack_release, profile.gpustack_commit) == ("v2.2.3", "1cfcbbff02aacdb51f0a390378dd7bcddd9bf365")
    assert ("server", 30079, 30079) in ports and ("worker", 41000, 41999) in ports
    assert not {p for p in ports if p[1] in (40064, 6379, 10001, 8265, 52365, 10002)}
    nvidia = rules["nvidia"]
    assert (nvidia.min_version, nvidia.min_version_of, nvidia.min_driver_version) == ("12.8", "CUDA", "570")
    assert (nvidia.min_compute_capability, nvidia.warn_compute_capability) == ("6.0", "7.0")
    assert (rules["amd"].min_version, rules["amd"].min_version_of) == ("7.0", "ROCm")
    assert {v for v, r in rules.items() if r.amd64_only} == {"hygon", "iluvatar", "metax", "mthreads", "cambricon"}
    assert profile.check_reserved_ports and profile.os_table_advisory and profile.docker_desktop_fails_on_worker
    assert not profile.is_default


@pytest.mark.parametrize("key", ["gpustack-2.2", "gpustack-2.3"])
def test_refreshed_profiles_add_thead_as_the_ninth_vendor(key):
    # given
    rules = {r.vendor: r for r in RequirementProfile.objects.get(key=key).accelerator_rules.all()}
    # then
    assert len(rules) == 9
    thead = rules["thead"]
    assert thead.experimental and thead.docker_runtime == "" and thead.min_version == ""
    assert (thead.driver_name, thead.toolkit_name) == ("T-Head PPU Driver", "T-Head PPU SDK")
    assert thead.driver_url.startswith("https://docs.gpustack.ai/")


def test_gpustack_2_3_has_the_rules_of_2_2_and_its_own_source():
    # given
    v22 = RequirementProfile.objects.get(key="gpustack-2.2")
    v23 = RequirementProfile.objects.get(key="gpustack-2.3")

    def rules(profile):
        spec = profile_spec_from_model(profile)
        return (spec.architectures, spec.os_rules, spec.accelerator_rules, set(spec.port_rules), spec.os_table_advisory)

    # then
    assert rules(v23) == rules(v22)
    assert (v23.gpustack_release, v23.gpustack_commit) == ("v2.3.0", "63a03ba")
    assert "2.3.0" in v23.source and v23.source != v22.source
    assert RequirementProfile.objects.get(key="gpustack-2.0").gpustack_release == "v2.0.0"


@pytest.mark.parametrize(
    ("_case", "setting", "expected"),
    [
        ("the setting names a profile", "gpustack-2.3", "gpustack-2.3"),
        ("empty: the profile marked default", "", "gpustack-2.0"),
        ("an unknown key: the profile marked default", "gpustack-9.9", "gpustack-2.0"),
    ],
)
def test_new_clusters_get_the_profile_the_setting_names(_case, setting, expected, settings):
    # given
    settings.PREFLIGHT_DEFAULT_PROFILE = setting
    # when
    profile = profile_get_default()
    # then
    assert profile.key == expected


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
