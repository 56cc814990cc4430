"""Hostile inventory files: an alias bomb, Python tags, non-scalar ansible_* values, huge values echoed in errors,
oversized uploads, a range that makes 100,000 nodes, and a fuzz run of both upload doors. Never a 5xx."""

import re
import time
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.importers.ansible import (
    MAX_CHILD_LINKS,
    MAX_GROUPS,
    MAX_INHERITED,
    InventoryError,
    parse_inventory,
)
from inventory.models import Cluster, Node
from inventory.services import inventory_import, upload_text

pytestmark = pytest.mark.django_db

API = "/api/v1"

# The classic "billion laughs" as an Ansible inventory: 577 bytes that expand to ~14 GB once values become strings.
ALIAS_BOMB = """\
workers:
  vars:
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    ansible_user: *i
  hosts:
    gpu1:
"""
PYTHON_TAG = "workers:\n  hosts:\n    gpu1:\n      ansible_host: !!python/object/apply:os.system ['touch /tmp/pwned']\n"


@pytest.fixture
def importer(token_client, staff):
    perms = (
        "inventory.add_node",
        "inventory.change_node",
        "inventory.add_cluster",
        "inventory.change_cluster",
        "inventory.view_node",
    )
    return {"api": token_client(*perms), "admin": staff(*perms)}


def _post(importer, door: str, name: str, content: bytes):
    upload = SimpleUploadedFile(name, content)
    if door == "api":
        return importer["api"].post(f"{API}/inventory/import", {"file": upload})
    return importer["admin"].post(reverse("admin:inventory_cluster_import"), {"file": upload})


def _error_text(response) -> str:
    if response["Content-Type"].startswith("application/json"):
        return response.json()["message"]
    return response.content.decode()


