"""Remediation as data: the explanation a person reads, plus the commands that fix it.

Commands come only from the fixed templates in `TEMPLATES`, rendered by `command()`. A template's fields are filled
with integers, words from the closed vocabularies below (package, service and repository names this module knows),
or strings passed through `shlex.quote`; text that a node printed (names, versions, process names, model strings,
evidence) is never an argument. Explanations may quote node text: every place that shows them escapes it (HTML,
CSV, the script's comments). Diagnostics ("check with `chronyc sources -v`") belong in the explanation, never in
`commands`, which hold only steps that fix and that are safe to run twice.
"""

from __future__ import annotations

import re
import shlex
import string
from dataclasses import dataclass

from .facts import OsRelease

DOCKER_DOCS = "https://docs.docker.com/engine/install/"

# The closed vocabularies: every `packages`, `service` and `url` field must come from these.
PACKAGES = frozenset(
    {
        "ca-certificates",
        "curl",
        "gnupg",
        "chrony",
        "docker",
        "docker-ce",
        "docker-ce-cli",
        "containerd.io",
        "docker-buildx-plugin",
        "docker-compose-plugin",
        "nvidia-container-toolkit",
        "amd-container-toolkit",
    }
)
SERVICES = frozenset({"chrony", "chronyd", "docker", "systemd-timesyncd"})
URLS = frozenset(
    {
        *(f"https://download.docker.com/linux/{d}/gpg" for d in ("debian", "ubuntu", "raspbian")),
        *(f"https://download.docker.com/linux/{d}/docker-ce.repo" for d in ("centos", "rhel", "fedora")),
        "https://nvidia.github.io/libnvidia-container/gpgkey",
        "https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list",
        "https://nvidia.github.io/libnvidia-container/stable/rpm/nvidia-container-toolkit.repo",
        "https://repo.radeon.com/rocm/rocm.gpg.key",
    }
)
PATHS = frozenset(
    {
        "/etc/apt/keyrings/docker.asc",
        "/etc/apt/sources.list.d/docker.list",
        "/etc/yum.repos.d/docker-ce.repo",
        "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg",
        "/etc/apt/sources.list.d/nvidia-container-toolkit.list",
        "/etc/yum.repos.d/nvidia-container-toolkit.repo",
        "/etc/apt/keyrings/rocm.gpg",
        "/etc/apt/sources.list.d/amd-container-toolkit.list",
        "/etc/sysctl.d/90-gpustack.conf",
        "/etc/systemd/system/docker.service.d/90-gpustack-no-proxy.conf",
    }
)
# Release code names Docker's and vendors' apt repositories publish; a node's own code name is used only if listed.
UBUNTU_CODENAMES = frozenset({"bionic", "focal", "jammy", "noble", "oracular", "plucky", "questing"})
DEBIAN_CODENAMES = frozenset({"buster", "bullseye", "bookworm", "trixie"})
AMD_TOOLKIT_CODENAMES = frozenset({"jammy", "noble"})
ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
FIREWALLS = frozenset({"firewalld", "ufw", "nftables", "iptables"})
PROTOCOLS = frozenset({"tcp", "udp"})

