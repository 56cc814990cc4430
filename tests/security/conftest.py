"""Attackers as fixtures: staff users and token clients holding exactly the permissions a test names."""

import pytest
from django.contrib.auth.models import Permission

from inventory.models import Credential
from portal.tokens import api_token_create


def grant(user, *permissions: str) -> None:
    for permission in permissions:
        app, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))


@pytest.fixture
def make_user(django_user_model):
    def make(*permissions: str, superuser: bool = False, name: str | None = None):
        user = django_user_model.objects.create_user(
            name or f"staff{django_user_model.objects.count()}", password="pw", is_staff=True, is_superuser=superuser
        )
        grant(user, *permissions)
        return django_user_model.objects.get(pk=user.pk)  # fresh: no stale permission cache

    return make


@pytest.fixture
def staff(client, make_user):
    """A logged-in staff user (browser session) with exactly these permissions."""

    def login(*permissions: str, superuser: bool = False):
        user = make_user(*permissions, superuser=superuser)
        client.force_login(user)
        client.user = user
        return client

    return login


@pytest.fixture
def token_client(make_user):
    """A separate client sending a bearer token of a user with exactly these permissions."""
    from django.test import Client

    def make(*permissions: str, superuser: bool = False):
        user = make_user(*permissions, superuser=superuser)
        _, token = api_token_create(user=user, name="attacker")
        api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        api.user = user
        return api

    return make


@pytest.fixture
def root_credential():
    """What the attacker is after: the fleet's root password."""
    credential = Credential(name="fleet root", kind="password")
    credential.secret = "fleet-root-password"
    credential.save()
    return credential


NODE_EDITOR = ("inventory.view_node", "inventory.add_node", "inventory.change_node", "inventory.view_cluster")
