from django.apps import AppConfig


class ChecksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "checks"
    verbose_name = "Checks"

    def ready(self):
        # Inventory's node filter (web and API) selects nodes by a result; the reading is ours (inventory never
        # imports checks: .importlinter's layers).
        from inventory import filtersets

        from .selectors.nodes import failing_check_filter

        filtersets.RESULT_LOOKUPS["failing_check"] = failing_check_filter
