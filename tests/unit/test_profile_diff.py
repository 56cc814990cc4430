"""The profile diff: pure, plain data in and out."""

from inventory.profile_diff import PortRow, ProfileRules, profile_diff

BASE = ProfileRules(
    key="gpustack-2.0",
    ports=(
        PortRow("server", 80, 80, "tcp", "always"),
        PortRow("worker", 10150, 10150, "tcp", "always"),
        PortRow("worker", 40064, 40095, "tcp", "always"),
        PortRow("worker", 6379, 6379, "tcp", "distributed_vllm"),
        PortRow("worker", 10002, 19999, "tcp", "distributed_vllm"),
    ),
    accelerators={
        "nvidia": {"min_version": "", "min_version_of": ""},
        "amd": {"min_version": "6.2", "min_version_of": "ROCm"},
    },
    os_minimums={"ubuntu": ("Ubuntu", "20.04"), "debian": ("Debian", "11")},
)
NEWER = ProfileRules(
    key="gpustack-2.3",
    release="v2.3.0",
    commit="63a03ba",
    ports=(
        PortRow("server", 80, 80, "tcp", "always"),
        PortRow("server", 30079, 30079, "tcp", "always"),
        PortRow("server", 15021, 15021, "tcp", "gateway_embedded"),
        PortRow("server", 15020, 15020, "tcp", "gateway_embedded"),
        PortRow("server", 18443, 18443, "tcp", "gateway_embedded"),
        PortRow("worker", 10150, 10150, "tcp", "always"),
        PortRow("worker", 41000, 41999, "tcp", "distributed_vllm"),
    ),
    accelerators={
        "nvidia": {"min_version": "12.8", "min_version_of": "CUDA", "min_driver_version": "570"},
        "amd": {"min_version": "7.0", "min_version_of": "ROCm"},
        "thead": {},
    },
    amd64_only=frozenset({"hygon"}),
    os_minimums={"ubuntu": ("Ubuntu", "22.04")},
    flags={"os_table_advisory": True},
)


def test_diff_names_ports_added_and_removed_by_role_and_condition():
    # when
    diff = profile_diff(BASE, NEWER)
    # then
    assert [str(c) for c in diff.ports_added] == [
        "server 30079",
        "server 15020-15021, 18443 (when the embedded gateway runs)",
        "worker 41000-41999 (when distributed vLLM is enabled)",
    ]
    assert [str(c) for c in diff.ports_removed] == [
        "worker 40064-40095",
        "worker 6379, 10002-19999 (when distributed vLLM is enabled)",
    ]
    assert (diff.key, diff.base, diff.release, diff.commit) == ("gpustack-2.3", "gpustack-2.0", "v2.3.0", "63a03ba")


def test_diff_names_new_and_raised_minimums_vendors_and_rules():
    # when
    diff = profile_diff(BASE, NEWER)
    # then
    assert diff.minimums == (
        "AMD GPU: ROCm >= 7.0 (was 6.2)",
        "NVIDIA GPU: CUDA >= 12.8 (new)",
        "NVIDIA GPU: driver >= 570 (new)",
    )
    assert diff.vendors_added == ("thead",) and diff.vendors_removed == ()
    assert diff.rules == (
        "AMD64 only: Hygon DCU",
        "OS table: Debian no longer listed",
        "OS table: Ubuntu >= 22.04 (was 20.04)",
        "The OS table is advice: a distro below it or not in it warns",
    )


def test_a_profile_against_itself_is_empty_and_the_reverse_swaps_added_and_removed():
    # when
    same = profile_diff(NEWER, NEWER)
    back = profile_diff(NEWER, BASE)
    # then
    assert same.empty and not profile_diff(BASE, NEWER).empty
    assert [str(c) for c in back.ports_removed][0] == "server 30079"
    assert "NVIDIA GPU: CUDA >= 12.8: no longer" in back.minimums and back.vendors_removed == ("thead",)
