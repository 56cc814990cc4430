"""Remediation as data: per check id and OS family (apt, dnf, zypper), rendered with the node's facts.

Templates use str.format fields; every field a template names must be passed by the rule. `unknown` is the fallback
for a family Preflight could not tell, and says so rather than guessing a package manager.
"""

from __future__ import annotations

REMEDIATION: dict[str, dict[str, str]] = {
    "os.supported": {
        "any": "GPUStack is tested on: {table}. Reinstall or upgrade this node to one of them "
        "(this node runs {current}).",
    },
    "os.architecture": {
        "any": "GPUStack runs on AMD64 (x86_64) and ARM64 (aarch64) only; this node is {machine}. {extra}"
        "Use another machine for this role.",
    },
    "time.ntp": {
        "apt": "apt-get install -y chrony && systemctl enable --now chrony",
        "dnf": "dnf install -y chrony && systemctl enable --now chronyd",
        "zypper": "zypper install -y chrony && systemctl enable --now chronyd",
        "unknown": "Install an NTP implementation (chrony, ntpd or systemd-timesyncd) with the node's package manager "
        "and enable its service.",
    },
    "time.synchronized": {
        "any": "Check the time service and its servers: `timedatectl set-ntp true`, then `chronyc sources -v` "
        "(chrony) or `timedatectl timesync-status` (systemd-timesyncd); open UDP 123 outbound if the sources are "
        "unreachable.",
    },
    "time.skew": {
        "any": "This node's clock is {offset} from the portal's. Synchronise it with NTP (`chronyc makestep` with "
        "chrony, or `timedatectl set-ntp true`) and make sure the time service starts at boot.",
    },
    "container.docker": {
        "apt": "Install Docker Engine from Docker's apt repository (https://docs.docker.com/engine/install/), then "
        "`systemctl enable --now docker`. {extra}",
        "dnf": "dnf config-manager --add-repo https://download.docker.com/linux/rhel/docker-ce.repo && "
        "dnf install -y docker-ce docker-ce-cli containerd.io && systemctl enable --now docker. {extra}",
        "zypper": "zypper install -y docker && systemctl enable --now docker. {extra}",
        "unknown": "Install Docker Engine (https://docs.docker.com/engine/install/) and start its daemon. {extra}",
    },
    "accelerator.present": {
        "any": "No accelerator was found on this worker's PCI bus; it can only serve CPU models. If it has GPUs, "
        "check that they are seated and enabled in the BIOS (`lspci -nn | grep -Ei 'vga|3d|accel'`).",
    },
    "accelerator.driver": {
        "any": "Install or repair the {driver_name} ({driver_url}), then check that `{tool}` lists every device. "
        "{detail}",
    },
    "accelerator.toolkit": {
        "any": "Install the {toolkit_name} ({toolkit_url}). {runtime_step}",
    },
    "accelerator.version": {
        "any": "Upgrade the {vendor_label} driver so that {what} is at least {minimum} (this node has {current}); "
        "see {driver_url}.",
    },
    "ports.available": {
        "any": "Free the ports GPUStack needs: stop or move {holders} (`ss -ltnp 'sport = :PORT'` shows the "
        "process; `systemctl disable --now SERVICE` if it is a service).",
    },
    "ports.reserved": {
        "any": "Keep the kernel from handing GPUStack's ports to outgoing connections: "
        "`sysctl -w net.ipv4.ip_local_reserved_ports={ranges}` and add the same line to "
        "/etc/sysctl.d/90-gpustack.conf (see GPUStack issue 5181).",
    },
    "ssh.connect": {
        "any": "{detail}",
    },
}


def remedy(check_id: str, family: str, **context: str) -> str:
    """The remediation text for a check on a node of `family`; the per-family template wins over `any`."""
    templates = REMEDIATION.get(check_id, {})
    template = templates.get(family) or templates.get("any") or templates.get("unknown", "")
    return " ".join(template.format(**{**_defaults(template), **context}).split())


def _defaults(template: str) -> dict[str, str]:
    """Missing optional fields render as empty rather than raising; required facts are passed by the rules."""
    import string

    return {name: "" for _, name, _, _ in string.Formatter().parse(template) if name}
