"""The inventory parser alone: pure text in, hosts out, no database."""

import pytest

from inventory.importers.ansible import InventoryError, expand_host_pattern, parse_inventory


@pytest.mark.parametrize(
    ("_case", "pattern", "expected"),
    [
        ("plain", "gpu01", ["gpu01"]),
        ("zero padded", "gpu[08:11]", ["gpu08", "gpu09", "gpu10", "gpu11"]),
        ("unpadded", "w[9:10]", ["w9", "w10"]),
        ("step", "w[1:7:3]", ["w1", "w4", "w7"]),
        ("letters", "n-[x:z].lab", ["n-x.lab", "n-y.lab", "n-z.lab"]),
        ("two ranges", "r[1:2]g[a:b]", ["r1ga", "r1gb", "r2ga", "r2gb"]),
    ],
)
def test_expand_host_pattern(_case, pattern, expected):
    assert expand_host_pattern(pattern, line=1, source="t") == expected


@pytest.mark.parametrize(
    ("_case", "pattern", "message"),
    [
        ("no end", "gpu[01:]", "invalid host range"),
        ("mixed", "gpu[1:b]", "both ends"),
        ("zero step", "gpu[1:4:0]", "at least 1"),
        ("bad step", "gpu[1:4:x]", "not a number"),
        ("unbalanced", "gpu[1:4", "unbalanced"),
        ("huge", "g[0:9999999]", "more than"),
    ],
)
def test_expand_host_pattern_errors(_case, pattern, message):
    with pytest.raises(InventoryError) as exc:
        expand_host_pattern(pattern, line=7, source="inv.ini")
    assert message in str(exc.value) and str(exc.value).startswith("inv.ini:7: ")


def test_ini_host_port_suffix_and_comments():
    inventory = parse_inventory("[workers]\ngpu1:2222 ansible_user=ops # the first one\n; note\n", source="x.ini")
    host = inventory.hosts["gpu1"]
    assert host.vars == {"ansible_port": "2222", "ansible_user": "ops"}
    assert host.groups == {"workers", "all"}


def test_ungrouped_hosts_and_all_vars_yaml():
    inventory = parse_inventory("all:\n  hosts:\n    lonely:\n  vars:\n    ansible_user: x\n", source="x.yml")
    assert inventory.hosts["lonely"].groups == {"all", "ungrouped"}
    assert inventory.hosts["lonely"].vars == {"ansible_user": "x"}
    assert inventory.hosts["lonely"].var_lines == {"ansible_user": 5}


@pytest.mark.parametrize(
    ("_case", "text", "source"),
    [
        ("binary garbage", "\x89PNG\r\n\x1a\n\x00\x00", "x.ini"),
        ("yaml scalar root", "just a string", "x.yml"),
        ("yaml list root", "- a\n- b\n", "x.yml"),
        ("empty yaml", "", "x.yml"),
    ],
)
def test_garbage_raises_inventory_error_not_crash(_case, text, source):
    with pytest.raises(InventoryError):
        parse_inventory(text, source=source)