def test_alias_bomb_is_refused_in_little_memory_and_a_short_message():
    tracemalloc.start()
    try:
        with pytest.raises(InventoryError) as error:
            inventory_import(text=ALIAS_BOMB, source="bomb.yml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, f"peak {peak} bytes"
    assert "aliases and anchors are not accepted" in str(error.value) and len(str(error.value)) < 400
    assert len(ALIAS_BOMB) < 600 and not Cluster.objects.exists()


@pytest.mark.parametrize("door", ["api", "admin"])
def test_alias_bomb_upload_answers_a_clear_error(importer, door):
    response = _post(importer, door, "bomb.yml", ALIAS_BOMB.encode())
    assert response.status_code in (200, 422) and "aliases and anchors are not accepted" in _error_text(response)
    assert not Cluster.objects.exists()


@pytest.mark.parametrize("door", ["api", "admin"])
def test_python_tag_is_a_clear_error_not_a_500(importer, door, tmp_path):
    response = _post(importer, door, "tag.yml", PYTHON_TAG.encode())
    text = _error_text(response)
    assert response.status_code in (200, 422) and "would construct Python objects" in text and "line" not in text[:0]
    assert not Cluster.objects.exists()


def test_python_tag_without_a_yaml_name_is_still_refused():
    with pytest.raises(InventoryError):
        inventory_import(text=PYTHON_TAG, source="inventory")


@pytest.mark.parametrize("value", ["[10.0.0.1, 10.0.0.2]", "{a: 1}", "- x"], ids=["list", "mapping", "block-list"])
def test_non_scalar_ansible_value_is_refused_before_conversion(value):
    text = (
        f"workers:\n  hosts:\n    gpu1:\n      ansible_host: {value}\n"
        if value != "- x"
        else ("workers:\n  hosts:\n    gpu1:\n      ansible_host:\n        - x\n")
    )
    with pytest.raises(InventoryError, match="ansible_host in host 'gpu1' must be a plain value"):
        inventory_import(text=text, source="lab.yml")


def test_values_in_error_messages_are_cut_to_200_characters():
    huge = "9" * 100_000
    with pytest.raises(InventoryError) as error:
        inventory_import(text=f"workers:\n  hosts:\n    gpu1:\n      ansible_port: '{huge}'\n", source="lab.yml")
    message = str(error.value)
    assert "9" * 200 in message and "9" * 201 not in message and len(message) < 600
    with pytest.raises(InventoryError) as error:
        inventory_import(text=f"[workers]\ngpu1 ansible_user={'u' * 5000}\n", source="lab.ini")
    assert "u" * 200 in str(error.value) and "u" * 201 not in str(error.value) and len(str(error.value)) < 600


def test_a_huge_ini_line_is_refused_quickly():
    with pytest.raises(InventoryError, match="an inventory line has at most"):
        inventory_import(text="[workers]\n" + "x" * 3_000_000 + "\n", source="lab.ini")


class _Unreadable:
    """An upload whose size is known and whose content must not be read."""

    name, size = "big.ini", 10**9

    def read(self, *args):  # pragma: no cover - reaching this is the failure
        raise AssertionError("the upload was read before its size was checked")


@override_settings(PREFLIGHT_INVENTORY_MAX_BYTES=1000)
def test_upload_handler_keeps_only_the_limit_in_memory(rf):
    from portal.uploads import BoundedUploadHandler

    request = rf.post("/", {"file": SimpleUploadedFile("big.ini", b"x" * 50_000)})
    request.upload_handlers = [BoundedUploadHandler(request)]
    upload = request.FILES["file"]
    assert upload.size == 50_000 and len(upload.file.getvalue()) == 1001


def test_upload_size_is_checked_before_reading():
    with pytest.raises(InventoryError, match="larger than"):
        upload_text(_Unreadable())


@override_settings(PREFLIGHT_INVENTORY_MAX_BYTES=1000)
@pytest.mark.parametrize("door", ["api", "admin"])
def test_oversized_upload_is_refused(importer, door):
    response = _post(importer, door, "big.ini", b"[workers]\n" + b"#" * 2000 + b"\n")
    assert response.status_code in (200, 413) and "the file is 2011 bytes, larger than" in _error_text(response)
    assert not Cluster.objects.exists()


@pytest.mark.parametrize("door", ["api", "admin"])
def test_one_range_line_cannot_create_100000_nodes(importer, door):
    response = _post(importer, door, "big.ini", b"[workers]\ngpu[1:100000] ansible_host=10.0.0.1\n")
    text = _error_text(response)
    assert "PREFLIGHT_IMPORT_MAX_HOSTS" in text and "5000" in text
    assert Node.objects.count() == 0


@override_settings(PREFLIGHT_IMPORT_MAX_HOSTS=10)
def test_host_cap_counts_every_host_of_the_file():
    text = "[workers]\n" + "".join(f"gpu{i} ansible_host=10.0.0.{i}\n" for i in range(1, 12))
    with pytest.raises(InventoryError, match="more than 10 hosts"):
        inventory_import(text=text, source="lab.ini")
    inventory_import(text="[workers]\n" + "".join(f"gpu{i}\n" for i in range(1, 11)), source="lab.ini")
    assert Node.objects.count() == 10


HOSTILE_FILES = {
    "bomb.yml": ALIAS_BOMB.encode(),
    "tag.yml": PYTHON_TAG.encode(),
    "deep.yml": b"a: " + b"[" * 50_000 + b"]" * 50_000 + b"\n",
    "deep-map.yml": b"".join(b"  " * i + b"k:\n" for i in range(3000)),
    "deep.ini": b"".join(f"[g{i}:children]\ng{i + 1}\n".encode() for i in range(3000)) + b"[g3000]\nh1\n",
    "nul.ini": b"[workers]\ngpu1\x00\n",
    "latin1.ini": "[workers]\ngpu\xe9\n".encode("latin-1"),
    "multi.yml": b"a: {}\n---\nb: {}\n",
    "anchor-only.yml": b"workers: &w\n  hosts:\n    gpu1:\n",
    "merge.yml": b"x: &x {ansible_host: 10.0.0.1}\nworkers:\n  hosts:\n    gpu1:\n      <<: *x\n",
    "custom-tag.yml": b"workers:\n  hosts:\n    gpu1:\n      ansible_host: !ruby/object:Gem 1\n",
    "binary.yml": bytes(range(256)) * 20,
    "long-line.ini": b"[workers]\n" + b"x" * 3_000_000 + b"\n",
    "empty.yml": b"",
    "ranges.ini": b"[workers]\n" + b"[a:z]" * 20 + b"\n",
    "bad-range.ini": b"[workers]\ngpu[1:2:0]\ngpu[9999999999999999999999:1]\n",
    "unicode.yml": "workers:\n  hosts:\n    \u202egpu\u0000:\n".encode(),
    "int-key.yml": b"1: {hosts: {2: {ansible_port: 3}}}\n",
}


@pytest.mark.parametrize("door", ["api", "admin"])
@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_hostile_files_never_get_a_5xx(importer, door, name):
    response = _post(importer, door, name, HOSTILE_FILES[name])
    assert response.status_code < 500, _error_text(response)[:2000]
    assert len(_error_text(response)) < 20_000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.one_of(
        st.binary(max_size=4000),
        st.text(alphabet="[]:=*&!{}-,\n #'\"%|>?ab01\t\\", max_size=800).map(str.encode),
    ),
    name=st.sampled_from(["f.yml", "f.ini", "f", "f.yaml"]),
)
def test_fuzzed_uploads_never_get_a_5xx(importer, content, name):
    response = _post(importer, "api", name, content)
    assert response.status_code < 500, (content, _error_text(response)[:500])


