"""Parse Ansible inventories (INI and YAML) into hosts with their groups and merged variables.

Pure: text in, `ParsedInventory` out, `InventoryError` (with the line) for anything malformed. Ansible itself is not
used: ansible-core is a large GPL dependency whose inventory API does not report lines for every error, and we need
only the static subset (groups, children, vars, host ranges), never plugins, scripts or templating. YAML is read with
PyYAML's composer so every key keeps its line; INI host lines are tokenised with shlex as Ansible does.
"""

from __future__ import annotations

import re
import shlex
import string
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_HOSTS = 100_000  # the parser's own ceiling; imports pass a lower `max_hosts` (PREFLIGHT_IMPORT_MAX_HOSTS)
MAX_VALUE_IN_MESSAGE = 200
MAX_YAML_DEPTH = 64
# shlex takes time quadratic in a line's length (3 MB: minutes); no inventory line is anywhere near this.
MAX_INI_LINE = 8192
# Tags a static inventory can carry: YAML's own scalar and collection types and Ansible's `!vault`. Anything else
# (`!!python/object/apply:...`, custom tags) is refused by name before any value is constructed.
_YAML_TAGS = frozenset(
    {None, "!", "!vault"}
    | {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}
)
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_HOST_PORT = re.compile(r"^(?P<host>[^:\[\]\s]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d+)\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_RANGE = re.compile(r"\[([^\[\]]*?)\]")


def shorten(value, limit: int = MAX_VALUE_IN_MESSAGE) -> str:
    """A value as it may appear in an error message: at most `limit` characters, marked when cut."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def quoted(value) -> str:
    return repr(shorten(value))


class InventoryError(Exception):
    """A malformed inventory: says where (file and line) and why."""

    def __init__(self, message: str, *, line: int | None = None, source: str = "inventory") -> None:
        message = shorten(message, 2000)  # a backstop: values in messages are already cut to 200 characters
        super().__init__(message)
        self.message = message
        self.line = line
        self.source = shorten(source, 100)

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


@dataclass
class InventoryHost:
    name: str
    line: int
    groups: set[str] = field(default_factory=set)
    vars: dict[str, Any] = field(default_factory=dict)
    var_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class InventoryGroup:
    name: str
    line: int
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    var_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class ParsedInventory:
    """Hosts keyed by inventory name; each host's `groups` includes every ancestor group, `vars` the merged view."""

    format: str
    hosts: dict[str, InventoryHost]
    groups: dict[str, InventoryGroup]


def expand_host_pattern(pattern: str, *, line: int, source: str, limit: int = MAX_HOSTS) -> list[str]:
    """Expand Ansible host ranges: `gpu[01:16]`, `node-[a:f]`, `w[1:10:2]`; several ranges multiply."""
    match = _RANGE.search(pattern)
    if not match:
        if "[" in pattern or "]" in pattern:
            raise InventoryError(f"unbalanced brackets in host pattern {quoted(pattern)}", line=line, source=source)
        return [pattern]
    body = match.group(1)
    parts = body.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InventoryError(
            f"invalid host range [{shorten(body)}] in {quoted(pattern)}: expected [start:end] or [start:end:step]",
            line=line,
            source=source,
        )
    start, end = parts[0], parts[1]
    try:
        step = int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise InventoryError(
            f"range step {quoted(parts[2])} in {quoted(pattern)} is not a number", line=line, source=source
        ) from None
    if step < 1:
        raise InventoryError(f"range step in {quoted(pattern)} must be at least 1", line=line, source=source)
    if start.isdigit() and end.isdigit():
        if int(start) > int(end):
            raise InventoryError(
                f"range [{shorten(body)}] in {quoted(pattern)} runs backwards", line=line, source=source
            )
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        numbers = range(int(start), int(end) + 1, step)
        if len(numbers) > limit:
            raise InventoryError(_too_many(limit, f"host range {quoted(pattern)}"), line=line, source=source)
        values = [str(i).zfill(width) for i in numbers]
    elif len(start) == 1 and len(end) == 1 and start in string.ascii_letters and end in string.ascii_letters:
        if start > end:
            raise InventoryError(
                f"range [{shorten(body)}] in {quoted(pattern)} runs backwards", line=line, source=source
            )
        values = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    else:
        raise InventoryError(
            f"invalid host range [{shorten(body)}] in {quoted(pattern)}: both ends must be numbers or single letters",
            line=line,
            source=source,
        )
    if len(values) > limit:
        raise InventoryError(_too_many(limit, f"host range {quoted(pattern)}"), line=line, source=source)
    head, tail = pattern[: match.start()], pattern[match.end() :]
    expanded: list[str] = []
    for value in values:
        expanded.extend(expand_host_pattern(f"{head}{value}{tail}", line=line, source=source, limit=limit))
        if len(expanded) > limit:
            raise InventoryError(_too_many(limit, f"host range {quoted(pattern)}"), line=line, source=source)
    return expanded


def _too_many(limit: int, what: str) -> str:
    return (
        f"{what} makes more than {limit} hosts, the most one import may create "
        "(PREFLIGHT_IMPORT_MAX_HOSTS); split the inventory or raise the limit"
    )


class _Builder:
    """Collects groups and hosts as either format declares them, then resolves membership and variables."""

    def __init__(self, source: str, fmt: str, max_hosts: int = MAX_HOSTS) -> None:
        self.source = source
        self.format = fmt
        self.max_hosts = min(max_hosts, MAX_HOSTS)
        self.groups: dict[str, InventoryGroup] = {
            "all": InventoryGroup("all", 0),
            "ungrouped": InventoryGroup("ungrouped", 0),
        }
        self.hosts: dict[str, InventoryHost] = {}

    def error(self, message: str, line: int | None) -> InventoryError:
        return InventoryError(message, line=line, source=self.source)

    def group(self, name: str, line: int) -> InventoryGroup:
        if not _GROUP_NAME.match(name):
            raise self.error(f"invalid group name {quoted(name)} (letters, digits, '_', '-', '.')", line)
        if name not in self.groups:
            self.groups[name] = InventoryGroup(name, line)
        return self.groups[name]

    def add_host(
        self, pattern: str, group: str, line: int, host_vars: dict[str, Any], var_lines: dict[str, int]
    ) -> None:
        port_match = _HOST_PORT.match(pattern)
        if port_match:
            pattern = port_match.group("host").strip("[]")
            host_vars = {"ansible_port": port_match.group("port"), **host_vars}
            var_lines = {"ansible_port": line, **var_lines}
        for name in expand_host_pattern(pattern, line=line, source=self.source, limit=self.max_hosts):
            host = self.hosts.get(name)
            if host is None:
                if len(self.hosts) >= self.max_hosts:
                    raise self.error(_too_many(self.max_hosts, "the inventory"), line)
                host = self.hosts[name] = InventoryHost(name, line)
            host.vars.update(host_vars)
            host.var_lines.update({k: var_lines.get(k, line) for k in host_vars})
            if name not in self.groups[group].hosts:
                self.groups[group].hosts.append(name)

    def build(self) -> ParsedInventory:
        parents: dict[str, set[str]] = {name: set() for name in self.groups}
        for group in self.groups.values():
            for child in group.children:
                parents.setdefault(child, set()).add(group.name)
        depth: dict[str, int] = {}

        def depth_of(name: str, trail: tuple[str, ...]) -> int:
            if name in trail:
                cycle = " -> ".join((*trail[trail.index(name) :], name))
                raise self.error(f"group cycle: {cycle}", self.groups[name].line or None)
            if name not in depth:
                above = [depth_of(parent, (*trail, name)) for parent in parents.get(name, ()) if parent != "all"]
                depth[name] = 1 + max(above, default=0) if name != "all" else 0
            return depth[name]

        for name in self.groups:
            depth_of(name, ())

        def ancestors(name: str) -> set[str]:
            found, todo = set(), [name]
            while todo:
                current = todo.pop()
                for parent in parents.get(current, ()):
                    if parent not in found:
                        found.add(parent)
                        todo.append(parent)
            return found

        for group in self.groups.values():
            for host_name in group.hosts:
                host = self.hosts[host_name]
                host.groups |= {group.name, *ancestors(group.name), "all"}
        for host in self.hosts.values():
            if host.groups <= {"all"}:
                host.groups.add("ungrouped")
            # Ansible's precedence: all, then groups from shallow to deep (alphabetical at equal depth), then host.
            merged: dict[str, Any] = {}
            lines: dict[str, int] = {}
            for name in sorted(host.groups, key=lambda g: (depth.get(g, 0), g)):
                merged.update(self.groups[name].vars)
                lines.update(self.groups[name].var_lines)
            merged.update(host.vars)
            lines.update(host.var_lines)
            host.vars, host.var_lines = merged, lines
        return ParsedInventory(self.format, self.hosts, self.groups)


def _split_assignment(token: str, *, line: int, builder: _Builder, what: str) -> tuple[str, str]:
    if "=" not in token:
        raise builder.error(f"expected key=value {what}, got {quoted(token)}", line)
    key, value = token.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise builder.error(f"invalid variable name {quoted(key)}", line)
    return key, value.strip()


def parse_ini(text: str, *, source: str = "inventory", max_hosts: int = MAX_HOSTS) -> ParsedInventory:
    builder = _Builder(source, "ini", max_hosts)
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        if len(raw) > MAX_INI_LINE:
            raise builder.error(
                f"the line is {len(raw)} characters long; an inventory line has at most {MAX_INI_LINE}", number
            )
        line = raw.strip()
        if _CONTROL.search(raw):
            raise builder.error("control characters in the line; is this a text inventory?", number)
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise builder.error(f"section header {quoted(line)} is missing its closing ']'", number)
            header = line[1:-1].strip()
            name, _, suffix = header.partition(":")
            if suffix not in ("", "vars", "children"):
                raise builder.error(f"unknown section type ':{suffix}' (expected :vars or :children)", number)
            section, kind = builder.group(name, number).name, suffix or "hosts"
            continue
        try:
            tokens = shlex.split(line, comments=True, posix=True)
        except ValueError as exc:
            raise builder.error(f"cannot read line: {exc}", number) from None
        if not tokens:
            continue
        if kind == "children":
            if len(tokens) != 1:
                raise builder.error(f"a [{section}:children] line names one group, got {quoted(line)}", number)
            child = builder.group(tokens[0], number)
            if child.name == section:
                raise builder.error(f"group {quoted(section)} cannot be its own child", number)
            if child.name not in builder.groups[section].children:
                builder.groups[section].children.append(child.name)
        elif kind == "vars":
            key, value = _split_assignment(line, line=number, builder=builder, what="group variable")
            builder.groups[section].vars[key] = (
                value.strip("'\"") if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"" else value
            )
            builder.groups[section].var_lines[key] = number
        else:
            pattern, *assignments = tokens
            if "=" in pattern:
                raise builder.error(f"a host line starts with the host name, got {quoted(pattern)}", number)
            host_vars = dict(
                _split_assignment(t, line=number, builder=builder, what="host variable") for t in assignments
            )
            builder.add_host(pattern, section, number, host_vars, {})
    return builder.build()


class _VaultLoader(yaml.SafeLoader):
    """SafeLoader that tolerates Ansible's `!vault` tag, so vaulted values can be named in errors, not crash."""


_VaultLoader.add_constructor("!vault", lambda loader, node: "!vault")


def _mark(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _scalar(node: yaml.Node, builder: _Builder, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise builder.error(f"{what} must be a plain value, got a {node.id}", _mark(node))
    return str(node.value)


def _mapping_items(node: yaml.Node, builder: _Builder, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        return []
    if not isinstance(node, yaml.MappingNode):
        raise builder.error(f"{what} must be a mapping, got a {node.id}", _mark(node))
    seen: set[str] = set()
    for key, _ in node.value:
        name = _scalar(key, builder, f"a key of {what}")
        if name in seen:
            raise builder.error(f"duplicate key {quoted(name)} in {what}", _mark(key))
        seen.add(name)
    return node.value


def _yaml_vars(node: yaml.Node, builder: _Builder, what: str) -> tuple[dict[str, Any], dict[str, int]]:
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key, value in _mapping_items(node, builder, what):
        name = _scalar(key, builder, f"a variable name in {what}")
        if name.startswith("ansible_") and not isinstance(value, yaml.ScalarNode):
            raise builder.error(f"{name} in {what} must be a plain value, got a {value.id}", _mark(value))
        values[name] = _VaultLoader("").construct_document(value)
        lines[name] = _mark(key)
    return values, lines


def _yaml_group(builder: _Builder, name: str, node: yaml.Node, line: int, trail: tuple[str, ...]) -> None:
    group = builder.group(name, line)
    for key, value in _mapping_items(node, builder, f"group {quoted(name)}"):
        section = _scalar(key, builder, f"a key of group {quoted(name)}")
        if section == "hosts":
            for host_key, host_value in _mapping_items(value, builder, f"hosts of group {quoted(name)}"):
                pattern = _scalar(host_key, builder, "a host name")
                host_vars, var_lines = _yaml_vars(host_value, builder, f"host {quoted(pattern)}")
                builder.add_host(pattern, name, _mark(host_key), host_vars, var_lines)
        elif section == "vars":
            group_vars, var_lines = _yaml_vars(value, builder, f"vars of group {quoted(name)}")
            group.vars.update(group_vars)
            group.var_lines.update(var_lines)
        elif section == "children":
            for child_key, child_value in _mapping_items(value, builder, f"children of group {quoted(name)}"):
                child = _scalar(child_key, builder, "a group name")
                if child in trail or child == name:
                    raise builder.error(f"group cycle: {' -> '.join((*trail, name, child))}", _mark(child_key))
                if child not in group.children:
                    group.children.append(child)
                _yaml_group(builder, child, child_value, _mark(child_key), (*trail, name))
        else:
            raise builder.error(
                f"unknown key {quoted(section)} in group {quoted(name)} (expected hosts, vars or children)", _mark(key)
            )


def _yaml_refuse_unsafe(text: str, builder: _Builder) -> None:
    """Refuse aliases (a few hundred bytes of them expand to gigabytes once values become strings), tags other than
    YAML's plain types and `!vault`, and absurd nesting, from the event stream: before any node is built."""
    depth = 0
    for event in yaml.parse(text, Loader=_VaultLoader):
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.AliasEvent):
            raise builder.error(
                f"YAML alias *{shorten(event.anchor, 40)}: aliases and anchors are not accepted in an inventory "
                "(write the values out)",
                line,
            )
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            raise builder.error(
                f"YAML anchor &{shorten(event.anchor, 40)}: aliases and anchors are not accepted in an inventory "
                "(write the values out)",
                line,
            )
        tag = getattr(event, "tag", None)
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)) and tag not in _YAML_TAGS:
            why = "it would construct Python objects" if "python/" in str(tag) else "only plain values are accepted"
            raise builder.error(f"YAML tag {quoted(tag)} is not accepted in an inventory: {why}", line)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise builder.error(f"YAML nested deeper than {MAX_YAML_DEPTH} levels", line)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_yaml(text: str, *, source: str = "inventory", max_hosts: int = MAX_HOSTS) -> ParsedInventory:
    builder = _Builder(source, "yaml", max_hosts)
    try:
        _yaml_refuse_unsafe(text, builder)
        root = yaml.compose(text, Loader=_VaultLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise builder.error(f"invalid YAML: {exc.problem or exc.context}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise builder.error(f"invalid YAML: {exc}", None) from None
    if root is None:
        raise builder.error("the inventory is empty", None)
    for key, value in _mapping_items(root, builder, "the inventory"):
        _yaml_group(builder, _scalar(key, builder, "a group name"), value, _mark(key), ())
    return builder.build()


def looks_like_yaml(text: str) -> bool:
    """Ansible's YAML inventories are a mapping of groups; INI files are not valid YAML mappings of mappings."""
    try:
        # Composed, never constructed: no tag runs and an alias is one shared node, not an expansion.
        root = yaml.compose(text, Loader=_VaultLoader)
    except (yaml.YAMLError, RecursionError):
        return False
    return (
        isinstance(root, yaml.MappingNode)
        and bool(root.value)
        and all(
            isinstance(v, yaml.MappingNode) or (isinstance(v, yaml.ScalarNode) and v.tag.endswith(":null"))
            for _, v in root.value
        )
    )


def parse_inventory(
    text: str, *, source: str = "inventory", fmt: str | None = None, max_hosts: int = MAX_HOSTS
) -> ParsedInventory:
    """Parse an inventory; `fmt` is "ini" or "yaml", else it is chosen from the file name and then the content."""
    if fmt is None:
        lowered = source.lower()
        if lowered.endswith((".yml", ".yaml")):
            fmt = "yaml"
        elif lowered.endswith((".ini", ".cfg", ".hosts")):
            fmt = "ini"
        else:
            fmt = "yaml" if looks_like_yaml(text) else "ini"
    if fmt == "yaml":
        return parse_yaml(text, source=source, max_hosts=max_hosts)
    if fmt == "ini":
        return parse_ini(text, source=source, max_hosts=max_hosts)
    raise InventoryError(f"unknown inventory format {quoted(fmt)} (expected ini or yaml)", source=source)
