import pytest

from tests.conftest import FIXTURES

# Fixture files read through `read_fixture`, by the test that read them; the coverage test compares it to the folder.
FIXTURES_READ: dict[str, set[str]] = {}
# Tests deselected in this session (-k, -m): coverage is only measured when none of its module's tests were.
DESELECTED: set[str] = set()
COVERAGE_TEST = "test_every_fixture_is_parsed_by_a_test"


def pytest_deselected(items):
    DESELECTED.update(item.nodeid for item in items)


def pytest_collection_modifyitems(items):
    """The fixture coverage test checks what the others read, so it runs after all of them."""
    items[:] = [i for i in items if i.name != COVERAGE_TEST] + [i for i in items if i.name == COVERAGE_TEST]


@pytest.fixture
def read_fixture(request):
    """Read a recorded output from tests/fixtures/: `shared:nvidia-smi/x.txt` (copied recording) or `own:...`
    (a gap file Preflight wrote). The prefix names the provenance set; both live in the one folder."""

    def read(name: str) -> str:
        origin, _, relative = name.rpartition(":")
        if origin not in ("", "shared", "own"):
            raise ValueError(f"unknown fixture set {origin!r} in {name!r}")
        text = (FIXTURES / relative).read_text(errors="replace")
        FIXTURES_READ.setdefault(relative, set()).add(request.node.nodeid)
        return text

    return read
