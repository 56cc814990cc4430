"""The fix plan as an Ansible playbook, built as data and written by PyYAML's SafeDumper (never joined as text).

One play per group of nodes that share a fix, hosts named as the inventory names them, one task per template
command. An Ansible module does the step where one fits with the same effect (`systemd_service` for services,
`file`, `get_url`, `copy` and `apt` for files and package lists, `package` for dnf, yum and zypper installs). apt
installs run the template command under a `dpkg -s` check: ansible.builtin.apt needs python3-apt on the node,
which a fresh node may lack. Elsewhere `ansible.builtin.shell` runs the same template-built command after a
read-only check task (`commands.GUARDS`) that skips it when nothing is left to do, so a second run reports no
change. `ansible.posix` modules (sysctl, firewalld) are not used: that collection is not on PyPI on its own (only
inside the large `ansible` bundle), and the guarded shell steps do the same idempotently with ansible-core alone.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .commands import HANDLERS, NEVER_CHANGES, ParsedCommand, render_guard
from .plan import FixGroup, FixPlan

# A host pattern is the node's inventory name; names that Ansible would read as a pattern are refused.
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
PIPE = re.compile(r"(?<!\|)\|(?!\|)")


def _shell(text: str) -> dict[str, Any]:
    """A shell step: POSIX sh like remediation.sh, or bash with pipefail when it pipes (a failing producer fails)."""
    if PIPE.search(text):
        return {"ansible.builtin.shell": {"cmd": "set -o pipefail; " + text, "executable": "/bin/bash"}}
    return {"ansible.builtin.shell": {"cmd": text, "executable": "/bin/sh"}}


def _module(command: ParsedCommand) -> dict[str, Any] | None:
    t = command.template
    if t == "service.enable":
        return {
            "ansible.builtin.systemd_service": {"name": command.field("service"), "enabled": True, "state": "started"}
        }
    if t == "keyrings.dir":
        return {"ansible.builtin.file": {"path": "/etc/apt/keyrings", "state": "directory", "mode": "0755"}}
    if t == "download":
        return {"ansible.builtin.get_url": {"url": command.field("url"), "dest": command.field("path"), "mode": "0644"}}
    if t == "readable":
        return {"ansible.builtin.file": {"path": command.field("path"), "mode": "a+r"}}
    if t == "write":
        return {
            "ansible.builtin.copy": {
                "content": f"{command.field('line')}\n",
                "dest": command.field("path"),
                "mode": "0644",
            }
        }
    if t == "apt.update":
        return {"ansible.builtin.apt": {"update_cache": True}}
    if t in ("dnf.install", "yum.install", "zypper.install"):
        return {"ansible.builtin.package": {"name": list(command.words("packages")), "state": "present"}}
    return None


def _handler(command: ParsedCommand) -> dict[str, Any]:
    if command.template == "service.restart":
        service = command.field("service")
        return {
            "name": f"Restart {service}",
            "ansible.builtin.systemd_service": {"name": service, "state": "restarted"},
        }
    if command.template == "systemd.reload":
        return {"name": "Reload systemd", "ansible.builtin.systemd_service": {"daemon_reload": True}}
    return {"name": f"Run {command.template}", **_shell(command.text), "changed_when": True}


def _play(group: FixGroup, number: int, total: int) -> dict[str, Any]:
    hosts = [node.name for node in group.nodes if HOST_NAME.fullmatch(node.name)]
    tasks: list[dict[str, Any]] = []
    handlers: list[dict[str, Any]] = []
    count = 0
    for step in group.steps:
        step_tasks: list[dict[str, Any]] = []
        for command in step.commands:
            count += 1
            label = f"{step.check_id} step {count} ({command.template})"
            if command.template in HANDLERS:
                handler = _handler(command)
                if handler not in handlers:
                    handlers.append(handler)
                for task in step_tasks:
                    if "register" not in task:
                        task.setdefault("notify", []).append(handler["name"])
                continue
            module = _module(command)
            if module is not None:
                task = {"name": f"Fix {label}", **module}
                if command.template == "apt.update":
                    task["changed_when"] = False
                step_tasks.append(task)
                continue
            if command.template in NEVER_CHANGES:
                step_tasks.append({"name": f"Fix {label}", **_shell(command.text), "changed_when": False})
                continue
            guard = render_guard(command)
            if guard is None:
                step_tasks.append({"name": f"Fix {label}", **_shell(command.text), "changed_when": True})
                continue
            register = f"preflight_check_{count}"
            step_tasks.append(
                {
                    "name": f"Check {label}",
                    **_shell(guard),
                    "register": register,
                    "changed_when": False,
                    "failed_when": False,
                    "check_mode": False,
                }
            )
            step_tasks.append(
                {"name": f"Fix {label}", **_shell(command.text), "when": f"{register}.rc != 0", "changed_when": True}
            )
        tasks.extend(step_tasks)
    play: dict[str, Any] = {
        "name": f"Preflight fix {number} of {total}: {group.label} ({len(hosts)} node{'' if len(hosts) == 1 else 's'})",
        "hosts": hosts,
        "become": True,
        "gather_facts": False,
        "tasks": tasks,
    }
    if handlers:
        play["handlers"] = handlers
    return play


def playbook_data(plan: FixPlan) -> list[dict[str, Any]]:
    groups = [g for g in plan.groups if any(HOST_NAME.fullmatch(n.name) for n in g.nodes)]
    return [_play(group, i, len(groups)) for i, group in enumerate(groups, 1)]


class _Dumper(yaml.SafeDumper):
    """SafeDumper (plain data only) that indents lists inside mappings, as yamllint and ansible-lint expect."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _long_text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    """Long strings folded (`>-`) at spaces so no line passes yamllint's limit; loading gives the same string."""
    style = ">" if len(data) > 100 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _long_text)


def render_playbook(plan: FixPlan) -> str:
    return yaml.dump(
        playbook_data(plan), Dumper=_Dumper, explicit_start=True, sort_keys=False, width=80, allow_unicode=False
    )
