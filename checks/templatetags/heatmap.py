"""The dashboard's fleet heatmap as HTML, built here rather than in a template loop: up to 3,000 cells, each a link
to its node with its state's class (portal/states.py) and a hover text. Every name and cause is node- or
operator-supplied text, so each goes through escape() exactly once."""

from django import template
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from checks.selectors.dashboard import HeatGroup

register = template.Library()


@register.simple_tag
def heatmap_cells(group: HeatGroup) -> SafeString:
    url = reverse("ui:node_detail", args=[0])
    head, tail = url[: url.rindex("0")], url[url.rindex("0") + 1 :]  # one reverse() for every cell
    cells = [
        f'<a class="{cell.state.css}" href="{head}{cell.pk}{tail}" title="{escape(cell.title)}"></a>'
        for cell in group.cells
    ]
    return mark_safe("".join(cells))  # noqa: S308 - names and causes are escaped above, the rest is ours
