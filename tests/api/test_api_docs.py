"""The API's own documentation (issue 25): every operation says what it does, who may call it and what errors it
answers, and the docs page leads back to the portal."""

import pytest

from portal.api import api

pytestmark = pytest.mark.django_db


def test_every_operation_has_a_summary_and_a_description_with_who_and_errors():
    # given: the OpenAPI document the docs page draws
    schema = api.get_openapi_schema()
    # when: each operation is read
    lacking = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            summary, description = operation.get("summary", ""), operation.get("description", "")
            generated = summary == " ".join(w.capitalize() for w in operation["operationId"].split("_")[-2:])
            if not summary or generated or "**Who:**" not in description or "**Errors:**" not in description:
                lacking.append(f"{method.upper()} {path}: summary {summary!r}")
    # then: none is left with ninja's generated title or without who may call it and its errors
    assert len(schema["paths"]) > 15
    assert lacking == []


def test_docs_page_links_back_to_the_portal(admin_client):
    # given: a logged-in operator
    # when: they open the API docs
    page = admin_client.get("/api/v1/docs").content.decode()
    # then: the page has a language and a link back to the portal and to the tokens page
    assert '<html lang="en">' in page
    assert 'id="back-to-portal"' in page and 'href="/"' in page and 'href="/account/tokens/"' in page