TEMPLATES: dict[str, str] = {
    "apt.update": "apt-get update",
    "apt.install": "DEBIAN_FRONTEND=noninteractive apt-get install -y {packages}",
    "dnf.install": "dnf install -y {packages}",
    "yum.install": "yum install -y {packages}",
    "zypper.install": "zypper --non-interactive install {packages}",
    "service.enable": "systemctl enable --now {service}",
    "service.restart": "systemctl restart {service}",
    "keyrings.dir": "install -m 0755 -d /etc/apt/keyrings",
    "download": "curl -fsSL {url} -o {path}",
    "dearmor": "curl -fsSL {url} | gpg --batch --yes --dearmor -o {path}",
    "readable": "chmod a+r {path}",
    "write": "printf '%s\\n' {line} > {path}",
    "nvidia.list": "curl -fsSL {url} | sed {expression} > {path}",
    "zypper.repo": "zypper repos {alias} >/dev/null 2>&1 || zypper --non-interactive addrepo {url}",
    "zypper.refresh": "zypper --non-interactive --gpg-auto-import-keys refresh",
    "snap.remove": "if snap list docker >/dev/null 2>&1; then snap remove docker; fi",
    "runtime.configure": "{ctk} runtime configure --runtime=docker",
    "ascend.install": "[ -d /usr/local/Ascend/Ascend-Docker-Runtime ] || "
    "find . -maxdepth 1 -name {installer} -exec sh {{}} --install ';'",
    "ntp.on": "timedatectl set-ntp true",
    "chrony.step": "chronyc makestep",
    "sysctl.set": "sysctl -w {setting}",
    "firewalld.add": "firewall-cmd --permanent --add-port={span}/{protocol}",
    "firewalld.reload": "firewall-cmd --reload",
    "ufw.allow": "ufw allow {span}/{protocol}",
    "iptables.accept": "iptables -C INPUT -p {protocol} --dport {span} -j ACCEPT 2>/dev/null || "
    "iptables -I INPUT -p {protocol} --dport {span} -j ACCEPT",
    "nft.accept": "nft list chain inet filter input | grep -q {rule} || "
    "nft insert rule inet filter input {protocol} dport {span} accept",
    # Which process holds a port is decided when the script runs, from the kernel's socket table: the inodes of the
    # listening TCP sockets on those ports (/proc/net/tcp{,6}, state 0A, the port in hex), then every process with
    # such a socket open (/proc/PID/fd). POSIX sh, cat and readlink only (no awk, fuser or ss). Only port numbers are
    # in the command, never a pid or a name a node printed; pid 1 is never signalled.
    "port.free": "want=\" $(printf '%04X ' {ports})\"; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | "
    'while read -r _ addr _ st _ _ _ _ _ inode _; do case "$want" in *" ${{addr##*:}} "*) '
    'if [ "$st" = 0A ]; then for f in /proc/[0-9]*/fd/*; do '
    'if [ "$(readlink "$f" 2>/dev/null)" = "socket:[$inode]" ]; then p=${{f#/proc/}}; p=${{p%%/*}}; '
    '[ "$p" -eq 1 ] || kill "$p" 2>/dev/null || true; fi; done; fi;; esac; done',
    # field checks
    "ctk.default": "nvidia-ctk runtime configure --runtime=docker --set-as-default",
    "ctk.cdi.generate": "nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
    "ctk.mode.cdi": "nvidia-ctk config --in-place --set nvidia-container-runtime.mode=cdi",
    "dropin.dir": "install -m 0755 -d /etc/systemd/system/docker.service.d",
    "dropin.no_proxy": "printf '[Service]\\nEnvironment=%s\\nEnvironment=%s\\n' {upper} {lower} > {path}",
    "systemd.reload": "systemctl daemon-reload",
    "hostname.set": "hostnamectl set-hostname {name}",
    "cdi.dir": "install -m 0755 -d /var/run/cdi",
}

_CLOSED = {"packages": PACKAGES, "service": SERVICES, "url": URLS, "path": PATHS}


def _field(name: str, value: int | str | tuple[str, ...]) -> str:
    if isinstance(value, bool):
        raise TypeError(f"{name}: a flag is not a command argument")
    if isinstance(value, int):
        return str(value)
    words = value if isinstance(value, tuple) else (value,)
    closed = _CLOSED.get(name)
    if closed is not None:
        unknown = [w for w in words if w not in closed]
        if unknown:
            raise ValueError(f"{name}: {unknown!r} is not in the closed vocabulary")
    return " ".join(shlex.quote(str(w)) for w in words)


def command(template: str, **fields: int | str | tuple[str, ...]) -> str:
    """One command from `TEMPLATES[template]`: integers as numbers, every string through `shlex.quote`."""
    text = TEMPLATES[template]
    wanted = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    if wanted != set(fields):
        raise ValueError(f"{template}: fields {sorted(fields)} do not match {sorted(wanted)}")
    return text.format(**{name: _field(name, value) for name, value in fields.items()})


@dataclass(frozen=True)
class Remedy:
    """What to do about a non-passing result: `text` for a person, `commands` to run on that node, in order."""

    text: str = ""
    commands: tuple[str, ...] = ()


