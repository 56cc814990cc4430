"""The inventory: clusters, their nodes and how to reach them, what the nodes hold, and what GPUStack requires."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.urls import reverse

from .choices import (
    VENDOR_CHOICES,
    AuditStatus,
    ConnectivityPlan,
    CredentialKind,
    GatewayMode,
    HostKeyState,
    InstallKind,
    NodeRole,
    PortCondition,
    PortReach,
    Protocol,
    ProxyMode,
    Transport,
)
from .crypto import encrypted_property
from .validators import validate_address, validate_node_name, validate_ssh_user


class RequirementProfile(models.Model):
    """A versioned set of GPUStack installation requirements; clusters are judged against exactly one."""

    key = models.SlugField(max_length=64, unique=True, help_text="Stable identifier, e.g. gpustack-2.0")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=500, blank=True, help_text="Where these requirements come from")
    gpustack_release = models.CharField(
        verbose_name="GPUStack release",
        max_length=32,
        blank=True,
        help_text="The GPUStack release these requirements follow, e.g. v2.3.0",
    )
    gpustack_commit = models.CharField(
        verbose_name="GPUStack commit",
        max_length=40,
        blank=True,
        help_text="The gpustack/gpustack commit of that release (full or short hash)",
    )
    is_default = models.BooleanField(
        default=False,
        help_text="Used for clusters created without a profile when PREFLIGHT_DEFAULT_PROFILE names no profile",
    )
    architectures = models.JSONField(
        default=list, help_text='Supported `uname -m` values, e.g. ["x86_64", "amd64", "aarch64", "arm64"]'
    )
    ntp_required = models.BooleanField(verbose_name="NTP required", default=True)
    time_skew_warn_seconds = models.FloatField(default=1.0)
    time_skew_fail_seconds = models.FloatField(default=30.0)
    check_reserved_ports = models.BooleanField(
        default=False, help_text="Warn when the ephemeral port range overlaps service ports (GPUStack issue 5181)"
    )
    # host.resources: Preflight's own defaults (GPUStack gives none); runner images are several GiB each and model
    # containers get 10 GiB of shared memory by default (GPUStack issue 5014).
    worker_disk_warn_gib = models.PositiveIntegerField(
        default=100, help_text="Warn when a worker's Docker root has less free space (GiB)"
    )
    worker_disk_fail_gib = models.PositiveIntegerField(
        default=20, help_text="Fail when a worker's Docker root has less free space (GiB)"
    )
    worker_memory_warn_gib = models.PositiveIntegerField(default=32, help_text="Warn when a worker has less RAM (GiB)")
    server_disk_warn_gib = models.PositiveIntegerField(
        default=20, help_text="Warn when the server's Docker root has less free space (GiB)"
    )
    duplicate_product_uuid_fails = models.BooleanField(
        verbose_name="duplicate product UUID fails",
        default=False,
        help_text="cluster.unique fails (not warns) on a shared DMI product UUID: GPUStack identified workers by it "
        "until v2.1.0 (issues 3922, 4578)",
    )
    os_table_advisory = models.BooleanField(
        verbose_name="OS table advisory",
        default=False,
        help_text="The OS table is what GPUStack once tested: a distro below it or not in it warns instead of failing",
    )
    docker_desktop_fails_on_worker = models.BooleanField(
        default=False, help_text="Docker Desktop on a worker fails container.docker (it only warns otherwise)"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_profile"),
            models.CheckConstraint(
                condition=Q(time_skew_warn_seconds__gt=0) & Q(time_skew_fail_seconds__gte=F("time_skew_warn_seconds")),
                name="profile_skew_thresholds_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class OsRule(models.Model):
    """One row of the tested-OS table: a distribution (by os-release ID) and its minimum version."""

    profile = models.ForeignKey(RequirementProfile, on_delete=models.CASCADE, related_name="os_rules")
    distro_id = models.SlugField(max_length=64, help_text="os-release ID, e.g. ubuntu, rhel, opensuse-leap")
    name = models.CharField(max_length=64, help_text="As the requirements page names it")
    min_version = models.CharField(max_length=32, help_text="Lowest tested VERSION_ID, e.g. 20.04")
    note = models.CharField(max_length=120, blank=True, help_text="Qualifier from the source, e.g. Leap")

    class Meta:
        ordering = ["profile", "id"]
        verbose_name = "OS rule"
        constraints = [
            models.UniqueConstraint(fields=["profile", "distro_id"], name="os_rule_unique_distro"),
            models.CheckConstraint(condition=~Q(min_version=""), name="os_rule_min_version_set"),
        ]

    def __str__(self) -> str:
        return f"{self.name} >= {self.min_version}"


class AcceleratorRule(models.Model):
    """What a vendor's accelerators need on a node: driver, container toolkit or SDK, and version floors."""

    profile = models.ForeignKey(RequirementProfile, on_delete=models.CASCADE, related_name="accelerator_rules")
    vendor = models.CharField(max_length=16, choices=VENDOR_CHOICES)
    experimental = models.BooleanField(default=False)
    driver_name = models.CharField(max_length=120)
    driver_url = models.URLField(verbose_name="driver URL", blank=True)
    toolkit_name = models.CharField(max_length=120)
    toolkit_url = models.URLField(verbose_name="toolkit URL", blank=True)
    docker_runtime = models.CharField(
        max_length=32, blank=True, help_text="Runtime that `docker info` must list; blank when the vendor has none"
    )
    min_version = models.CharField(max_length=32, blank=True, help_text="e.g. 12.8 (CUDA) or 7.0 (ROCm)")
    min_version_of = models.CharField(max_length=32, blank=True, help_text="What min_version measures: CUDA, ROCm")
    min_driver_version = models.CharField(max_length=32, blank=True, help_text="Lowest driver version, e.g. 570")
    min_compute_capability = models.CharField(
        max_length=8, blank=True, help_text="A GPU below this compute capability fails, e.g. 6.0 (NVIDIA)"
    )
    warn_compute_capability = models.CharField(
        max_length=8, blank=True, help_text="A GPU below this compute capability warns, e.g. 7.0 (vLLM's floor)"
    )
    amd64_only = models.BooleanField(default=False)

    class Meta:
        ordering = ["profile", "id"]
        constraints = [
            models.UniqueConstraint(fields=["profile", "vendor"], name="accelerator_rule_unique_vendor"),
            models.CheckConstraint(
                condition=Q(min_version="") | ~Q(min_version_of=""), name="accelerator_rule_min_version_names_what"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_vendor_display()}: {self.driver_name} + {self.toolkit_name}"


class PortRule(models.Model):
    """A TCP/UDP port or range that a node of a role needs, and when it applies."""

    profile = models.ForeignKey(RequirementProfile, on_delete=models.CASCADE, related_name="port_rules")
    role = models.CharField(max_length=16, choices=NodeRole.choices)
    first_port = models.PositiveIntegerField()
    last_port = models.PositiveIntegerField()
    protocol = models.CharField(max_length=3, choices=Protocol.choices, default=Protocol.TCP)
    purpose = models.CharField(max_length=200)
    condition = models.CharField(max_length=24, choices=PortCondition.choices, default=PortCondition.ALWAYS)
    worker_to_worker = models.BooleanField(
        default=False, help_text="Also reached from other workers (distributed serving, Ray)"
    )
    reach = models.CharField(
        max_length=16,
        choices=PortReach.choices,
        default=PortReach.PEERS,
        help_text="Which network paths prove it; ports.available checks every rule that applies either way",
    )

    class Meta:
        ordering = ["profile", "role", "first_port"]
        constraints = [
            models.CheckConstraint(
                condition=Q(first_port__gte=1) & Q(last_port__lte=65535) & Q(first_port__lte=F("last_port")),
                name="port_rule_range_valid",
            ),
            models.UniqueConstraint(
                fields=["profile", "role", "protocol", "first_port", "last_port", "condition"],
                name="port_rule_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.protocol.upper()} {self.port_range}"

    @property
    def port_range(self) -> str:
        return str(self.first_port) if self.first_port == self.last_port else f"{self.first_port}-{self.last_port}"

    def clean(self) -> None:
        if self.first_port is not None and self.last_port is not None and self.first_port > self.last_port:
            raise ValidationError({"last_port": "The last port must not be lower than the first port."})


class Cluster(models.Model):
    """A GPUStack deployment: one server (or more) and its workers, judged against a requirement profile."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    profile = models.ForeignKey(RequirementProfile, on_delete=models.PROTECT, related_name="clusters")
    tls_enabled = models.BooleanField(verbose_name="TLS enabled", default=False, help_text="The server serves on 443")
    distributed_vllm = models.BooleanField(
        verbose_name="distributed vLLM", default=False, help_text="Ray ports are required"
    )
    server_runs_worker = models.BooleanField(default=False, help_text="The server node also gets the worker rules")
    gateway = models.CharField(
        max_length=16,
        choices=GatewayMode.choices,
        default=GatewayMode.EMBEDDED,
        help_text="GPUStack's gateway on the server (--gateway-mode); workers never run it",
    )
    external_database = models.BooleanField(
        default=False, help_text="The server uses an external database (--database-url): no embedded PostgreSQL"
    )
    builtin_observability = models.BooleanField(
        default=True, help_text="The server runs the built-in Prometheus and Grafana (the default)"
    )
    proxy_mode = models.CharField(
        max_length=16,
        choices=ProxyMode.choices,
        default=ProxyMode.WORKER,
        help_text="How the server reaches model instances on workers (--proxy-mode)",
    )
    gpustack_image_tag = models.CharField(
        verbose_name="GPUStack image tag",
        max_length=128,
        blank=True,
        default="latest",
        validators=[
            RegexValidator(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z", "a Docker image tag: letters, digits, _ . -")
        ],
        help_text="Tag of the gpustack/gpustack image in the install plan, e.g. v2.0.0 (empty: Docker's latest)",
    )
    gpustack_server_url = models.URLField(
        verbose_name="GPUStack server URL",
        blank=True,
        help_text="The GPUStack server URL workers register with; empty: http(s)://<the server node's address>",
    )
    connectivity_plan = models.CharField(
        max_length=16,
        choices=ConnectivityPlan.choices,
        default=ConnectivityPlan.AUTO,
        help_text="Which worker pairs each audit proves: full mesh, or k rotating peers per worker (sampled)",
    )
    sampled_peers = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text="Sampled plan: peers each worker connects to per audit (k); ceil((workers-1)/k) audits cover all",
    )
    group_full_mesh_limit = models.PositiveSmallIntegerField(
        default=64,
        validators=[MaxValueValidator(1000)],
        help_text="Sampled plan: a network group of at most this many nodes gets its full mesh in every audit",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("admin:inventory_cluster_change", args=[self.pk])


class Credential(models.Model):
    """How Preflight logs in: a private key (optionally with passphrase) or a password, encrypted at rest.

    The clear text is reachable only through `secret` / `passphrase`; it is never rendered by admin, UI, API or logs.
    """

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=16, choices=CredentialKind.choices)
    secret_encrypted = models.TextField(editable=False)
    passphrase_encrypted = models.TextField(blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=~Q(secret_encrypted=""), name="credential_secret_set")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def __repr__(self) -> str:
        return f"<Credential {self.pk}: {self.name} ({self.kind})>"

    secret = encrypted_property("secret_encrypted")
    passphrase = encrypted_property("passphrase_encrypted")


class Node(models.Model):
    """A machine of a cluster, with its role and how to reach it over SSH."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=128, validators=[validate_node_name])
    address = models.CharField(max_length=253, validators=[validate_address], help_text="IP address or DNS name")
    ssh_port = models.PositiveIntegerField(verbose_name="SSH port", default=22)
    ssh_user = models.CharField(verbose_name="SSH user", max_length=32, default="root", validators=[validate_ssh_user])
    role = models.CharField(max_length=16, choices=NodeRole.choices, default=NodeRole.WORKER)
    credential = models.ForeignKey(Credential, on_delete=models.PROTECT, null=True, blank=True, related_name="nodes")
    transport = models.CharField(
        max_length=8,
        choices=Transport.choices,
        default=Transport.SSH,
        help_text="Local audits the machine Preflight runs on without SSH (used by the demo)",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled nodes are kept but not audited")
    network_group = models.CharField(
        max_length=64,
        blank=True,
        validators=[RegexValidator(r"^[A-Za-z0-9_.:/-]*\Z", "letters, digits and _ . : / -")],
        help_text="Rack, subnet or switch: inside a small group the sampled plan proves the full mesh",
    )
    last_facts = models.JSONField(verbose_name="facts", default=dict, blank=True, editable=False)
    last_audit_status = models.CharField(
        max_length=16, choices=AuditStatus.choices, default=AuditStatus.UNKNOWN, editable=False
    )
    last_reached = models.BooleanField(
        null=True,
        blank=True,
        editable=False,
        help_text="Whether the audit of last_audit_status reached the node over SSH (an error then reads Not ready, "
        "not Unreachable); null: not known",
    )
    last_audited_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["cluster", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], name="node_unique_name_in_cluster"),
            models.CheckConstraint(condition=Q(ssh_port__gte=1) & Q(ssh_port__lte=65535), name="node_ssh_port_valid"),
            models.CheckConstraint(condition=~Q(address=""), name="node_address_set"),
        ]
        indexes = [models.Index(fields=["cluster", "role", "last_audit_status"])]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("admin:inventory_node_change", args=[self.pk])


class HostKey(models.Model):
    """An SSH host key seen for a node: trusted on first use, and any different key waits for an admin."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="host_keys")
    key_type = models.CharField(max_length=64, help_text="e.g. ssh-ed25519")
    fingerprint = models.CharField(max_length=128, help_text="SHA256:... as ssh-keygen -l prints it")
    public_key = models.TextField(help_text="Base64 public key blob")
    state = models.CharField(max_length=16, choices=HostKeyState.choices, default=HostKeyState.TRUSTED)
    first_seen = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["node", "-first_seen"]
        # Accepting a changed key is its own action (portal.permissions.ACCEPT_HOST_KEY): change_hostkey edits
        # nothing that decides trust.
        permissions = [("accept_hostkey", "Can accept a changed host key")]
        constraints = [
            models.UniqueConstraint(fields=["node", "key_type", "fingerprint"], name="host_key_unique"),
            models.UniqueConstraint(
                fields=["node", "key_type"], condition=Q(state="trusted"), name="host_key_one_trusted_per_type"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key_type} {self.fingerprint}"


class Accelerator(models.Model):
    """A device found on a node. Devices that disappear are marked gone, never deleted, so history shows them."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="accelerators")
    vendor = models.CharField(max_length=16, choices=VENDOR_CHOICES)
    index = models.PositiveIntegerField()
    model = models.CharField(max_length=200, blank=True)
    memory_mib = models.PositiveBigIntegerField(verbose_name="memory (MiB)", null=True, blank=True)
    uuid = models.CharField(verbose_name="UUID", max_length=128, blank=True, help_text="UUID or serial number")
    pci_address = models.CharField(verbose_name="PCI address", max_length=32, blank=True)
    driver_version = models.CharField(max_length=64, blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)
    gone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["node", "vendor", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["node", "vendor", "index"], condition=Q(gone_at__isnull=True), name="accelerator_unique_present"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vendor}[{self.index}] {self.model}".strip()


class DriverInstall(models.Model):
    """A driver, toolkit, runtime, SDK, NTP daemon or Docker found on a node, with its version."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="installs")
    vendor = models.CharField(max_length=16, choices=VENDOR_CHOICES, blank=True)
    kind = models.CharField(max_length=24, choices=InstallKind.choices)
    name = models.CharField(max_length=120)
    version = models.CharField(max_length=64, blank=True)
    detected_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)
    gone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["node", "kind", "name"]
        verbose_name = "installed driver or tool"
        constraints = [
            models.UniqueConstraint(
                fields=["node", "kind", "name"], condition=Q(gone_at__isnull=True), name="install_unique_present"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()
