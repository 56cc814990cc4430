"""ApiToken moves from inventory to the portal (issue 25): state only. The table keeps its name
(`inventory_apitoken`, set as the model's db_table), so no row moves; the content type is relabelled so that the
permissions granted on tokens (and the admin's history) follow the model."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def relabel_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="portal", model="apitoken").exists():
        ContentType.objects.filter(app_label="inventory", model="apitoken").update(app_label="portal")


def unlabel_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="inventory", model="apitoken").exists():
        ContentType.objects.filter(app_label="portal", model="apitoken").update(app_label="inventory")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("inventory", "0003_apitoken"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiToken",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                        ),
                        ("name", models.CharField(help_text="What it is for, e.g. 'CI pipeline'", max_length=100)),
                        (
                            "prefix",
                            models.CharField(
                                editable=False, help_text="Identifies the token in lists", max_length=16, unique=True
                            ),
                        ),
                        ("digest", models.CharField(editable=False, max_length=64, unique=True)),
                        ("created", models.DateTimeField(auto_now_add=True)),
                        ("expires", models.DateTimeField(blank=True, help_text="Empty: never", null=True)),
                        ("last_used", models.DateTimeField(blank=True, editable=False, null=True)),
                        ("revoked", models.DateTimeField(blank=True, null=True)),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="api_tokens",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"verbose_name": "API token", "ordering": ["-created"], "db_table": "inventory_apitoken"},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(relabel_content_type, unlabel_content_type),
    ]
