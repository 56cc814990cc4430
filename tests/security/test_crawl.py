"""A crawl of every web URL (portal.urls: the UI, the admin, the API's routes) with hostile path and query values,
as a superuser and as a narrow user: no input may answer 5xx. schemathesis (tests/api) fuzzes the API's schema; this
walks the URL patterns themselves, so the admin and the HTML pages are covered too.

Two parts: a sweep that requests every pattern with each of a few fixed hostile values (so no pattern is skipped),
and a hypothesis run that draws patterns, path values and query strings (300 examples; PREFLIGHT_CRAWL_EXAMPLES
sets another number)."""

from __future__ import annotations

import os
import re
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import get_resolver
from django.urls.resolvers import URLPattern, URLResolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.tokens import api_token_create
from tests.uidata import build_cluster

pytestmark = pytest.mark.django_db

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def _routes(patterns, prefix: str = "") -> list[str]:
    routes: list[str] = []
    for pattern in patterns:
        text = prefix + str(pattern.pattern).lstrip("^").rstrip("$").replace("\\", "")
        if isinstance(pattern, URLResolver):
            routes.extend(_routes(pattern.url_patterns, text))
        elif isinstance(pattern, URLPattern):
            routes.append(text)
    return sorted(set(routes))


# Regex routes (the admin's app index) keep their group: `(?P<app_label>inventory|...)` becomes a parameter.
ROUTES = [re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", route) for route in _routes(get_resolver().url_patterns)]
# Names of the query parameters the views read (UI filters, pagers, diff, matrix, admin changelists).
QUERY_KEYS = [
    "a", "b", "audit", "node", "page", "paths_page", "view", "sort", "export", "cluster", "q", "role", "status",
    "readiness", "vendor", "os", "failing_check", "o", "p", "e", "_changelist_filters", "_popup", "_to_field",
    "cluster__id__exact", "node__id__exact", "audit__id__exact", "id__exact", "state__exact", "next", "limit",
    "offset", "app_label", "model_name", "field_name", "term",
]  # fmt: skip
HOSTILE = [
    "9999999999999999999999999",
    "-1",
    "0",
    "٣",
    "²",
    "1e3",
    "1.5",
    "\x00",
    "a\r\nSet-Cookie: x=1",
    "'\"<svg onload=alert(1)>",
    "%",
    "../../etc/passwd",
    "x" * 3000,
    "\u202egpu",
    "9" * 4400,
    str(2**63),
    str(2**63 - 1),
    str(-(2**63) - 1),
]
SWEEP = ["9999999999999999999999999", "\x00'\"<>\r\n", "-1"]
hostile = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.text(max_size=40),
)


@pytest.fixture
def crawl_data(db):
    data = build_cluster("crawl", 3, audits=2)
    data["real"] = [str(data["audits"][0].pk), str(data["nodes"][0].pk), "crawl"]
    return data


@pytest.fixture
def clients(crawl_data, django_user_model):
    """A superuser and a narrow staff user (may view nodes and clusters, nothing else), each logged in and with an
    API token."""
    superuser = django_user_model.objects.create_superuser("crawl-root", password="pw")
    narrow = django_user_model.objects.create_user("crawl-narrow", password="pw", is_staff=True)
    for codename in ("view_node", "view_cluster"):
        narrow.user_permissions.add(Permission.objects.get(content_type__app_label="inventory", codename=codename))
    made = {}
    for label, user in (("superuser", superuser), ("narrow", narrow)):
        _, token = api_token_create(user=user, name="crawl")
        # the session serves the pages and the admin, the bearer token the API
        client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {token}")
        client.force_login(user)
        made[label] = client
    return made


def _url(route: str, value: str) -> str:
    return "/" + _PARAM.sub(lambda _: quote(value, safe=""), route)


def _get(client: Client, url: str, query: dict[str, str]):
    response = client.get(url, query)
    assert response.status_code < 500, f"{response.status_code} for GET {url} {query!r}"
    return response


def test_the_crawl_knows_the_routes_of_every_door():
    assert "clusters/<str:name>/diff/" in ROUTES and "nodes/<int:node_id>/remediation.sh" in ROUTES
    assert "admin/inventory/node/<path:object_id>/change/" in ROUTES and any(r.startswith("api/v1/") for r in ROUTES)
    assert len(ROUTES) > 150


