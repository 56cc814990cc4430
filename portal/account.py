"""The user's own page: create (shown once, with a Copy button) and revoke personal API tokens.

Revoking asks first without JavaScript: the list's "Revoke…" is a GET of this page with `?revoke=<id>`, which shows
a confirmation whose form posts the revoke."""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from .models import ApiToken
from .tokens import api_token_create, api_token_revoke


def _own_token(request, pk: str) -> ApiToken:
    token = (
        ApiToken.objects.filter(pk=int(pk), user=request.user).first()
        if pk.isascii() and pk.isdigit() and len(pk) < 19
        else None
    )
    if token is None:
        raise Http404("no such token of yours")
    return token


@login_required
def tokens(request):
    new_token = new_token_name = None
    revoke = None
    if request.method == "POST":
        if request.POST.get("action") == "create" and request.POST.get("name", "").strip():
            days = request.POST.get("days", "").strip()
            expires = timezone.now() + timedelta(days=int(days)) if days.isdigit() and 0 < int(days) <= 3650 else None
            created, new_token = api_token_create(
                user=request.user, name=request.POST["name"].strip()[:100], expires=expires
            )
            new_token_name = created.name
        elif request.POST.get("action") == "revoke":
            token = _own_token(request, request.POST.get("token", ""))
            api_token_revoke(token=token)
            messages.success(request, f"Token “{token.name}” is revoked.")
    elif request.GET.get("revoke"):
        revoke = _own_token(request, request.GET["revoke"])
        if revoke.revoked:
            revoke = None
    mine = ApiToken.objects.filter(user=request.user)
    response = render(
        request,
        "account/tokens.html",
        {"tokens": mine, "new_token": new_token, "new_token_name": new_token_name, "revoke": revoke},
    )
    response["Cache-Control"] = "no-store"
    return response
