"""Commands back into structure: which template built a stored command, and with which fields.

A stored command (`CheckResult.commands`) is accepted only when it matches one template of
`checks.remediation.TEMPLATES` and renders back, through `checks.remediation.command()` (closed vocabularies,
`shlex.quote`), to exactly the same text. Anything else (a command from an older template, or text that never
came from one) is refused, so the plan, the playbook and an applied fix hold only template renderings.

`GUARDS` is the parallel structure keyed by template id that the playbook needs: a read-only shell test, built
from the same fields, that succeeds when the command has nothing left to do (so a second run changes nothing).
"""

from __future__ import annotations

import re
import shlex
import string
from dataclasses import dataclass
from functools import lru_cache

from ..remediation import TEMPLATES, command

FieldValue = str | tuple[str, ...]


@dataclass(frozen=True)
class ParsedCommand:
    template: str
    fields: tuple[tuple[str, FieldValue], ...]
    text: str

    def field(self, name: str) -> FieldValue:
        return dict(self.fields)[name]

    def words(self, name: str) -> tuple[str, ...]:
        value = self.field(name)
        return value if isinstance(value, tuple) else (value,)


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...]:
    patterns = []
    for template_id, text in TEMPLATES.items():
        regex, seen = "", []
        for literal, name, _, _ in string.Formatter().parse(text):
            regex += re.escape(literal)
            if name is None:
                continue
            if name in seen:
                regex += f"(?P={name})"
            else:
                seen.append(name)
                regex += f"(?P<{name}>.+?)"
        patterns.append((template_id, re.compile(regex, re.DOTALL), tuple(seen)))
    return tuple(patterns)


def _value(text: str) -> FieldValue | None:
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    if not words:
        return None
    return words[0] if len(words) == 1 else tuple(words)


def parse_command(text: str) -> ParsedCommand | None:
    """The template and fields that render exactly `text`, or None when no template does."""
    if not isinstance(text, str) or len(text) > 4000:
        return None
    for template_id, pattern, names in _patterns():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        fields: dict[str, FieldValue] = {}
        for name in names:
            value = _value(match.group(name))
            if value is None:
                break
            fields[name] = value
        else:
            try:
                rendered = command(template_id, **fields)
            except (ValueError, TypeError, KeyError):
                continue
            if rendered == text:
                return ParsedCommand(template_id, tuple(fields.items()), text)
    return None


def _quote(value: FieldValue) -> str:
    words = value if isinstance(value, tuple) else (value,)
    return " ".join(shlex.quote(w) for w in words)


def _installed(manager: str) -> str:
    return "dpkg -s {packages} >/dev/null 2>&1" if manager == "apt" else "rpm -q {packages} >/dev/null 2>&1"


# template id -> a shell test that exits 0 when the step has nothing left to do; fields as the template's.
GUARDS: dict[str, str] = {
    "apt.install": _installed("apt"),
    "dnf.install": _installed("dnf"),
    "yum.install": _installed("yum"),
    "zypper.install": _installed("zypper"),
    "service.enable": "systemctl is-enabled --quiet {service} && systemctl is-active --quiet {service}",
    "keyrings.dir": "test -d /etc/apt/keyrings",
    "download": "test -s {path}",
    "dearmor": "test -s {path}",
    "readable": 'test -z "$(find {path} ! -perm -a+r)"',
    "write": 'test "$(cat {path} 2>/dev/null)" = {line}',
    "nvidia.list": "test -s {path}",
    "zypper.repo": "zypper repos {alias} >/dev/null 2>&1",
    "snap.remove": "! snap list docker >/dev/null 2>&1",
    "runtime.configure": "test -s /etc/docker/daemon.json && grep -q {runtime} /etc/docker/daemon.json",
    "ascend.install": "test -d /usr/local/Ascend/Ascend-Docker-Runtime",
    "ntp.on": 'test "$(timedatectl show -p NTP --value)" = yes',
    "sysctl.set": 'test "$(sysctl -n {key})" = {value}',
    "firewalld.add": "firewall-cmd --permanent --query-port={span}/{protocol} >/dev/null",
    "iptables.accept": "iptables -C INPUT -p {protocol} --dport {span} -j ACCEPT 2>/dev/null",
    "nft.accept": "nft list chain inet filter input | grep {rule} >/dev/null",
    # field checks (issue 20)
    "ctk.default": 'grep -q \'"default-runtime": *"nvidia"\' /etc/docker/daemon.json 2>/dev/null',
    "ctk.cdi.generate": "test -s /etc/cdi/nvidia.yaml",
    "ctk.mode.cdi": "grep -Eq '^[[:space:]]*mode[[:space:]]*=[[:space:]]*\"cdi\"' "
    "/etc/nvidia-container-runtime/config.toml",
    "dropin.dir": "test -d /etc/systemd/system/docker.service.d",
    "dropin.no_proxy": 'test "$(cat {path} 2>/dev/null)" = '
    "\"$(printf '[Service]\\nEnvironment=%s\\nEnvironment=%s' {upper} {lower})\"",
    "hostname.set": 'test "$(hostname)" = {name}',
    "cdi.dir": "test -d /var/run/cdi",
    # No TCP socket listening on those ports any more (the kernel's table, as the step reads it).
    "port.free": "want=\" $(printf '%04X ' {ports})\"; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | "
    '{{ while read -r _ addr _ st _; do case "$want" in *" ${{addr##*:}} "*) '
    'if [ "$st" = 0A ]; then exit 1; fi;; esac; done; exit 0; }}',
}
# Steps that change nothing lasting (package lists, a clock step): they run, and never count as a change.
NEVER_CHANGES = frozenset({"apt.update", "zypper.refresh", "chrony.step"})
# Steps that only apply what earlier steps changed: Ansible handlers, run when a step before them changed.
HANDLERS = frozenset({"service.restart", "firewalld.reload", "systemd.reload"})


def _guard_fields(parsed: ParsedCommand) -> dict[str, FieldValue]:
    fields = dict(parsed.fields)
    if parsed.template == "runtime.configure":
        ctk = str(fields.pop("ctk"))
        fields["runtime"] = {"nvidia-ctk": "nvidia", "amd-ctk": "amd"}.get(ctk, ctk)
    if parsed.template == "sysctl.set":
        key, _, value = str(fields.pop("setting")).partition("=")
        fields["key"], fields["value"] = key, value
    return fields


def render_guard(parsed: ParsedCommand) -> str | None:
    """The read-only test for `parsed` (exit 0: nothing to do), built from its already validated fields."""
    guard = GUARDS.get(parsed.template)
    if guard is None:
        return None
    fields = _guard_fields(parsed)
    wanted = {name for _, name, _, _ in string.Formatter().parse(guard) if name}
    if not wanted <= set(fields):
        return None  # the template's fields changed shape: no guard rather than a wrong one
    return guard.format(**{name: _quote(fields[name]) for name in wanted})
