import pytest

from tests.conftest import REPO, SHARED

OWN_FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def read_fixture(shared_dir):
    """Read a recorded output in place: `shared:nvidia-smi/x.txt` from the shared folder, `own:...` from ours."""

    def read(name: str) -> str:
        origin, _, relative = name.partition(":")
        base = SHARED / "fixtures" if origin == "shared" else OWN_FIXTURES
        return (base / relative).read_text(errors="replace")

    return read
