"""The Celery application; tasks live in each app's `tasks.py` and are found by autodiscovery."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.base")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(sender=None, **kwargs) -> None:
    """Around each task run by a worker, close this thread's database connections that are too old
    (CONN_MAX_AGE) or broken, as Django does around each request; the others are kept for the next task (see
    CELERY_DB_REUSE_MAX in the settings). Eager tasks run inside their caller's transaction: left alone."""
    request = getattr(sender, "request", None)
    if request is not None and getattr(request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