def _text(*parts: str) -> str:
    return " ".join(" ".join(part.split()) for part in parts if part)


# ---- package managers ------------------------------------------------------------------------------------------


def _major(version_id: str) -> int | None:
    head = version_id.split(".", 1)[0]
    return int(head) if head.isdigit() and len(head) < 6 else None


def package_manager(os: OsRelease) -> str:
    """apt, dnf, yum, zypper or unknown, from the node's facts: `yum` on RHEL/CentOS/Oracle 7 and Amazon Linux 2."""
    family = os.family
    if family != "dnf":
        return family
    major = _major(os.version_id)
    ids = {os.id.lower(), *(x.lower() for x in os.id_like)}
    if os.id.lower() == "amzn":
        return "yum" if major is not None and major < 2022 else "dnf"
    if ids & {"rhel", "centos", "ol", "scientific"} and os.id.lower() != "fedora" and major is not None and major < 8:
        return "yum"
    return "dnf"


def _install(manager: str, *packages: str) -> str:
    return command(f"{manager}.install", packages=packages)


def _apt_repository(os: OsRelease) -> tuple[str, str] | None:
    """(Docker's distro directory, release code name) for an apt node, when Docker publishes that release."""
    fields = {k.upper(): v.strip().lower() for k, v in os.fields.items()}
    ids = [os.id.lower(), *(x.lower() for x in os.id_like)]
    ubuntu = fields.get("UBUNTU_CODENAME") or (fields.get("VERSION_CODENAME") if os.id.lower() == "ubuntu" else "")
    if ubuntu in UBUNTU_CODENAMES:
        return "ubuntu", ubuntu
    codename = fields.get("VERSION_CODENAME", "")
    if "raspbian" in ids[:1] and codename in DEBIAN_CODENAMES:
        return "raspbian", codename
    if "debian" in ids and codename in DEBIAN_CODENAMES:
        return "debian", codename
    return None


# ---- per check -------------------------------------------------------------------------------------------------


def fix_os_supported(*, table: str, current: str) -> Remedy:
    return Remedy(
        _text(f"GPUStack is tested on: {table}. Reinstall or upgrade this node to one of them (it runs {current}).")
    )


def fix_architecture(*, machine: str, extra: str = "") -> Remedy:
    return Remedy(
        _text(
            f"GPUStack runs on AMD64 (x86_64) and ARM64 (aarch64) only; this node is {machine}.",
            extra,
            "Use another machine for this role.",
        )
    )


def fix_ntp(os: OsRelease) -> Remedy:
    manager = package_manager(os)
    if manager == "unknown":
        return Remedy(
            "Install an NTP implementation (chrony, ntpd or systemd-timesyncd) with this node's package manager and "
            "enable its service; Preflight cannot tell which package manager this node uses."
        )
    service = "chrony" if manager == "apt" else "chronyd"
    return Remedy(
        f"Install chrony and start its service ({service}) at boot.",
        (_install(manager, "chrony"), command("service.enable", service=service)),
    )


def fix_synchronized(os: OsRelease, implementations: list[str]) -> Remedy:
    explanation = (
        "Turn on network time and check its servers: `chronyc sources -v` (chrony) or `timedatectl timesync-status` "
        "(systemd-timesyncd) show whether they answer; open UDP 123 outbound if they are unreachable."
    )
    if "chrony" in implementations:
        service = "chrony" if package_manager(os) == "apt" else "chronyd"
        return Remedy(explanation, (command("service.enable", service=service),))
    if "systemd-timesyncd" in implementations:
        return Remedy(explanation, (command("ntp.on"),))
    return Remedy(explanation)


def fix_skew(os: OsRelease, implementations: list[str], *, offset: str) -> Remedy:
    explanation = (
        f"This node's clock is {offset} from the portal's. Step it now and keep the time service running at boot."
    )
    if "chrony" in implementations or not implementations:  # with none, time.ntp's fix installs chrony first
        return Remedy(explanation, (command("chrony.step"),))
    if "systemd-timesyncd" in implementations:
        return Remedy(explanation, (command("ntp.on"), command("service.restart", service="systemd-timesyncd")))
    return Remedy(explanation + " Restart the NTP daemon with its service manager (ntpd and openntpd step at start).")


