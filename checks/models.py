"""Audits and their results. Raw probe output is kept per node audit, so every result can be re-derived and diffed."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from inventory.choices import AuditStatus
from inventory.crypto import encrypted_property

from .choices import NetworkState, RunState, Trigger


class RunStateReads:
    """The run-state questions a template asks, so that no template spells a RunState value."""

    state: str

    @property
    def in_progress(self) -> bool:
        return self.state in (RunState.QUEUED, RunState.RUNNING)

    @property
    def is_done(self) -> bool:
        return self.state == RunState.DONE

    @property
    def has_ended(self) -> bool:
        return self.state in (RunState.DONE, RunState.ERROR)


class Audit(RunStateReads, models.Model):
    """One audit of a cluster (or some of its nodes) against the cluster's requirement profile at that time."""

    cluster = models.ForeignKey("inventory.Cluster", on_delete=models.CASCADE, related_name="audits")
    profile = models.ForeignKey("inventory.RequirementProfile", on_delete=models.PROTECT, related_name="audits")
    profile_key = models.CharField(max_length=64, help_text="The profile's key when the audit ran")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.CLI)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    status = models.CharField(max_length=16, choices=AuditStatus.choices, default=AuditStatus.UNKNOWN)
    partial = models.BooleanField(default=False, help_text="Only some nodes were audited (no connectivity matrix)")
    network_state = models.CharField(
        max_length=16,
        choices=NetworkState.choices,
        default=NetworkState.NONE,
        help_text="The connectivity matrix runs once every node audit is final",
    )
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    network_started = models.DateTimeField(null=True, blank=True)
    matrix_round = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The matrix's place in the cluster's sequence (rotates the sampled plan's peers); set when it runs",
    )
    dispatched = models.DateTimeField(
        null=True, blank=True, help_text="When the node audits were last handed to Celery"
    )
    dispatches = models.PositiveSmallIntegerField(
        default=0, help_text="How many times the node audits were handed to Celery (more than 1: re-sent by the sweep)"
    )
    error = models.TextField(blank=True)
    ignored = models.JSONField(
        default=list, blank=True, help_text="Check ids waived for this run only (`audit --ignore CHECK_ID`)"
    )

    class Meta:
        ordering = ["-created"]
        permissions = [("start_audit", "Can start audits")]
        indexes = [models.Index(fields=["cluster", "-created"]), models.Index(fields=["state"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(finished__isnull=True) | Q(started__isnull=False), name="audit_finished_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"audit {self.pk} of {self.cluster_id}"


class NodeAudit(RunStateReads, models.Model):
    """One node's part of an audit: its probe run, raw output, facts and check results."""

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="node_audits")
    node = models.ForeignKey("inventory.Node", on_delete=models.CASCADE, related_name="node_audits")
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    status = models.CharField(max_length=16, choices=AuditStatus.choices, default=AuditStatus.UNKNOWN)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="How many times a worker claimed this node audit (more than 1: its worker was lost)"
    )
    lease_expires = models.DateTimeField(
        null=True, blank=True, help_text="While running: the worker renews this; past it, the sweep re-queues the run"
    )
    dispatched = models.DateTimeField(null=True, blank=True, help_text="When its task was last handed to Celery")
    portal_error = models.TextField(
        blank=True,
        help_text="Why Preflight itself, not the node, ended this run in error (database full, worker lost)",
    )
    reached = models.BooleanField(
        null=True,
        blank=True,
        help_text="Whether the node was reached over SSH (its ssh.connect passed): an error on a reached node is Not "
        "ready, not Unreachable; null: not recorded (still running, or from before it was)",
    )
    raw_output = models.TextField(blank=True, help_text="The probe's output as received (capped)")
    output_truncated = models.BooleanField(default=False)
    nonce = models.CharField(max_length=16, blank=True)
    facts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    clock_offset_seconds = models.FloatField(null=True, blank=True)
    round_trip_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["audit", "node__name"]
        constraints = [models.UniqueConstraint(fields=["audit", "node"], name="node_audit_unique")]
        indexes = [
            models.Index(fields=["node", "-started"]),
            models.Index(fields=["state", "started"]),
            models.Index(fields=["state", "lease_expires"], name="node_audit_lease"),
        ]

    def __str__(self) -> str:
        return f"node audit {self.pk} ({self.node_id})"


class CheckResult(models.Model):
    node_audit = models.ForeignKey(NodeAudit, on_delete=models.CASCADE, related_name="results")
    check_id = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=AuditStatus.choices)
    summary = models.CharField(max_length=500)
    evidence = models.TextField(blank=True)
    remediation = models.TextField(blank=True, help_text="The explanation a person reads")
    commands = models.JSONField(
        default=list, blank=True, help_text="Shell commands that fix it on this node, built only from fixed templates"
    )
    position = models.PositiveSmallIntegerField(default=0)
    waived = models.JSONField(
        null=True,
        blank=True,
        help_text="The waiver in force when the result was recorded: {reason, by, expires, ...}; the status stays real",
    )

    class Meta:
        ordering = ["node_audit", "position"]
        constraints = [models.UniqueConstraint(fields=["node_audit", "check_id"], name="check_result_unique")]
        indexes = [models.Index(fields=["check_id", "status"])]

    def __str__(self) -> str:
        return f"{self.check_id}: {self.status}"


