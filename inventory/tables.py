"""What inventory's admin shows of a node's state; the node list's table is checks.node_tables (it reads audits)."""

from django.utils.html import format_html

from portal import states


def status_badge(status: str, reached: bool | None = None) -> str:
    """A colored badge that also says its state in words (never color alone): the vocabulary of portal.states, the
    markup of the one state tag (checks.templatetags.states.node_state)."""
    state = states.node_state(status, reached)
    return format_html('<span class="badge {}" data-state="node:{}">{}</span>', state.css, state.value, state.label)
