"""Does a node's own firewall drop or reject a TCP port? Read from the rules the probe recorded (`iptables -S`,
`nft list ruleset`, `ufw status verbose`), to tell where a failing path is blocked. Only explicit rules that name
the port count as evidence; a rule this reader does not understand is never taken as a block."""

from __future__ import annotations

import re

_IPT_PORTS = re.compile(r"--(?:dport|destination-port|dports)\s+(\S+)")
_NFT_PORTS = re.compile(r"\btcp dport\s+(\{[^}]*\}|\S+)")


def _covers(spec: str, port: int) -> bool:
    """`80`, `80:90`, `80,443,1000:2000`, `{ 80, 443 }`, `80-90` cover `port`?"""
    for item in re.split(r"[,\s{}]+", spec):
        if not item:
            continue
        first, _, last = item.replace("-", ":").partition(":")
        if first.isdigit() and (last or first).isdigit() and int(first) <= port <= int(last or first):
            return True
    return False


def blocking_rule(evidence: str, port: int, *, outgoing: bool = False) -> str:
    """The first rule in `evidence` that drops or rejects TCP to `port` (on the way in, or out when `outgoing`),
    or "" when none names it."""
    chain = "OUTPUT" if outgoing else "INPUT"
    hook = "output" if outgoing else "input"
    current_hook = ""
    for raw in evidence.splitlines():
        line = raw.strip()
        if line.startswith("-A "):  # iptables -S
            words = line.split()
            if len(words) < 2 or words[1] != chain or not re.search(r"-j (DROP|REJECT)\b", line):
                continue
            if re.search(r"-p (udp|icmp)", line) or " ! " in line:
                continue
            ports = _IPT_PORTS.search(line)
            if ports and _covers(ports.group(1), port):
                return line
        elif "type filter hook" in line:  # nft: which hook the following rules belong to
            current_hook = "input" if "hook input" in line else "output" if "hook output" in line else "other"
        elif current_hook == hook and re.search(r"\b(drop|reject)\b", line) and "policy" not in line:
            ports = _NFT_PORTS.search(line)
            if ports and _covers(ports.group(1), port) and "!=" not in line:
                return line
        elif not outgoing and re.search(r"\b(DENY|REJECT) IN\b", line):  # ufw status verbose
            target = line.split()[0]
            if not target.endswith("/udp") and _covers(target.split("/")[0], port):
                return line
    return ""
