"""`container.docker`, `container.runtime`, `container.cgroup`."""

from ..node_facts import NodeFacts
from ..remediation import (
    fix_cgroup_legacy_hook,
    fix_docker_desktop,
    fix_docker_missing,
    fix_docker_permission,
    fix_docker_snap,
    fix_docker_stopped,
    fix_runtime_default,
)
from ..spec import NodeContext, ProfileSpec
from .registry import FAIL, PASS, SKIP, WARN
from .result import RuleResult, register


@register("container.docker")
def evaluate_docker(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    if not facts.docker_path:
        return [
            RuleResult(
                "container.docker",
                FAIL,
                "Docker is not installed (GPUStack recommends its Docker "
                "images, and every vendor toolkit plugs into Docker)",
                "docker: not found on PATH",
                fix_docker_missing(facts.os),
            )
        ]
    docker = facts.docker
    evidence = f"docker: {facts.docker_path}\n{facts.docker_output}".strip()
    if docker is None or not docker.answering:
        reason = docker.error if docker and docker.error else "docker info printed no server"
        if "permission denied" in reason.lower():
            return [
                RuleResult(
                    "container.docker",
                    WARN,
                    f"Docker is installed; {facts.login_user or 'this login'} "
                    "may not query its daemon (permission denied)",
                    evidence,
                    fix_docker_permission(),
                )
            ]
        return [
            RuleResult(
                "container.docker",
                FAIL,
                f"Docker is installed but its daemon is not answering: {reason}",
                evidence,
                fix_docker_stopped(facts.os),
            )
        ]
    if facts.docker_path.startswith("/snap/"):
        return [
            RuleResult(
                "container.docker",
                WARN,
                f"Docker {docker.server_version} is the snap package, which vendor container toolkits do not support",
                evidence,
                fix_docker_snap(facts.os),
            )
        ]
    if docker.desktop and profile.docker_desktop_fails_on_worker and "worker" in context.roles:
        return [
            RuleResult(
                "container.docker",
                FAIL,
                f"Docker Desktop {docker.server_version} on a worker: GPUStack workers need Docker Engine "
                "(Docker Desktop is not supported there)",
                evidence,
                fix_docker_desktop(facts.os),
            )
        ]
    if docker.desktop:
        return [
            RuleResult(
                "container.docker",
                WARN,
                f"Docker Desktop {docker.server_version}: GPUStack needs Docker Engine",
                evidence,
                fix_docker_desktop(facts.os),
            )
        ]
    return [
        RuleResult(
            "container.docker",
            PASS,
            f"Docker Engine {docker.server_version} answering "
            f"(runtimes: {', '.join(docker.runtimes) or 'none listed'})",
            evidence,
        )
    ]


def _runtime_vendors(facts: NodeFacts, profile: ProfileSpec) -> list[tuple[str, str]]:
    """(vendor, runtime name) of each vendor found whose toolkit registers a Docker runtime in this profile."""
    found = []
    for vendor in facts.vendors:
        rule = profile.accelerator_rules.get(vendor)
        if rule and rule.docker_runtime:
            found.append((vendor, rule.docker_runtime))
    return found


@register("container.runtime")
def evaluate_runtime(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    """Docker's default runtime is the vendor's: GPUStack's inference containers inherit the worker container's
    runtime (issues 3518, 3581; gpustack-runtime's mirrored deployment)."""
    wanted = _runtime_vendors(facts, profile)
    if not wanted:
        return []
    docker = facts.docker
    if docker is None or not docker.answering:
        return [RuleResult("container.runtime", SKIP, "Docker is not answering (see container.docker)")]
    evidence = f"Runtimes: {' '.join(docker.runtimes) or '(none)'}\nDefault Runtime: {docker.default_runtime or '?'}"
    for vendor, runtime in wanted:
        if runtime not in docker.runtimes:
            continue
        if docker.default_runtime == runtime:
            return [RuleResult("container.runtime", PASS, f"Docker's default runtime is `{runtime}`", evidence)]
        return [
            RuleResult(
                "container.runtime",
                WARN,
                f"the `{runtime}` runtime is registered but Docker's default is `{docker.default_runtime or '?'}`: "
                f"start the GPUStack worker with `--runtime {runtime}` or make `{runtime}` the default",
                evidence,
                fix_runtime_default(vendor=vendor, runtime=runtime),
            )
        ]
    names = ", ".join(f"`{runtime}`" for _, runtime in wanted)
    return [
        RuleResult(
            "container.runtime",
            SKIP,
            f"Docker has no {names} runtime registered (the vendor's toolkit check says why)",
            evidence,
        )
    ]


@register("container.cgroup")
def evaluate_cgroup(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    """Docker's systemd cgroup driver with the NVIDIA legacy hook loses GPUs on `systemctl daemon-reload` (GPUStack
    PR 1426, issue 2078; NVIDIA/nvidia-container-toolkit#48)."""
    if "nvidia" not in facts.vendors:
        return []
    docker = facts.docker
    if docker is None or not docker.answering:
        return [RuleResult("container.cgroup", SKIP, "Docker is not answering (see container.docker)")]
    mode = facts.nvidia_runtime_mode
    shown = mode or "auto (no /etc/nvidia-container-runtime/config.toml)"
    evidence = f"Cgroup Driver: {docker.cgroup_driver or '?'}\nNVIDIA container runtime mode: {shown}"
    if docker.cgroup_driver.lower() != "systemd":
        driver = docker.cgroup_driver or "not reported"
        return [RuleResult("container.cgroup", PASS, f"Docker's cgroup driver is {driver}", evidence)]
    if mode == "cdi":
        return [
            RuleResult("container.cgroup", PASS, "systemd cgroup driver with the NVIDIA runtime in CDI mode", evidence)
        ]
    return [
        RuleResult(
            "container.cgroup",
            WARN,
            f"Docker uses the systemd cgroup driver and the NVIDIA runtime its legacy hook (mode {mode or 'auto'}): "
            "GPUs vanish from containers after `systemctl daemon-reload` (Failed to initialize NVML: Unknown Error)",
            evidence,
            fix_cgroup_legacy_hook(),
        )
    ]
