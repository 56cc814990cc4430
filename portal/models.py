"""The portal's own models: personal API tokens, read by `portal.api` to authenticate a request.

A leaf of the layers contract: it imports no app. The table keeps its first name (`inventory_apitoken`, where the
model lived before issue 25), so moving the model moved no row.
"""

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the token is shown once, when it is created."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What it is for, e.g. 'CI pipeline'")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="Identifies the token in lists")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: never")
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "inventory_apitoken"
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} (pf_{self.prefix}...)"
