"""Test hosts for the fix plan: 4 workers without NTP and 1 whose port 10150 is held, with package managers and
systemctl stubbed on the node's PATH (/usr/local/bin). Installing chrony puts a `chronyc` stand-in in place (it
prints a recorded synchronized `chronyc tracking`), so the next audit finds chrony. Every stub appends what it
was asked to /root/.pf-trace (each node has its own /root)."""

from __future__ import annotations

import shlex
import subprocess
import time

from tests.lab import nodes
from tests.lab.hosts import Lab, LabNode

TRACKING = nodes.fixture("chrony/ubuntu-20.04_chronyc-tracking_synced.txt")
LISTENER = (
    "import socket, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 10150)); s.listen(); time.sleep(600)\n"
)
_TRACE = 'echo "$(basename "$0") $*" >> /root/.pf-trace\n'
STUBS = {
    "apt-get": _TRACE
    + 'case " $* " in *" install "*)\n'
    + '  for p in "$@"; do case "$p" in -*|install) ;; *) echo "$p" >> /root/.pf-installed ;; esac; done\n'
    + '  case " $* " in *" chrony "*)\n'
    + f"    printf '#!/bin/sh\\ncat %s\\n' {shlex.quote(shlex.quote(str(TRACKING)))} > /usr/local/bin/chronyc\n"
    + "    chmod 755 /usr/local/bin/chronyc ;; esac ;;\nesac\n",
    "dpkg": _TRACE
    + '[ "$1" = -s ] || exit 2\nshift\n'
    + 'for p in "$@"; do grep -qx "$p" /root/.pf-installed 2>/dev/null || exit 1; done\n',
    "systemctl": _TRACE
    + "d=/root/.pf-systemd; mkdir -p $d\n"
    + 'case "$1" in\n'
    + "  show) a=inactive; [ -e $d/$2.active ] && a=active; e=disabled; [ -e $d/$2.enabled ] && e=enabled\n"
    + "    printf 'Id=%s.service\\nLoadState=loaded\\nActiveState=%s\\nUnitFileState=%s\\n' \"$2\" $a $e ;;\n"
    + '  is-enabled) [ -e "$d/$2.enabled" ] ;;\n'
    + '  is-active) [ "$2" = --quiet ] && shift; [ -e "$d/$2.active" ] ;;\n'
    + '  enable) shift; now=; [ "$1" = --now ] && { now=1; shift; }; touch "$d/$1.enabled"; '
    + '[ -n "$now" ] && touch "$d/$1.active"; true ;;\n'
    + '  start|restart) touch "$d/$2.active" ;;\n'
    + "esac\n",
}


def fix_node(name: str, *, ntp: bool = False):
    spec = nodes.plain(name) if ntp else nodes.without_ntp(name)
    spec.tools.update(STUBS)
    return spec


def add_fix_nodes(lab: Lab, prefix: str) -> list[LabNode]:
    """{prefix}1-4 without NTP, {prefix}5 with NTP (its port 10150 is held while a test runs: hold_port)."""
    return [lab.add(fix_node(f"{prefix}{i}", ntp=i == 5)) for i in range(1, 6)]


def reset(lab_nodes: list[LabNode]) -> None:
    """Undo what a fix did: chrony gone, no stub state."""
    for node in lab_nodes:
        if "chronyc" not in node.spec.tools:
            (node.directory / "bin" / "chronyc").unlink(missing_ok=True)
        for name in (".pf-trace", ".pf-installed"):
            (node.directory / "home" / name).unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", str(node.directory / "home" / ".pf-systemd")], check=True)


def hold_port(node: LabNode) -> subprocess.Popen:
    """A process in the node's network namespace listening on 10150 until killed."""
    process = subprocess.Popen(["ip", "netns", "exec", node.namespace, "python3", "-c", LISTENER])
    for _ in range(100):
        if ":10150 " in node.exec("ss -Hltn").stdout:
            return process
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the listener did not bind 10150")


def trace(node: LabNode) -> list[str]:
    path = node.directory / "home" / ".pf-trace"
    return path.read_text().splitlines() if path.exists() else []