class NetworkPath(models.Model):
    """One proven (or refuted) path of the connectivity matrix: a check, a source, a destination, per-port outcomes."""

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="paths")
    check_id = models.CharField(max_length=64)
    source = models.ForeignKey("inventory.Node", on_delete=models.CASCADE, related_name="+")
    destination = models.ForeignKey("inventory.Node", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=AuditStatus.choices)
    summary = models.CharField(max_length=500)
    outcomes = models.JSONField(default=dict, help_text='{"10150": ["timed out", "no answer in 3s"], ...}')
    listener = models.JSONField(
        default=dict, help_text="What the destination's listener bound, found busy, or was denied"
    )
    evidence = models.TextField(blank=True)
    remediation = models.TextField(blank=True)
    commands = models.JSONField(
        default=list, blank=True, help_text="Commands that fix the path, to run on the destination node"
    )

    class Meta:
        ordering = ["audit", "check_id", "source__name", "destination__name"]
        constraints = [
            models.UniqueConstraint(fields=["audit", "check_id", "source", "destination"], name="network_path_unique")
        ]
        # The matrix page's per-node rollup groups one audit's paths by node and status: with these covering
        # indexes a 500-node mesh (250,000 paths) is an index-only scan instead of a table scan and sort.
        indexes = [
            models.Index(fields=["audit", "source", "status"], name="network_path_rollup_out"),
            models.Index(fields=["audit", "destination", "status"], name="network_path_rollup_in"),
            # The comparison of two audits (issue 25) seeks an audit's non-passing paths: a few among 250,000. The
            # matrix page's coverage (issue 24) counts the distinct passing worker pairs of the sampled plan's window
            # of audits (20 audits of 3,000 nodes: 180,000 paths): with the check and the pair in the index that is
            # an index-only scan.
            models.Index(
                fields=["audit", "status", "check_id", "source", "destination"], name="network_path_status_pairs"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.check_id}: {self.source_id} -> {self.destination_id} {self.status}"


class MatrixChunk(models.Model):
    """One part of an audit's connectivity matrix that one Celery worker takes (issue 24): the paths it proves and
    the listeners they need. Claimed with a conditional UPDATE and held by a lease its worker renews; a chunk whose
    lease ran out (its worker was killed) is queued again by the sweep. Its verdicts wait here until the last chunk
    is in; then one caller (the conditional UPDATE of `recorded`) writes the paths and closes the audit."""

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="matrix_chunks")
    index = models.PositiveIntegerField()
    paths = models.JSONField(default=list, help_text='[["network.worker_to_worker", "source", "destination"], ...]')
    listeners = models.JSONField(default=list, help_text="The nodes that listen while this chunk runs")
    budget = models.FloatField(help_text="Seconds this chunk may take (its task's soft time limit)")
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker claimed it")
    lease_expires = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    dispatched = models.DateTimeField(null=True, blank=True)
    verdicts = models.JSONField(default=list, blank=True, help_text="Its paths' verdicts, until they are recorded")
    error = models.TextField(blank=True)
    recorded = models.BooleanField(default=False)

    class Meta:
        ordering = ["audit", "index"]
        constraints = [models.UniqueConstraint(fields=["audit", "index"], name="matrix_chunk_unique")]
        indexes = [models.Index(fields=["state", "lease_expires"], name="matrix_chunk_lease")]

    def __str__(self) -> str:
        return f"audit {self.audit_id} chunk {self.index}: {self.state}"


