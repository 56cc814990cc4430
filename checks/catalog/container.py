"""`container.docker`."""

from ..node_facts import NodeFacts
from ..remediation import remedy
from ..spec import NodeContext, ProfileSpec
from . import FAIL, PASS, WARN, CheckResult, register


@register("container.docker")
def evaluate_docker(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[CheckResult]:
    family = facts.os.family
    if not facts.docker_path:
        return [
            CheckResult(
                "container.docker",
                FAIL,
                "Docker is not installed (GPUStack recommends its Docker "
                "images, and every vendor toolkit plugs into Docker)",
                "docker: not found on PATH",
                remedy("container.docker", family),
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
                    remedy(
                        "container.docker",
                        family,
                        extra="Audit as root, or add the audit user to the docker group: `usermod -aG docker USER`.",
                    ),
                )
            ]
        return [
            CheckResult(
                "container.docker",
                FAIL,
                f"Docker is installed but its daemon is not answering: {reason}",
                evidence,
                remedy(
                    "container.docker",
                    family,
                    extra="Start it: `systemctl enable --now docker`; `journalctl -u docker` says why it stopped.",
                ),
            )
        ]
    if facts.docker_path.startswith("/snap/"):
        return [
            CheckResult(
                "container.docker",
                WARN,
                f"Docker {docker.server_version} is the snap package, which vendor container toolkits do not support",
                evidence,
                remedy("container.docker", family, extra="Remove the snap (`snap remove docker`) first."),
            )
        ]
    if docker.desktop:
        return [
            CheckResult(
                "container.docker",
                WARN,
                f"Docker Desktop {docker.server_version}: GPUStack needs Docker Engine",
                evidence,
                remedy(
                    "container.docker", family, extra="Docker Desktop runs containers in a VM without the host's GPUs."
                ),
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
