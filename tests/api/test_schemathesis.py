"""schemathesis against the live OpenAPI schema: no 5xx and no response that violates the schema."""

import os
import shutil
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model

from portal.tokens import api_token_create
from tests.conftest import REPO
from tests.factories import ClusterFactory, NodeFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_api_holds_its_contract_under_fuzzing(live_server):
    # given: a token of a superuser, and a little data for the reads to find
    user = get_user_model().objects.create_superuser("fuzz", password="x")
    _, token = api_token_create(user=user, name="schemathesis")
    cluster = ClusterFactory(name="fuzz")
    NodeFactory(cluster=cluster, name="n1")
    executable = shutil.which("schemathesis", path=os.path.dirname(sys.executable))
    assert executable, "schemathesis is installed with the test requirements"
    (REPO / "test-output").mkdir(exist_ok=True)
    # when
    result = subprocess.run(
        [
            executable,
            "run",
            f"{live_server.url}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            os.environ.get("PREFLIGHT_FUZZ_EXAMPLES", "25"),
            "--seed",
            "1",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    (REPO / "test-output" / "schemathesis.txt").write_text(result.stdout + result.stderr)
    # then
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout.lower()