class Waiver(models.Model):
    """An accepted, known non-pass of one check on a cluster (all its nodes) or one node, until it expires.

    A waived result keeps its real status and does not count against readiness. Waivers are applied when results
    are recorded, and the result keeps a snapshot of the waiver, so history stays as it was judged."""

    cluster = models.ForeignKey("inventory.Cluster", on_delete=models.CASCADE, related_name="waivers")
    node = models.ForeignKey(
        "inventory.Node",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="waivers",
        help_text="Empty: every node of the cluster",
    )
    check_id = models.CharField(max_length=64)
    reason = models.CharField(max_length=500)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    author = models.CharField(max_length=150, blank=True, help_text="Who made it (kept if the user is deleted)")
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(help_text="When it stops applying (from the next audit on)")

    class Meta:
        ordering = ["expires"]
        indexes = [models.Index(fields=["cluster", "expires"])]
        constraints = [models.CheckConstraint(condition=~Q(reason=""), name="waiver_reason_set")]

    def __str__(self) -> str:
        where = self.node.name if self.node_id else f"cluster {self.cluster}"
        return f"{self.check_id} on {where}"

    def clean(self) -> None:
        from datetime import timedelta

        from django.core.exceptions import ValidationError
        from django.utils import timezone

        from .catalog import CHECK_IDS

        errors = {}
        if self.check_id not in CHECK_IDS:
            errors["check_id"] = f"{self.check_id!r} is not a check id (for example time.ntp)"
        if self.node_id and self.cluster_id and self.node.cluster_id != self.cluster_id:
            errors["node"] = f"node {self.node} is not in cluster {self.cluster}"
        if self.expires is not None:
            now = timezone.now()
            longest = settings.PREFLIGHT_WAIVER_MAX_DAYS
            if self.expires <= now:
                errors["expires"] = "the expiry must be in the future"
            elif self.expires > now + timedelta(days=longest):
                errors["expires"] = f"a waiver lasts at most {longest} days (PREFLIGHT_WAIVER_MAX_DAYS)"
        if errors:
            raise ValidationError(errors)

    @property
    def scope(self) -> str:
        return "node" if self.node_id else "cluster"


class WebhookEndpoint(models.Model):
    """Where a cluster's regression alerts are POSTed: a JSON body signed with HMAC-SHA256 under this endpoint's
    secret (`X-Preflight-Signature: sha256=<hex>`). The secret is encrypted at rest like credentials; the URL obeys
    the webhook target policy when saved and again, on the resolved address, at every send."""

    cluster = models.ForeignKey("inventory.Cluster", on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=120)
    url = models.URLField(max_length=500, help_text="https:// unless PREFLIGHT_WEBHOOK_ALLOW_HTTP")
    secret_encrypted = models.TextField(editable=False)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cluster", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="webhook_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.cluster})"

    secret = encrypted_property("secret_encrypted")

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .alerts.policy import WebhookRefused, webhook_target

        if self.url:
            try:
                webhook_target(self.url)
            except WebhookRefused as exc:
                raise ValidationError({"url": str(exc)}) from None


