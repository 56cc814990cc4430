import os
import stat

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def private_sqlite_files(sender, connection, **kwargs) -> None:
    """An embedded SQLite database (sessions, encrypted credentials) is its owner's alone: 600, whatever umask the
    process that first opened it ran under. SQLite creates -wal and -shm with the database file's own mode, so fixing
    the database fixes them for good; ones an earlier run left are fixed here too."""
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    for path in (name, f"{name}-wal", f"{name}-shm", f"{name}-journal"):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_IRWXG | stat.S_IRWXO))


class InventoryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inventory"
    verbose_name = "Inventory"

    def ready(self) -> None:
        connection_created.connect(private_sqlite_files, dispatch_uid="preflight-private-sqlite-files")
