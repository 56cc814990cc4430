"""`host.resources` (free space in Docker's root directory, memory) and `gpustack.deployment` (GPUStack containers
already on the node)."""

from ..node_facts import NodeFacts
from ..parsers.host import filesystem_of
from ..remediation import fix_deployment, fix_resources
from ..spec import NodeContext, ProfileSpec
from .registry import ERROR, FAIL, PASS, SKIP, WARN
from .result import RuleResult, register

GIB_KIB = 1024 * 1024


@register("host.resources")
def evaluate_resources(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    root = facts.docker.root_dir if facts.docker and facts.docker.root_dir else "/var/lib/docker"
    fs = filesystem_of(root, facts.filesystems)
    if fs is None:
        return [
            RuleResult(
                "host.resources",
                ERROR,
                f"could not tell the free space of {root} (`df` missing or failed)",
                facts.df_output or "df: no output",
            )
        ]
    free = fs.available_kib / GIB_KIB
    memory = facts.mem_total_kib / GIB_KIB if facts.mem_total_kib is not None else None
    worker = "worker" in context.roles
    evidence = (
        f"Docker root {root} on {fs.mount}: {free:.1f} GiB free of {fs.size_kib / GIB_KIB:.1f} GiB\n"
        f"memory: {f'{memory:.1f} GiB' if memory is not None else 'unknown'}\n"
        + (
            f"thresholds (worker): fail < {profile.worker_disk_fail_gib} GiB free, warn < "
            f"{profile.worker_disk_warn_gib} GiB free or < {profile.worker_memory_warn_gib} GiB memory"
            if worker
            else f"thresholds (server): warn < {profile.server_disk_warn_gib} GiB free"
        )
    )
    summary = f"{free:.0f} GiB free in {root}" + (f", {memory:.0f} GiB memory" if memory is not None else "")
    if worker and free < profile.worker_disk_fail_gib:
        detail = f"Only {free:.1f} GiB free in {root}; a worker needs at least {profile.worker_disk_fail_gib} GiB."
        return [
            RuleResult(
                "host.resources",
                FAIL,
                f"{summary}: below {profile.worker_disk_fail_gib} GiB",
                evidence,
                fix_resources(detail=detail),
            )
        ]
    low = []
    if worker and free < profile.worker_disk_warn_gib:
        low.append(f"under {profile.worker_disk_warn_gib} GiB free")
    if worker and memory is not None and memory < profile.worker_memory_warn_gib:
        low.append(f"under {profile.worker_memory_warn_gib} GiB memory")
    if not worker and free < profile.server_disk_warn_gib:
        low.append(f"under {profile.server_disk_warn_gib} GiB free")
    if low:
        return [
            RuleResult(
                "host.resources",
                WARN,
                f"{summary}: {' and '.join(low)}",
                evidence,
                fix_resources(detail=f"This node has {summary}."),
            )
        ]
    return [RuleResult("host.resources", PASS, summary, evidence)]


def image_tag(image: str) -> str:
    """`gpustack/gpustack:v2.3.0` -> `v2.3.0`; a digest or no tag -> the image reference as given."""
    head = image.split("@", 1)[0]
    name, _, tag = head.rpartition(":")
    return tag if name and "/" not in tag else image


@register("gpustack.deployment")
def evaluate_deployment(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    containers = facts.gpustack_containers
    if containers is None:
        return [RuleResult("gpustack.deployment", SKIP, "Docker is not answering: no containers listed")]
    if not containers:
        return [RuleResult("gpustack.deployment", SKIP, "no GPUStack container on this node")]
    evidence = "\n".join(
        f"{c.name}: {c.image}, GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME="
        + ("(not inspected)" if c.mirrored_name is None else c.mirrored_name or "(unset)")
        for c in containers
    )
    problems = []
    if "worker" in context.roles:
        for c in containers:
            if c.mirrored_name is not None and c.mirrored_name != c.name:
                value = f"is {c.mirrored_name}" if c.mirrored_name else "is unset"
                problems.append(f"{c.name}: GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME {value}, not its name")
    if problems:
        detail = "; ".join(problems)
        return [RuleResult("gpustack.deployment", FAIL, detail, evidence, fix_deployment(detail=detail + "."))]
    tags = sorted({image_tag(c.image) for c in containers})
    if len(tags) > 1:
        detail = f"GPUStack containers run different image tags: {', '.join(tags)}"
        return [RuleResult("gpustack.deployment", WARN, detail, evidence, fix_deployment(detail=detail + "."))]
    names = ", ".join(c.name for c in containers)
    return [RuleResult("gpustack.deployment", PASS, f"GPUStack {tags[0]} already here: {names}", evidence)]
