"""The stored facts summary (Node.last_facts, NodeAudit.facts) read through one typed, bounded, tolerant view."""

import json

from inventory.facts_summary import ITEMS_LIMIT, TEXT_LIMIT, FactsSummary
from tests.unit.test_catalog import node


def test_the_summary_an_audit_stores_reads_back_typed(read_fixture):
    # given the facts summary of a probed node, stored as JSON (what the database holds)
    facts = node(
        tools="nvidia-smi /usr/bin/nvidia-smi\npython3 /usr/bin/python3",
        pci="0000:0c:00.0 0x10de 0x030000 0x1e81",
        nvidia_smi=read_fixture("own:nvidia-smi/nge-capture_rtx-2080-super_610.57.04_idle_table.txt"),
    )
    facts.hostname = "w1"
    stored = json.loads(json.dumps(facts.summary()))
    # when it is read
    summary = FactsSummary.from_json(stored)
    # then each field is what the probe found
    assert summary.os_text == "Ubuntu 22.04.4 LTS" and (summary.os_id, summary.os_version_id) == ("ubuntu", "22.04")
    assert (summary.arch, summary.kernel, summary.hostname) == ("x86_64", "5.15.0", "w1")
    assert [a.vendor for a in summary.accelerators] == ["nvidia"]
    assert summary.accelerators[0].text.startswith("nvidia[0] ")
    assert [(d.vendor, d.driver_version) for d in summary.drivers] == [("nvidia", "610.57.04")]
    assert summary.firewall == stored["firewall"] and summary.python == stored["python"]


def test_missing_or_garbage_values_read_as_empty_and_strings_are_bounded():
    # given rows that are older than a field, or hold what a hostile node printed
    garbage = {
        "os": ["not", "a", "mapping"],
        "arch": {"x": 1},
        "kernel": True,
        "hostname": "h" * 100_000,
        "identity": "nope",
        "accelerators": [{"vendor": 5, "index": "0", "model": None}, "junk"] + [{}] * (ITEMS_LIMIT + 10),
        "drivers": {"amd": "not a mapping", "nvidia": {"toolkit": ["ok", 7, None, "x" * 1000]}},
        "docker": {"server_version": ["27"], "runtimes": "runc"},
        "gpustack_images": [1, "gpustack/gpustack:v2", None],
    }
    # when they are read
    empty, odd = FactsSummary.from_json(None), FactsSummary.from_json(garbage)
    # then nothing raises, wrong types read as empty, and every string and list is bounded
    assert empty == FactsSummary() and empty.os_text == "" and FactsSummary.from_json("[]") == FactsSummary()
    assert (odd.os_text, odd.arch, odd.kernel, odd.machine_id) == ("", "", "", "")
    assert odd.hostname == "h" * TEXT_LIMIT
    assert len(odd.accelerators) == ITEMS_LIMIT - 1 and odd.accelerators[0].vendor == "5"  # "junk" is dropped
    assert odd.accelerators[0].index is None and odd.accelerators[0].model == ""
    assert [(d.vendor, d.driver_version, d.toolkit) for d in odd.drivers] == [
        ("amd", "", ()),
        ("nvidia", "", ("ok", "x" * TEXT_LIMIT)),
    ]
    assert (odd.docker_version, odd.docker_runtimes) == ("", ())
    assert odd.gpustack_images == ("gpustack/gpustack:v2",)
