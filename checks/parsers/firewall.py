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


def open_port_commands(kind: str, first: int, last: int, protocol: str = "tcp") -> str:
    """The exact command to open a port range on a node's firewall."""
    span = str(first) if first == last else f"{first}-{last}"
    if kind == "firewalld":
        return f"firewall-cmd --permanent --add-port={span}/{protocol} && firewall-cmd --reload"
    if kind == "ufw":
        return f"ufw allow {span.replace('-', ':')}/{protocol}"
    if kind == "nftables":
        return f"nft insert rule inet filter input {protocol} dport {{ {span} }} accept"
    if kind == "iptables":
        return (
            f"iptables -I INPUT -p {protocol} --dport {span.replace('-', ':')} -j ACCEPT "
            "(then save it: iptables-save > /etc/iptables/rules.v4, or netfilter-persistent save)"
        )
    return (
        f"open TCP {span} inbound on whatever filters this node's traffic (a cloud security group or a "
        "network firewall: the node itself has no firewall rules)"
    )
