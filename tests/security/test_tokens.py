"""The token clerk: a staff user allowed to add API tokens tries to mint one for the superuser, move one to another
user, or read a fresh token from a cookie."""

import re

import pytest
from django.urls import reverse

from portal.models import ApiToken
from portal.tokens import api_token_authenticate, api_token_create

pytestmark = pytest.mark.django_db

CLERK = ("portal.add_apitoken", "portal.change_apitoken", "portal.view_apitoken")


def _token_on_page(response) -> str:
    body = response.content.decode()
    if '<code id="new-token">' in body:  # the admin's page
        start = body.index('<code id="new-token">') + len('<code id="new-token">')
        return body[start : body.index("</code>", start)]
    return re.search(r'id="new-token"[^>]* value="([^"]+)"', body).group(1)  # the account page: a field to copy


def test_clerk_cannot_create_a_token_for_the_superuser(staff, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="x")
    client = staff(*CLERK)
    # when: the clerk posts the superuser's id as the token's user
    response = client.post(reverse("admin:portal_apitoken_add"), {"user": root.pk, "name": "mine", "expires": ""})
    # then: no token of the superuser exists; the one made is the clerk's own
    assert not ApiToken.objects.filter(user=root).exists()
    token = _token_on_page(response)
    assert api_token_authenticate(token) == client.user


def test_token_user_is_read_only_after_creation(staff, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="x")
    client = staff(*CLERK)
    record, _ = api_token_create(user=client.user, name="mine")
    client.post(
        reverse("admin:portal_apitoken_change", args=[record.pk]), {"user": root.pk, "name": "mine", "expires": ""}
    )
    record.refresh_from_db()
    assert record.user == client.user
    # and a superuser cannot move it either
    admin = staff(superuser=True)
    admin.post(reverse("admin:portal_apitoken_change", args=[record.pk]), {"user": root.pk, "name": "x", "expires": ""})
    record.refresh_from_db()
    assert record.user != root


def test_clerk_sees_and_revokes_only_their_own_tokens(staff, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="x")
    theirs, _ = api_token_create(user=root, name="root's")
    client = staff(*CLERK)
    assert client.get(reverse("admin:portal_apitoken_change", args=[theirs.pk])).status_code == 302  # not found
    client.post(reverse("admin:portal_apitoken_changelist"), {"action": "revoke", "_selected_action": [theirs.pk]})
    theirs.refresh_from_db()
    assert theirs.revoked is None


def test_superuser_may_create_a_token_for_another_user(staff, django_user_model):
    other = django_user_model.objects.create_user("ci", password="x")
    client = staff(superuser=True)
    response = client.post(reverse("admin:portal_apitoken_add"), {"user": other.pk, "name": "ci", "expires": ""})
    assert api_token_authenticate(_token_on_page(response)) == other


def test_new_token_is_shown_once_on_the_page_and_never_in_a_cookie(staff):
    client = staff(*CLERK)
    response = client.post(reverse("admin:portal_apitoken_add"), {"name": "mine", "expires": ""})
    token = _token_on_page(response)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert all(token not in morsel.value for morsel in response.cookies.values())
    assert "messages" not in response.cookies
    listing = client.get(reverse("admin:portal_apitoken_changelist"))
    assert token not in listing.content.decode()
    assert all(token not in morsel.value for morsel in listing.cookies.values())


def test_account_page_token_is_on_the_page_not_in_a_cookie(staff):
    client = staff()
    response = client.post(reverse("account_tokens"), {"action": "create", "name": "laptop"})
    token = _token_on_page(response)
    assert api_token_authenticate(token) == client.user
    assert all(token not in morsel.value for morsel in response.cookies.values())


@pytest.mark.parametrize("value", ["abc", "1e9", "-1", "99999999999999999999999", "١٢", "", "1 OR 1=1"])
def test_malformed_revoke_post_is_a_4xx(staff, value):
    client = staff()
    response = client.post(reverse("account_tokens"), {"action": "revoke", "token": value})
    assert 400 <= response.status_code < 500
