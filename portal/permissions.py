"""One permission rule per action, the same through every door (admin, web UI, API, import).

Every door asks `allowed(user, ACTION)` or `require(user, ACTION)`; none spells a permission string of its own for
these actions. The README's permission table lists the same rows, and tests/security/test_doors.py walks every door
of every row. `user=None` is the system itself (the `audit` command, Celery beat), which is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from django.core.exceptions import PermissionDenied


@dataclass(frozen=True)
class Rule:
    permissions: tuple[str, ...]  # all needed; empty with superuser=True: superusers only
    description: str
    superuser: bool = False

    def text(self) -> str:
        return "superuser" if self.superuser else " + ".join(self.permissions)


START_AUDIT = "start_audit"
VIEW_RESULTS = "view_results"
USE_CREDENTIAL = "use_credential"
ADD_CREDENTIAL = "add_credential"
KEEP_CREDENTIAL = "keep_credential"
LOCAL_TRANSPORT = "local_transport"
TOKEN_FOR_OTHERS = "token_for_others"
WAIVE_CHECK = "waive_check"
ACCEPT_HOST_KEY = "accept_host_key"
APPLY_FIX = "apply_fix"

RULES: dict[str, Rule] = {
    START_AUDIT: Rule(("checks.start_audit",), "Start an audit"),
    # Results are status, why, facts (OS, devices and drivers found), counts, evidence and commands. Every door that
    # shows one asks this rule and nothing else: no model permission of its own (view_nodeaudit, view_node...).
    VIEW_RESULTS: Rule(("checks.view_audit",), "Read audit results and remediation scripts"),
    USE_CREDENTIAL: Rule(("inventory.view_credential",), "Give a node an existing credential"),
    ADD_CREDENTIAL: Rule(("inventory.add_credential",), "Give a node a new credential"),
    KEEP_CREDENTIAL: Rule(
        ("inventory.change_credential",),
        "Change a node's address, SSH port or transport and keep its credential (else it is removed), "
        "or replace a stored credential's secret",
    ),
    LOCAL_TRANSPORT: Rule((), "Set a node's transport to local (audit the portal's own host)", superuser=True),
    TOKEN_FOR_OTHERS: Rule((), "Create an API token for another user", superuser=True),
    WAIVE_CHECK: Rule(("checks.add_waiver",), "Waive a check (accept a known non-pass until an expiry)"),
    ACCEPT_HOST_KEY: Rule(("inventory.accept_hostkey",), "Accept a node's changed SSH host key (or forget its keys)"),
    APPLY_FIX: Rule(
        ("checks.apply_fix", "checks.view_audit"),
        "Preview, approve and run a fix plan's commands on nodes (the preview shows results)",
    ),
}


def allowed(user, action: str) -> bool:
    rule = RULES[action]
    if user is None:
        return True
    if not getattr(user, "is_active", False):
        return False
    if rule.superuser:
        return bool(user.is_superuser)
    return all(user.has_perm(p) for p in rule.permissions)


def require(user, action: str) -> None:
    """Raise PermissionDenied naming what is missing."""
    if not allowed(user, action):
        rule = RULES[action]
        raise PermissionDenied(f"{rule.description.lower()} needs {rule.text()}")


def missing(user, action: str) -> str | None:
    """A sentence saying what is missing, or None when allowed."""
    try:
        require(user, action)
    except PermissionDenied as exc:
        return str(exc)
    return None


def requires(action: str):
    """View decorator (after login_required): 403 unless the user may do `action`."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            require(request.user, action)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
