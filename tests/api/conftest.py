import pytest
from django.contrib.auth.models import Permission

from portal.tokens import api_token_create


@pytest.fixture
def make_client(client, django_user_model):
    """A test client sending a bearer token of a user with exactly the given permissions ('all' = superuser)."""

    def make(*permissions: str, superuser: bool = False):
        user = django_user_model.objects.create_user(
            f"u{django_user_model.objects.count()}", password="x", is_superuser=superuser
        )
        for permission in permissions:
            app, codename = permission.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
        _, token = api_token_create(user=user, name="test")
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        client.token = token
        client.user_name = user.get_username()
        return client

    return make


@pytest.fixture
def admin_api(make_client):
    return make_client(superuser=True)