# Issue 19: an import's work is linear in its size, and every cap answers with the file, the line and the reason.


def _complete_dag(groups: int, hosts: int) -> str:
    """`groups` groups, each listing every later group as a child, and `hosts` hosts in the deepest one."""
    parts = ["[workers:children]\ng0\n"]
    for i in range(groups):
        parts.append(f"[g{i}:children]\n" + "".join(f"g{j}\n" for j in range(i + 1, groups)))
        parts.append(f"[g{i}:vars]\nv{i % 7}=from-g{i}\n")
    parts.append(f"[g{groups - 1}]\n" + "".join(f"h{k}\n" for k in range(hosts)))
    return "".join(parts)


def test_a_deep_group_dag_at_the_caps_parses_in_linear_time():
    # given: 200 groups each listing every later group (19,900 links, within the cap) and 5,000 hosts
    text = _complete_dag(200, 5000)
    # when
    started = time.perf_counter()
    parsed = parse_inventory(text, source="dag.ini", max_hosts=5000)
    elapsed = time.perf_counter() - started
    # then: every host is in every group with Ansible's precedence (the deepest group's value wins), in well under
    # the 20 s the old builder took for the issue's smaller file
    host = parsed.hosts["h4999"]
    assert host.groups == {"all", "workers", *(f"g{i}" for i in range(200))}
    assert host.vars["v3"] == "from-g199" and host.vars["v2"] == "from-g198"
    assert elapsed < 5, f"{elapsed:.1f} s"


def test_the_issues_file_is_refused_at_the_link_cap_quickly():
    # given: the issue's file, 600 groups each listing every later group (179,700 links) and 5,000 hosts
    text = _complete_dag(600, 5000)
    # when
    started = time.perf_counter()
    with pytest.raises(InventoryError) as error:
        parse_inventory(text, source="dag.ini", max_hosts=5000)
    # then: refused at the line that passes the cap, with the reason
    assert time.perf_counter() - started < 2
    assert str(error.value).startswith("dag.ini:") and error.value.line > 1
    assert f"more than {MAX_CHILD_LINKS} child-group entries" in str(error.value)


def test_group_count_is_capped():
    text = "".join(f"[g{i}]\nh{i}\n" for i in range(MAX_GROUPS + 5))
    with pytest.raises(InventoryError, match=f"more than {MAX_GROUPS} groups") as error:
        parse_inventory(text, source="many.ini")
    # the two implicit groups (all, ungrouped) count: the 999th declared group is one too many
    assert error.value.line == 2 * (MAX_GROUPS - 2) + 1


