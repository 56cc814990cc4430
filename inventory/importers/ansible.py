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
from itertools import chain, compress
from typing import Any

import yaml

MAX_HOSTS = 100_000  # the parser's own ceiling; imports pass a lower `max_hosts` (PREFLIGHT_IMPORT_MAX_HOSTS)
MAX_VALUE_IN_MESSAGE = 200
MAX_YAML_DEPTH = 64
# shlex takes time quadratic in a line's length (3 MB: minutes); no inventory line is anywhere near this.
MAX_INI_LINE = 8192
# Caps that keep an import's work linear in its size (issue 19): a real inventory has tens of groups, not thousands.
MAX_GROUPS = 1_000
MAX_CHILD_LINKS = 20_000  # `[parent:children]` entries (YAML `children:` keys) in the whole file
# Every group a host belongs to, counting parents, and every variable those groups give it, summed over the hosts
# (plus the merges of hosts that share no set of groups): the work and size of the merged result. 5,000 hosts, each
# in 200 groups (parents included) of its own combination, with 50 variables, fit (bench/import_adversarial.py).
MAX_INHERITED = 4_000_000
MAX_RANGE_DIGITS = 9  # a range bound or step: ASCII digits only, at most this many
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
_NUMBER = re.compile(rf"[0-9]{{1,{MAX_RANGE_DIGITS}}}\Z")
_BARE_HOST = re.compile(r"[A-Za-z0-9_.-]+\Z")  # no range, port, variable or quote
_PLAIN_INI = re.compile(r"[^'\"\\#]*\Z")  # a line shlex would only split at spaces and tabs


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
    if len(parts) == 3 and not _NUMBER.match(parts[2]):
        raise InventoryError(
            f"range step {quoted(parts[2])} in {quoted(pattern)} is not a number of at most {MAX_RANGE_DIGITS} "
            "digits (0-9)",
            line=line,
            source=source,
        )
    step = int(parts[2]) if len(parts) == 3 else 1
    if step < 1:
        raise InventoryError(f"range step in {quoted(pattern)} must be at least 1", line=line, source=source)
    numeric = [bool(_NUMBER.match(bound)) for bound in (start, end)]
    if any(numeric) != all(numeric) or (not any(numeric) and any(ch.isdigit() for ch in start + end)):
        raise InventoryError(
            f"invalid host range [{shorten(body)}] in {quoted(pattern)}: a numeric bound is at most "
            f"{MAX_RANGE_DIGITS} digits (0-9), and both ends are numbers or both single letters",
            line=line,
            source=source,
        )
    if all(numeric):
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
    """Collects groups and hosts as either format declares them, then resolves membership and variables.

    Linear in the file: membership tests are set lookups, each group's ancestors are computed once (as a bit set),
    hosts with the same direct groups share one merge, and the caps above bound what the merges may produce."""

    def __init__(self, source: str, fmt: str, max_hosts: int = MAX_HOSTS) -> None:
        self.source = source
        self.format = fmt
        self.max_hosts = min(max_hosts, MAX_HOSTS)
        self.groups: dict[str, InventoryGroup] = {
            "all": InventoryGroup("all", 0),
            "ungrouped": InventoryGroup("ungrouped", 0),
        }
        self.hosts: dict[str, InventoryHost] = {}
        self._members: dict[str, set[str]] = {"all": set(), "ungrouped": set()}
        self._children: dict[str, set[str]] = {"all": set(), "ungrouped": set()}
        self._links = 0

    def error(self, message: str, line: int | None) -> InventoryError:
        return InventoryError(message, line=line, source=self.source)

    def group(self, name: str, line: int) -> InventoryGroup:
        if not _GROUP_NAME.match(name):
            raise self.error(f"invalid group name {quoted(name)} (letters, digits, '_', '-', '.')", line)
        if name not in self.groups:
            if len(self.groups) >= MAX_GROUPS:
                raise self.error(
                    f"more than {MAX_GROUPS} groups; an inventory Preflight imports has at most {MAX_GROUPS}", line
                )
            self.groups[name] = InventoryGroup(name, line)
            self._members[name] = set()
            self._children[name] = set()
        return self.groups[name]

    def link(self, parent: str, child: str, line: int) -> None:
        """`child` is a child group of `parent` (both already declared with `group`)."""
        if child in self._children[parent]:
            return
        self._links += 1
        if self._links > MAX_CHILD_LINKS:
            raise self.error(
                f"more than {MAX_CHILD_LINKS} child-group entries in the inventory; at most {MAX_CHILD_LINKS} "
                "are taken",
                line,
            )
        self._children[parent].add(child)
        self.groups[parent].children.append(child)

    def add_host(
        self, pattern: str, group: str, line: int, host_vars: dict[str, Any], var_lines: dict[str, int]
    ) -> None:
        port_match = _HOST_PORT.match(pattern) if ":" in pattern else None
        if port_match:
            pattern = port_match.group("host").strip("[]")
            host_vars = {"ansible_port": port_match.group("port"), **host_vars}
            var_lines = {"ansible_port": line, **var_lines}
        members = self._members[group]
        names = (
            expand_host_pattern(pattern, line=line, source=self.source, limit=self.max_hosts)
            if "[" in pattern or "]" in pattern
            else (pattern,)
        )
        for name in names:
            host = self.hosts.get(name)
            if host is None:
                if len(self.hosts) >= self.max_hosts:
                    raise self.error(_too_many(self.max_hosts, "the inventory"), line)
                host = self.hosts[name] = InventoryHost(name, line)
            if host_vars:
                host.vars.update(host_vars)
                host.var_lines.update({k: var_lines.get(k, line) for k in host_vars})
            if name not in members:
                members.add(name)
                self.groups[group].hosts.append(name)
                host.groups.add(group)

    def _parents_first(self, parents: dict[str, set[str]]) -> list[str]:
        """Every group after all of its parents; a cycle is an error naming it. Iterative: no recursion limit."""
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        order: list[str] = []
        for root in self.groups:
            if root in state:
                continue
            path, stack = [root], [iter(sorted(parents[root]))]
            state[root] = 1
            while stack:
                parent = next(stack[-1], None)
                if parent is None:
                    stack.pop()
                    done = path.pop()
                    state[done] = 2
                    order.append(done)
                elif state.get(parent) == 1:
                    # reported from the parent down, as the file declares it; a long cycle by its ends
                    trail = [parent, *reversed(path[path.index(parent) :])]
                    if len(trail) > 12:
                        trail = [*trail[:5], f"... ({len(trail) - 10} more)", *trail[-5:]]
                    raise self.error(f"group cycle: {' -> '.join(trail)}", self.groups[parent].line or None)
                elif parent not in state:
                    state[parent] = 1
                    path.append(parent)
                    stack.append(iter(sorted(parents[parent])))
        return order

    def build(self) -> ParsedInventory:
        parents: dict[str, set[str]] = {name: set() for name in self.groups}
        for group in self.groups.values():
            for child in group.children:
                parents[child].add(group.name)
        order = self._parents_first(parents)
        depth: dict[str, int] = {}
        for name in order:
            depth[name] = 0 if name == "all" else 1 + max((depth[p] for p in parents[name] if p != "all"), default=0)
        # Ansible's precedence: all, then groups from shallow to deep (alphabetical at equal depth), then host. Bit i
        # of a mask is the i-th group in that order, so a mask's set bits, low to high, are its groups in order.
        ranked = sorted(order, key=lambda g: (depth[g], g))
        bit = {name: 1 << index for index, name in enumerate(ranked)}
        above: dict[str, int] = {}  # each group's ancestors, computed once per group
        for name in order:
            mask = 0
            for parent in parents[name]:
                mask |= bit[parent] | above[parent]
            above[name] = mask
        with_vars = 0
        for name in ranked:
            if self.groups[name].vars:
                with_vars |= bit[name]
        values = {name: list(self.groups[name].vars.items()) for name in ranked}
        lines_of = {name: list(self.groups[name].var_lines.items()) for name in ranked}
        closures: dict[frozenset[str], int] = {}  # a host's direct groups -> its groups, parents included
        merges: dict[int, tuple[frozenset[str], dict[str, Any], dict[str, int]]] = {}
        inherited = 0
        for host in self.hosts.values():
            key = frozenset(host.groups)  # its direct groups, recorded as it was listed
            mask = closures.get(key)
            if mask is None:
                mask = bit["all"]
                for name in key:
                    mask |= bit[name] | above[name]
                if mask == bit["all"]:
                    mask |= bit["ungrouped"]
                closures[key] = mask
            merge = merges.get(mask)
            if merge is None:
                # the set bits, low to high, are the groups in precedence order; merged in C, not group by group
                names = list(compress(ranked, map("1".__eq__, bin(mask)[:1:-1])))
                varied = list(compress(ranked, map("1".__eq__, bin(mask & with_vars)[:1:-1])))
                merged = dict(chain.from_iterable(map(values.__getitem__, varied)))
                lines = dict(chain.from_iterable(map(lines_of.__getitem__, varied)))
                inherited += len(names) + sum(map(len, map(values.__getitem__, varied)))
                merge = merges[mask] = (frozenset(names), merged, lines)
            groups, merged, lines = merge
            inherited += len(groups) + len(merged)
            if inherited > MAX_INHERITED:
                raise self.error(
                    f"the hosts inherit more than {MAX_INHERITED:,} group memberships and group variables in all "
                    "(counting parent groups); flatten the group nesting or split the inventory",
                    host.line,
                )
            host.groups = set(groups)
            host.vars, host.var_lines = {**merged, **host.vars}, {**lines, **host.var_lines}
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
    raw_lines = text.splitlines()
    # Each line is checked only when the whole text fails the check: the common case costs two scans, not a million.
    check_length = max(map(len, raw_lines), default=0) > MAX_INI_LINE
    check_control = _CONTROL.search(text) is not None
    for number, raw in enumerate(raw_lines, start=1):
        if check_length and len(raw) > MAX_INI_LINE:
            raise builder.error(
                f"the line is {len(raw)} characters long; an inventory line has at most {MAX_INI_LINE}", number
            )
        line = raw.strip()
        if check_control and _CONTROL.search(raw):
            raise builder.error("control characters in the line; is this a text inventory?", number)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                raise builder.error(f"section header {quoted(line)} is missing its closing ']'", number)
            header = line[1:-1].strip()
            name, _, suffix = header.partition(":")
            if suffix not in ("", "vars", "children"):
                raise builder.error(f"unknown section type ':{suffix}' (expected :vars or :children)", number)
            section, kind = builder.group(name, number).name, suffix or "hosts"
            continue
        if kind == "hosts" and _BARE_HOST.match(line):  # the common line: a host name alone, already known
            host = builder.hosts.get(line)
            members = builder._members[section]
            if host is not None and line in members:
                continue
            if host is not None:
                members.add(line)
                builder.groups[section].hosts.append(line)
                host.groups.add(section)
                continue
        if _PLAIN_INI.match(line):  # no quote, escape or comment: shlex would split at spaces and tabs only
            tokens = line.replace("\t", " ").split(" ")
            tokens = [t for t in tokens if t]
        else:
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
            builder.link(section, child.name, number)
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
            host_vars = (
                dict(_split_assignment(t, line=number, builder=builder, what="host variable") for t in assignments)
                if assignments
                else {}
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
                builder.group(child, _mark(child_key))
                builder.link(name, child, _mark(child_key))
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
