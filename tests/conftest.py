import os
from pathlib import Path

import pytest

# Real services (sshd test hosts, Redis, a Celery worker) as session fixtures, registered once for every folder.
pytest_plugins = ["tests.integration.fixtures"]

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PREFLIGHT_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared spec folder (seed page, fixtures); tests that need it skip only when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared folder not found at {SHARED} (set PREFLIGHT_SHARED_DIR)")
    return SHARED


@pytest.fixture
def seed_text(shared_dir: Path) -> str:
    return (shared_dir / "seed" / "000_e2f1249be6f7f794.txt").read_text()
