"""Writes for audits, by concern: start (the one audit request), queue (Celery by task name), node (one node's
audit), trust (target policy, host keys, login), network (the connectivity matrix), finish (closing and sweeping),
prune (history retention). Tasks, commands, admin actions, web views and the API call these and nothing else."""

from .finish import audit_finish, audit_network_run, audit_sweep_scheduled, audit_sweep_stuck
from .network import network_matrix_run
from .node import node_audit_run
from .prune import PruneReport, audit_prune
from .queue import audit_dispatch
from .start import (
    AuditAlreadyRunning,
    AuditNotQueued,
    AuditRefused,
    audit_enqueue,
    audit_request,
    audit_run_inline,
    audit_start,
)

__all__ = [
    "AuditAlreadyRunning",
    "AuditNotQueued",
    "AuditRefused",
    "PruneReport",
    "audit_dispatch",
    "audit_enqueue",
    "audit_finish",
    "audit_network_run",
    "audit_prune",
    "audit_request",
    "audit_run_inline",
    "audit_start",
    "audit_sweep_scheduled",
    "audit_sweep_stuck",
    "network_matrix_run",
    "node_audit_run",
]
