"""Enumerations shared by the inventory models, the importer, the checks and the API."""

from django.db import models


class NodeRole(models.TextChoices):
    SERVER = "server", "Server"
    WORKER = "worker", "Worker"


class Vendor(models.TextChoices):
    """The eight accelerator vendors of GPUStack's requirements page (the seed), which profile gpustack-2.0
    transcribes; vendors GPUStack added later are in `LaterVendor`, and `VENDOR_CHOICES` holds both."""

    NVIDIA = "nvidia", "NVIDIA GPU"
    AMD = "amd", "AMD GPU"
    ASCEND = "ascend", "Ascend NPU"
    HYGON = "hygon", "Hygon DCU"
    MTHREADS = "mthreads", "MThreads GPU"
    ILUVATAR = "iluvatar", "Iluvatar GPU"
    METAX = "metax", "MetaX GPU"
    CAMBRICON = "cambricon", "Cambricon MLU"


class LaterVendor(models.TextChoices):
    """Vendors GPUStack supports beyond the seed page: T-Head PPU since v2.2 (experimental upstream, cd854e59)."""

    THEAD = "thead", "T-Head PPU"


# Every vendor a rule, an accelerator or a driver install may name: the seed's eight, then the later ones.
VENDOR_CHOICES = [*Vendor.choices, *LaterVendor.choices]


class InstallKind(models.TextChoices):
    DRIVER = "driver", "Driver"
    TOOLKIT = "toolkit", "Toolkit"
    CONTAINER_RUNTIME = "container-runtime", "Container runtime"
    SDK = "sdk", "SDK"
    NTP = "ntp", "NTP"
    DOCKER = "docker", "Docker"


class CredentialKind(models.TextChoices):
    PRIVATE_KEY = "private_key", "Private key"
    PASSWORD = "password", "Password"


class Protocol(models.TextChoices):
    TCP = "tcp", "TCP"
    UDP = "udp", "UDP"


class PortCondition(models.TextChoices):
    ALWAYS = "always", "Always"
    TLS = "tls", "When TLS is enabled"
    DISTRIBUTED_VLLM = "distributed_vllm", "When distributed vLLM is enabled"
    GATEWAY_ENABLED = "gateway_enabled", "Unless the gateway is disabled"
    GATEWAY_EMBEDDED = "gateway_embedded", "When the embedded gateway runs"
    BUILTIN_DATABASE = "builtin_database", "Unless the cluster uses an external database"
    OBSERVABILITY = "observability", "While built-in observability is on"


class PortReach(models.TextChoices):
    """Which other nodes connect to a port, so which network paths must prove it."""

    PEERS = "peers", "Nodes of the other role connect to it"
    DIRECT_MODE = "direct_mode", "The server connects to it in direct proxy mode"
    NONE = "none", "No server-worker path: loopback or used on the node itself (worker to worker follows its own flag)"


class GatewayMode(models.TextChoices):
    EMBEDDED = "embedded", "Embedded (on the server)"
    DISABLED = "disabled", "Disabled"


class ProxyMode(models.TextChoices):
    """How the server reaches model instances on workers (GPUStack's `--proxy-mode`, v2.2.0)."""

    DIRECT = "direct", "Direct (the server connects to the inference ports)"
    WORKER = "worker", "Worker (the server connects to the worker port)"
    TUNNEL = "tunnel", "Tunnel (the worker keeps one connection to the server)"


class AuditStatus(models.TextChoices):
    """A node's or check's outcome, ordered from best to worst (error is worse than fail for display)."""

    UNKNOWN = "unknown", "Not audited"
    PASS = "pass", "Pass"
    SKIP = "skip", "Skip"
    WARN = "warn", "Warn"
    FAIL = "fail", "Fail"
    ERROR = "error", "Error"


class HostKeyState(models.TextChoices):
    TRUSTED = "trusted", "Trusted"
    PENDING = "pending", "Offered, awaiting acceptance"
    RETIRED = "retired", "Replaced"


class Transport(models.TextChoices):
    SSH = "ssh", "SSH"
    LOCAL = "local", "Local (the machine Preflight runs on)"


class ConnectivityPlan(models.TextChoices):
    """Which worker-to-worker paths an audit proves (issue 24); server<->worker paths are always all proven."""

    AUTO = "auto", "Auto (full up to 50 workers, sampled above)"
    FULL = "full", "Full mesh (every worker pair in every audit)"
    SAMPLED = "sampled", "Sampled (k peers per worker, rotated so successive audits cover every pair)"
