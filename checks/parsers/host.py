"""Host identity and resources, and what Docker already runs: /etc/machine-id, DMI product UUID, /proc/meminfo,
`df -Pk`, `docker ps`, `docker inspect` of GPUStack containers, the NVIDIA container runtime's config.toml."""

import hashlib
import re

from ..facts import Filesystem, GpustackContainer

# SHA-256 of the product_uuid file of firmware that never set one (all zeros, all F; either case), with its newline
_PLACEHOLDER_DIGESTS = frozenset(
    hashlib.sha256(f"{value}\n".encode()).hexdigest()
    for value in (
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    )
)
_GPUSTACK_IMAGE = re.compile(r"^(?:docker\.io/)?gpustack/gpustack(?:[:@].*)?$")


def _sha256_line(text: str) -> str:
    """`sha256sum` output (`<64 hex>  -`) -> the digest, else ""."""
    match = re.fullmatch(r"([0-9a-f]{64})\s+-?\s*", text.strip() + " ")
    return match.group(1) if match else ""


def parse_machine_id(text: str) -> str:
    """/etc/machine-id as the probe sends it: the SHA-256 of the file (machine-id(5) calls the id confidential),
    or, from a node without sha256sum, the id itself, hashed here the same way. Empty or "uninitialized": no id."""
    digest = _sha256_line(text)
    if digest:
        return digest
    value = text.strip().lower()
    return hashlib.sha256(f"{value}\n".encode()).hexdigest() if re.fullmatch(r"[0-9a-f]{32}", value) else ""


def parse_product_uuid(text: str) -> str:
    """/sys/class/dmi/id/product_uuid, hashed like the machine-id; the all-zero and all-F placeholders of unset
    firmware are no id (a node without sha256sum sends the value; its placeholder check happens here)."""
    digest = _sha256_line(text)
    if digest:
        return "" if digest in _PLACEHOLDER_DIGESTS else digest
    value = text.strip()
    if not re.fullmatch(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}", value):
        return ""
    digest = hashlib.sha256(f"{value}\n".encode()).hexdigest()
    return "" if digest in _PLACEHOLDER_DIGESTS else digest


def parse_meminfo_total_kib(text: str) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d{1,15})\s*kB", text, re.M)
    return int(match.group(1)) if match else None


def parse_df(text: str) -> list[Filesystem]:
    """`df -Pk`: size and available 1K blocks per mount point (mount points with spaces are kept whole)."""
    found = []
    for line in text.splitlines()[1:5000]:
        match = re.match(r"^\S+\s+(\d{1,18})\s+\d{1,18}\s+(\d{1,18})\s+\d{1,3}%\s+(/.*)$", line.strip())
        if match:
            found.append(Filesystem(match.group(3), int(match.group(1)), int(match.group(2))))
    return found


def filesystem_of(path: str, filesystems: list[Filesystem]) -> Filesystem | None:
    """The filesystem holding `path`: the longest mount point that is `path` or one of its parents."""
    best = None
    for fs in filesystems:
        mount = fs.mount.rstrip("/") or "/"
        if (path == mount or path.startswith(mount.rstrip("/") + "/")) and (
            best is None or len(mount) > len(best.mount.rstrip("/") or "/")
        ):
            best = fs
    return best


def parse_docker_ps(text: str) -> list[tuple[str, str]]:
    """`docker ps -a --format '{{.Names}}|{{.Image}}'`: (name, image) of every container."""
    rows = []
    for line in text.splitlines()[:500]:
        name, sep, image = line.strip().partition("|")
        if sep and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", name) and image:
            rows.append((name, image[:300]))
    return rows


def is_gpustack_image(image: str) -> bool:
    return bool(_GPUSTACK_IMAGE.match(image))


def parse_gpustack_containers(ps_text: str, inspect_text: str) -> list[GpustackContainer]:
    """The gpustack/gpustack containers of `docker ps`, with GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME from `docker
    inspect` (`/NAME|IMAGE|GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME=value` or an empty last field when unset)."""
    containers = [
        GpustackContainer(name, image) for name, image in parse_docker_ps(ps_text) if is_gpustack_image(image)
    ]
    inspected: dict[str, str] = {}
    for line in inspect_text.splitlines()[:100]:
        parts = line.strip().split("|", 2)
        if len(parts) == 3 and parts[0].startswith("/"):
            env = parts[2]
            key = "GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME="
            inspected[parts[0][1:]] = env[len(key) :].strip()[:128] if env.startswith(key) else ""
    for container in containers:
        container.mirrored_name = inspected.get(container.name) if inspect_text else None
    return containers[:50]


def parse_nvidia_runtime_mode(text: str) -> str:
    """/etc/nvidia-container-runtime/config.toml: `mode` of the `[nvidia-container-runtime]` table; `auto` (the
    toolkit's default) when it is not set."""
    table = ""
    for line in text.splitlines()[:2000]:
        stripped = line.strip()
        header = re.match(r"^\[\s*([\w.\-]+)\s*\]", stripped)
        if header:
            table = header.group(1)
            continue
        match = re.match(r'^mode\s*=\s*"([\w\-]{1,32})"', stripped)
        if table == "nvidia-container-runtime" and match:
            return match.group(1).lower()
    return "auto"
