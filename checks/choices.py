from django.db import models


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ERROR = "error", "Error"  # could not finish: swept after a crash or time-out, or refused to start


class Trigger(models.TextChoices):
    CLI = "cli", "Command line"
    ADMIN = "admin", "Admin"
    UI = "ui", "Web UI"
    API = "api", "API"
    SCHEDULE = "schedule", "Schedule"
    FIX = "fix", "After a fix run"


class NetworkState(models.TextChoices):
    NONE = "none", "Not applicable"
    PENDING = "pending", "Waiting for node audits"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ERROR = "error", "Error"
