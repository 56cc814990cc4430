"""Which firewall governs a node's input, from `firewall-cmd`, `ufw status`, `nft list ruleset`, `iptables -S`.

Shown as evidence and used to phrase remediation, never as a verdict: only a real connection proves a path.
"""

import re


def detect_firewall(sections: dict[str, tuple[str, int | None]]) -> tuple[str, str]:
    """(kind, evidence) with kind one of firewalld, ufw, nftables, iptables, none; sections map name -> (text, rc)."""

    def text(name: str) -> str:
        value = sections.get(name)
        return value[0] if value and value[1] == 0 else ""

    if text("firewalld").strip() == "running":
        return "firewalld", "firewall-cmd --list-all:\n" + text("firewalld-rules")
    ufw = text("ufw")
    if re.search(r"^Status:\s*active", ufw, re.M):
        return "ufw", "ufw status verbose:\n" + ufw
    iptables = text("iptables")
    rules = [line for line in iptables.splitlines() if line.startswith("-A ")]
    dropping_policy = re.search(r"^-P INPUT (DROP|REJECT)", iptables, re.M)
    nft = text("nftables")
    nft_rules = [
        line for line in nft.splitlines() if re.search(r"\b(drop|reject|accept)\b", line) and "policy" not in line
    ]
    if re.search(r"policy drop", nft):
        nft_rules.append("policy drop")
    if nft_rules and not rules:
        return "nftables", "nft list ruleset:\n" + nft
    if rules or dropping_policy:
        return "iptables", "iptables -S:\n" + iptables
    seen = [name for name in ("firewalld", "ufw", "nftables", "iptables") if name in sections]
    return "none", "no active firewall rules found" + (f" (looked at: {', '.join(seen)})" if seen else "")
