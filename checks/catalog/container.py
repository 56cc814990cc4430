"""`container.docker`."""

from ..node_facts import NodeFacts
from ..remediation import (
    fix_docker_desktop,
    fix_docker_missing,
    fix_docker_permission,
    fix_docker_snap,
    fix_docker_stopped,
)
from ..spec import NodeContext, ProfileSpec
from .registry import FAIL, PASS, WARN
from .result import CheckResult, register


@register("container.docker")
def evaluate_docker(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[CheckResult]:
    if not facts.docker_path:
        return [
            CheckResult(
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
                CheckResult(
                    "container.docker",
                    WARN,
                    f"Docker is installed; {facts.login_user or 'this login'} "
                    "may not query its daemon (permission denied)",
                    evidence,
                    fix_docker_permission(),
                )
            ]
        return [
            CheckResult(
                "container.docker",
                FAIL,
                f"Docker is installed but its daemon is not answering: {reason}",
                evidence,
                fix_docker_stopped(facts.os),
            )
        ]
    if facts.docker_path.startswith("/snap/"):
        return [
            CheckResult(
                "container.docker",
                WARN,
                f"Docker {docker.server_version} is the snap package, which vendor container toolkits do not support",
                evidence,
                fix_docker_snap(facts.os),
            )
        ]
    if docker.desktop and profile.docker_desktop_fails_on_worker and "worker" in context.roles:
        return [
            CheckResult(
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
            CheckResult(
                "container.docker",
                WARN,
                f"Docker Desktop {docker.server_version}: GPUStack needs Docker Engine",
                evidence,
                fix_docker_desktop(facts.os),
            )
        ]
    return [
        CheckResult(
            "container.docker",
            PASS,
            f"Docker Engine {docker.server_version} answering "
            f"(runtimes: {', '.join(docker.runtimes) or 'none listed'})",
            evidence,
        )
    ]
