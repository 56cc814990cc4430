"""Writes for audits. Tasks, commands, admin actions and the API call these and nothing else."""

from .audits import (
    AuditAlreadyRunning,
    AuditNotQueued,
    AuditRefused,
    audit_dispatch,
    audit_enqueue,
    audit_finish,
    audit_network_run,
    audit_run_inline,
    audit_start,
    audit_sweep_stuck,
    node_audit_run,
)
from .network import network_matrix_run

__all__ = [
    "AuditAlreadyRunning",
    "AuditNotQueued",
    "AuditRefused",
    "audit_dispatch",
    "audit_enqueue",
    "audit_finish",
    "audit_network_run",
    "audit_run_inline",
    "audit_start",
    "audit_sweep_stuck",
    "network_matrix_run",
    "node_audit_run",
]