def test_yaml_children_count_against_the_link_cap():
    children = "".join(f"    g{j}: {{}}\n" for j in range(MAX_CHILD_LINKS // 400 + 1))
    text = "".join(f"p{i}:\n  children:\n{children}" for i in range(401))
    with pytest.raises(InventoryError, match="child-group entries"):
        parse_inventory(text, source="links.yml")


def test_a_group_chain_deeper_than_pythons_recursion_limit_is_read():
    # given: a chain of 990 groups (the old builder recursed once per level)
    text = "".join(f"[g{i}:children]\ng{i + 1}\n" for i in range(989)) + "[g989]\nh1\n[workers:children]\ng0\n"
    # when
    parsed = parse_inventory(text, source="chain.ini")
    # then
    assert len(parsed.hosts["h1"].groups) == 990 + 2


def test_a_cycle_in_a_long_chain_names_the_cycle():
    text = "".join(f"[g{i}:children]\ng{i + 1}\n" for i in range(900)) + "[g900:children]\ng450\n"
    with pytest.raises(
        InventoryError,
        match=r"group cycle: g450 -> g451 -> g452 -> g453 -> g454 -> \.\.\. \(442 more\) "
        r"-> g897 -> g898 -> g899 -> g900 -> g450\Z",
    ):
        parse_inventory(text, source="cycle.ini")


def test_inherited_memberships_are_capped():
    # given: 5,000 hosts in 400 different pairs of groups, under a chain of 150 groups with 60 variables each
    groups = 150
    parts = ["[workers:children]\ng0\n"]
    for i in range(groups - 1):
        parts.append(f"[g{i}:children]\ng{i + 1}\n[g{i}:vars]\n" + "".join(f"v{k}={i}\n" for k in range(60)))
    parts.append(f"[g{groups - 1}]\n" + "".join(f"h{k}\n" for k in range(5000)))
    parts.extend(f"[x{k % 400}]\nh{k}\n" for k in range(5000))
    text = "".join(parts)
    # when / then: refused at a host's line, saying what to do
    with pytest.raises(InventoryError, match=f"more than {MAX_INHERITED:,} group memberships") as error:
        parse_inventory(text, source="wide.ini", max_hosts=100_000)
    assert error.value.line and "flatten the group nesting or split the inventory" in str(error.value)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("gpu[²:³]", "numeric bound is at most 9 digits (0-9)"),
        ("gpu[1:٣]", "numeric bound is at most 9 digits (0-9)"),
        ("gpu[" + "9" * 4400 + ":1]", "numeric bound is at most 9 digits (0-9)"),
        ("gpu[1:" + "9" * 10 + "]", "numeric bound is at most 9 digits (0-9)"),
        ("gpu[1:3:٣]", "is not a number of at most 9 digits (0-9)"),
        ("gpu[1:3:+1]", "is not a number of at most 9 digits (0-9)"),
        ("gpu[1:3:1_0]", "is not a number of at most 9 digits (0-9)"),
        ("gpu[a:²]", "both ends are numbers or both single letters"),
    ],
)
def test_range_bounds_take_only_ascii_digits_within_a_length(pattern, reason):
    with pytest.raises(InventoryError, match=re.escape(reason)) as error:
        parse_inventory(f"[workers]\n{pattern}\n", source="r.ini")
    assert error.value.line == 2 and len(str(error.value)) < 700


@pytest.mark.parametrize("door", ["api", "admin"])
@pytest.mark.parametrize("pattern", ["gpu[²:³]", "gpu[" + "9" * 4400 + ":1]"])
def test_hostile_range_bounds_answer_a_clear_error_at_both_doors(importer, door, pattern):
    response = _post(importer, door, "r.ini", f"[workers]\n{pattern} ansible_host=10.0.0.1\n".encode())
    assert response.status_code == (422 if door == "api" else 200)
    assert "r.ini:2:" in _error_text(response) and "numeric bound is at most 9 digits" in _error_text(response)
    assert Node.objects.count() == 0
