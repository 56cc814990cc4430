"""Default beat schedules, as data an operator edits in the admin (django-celery-beat's Periodic tasks).

A daily audit of every cluster at 03:00 UTC, and a sweep of stuck node audits every minute. Reverse is a no-op:
operators may have edited them.
"""

from django.db import migrations


def create_schedules(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    PeriodicTask.objects.get_or_create(
        name="Audit every cluster (daily)",
        defaults={"task": "checks.audit_all_clusters", "crontab": daily, "enabled": True,
                  "description": "Re-audits every cluster so that history shows what changed."},
    )
    PeriodicTask.objects.get_or_create(
        name="Sweep stuck node audits",
        defaults={"task": "checks.sweep_stuck", "interval": minute, "enabled": True,
                  "description": "Ends node audits whose worker died (PREFLIGHT_STUCK_AFTER) as error."},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("checks", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, migrations.RunPython.noop)]
