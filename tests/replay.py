"""A transport that answers the probe with recorded tool outputs, framed the way the probe frames them.

The rest of the audit (parsing, rules, waivers, recording, pages) is the real code; only the SSH session is
replaced by what a node printed, so a test picks exactly which checks fail. Outputs come from tests/fixtures/.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from checks.transport import ProbeRun, Target
from tests.conftest import FIXTURES

UBUNTU = 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
DOCKER_TOOLS = "docker /usr/bin/docker\n"
CHRONY_TOOLS = "chronyc /usr/bin/chronyc\n"
NVIDIA_PCI = "0000:00:09.0 0x10de 0x030200 0x2330\n"
NVIDIA_TOOLS = "nvidia-smi /usr/bin/nvidia-smi\nnvidia-ctk /usr/bin/nvidia-ctk\n"


def fixture(relative: str) -> str:
    return (FIXTURES / relative).read_text(errors="replace")


def sections(*, ntp: bool = True, pci: str = "", tools: str = "", **extra: str) -> dict[str, str]:
    """A healthy Ubuntu 22.04 node with Docker (and chrony unless `ntp=False`); `extra` adds or replaces sections
    (underscores in names become dashes)."""
    found = {
        "meta": "probe_version=4\nuid=0\nuser=root",
        "os-release": UBUNTU,
        "uname": "Linux 5.15.0-105-generic x86_64",
        "hostname": "node",
        "clock": f"{time.time():.6f}",
        "pci": pci,
        "tools": DOCKER_TOOLS + (CHRONY_TOOLS if ntp else "") + tools,
        "docker-info": fixture("docker-info/docker-archive_docker_v27.5.1.txt"),
        "ss": "",
        "port-range": "32768\t60999",
        "reserved-ports": "",
        # issue 20's field checks: one global IPv4 (recorded here), a GPU server's disk and memory, no GPUStack yet
        "ip-addr": fixture("ip/this-machine_ip-o-addr-show.txt"),
        "df": "Filesystem 1024-blocks Used Available Capacity Mounted on\n"
        "/dev/nvme0n1p2 1921802520 1 1800000000 1% /\n",
        "meminfo": "MemTotal:       263856452 kB",
        "docker-ps": "",
    }
    if ntp:
        found["chronyc-tracking"] = fixture("chrony/ubuntu-20.04_chronyc-tracking_synced.txt")
    found.update({name.replace("_", "-"): text for name, text in extra.items()})
    return found


def nvidia_worker_sections(**extra: str) -> dict[str, str]:
    """An NVIDIA A30 host whose Docker has the nvidia runtime registered but not as the default (recorded)."""
    return sections(
        pci=NVIDIA_PCI,
        tools=NVIDIA_TOOLS,
        nvidia_smi=fixture("nvidia-smi/nge-capture_h100-80gb-hbm3_590.48.01_idle_table.txt"),
        nvidia_smi_query=fixture("nvidia-smi/h100-80gb-hbm3_590.48.01_query-gpu-csv-noheader.csv"),
        nvidia_ctk=fixture("nvidia-ctk/version_1.17.8.txt"),
        docker_info=fixture("docker-info/ubuntu22.04_docker-24.0.7_a30-host_nvidia-runtime-not-default.txt"),
        **extra,
    )


@dataclass
class ReplayTransport:
    """Per node name (the Target's address), the sections that node prints; `clock` sections get the time of the
    run, so time.skew sees a node whose clock is right."""

    by_address: dict[str, dict[str, str]] = field(default_factory=dict)

    def run(self, target: Target, *, command: str, stdin: str, timeout: float, max_bytes: int, idle_timeout=None):
        nonce = command.split()[3]
        started = time.time()
        out = []
        printed = dict(self.by_address[target.address])
        # each node its own identity (cluster.unique), unless a test gives one
        printed.setdefault("machine-id", hashlib.md5(target.address.encode()).hexdigest())
        if printed.get("hostname") == "node":
            printed["hostname"] = f"node-{target.address}"
        for name, text in printed.items():
            if name == "clock":
                text = f"{time.time():.6f}"
            out.append(f"\n@@PF:{nonce}:BEGIN {name}@@\n{text}\n@@PF:{nonce}:END {name} 0@@\n")
        out.append(f"\n@@PF:{nonce}:BEGIN done@@\nok\n@@PF:{nonce}:END done 0@@\n")
        return ProbeRun(output="".join(out), exit_status=0, started=started, first_byte=started, finished=time.time())


AMD_PCI = "0000:c1:00.0 0x1002 0x038000 0x74a0\n"


def amd_worker_sections(**extra: str) -> dict[str, str]:
    """An AMD MI300A host (recorded `amd-smi static`) whose Docker has no `amd` runtime registered."""
    return sections(
        pci=AMD_PCI,
        tools="amd-smi /usr/bin/amd-smi\n",
        amd_smi=fixture("amd-smi/mi300a-x4_amd-smi-static_readme-2024.txt"),
        **extra,
    )
