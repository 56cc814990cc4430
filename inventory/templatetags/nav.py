"""Breadcrumbs for every page, from the page's URL name and the objects its view already put in the context: no
query of their own, and no page template has to spell its trail."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.urls import reverse

register = template.Library()

# The cluster pages: URL name -> the last crumb's words.
CLUSTER_PAGES = {
    "diff": "Compare audits",
    "install_plan": "Install plan",
    "matrix": "Network matrix",
    "fix_plan": "Fix plan",
}


def trail(url_name: str, context) -> list[tuple[str, str]]:
    """(words, href) from the top down; the last one is the page itself (its href is not a link)."""
    clusters = ("Clusters", reverse("ui:home"))
    nodes = ("Nodes", reverse("ui:node_list"))

    def cluster_crumb(cluster) -> tuple[str, str]:
        return (str(cluster), reverse("ui:dashboard", args=[str(cluster)]))

    cluster = context.get("cluster")
    if url_name == "home":
        return [clusters]
    if url_name == "dashboard" and cluster is not None:
        return [clusters, cluster_crumb(cluster)]
    if url_name in CLUSTER_PAGES and cluster is not None:
        return [clusters, cluster_crumb(cluster), (CLUSTER_PAGES[url_name], "")]
    if url_name == "fix_run" and cluster is not None:
        run = context.get("run")
        fix_plan = ("Fix plan", reverse("ui:fix_plan", args=[str(cluster)]))
        return [clusters, cluster_crumb(cluster), fix_plan, (f"Fix run {getattr(run, 'id', '')}".strip(), "")]
    if url_name == "path" and context.get("path") is not None:
        path = context["path"]
        cluster = path.audit.cluster
        matrix = ("Network matrix", reverse("ui:matrix", args=[cluster.name]))
        return [clusters, cluster_crumb(cluster), matrix, (f"{path.source.name} → {path.destination.name}", "")]
    if url_name == "node_list":
        request = context.get("request")
        named = request.GET.get("cluster", "")[:64] if request is not None else ""
        if named and "/" not in named:  # one cluster's nodes sit under that cluster (shown escaped, as typed)
            return [clusters, (named, reverse("ui:dashboard", args=[named])), ("Nodes", "")]
        return [nodes]
    if url_name == "node_detail" and context.get("node") is not None:
        node = context["node"]
        in_cluster = ("Nodes", f"{reverse('ui:node_list')}?{urlencode({'cluster': node.cluster.name})}")
        return [clusters, cluster_crumb(node.cluster), in_cluster, (node.name, "")]
    if url_name == "node_jump":
        return [nodes, ("Jump to node", "")]
    if url_name == "account_tokens":
        return [("Account", ""), ("API tokens", "")]
    return []


@register.inclusion_tag("_breadcrumbs.html", takes_context=True)
def breadcrumbs(context) -> dict:
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    crumbs = trail(match.url_name, context) if match is not None and match.url_name else []
    return {"crumbs": [{"text": text, "href": href} for text, href in crumbs]}
