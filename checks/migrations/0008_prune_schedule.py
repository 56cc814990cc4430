"""A daily beat schedule for audit history retention (checks.prune_audits, 04:00 UTC), editable in the admin.
Reverse is a no-op: operators may have edited it."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="4", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name="Prune old audits (daily)",
        defaults={
            "task": "checks.prune_audits",
            "crontab": daily,
            "enabled": True,
            "description": "Deletes finished audits past PREFLIGHT_AUDIT_RETENTION_DAYS, keeping the newest "
            "PREFLIGHT_AUDIT_KEEP of each cluster.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("checks", "0007_network_path_rollup_indexes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, migrations.RunPython.noop)]
