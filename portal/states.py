"""One vocabulary for every state a page, the admin or the CLI shows (issue 25): a leaf module, no imports.

Three sets, never mixed:
- a node's readiness: Ready, Not ready, Unreachable, Not audited;
- a check's (or a path's) outcome: Pass, Warn, Fail, Error, Skip;
- an audit's run state: Queued, Running, Finished, Stopped; kept apart from readiness.

Each state has a value, a label, a severity (higher is worse, for sorting) and a CSS class (colour and icon). A
changed host key leaves a node Unreachable: a definite state with its own icon, not a question mark.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    value: str
    label: str
    severity: int
    css: str
    kind: str  # "node", "check" or "run"


def _index(*states: Status) -> dict[str, Status]:
    return {s.value: s for s in states}


READY = Status("ready", "Ready", 0, "state-ready", "node")
NOT_READY = Status("not-ready", "Not ready", 3, "state-not-ready", "node")
UNREACHABLE = Status("unreachable", "Unreachable", 4, "state-unreachable", "node")
NOT_AUDITED = Status("not-audited", "Not audited", -1, "state-not-audited", "node")
NODE_STATES = _index(READY, NOT_READY, UNREACHABLE, NOT_AUDITED)

PASS = Status("pass", "Pass", 0, "state-pass", "check")
SKIP = Status("skip", "Skip", 1, "state-skip", "check")
WARN = Status("warn", "Warn", 2, "state-warn", "check")
FAIL = Status("fail", "Fail", 3, "state-fail", "check")
ERROR = Status("error", "Error", 4, "state-error", "check")
NOT_RUN = Status("not-run", "Not run", -1, "state-skip", "check")  # a check one audit did not run (the diff)
CHECK_STATES = _index(PASS, SKIP, WARN, FAIL, ERROR, NOT_RUN)

QUEUED = Status("queued", "Queued", 0, "state-running", "run")
RUNNING = Status("running", "Running", 0, "state-running", "run")
FINISHED = Status("done", "Finished", 0, "state-finished", "run")
STOPPED = Status("error", "Stopped", 1, "state-stopped", "run")  # could not finish: swept, timed out, refused
RUN_STATES = _index(QUEUED, RUNNING, FINISHED, STOPPED)

# A node's last audit status (the worst of its checks) read as readiness: warnings do not block; an error means the
# checks could not run on it (not reached, host key changed, probe cut short).
_READINESS = {"pass": READY, "warn": READY, "skip": READY, "fail": NOT_READY, "error": UNREACHABLE}


def node_state(status: str | None) -> Status:
    """Readiness from a node's (or a node audit's) worst status; "unknown" or nothing is Not audited."""
    return _READINESS.get(status or "", NOT_AUDITED)


# An audit's result read as the cluster's readiness: a node it could not reach (error) makes the audit Not ready, it
# does not make the audit "Unreachable" (issue 25: one state per thing; the node is the one that was not reached).
_AUDIT_READINESS = {**_READINESS, "error": NOT_READY}


def audit_result(status: str | None) -> Status:
    """A finished audit's result (the worst status of its nodes) as readiness: Ready or Not ready."""
    return _AUDIT_READINESS.get(status or "", NOT_AUDITED)


def check_status(status: str | None) -> Status:
    """A check's or path's outcome; an unknown word is shown as itself, never guessed."""
    value = (status or "").replace(" ", "-")
    return CHECK_STATES.get(value) or Status(value, status or "", -1, "state-skip", "check")


def run_state(state: str | None) -> Status:
    return RUN_STATES.get(state or "") or Status(state or "", state or "", 0, "state-running", "run")


def status(kind: str, value: str | None) -> Status:
    return {"node": node_state, "check": check_status, "run": run_state}[kind](value)
