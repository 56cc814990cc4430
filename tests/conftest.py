import os
from pathlib import Path
from typing import NoReturn

import pytest

# Real services (sshd test hosts, Redis, a Celery worker) as session fixtures, registered once for every folder.
pytest_plugins = ["tests.integration.fixtures"]

REPO = Path(__file__).resolve().parent.parent
# Every file a test reads: recorded tool outputs, our gap fixtures and the seed page, each with its provenance.
FIXTURES = REPO / "tests" / "fixtures"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_prerequisite(reason: str) -> NoReturn:
    """A test whose prerequisite (root, network namespaces, a tool, Chromium) is absent: skip here, fail in CI.

    CI (env CI=true) must run every test, so there a missing prerequisite fails the run instead of hiding it."""
    if in_ci():
        pytest.fail(f"CI must run this test, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _no_fault_banner_from_an_earlier_test():
    """A fault a test provoked (a locked database) is noted in this process for the pages' banner, for a minute: it
    must not show on the pages of the tests after it (a browser test then fit 24 node rows, not 25)."""
    yield
    from portal import faults

    with faults._lock:
        faults._last_fault.clear()


@pytest.fixture(autouse=True, scope="session")
def _live_server_without_nagle():
    """pytest-django's live server (Django's WSGIRequestHandler) writes a response's headers and body in two
    sends; with Nagle's algorithm on, the body waited for the client's delayed ACK, 40 ms on Linux. Every request
    took 44 ms, even a 401, and the API fuzzing (2,350 requests) spent 95 of its 118 s waiting."""
    from django.core.servers.basehttp import WSGIRequestHandler

    WSGIRequestHandler.disable_nagle_algorithm = True  # (socketserver.StreamRequestHandler sets TCP_NODELAY)
    yield


@pytest.fixture
def seed_text() -> str:
    """GPUStack's installation requirements page that the gpustack-2.0 profile was specified from."""
    return (FIXTURES / "seed" / "000_e2f1249be6f7f794.txt").read_text()
