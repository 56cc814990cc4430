"""The user's own page: create (shown once) and revoke personal API tokens."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from .models import ApiToken
from .tokens import api_token_create, api_token_revoke


@login_required
def tokens(request):
    new_token = None
    if request.method == "POST":
        if request.POST.get("action") == "create" and request.POST.get("name", "").strip():
            days = request.POST.get("days", "").strip()
            expires = timezone.now() + timedelta(days=int(days)) if days.isdigit() and 0 < int(days) <= 3650 else None
            _, new_token = api_token_create(user=request.user, name=request.POST["name"].strip()[:100], expires=expires)
        elif request.POST.get("action") == "revoke":
            pk = request.POST.get("token", "")
            token = (
                ApiToken.objects.filter(pk=int(pk), user=request.user).first()
                if pk.isascii() and pk.isdigit() and len(pk) < 19
                else None
            )
            if token is None:
                raise Http404("no such token of yours")
            api_token_revoke(token=token)
    mine = ApiToken.objects.filter(user=request.user)
    response = render(request, "account/tokens.html", {"tokens": mine, "new_token": new_token})
    response["Cache-Control"] = "no-store"
    return response
