"""The GPUStack install command for a node, built the way GPUStack's own UI builds it (gpustack-ui,
`src/pages/resources/config/gpu-driver.ts`: `setNormalArgs`, `registerWorker`, `registerAMDWorker`, ... ) and the
server command of GPUStack's installation docs. Pure: plain data in, command text out.

Every command comes from the fixed templates below; each value (image, server URL, token, address, runtime, mount)
is passed through `shlex.quote`, like the remediation commands. Nothing a node printed is ever an argument: the
vendor and the runtimes are matched against the closed table `VENDORS` and only the table's words are used.
Preflight shows these commands; it never runs them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

IMAGE = "gpustack/gpustack"  # GPUStack v2: one image for every accelerator vendor
CONTAINER_WORKER = "gpustack-worker"
CONTAINER_SERVER = "gpustack"
DATA_VOLUME = "gpustack-data"
TOKEN_PLACEHOLDER = '"$GPUSTACK_TOKEN"'  # fixed text: the operator exports the token, Preflight never sees it


@dataclass(frozen=True)
class VendorInstall:
    """What GPUStack's UI adds for a vendor: its Docker runtime (when it passes `--runtime`), read-only mounts of
    the host's SDK, and environment variables."""

    runtime: str = ""
    mounts: tuple[tuple[str, str, bool], ...] = ()  # (host path, container path, read-only)
    env: tuple[tuple[str, str], ...] = ()
    note: str = ""


def _ro(*paths: str) -> tuple[tuple[str, str, bool], ...]:
    return tuple((p, p, True) for p in paths)


# gpustack-ui gpu-driver.ts, registerAddWokerCommandMap: one entry per `register*Worker`.
VENDORS: dict[str, VendorInstall] = {
    "nvidia": VendorInstall(runtime="nvidia"),
    "amd": VendorInstall(runtime="amd", mounts=_ro("/opt/rocm")),
    "ascend": VendorInstall(
        runtime="ascend",
        note="GPUStack's UI also sets ASCEND_VISIBLE_DEVICES to the first /dev/davinci* device; add "
        "`--env ASCEND_VISIBLE_DEVICES=<index>` if you want one NPU only.",
    ),
    "hygon": VendorInstall(
        mounts=_ro("/opt/hyhal", "/opt/dtk"),
        env=(("ROCM_PATH", "/opt/dtk"), ("ROCM_SMI_LIB_PATH", "/opt/hyhal/lib")),
        note="With DTK 26.04 GPUStack's UI sets ROCM_PATH=/opt/dtk/.hyhal instead.",
    ),
    "mthreads": VendorInstall(runtime="mthreads"),
    "iluvatar": VendorInstall(runtime="iluvatar", mounts=_ro("/usr/local/corex")),
    "metax": VendorInstall(mounts=_ro("/opt/mxdriver", "/opt/maca")),
    "cambricon": VendorInstall(mounts=(*_ro("/usr/local/neuware"), ("/usr/bin/cnmon", "/usr/bin/cnmon", False))),
    "thead": VendorInstall(
        mounts=(*_ro("/usr/local/PPU_SDK"), ("/var/run/cdi", "/var/run/cdi", False)),
        env=(("GPUSTACK_RUNTIME_DOCKER_RESOURCE_INJECTION_POLICY", "CDI"),),
    ),
}


@dataclass(frozen=True)
class InstallCommand:
    role: str  # server or worker
    text: str  # the whole command, one argument per line joined with " \\\n    "
    runtime: str = ""  # the `--runtime` passed, if any
    notes: tuple[str, ...] = field(default_factory=tuple)


def _q(value: str) -> str:
    return shlex.quote(str(value))


def _lines(parts: list[str]) -> str:
    return " \\\n    ".join(parts)


def image_ref(tag: str) -> str:
    return f"{IMAGE}:{tag}" if tag else IMAGE


def server_command(*, tag: str, tls: bool) -> InstallCommand:
    """GPUStack's installation docs: the server container, its UI port (80, and 443 with TLS), metrics on 10161."""
    parts = [f"sudo docker run -d --name {CONTAINER_SERVER}", "--restart=unless-stopped", "-p 80:80"]
    if tls:
        parts.append("-p 443:443")
    parts += ["-p 10161:10161", f"--volume {DATA_VOLUME}:/var/lib/gpustack", _q(image_ref(tag))]
    return InstallCommand("server", _lines(parts))


def worker_runtime(*, vendor: str | None, default_runtime: str) -> str:
    """`--runtime <name>` is needed when the vendor has a Docker runtime and Docker's default is another one."""
    spec = VENDORS.get(vendor or "")
    if spec is None or not spec.runtime or default_runtime == spec.runtime:
        return ""
    return spec.runtime


def worker_command(
    *, tag: str, server_url: str, vendor: str | None, default_runtime: str, token: str = "", worker_ip: str = ""
) -> InstallCommand:
    """gpustack-ui `setNormalArgs` + the vendor's `register*Worker` + `setImageArgs` + `setWorkerIPArg`."""
    spec = VENDORS.get(vendor or "", VendorInstall())
    parts = [
        f"sudo docker run -d --name {CONTAINER_WORKER}",
        f"-e {_q('GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME=' + CONTAINER_WORKER)}",
    ]
    parts += [f"-e {_q(f'{key}={value}')}" for key, value in spec.env]
    parts += [
        "--restart=unless-stopped",
        "--privileged",
        "--network=host",
        "--volume /var/run/docker.sock:/var/run/docker.sock",
        f"--volume {DATA_VOLUME}:/var/lib/gpustack",
    ]
    parts += [f"--volume {_q(f'{host}:{inside}' + (':ro' if ro else ''))}" for host, inside, ro in spec.mounts]
    runtime = worker_runtime(vendor=vendor, default_runtime=default_runtime)
    if runtime:
        parts.append(f"--runtime {_q(runtime)}")
    parts += [
        _q(image_ref(tag)),
        f"--server-url {_q(server_url)}",
        f"--token {_q(token) if token else TOKEN_PLACEHOLDER}",
    ]
    if worker_ip:
        parts.append(f"--worker-ip {_q(worker_ip)}")
    notes = (spec.note,) if spec.note else ()
    return InstallCommand("worker", _lines(parts), runtime, notes)
