from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The portal's own models: who may use the API (personal tokens). The rest of `portal` is the composition root
    and the leaves every app shares."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
    verbose_name = "Access"
