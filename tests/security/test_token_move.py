"""ApiToken moved from inventory to the portal (issue 25) without moving a row: a token made before the move still
authenticates after it, and the permissions on tokens follow the model."""

import hashlib

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from portal.tokens import api_token_authenticate

BEFORE = [("portal", None), ("inventory", "0011_connectivity_plan_and_network_group")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _leaves():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_token_made_before_the_move_still_authenticates_after_it():
    # given the database as it was before the move, with a token stored by the inventory's model
    user = get_user_model().objects.create_user("ops", password="x")
    _migrate(BEFORE)
    old_state = MigrationExecutor(connection).loader.project_state(BEFORE[1:])
    old_model = old_state.apps.get_model("inventory", "ApiToken")
    raw = "pf_0badcafe_" + "x" * 43
    old_model.objects.create(
        user_id=user.pk, name="ci", prefix="0badcafe", digest=hashlib.sha256(raw.encode()).hexdigest()
    )
    # the content type and permissions inventory's model had (an earlier transactional test's flush empties them; the
    # backward migration only relabels what exists)
    content_type, _ = ContentType.objects.get_or_create(app_label="inventory", model="apitoken")
    for action in ("add", "change", "delete", "view"):
        Permission.objects.get_or_create(
            content_type=content_type, codename=f"{action}_apitoken", defaults={"name": f"Can {action} API token"}
        )
    assert ContentType.objects.filter(app_label="inventory", model="apitoken").exists()

    # when the migrations run forward
    _migrate(_leaves())

    # then the same row authenticates through the portal's model, and the token's permissions moved with it
    assert api_token_authenticate(raw) == user
    assert ContentType.objects.filter(app_label="portal", model="apitoken").count() == 1
    assert not ContentType.objects.filter(app_label="inventory", model="apitoken").exists()
    admin = get_user_model().objects.create_user("clerk", password="x")
    admin.user_permissions.add(*ContentType.objects.get(app_label="portal", model="apitoken").permission_set.all())
    assert get_user_model().objects.get(pk=admin.pk).has_perm("portal.view_apitoken")