def fix_docker_missing(os: OsRelease) -> Remedy:
    """Docker Engine from Docker's own repository where Docker publishes one for the node's distro."""
    manager = package_manager(os)
    engine = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin")
    enable = command("service.enable", service="docker")
    distro = os.id.lower()
    if manager == "apt":
        repository = _apt_repository(os)
        if repository is None:
            return Remedy(
                f"Install Docker Engine from Docker's apt repository ({DOCKER_DOCS}): this node's release is not one "
                "Docker publishes packages for, so Preflight gives no command."
            )
        directory, codename = repository
        line = (
            "deb [signed-by=/etc/apt/keyrings/docker.asc] "
            f"https://download.docker.com/linux/{directory} {codename} stable"
        )
        return Remedy(
            f"Install Docker Engine from Docker's apt repository for {directory.title()} {codename} ({DOCKER_DOCS}).",
            (
                command("apt.update"),
                _install("apt", "ca-certificates", "curl"),
                command("keyrings.dir"),
                command(
                    "download",
                    url=f"https://download.docker.com/linux/{directory}/gpg",
                    path="/etc/apt/keyrings/docker.asc",
                ),
                command("readable", path="/etc/apt/keyrings/docker.asc"),
                command("write", line=line, path="/etc/apt/sources.list.d/docker.list"),
                command("apt.update"),
                _install("apt", *engine),
                enable,
            ),
        )
    if manager in ("dnf", "yum"):
        if distro == "amzn":
            return Remedy(
                "Install Docker from Amazon Linux's own repository (Docker publishes none for Amazon Linux).",
                (_install(manager, "docker"), enable),
            )
        repo: str | None = {"fedora": "fedora", "rhel": "rhel", "centos": "centos"}.get(distro)
        if repo is None and {x.lower() for x in os.id_like} & {"rhel", "centos"}:
            repo = "centos"  # Rocky, AlmaLinux, Oracle Linux: Docker documents its CentOS repository
        if repo is None:
            return Remedy(
                f"Docker publishes no repository for {distro or 'this distribution'}; install its distribution's "
                f"Docker Engine package or follow {DOCKER_DOCS}."
            )
        return Remedy(
            f"Install Docker Engine from Docker's {repo} repository ({DOCKER_DOCS}).",
            (
                command(
                    "download",
                    url=f"https://download.docker.com/linux/{repo}/docker-ce.repo",
                    path="/etc/yum.repos.d/docker-ce.repo",
                ),
                _install(manager, *engine),
                enable,
            ),
        )
    if manager == "zypper":
        return Remedy(
            "Docker publishes no repository for SUSE on x86_64 or ARM64: install SUSE's Docker package (on SLES, "
            "enable the Containers Module first with SUSEConnect).",
            (_install("zypper", "docker"), enable),
        )
    return Remedy(f"Install Docker Engine ({DOCKER_DOCS}) and start its daemon.")


def fix_docker_stopped(os: OsRelease, *, reason_hint: str = "") -> Remedy:
    return Remedy(
        _text(
            "Start the Docker daemon and enable it at boot; `journalctl -u docker` says why it stopped.", reason_hint
        ),
        (command("service.enable", service="docker"),),
    )


def fix_docker_permission() -> Remedy:
    return Remedy(
        "Audit this node as root, or add the audit user to the docker group (`usermod -aG docker` followed by the "
        "user's name) so Preflight can query the daemon."
    )


def fix_docker_snap(os: OsRelease) -> Remedy:
    engine = fix_docker_missing(os)
    return Remedy(
        _text("Remove the Docker snap, which vendor container toolkits do not support, then", engine.text),
        (command("snap.remove"), *engine.commands),
    )


def fix_docker_desktop(os: OsRelease) -> Remedy:
    engine = fix_docker_missing(os)
    return Remedy(
        _text(
            "Docker Desktop runs containers in a VM without the host's GPUs: uninstall it "
            "(https://docs.docker.com/desktop/uninstall/), then",
            engine.text,
        ),
        engine.commands,
    )


