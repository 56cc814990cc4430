"""The sweep runs every 30 s (it was every minute): a lost worker's node audits are re-queued within a lease and a
sweep, and queued node audits that no broker holds are sent again. Only the shipped schedule of 60 s is changed;
an interval an operator chose is kept. Reverse puts 60 s back the same way."""

from django.db import migrations
from django.utils import timezone

SWEEP = "Sweep stuck node audits"


def _set_interval(apps, old: int, new: int) -> None:
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    task = PeriodicTask.objects.filter(name=SWEEP, interval__every=old, interval__period="seconds").first()
    if task is None:
        return
    interval, _ = IntervalSchedule.objects.get_or_create(every=new, period="seconds")
    task.interval = interval
    task.description = (
        "Re-queues node audits whose worker was lost (lease expired), sends again queued node audits that no "
        "broker holds, and closes audits whose last node ended."
    )
    task.save(update_fields=["interval", "description"])
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})  # tells a running beat to reload its schedule


def every_30_seconds(apps, schema_editor):
    _set_interval(apps, 60, 30)


def every_minute(apps, schema_editor):
    _set_interval(apps, 30, 60)


class Migration(migrations.Migration):
    dependencies = [
        ("checks", "0012_node_audit_leases"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(every_30_seconds, every_minute)]
