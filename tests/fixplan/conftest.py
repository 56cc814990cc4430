import pytest
from django.test import Client

from portal.tokens import api_token_create


@pytest.fixture
def admin_api(admin_user):
    """A client that sends an admin's bearer token (the API takes tokens, not sessions)."""
    _, token = api_token_create(user=admin_user, name="test")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")