def fix_accelerator_present(role: str = "worker", unsupported: str = "") -> Remedy:
    if unsupported:
        return Remedy(
            f"This {role}'s {unsupported} accelerators need a profile that supports them: point the cluster at "
            "profile gpustack-2.2 or later (GPUStack added T-Head PPU in v2.2), or use this node for CPU models only."
        )
    return Remedy(
        f"No accelerator was found on this {role}'s PCI bus; it can only serve CPU models. If it has GPUs, check that "
        "they are seated and enabled in the BIOS (`lspci -nn | grep -Ei 'vga|3d|accel'` lists them)."
    )


def fix_driver(*, driver_name: str, driver_url: str, tool: str, detail: str = "") -> Remedy:
    return Remedy(
        _text(
            f"Install or repair the {driver_name} ({driver_url or 'see the vendor site'}), then check that `{tool}` "
            "lists every device. Driver installs depend on the kernel and the vendor's packaging, so Preflight gives "
            "no command.",
            detail,
        )
    )


def fix_version(*, vendor_label: str, what: str, minimum: str, current: str, driver_url: str) -> Remedy:
    return Remedy(
        f"Upgrade the {vendor_label} driver so that {what} is at least {minimum} (this node has {current}); "
        f"see {driver_url or 'the vendor site'}."
    )


def _restart_docker() -> str:
    return command("service.restart", service="docker")


def _nvidia_toolkit(os: OsRelease) -> tuple[str, ...] | None:
    manager = package_manager(os)
    if manager == "apt":
        keyring = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
        return (
            command("apt.update"),
            _install("apt", "ca-certificates", "curl", "gnupg"),
            command("dearmor", url="https://nvidia.github.io/libnvidia-container/gpgkey", path=keyring),
            command(
                "nvidia.list",
                url="https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list",
                expression=f"s#deb https://#deb [signed-by={keyring}] https://#g",
                path="/etc/apt/sources.list.d/nvidia-container-toolkit.list",
            ),
            command("apt.update"),
            _install("apt", "nvidia-container-toolkit"),
        )
    repo = "https://nvidia.github.io/libnvidia-container/stable/rpm/nvidia-container-toolkit.repo"
    if manager in ("dnf", "yum"):
        return (
            command("download", url=repo, path="/etc/yum.repos.d/nvidia-container-toolkit.repo"),
            _install(manager, "nvidia-container-toolkit"),
        )
    if manager == "zypper":
        return (
            command("zypper.repo", alias="nvidia-container-toolkit", url=repo),
            command("zypper.refresh"),
            _install("zypper", "nvidia-container-toolkit"),
        )
    return None


def _amd_toolkit(os: OsRelease) -> tuple[str, ...] | None:
    repository = _apt_repository(os) if package_manager(os) == "apt" else None
    if repository is None or repository[1] not in AMD_TOOLKIT_CODENAMES:
        return None
    line = (
        "deb [signed-by=/etc/apt/keyrings/rocm.gpg] https://repo.radeon.com/amd-container-toolkit/apt/ "
        f"{repository[1]} main"
    )
    return (
        command("apt.update"),
        _install("apt", "ca-certificates", "curl", "gnupg"),
        command("keyrings.dir"),
        command("dearmor", url="https://repo.radeon.com/rocm/rocm.gpg.key", path="/etc/apt/keyrings/rocm.gpg"),
        command("write", line=line, path="/etc/apt/sources.list.d/amd-container-toolkit.list"),
        command("apt.update"),
        _install("apt", "amd-container-toolkit"),
    )


