"""ApiToken moves to the portal (portal/migrations/0001_api_token_from_inventory.py): state only, the table stays."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0011_connectivity_plan_and_network_group"),
        ("portal", "0001_api_token_from_inventory"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ApiToken")],
            database_operations=[],
        ),
    ]
