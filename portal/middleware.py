"""Refuse with a 400 (422 in the API), before any view runs, requests that would otherwise answer 500:

- A NUL character in the path, the query string or a JSON body. PostgreSQL cannot store or compare a string holding
  NUL (psycopg raises "A string literal cannot contain NUL"), so a `%00` in a cluster name, a filter or a JSON field
  would answer 500 there while SQLite answers 404. No name, filter or value of this portal may hold one; forms
  already refuse it (Django's ProhibitNullCharactersValidator).
- An empty `_to_field` in the admin's query string: Django's admin looks up a field named "" and fails (KeyError).
- A number larger than 2,147,483,647 in an admin filter (`?audit=99999999999`). The admin turns any field of the
  model into a filter, and a related field's lookup is not range-checked: SQLite overflows its INTEGER, PostgreSQL
  its int4 columns (Django's own tables, django-celery-beat's). No row of this portal has such an id. The search box
  (`q`) is free text and is not checked.
"""

from __future__ import annotations

import re

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse

_NUL = "the request holds a NUL character (%00), which no name or value may contain"
_TO_FIELD = "_to_field is empty: name a field or leave the parameter out"
_INT4_MAX = 2**31 - 1
_ADMIN_NUMBER = f"a number in the admin's filters is at most {_INT4_MAX}"
_DIGITS = re.compile(r"[0-9]+")
_JSON_BODY_LIMIT = 1024 * 1024  # the API's JSON bodies are small; larger ones are left to the view's own limits
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 not itself escaped (an even run of backslashes before)


class RequestGuardMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        refused = None
        if self._holds_nul(request):
            refused = _NUL
        elif request.GET.get("_to_field", None) == "" or (
            # never a multipart body: reading it here would come before a view's own upload handlers
            request.content_type == "application/x-www-form-urlencoded" and request.POST.get("_to_field", None) == ""
        ):
            refused = _TO_FIELD
        elif request.path.startswith("/admin/") and self._oversized_admin_filter(request):
            refused = _ADMIN_NUMBER
        if refused is None:
            return self.get_response(request)
        if request.path.startswith("/api/"):  # the API's error shape and the status its schema documents for input
            return JsonResponse({"code": "validation_error", "message": refused, "errors": []}, status=422)
        return HttpResponse(refused, status=400, content_type="text/plain; charset=utf-8")

    @staticmethod
    def _oversized_admin_filter(request) -> bool:
        for key, values in request.GET.lists():
            if key == "q":
                continue
            for value in values:
                for digits in _DIGITS.findall(value):
                    if len(digits) > 10 or int(digits) > _INT4_MAX:
                        return True
        return False

    @staticmethod
    def _holds_nul(request) -> bool:
        if "\x00" in request.path_info:
            return True
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            return True
        length = request.META.get("CONTENT_LENGTH") or "0"
        if request.content_type == "application/json" and length.isascii() and length.isdigit():
            if int(length) > _JSON_BODY_LIMIT:
                return False
            try:
                body = request.body
            except RequestDataTooBig:
                return False
            return b"\x00" in body or _JSON_NUL.search(body) is not None
        return False