def fix_toolkit(
    os: OsRelease,
    *,
    vendor: str,
    toolkit_name: str,
    toolkit_url: str,
    runtime: str,
    installed: bool,
    machine: str = "",
    cdi_dir: str = "",
) -> Remedy:
    """Install the vendor's container toolkit and register its Docker runtime, where the vendor documents commands."""
    link = toolkit_url or "the vendor site"
    if cdi_dir:
        text = _text(
            f"GPUStack hands the devices to containers through CDI, not through a Docker runtime: its runtime writes "
            f"the CDI spec into {cdi_dir} at deployment, so the directory must exist (keep it across reboots with a "
            "systemd-tmpfiles line) and be mounted into the GPUStack container.",
            "The SDK is installed."
            if installed
            else f"Install the {toolkit_name} ({link}); the vendor documents no "
            "command-line install Preflight can give, follow its page.",
        )
        return Remedy(text, (command("cdi.dir"),) if cdi_dir == "/var/run/cdi" else ())
    register = f"register its `{runtime}` runtime with Docker and restart Docker" if runtime else ""
    if vendor in ("nvidia", "amd"):
        ctk = "nvidia-ctk" if vendor == "nvidia" else "amd-ctk"
        configure = (command("runtime.configure", ctk=ctk), _restart_docker())
        if installed:
            return Remedy(f"The {toolkit_name} is installed: {register} ({link}).", configure)
        steps = _nvidia_toolkit(os) if vendor == "nvidia" else _amd_toolkit(os)
        if steps is None:
            return Remedy(
                f"Install the {toolkit_name} from the vendor's repository for this distribution ({link}); Preflight "
                f"has no documented command for it. Then run `{ctk} runtime configure --runtime=docker` and restart "
                "Docker."
            )
        return Remedy(
            f"Install the {toolkit_name} from the vendor's repository ({link}), then {register}.", steps + configure
        )
    if vendor == "ascend":
        arch = ARCHITECTURES.get(machine.lower())
        text = (
            f"Download the {toolkit_name} installer (Ascend-docker-runtime_<version>_linux-<arch>.run) from {link} "
            "into the directory you run this script from; the script runs it with `--install`, which registers the "
            "`ascend` runtime in /etc/docker/daemon.json, then restarts Docker."
        )
        if arch is None:
            return Remedy(text.replace("; the script runs it", ", then run it") + " (Preflight cannot tell the arch.)")
        installer = f"Ascend-docker-runtime_*_linux-{arch}.run"
        return Remedy(text, (command("ascend.install", installer=installer), _restart_docker()))
    return Remedy(
        _text(
            f"Install the {toolkit_name} ({link}).",
            f"Then {register}." if runtime else "",
            "The vendor documents no command-line install Preflight can give; follow its page.",
        )
    )


def fix_ports_available(
    *, holders: list[tuple[list[int], str, int | None]], summary: str, database_ports: list[int] | None = None
) -> Remedy:
    """`holders`: (ports, process as printed, pid or None) per process. Only the port numbers reach commands: the
    script finds the process that holds each port when it runs, so no pid or name a node printed is ever signalled.
    `database_ports`: GPUStack's embedded-database ports held by a PostgreSQL already, which get the cluster option
    instead of a command (stopping someone's database is not a fix)."""
    commands = []
    for ports, _process, _pid in holders:
        wanted = tuple(str(int(port)) for port in sorted(set(ports)) if 0 < int(port) < 65536)
        if wanted:
            commands.append(command("port.free", ports=wanted))
    unknown = any(pid is None for _, _, pid in holders)
    database = ", ".join(str(int(port)) for port in sorted(set(database_ports or ())))
    return Remedy(
        _text(
            f"Free the ports GPUStack needs: {summary}.",
            "The script stops each process that holds one of these ports when it runs (found by its listening "
            "socket, never by a pid from the audit); if it is a service, disable it instead "
            "(`systemctl disable --now` and the unit's name) so it does not come back at boot."
            if commands
            else "",
            "Audit as root to see the processes Preflight could not name." if unknown else "",
            f"PostgreSQL already listens on {database}, the port of GPUStack's embedded database: to have GPUStack use "
            "this (or another) PostgreSQL, turn on the cluster's External database option (GPUStack's "
            "--database-url) and audit again; Preflight does not stop a database."
            if database
            else "",
        ),
        tuple(commands),
    )


def _span(first: int, last: int, separator: str = "-") -> str:
    return str(int(first)) if first == last else f"{int(first)}{separator}{int(last)}"


