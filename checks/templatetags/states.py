"""The one template tag set for states (issue 25): every page renders node, check and audit states through these,
with the words, colours and icons of portal/states.py. Each badge carries data-state="<kind>:<value>"."""

from django import template
from django.utils.html import format_html

from portal import states

register = template.Library()


def badge(status: states.Status, label: str | None = None):
    return format_html(
        '<span class="badge {}" data-state="{}:{}">{}</span>',
        status.css,
        status.kind,
        status.value,
        status.label if label is None else label,
    )


@register.simple_tag
def node_state(value, label=None, reached=None, portal_error=""):
    """Ready, Not ready, Unreachable or Not audited, from a node's (or node audit's) worst status, whether it was
    reached and whether Preflight lost the run (portal.states.node_state), or a state already read (a Status).
    label: a cluster's verdict words ("Partly audited", "No nodes") in the colour of its state, or "" for the icon."""
    if isinstance(value, states.Status):
        return badge(value, label)
    return badge(states.node_state(value, reached, portal_fault=bool(portal_error)), label)


@register.simple_tag
def audit_result(value):
    """A finished audit's result as readiness (Ready, Not ready): nodes not reached make it Not ready, never
    "Unreachable", which is a node's state."""
    return badge(states.audit_result(value))


@register.simple_tag
def check_status(value, label=None):
    """Pass, Warn, Fail, Error or Skip; label replaces the word only where the badge counts things (N paths)."""
    return badge(states.check_status(value), label)


@register.simple_tag
def run_state(value):
    """An audit's run state (Queued, Running, Finished, Stopped), never a readiness word."""
    return badge(states.run_state(value))
