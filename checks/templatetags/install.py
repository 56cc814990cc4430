"""`{% install_block node %}`: the node page's "Install GPUStack" section (the command, or why not yet). A template
tag, so the inventory's node page shows it without importing the audit wing."""

from django import template

from ..install_plan import node_install

register = template.Library()


@register.inclusion_tag("checks/_install_node.html")
def install_block(node):
    return {"node": node, "item": node_install(node=node)}
