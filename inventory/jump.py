"""Jump to a node by name from any page: a prefix match on node names, bounded, behind the node list's own rule.

One GET door, two shapes: JSON for the header's jump box (`?format=json`), and a plain search page that works
without JavaScript (the box's form submits here)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from .models import Node

JUMP_LIMIT = 10  # matches shown; the box is for going somewhere, not for listing
QUERY_MAX = 128  # a node name is at most 128 characters


def node_matches(*, query: str, limit: int = JUMP_LIMIT) -> list[dict]:
    """Nodes whose name starts with `query` (case-insensitive), exact names first, then by name and cluster."""
    query = query.strip()[:QUERY_MAX]
    if not query:
        return []
    rows = (
        Node.objects.filter(name__istartswith=query)
        .order_by("name", "cluster__name")
        .values_list("pk", "name", "cluster__name", "role")[: limit + 1]
    )
    found = [
        {"name": name, "cluster": cluster, "role": role, "url": reverse("ui:node_detail", args=[pk])}
        for pk, name, cluster, role in rows
    ]
    found.sort(key=lambda row: row["name"].lower() != query.lower())  # stable: keeps name order otherwise
    return found


@login_required
@permission_required("inventory.view_node", raise_exception=True)
def node_jump(request):
    query = request.GET.get("q", "")
    found = node_matches(query=query, limit=JUMP_LIMIT)
    more = len(found) > JUMP_LIMIT
    found = found[:JUMP_LIMIT]
    if request.GET.get("format") == "json":
        return JsonResponse({"query": query[:QUERY_MAX], "nodes": found, "more": more})
    if request.GET.get("go") and found:  # the box's Enter without JavaScript: the first match
        return redirect(found[0]["url"])
    return render(request, "inventory/node_jump.html", {"query": query[:QUERY_MAX], "found": found, "more": more})
