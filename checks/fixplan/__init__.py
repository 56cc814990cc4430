"""The cluster fix plan: nodes grouped by the exact commands they need, in dependency order, and its Ansible
playbook. Pure: results in, plan and YAML out; commands are only ones that re-render from `TEMPLATES`."""

from .commands import ParsedCommand, parse_command, render_guard
from .plan import FixGroup, FixPlan, NodeFix, NodeResults, ResultRow, build_plan, node_steps, plan_hash
from .playbook import render_playbook

__all__ = [
    "FixGroup",
    "FixPlan",
    "NodeFix",
    "NodeResults",
    "ParsedCommand",
    "ResultRow",
    "build_plan",
    "node_steps",
    "parse_command",
    "plan_hash",
    "render_guard",
    "render_playbook",
]
