"""Group a cluster's nodes by the exact command sequence they need, steps in dependency order.

Input is plain data read from one audit's results; output is the plan every door shows. Node text never enters:
a group's label is built from template fields (closed-vocabulary package and service names, port numbers), and
a stored command that does not re-render from its template is left out and counted, never shown.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..script import ScriptStep, render_script
from .commands import ParsedCommand, parse_command

FIXED = frozenset({"pass", "skip"})


@dataclass(frozen=True)
class ResultRow:
    check_id: str
    status: str
    commands: tuple[str, ...]
    position: int = 0


@dataclass(frozen=True)
class NodeResults:
    node_id: int
    name: str
    status: str
    audit_id: int
    results: tuple[ResultRow, ...]


@dataclass(frozen=True)
class Step:
    check_id: str
    status: str
    commands: tuple[ParsedCommand, ...]


@dataclass(frozen=True)
class NodeFix:
    node_id: int
    name: str
    status: str
    audit_id: int
    steps: tuple[Step, ...]
    manual: tuple[str, ...] = ()  # check ids that fail with no command: a person's job
    refused: int = 0  # stored commands that match no template (left out)

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(c.text for step in self.steps for c in step.commands)


@dataclass(frozen=True)
class FixGroup:
    key: str
    label: str
    check_ids: tuple[str, ...]
    steps: tuple[Step, ...]
    nodes: tuple[NodeFix, ...]

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(c.text for step in self.steps for c in step.commands)


@dataclass(frozen=True)
class FixPlan:
    audit_id: int
    groups: tuple[FixGroup, ...]
    nothing_to_run: tuple[NodeFix, ...] = field(default=())

    def node(self, name: str) -> NodeFix | None:
        for group in self.groups:
            for node in group.nodes:
                if node.name == name:
                    return node
        return None


def phase(check_id: str) -> int:
    """Dependency order: packages before services, Docker before the toolkit, firewall after the listeners."""
    if check_id == "time.ntp":
        return 10
    if check_id.startswith("container."):
        return 20
    if check_id.startswith("accelerator."):
        return 30
    if check_id.startswith("time."):
        return 40
    if check_id == "ports.available":
        return 50
    if check_id.startswith("ports."):
        return 55
    if check_id.startswith("network."):
        return 60
    return 35


def node_steps(node: NodeResults) -> NodeFix:
    rows = sorted(
        (r for r in node.results if r.status not in FIXED), key=lambda r: (phase(r.check_id), r.position, r.check_id)
    )
    steps, manual, refused = [], [], 0
    for row in rows:
        parsed = []
        for text in row.commands:
            command = parse_command(text)
            if command is None:
                refused += 1
            else:
                parsed.append(command)
        if parsed:
            steps.append(Step(row.check_id, row.status, tuple(parsed)))
        elif row.status == "fail":
            manual.append(row.check_id)
    return NodeFix(node.node_id, node.name, node.status, node.audit_id, tuple(steps), tuple(manual), refused)


def _phrase(command: ParsedCommand) -> str | None:
    t = command.template
    if t.endswith(".install"):
        return "install " + " ".join(command.words("packages"))
    if t == "service.enable":
        return f"enable {command.field('service')}"
    if t == "service.restart":
        return f"restart {command.field('service')}"
    if t == "port.free":
        port = str(command.field("filter")).rsplit(":", 1)[-1]
        return f"free port {port}"
    if t in ("firewalld.add", "ufw.allow", "iptables.accept", "nft.accept"):
        return f"open {command.field('span')}/{command.field('protocol')}"
    if t == "sysctl.set":
        return "reserve ports"
    if t in ("download", "dearmor", "nvidia.list", "zypper.repo"):
        return "add a package repository"
    if t == "runtime.configure":
        return f"configure the {command.field('ctk')} runtime"
    if t == "snap.remove":
        return "remove the Docker snap"
    if t == "ascend.install":
        return "install the Ascend Docker runtime"
    if t in ("ntp.on", "chrony.step"):
        return "turn on network time" if t == "ntp.on" else "step the clock"
    return None


def group_label(steps: tuple[Step, ...]) -> str:
    phrases: list[str] = []
    for step in steps:
        for command in step.commands:
            phrase = _phrase(command)
            if phrase and phrase not in phrases:
                phrases.append(phrase)
    if not phrases:
        return "prepare"
    if len(phrases) > 4:
        phrases = [*phrases[:3], f"{len(phrases) - 3} more"]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def commands_hash(commands: tuple[str, ...] | list[str]) -> str:
    return hashlib.sha256(json.dumps(list(commands)).encode()).hexdigest()


def build_plan(*, audit_id: int, nodes: list[NodeResults]) -> FixPlan:
    by_sequence: dict[tuple[tuple[str, tuple[str, ...]], ...], list[NodeFix]] = {}
    idle = []
    for node in sorted(nodes, key=lambda n: n.name):
        fix = node_steps(node)
        if not fix.steps:
            idle.append(fix)
            continue
        key = tuple((s.check_id, tuple(c.text for c in s.commands)) for s in fix.steps)
        by_sequence.setdefault(key, []).append(fix)
    groups = []
    for members in by_sequence.values():
        steps = members[0].steps
        groups.append(
            FixGroup(
                key=commands_hash(members[0].commands)[:12],
                label=group_label(steps),
                check_ids=tuple(dict.fromkeys(s.check_id for s in steps)),
                steps=steps,
                nodes=tuple(members),
            )
        )
    groups.sort(key=lambda g: (-len(g.nodes), g.label, g.key))
    return FixPlan(audit_id=audit_id, groups=tuple(groups), nothing_to_run=tuple(idle))


def plan_hash(plan: FixPlan) -> str:
    return commands_hash([f"{n.name}:{c}" for g in plan.groups for n in g.nodes for c in n.commands])


def fix_script(*, node_name: str, steps: list[dict[str, str]]) -> str:
    """The script a fix run runs on a node: `steps` ({"check_id", "command"}) only, each command re-checked
    against its template; no summary or explanation, so no node text."""
    by_check: dict[str, list[str]] = {}
    for step in steps:
        if parse_command(step["command"]) is None:
            raise ValueError(f"{step['check_id']}: a stored command matches no template; nothing is run")
        by_check.setdefault(step["check_id"], []).append(step["command"])
    return render_script(
        title=f"Preflight fix run for {node_name}",
        steps=[
            ScriptStep(check, "fail", "from the cluster's fix plan", "", tuple(cmds))
            for check, cmds in by_check.items()
        ],
    )
