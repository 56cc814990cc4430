from datetime import datetime

from ninja import Field, Schema


class AuditIn(Schema):
    cluster: str = Field(..., min_length=1, max_length=64, description="Cluster name")
    nodes: list[str] | None = Field(None, max_length=5000, description="Only these nodes (no connectivity matrix)")


class AuditStarted(Schema):
    audit: int
    state: str
    url: str


class WaivedOut(Schema):
    reason: str
    by: str
    expires: str | None = Field(None, description="ISO 8601 UTC; null when ignored for one run (`audit --ignore`)")
    scope: str = Field("", description="node, cluster, or run (`audit --ignore`)")


class CheckOut(Schema):
    id: str
    status: str
    summary: str
    evidence: str
    remediation: str = Field(..., description="The explanation a person reads")
    commands: list[str] = Field(
        default_factory=list, description="Shell commands that fix it on this node, in order, built from templates"
    )
    waived: WaivedOut | None = Field(
        None, description="Present when a waiver accepts this result: it keeps its real status, not counted"
    )


class NodeResultOut(Schema):
    name: str
    address: str
    role: str
    status: str
    readiness: str = Field(
        "",
        description="The node's state in this audit, as the pages show it: ready, not-ready (failing, or reached but "
        "its checks could not run), unreachable (not reached) or not-audited (Preflight itself lost the run)",
    )
    reached: bool | None = Field(None, description="Whether the audit reached the node over SSH (ssh.connect passed)")
    state: str
    attempts: int = Field(0, description="How many times a worker claimed this node (more than 1: a worker was lost)")
    portal_error: str = Field(
        "", description="Set when Preflight itself (its database, a lost worker), not the node, ended it in error"
    )
    facts: dict
    checks: list[CheckOut]


class Progress(Schema):
    nodes: int
    finished: int
    network_state: str


class AuditOut(Schema):
    audit: int
    cluster: str
    profile: str
    state: str
    status: str
    started: str | None
    finished: str | None
    progress: Progress
    nodes: list[NodeResultOut]
    ignored: list[str] = Field(default_factory=list, description="Check ids waived for this run only")


class AuditSummary(Schema):
    id: int
    cluster: str
    profile_key: str
    state: str
    status: str
    trigger: str
    created: datetime
    finished: datetime | None


class CheckHistoryOut(Schema):
    audit: int
    finished: datetime | None
    check_id: str
    status: str
    summary: str


class PathOut(Schema):
    check_id: str
    source: str
    destination: str
    status: str
    summary: str
    outcomes: dict[str, list[str]]