def fix_ports_reserved(*, ranges: list[tuple[int, int]], already: list[tuple[int, int]]) -> Remedy:
    merged = sorted({(int(a), int(b)) for a, b in [*already, *ranges]})
    value = ",".join(_span(a, b) for a, b in merged)
    return Remedy(
        "Keep the kernel from handing GPUStack's ports to outgoing connections: reserve them now and in "
        "/etc/sysctl.d/90-gpustack.conf (GPUStack issue 5181). The ranges already reserved are kept.",
        (
            command("sysctl.set", setting=f"net.ipv4.ip_local_reserved_ports={value}"),
            command(
                "write",
                line=f"net.ipv4.ip_local_reserved_ports = {value}",
                path="/etc/sysctl.d/90-gpustack.conf",
            ),
        ),
    )


def open_ports(firewall: str, spans: list[tuple[int, int]], protocol: str = "tcp") -> tuple[str, ...]:
    """Commands that open `spans` inbound on the firewall the node runs; none when it runs none Preflight knows."""
    if firewall not in FIREWALLS or protocol not in PROTOCOLS:
        return ()
    commands: list[str] = []
    for first, last in spans:
        if firewall == "firewalld":
            commands.append(command("firewalld.add", span=_span(first, last), protocol=protocol))
        elif firewall == "ufw":
            commands.append(command("ufw.allow", span=_span(first, last, ":"), protocol=protocol))
        elif firewall == "iptables":
            commands.append(command("iptables.accept", span=_span(first, last, ":"), protocol=protocol))
        else:
            span = _span(first, last)
            commands.append(command("nft.accept", rule=f"dport {span} accept", span=span, protocol=protocol))
    if firewall == "firewalld":
        commands.append(command("firewalld.reload"))
    return tuple(commands)


def fix_open_ports(
    *, firewall: str, spans: list[tuple[int, int]], on: str, hint: str = "", between: str = ""
) -> Remedy:
    """Open blocked ports on node `on`, in the firewall it runs; the commands run on that node."""
    ports = ", ".join(_span(a, b) for a, b in spans)
    commands = open_ports(firewall, spans)
    persist = {
        "iptables": "Save the rules so they survive a reboot (netfilter-persistent save, or iptables-save to "
        "/etc/iptables/rules.v4).",
        "nftables": "The commands assume the usual `inet filter` table with an `input` chain; add the rule to "
        "/etc/nftables.conf so it survives a reboot.",
    }.get(firewall, "")
    if commands:
        text = f"Open TCP {ports} inbound in {on}'s {firewall} firewall."
    else:
        text = (
            f"Open TCP {ports} inbound on whatever filters {on}'s traffic: {on} itself shows no firewall rules, so "
            "look at cloud security groups and network firewalls."
        )
    extra = f"Check also any network firewall or security group between {between}." if between else ""
    return Remedy(_text(text, persist, hint, extra), commands)


# ---- field checks ----------------------------------------------------------------------------------------------

NVIDIA_CGROUP_ISSUE = "https://github.com/NVIDIA/nvidia-container-toolkit/issues/48"
NO_PROXY_DROPIN = "/etc/systemd/system/docker.service.d/90-gpustack-no-proxy.conf"


def fix_runtime_default(*, vendor: str, runtime: str) -> Remedy:
    """The vendor's runtime is registered with Docker but is not its default (GPUStack issues 3518, 3581)."""
    text = (
        f"GPUStack's inference containers inherit the worker container's runtime: start the GPUStack worker with "
        f"`--runtime {runtime}`, or make `{runtime}` Docker's default runtime"
    )
    if vendor == "nvidia":
        return Remedy(
            text + ": `nvidia-ctk runtime configure --runtime=docker --set-as-default`, then restart Docker.",
            (command("ctk.default"), _restart_docker()),
        )
    return Remedy(
        text + f' ("default-runtime": "{runtime}" in /etc/docker/daemon.json), then restart Docker; Preflight gives '
        "no command that edits daemon.json."
    )


