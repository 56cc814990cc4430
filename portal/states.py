"""One vocabulary for every state a page, the admin or the CLI shows (issue 25): a leaf module, no imports.

Three sets, never mixed:
- a node's readiness: Ready, Not ready, Unreachable, Not audited (from its worst status, whether it was reached
  and whether Preflight itself lost the run: `node_state`);
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

# A node's last audit status (the worst of its checks) read as readiness: warnings do not block. An error means the
# checks could not run on it: whether it was reached (its ssh.connect passed) tells which state that is (below).
READY_STATUSES = ("pass", "warn", "skip")
_READINESS = {**dict.fromkeys(READY_STATUSES, READY), "fail": NOT_READY, "error": UNREACHABLE}


def node_state(status: str | None, reached: bool | None = None, *, portal_fault: bool = False) -> Status:
    """Readiness from a node's (or a node audit's) worst status; "unknown" or nothing is Not audited.

    `reached`: whether the node was reached over SSH (its ssh.connect passed). An `error` on a reached node (the probe
    timed out or was cut short, its output could not be read) is Not ready: the node is not proven ready, and it is
    not Unreachable either. Not reached, or not known (rows from before it was recorded): Unreachable.
    `portal_fault`: Preflight itself ended the run (its database, a lost worker): Not audited, never the node's fault.
    The rule in SQL terms, for filters and counts: `node_state_where`."""
    if portal_fault:
        return NOT_AUDITED
    if status == "error" and reached:
        return NOT_READY
    return _READINESS.get(status or "", NOT_AUDITED)


def node_state_where(value: str) -> list[tuple[tuple[str, ...], bool | None]]:
    """node_state's rule for stored rows, as (statuses, reached) terms of which any matches: the status is one of
    `statuses`, and reached is True (True), anything but True (False: not reached or not known) or anything (None).
    Portal faults are not in it: a node's recorded status never comes from one (node audits carry portal_error)."""
    return {
        READY.value: [(READY_STATUSES, None)],
        NOT_READY.value: [(("fail",), None), (("error",), True)],
        UNREACHABLE.value: [(("error",), False)],
        NOT_AUDITED.value: [(("unknown",), None)],
    }[value]


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