def test_the_crawl_is_logged_in_at_every_door(clients, crawl_data):
    # the crawl's requests reach the views, not the login page or the API's 401
    root, narrow = clients["superuser"], clients["narrow"]
    assert root.get("/api/v1/nodes").status_code == 200 and narrow.get("/api/v1/nodes").status_code == 200
    assert root.get("/admin/inventory/node/").status_code == 200 and narrow.get("/nodes/").status_code == 200
    assert root.get(f"/api/v1/audits/{crawl_data['audits'][0].pk}").status_code == 200
    assert narrow.get(f"/api/v1/audits/{crawl_data['audits'][0].pk}").status_code == 403


@pytest.mark.parametrize("user", ["superuser", "narrow"])
def test_every_route_answers_hostile_values_without_a_5xx(clients, crawl_data, user):
    # given: every route, each path parameter and every known query parameter set to a hostile value
    client = clients[user]
    requested = 0
    for route in ROUTES:
        for value in SWEEP:
            # when
            _get(client, _url(route, value), dict.fromkeys(QUERY_KEYS, value))
            # and with real path values, so the view runs past its lookups into the hostile query
            _get(client, _url(route, crawl_data["real"][requested % 3]), dict.fromkeys(QUERY_KEYS, value))
            requested += 2
    # then: every answer was below 500 (asserted per request)
    assert requested == len(ROUTES) * len(SWEEP) * 2


def test_the_issues_diff_link_answers_404():
    # given: the link of the issue, on a cluster that exists
    build_cluster("c", 1, audits=2)
    client = Client()
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    # when
    response = client.get("/clusters/c/diff/", {"a": "9999999999999999999999999", "b": "2"})
    # then
    assert response.status_code == 404


def _admin_filters() -> list[tuple[str, str]]:
    """(changelist URL, field name) for every field of every model in the admin: each may be a filter there."""
    from django.contrib import admin

    return [
        (f"/admin/{model._meta.app_label}/{model._meta.model_name}/", field.name)
        for model in admin.site._registry
        for field in model._meta.get_fields()
        if field.concrete or field.many_to_many
    ]


def test_every_admin_field_filter_answers_huge_numbers_without_a_5xx(clients):
    # given: each field of each admin changelist as a filter, alone (several at once stop at the first bad one)
    filters = _admin_filters()
    assert len(filters) > 60
    for url, field in filters:
        for value in ("99999999999", str(2**70), "-99999999999", "1,99999999999"):
            # when / then
            _get(clients["superuser"], url, {field: value})
            _get(clients["superuser"], url, {f"{field}__in": value})


@settings(
    max_examples=int(os.environ.get("PREFLIGHT_CRAWL_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(ROUTES),
    path_value=hostile,
    real=st.booleans(),
    query=st.dictionaries(st.sampled_from(QUERY_KEYS + sorted({f for _, f in _admin_filters()})), hostile, max_size=3),
    user=st.sampled_from(["superuser", "narrow"]),
)
def test_hypothesis_crawl_finds_no_5xx(clients, crawl_data, route, path_value, real, query, user):
    # given: a route, a hostile (or a real) path value and a hostile query string
    value = crawl_data["real"][len(path_value) % 3] if real else path_value
    # when / then
    _get(clients[user], _url(route, value), query)


HUGE = "9999999999999999999999999"


@pytest.mark.parametrize(
    "url",
    [
        f"/nodes/{HUGE}/",
        f"/nodes/{HUGE}/remediation.sh",
        f"/audits/{HUGE}/progress/",
        f"/paths/{HUGE}/",
        f"/nodes/{2**63}/",
        f"/admin/inventory/node/{HUGE}/change/",
        f"/api/v1/nodes/{HUGE}",
        f"/api/v1/audits/{HUGE}",
        f"/api/v1/nodes/{HUGE}/checks",
        f"/api/v1/nodes/{HUGE}/remediation",
    ],
)
def test_oversized_ids_in_paths_answer_404(clients, url):
    response = clients["superuser"].get(url)
    # the admin answers a missing object with a redirect to its list and a message, as for any unknown id
    assert response.status_code == (302 if url.startswith("/admin/") else 404), response.content[:300]


@pytest.mark.parametrize(
    "query", [{"a": HUGE, "b": "real"}, {"a": "real", "b": HUGE}, {"a": "٣", "b": "real"}, {"a": "-1", "b": "real"}]
)
def test_oversized_or_odd_audit_ids_in_the_diff_answer_404(clients, crawl_data, query):
    real = str(crawl_data["audits"][0].pk)
    response = clients["superuser"].get(
        "/clusters/crawl/diff/", {k: real if v == "real" else v for k, v in query.items()}
    )
    assert response.status_code == 404