def fix_cgroup_legacy_hook() -> Remedy:
    """Docker's systemd cgroup driver with the NVIDIA legacy hook: GPUs vanish after `systemctl daemon-reload`."""
    return Remedy(
        "With Docker's systemd cgroup driver, the NVIDIA runtime's legacy hook gives containers device access that "
        "systemd does not know about: after any `systemctl daemon-reload` the GPUs vanish from running containers "
        f'("Failed to initialize NVML: Unknown Error", {NVIDIA_CGROUP_ISSUE}; GPUStack PR 1426, issue 2078). The '
        "script switches the NVIDIA runtime to CDI mode (a CDI spec in /etc/cdi, regenerate it after a driver "
        'upgrade). The other fix is Docker\'s cgroupfs driver: `"exec-opts": ["native.cgroupdriver=cgroupfs"]` in '
        "/etc/docker/daemon.json, then restart Docker.",
        (command("ctk.cdi.generate"), command("ctk.mode.cdi"), _restart_docker()),
    )


def fix_no_proxy(*, missing: list[str], docker: bool, sources: list[str], current: str) -> Remedy:
    """NO_PROXY lacks addresses GPUStack connects to. `missing` are inventory addresses (never node text); the
    Docker daemon gets a systemd drop-in listing them. `current` (node text) is only quoted in the explanation."""
    addresses = ",".join(dict.fromkeys([*missing, "localhost", "127.0.0.1"]))
    text = _text(
        f"Requests from this node to {', '.join(missing)} go through the proxy configured in {', '.join(sources)}, "
        "because NO_PROXY does not list them literally (GPUStack's HTTP client ignores CIDR entries such as "
        "10.0.0.0/8; issues 373, 1387, 3769). Add each address to NO_PROXY.",
        f"The script writes {NO_PROXY_DROPIN} for the Docker daemon and restarts Docker; it replaces the daemon's "
        f"NO_PROXY, so add back any entries you still need (today: {current or 'none'})."
        if docker
        else "",
        "Where the proxy comes from /etc/docker/daemon.json (`proxies`), edit its `no-proxy` there: it wins over the "
        "service environment."
        if "/etc/docker/daemon.json" in sources
        else "",
        "Edit no_proxy/NO_PROXY in /etc/environment by hand (it applies at the next login)."
        if "/etc/environment" in sources
        else "",
    )
    if not docker:
        return Remedy(text)
    return Remedy(
        text,
        (
            command("dropin.dir"),
            command(
                "dropin.no_proxy", upper=f"NO_PROXY={addresses}", lower=f"no_proxy={addresses}", path=NO_PROXY_DROPIN
            ),
            command("systemd.reload"),
            _restart_docker(),
        ),
    )


def fix_address(*, problems: list[str]) -> Remedy:
    return Remedy(_text(*problems))


def fix_resources(*, detail: str) -> Remedy:
    return Remedy(
        _text(
            detail,
            "GPUStack's runner images are several GiB each and every model container gets 10 GiB of shared memory by "
            "default (GPUStack issue 5014). Free space in Docker's root directory (`docker system df` shows what uses "
            "it), move Docker's data-root to a larger disk, or add memory. Preflight gives no command: freeing space "
            "deletes data.",
        )
    )


def fix_deployment(*, detail: str) -> Remedy:
    return Remedy(
        _text(
            detail,
            "Recreate the GPUStack worker container with `-e GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME=<its container "
            "name>` (GPUStack's add-worker command sets it), so the inference containers it starts mirror its "
            "devices, mounts and network (issues 3805, 3810). Run one GPUStack image tag across the cluster "
            "(issue 4790).",
        )
    )


def fix_unique(*, detail: str, hostname: str = "") -> Remedy:
    """Cloned nodes: regenerate machine-id (text), rename the host to its inventory name (a command, when the
    inventory name is a valid hostname: it is operator data, never node text)."""
    commands: tuple[str, ...] = ()
    if hostname and re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", hostname):
        commands = (command("hostname.set", name=hostname),)
    return Remedy(
        _text(
            detail,
            "GPUStack merges workers that share a hostname, machine-id or (before v2.1.0) product UUID into one "
            "(issues 3922, 4578). On a node cloned from an image, regenerate its machine-id: `rm -f /etc/machine-id "
            "&& systemd-machine-id-setup`, then reboot. A shared product UUID comes from the VM template or "
            "firmware: give each VM its own UUID in the hypervisor.",
        ),
        commands,
    )
