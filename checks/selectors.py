"""Reads for audits: the output contract of `audit --json` and the API, with a constant number of queries."""

from __future__ import annotations

import re

from django.db.models import Prefetch

from . import models


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def audit_detail(*, audit_id: int) -> dict:
    """The audit output contract (REQUIREMENTS.md): audit, cluster, profile, times, nodes with facts and checks."""
    audit = models.Audit.objects.select_related("cluster").get(pk=audit_id)
    node_audits = (
        models.NodeAudit.objects.filter(audit=audit)
        .select_related("node")
        .prefetch_related(Prefetch("results", queryset=models.CheckResult.objects.order_by("position")))
        .order_by("node__role", "node__name")
    )
    return {
        "audit": audit.pk,
        "cluster": audit.cluster.name,
        "profile": audit.profile_key,
        "state": audit.state,
        "status": audit.status,
        "started": _iso(audit.started),
        "finished": _iso(audit.finished),
        "nodes": [
            {
                "name": na.node.name,
                "address": na.node.address,
                "role": na.node.role,
                "status": na.status,
                "state": na.state,
                "facts": na.facts or {},
                "checks": [
                    {
                        "id": r.check_id,
                        "status": r.status,
                        "summary": r.summary,
                        "evidence": r.evidence,
                        "remediation": r.remediation,
                    }
                    for r in na.results.all()
                ],
            }
            for na in node_audits
        ],
    }


def node_remediation_script(*, node_audit: models.NodeAudit) -> str:
    """Every remediation of a node audit as one commented shell script, in check order. Preflight never runs it."""
    node = node_audit.node
    lines = [
        "#!/bin/sh",
        f"# Preflight remediation for {node.name} ({node.address}), audit {node_audit.audit_id},"
        f" profile {node_audit.audit.profile_key}.",
        "# Review every step before running it; Preflight never runs this script itself.",
        "set -e",
        "",
    ]
    for result in node_audit.results.order_by("position"):
        if result.status in ("pass", "skip") or not result.remediation:
            continue
        lines.append(f"# [{result.status}] {result.check_id}: {result.summary}")
        for text in result.remediation.split("\n"):
            lines.append(f"# {text}")
        lines.extend(f"{cmd}" for cmd in _commands(result.remediation))
        lines.append("")
    return "\n".join(lines) + "\n"


def _commands(text: str) -> list[str]:
    """Commands quoted in backticks, or the whole text when it is a bare command line."""
    quoted = re.findall(r"`([^`]+)`", text)
    if quoted:
        return [
            f"# $ {cmd}" if cmd.isupper() or "PORT" in cmd or "USER" in cmd or "SERVICE" in cmd else cmd
            for cmd in quoted
        ]
    if re.match(r"^(apt-get|dnf|zypper|yum|systemctl|sysctl|firewall-cmd|ufw|nvidia-ctk)\b", text):
        return [text]
    return []