class AlertEmail(models.Model):
    """An address that gets a cluster's regression alerts through Django's e-mail backend."""

    cluster = models.ForeignKey("inventory.Cluster", on_delete=models.CASCADE, related_name="alert_emails")
    address = models.EmailField()
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["cluster", "address"]
        verbose_name = "alert e-mail address"
        constraints = [models.UniqueConstraint(fields=["cluster", "address"], name="alert_email_unique")]

    def __str__(self) -> str:
        return self.address


class WebhookDelivery(models.Model):
    """One alert to one endpoint and what became of it: the delivery log."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    audit = models.ForeignKey(Audit, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    event = models.CharField(max_length=64, default="regression")
    body = models.TextField(help_text="The JSON body sent (and signed)")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    address = models.CharField(max_length=64, blank=True, help_text="The checked IP address last connected to")
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"delivery {self.pk} to {self.endpoint_id}: {self.state}"


class FixRun(models.Model):
    """Fixes of some nodes of a cluster's fix plan: previewed (each node's `--dry-run` on the node), approved by a
    person, run by Celery one task per node, then re-audited. The audit trail: who previewed and approved what,
    when, and the commands' hash."""

    class State(models.TextChoices):
        PREVIEW = "preview", "Previewed, waiting for approval"
        RUNNING = "running", "Approved, running"
        DONE = "done", "Done"

    cluster = models.ForeignKey("inventory.Cluster", on_delete=models.CASCADE, related_name="fix_runs")
    audit = models.ForeignKey(Audit, on_delete=models.PROTECT, related_name="fix_runs", help_text="The plan's audit")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PREVIEW)
    groups = models.JSONField(default=list, blank=True, help_text="The plan groups chosen (their keys)")
    commands_hash = models.CharField(max_length=64, help_text="sha256 of every node's commands, as previewed")
    previewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    approved = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    reaudit = models.ForeignKey(
        Audit, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="The audit after"
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created"]
        permissions = [("apply_fix", "Can preview, approve and run fixes on nodes")]

    def __str__(self) -> str:
        return f"fix run {self.pk} of {self.cluster_id}"


class FixNodeRun(models.Model):
    """One node's part of a fix run: its commands, the dry-run on the node, then the run's output and outcome."""

    class State(models.TextChoices):
        PREVIEWED = "previewed", "Previewed"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused"

    fix_run = models.ForeignKey(FixRun, on_delete=models.CASCADE, related_name="nodes")
    node = models.ForeignKey("inventory.Node", on_delete=models.CASCADE, related_name="fix_runs")
    before = models.ForeignKey(
        NodeAudit, on_delete=models.SET_NULL, null=True, related_name="+", help_text="The node audit the plan read"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PREVIEWED)
    commands = models.JSONField(default=list, help_text="Template-built commands, in order")
    commands_hash = models.CharField(max_length=64)
    facts_hash = models.CharField(max_length=64, help_text="The node's facts and login at preview")
    host_key = models.CharField(max_length=200, blank=True, help_text="The host key fingerprint at preview")
    dry_run = models.TextField(blank=True, help_text="The script's --dry-run output on the node (capped)")
    output = models.TextField(blank=True, help_text="The run's output (capped)")
    steps = models.JSONField(default=list, blank=True, help_text='[{"command": ..., "exit_status": 0|n|null}]')
    exit_status = models.IntegerField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["fix_run", "node__name"]
        constraints = [models.UniqueConstraint(fields=["fix_run", "node"], name="fix_node_run_unique")]
        indexes = [models.Index(fields=["node", "state"])]

    def __str__(self) -> str:
        return f"fix of {self.node_id} in run {self.fix_run_id}: {self.state}"
